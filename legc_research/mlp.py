"""A plain numpy multilayer perceptron trained by SGD, with a fixed mask and a per-step hook.

The paper's protocol trains tiny sigmoid networks with batch size 1 for tens of thousands of
steps. Through ``model.fit`` every step costs about a millisecond of framework overhead; here it
costs microseconds, with the same math as ``tf_keras`` (``Dense`` layers, ``SGD`` without momentum,
``mean_squared_error`` or cross-entropy averaged over the batch and the outputs). The tests check
one epoch against ``tf_keras``'s ``fit`` to float tolerance.

Numpy only: :meth:`MLP.to_keras` builds the equivalent Keras model when one is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from keras_legc.core.dense import DenseStack, activation_backward, predicted_class
from keras_legc.errors import InvalidArgumentError, MaskMismatchError, NonFiniteError

ACTIVATIONS = ("sigmoid", "relu", "tanh", "softmax", "linear")  # those the trainer back-propagates
LOSSES = ("mse", "crossentropy")
INITS = ("normal", "torch", "glorot")


@dataclass(frozen=True)
class MLPSpec:
    """The architecture and loss of an :class:`MLP`.

    Args:
        sizes: ``(inputs, hidden_1, ..., outputs)``.
        activations: one per layer (``len(sizes) - 1``), from ``sigmoid relu tanh softmax linear``.
        loss: ``"mse"`` (mean over batch and outputs, as Keras and PyTorch) or ``"crossentropy"``
            (softmax output: categorical; one sigmoid output: binary).
        names: Dense layer names (default ``dense, dense_1, ...`` as Keras names them).
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str = "mse"
    names: tuple[str, ...] = field(default=())

    def __post_init__(self):
        sizes = tuple(int(s) for s in self.sizes)
        acts = tuple(self.activations)
        if len(sizes) < 2 or min(sizes) < 1:
            raise InvalidArgumentError(
                f"sizes must list at least inputs and outputs, all >= 1; got {self.sizes}. "
                "Fix: pass e.g. (9, 6, 1)."
            )
        if len(acts) != len(sizes) - 1 or any(a not in ACTIVATIONS for a in acts):
            raise InvalidArgumentError(
                f"activations must give one of {ACTIVATIONS} per layer ({len(sizes) - 1}); got "
                f"{acts}. Fix: e.g. ('sigmoid', 'sigmoid')."
            )
        if self.loss not in LOSSES:
            raise InvalidArgumentError(f"loss must be one of {LOSSES}, got {self.loss!r}.")
        if self.loss == "crossentropy" and not (
            acts[-1] == "softmax" or (acts[-1] == "sigmoid" and sizes[-1] == 1)
        ):
            raise InvalidArgumentError(
                "crossentropy needs a softmax output or a single sigmoid output. Fix: change the "
                "last activation or use loss='mse'."
            )
        names = tuple(self.names) or tuple(
            "dense" if i == 0 else f"dense_{i}" for i in range(len(acts))
        )
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "names", names)

    @property
    def n_layers(self) -> int:
        return len(self.activations)

    @property
    def n_weights(self) -> int:
        """Number of kernel weights (biases are not counted: they are never pruned)."""
        return sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))


