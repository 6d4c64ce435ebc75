"""Targets, losses and accuracy of the numpy view, as the neuron scorers and the removal loop use them."""

from __future__ import annotations

import numpy as np

from keras_legc.core.dense import activate, predicted_class
from keras_legc.errors import InvalidArgumentError
from keras_legc.neurons.view import DenseNet

LOSSES = ("sse", "crossentropy")


def _resolve_loss(net: DenseNet, loss: str) -> str:
    if loss not in ("auto", *LOSSES):
        raise InvalidArgumentError(
            f"loss must be 'auto', 'sse' or 'crossentropy', got {loss!r}. Fix: pass one of these."
        )
    out = net.activations[-1]
    if loss == "auto":
        loss = "crossentropy" if out == "softmax" else "sse"
    if loss == "crossentropy" and out not in ("softmax", "sigmoid"):
        raise InvalidArgumentError(
            f"loss='crossentropy' needs a softmax or sigmoid output layer, but {net.names[-1]!r} "
            f"is {out!r}. Fix: use loss='sse' (or 'auto')."
        )
    return loss


def _targets(net: DenseNet, y, n: int) -> np.ndarray:
    """One-hot (or given) float64 targets of shape ``(n, outputs)``."""
    c = net.kernels[-1].shape[1]
    y = np.asarray(y)
    if len(y) != n:
        raise InvalidArgumentError(
            f"x has {n} rows but y has {len(y)}. Fix: pass one label (or target row) per input."
        )
    if y.ndim == 2 and y.shape[1] == c:
        t = y.astype(np.float64)
    elif y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        y = y.reshape(-1)
        if c == 1:
            t = y.astype(np.float64)[:, None]
        else:
            if not np.issubdtype(y.dtype, np.integer) and not np.all(y == np.round(y)):
                raise InvalidArgumentError(
                    "y holds non-integer class labels. Fix: pass integer labels or one-hot rows."
                )
            labels = y.astype(np.int64)
            if labels.min(initial=0) < 0 or labels.max(initial=0) >= c:
                raise InvalidArgumentError(
                    f"labels must lie in 0..{c - 1} for a {c}-output model, got "
                    f"{labels.min()}..{labels.max()}. Fix: pass labels of this model's classes."
                )
            t = np.eye(c, dtype=np.float64)[labels]
    else:
        raise InvalidArgumentError(
            f"y has shape {y.shape}; expected ({n},) labels or ({n}, {c}) targets. Fix: pass "
            "integer labels or one-hot rows."
        )
    if not np.all(np.isfinite(t)):
        raise InvalidArgumentError("y contains NaN or inf. Fix: pass finite targets.")
    return t


def _loss_from_z(net: DenseNet, z: np.ndarray, t: np.ndarray, loss: str) -> np.ndarray:
    """Summed loss over the sample axis (-2) from output pre-activations ``z`` (..., n, c)."""
    f = net.activations[-1]
    if loss == "sse":
        return 0.5 * np.sum((activate(f, z) - t) ** 2, axis=(-2, -1))
    if f == "softmax":
        logp = z - z.max(axis=-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=-1, keepdims=True))
        return -np.sum(t * logp, axis=(-2, -1))
    # sigmoid outputs: binary cross-entropy per output, from logits (stable)
    return np.sum(np.logaddexp(0.0, z) - t * z, axis=(-2, -1))


def loss_value(model, x, y, *, loss: str = "auto") -> float:
    """The summed loss E over ``(x, y)``: SSE ``0.5 * sum (o - t)^2`` or cross-entropy.

    Example:
        >>> keras_legc.neurons.loss_value(model, x, y, loss="sse")
    """
    net = DenseNet.from_model(model)
    loss = _resolve_loss(net, loss)
    xs = net._as_input(x)
    t = _targets(net, y, len(xs))
    return float(_loss_from_z(net, net.forward(xs)[0][-1], t, loss))


def accuracy(model, x, y) -> float:
    """Classification accuracy of ``model`` (Keras or :class:`DenseNet`, masks applied) on x, y.

    Example:
        >>> keras_legc.neurons.accuracy(model, x_test, y_test)
    """
    net = DenseNet.from_model(model)
    out = net.output(x)
    y = np.asarray(y)
    pred = predicted_class(out)  # one output unit: above 0.5, a linear one too
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
    return float(np.mean(pred == labels))


def _check_xy(net: DenseNet, x, y, loss: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Scoring inputs as float64 rows, their float64 targets and the resolved loss."""
    xs = net._as_input(x)
    if len(xs) == 0:
        raise InvalidArgumentError("x is empty. Fix: pass at least one evaluation row.")
    loss = _resolve_loss(net, loss)
    return xs, _targets(net, y, len(xs)), loss


__all__ = ["LOSSES", "accuracy", "loss_value"]
