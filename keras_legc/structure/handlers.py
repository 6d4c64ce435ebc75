"""One handler per layer type: how a layer's channels flow, which weights they index, how its
config changes when channels go, and its multiply-accumulates.

A handler is an object with

- ``propagate(builder, call) -> [slots per output]``: reads ``call.inputs`` (the slot ids of each
  input's last axis), binds weights to slots (``builder.bind``), couples slots that must go
  together (``builder.couple``), makes new channels (``builder.fresh``) and returns the slot ids of
  each output. ``builder.boundary(call)`` is the safe answer for anything it does not understand.
- ``resize(config, width)``: edits the layer's ``get_config()`` for its new output width (the
  number of kept channels of the slots it gave ``builder.resize_by``). Default: no change.

Handlers are looked up by the layer's exact class (a subclass may compute something else, so it
is a boundary until registered). Register your own layers with :func:`register_handler`:

    >>> class Scale(keras.layers.Layer):          # multiplies each channel by a weight
    ...     def build(self, shape): self.w = self.add_weight(shape=(shape[-1],))
    ...     def call(self, x): return x * self.w
    >>> class ScaleHandler(PassThrough):
    ...     def propagate(self, b, call):
    ...         b.bind(call, call.layer.w, 0, call.inputs[0])
    ...         return [call.inputs[0]]
    >>> register_handler(Scale, ScaleHandler())

MAC convention (``macs`` calls in the handlers): a weight's multiply-accumulates are counted for
the layers that multiply inputs by a kernel (Conv*, Conv*Transpose, DepthwiseConv*,
SeparableConv*, Dense): kernel elements times output positions (input positions for transposed
convolutions). Biases, BatchNormalization, activations, pooling and element-wise merges count 0
(BatchNormalization folds into the preceding convolution on TFLite); MLPerf Tiny counts the same.
"""

from __future__ import annotations

import numpy as np

from keras_legc.errors import InvalidArgumentError
from keras_legc.structure.graph import Builder, Call

_REGISTRY: dict[object, object] = {}
_BUILTINS_LOADED = False


def _spatial(shape) -> int:
    """Positions per sample of a (batch, ..., channels) tensor."""
    dims = shape[1:-1]
    if any(d is None for d in dims):
        return 0
    return int(np.prod(dims)) if dims else 1


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _last_axis(axis, rank: int) -> bool:
    axes = axis if isinstance(axis, list | tuple) else [axis]
    return [a % rank for a in axes] == [rank - 1]


class Handler:
    """Base: a boundary (neither input nor output channels are pruned)."""

    def propagate(self, b: Builder, call: Call) -> list[np.ndarray]:
        return b.boundary(call)

    def resize(self, config: dict, width: int) -> None:
        return None


class PassThrough(Handler):
    """Channel-wise layers with no channel weights: outputs keep the input's channels."""

    def propagate(self, b, call):
        if len(call.inputs) != 1 or len(call.output_shapes) != 1:
            return b.boundary(call)
        if call.output_shapes[0][-1] != call.input_shapes[0][-1]:
            return b.boundary(call)
        return [call.inputs[0]]


def _mixes_channels(layer) -> bool:
    """True when the layer's activation is a softmax over its channels: removing a channel then
    changes the others, even a channel that was zero."""
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act)) in ("softmax", "log_softmax")


class ActivationHandler(PassThrough):
    """Activation layers; a softmax over channels mixes them, so it is a boundary."""

    def propagate(self, b, call):
        if _mixes_channels(call.layer):
            return b.boundary(call)
        return super().propagate(b, call)


class SoftmaxHandler(PassThrough):
    def propagate(self, b, call):
        if _last_axis(call.layer.axis, len(call.input_shapes[0])):
            return b.boundary(call)
        return super().propagate(b, call)


class RescalingHandler(PassThrough):
    def propagate(self, b, call):
        if np.ndim(call.layer.scale) or np.ndim(call.layer.offset):
            return b.boundary(call)
        return super().propagate(b, call)


class PReLUHandler(PassThrough):
    def propagate(self, b, call):
        alpha = call.layer.alpha
        if alpha.shape[-1] != call.input_shapes[0][-1] or call.input_shapes[0][-1] == 1:
            return b.boundary(call)
        b.bind(call, alpha, -1, call.inputs[0])
        return [call.inputs[0]]