class MLP(DenseStack):
    """Kernels and biases of a Dense stack, with gradients for SGD in numpy.

    The forward pass, :meth:`predict` and the activations are the shared numpy
    :class:`~keras_legc.core.dense.DenseStack`; this class adds the initialisations, the
    gradients of the training loss and the conversion to Keras.

    Args:
        spec: the :class:`MLPSpec`.
        kernels: one ``(in, out)`` array per layer (Keras layout).
        biases: one ``(out,)`` array per layer.
        dtype: float64 (default; tiny batch-1 nets cost the same either way) or float32 (twice
            as fast for MNIST-sized matmuls, the precision Keras trains in).

    Example:
        >>> spec = MLPSpec((4, 8, 3), ("sigmoid", "sigmoid"))
        >>> net = MLP.init(spec, seed=0, scheme="normal")
        >>> net.predict(np.zeros((2, 4))).shape
        (2, 3)
    """

    def __init__(
        self,
        spec: MLPSpec,
        kernels: Sequence[np.ndarray],
        biases: Sequence[np.ndarray],
        dtype=np.float64,
    ):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.kernels = [np.array(k, dtype=self.dtype) for k in kernels]
        self.biases = [np.array(b, dtype=self.dtype) for b in biases]
        for i, (k, b) in enumerate(zip(self.kernels, self.biases, strict=True)):
            want = (spec.sizes[i], spec.sizes[i + 1])
            if k.shape != want or b.shape != (want[1],):
                raise InvalidArgumentError(
                    f"layer {i}: kernel {k.shape} / bias {b.shape} do not match sizes "
                    f"{spec.sizes} (want {want} / ({want[1]},))."
                )

    @classmethod
    def init(cls, spec: MLPSpec, seed: int, scheme: str = "normal", dtype=np.float64) -> MLP:
        """Fresh weights: ``normal`` N(0, 1) (the paper's tabular nets), ``torch`` (PyTorch's
        ``nn.Linear`` default, U(+-1/sqrt(fan_in)) for kernels and biases; the paper's MNIST net)
        or ``glorot`` (Keras' default: Glorot-uniform kernels, zero biases)."""
        if scheme not in INITS:
            raise InvalidArgumentError(f"scheme must be one of {INITS}, got {scheme!r}.")
        rng = np.random.default_rng(seed)
        kernels, biases = [], []
        for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:], strict=True):
            if scheme == "normal":
                kernels.append(rng.normal(size=(fan_in, fan_out)))
                biases.append(rng.normal(size=fan_out))
            elif scheme == "torch":
                bound = 1.0 / np.sqrt(fan_in)
                kernels.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)))
                biases.append(rng.uniform(-bound, bound, size=fan_out))
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                kernels.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)))
                biases.append(np.zeros(fan_out))
        return cls(spec, kernels, biases, dtype)

    def copy(self) -> MLP:
        return MLP(self.spec, self.kernels, self.biases, self.dtype)

    def kernel_dict(self) -> dict[str, np.ndarray]:
        """``{layer name: kernel}`` (copies), the form masks and scores use."""
        return {n: k.copy() for n, k in zip(self.spec.names, self.kernels, strict=True)}

    @property
    def n_nonzero(self) -> int:
        """Non-zero kernel weights (the paper's "Flops")."""
        return int(sum(np.count_nonzero(k) for k in self.kernels))

    @property
    def activations(self) -> tuple[str, ...]:
        return self.spec.activations

    # -- forward / backward ---------------------------------------------------------------------
    def _as_input(self, x) -> np.ndarray:
        return np.asarray(x, dtype=self.dtype)

    def classify(self, x: np.ndarray) -> np.ndarray:
        """Predicted class: ``output > 0.5`` for one output unit (a linear one too), else the
        argmax."""
        return predicted_class(self.predict(x))

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.classify(x) == np.asarray(labels)))

    def gradients(self, x: np.ndarray, target: np.ndarray) -> tuple[list, list]:
        """Gradients of the mean loss over the batch (and, for MSE, over the outputs)."""
        x = self._as_input(x)
        outs = [x, *self.forward(x)[1]]  # activations of every layer, input first
        p = outs[-1]
        batch, n_out = p.shape
        act = self.spec.activations[-1]
        if self.spec.loss == "mse":
            dp = (2.0 / (batch * n_out)) * (p - target)
            dz = activation_backward(dp, p, act)
        else:  # softmax + categorical CE, or one sigmoid + binary CE: the same simple form
            dz = (p - target) / batch
        g_kernels, g_biases = [None] * self.spec.n_layers, [None] * self.spec.n_layers
        for i in range(self.spec.n_layers - 1, -1, -1):
            g_kernels[i] = outs[i].T @ dz
            g_biases[i] = dz.sum(axis=0)
            if i:
                dz = activation_backward(
                    dz @ self.kernels[i].T, outs[i], self.spec.activations[i - 1]
                )
        return g_kernels, g_biases

    def to_keras(self):
        """The equivalent ``tf_keras`` Sequential model (float32 weights), uncompiled."""
        from keras_legc.keras.flavour import keras

        k = keras()
        layers = [k.layers.Input(shape=(self.spec.sizes[0],))]
        for n, act, size in zip(
            self.spec.names, self.spec.activations, self.spec.sizes[1:], strict=True
        ):
            layers.append(k.layers.Dense(size, activation=act, name=n))
        model = k.Sequential(layers)
        weights = []
        for kern, bias in zip(self.kernels, self.biases, strict=True):
            weights += [kern.astype(np.float32), bias.astype(np.float32)]
        model.set_weights(weights)
        return model


