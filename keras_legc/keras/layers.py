"""Finding the Dense layers of a Keras model (the neuron tools' view) and the model checks every
step shares; which weights are pruned is :mod:`keras_legc.keras.registry`'s."""

from __future__ import annotations

import numpy as np

from keras_legc.errors import ModelStructureError
from keras_legc.keras.flavour import keras_of, tfmot


def dense_layers(model) -> list:
    """The ``Dense`` layers of ``model`` in order (inside TF-MOT pruning wrappers too).

    Args:
        model: a built Sequential or functional model, Keras 3 (``keras.Model``, any backend) or
            Keras 2 (``tf_keras.Model``).

    Returns:
        The Dense layer objects, first to last.

    Raises:
        ModelStructureError: when ``model`` is not a Keras model, is not built, or has no Dense
            layer, or when a Dense layer is shared (used twice), sits in a nested model, or has
            a non-float kernel.

    Example:
        >>> [layer.name for layer in dense_layers(model)]
        ['hidden', 'out']
    """
    k = keras_of(model)
    check_graph_model(model, k)
    found = _find_dense(model, k)
    names = [layer.name for layer in found]
    if len(set(names)) != len(names):
        raise ModelStructureError(
            f"Dense layer names must be unique, got {names}. Fix: give each layer its own name."
        )
    for layer in found:
        _check_dense(model, layer)
    return found


def check_graph_model(model, k) -> None:
    """Refuse an unbuilt or a subclassed model (its layers cannot be found, cloned or rebuilt)."""
    if not model.built:
        raise ModelStructureError(
            f"model {model.name!r} is not built, so its kernels do not exist yet. Fix: give the "
            "first layer an input_shape (or call model.build(input_shape)) before using keras_legc."
        )
    if not isinstance(model, k.Sequential) and _graph_nodes(model) is None:
        raise ModelStructureError(
            f"model {model.name!r} is a subclassed Model ({type(model).__name__}); its layers "
            "cannot be cloned or rebuilt, so it cannot be pruned. Fix: build the same layers as a "
            "keras.Sequential or functional model."
        )


def _find_dense(model, k) -> list:
    """The Dense layers of the top level of ``model`` (refusing Dense layers in nested models)."""
    found = []
    for layer in model.layers:
        inner = unwrap(layer)
        if isinstance(inner, k.layers.Dense):
            found.append(inner)
        elif isinstance(inner, k.Model) and any(
            isinstance(unwrap(sub), k.layers.Dense) for sub in inner.layers
        ):
            raise ModelStructureError(
                f"Dense layers inside the nested model {inner.name!r} are not supported yet. "
                "Fix: build the model flat (one Sequential or functional model of Dense layers)."
            )
    if not found:
        raise ModelStructureError(
            f"model {model.name!r} has no Dense layer; keras_legc prunes Dense kernels only. "
            "Fix: pass a model with at least one keras.layers.Dense layer."
        )
    return found


def _check_dense(model, layer) -> None:
    """Refuse a Dense layer called more than once in ``model``, or with a non-float kernel."""
    from keras_legc.keras.registry import check_float, check_not_shared

    check_not_shared(model, layer)
    check_float(layer, "kernel", layer.kernel)


def kernel_dtype(layer) -> np.dtype:
    """The numpy dtype of a Dense layer's kernel (a tf.DType in Keras 2, a string in Keras 3).

    Example:
        >>> kernel_dtype(model.layers[0])
        dtype('float32')
    """
    from keras_legc.keras.registry import variable_dtype

    return variable_dtype(layer.kernel)


def _graph_nodes(model):
    """The node graph of a functional (or Sequential) model; None for a subclassed model.

    Keras 2: the set of node keys ``"<layer>_ib-<i>"``; Keras 3: the nodes by depth.
    """
    if getattr(model, "_is_graph_network", False):  # Keras 2 functional / Sequential
        return getattr(model, "_network_nodes", None) or set()
    inner = getattr(model, "_functional", None) or model  # a Keras 3 Sequential's graph
    return getattr(inner, "_nodes_by_depth", None)


def layer_uses(model, layer) -> int:
    """How many times ``layer`` is called in ``model``'s own graph.

    A layer's inbound nodes also count calls from other models (e.g. a wrapper built for
    export), so the model's graph is read instead.
    """
    nodes = _graph_nodes(model)
    if not nodes:
        return 1
    if isinstance(nodes, dict):  # Keras 3
        return sum(1 for level in nodes.values() for n in level if n.operation is layer)
    return sum(1 for key in nodes if key.startswith(f"{layer.name}_ib-"))


def is_pruning_wrapper(layer) -> bool:
    """True for a TF-MOT ``PruneLowMagnitude`` wrapper (never for a Keras 3 layer)."""
    if type(layer).__module__.startswith("keras."):
        return False  # a Keras 3 layer: TF-MOT (Keras 2 only) is not even imported for it
    tfmot()
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
        PruneLowMagnitude,
    )

    return isinstance(layer, PruneLowMagnitude)


def is_mask_held(layer) -> bool:
    """True for a Keras 3 layer one of whose prunable weights holds a keras_legc
    ``MaskConstraint``."""
    from keras_legc.keras.registry import resolve, specs_of

    for spec in specs_of(layer):
        try:
            constraint = getattr(resolve(layer, spec.attr), "constraint", None)
        except AttributeError:  # not built
            continue
        if type(constraint).__name__ == "MaskConstraint" and type(constraint).__module__ == (
            "keras_legc.keras.keras3"
        ):
            return True
    return False


def unwrap(layer):
    """The layer inside a TF-MOT wrapper (or the layer itself)."""
    return layer.layer if is_pruning_wrapper(layer) else layer