class NormalizationHandler(PassThrough):
    """BatchNormalization / LayerNormalization over the channel axis: per-channel weights.

    LayerNormalization mixes channels (a channel's removal changes the mean and variance of the
    others), so its outputs change even when a removed channel was zero; it is pruned anyway,
    as Torch-Pruning does, and fine-tuning repairs it.
    """

    def propagate(self, b, call):
        rank = len(call.input_shapes[0])
        if not _last_axis(call.layer.axis, rank):
            return b.boundary(call)
        slots = call.inputs[0]
        for w in call.layer.weights:
            if len(w.shape) == 1 and w.shape[0] == len(slots):
                b.bind(call, w, 0, slots)
        return [slots]


def _one_channels_last_input(call: Call) -> bool:
    return _channels_last(call.layer) and len(call.inputs) == 1


def _new_channels(b: Builder, call: Call, kernel, axis: int, n: int) -> np.ndarray:
    """``n`` new channels: ``kernel``'s ``axis``, the bias and the config width follow them."""
    out = b.fresh(call, n)
    b.bind(call, kernel, axis, out)
    b.bind(call, call.layer.bias, 0, out)
    b.resize_by(call, out)
    if _mixes_channels(call.layer):
        b.block(out, f"{call.name!r} applies a softmax over these channels")
    return out


class _FiltersHandler(Handler):
    def resize(self, config, width):
        config["filters"] = width


class ConvHandler(_FiltersHandler):
    """Conv1D/2D/3D: kernel (..., in/groups, filters). ``groups == in == filters`` (depthwise
    written as a grouped conv) passes channels through; other grouped convs are boundaries."""

    def propagate(self, b, call):
        layer = call.layer
        if not _one_channels_last_input(call):
            return b.boundary(call)
        cin, cout = len(call.inputs[0]), layer.filters
        groups = getattr(layer, "groups", 1)
        b.macs(call, layer.kernel, _spatial(call.output_shapes[0]))
        if groups == 1:
            b.bind(call, layer.kernel, -2, call.inputs[0])
            return [_new_channels(b, call, layer.kernel, -1, cout)]
        if groups != cin or cin != cout or _mixes_channels(layer):
            return b.boundary(call, f"grouped convolution {call.name!r} (groups={groups}) is "
                                    "kept whole")  # fmt: skip
        out = call.inputs[0]
        b.bind(call, layer.kernel, -1, out)
        b.bind(call, layer.bias, 0, out)
        b.resize_by(call, out)
        return [out]

    def resize(self, config, width):
        if config.get("groups", 1) > 1:
            config["groups"] = width
        super().resize(config, width)


class ConvTransposeHandler(_FiltersHandler):
    """Conv*Transpose: kernel (..., filters, in)."""

    def propagate(self, b, call):
        layer = call.layer
        if not _one_channels_last_input(call):
            return b.boundary(call)
        b.macs(call, layer.kernel, _spatial(call.input_shapes[0]))
        b.bind(call, layer.kernel, -1, call.inputs[0])
        return [_new_channels(b, call, layer.kernel, -2, layer.filters)]


class DepthwiseHandler(Handler):
    """DepthwiseConv1D/2D: kernel (..., in, multiplier); output channel ``c*m + j`` belongs to
    input channel ``c``."""

    def propagate(self, b, call):
        layer = call.layer
        if not _one_channels_last_input(call) or _mixes_channels(layer):
            return b.boundary(call)
        b.macs(call, layer.kernel, _spatial(call.output_shapes[0]))
        b.bind(call, layer.kernel, -2, call.inputs[0])
        out = np.repeat(call.inputs[0], layer.depth_multiplier)
        b.bind(call, layer.bias, 0, out)
        return [out]


class SeparableHandler(_FiltersHandler):
    """SeparableConv1D/2D: a depthwise kernel (..., in, multiplier) then a pointwise kernel
    (..., in*multiplier, filters)."""

    def propagate(self, b, call):
        layer = call.layer
        if not _one_channels_last_input(call):
            return b.boundary(call)
        positions = _spatial(call.output_shapes[0])
        b.macs(call, layer.depthwise_kernel, positions)
        b.macs(call, layer.pointwise_kernel, positions)
        b.bind(call, layer.depthwise_kernel, -2, call.inputs[0])
        b.bind(call, layer.pointwise_kernel, -2, np.repeat(call.inputs[0], layer.depth_multiplier))
        return [_new_channels(b, call, layer.pointwise_kernel, -1, layer.filters)]


class DenseHandler(Handler):
    """Dense on the last axis: kernel (in, units)."""

    def propagate(self, b, call):
        layer = call.layer
        if len(call.inputs) != 1:
            return b.boundary(call)
        b.macs(call, layer.kernel, _spatial(call.output_shapes[0]))
        b.bind(call, layer.kernel, 0, call.inputs[0])
        return [_new_channels(b, call, layer.kernel, 1, layer.units)]

    def resize(self, config, width):
        config["units"] = width


