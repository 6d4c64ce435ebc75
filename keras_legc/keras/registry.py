"""The one table of prunable weights per layer class, as TF-MOT's ``prune_registry`` keeps it.

Every step that touches weights (record, score, mask, prune, strip, gradual, save/load, export,
diagnose) finds them here, through :func:`prunable_entries`; nothing else in keras_legc names a
layer class. A new layer kind is one entry of :data:`REGISTRY`; a custom layer opts in with TF-MOT's
``PrunableLayer`` protocol, a ``get_prunable_weights()`` method returning its variables (honoured on
Keras 3 too).

Each prunable weight is one *entry* (:class:`Entry`): a (layer, weight) pair with a string key, the key a
:class:`~keras_legc.masking.Mask`, a History and Scores use for it: the layer's name for a weight
named ``kernel`` (so a Dense model's keys are its layer names, as they always were), and
``"layer/weight"`` for any other (``"sep/depthwise_kernel"``, ``"emb/embeddings"``,
``"lstm/recurrent_kernel"``).

Layers are found in the model's top level, inside nested Sequential/functional models and, on
Keras 3, inside ``TimeDistributed`` and ``Bidirectional`` wrappers (the wrapped layers are the
entries' layers). On tf_keras, TF-MOT holds the masks and supports neither wrapper, so they are
refused there with a clear error.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from keras_legc.errors import LegcWarning, ModelStructureError
from keras_legc.keras.flavour import keras_of, model_flavour
from keras_legc.masking.mask import weight_key

# Block layouts (see keras_legc.masking.blocks): "matrix" = a 2-D (in, out) kernel, "conv" = a
# (..., in, out) kernel read as (prod(...) * in, out), in the order LiteRT stores it (out, ..., in).
# None: no LiteRT sparse kernel runs this weight in blocks, so block masks are refused for it.
MATRIX, CONV = "matrix", "conv"


@dataclass(frozen=True)
class WeightSpec:
    """One prunable weight of a layer class.

    Args:
        name: the weight's name in keys (``"kernel"``, ``"depthwise_kernel"``, ...).
        attr: the attribute path from the layer to the variable (``"cell.kernel"`` for RNNs).
        constraint: the Keras 3 constraint attribute path that holds its mask (``get_config``
            serialises it, so ``.keras`` files carry the mask); None: the variable's own
            ``constraint`` only (custom layers without a ``<attr>_constraint``).
        in_axis: the input-channel axis (N:M groups run along it, as TF-MOT's do).
        blocks: :data:`MATRIX`, :data:`CONV` or None (block masks refused).
        out_axes: the axes whose flattened index is the output channel (the unit: a filter or a
            neuron) that the weight feeds, for unit-level recording (:class:`UnitHistory`).
    """

    name: str
    attr: str
    constraint: str | None
    in_axis: int
    blocks: str | None
    out_axes: tuple[int, ...] = (-1,)


def _w(name, in_axis, blocks, attr=None, constraint=None, out_axes=(-1,)) -> WeightSpec:
    stem = name.removesuffix("_kernel") if name != "kernel" else "kernel"
    return WeightSpec(name, attr or name, constraint or f"{stem}_constraint", in_axis, blocks,
                      tuple(out_axes))  # fmt: skip


_KERNEL = (_w("kernel", 0, MATRIX),)
_CONV = (_w("kernel", -2, CONV),)
# Transposed convolutions store (..., out, in): the input channels are the last axis.
_CONV_T = (_w("kernel", -1, None, out_axes=(-2,)),)
# Keras 3 keeps a DepthwiseConv's weight in .kernel, tf_keras in .depthwise_kernel.
# A depthwise kernel (..., channels, multiplier) feeds output channel c * multiplier + m.
_DEPTHWISE = (_w("depthwise_kernel", -2, None, attr="depthwise_kernel|kernel", out_axes=(-2, -1)),)
_SEPARABLE = (_w("depthwise_kernel", -2, None, out_axes=(-2, -1)),
              _w("pointwise_kernel", -2, CONV))  # fmt: skip
_RNN = (
    _w("kernel", 0, None, attr="cell.kernel", constraint="cell.kernel_constraint"),
    _w("recurrent_kernel", 0, None, attr="cell.recurrent_kernel",
       constraint="cell.recurrent_constraint"),
)  # fmt: skip

#: ``{layer class name: its prunable weights}``; a layer matches its class or the nearest Keras
#: base class in this table (a subclass of Dense is a Dense). Both Kerases name them alike.
REGISTRY: dict[str, tuple[WeightSpec, ...]] = {
    "Dense": _KERNEL,
    "EinsumDense": (_w("kernel", 0, None),),
    "Conv1D": _CONV,
    "Conv2D": _CONV,
    "Conv3D": _CONV,
    "Conv1DTranspose": _CONV_T,
    "Conv2DTranspose": _CONV_T,
    "Conv3DTranspose": _CONV_T,
    "DepthwiseConv1D": _DEPTHWISE,
    "DepthwiseConv2D": _DEPTHWISE,
    "SeparableConv1D": _SEPARABLE,
    "SeparableConv2D": _SEPARABLE,
    "Embedding": (_w("embeddings", 0, None, constraint="embeddings_constraint"),),
    "LSTM": _RNN,
    "GRU": _RNN,
    "SimpleRNN": _RNN,
}

_WRAPPERS = ("TimeDistributed", "Bidirectional")


class PrunableWeight(NamedTuple):
    """One row of :func:`prunable_weights`: the layer's name, the weight's name, its shape."""

    layer: str
    weight: str
    shape: tuple[int, ...]

    @property
    def key(self) -> str:
        """The key of this weight in a Mask, a History and Scores."""
        return weight_key(self.layer, self.weight)


@dataclass
class Entry:
    """A prunable weight of a model: the layer object that owns it and its :class:`WeightSpec`."""

    layer: object
    spec: WeightSpec

    @property
    def key(self) -> str:
        return weight_key(self.layer.name, self.spec.name)

    @property
    def variable(self):
        return resolve(self.layer, self.spec.attr)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.variable.shape)

    def numpy(self) -> np.ndarray:
        return self.variable.numpy()


def specs_of(layer) -> tuple[WeightSpec, ...]:
    """The prunable weights of one layer: its entry in :data:`REGISTRY` (its own class or the
    nearest Keras base class listed), else its ``get_prunable_weights()``; () when neither."""
    for cls in type(layer).__mro__:
        module = cls.__module__ or ""
        if cls.__name__ in REGISTRY and module.split(".")[0] in ("keras", "tf_keras"):
            return REGISTRY[cls.__name__]
    opt_in = getattr(layer, "get_prunable_weights", None)
    if callable(opt_in):
        return tuple(_custom_spec(layer, v) for v in opt_in())
    return ()


def _custom_spec(layer, variable) -> WeightSpec:
    """A :class:`WeightSpec` for a variable a custom layer returned from get_prunable_weights."""
    attr = next((n for n, v in vars(layer).items() if v is variable), None)
    if attr is None:
        raise ModelStructureError(
            f"layer {layer.name!r} returned a weight from get_prunable_weights() that is not one "
            "of its attributes. Fix: keep each prunable weight as an attribute (self.kernel = "
            "self.add_weight(...)) and return those attributes."
        )
    stem = attr.removesuffix("_kernel") if attr != "kernel" else "kernel"
    constraint = f"{stem}_constraint" if hasattr(layer, f"{stem}_constraint") else None
    ndim = len(variable.shape)
    return WeightSpec(attr, attr, constraint, 0 if ndim <= 2 else -2, None)


def resolve(obj, path: str):
    """The attribute at a dotted ``path`` of ``obj`` (``"cell.kernel"``); a part may list
    alternatives, the first present wins (``"depthwise_kernel|kernel"``: tf_keras, Keras 3)."""
    for part in path.split("."):
        names = part.split("|")
        name = next((n for n in names if hasattr(obj, n)), names[-1])
        obj = getattr(obj, name)
    return obj


def _leaves(model, k, keras3: bool):
    """Every leaf layer of ``model``, in order: nested models and (Keras 3) wrappers opened."""
    from keras_legc.keras.layers import unwrap

    for layer in model.layers:
        inner = unwrap(layer)
        if isinstance(inner, k.Model):
            yield from _leaves(inner, k, keras3)
        elif type(inner).__name__ in _WRAPPERS and not specs_of(inner):
            if not keras3:
                if any(specs_of(sub) for sub in _wrapped(inner)):
                    raise ModelStructureError(
                        f"layer {inner.name!r} is a {type(inner).__name__} wrapper; on tf_keras "
                        "TF-MOT holds the masks and cannot wrap what it wraps. Fix: use Keras 3 "
                        "(keras_legc holds masks inside wrappers there), or build the model "
                        "without the wrapper."
                    )
                yield inner
                continue
            yield from _wrapped(inner)
        else:
            yield inner


def _wrapped(wrapper) -> list:
    if type(wrapper).__name__ == "Bidirectional":
        return [wrapper.forward_layer, wrapper.backward_layer]
    return [wrapper.layer]


def prunable_entries(model, *, warn: bool = True) -> list[Entry]:
    """Every prunable weight of ``model``, in layer order then the registry's weight order.

    Args:
        model: a built Sequential or functional model, Keras 3 (any backend) or tf_keras.
        warn: emit the (once per model) warning about parameters outside the table.

    Raises:
        ModelStructureError: the model is not built or is subclassed, has no prunable weight, a
            prunable layer is shared (called twice), two prunable layers share a name (or one has
            a ``/`` in it), or a prunable weight is not floating point.

    Example:
        >>> [u.key for u in prunable_entries(model)]
        ['conv', 'dw/depthwise_kernel', 'head']
    """
    from keras_legc.keras.layers import check_graph_model

    k = keras_of(model)
    check_graph_model(model, k)
    leaves = list(_leaves(model, k, model_flavour(model) == "keras3"))
    entries = [Entry(layer, spec) for layer in leaves for spec in specs_of(layer)]
    if not entries:
        raise ModelStructureError(
            f"model {model.name!r} has no prunable weight (layers: "
            f"{sorted({type(la).__name__ for la in leaves})}). keras_legc prunes the weights of "
            f"{', '.join(REGISTRY)}. Fix: pass a model with one of these layers, or give a custom "
            "layer a get_prunable_weights() method returning its prunable variables."
        )
    _check_entries(model, entries)
    if warn:
        _warn_uncovered(model, leaves)
    return entries


def _check_entries(model, entries: list[Entry]) -> None:
    layers = list({id(u.layer): u.layer for u in entries}.values())
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names) or any("/" in n for n in names):
        raise ModelStructureError(
            f"the prunable layers' names must be unique and free of '/', got {names}. Fix: give "
            "each layer its own name (name='...'), also inside nested models."
        )
    for layer in layers:
        check_not_shared(model, layer)
    for entry in entries:
        check_float(entry.layer, entry.spec.name, entry.variable)


def check_not_shared(model, layer) -> None:
    """Refuse a layer called more than once in ``model``'s graph (one mask cannot describe it)."""
    from keras_legc.keras.layers import layer_uses

    uses = layer_uses(model, layer)
    if uses > 1:
        raise ModelStructureError(
            f"layer {layer.name!r} is shared (called {uses} times in the model); one mask "
            "per weight cannot describe it. Fix: give each call its own layer."
        )


def check_float(layer, weight: str, variable) -> None:
    """Refuse a non-float weight: LE series and pruning need floating-point weights."""
    dtype = variable_dtype(variable)
    if dtype.kind != "f":
        raise ModelStructureError(
            f"the {weight} of layer {layer.name!r} is {dtype.name}; LE series and pruning need "
            "floating-point weights. Fix: build the layer with a float dtype (the default "
            "float32)."
        )


def variable_dtype(variable) -> np.dtype:
    """The numpy dtype of a variable (a tf.DType in tf_keras, a string in Keras 3)."""
    dtype = variable.dtype
    return np.dtype(getattr(dtype, "name", None) or str(dtype))


def prunable_weights(model) -> list[PrunableWeight]:
    """What keras_legc will record, score, mask and prune in ``model``: (layer, weight, shape).

    Layers with kernel-like weights (2 or more dimensions) that the table does not cover are
    named, with their share of the parameters, in one :class:`~keras_legc.errors.LegcWarning`
    per model (biases, normalisation and other vectors are expected to stay unpruned).

    Example:
        >>> for layer, weight, shape in keras_legc.prunable_weights(model):
        ...     print(layer, weight, shape)
        conv kernel (3, 3, 1, 8)
        dw depthwise_kernel (3, 3, 8, 1)
        head kernel (8, 10)
    """
    return [PrunableWeight(u.layer.name, u.spec.name, u.shape) for u in prunable_entries(model)]


_WARNED: weakref.WeakSet = weakref.WeakSet()


def uncovered(model, leaves=None) -> tuple[list[str], float]:
    """The layers holding kernel-like (>= 2-D) trainable weights outside the table, and their
    share of the model's parameters."""
    if leaves is None:
        k = keras_of(model)
        leaves = list(_leaves(model, k, model_flavour(model) == "keras3"))
    names, held = [], 0
    for layer in leaves:
        covered = {id(resolve(layer, s.attr)) for s in specs_of(layer)}
        big = [
            w for w in layer.trainable_weights
            if len(w.shape) >= 2 and id(w) not in covered and not _is_bias(w)
        ]  # fmt: skip
        if big:
            names.append(f"{layer.name} ({type(layer).__name__})")
            held += sum(int(np.prod(w.shape)) for w in big)
    total = sum(int(np.prod(w.shape)) for w in model.weights) or 1
    return names, held / total


def _is_bias(variable) -> bool:
    """A bias, whatever its rank (a GRU's reset-after bias is 2-D): never pruned, as in TF-MOT."""
    return "bias" in str(getattr(variable, "name", "")).split("/")[-1]


def _warn_uncovered(model, leaves) -> None:
    try:
        if model in _WARNED:
            return
    except TypeError:  # pragma: no cover - an object that cannot be weakly referenced
        return
    names, share = uncovered(model, leaves)
    _WARNED.add(model)
    if names:
        warnings.warn(
            f"{100 * share:.1f}% of model {model.name!r}'s parameters are in weights keras_legc "
            f"does not prune: {', '.join(names)}. They are recorded, masked and exported dense. "
            "Fix: nothing if that is what you want; otherwise give a custom layer a "
            "get_prunable_weights() method (see keras_legc.prunable_weights).",
            LegcWarning,
            stacklevel=3,
        )


def entries_by_key(model, **kw) -> dict[str, Entry]:
    """``{key: Entry}`` for every prunable weight of ``model``."""
    return {u.key: u for u in prunable_entries(model, **kw)}


def weights_of(model) -> dict[str, np.ndarray]:
    """``{key: weight}`` as numpy arrays, every prunable weight of ``model``."""
    return {u.key: u.numpy() for u in prunable_entries(model)}


def signature(model) -> dict[str, tuple[int, ...]]:
    """``{key: shape}``: what a mask or a history must match."""
    return {u.key: u.shape for u in prunable_entries(model)}


def layouts(model) -> dict[str, tuple[int, str | None]]:
    """``{key: (input-channel axis, block layout)}`` for the masking patterns."""
    return {u.key: (u.spec.in_axis, u.spec.blocks) for u in prunable_entries(model, warn=False)}
