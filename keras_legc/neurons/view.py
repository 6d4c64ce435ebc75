"""The numpy view of a Keras Dense stack that the neuron scorers and the removal loop work on.

"Forcing a neuron's output to 0" is computed with numpy forward passes from the kernels (the model
must be a plain chain of Dense layers, with an optional Input/Flatten first); the numpy forward pass
is checked against ``model(x)`` when the view is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from keras_legc.core.dense import ACTIVATIONS, DenseStack, activate
from keras_legc.errors import InvalidArgumentError, ModelStructureError

_FORWARD_ATOL = 1e-5


@dataclass
class DenseNet(DenseStack):
    """A plain chain of Dense layers as numpy arrays (float64), with a keep-mask per hidden layer.

    Build it with :meth:`from_model`; scorers receive it from :func:`prune_neurons` with the
    units removed so far masked (their outputs forced to 0). The forward pass is the shared
    :class:`~keras_legc.core.dense.DenseStack`.

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

        Args:
            model: a built Keras 2 model, or a :class:`DenseNet` (returned as it is).
            check: compare a numpy forward pass with ``model(x)`` on a random probe.

        Raises:
            ModelStructureError: when ``model`` is not a built Keras 2 model made of an optional
                Input/Flatten followed only by Dense layers with supported activations, or has
                fewer than two Dense layers (no hidden layer).

        Example:
            >>> DenseNet.from_model(model).hidden
            ['dense', 'dense_1']
        """
        if isinstance(model, DenseNet):
            return model
        dense = _dense_chain(model)
        names, kernels, biases, acts = _read_layers(dense)
        input_shape = _check_shapes(model, names, kernels)
        keep = {n: np.ones(w.shape[1], bool) for n, w in zip(names[:-1], kernels[:-1], strict=True)}
        net = cls(names, kernels, biases, acts, keep, input_shape, model.name)
        if check:
            _check_against_keras(net, model)
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

    def with_means_folded(self, x) -> DenseNet:
        """A copy equal to this net with every removed unit replaced by its mean activation.

        Each removed unit's mean output over ``x`` (in the network where the removed units of
        earlier layers already output their means) times its outgoing weights is added to the
        next layer's bias; the units stay masked. What :func:`shrink` builds with
        ``fold_mean_activations=x``.

        Args:
            x: inputs the means are taken over (e.g. the training or scoring data).

        Returns:
            A :class:`DenseNet` with the same kernels and masks and folded biases.

        Example:
            >>> folded = net.with_removed({"dense": [3, 7]}).with_means_folded(x_train)
        """
        a, biases = self._as_input(x), list(self.biases)
        for i, name in enumerate(self.names[:-1]):
            a = activate(self.activations[i], a @ self.kernels[i] + self.biases[i])
            removed = np.flatnonzero(~self.keep[name])
            if len(removed):
                mean = a[:, removed].mean(axis=0)
                a[:, removed] = mean
                biases[i + 1] = biases[i + 1] + mean @ self.kernels[i + 1][removed]
        return DenseNet(
            self.names, self.kernels, biases, self.activations, self.keep, self.input_shape,
            self.model_name,
        )  # fmt: skip

    def macs(self) -> int:
        """Multiply-accumulates per sample of the network with the masked units removed."""
        widths = [len(self.kernels[0])] + [int(self.keep[n].sum()) for n in self.hidden]
        widths.append(self.kernels[-1].shape[1])
        return int(sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True)))

    # -- forward (DenseStack hooks) -------------------------------------------------------------
    def unit_masks(self) -> list[np.ndarray]:
        return [self.keep[n] for n in self.hidden]

    def _as_input(self, x) -> np.ndarray:
        """``x`` flattened to ``(n, inputs)`` float64, checked to fit this model and be finite."""
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


# ---- from_model's stages ---------------------------------------------------------------------------


def _dense_chain(model) -> list:
    """The Dense layers of ``model``, refused unless it is a plain chain of them (with at least
    one hidden layer), optionally after an Input and a Flatten."""
    from keras_legc.keras.flavour import keras_of
    from keras_legc.keras.layers import dense_layers, is_mask_held, is_pruning_wrapper

    k = keras_of(model)  # a Keras 3 or a Keras 2 model alike
    dense = dense_layers(model)  # built, Sequential/functional, unique names
    seen_dense = False
    for layer in model.layers:
        if is_pruning_wrapper(layer) or is_mask_held(layer):
            raise ModelStructureError(
                f"layer {layer.name!r} is held by a pruning mask (a TF-MOT wrapper or a "
                "keras_legc MaskConstraint). Fix: call "
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
    return dense


def _read_layers(dense: list) -> tuple[list, list, list, list]:
    """Names, float64 kernels, biases (zeros without a bias) and activation names."""
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
    return names, kernels, biases, acts


def _check_shapes(model, names: list, kernels: list) -> tuple[int, ...]:
    """The model's input shape (no batch axis), after checking that the kernels chain up."""
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
    return input_shape


def _check_against_keras(net: DenseNet, model) -> None:
    """Refuse a model whose Dense layers are not applied one after another (e.g. a skip)."""
    probe = np.random.default_rng(0).uniform(0.0, 1.0, (8, *net.input_shape)).astype("float32")
    from keras_legc.keras.flavour import to_numpy

    want = to_numpy(model(probe, training=False), dtype=np.float64)
    got = net.output(probe)
    if want.shape != got.shape or not np.allclose(got, want, rtol=0, atol=_FORWARD_ATOL):
        raise ModelStructureError(
            f"the Dense layers of model {model.name!r} do not form a plain chain (a numpy "
            "forward pass through them differs from model(x)). Fix: pass a model whose "
            "Dense layers are applied one after another to the input."
        )


__all__ = ["DenseNet"]