class MergeHandler(Handler):
    """Element-wise merges (Add, Subtract, Multiply, Average, Maximum, Minimum, and the same
    Keras ops): every full-width input shares the output's channels; a width-1 input (a
    broadcast gate) couples nothing."""

    def propagate(self, b, call):
        if len(call.output_shapes) != 1 or not call.inputs:
            return b.boundary(call)
        width = call.output_shapes[0][-1] if call.output_shapes[0] else None
        full = [s for s in call.inputs if len(s) == width]
        if not full or any(len(s) not in (1, width) for s in call.inputs):
            return b.boundary(call)
        for other in full[1:]:
            b.couple(full[0], other, call)
        return [full[0]]


class ConcatenateHandler(Handler):
    """Concatenate on the channel axis joins the inputs' channels in order (the offsets come
    from the order); on another axis it couples them like an Add."""

    def propagate(self, b, call):
        rank = len(call.output_shapes[0])
        if _last_axis(call.layer.axis, rank):
            return [np.concatenate(call.inputs)]
        return MergeHandler().propagate(b, call)


class FlattenHandler(Handler):
    """Flatten (channels last): feature ``p*C + c`` is channel ``c`` at position ``p``."""

    def propagate(self, b, call):
        positions = _spatial(call.input_shapes[0])
        if not _channels_last(call.layer) or not positions:
            return b.boundary(call)
        return [np.tile(call.inputs[0], positions)]


class ReshapeHandler(Handler):
    """Reshape that keeps the channel axis last (``(C,) -> (1, 1, C)``, as squeeze-and-excitation
    does), or flattens everything like Flatten; any other reshape is a boundary."""

    def propagate(self, b, call):
        cin = call.input_shapes[0][-1]
        out_shape = call.output_shapes[0]
        target = tuple(call.layer.target_shape)
        positions = _spatial(call.input_shapes[0])
        if out_shape[-1] == cin and target[-1] in (cin, -1) and _spatial(out_shape) == positions:
            out = call.inputs[0]
        elif len(out_shape) == 2 and positions and out_shape[-1] == positions * cin:
            out = np.tile(call.inputs[0], positions)
        else:
            return b.boundary(call, f"Reshape {call.name!r} to {target} moves channels")
        b.resize_by(call, out)
        return [out]

    def resize(self, config, width):
        target = list(config["target_shape"])
        if target[-1] != -1:
            target[-1] = width
        config["target_shape"] = tuple(target)


class ChannelScaleHandler(PassThrough):
    """A layer that multiplies each channel by its own weight ``attr`` of shape ``(C,)`` and
    stores ``C`` in its config as ``size_key`` (ConvNeXt's LayerScale: gamma, projection_dim)."""

    def __init__(self, attr: str, size_key: str):
        self.attr, self.size_key = attr, size_key

    def propagate(self, b, call):
        weight = getattr(call.layer, self.attr, None)
        if weight is None or len(call.inputs) != 1 or tuple(weight.shape) != (len(call.inputs[0]),):
            return b.boundary(call)
        b.bind(call, weight, 0, call.inputs[0])
        b.resize_by(call, call.inputs[0])
        return [call.inputs[0]]

    def resize(self, config, width):
        config[self.size_key] = width


class PermuteHandler(PassThrough):
    def propagate(self, b, call):
        dims = tuple(call.layer.dims)
        if dims[-1] != len(dims):
            return b.boundary(call)
        return [call.inputs[0]]


class InputLayerHandler(Handler):
    """A nested model's InputLayer: its ``batch_shape`` follows the pruned width."""

    def resize(self, config, width):
        for key in ("batch_shape", "batch_input_shape"):
            if config.get(key):
                shape = list(config[key])
                shape[-1] = width
                config[key] = shape


_PASS_THROUGH_LAYERS = (
    "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Identity", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D",
)  # fmt: skip
_POOLING_FORMAT = ("Pooling", "Padding", "Cropping", "UpSampling")

_OP_MERGE = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum")
_OP_UNARY = (
    "Relu", "Relu6", "Sigmoid", "HardSigmoid", "Silu", "HardSilu", "Swish", "HardSwish", "Gelu",
    "Elu", "Selu", "LeakyRelu", "Softplus", "Softsign", "Tanh", "Abs", "Negative", "Square",
    "Sqrt", "Exp", "Clip",
)  # fmt: skip


