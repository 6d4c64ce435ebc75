"""Neuron-level pruning without retraining: scorers, the removal loop, and ``shrink``.

Removing a hidden neuron of a Dense stack deletes a column of its kernel, one bias entry and a
row of the next kernel, so the model becomes genuinely smaller dense layers (fewer multiply-
accumulates on every runtime). This module follows Wolfe et al., *The Incredible Shrinking Neural
Network* (see ``../shared/spec/neuron-pruning.md``):

- a **neuron scorer** is a callable ``(model, x, y) -> NeuronScores`` giving one score per hidden
  unit of every hidden Dense layer (the output layer's units are never candidates); lower means
  "remove first". ``model`` is a Keras model or a :class:`DenseNet` (the numpy view that the
  removal loop passes, with the units removed so far masked). Built in: :func:`brute_force`
  (exact change of the loss, batched through a rank-1 update of the next pre-activations),
  :func:`taylor1`, :func:`taylor2` (the paper's diagonal second-order back-propagation),
  :func:`legc` (per-weight LEGC p-values aggregated to neurons) and :func:`random`;
- :func:`prune_neurons` ranks all hidden units together (one global ranking), single pass or with
  re-ranking after every removal, and stops at a count, a fraction or a maximum accuracy drop;
- :func:`shrink` returns a new, smaller plain Keras model without the removed units (optionally
  with their mean activations folded into the next layer's bias).

"Forcing a neuron's output to 0" is computed with numpy forward passes from the kernels (the model
must be a plain chain of Dense layers, with an optional Input/Flatten first); the numpy forward pass
is checked against ``model(x)`` when the view is built.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_legc.errors import InvalidArgumentError, MaskMismatchError, ModelStructureError

ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "softmax")
LOSSES = ("sse", "crossentropy")
DEFAULT_CHUNK_ELEMENTS = 1 << 23  # floats per batched block (64 MiB in float64)
_FORWARD_ATOL = 1e-5

NeuronScorer = Callable[[Any, np.ndarray, np.ndarray], "NeuronScores"]


# ---- the numpy view of a Dense stack --------------------------------------------------------------


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "linear":
        return z
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow warnings
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise AssertionError(name)  # pragma: no cover - checked at construction


def _act_derivatives(name: str, z: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise f'(z) and f''(z) given a = f(z) (hidden and elementwise output activations)."""
    if name == "linear":
        return np.ones_like(z), np.zeros_like(z)
    if name == "sigmoid":
        d1 = a * (1.0 - a)
        return d1, d1 * (1.0 - 2.0 * a)
    if name == "tanh":
        d1 = 1.0 - a * a
        return d1, -2.0 * a * d1
    if name == "relu":
        return (z > 0).astype(z.dtype), np.zeros_like(z)
    raise AssertionError(name)  # pragma: no cover


