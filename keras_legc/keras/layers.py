"""Finding the Dense layers of a Keras model and reading their kernels."""

from __future__ import annotations

import numpy as np

from keras_legc.errors import ModelStructureError
from keras_legc.keras.flavour import keras, tfmot


def dense_layers(model) -> list:
    """The ``Dense`` layers of ``model`` in order (inside TF-MOT pruning wrappers too).

    Raises:
        ModelStructureError: when ``model`` is not a Keras 2 model, is not built, or has no Dense
            layer, or when a Dense layer is shared (used twice) or sits in a nested model.
    """
    k = keras()
    if not isinstance(model, k.Model):
        hint = ""
        if type(model).__module__.startswith("keras"):
            hint = (
                " It is a Keras 3 model: TF-MOT only supports Keras 2. Fix: `import keras_legc` "
                "before TensorFlow (or set TF_USE_LEGACY_KERAS=1) and build it with tf.keras, "
                "or build it with tf_keras directly."
            )
        raise ModelStructureError(
            f"expected a tf.keras (Keras 2) Model, got {type(model).__module__}."
            f"{type(model).__name__}.{hint or ' Fix: pass the Keras model itself.'}"
        )
    if not model.built:
        raise ModelStructureError(
            f"model {model.name!r} is not built, so its kernels do not exist yet. Fix: give the "
            "first layer an input_shape (or call model.build(input_shape)) before using keras_legc."
        )
    if not isinstance(model, k.Sequential) and not getattr(model, "_is_graph_network", False):
        raise ModelStructureError(
            f"model {model.name!r} is a subclassed Model ({type(model).__name__}); TF-MOT cannot "
            "clone or wrap its layers, so it cannot be pruned. Fix: build the same layers as a "
            "tf.keras.Sequential or functional model."
        )
    found = []
    for layer in model.layers:
        inner = _unwrap(layer)
        if isinstance(inner, k.layers.Dense):
            found.append(inner)
        elif isinstance(inner, k.Model) and any(
            isinstance(_unwrap(sub), k.layers.Dense) for sub in inner.layers
        ):
            raise ModelStructureError(
                f"Dense layers inside the nested model {inner.name!r} are not supported yet. "
                "Fix: build the model flat (one Sequential or functional model of Dense layers)."
            )
    if not found:
        raise ModelStructureError(
            f"model {model.name!r} has no Dense layer; keras_legc prunes Dense kernels only. "
            "Fix: pass a model with at least one tf.keras.layers.Dense layer."
        )
    names = [layer.name for layer in found]
    if len(set(names)) != len(names):
        raise ModelStructureError(
            f"Dense layer names must be unique, got {names}. Fix: give each layer its own name."
        )
    # A layer called twice inside this model has two nodes in this model's graph (its
    # _inbound_nodes also count calls from other models, e.g. a wrapper built for export).
    graph_nodes = getattr(model, "_network_nodes", None) or set()
    for layer in found:
        uses = sum(1 for key in graph_nodes if key.startswith(f"{layer.name}_ib-"))
        if uses > 1:
            raise ModelStructureError(
                f"Dense layer {layer.name!r} is shared (called {uses} times in the model); one "
                "mask per kernel cannot describe it. Fix: give each call its own Dense layer."
            )
        dtype = layer.kernel.dtype
        if not dtype.is_floating:
            raise ModelStructureError(
                f"Dense layer {layer.name!r} has a {dtype.name} kernel; LE series and pruning "
                "need floating-point weights. Fix: build the layer with a float dtype (the "
                "default float32)."
            )
    return found


def dense_kernels(model) -> dict[str, np.ndarray]:
    """``{layer name: kernel}`` as numpy arrays, for every Dense layer of ``model``."""
    return {layer.name: layer.kernel.numpy() for layer in dense_layers(model)}


def layer_signature(model) -> dict[str, tuple[int, ...]]:
    """``{layer name: kernel shape}``: what a mask or a history must match."""
    return {layer.name: tuple(int(d) for d in layer.kernel.shape) for layer in dense_layers(model)}


def is_pruning_wrapper(layer) -> bool:
    """True for a TF-MOT ``PruneLowMagnitude`` wrapper."""
    tfmot()
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
        PruneLowMagnitude,
    )

    return isinstance(layer, PruneLowMagnitude)


def _unwrap(layer):
    """The layer inside a TF-MOT wrapper (or the layer itself)."""
    return layer.layer if is_pruning_wrapper(layer) else layer