class _ChannelsLastPassThrough(PassThrough):
    def propagate(self, b, call):
        if not _channels_last(call.layer):
            return b.boundary(call)
        return super().propagate(b, call)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    from keras_legc.keras.flavour import keras3

    L = keras3().layers
    builtin: dict[object, Handler] = {}
    for name in _PASS_THROUGH_LAYERS:
        cls = getattr(L, name, None)
        if cls is not None:
            fmt = any(part in name for part in _POOLING_FORMAT) or name.startswith("Global")
            builtin[cls] = _ChannelsLastPassThrough() if fmt else PassThrough()
    builtin[L.Activation] = ActivationHandler()
    builtin[L.Softmax] = SoftmaxHandler()
    builtin[L.Rescaling] = RescalingHandler()
    builtin[L.PReLU] = PReLUHandler()
    builtin[L.BatchNormalization] = NormalizationHandler()
    builtin[L.LayerNormalization] = NormalizationHandler()
    for name in ("Conv1D", "Conv2D", "Conv3D"):
        builtin[getattr(L, name)] = ConvHandler()
    for name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        builtin[getattr(L, name)] = ConvTransposeHandler()
    for name in ("DepthwiseConv1D", "DepthwiseConv2D"):
        builtin[getattr(L, name)] = DepthwiseHandler()
    for name in ("SeparableConv1D", "SeparableConv2D"):
        builtin[getattr(L, name)] = SeparableHandler()
    builtin[L.Dense] = DenseHandler()
    for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        builtin[getattr(L, name)] = MergeHandler()
    builtin[L.Concatenate] = ConcatenateHandler()
    builtin[L.Flatten] = FlattenHandler()
    builtin[L.Reshape] = ReshapeHandler()
    builtin[L.Permute] = PermuteHandler()
    builtin[L.InputLayer] = InputLayerHandler()
    # layers of keras.applications models that are not public classes
    builtin["keras.src.applications.convnext.LayerScale"] = ChannelScaleHandler(
        "gamma", "projection_dim"
    )
    builtin["keras.src.applications.inception_resnet_v2.CustomScaleLayer"] = MergeHandler()
    # Keras ops written between layers (``x + 3.0``, ``ops.sigmoid(x)``), by qualified class name
    for name in _OP_MERGE:
        builtin[f"keras.src.ops.numpy.{name}"] = MergeHandler()
    for name in _OP_UNARY:
        for module in ("keras.src.ops.nn", "keras.src.ops.numpy"):
            builtin[f"{module}.{name}"] = PassThrough()
    for cls, handler in builtin.items():
        _REGISTRY.setdefault(cls, handler)
    _BUILTINS_LOADED = True


def register_handler(layer_type, handler, *, overwrite: bool = False) -> None:
    """Use ``handler`` for layers of exactly ``layer_type`` (a class, or a ``"module.Class"``
    name). See the module docstring for what a handler does; :class:`Handler` (a boundary),
    :class:`PassThrough` and the built-in handlers are starting points.

    Raises:
        InvalidArgumentError: ``layer_type`` already has a handler and ``overwrite`` is False, or
            ``handler`` has no ``propagate`` method.
    """
    _load_builtins()
    if not callable(getattr(handler, "propagate", None)):
        raise InvalidArgumentError(
            f"handler {handler!r} has no propagate(builder, call) method. Fix: subclass "
            "keras_legc.structure.Handler (or PassThrough) and override propagate."
        )
    if layer_type in _REGISTRY and not overwrite:
        raise InvalidArgumentError(
            f"{_type_name(layer_type)} already has a handler "
            f"({type(_REGISTRY[layer_type]).__name__}). Fix: pass overwrite=True to replace it."
        )
    _REGISTRY[layer_type] = handler


def unregister_handler(layer_type) -> None:
    """Forget the handler of ``layer_type`` (its layers become boundaries)."""
    _load_builtins()
    _REGISTRY.pop(layer_type, None)


def handler_for(layer):
    """The handler of ``layer``'s exact class, or None (a boundary)."""
    _load_builtins()
    cls = type(layer)
    if cls in _REGISTRY:
        return _REGISTRY[cls]
    return _REGISTRY.get(f"{cls.__module__}.{cls.__qualname__}")


def _type_name(layer_type) -> str:
    return layer_type if isinstance(layer_type, str) else layer_type.__qualname__


__all__ = [
    "Handler",
    "PassThrough",
    "ActivationHandler",
    "NormalizationHandler",
    "ConvHandler",
    "ConvTransposeHandler",
    "DepthwiseHandler",
    "SeparableHandler",
    "DenseHandler",
    "MergeHandler",
    "ConcatenateHandler",
    "FlattenHandler",
    "ReshapeHandler",
    "register_handler",
    "unregister_handler",
    "handler_for",
]