@dataclass
class DenseNet:
    """A plain chain of Dense layers as numpy arrays (float64), with a keep-mask per hidden layer.

    Build it with :meth:`from_model`; scorers receive it from :func:`prune_neurons` with the
    units removed so far masked (their outputs forced to 0).

    Attributes:
        names: Dense layer names, input to output.
        kernels, biases: float64 arrays ``(in, out)`` and ``(out,)``.
        activations: one of ``linear, sigmoid, tanh, relu`` (``softmax`` on the output only).
        keep: ``{hidden layer name: bool array}``, True where the unit is still present.
        input_shape: the model's input shape without the batch dimension (flattened in forward).

    Example:
        >>> net = DenseNet.from_model(model)
        >>> probs = net.output(x)              # equals model(x) to 1e-5
        >>> net.hidden                         # the candidate layers
    """

    names: list[str]
    kernels: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[str]
    keep: dict[str, np.ndarray]
    input_shape: tuple[int, ...]
    model_name: str = "model"

    @classmethod
    def from_model(cls, model, *, check: bool = True) -> DenseNet:
        """The numpy view of ``model`` (a plain chain of Dense layers), checked against Keras.

        Raises:
            ModelStructureError: when ``model`` is not a built Keras 2 model made of an optional
                Input/Flatten followed only by Dense layers with supported activations, or has
                fewer than two Dense layers (no hidden layer).
        """
        if isinstance(model, DenseNet):
            return model
        from keras_legc.keras.flavour import keras
        from keras_legc.keras.layers import dense_layers, is_pruning_wrapper

        k = keras()
        dense = dense_layers(model)  # Keras 2, built, Sequential/functional, unique names
        seen_dense = False
        for layer in model.layers:
            if is_pruning_wrapper(layer):
                raise ModelStructureError(
                    f"layer {layer.name!r} is a TF-MOT pruning wrapper. Fix: call "
                    "keras_legc.strip(model) first."
                )
            if isinstance(layer, k.layers.Dense):
                seen_dense = True
                continue
            if isinstance(layer, (k.layers.InputLayer, k.layers.Flatten)) and not seen_dense:
                continue
            raise ModelStructureError(
                f"neuron pruning needs a plain chain of Dense layers (optionally after an Input "
                f"and a Flatten), but model {model.name!r} has a {type(layer).__name__} layer "
                f"{layer.name!r}. Fix: prune a model of Dense layers only (remove Dropout/"
                "normalisation layers for inference, or rebuild the model without them)."
            )
        if len(dense) < 2:
            raise ModelStructureError(
                f"model {model.name!r} has {len(dense)} Dense layer(s) and so no hidden neuron to "
                "remove (the output layer's units are never removed). Fix: pass a model with at "
                "least one hidden Dense layer."
            )
        if isinstance(model.input_shape, list) or isinstance(model.output_shape, list):
            raise ModelStructureError(
                f"model {model.name!r} has several inputs or outputs. Fix: pass a single-input, "
                "single-output chain of Dense layers."
            )
        names, kernels, biases, acts = [], [], [], []
        for i, layer in enumerate(dense):
            act = getattr(layer.activation, "__name__", str(layer.activation))
            if act not in ACTIVATIONS or (act == "softmax" and i < len(dense) - 1):
                raise ModelStructureError(
                    f"Dense layer {layer.name!r} has activation {act!r}; neuron scoring supports "
                    f"{', '.join(ACTIVATIONS[:-1])} (and softmax on the output layer). Fix: use one "
                    "of these activations."
                )
            w = layer.kernel.numpy().astype(np.float64)
            b = (
                layer.bias.numpy().astype(np.float64)
                if layer.use_bias
                else np.zeros(w.shape[1], np.float64)
            )
            names.append(layer.name)
            kernels.append(w)
            biases.append(b)
            acts.append(act)
        for i in range(1, len(kernels)):
            if kernels[i].shape[0] != kernels[i - 1].shape[1]:
                raise ModelStructureError(
                    f"Dense layer {names[i]!r} takes {kernels[i].shape[0]} inputs but "
                    f"{names[i - 1]!r} has {kernels[i - 1].shape[1]} units: not a chain. Fix: "
                    "pass a sequential stack of Dense layers."
                )
        input_shape = tuple(int(d) for d in model.input_shape[1:])
        if any(d is None for d in model.input_shape[1:]) or int(np.prod(input_shape)) != len(
            kernels[0]
        ):
            raise ModelStructureError(
                f"model {model.name!r} has input shape {model.input_shape} but its first Dense "
                f"layer takes {len(kernels[0])} inputs. Fix: give the model a fixed Input shape "
                "and flatten it before the first Dense layer."
            )
        keep = {n: np.ones(w.shape[1], bool) for n, w in zip(names[:-1], kernels[:-1], strict=True)}
        net = cls(names, kernels, biases, acts, keep, input_shape, model.name)
        if check:
            probe = np.random.default_rng(0).uniform(0.0, 1.0, (8, *input_shape)).astype("float32")
            want = np.asarray(model(probe, training=False), dtype=np.float64)
            got = net.output(probe)
            if want.shape != got.shape or not np.allclose(got, want, rtol=0, atol=_FORWARD_ATOL):
                raise ModelStructureError(
                    f"the Dense layers of model {model.name!r} do not form a plain chain (a numpy "
                    "forward pass through them differs from model(x)). Fix: pass a model whose "
                    "Dense layers are applied one after another to the input."
                )
        return net

    # -- structure ----------------------------------------------------------------------------
    @property
    def hidden(self) -> list[str]:
        """The hidden Dense layers (candidates), input to output."""
        return self.names[:-1]

    @property
    def sizes(self) -> dict[str, int]:
        """Units per hidden layer in the original model."""
        return {n: int(len(self.keep[n])) for n in self.hidden}

    @property
    def n_hidden(self) -> int:
        return int(sum(self.sizes.values()))

    @property
    def n_kept(self) -> int:
        return int(sum(int(v.sum()) for v in self.keep.values()))

    def with_removed(self, removed: Mapping[str, Sequence[int]]) -> DenseNet:
        """A copy with these units also masked (``{layer: [unit indices]}``)."""
        keep = {n: v.copy() for n, v in self.keep.items()}
        for name, units in removed.items():
            keep[name][np.asarray(list(units), dtype=np.int64)] = False
        return DenseNet(
            self.names, self.kernels, self.biases, self.activations, keep, self.input_shape,
            self.model_name,
        )  # fmt: skip

    def macs(self) -> int:
        """Multiply-accumulates per sample of the network with the masked units removed."""
        widths = [len(self.kernels[0])] + [int(self.keep[n].sum()) for n in self.hidden]
        widths.append(self.kernels[-1].shape[1])
        return int(sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True)))

    # -- forward ------------------------------------------------------------------------------
    def _x(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != len(self.kernels[0]):
            raise InvalidArgumentError(
                f"inputs of shape {x.shape} do not fit model {self.model_name!r} (input shape "
                f"{self.input_shape}). Fix: pass rows of this model's inputs, shape (n, "
                f"{', '.join(map(str, self.input_shape))})."
            )
        x = x.reshape(len(x), -1).astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise InvalidArgumentError("the inputs contain NaN or inf. Fix: pass finite inputs.")
        return x

    def forward(self, x, *, z0: np.ndarray | None = None) -> tuple[list, list]:
        """Pre-activations ``Z`` and (masked) activations ``A`` of every Dense layer.

        ``z0``: the first layer's pre-activations for ``x`` when already known (they do not
        depend on the masks), to skip the widest matmul.
        """
        a = None if z0 is not None else self._x(x)
        zs, acts = [], []
        for i, (w, b, f) in enumerate(
            zip(self.kernels, self.biases, self.activations, strict=True)
        ):
            z = z0 if (i == 0 and z0 is not None) else a @ w + b
            a = _act(f, z)
            if i < len(self.hidden):
                a = a * self.keep[self.names[i]]
            zs.append(z)
            acts.append(a)
        return zs, acts

    def output(self, x) -> np.ndarray:
        """The network's output for ``x`` (masked units' outputs forced to 0)."""
        return self.forward(x)[1][-1]


# ---- losses and targets ----------------------------------------------------------------------------


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
        return 0.5 * np.sum((_act(f, z) - t) ** 2, axis=(-2, -1))
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
    xs = net._x(x)
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
    if out.shape[1] == 1:
        pred = (out[:, 0] > 0.5).astype(np.int64)
    else:
        pred = out.argmax(axis=1)
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
    return float(np.mean(pred == labels))


# ---- scores -----------------------------------------------------------------------------------------


class NeuronScores:
    """One score per hidden unit of every hidden Dense layer; lower = remove first.

    Units already removed (masked) carry NaN and never rank.

    Args:
        scores: ``{hidden layer name: float array (units,)}``, in layer order.
        method: the scorer's name.
        info: free-form details (loss, timings).

    Example:
        >>> s = keras_legc.neurons.brute_force()(model, x, y)
        >>> s.ranking()[:3]            # [("dense", 17), ("dense_1", 4), ...]
    """

    def __init__(self, scores: Mapping[str, np.ndarray], method: str, info: Mapping | None = None):
        self.scores = {
            str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()
        }
        self.method = str(method)
        self.info = dict(info or {})

    @property
    def layers(self) -> list[str]:
        return list(self.scores)

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.scores[layer]

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(layer index, unit index, score)`` of every unit, layers in order."""
        li = np.concatenate([np.full(len(v), i) for i, v in enumerate(self.scores.values())])
        ui = np.concatenate([np.arange(len(v)) for v in self.scores.values()])
        sv = np.concatenate(list(self.scores.values()))
        return li, ui, sv

    def ranking(self) -> list[tuple[str, int]]:
        """The global ranking ``[(layer name, unit), ...]``, lowest score first.

        Ties keep layer order, then unit order; NaN (removed) units are left out.
        """
        li, ui, sv = self.flat()
        ok = ~np.isnan(sv)
        order = np.lexsort((ui[ok], li[ok], sv[ok]))
        names = self.layers
        return [(names[int(li[ok][i])], int(ui[ok][i])) for i in order]

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "info": self.info,
            "scores": {
                k: [None if np.isnan(x) else float(x) for x in v] for k, v in self.scores.items()
            },
        }

    def __repr__(self) -> str:
        sizes = {k: len(v) for k, v in self.scores.items()}
        return f"NeuronScores(method={self.method!r}, layers={sizes})"


def _masked_nan(net: DenseNet, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {n: np.where(net.keep[n], np.asarray(values[n], np.float64), np.nan) for n in net.hidden}


def _check_xy(net: DenseNet, x, y, loss: str) -> tuple[np.ndarray, np.ndarray, str]:
    xs = net._x(x)
    if len(xs) == 0:
        raise InvalidArgumentError("x is empty. Fix: pass at least one evaluation row.")
    loss = _resolve_loss(net, loss)
    return xs, _targets(net, y, len(xs)), loss


# ---- brute force --------------------------------------------------------------------------------


class BruteForce:
    """Exact Delta E of forcing each remaining hidden unit's output to 0 (see :func:`brute_force`)."""

    static = False

    def __init__(
        self,
        loss: str = "auto",
        *,
        batched: bool = True,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ):
        if not isinstance(chunk_elements, (int, np.integer)) or chunk_elements < 1:
            raise InvalidArgumentError(
                f"chunk_elements must be a positive integer, got {chunk_elements!r}."
            )
        self.loss, self.batched, self.chunk_elements = loss, bool(batched), int(chunk_elements)
        self.name = "brute_force" if batched else "brute_force_naive"

    def __call__(self, model, x, y) -> NeuronScores:
        net = DenseNet.from_model(model)
        xs, t, loss = _check_xy(net, x, y, self.loss)
        t0 = time.perf_counter()
        zs, acts = net.forward(xs)
        base = float(_loss_from_z(net, zs[-1], t, loss))
        if self.batched:
            delta = self._batched(net, zs, acts, t, loss, base)
        else:
            delta = self._naive(net, xs, t, loss, base)
        info = {"loss": loss, "base_loss": base, "seconds": time.perf_counter() - t0}
        return NeuronScores(_masked_nan(net, delta), self.name, info)

    def _batched(self, net, zs, acts, t, loss, base) -> dict[str, np.ndarray]:
        n = len(t)
        out = {}
        widest = max(w.shape[1] for w in net.kernels)
        for li, name in enumerate(net.hidden):
            a, w_next = acts[li], net.kernels[li + 1]
            cand = np.flatnonzero(net.keep[name])
            delta = np.full(len(net.keep[name]), np.nan)
            step = max(1, self.chunk_elements // max(1, n * widest))
            for s in range(0, len(cand), step):
                c = cand[s : s + step]
                # rank-1 update of the next pre-activations: z' = z - a_j * W_next[j, :]
                z = zs[li + 1][None] - a[:, c].T[:, :, None] * w_next[c][:, None, :]
                for m in range(li + 1, len(net.names) - 1):
                    h = _act(net.activations[m], z) * net.keep[net.names[m]]
                    z = h @ net.kernels[m + 1] + net.biases[m + 1]
                delta[c] = _loss_from_z(net, z, t, loss) - base
            out[name] = delta
        return out

    def _naive(self, net, xs, t, loss, base) -> dict[str, np.ndarray]:
        """Reference: one full forward pass per candidate (what batching replaces)."""
        out = {}
        for name in net.hidden:
            delta = np.full(len(net.keep[name]), np.nan)
            for j in np.flatnonzero(net.keep[name]):
                z = net.with_removed({name: [j]}).forward(xs)[0][-1]
                delta[j] = _loss_from_z(net, z, t, loss) - base
            out[name] = delta
        return out


def brute_force(
    loss: str = "auto", *, batched: bool = True, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> BruteForce:
    """The exact scorer: Delta E_k = E(net with unit k's output forced to 0) - E(net).

    Batched (default): for hidden layer l with activations ``A`` and next pre-activations
    ``Z = A W + b``, removing unit j gives ``Z - A[:, j] W[j, :]``; every candidate of a layer is
    scored from the cached activations in one batched pass (in chunks of ``chunk_elements``
    floats), through the remaining layers. ``batched=False`` is the naive reference, one forward
    pass per candidate (same values to float rounding).

    Args:
        loss: ``"sse"`` (0.5 * sum of squared errors, the paper), ``"crossentropy"`` (softmax or
            sigmoid outputs) or ``"auto"`` (cross-entropy for softmax outputs, else SSE).
        batched: use the rank-1 batched computation.
        chunk_elements: bound on the floats of one batched block (memory).

    Returns:
        A scorer ``(model, x, y) -> NeuronScores``; a negative score means removal lowers E.

    Example:
        >>> scores = keras_legc.neurons.brute_force(loss="sse")(model, x, y)
        >>> scores.ranking()[0]                  # the unit whose removal hurts least
    """
    return BruteForce(loss, batched=batched, chunk_elements=chunk_elements)


# ---- Taylor ---------------------------------------------------------------------------------------


class Taylor:
    """First- or second-order Taylor estimate of Delta E (see :func:`taylor1`, :func:`taylor2`)."""

    static = False

    def __init__(self, order: int, loss: str = "auto"):
        if order not in (1, 2):
            raise InvalidArgumentError(f"order must be 1 or 2, got {order!r}.")
        self.order, self.loss = order, loss
        self.name = f"taylor{order}"

    def terms(self, model, x, y) -> tuple[dict, dict]:
        """``({layer: sum_n -O dE/dO}, {layer: sum_n 0.5 O^2 d2E/dO2})`` per hidden unit.

        d2E/dO2 is the paper's diagonal back-propagation (off-diagonal terms dropped).
        """
        net = DenseNet.from_model(model)
        xs, t, loss = _check_xy(net, x, y, self.loss)
        zs, acts = net.forward(xs)
        f_out, out = net.activations[-1], acts[-1]
        if loss == "crossentropy":  # softmax-CE or sigmoid-BCE, wrt logits; diag of the Hessian
            g = out - t
            h = out * (1.0 - out)
        elif f_out == "softmax":
            raise InvalidArgumentError(
                "Taylor scores with loss='sse' need an elementwise output activation, but the "
                "output layer is softmax (its Jacobian is not diagonal). Fix: use "
                "loss='crossentropy' (or 'auto') for softmax outputs."
            )
        else:
            d1, d2 = _act_derivatives(f_out, zs[-1], out)
            g_o = out - t
            g = g_o * d1
            h = d1 * d1 + g_o * d2
        first, second = {}, {}
        for li in range(len(net.hidden) - 1, -1, -1):
            name, w = net.hidden[li], net.kernels[li + 1]
            g_a = g @ w.T
            h_a = h @ (w * w).T
            a = acts[li]
            first[name] = -np.sum(a * g_a, axis=0)
            second[name] = 0.5 * np.sum(a * a * h_a, axis=0)
            d1, d2 = _act_derivatives(
                net.activations[li], zs[li], _act(net.activations[li], zs[li])
            )
            keep = net.keep[name]
            g = g_a * d1 * keep
            h = (h_a * d1 * d1 + g_a * d2) * keep
        order = net.hidden
        return {n: first[n] for n in order}, {n: second[n] for n in order}

    def __call__(self, model, x, y) -> NeuronScores:
        net = DenseNet.from_model(model)
        t0 = time.perf_counter()
        first, second = self.terms(net, x, y)
        est = first if self.order == 1 else {n: first[n] + second[n] for n in first}
        info = {"loss": _resolve_loss(net, self.loss), "seconds": time.perf_counter() - t0}
        return NeuronScores(_masked_nan(net, est), self.name, info)


def taylor1(loss: str = "auto") -> Taylor:
    """First-order Taylor (Skeletonization): Delta E_k ~ sum over patterns of -O_k dE/dO_k.

    Works for sigmoid, tanh, ReLU and linear hidden layers with SSE on elementwise outputs, and
    cross-entropy on softmax (or sigmoid) outputs.

    Example:
        >>> scores = keras_legc.neurons.taylor1()(model, x, y)
    """
    return Taylor(1, loss)


def taylor2(loss: str = "auto") -> Taylor:
    """Second-order Taylor (the paper): first order + sum of 0.5 O_k^2 d2E/dO_k^2.

    The diagonal second derivatives are back-propagated as in the paper: at the output
    ``d2E/dz2 = f'(z)^2 + (o - t) f''(z)`` for SSE (``p(1 - p)`` for softmax/sigmoid with
    cross-entropy, the diagonal of the Hessian wrt the logits); down a layer
    ``d2E/do_j2 = sum_i d2E/dz_i2 w_ji^2``; through an activation
    ``d2E/dz2 = d2E/do2 f'(z)^2 + dE/do f''(z)`` (ReLU: f'' = 0). No clipping of large estimates.

    Example:
        >>> scores = keras_legc.neurons.taylor2(loss="sse")(model, x, y)
    """
    return Taylor(2, loss)


# ---- LEGC and random --------------------------------------------------------------------------------


class LegcNeurons:
    """Per-weight LEGC p-values aggregated to neurons (see :func:`legc`)."""

    static = True

    def __init__(self, scores, how: str = "mean_p", alpha: float = 0.05):
        from keras_legc.core.scoring import Scores

        if not isinstance(scores, Scores):
            raise InvalidArgumentError(
                f"legc() needs a keras_legc.Scores (from keras_legc.score), got "
                f"{type(scores).__name__}. Fix: score the recorded history first."
            )
        if how not in ("mean_p", "fraction_noncausal"):
            raise InvalidArgumentError(
                f"how must be 'mean_p' or 'fraction_noncausal', got {how!r}."
            )
        self.weight_scores, self.how, self.alpha = scores, how, float(alpha)
        self.name = f"legc_{how}"

    def __call__(self, model, x=None, y=None) -> NeuronScores:
        net = DenseNet.from_model(model)
        sig = {n: tuple(w.shape) for n, w in zip(net.names, net.kernels, strict=True)}
        s = self.weight_scores
        if s.layers != net.names or any(tuple(s.shapes[n]) != sig[n] for n in net.names):
            raise MaskMismatchError(
                f"the LEGC scores are for layers {s.shapes}, but the model has {sig}. Fix: score "
                "the history recorded while training this model."
            )
        evidence = s.evidence
        from keras_legc.core._layout import split_by_layer

        p = split_by_layer(evidence, s.layers, s.shapes)
        out = {}
        for li, name in enumerate(net.hidden):
            # incoming weights: column j of this kernel; outgoing: row j of the next kernel
            inc, outg = p[name], p[net.names[li + 1]]
            vals = np.concatenate([inc, outg.T], axis=0)  # (fan_in + fan_out, units)
            valid = ~np.isnan(vals)
            n_valid = valid.sum(axis=0)
            if self.how == "mean_p":
                total = np.where(valid, vals, 0.0).sum(axis=0)
                stat = np.divide(total, n_valid, out=np.zeros(len(n_valid)), where=n_valid > 0)
            else:
                nonc = (np.where(valid, vals, 0.0) >= self.alpha) & valid
                stat = np.divide(
                    nonc.sum(axis=0), n_valid, out=np.zeros(len(n_valid)), where=n_valid > 0
                )
            out[name] = -stat  # more non-causal = lower score = removed first
        info = {"how": self.how, "alpha": self.alpha}
        return NeuronScores(_masked_nan(net, out), self.name, info)


def legc(scores, *, how: str = "mean_p", alpha: float = 0.05) -> LegcNeurons:
    """Aggregate per-weight LEGC evidence (a :class:`keras_legc.Scores`) to hidden neurons.

    A neuron's weights are its incoming kernel column and its outgoing row of the next kernel.

    Args:
        scores: ``keras_legc.score(history)`` for this model (same layers and kernel shapes).
        how: ``"mean_p"`` (default): score = -(mean p-value, q-value with ``fdr=True``, of the
            neuron's weights), so the least causal neuron goes first; ``"fraction_noncausal"``:
            score = -(fraction of its weights with p >= alpha). Degenerate weights (no valid test,
            NaN) are left out of the mean; a neuron with none valid scores 0 (kept longest).
        alpha: the threshold of ``"fraction_noncausal"``.

    Example:
        >>> scorer = keras_legc.neurons.legc(keras_legc.score(recorder.history))
        >>> record = keras_legc.prune_neurons(model, scorer, x, y, fraction=0.5)
    """
    return LegcNeurons(scores, how, alpha)


class RandomNeurons:
    """Uniform random scores (a baseline; see :func:`random`)."""

    static = True

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = "random"

    def __call__(self, model, x=None, y=None) -> NeuronScores:
        net = DenseNet.from_model(model)
        rng = np.random.default_rng(self.seed)
        vals = {n: rng.random(len(net.keep[n])) for n in net.hidden}
        return NeuronScores(_masked_nan(net, vals), self.name, {"seed": self.seed})


def random(seed: int = 0) -> RandomNeurons:
    """A random global ranking of the hidden units (the baseline), fixed by ``seed``.

    Example:
        >>> record = keras_legc.prune_neurons(model, keras_legc.neurons.random(0), x, y, n=10)
    """
    return RandomNeurons(seed)


SCORERS = {
    "brute_force": brute_force,
    "taylor1": taylor1,
    "taylor2": taylor2,
    "random": random,
}


def get_scorer(scorer, loss: str = "auto") -> NeuronScorer:
    """A scorer from a name (``brute_force``, ``taylor1``, ``taylor2``, ``random``) or itself."""
    if isinstance(scorer, str):
        if scorer not in SCORERS:
            raise InvalidArgumentError(
                f"unknown neuron scorer {scorer!r}. Fix: use one of {sorted(SCORERS)}, or pass a "
                "callable (model, x, y) -> NeuronScores (LEGC: keras_legc.neurons.legc(scores))."
            )
        return random(0) if scorer == "random" else SCORERS[scorer](loss)
    if not callable(scorer):
        raise InvalidArgumentError(
            f"scorer must be a callable (model, x, y) -> NeuronScores or a name, got "
            f"{type(scorer).__name__}."
        )
    return scorer


# ---- the removal loop ------------------------------------------------------------------------------

FORMAT = "keras_legc.neuron_removal"
FORMAT_VERSION = 1


@dataclass
class NeuronPruning:
    """What :func:`prune_neurons` removed, in order, and the accuracy after each removal.

    Attributes:
        removed: ``[(layer name, unit), ...]`` in removal order.
        accuracy: validation accuracy after 0, 1, ..., len(removed) removals.
        loss: the scorer-side loss E on the scoring data after each removal (same length).
        sizes: units per hidden layer of the original model.
        method, iterative, info: how it was made.

    Example:
        >>> rec = keras_legc.prune_neurons(model, "brute_force", x, y, fraction=0.5)
        >>> small = keras_legc.shrink(model, rec)          # or rec.as_dict()
    """

    removed: list[tuple[str, int]]
    accuracy: np.ndarray
    loss: np.ndarray
    sizes: dict[str, int]
    method: str
    iterative: bool
    info: dict = field(default_factory=dict)
    first_scores: NeuronScores | None = None

    @property
    def n_hidden(self) -> int:
        return int(sum(self.sizes.values()))

    @property
    def fraction_removed(self) -> np.ndarray:
        """Fraction of hidden units removed at each point of ``accuracy``."""
        return np.arange(len(self.removed) + 1) / self.n_hidden

    def as_dict(self, n: int | None = None) -> dict[str, list[int]]:
        """``{layer: sorted unit indices}`` of the first ``n`` removals (all by default)."""
        out: dict[str, list[int]] = {}
        for name, unit in self.removed[: len(self.removed) if n is None else n]:
            out.setdefault(name, []).append(int(unit))
        return {k: sorted(v) for k, v in out.items()}

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "removed": [[n, int(u)] for n, u in self.removed],
            "accuracy": [float(a) for a in self.accuracy],
            "loss": [float(v) for v in self.loss],
            "sizes": self.sizes,
            "method": self.method,
            "iterative": self.iterative,
            "info": self.info,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the record as JSON, atomically; refuses to overwrite unless ``overwrite``."""
        from keras_legc._io import atomic_write_json

        return atomic_write_json(path, self.to_json(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NeuronPruning:
        """Read a record written by :meth:`save`."""
        try:
            d = json.loads(Path(path).read_text())
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}")
            return cls(
                [(str(n), int(u)) for n, u in d["removed"]], np.asarray(d["accuracy"]),
                np.asarray(d["loss"]), {k: int(v) for k, v in d["sizes"].items()}, d["method"],
                bool(d["iterative"]), d.get("info", {}),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidArgumentError(
                f"{path} is not a readable neuron removal record ({exc}). Fix: pass a file "
                "written by NeuronPruning.save (legc neurons remove --out)."
            ) from exc


def _count(n, fraction, max_drop, total, n_layers) -> tuple[int, float | None]:
    given = [v is not None for v in (n, fraction, max_drop)]
    if sum(given) != 1:
        raise InvalidArgumentError(
            "give exactly one stopping rule: n (a neuron count), fraction (of the hidden neurons) "
            "or max_drop (largest allowed drop in validation accuracy). Fix: pass one of them."
        )
    limit = total - n_layers  # at least one unit stays in every hidden layer
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InvalidArgumentError(f"n must be a non-negative integer, got {n!r}.")
        count = int(n)
    elif fraction is not None:
        if not isinstance(fraction, (int, float)) or not (0.0 <= fraction < 1.0):
            raise InvalidArgumentError(
                f"fraction must be in [0, 1), got {fraction!r}. Fix: pass e.g. 0.5 to remove half "
                "of the hidden neurons."
            )
        count = int(round(fraction * total))
    else:
        if not isinstance(max_drop, (int, float)) or not (0.0 <= max_drop <= 1.0):
            raise InvalidArgumentError(
                f"max_drop must be an accuracy difference in [0, 1], got {max_drop!r}. Fix: pass "
                "e.g. 0.01 for at most one point of accuracy."
            )
        return limit, float(max_drop)
    if count > limit:
        raise InvalidArgumentError(
            f"cannot remove {count} of {total} hidden neurons: every hidden layer keeps at least "
            f"one unit ({n_layers} layers), so at most {limit} can go. Fix: ask for fewer."
        )
    return count, None


def prune_neurons(
    model,
    scorer: NeuronScorer | str,
    x,
    y,
    *,
    n: int | None = None,
    fraction: float | None = None,
    max_drop: float | None = None,
    x_val=None,
    y_val=None,
    iterative: bool = True,
    loss: str = "auto",
) -> NeuronPruning:
    """Remove hidden neurons by a global ranking, without retraining.

    Single pass (``iterative=False``): score once, remove down the ranking. Iterative: re-score
    the pruned network after every removal and remove the lowest-scored unit (the paper's
    headline setting). Scorers marked ``static`` (LEGC, random) are scored once either way. The
    last remaining unit of a layer is never removed.

    Args:
        model: a Keras model (plain chain of Dense layers) or a :class:`DenseNet`.
        scorer: a callable ``(model, x, y) -> NeuronScores`` or a name (``"brute_force"``,
            ``"taylor1"``, ``"taylor2"``, ``"random"``).
        x, y: the data the scorer evaluates (e.g. the training set or a subsample).
        n, fraction, max_drop: exactly one stopping rule: a count, a fraction of all hidden
            units, or the largest allowed drop in validation accuracy (removal stops before the
            first step that would exceed it).
        x_val, y_val: data for the accuracy curve and ``max_drop`` (default: x, y).
        iterative: re-rank after every removal.
        loss: the loss recorded in the curve (and used by scorers given by name).

    Returns:
        :class:`NeuronPruning`.

    Example:
        >>> rec = keras_legc.prune_neurons(model, "brute_force", x_tr, y_tr, fraction=0.5,
        ...                                x_val=x_te, y_val=y_te)
        >>> rec.accuracy[-1], rec.as_dict()
    """
    scorer = get_scorer(scorer, loss)
    net = DenseNet.from_model(model)
    xs, t, loss = _check_xy(net, x, y, loss)
    if (x_val is None) != (y_val is None):
        raise InvalidArgumentError("pass both x_val and y_val, or neither.")
    if x_val is None:
        x_val, y_val = xs, y
    xv = net._x(x_val)
    _targets(net, y_val, len(xv))  # validates y_val
    count, drop = _count(n, fraction, max_drop, net.n_hidden, len(net.hidden))
    static = bool(getattr(scorer, "static", False))
    t0 = time.perf_counter()

    z0_x = xs @ net.kernels[0] + net.biases[0]  # unchanged by removals: computed once
    z0_v = xv @ net.kernels[0] + net.biases[0]
    labels_v = (
        _targets(net, y_val, len(xv)).argmax(axis=1) if net.kernels[-1].shape[1] > 1 else None
    )

    def evaluate(cur):
        out = cur.forward(None, z0=z0_v)[1][-1]
        if labels_v is None:
            acc = float(np.mean((out[:, 0] > 0.5) == (np.asarray(y_val).reshape(-1) > 0.5)))
        else:
            acc = float(np.mean(out.argmax(axis=1) == labels_v))
        return acc, float(_loss_from_z(cur, cur.forward(None, z0=z0_x)[0][-1], t, loss))

    acc0, loss0 = evaluate(net)
    accs, losses, removed = [acc0], [loss0], []
    first = None
    queue: list[tuple[str, int]] = []
    while len(removed) < count:
        if not queue or (iterative and not static):
            scores = scorer(net, xs, y)
            if not isinstance(scores, NeuronScores):
                raise InvalidArgumentError(
                    f"the scorer returned {type(scores).__name__}, not NeuronScores. Fix: return "
                    "keras_legc.neurons.NeuronScores({layer: scores}, 'name')."
                )
            if scores.layers != net.hidden:
                raise InvalidArgumentError(
                    f"the scorer scored layers {scores.layers}, the model's hidden layers are "
                    f"{net.hidden}. Fix: return one score array per hidden Dense layer."
                )
            first = first or scores
            queue = [(ln, u) for ln, u in scores.ranking() if net.keep[ln][u]]
        pick = None
        while queue:
            ln, u = queue.pop(0)
            if net.keep[ln][u] and net.keep[ln].sum() > 1:
                pick = (ln, u)
                break
        if pick is None:
            break  # only last units of layers remain
        trial = net.with_removed({pick[0]: [pick[1]]})
        acc, lv = evaluate(trial)
        if drop is not None and acc0 - acc > drop + 1e-12:
            break
        net = trial
        removed.append(pick)
        accs.append(acc)
        losses.append(lv)
    info = {
        "loss": loss,
        "seconds": time.perf_counter() - t0,
        "n_eval": int(len(xs)),
        "n_val": int(len(xv)),
        "stop": {"n": n, "fraction": fraction, "max_drop": max_drop},
    }
    return NeuronPruning(
        removed, np.asarray(accs), np.asarray(losses), net.sizes,
        getattr(scorer, "name", type(scorer).__name__), bool(iterative and not static), info,
        first,
    )  # fmt: skip


# ---- shrink --------------------------------------------------------------------------------------


def _removal_map(net: DenseNet, remove) -> dict[str, np.ndarray]:
    if isinstance(remove, NeuronPruning):
        remove = remove.as_dict()
    if not isinstance(remove, Mapping):
        raise InvalidArgumentError(
            f"remove must map Dense layer names to unit indices (or be a NeuronPruning record), "
            f"got {type(remove).__name__}. Fix: pass e.g. {{'dense': [3, 7]}}."
        )
    out = {}
    for name, units in remove.items():
        if name not in net.names:
            raise InvalidArgumentError(
                f"no Dense layer named {name!r} in model {net.model_name!r} (its Dense layers: "
                f"{net.names}). Fix: use the model's layer names."
            )
        if name == net.names[-1]:
            raise InvalidArgumentError(
                f"{name!r} is the output layer; its units are the model's outputs and cannot be "
                "removed. Fix: remove units of hidden layers only."
            )
        idx = np.asarray(list(units))
        if idx.size and (
            not np.issubdtype(idx.dtype, np.integer)
            or idx.min() < 0
            or idx.max() >= net.sizes[name]
        ):
            raise InvalidArgumentError(
                f"unit indices for layer {name!r} must be integers in 0..{net.sizes[name] - 1}, "
                f"got {idx.tolist()[:10]}. Fix: pass valid unit indices."
            )
        idx = np.unique(idx.astype(np.int64))
        if len(idx) >= net.sizes[name]:
            raise InvalidArgumentError(
                f"removing all {net.sizes[name]} units of layer {name!r} would disconnect the "
                "network. Fix: keep at least one unit in every hidden layer."
            )
        out[name] = idx
    return out


def _mean_activations(net: DenseNet, rm: Mapping[str, np.ndarray], x) -> dict[str, np.ndarray]:
    """Mean activation of each removed unit, in the network where earlier removed units already
    output their means (so that folding reproduces 'units replaced by their mean')."""
    a = net._x(x)
    means = {}
    for i, name in enumerate(net.names[:-1]):
        a = _act(net.activations[i], a @ net.kernels[i] + net.biases[i])
        if name in rm and len(rm[name]):
            m = a[:, rm[name]].mean(axis=0)
            means[name] = m
            a[:, rm[name]] = m
    return means


def shrink(model, remove, *, fold_mean_activations=None):
    """A new, smaller plain Keras model without the given hidden units.

    Kernels and biases are sliced; the result's outputs equal the original's with those units'
    outputs forced to 0 (to float tolerance). With ``fold_mean_activations=x``, each removed
    unit's mean activation over ``x`` times its outgoing weights is added to the next layer's
    bias instead, so the result equals the original with those units replaced by their mean.

    Args:
        model: a tf.keras model, a plain chain of Dense layers (optional Input/Flatten first).
        remove: ``{Dense layer name: [unit indices]}`` or the :class:`NeuronPruning` record of
            :func:`prune_neurons`.
        fold_mean_activations: inputs ``x`` to fold removed units' mean activations, or None.

    Returns:
        A new ``tf.keras.Sequential`` with the same layer names, activations and configuration,
        fewer units; it exports to TFLite like any model.

    Raises:
        InvalidArgumentError: unknown layer, the output layer, bad indices, or all units of a
            layer (the network would be disconnected).

    Example:
        >>> small = keras_legc.shrink(model, {"dense": [0, 5, 9]})
        >>> small.count_params() < model.count_params()
        True
    """
    from keras_legc.keras.flavour import keras

    k = keras()
    net = DenseNet.from_model(model)
    rm = _removal_map(net, remove)
    means = (
        _mean_activations(net, rm, fold_mean_activations)
        if fold_mean_activations is not None
        else {}
    )
    keep = {n: np.setdiff1d(np.arange(net.sizes[n]), rm.get(n, [])) for n in net.hidden}
    dense = {layer.name: layer for layer in model.layers if isinstance(layer, k.layers.Dense)}
    layers = [k.layers.Input(shape=net.input_shape)]
    if len(net.input_shape) > 1 or any(isinstance(la, k.layers.Flatten) for la in model.layers):
        layers.append(k.layers.Flatten())
    weights = []
    for i, name in enumerate(net.names):
        w, b = net.kernels[i], net.biases[i]
        if i > 0 and net.names[i - 1] in keep:
            prev = net.names[i - 1]
            if prev in means:
                b = b + means[prev] @ w[rm[prev]]
            w = w[keep[prev]]
        if name in keep:
            w, b = w[:, keep[name]], b[keep[name]]
        cfg = dense[name].get_config()
        cfg["units"] = int(w.shape[1])
        use_bias = bool(cfg.get("use_bias", True)) or bool(np.any(b != 0))
        cfg["use_bias"] = use_bias
        layers.append(k.layers.Dense.from_config(cfg))
        dtype = dense[name].kernel.dtype.as_numpy_dtype
        weights.append([w.astype(dtype)] + ([b.astype(dtype)] if use_bias else []))
    small = k.Sequential(layers, name=f"{model.name}_shrunk")
    for layer, ws in zip(
        [la for la in small.layers if isinstance(la, k.layers.Dense)], weights, strict=True
    ):
        layer.set_weights(ws)
    return small


def count_macs(model) -> int:
    """Multiply-accumulates per sample of the Dense layers of ``model`` (Keras or DenseNet).

    Example:
        >>> keras_legc.neurons.count_macs(small) / keras_legc.neurons.count_macs(model)
    """
    return DenseNet.from_model(model, check=False).macs()


__all__ = [
    "DenseNet",
    "NeuronScores",
    "NeuronPruning",
    "BruteForce",
    "Taylor",
    "LegcNeurons",
    "RandomNeurons",
    "brute_force",
    "taylor1",
    "taylor2",
    "legc",
    "random",
    "get_scorer",
    "prune_neurons",
    "shrink",
    "accuracy",
    "loss_value",
    "count_macs",
]