def one_hot_targets(labels: np.ndarray, n_outputs: int) -> np.ndarray:
    """Training targets: a 0/1 column for one output unit, one-hot rows otherwise."""
    labels = np.asarray(labels, dtype=np.int64)
    if n_outputs == 1:
        return labels.reshape(-1, 1).astype(np.float64)
    return np.eye(n_outputs)[labels]


@dataclass
class TrainResult:
    """What :func:`train` did: epochs run, whether the threshold was reached, accuracy per epoch."""

    epochs: int
    reached: bool
    train_accuracy: list[float]
    steps: int
    threshold_epoch: int | None = None
    at_threshold: MLP | None = None


def train(
    net: MLP,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    lr: float,
    batch_size: int,
    max_epochs: int,
    seed: int,
    threshold: float | None = None,
    mask: Mapping[str, np.ndarray] | None = None,
    on_step: Callable[[MLP], None] | None = None,
    min_epochs: int = 0,
) -> TrainResult:
    """Train ``net`` in place with plain SGD (no momentum), shuffling every epoch.

    Args:
        net: the network; its kernels are multiplied by ``mask`` before the first step.
        x, labels: training inputs and integer class labels.
        lr: learning rate.
        batch_size: samples per step (the paper: 1 for tabular data, 128 for MNIST).
        max_epochs: cap on epochs.
        seed: shuffling seed (the same seed gives the same order of samples for every method,
            so paired comparisons differ only by the mask).
        threshold: stop after the first epoch whose training accuracy is >= this (the paper's
            stopping rule); None trains ``max_epochs`` epochs.
        mask: ``{layer: 0/1 kernel-shaped array}``: pruned weights start at 0 and get no update,
            so they stay exactly 0 after every step.
        on_step: called with ``net`` after every step (a weight recorder).
        min_epochs: keep training (recording) past the threshold until this many epochs; the
            result's ``threshold_epoch`` and ``at_threshold`` (a copy of the net at that epoch's
            end) still say when the threshold was first reached.

    Returns:
        :class:`TrainResult`.
    """
    if lr <= 0 or batch_size < 1 or max_epochs < 0:
        raise InvalidArgumentError(
            f"need lr > 0, batch_size >= 1 and max_epochs >= 0; got {lr}, {batch_size}, "
            f"{max_epochs}."
        )
    x = np.asarray(x, dtype=net.dtype)
    labels = np.asarray(labels, dtype=np.int64)
    targets = one_hot_targets(labels, net.spec.sizes[-1]).astype(net.dtype)
    masks = _mask_list(net, mask)
    if masks is not None:
        for k, m in zip(net.kernels, masks, strict=True):
            k *= m
    rng = np.random.default_rng(seed)
    history, steps, epoch, first, snapshot = [], 0, 0, None, None
    n = len(x)
    for epoch in range(1, max_epochs + 1):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            g_k, g_b = net.gradients(x[idx], targets[idx])
            for i in range(net.spec.n_layers):
                g = g_k[i] if masks is None else g_k[i] * masks[i]
                net.kernels[i] -= lr * g
                net.biases[i] -= lr * g_b[i]
            steps += 1
            if on_step is not None:
                on_step(net)
        if not all(np.isfinite(k).all() for k in net.kernels):
            raise NonFiniteError(
                f"training diverged (NaN/inf weights) in epoch {epoch}. Fix: lower the learning "
                "rate."
            )
        acc = net.accuracy(x, labels)
        history.append(acc)
        if threshold is not None and acc >= threshold and first is None:
            first, snapshot = epoch, net.copy()
        if first is not None and epoch >= min_epochs:
            break
    return TrainResult(
        epochs=epoch, reached=first is not None, train_accuracy=history, steps=steps,
        threshold_epoch=first, at_threshold=snapshot,
    )  # fmt: skip


def _mask_list(net: MLP, mask) -> list[np.ndarray] | None:
    if mask is None:
        return None
    names = list(net.spec.names)
    if list(mask) != names:
        raise MaskMismatchError(
            f"mask layers {list(mask)} do not match the network's {names}. Fix: build the mask "
            "from this network's kernels."
        )
    out = []
    for name, k in zip(names, net.kernels, strict=True):
        m = np.asarray(mask[name], dtype=net.dtype)
        if m.shape != k.shape:
            raise MaskMismatchError(
                f"mask for {name!r} has shape {m.shape}, kernel {k.shape}. Fix: build the mask "
                "from this network's kernels."
            )
        out.append(m)
    return out


__all__ = ["MLP", "MLPSpec", "TrainResult", "train", "one_hot_targets", "predicted_class"]
