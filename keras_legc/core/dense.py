"""One numpy Dense stack: activations, the forward pass and the predicted class. Numpy only.

Shared by the research harness's SGD trainer (:class:`legc_research.mlp.MLP`, which adds its
gradients on top) and the neuron scorers (:class:`keras_legc.neurons.DenseNet`, which adds a
keep-mask per hidden layer and reads a Keras model into the stack).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_legc.errors import InvalidArgumentError

#: Activations the numpy stack computes (``softmax`` is meant for an output layer).
ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "softmax")


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """``f(z)`` for an activation of :data:`ACTIVATIONS` (softmax over the last axis).

    Example:
        >>> activate("relu", np.array([-1.0, 2.0]))
        array([0., 2.])
    """
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
    raise InvalidArgumentError(f"unknown activation {name!r}. Fix: use one of {ACTIVATIONS}.")


def activation_backward(d_out: np.ndarray, out: np.ndarray, name: str) -> np.ndarray:
    """Gradient w.r.t. the pre-activation from the gradient ``d_out`` w.r.t. the activation ``out``.

    The back-propagation step of SGD (softmax: the full Jacobian-vector product over the last
    axis); written in terms of the activation, which the forward pass already holds.

    Example:
        >>> activation_backward(np.ones(2), np.array([0.5, 0.5]), "sigmoid")
        array([0.25, 0.25])
    """
    if name == "sigmoid":
        return d_out * out * (1.0 - out)
    if name == "relu":
        return d_out * (out > 0)
    if name == "tanh":
        return d_out * (1.0 - out * out)
    if name == "softmax":
        return out * (d_out - np.sum(d_out * out, axis=-1, keepdims=True))
    return d_out


def activation_derivatives(
    name: str, z: np.ndarray, a: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise ``f'(z)`` and ``f''(z)`` given ``a = f(z)`` (not for softmax).

    The second-order Taylor scorer back-propagates both (see :func:`keras_legc.neurons.taylor2`).

    Example:
        >>> activation_derivatives("tanh", np.zeros(1), np.zeros(1))
        (array([1.]), array([-0.]))
    """
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
    raise InvalidArgumentError(
        f"no elementwise derivatives for activation {name!r}. Fix: use one of {ACTIVATIONS[:-1]}."
    )


def predicted_class(out: np.ndarray, *, logits: bool = False) -> np.ndarray:
    """The predicted class (int64) of each row of a network's output.

    Several output units: the argmax. One unit: class 1 where the output is above 0.5 (a
    probability, or a linear unit fitted to 0/1 targets), or above 0 when ``logits`` (a linear
    unit trained as a logit, e.g. with ``from_logits=True``).

    The rule for a single *linear* unit is the caller's choice, made here explicit: the numpy
    trainer and the neuron scorers fit linear units to 0/1 targets (``logits=False``), while
    :class:`keras_legc.WeightHistory` reads a linear Keras output as a logit (``logits=True``).

    Args:
        out: ``(n, units)`` or ``(n,)`` outputs.
        logits: one output unit holds a logit (threshold 0) rather than a probability (0.5).

    Example:
        >>> predicted_class(np.array([[0.2], [0.7]]))
        array([0, 1])
        >>> predicted_class(np.array([[-0.2], [0.3]]), logits=True)
        array([0, 1])
    """
    out = np.asarray(out)
    if out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(axis=1)
    threshold = 0.0 if logits else 0.5
    return (out.reshape(len(out)) > threshold).astype(np.int64)


class DenseStack:
    """A chain of Dense layers in numpy: ``kernels`` ``(in, out)``, ``biases`` ``(out,)`` and one
    activation name per layer, as attributes of the subclass.

    Subclasses may validate or convert inputs (:meth:`_as_input`) and force hidden units' outputs
    to 0 (:meth:`unit_masks`).

    Example:
        >>> class Net(DenseStack):
        ...     def __init__(self, kernels, biases, activations):
        ...         self.kernels, self.biases, self.activations = kernels, biases, activations
        >>> net = Net([np.ones((2, 3)), np.ones((3, 1))], [np.zeros(3), np.zeros(1)],
        ...           ["relu", "linear"])
        >>> net.output(np.ones((1, 2)))
        array([[6.]])
    """

    kernels: list[np.ndarray]
    biases: list[np.ndarray]
    activations: Sequence[str]

    def _as_input(self, x) -> np.ndarray:
        """``x`` as the first layer's input (subclasses check shapes or set the dtype)."""
        return np.asarray(x)

    def unit_masks(self) -> Sequence[np.ndarray] | None:
        """One 0/1 (or bool) array per hidden layer multiplying its outputs; None: no mask."""
        return None

    def forward(self, x, *, z0: np.ndarray | None = None) -> tuple[list, list]:
        """Pre-activations ``Z`` and (masked) activations ``A`` of every Dense layer.

        Args:
            x: inputs, ``(n, in)`` (or what :meth:`_as_input` accepts).
            z0: the first layer's pre-activations for ``x`` when already known (they do not
                depend on the masks), to skip the widest matmul; ``x`` is then ignored.

        Example:
            >>> zs, acts = net.forward(x)
            >>> acts[-1]                           # the output
        """
        a = None if z0 is not None else self._as_input(x)
        masks = self.unit_masks()
        n_hidden = len(self.kernels) - 1
        zs, acts = [], []
        for i, (w, b, f) in enumerate(
            zip(self.kernels, self.biases, self.activations, strict=True)
        ):
            z = z0 if (i == 0 and z0 is not None) else a @ w + b
            a = activate(f, z)
            if masks is not None and i < n_hidden:
                a = a * masks[i]
            zs.append(z)
            acts.append(a)
        return zs, acts

    def output(self, x) -> np.ndarray:
        """The network's output for ``x`` (masked units' outputs forced to 0)."""
        return self.forward(x)[1][-1]

    def predict(self, x, batch_size: int = 4096) -> np.ndarray:
        """:meth:`output` computed ``batch_size`` rows at a time (bounded memory)."""
        x = self._as_input(x)
        parts = [self.output(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, self.kernels[-1].shape[1]))


__all__ = [
    "ACTIVATIONS",
    "DenseStack",
    "activate",
    "activation_backward",
    "activation_derivatives",
    "predicted_class",
]
