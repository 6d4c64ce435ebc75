"""The zoo's networks: MLPerf Tiny reference shapes adapted to 28x28x1 Fashion-MNIST, plus two LeNets.

Each builder is ONE definition taking the Keras module to build with, so the same architecture
comes out as a Keras 3 model (``import keras``; what keras-legc prunes) and as a tf_keras model
(``import tf_keras``; what TF-MOT prunes). Layers are created in the same order in both, so
``get_weights()`` of one fits ``set_weights()`` of the other (checked in tests/integration/test_zoo.py).

The MLPerf Tiny models (mlcommons/tiny, ``benchmark/training/*/keras_model.py``, ``vww_model.py``):

- DS-CNN (keyword spotting, 64 filters): Conv(10x4, stride 2) -> BN -> ReLU -> 4 x [DW3x3 -> BN ->
  ReLU -> PW1x1 -> BN -> ReLU] -> AvgPool -> Dense. Kept as is: on 28x28 the first conv gives
  14x14x64 (the reference's 49x10 MFCC input gives 25x5x64), so it costs 4.17M MACs, not 2.66M.
- ResNet-8 (image classification, ``resnet_v1_eembc``) with **16 first-stage filters**, the
  reference's original width (commit 9adec29, 2026-03, changed its default to 26; the counts of
  the shared notes and this zoo use 16). Stacks of 16, 32, 64 filters, 1x1 projection shortcuts
  on the two strided stacks. On 28x28 the stacks run at 28, 14, 7.
- MobileNetV1 alpha 0.25 (visual wake words): a 3x3 conv of 8 filters, then 13 DW/PW blocks with
  BN (16, 32, 32, 64, 64, 128 x 6, 256, 256 pointwise filters). The reference's 96x96 input is
  halved five times (stem and blocks 2, 4, 6, 12); on 28x28 the stem keeps stride 1 and blocks
  2, 4 and 12 halve (28 -> 14 -> 7 -> 4), so the deep layers run at the reference's 6x6/3x3 scale.

``reference=True`` builds the MLPerf input shapes and class counts (49x10x1/12, 32x32x3/10,
96x96x3/2): their parameter and MAC counts reproduce the published ones, which tests the builders.
As in the references: L2 1e-4 and He-normal initialisation on the Conv2D kernels, DS-CNN's
dropout, ReLU (not ReLU6). The depthwise kernels get Keras' defaults (Glorot-uniform, no L2): the
references pass ``kernel_initializer``/``kernel_regularizer`` to ``DepthwiseConv2D``, which Keras
accepts and ignores for the depthwise kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from keras_legc.errors import InvalidArgumentError

INPUT_SHAPE = (28, 28, 1)
N_CLASSES = 10
L2 = 1e-4
#: ResNet-8's first-stage filters: the reference's original 16 (its 2026 default is 26).
RESNET8_FILTERS = 16


def _conv(k, filters, kernel, strides=1, name=None, bias=True):
    return k.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=bias, name=name,
        kernel_initializer="he_normal", kernel_regularizer=k.regularizers.l2(L2),
    )  # fmt: skip


def _bn_relu(k, x, name):
    x = k.layers.BatchNormalization(name=f"{name}_bn")(x)
    return k.layers.Activation("relu", name=f"{name}_relu")(x)


def _classifier(k, x, n_classes):
    x = k.layers.Flatten(name="flatten")(x)
    return k.layers.Dense(n_classes, activation="softmax", name="out")(x)


def ds_cnn(k: ModuleType, input_shape=INPUT_SHAPE, n_classes=N_CLASSES, filters: int = 64):
    """MLPerf Tiny's DS-CNN (``ds_cnn``, 64 filters) for ``input_shape``."""
    inputs = k.Input(shape=input_shape, name="image")
    x = _conv(k, filters, (10, 4), strides=2, name="conv1")(inputs)
    x = _bn_relu(k, x, "conv1")
    x = k.layers.Dropout(0.2, name="drop1")(x)
    for i in range(1, 5):
        x = k.layers.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        x = _bn_relu(k, x, f"dw{i}")
        x = _conv(k, filters, 1, name=f"pw{i}")(x)
        x = _bn_relu(k, x, f"pw{i}")
    x = k.layers.Dropout(0.4, name="drop2")(x)
    x = k.layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    return k.Model(inputs, _classifier(k, x, n_classes), name="ds_cnn")


def resnet8(
    k: ModuleType, input_shape=INPUT_SHAPE, n_classes=N_CLASSES, filters: int = RESNET8_FILTERS
):
    """MLPerf Tiny's ResNet-8 (``resnet_v1_eembc``) with ``filters`` first-stage filters (16)."""
    inputs = k.Input(shape=input_shape, name="image")
    x = _bn_relu(k, _conv(k, filters, 3, name="conv1")(inputs), "conv1")
    for stack, width in enumerate((filters, 2 * filters, 4 * filters), start=1):
        strides = 1 if stack == 1 else 2
        y = _conv(k, width, 3, strides=strides, name=f"s{stack}_a")(x)
        y = _bn_relu(k, y, f"s{stack}_a")
        y = _conv(k, width, 3, name=f"s{stack}_b")(y)
        y = k.layers.BatchNormalization(name=f"s{stack}_b_bn")(y)
        if stack > 1:  # the strided stacks' 1x1 projection shortcut (no BN, as the reference)
            x = _conv(k, width, 1, strides=strides, name=f"s{stack}_proj")(x)
        x = k.layers.Add(name=f"s{stack}_add")([x, y])
        x = k.layers.Activation("relu", name=f"s{stack}_relu")(x)
    x = k.layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    return k.Model(inputs, _classifier(k, x, n_classes), name="resnet8")


#: MobileNetV1's 13 blocks: pointwise filters at alpha 1 (x alpha below).
MOBILENET_BLOCKS = (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
#: Strides (stem, block 1..13) of the 96x96 reference and of the 28x28 adaptation.
MOBILENET_STRIDES_96 = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
MOBILENET_STRIDES_28 = (1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1)


def mobilenet_v1(
    k: ModuleType, input_shape=INPUT_SHAPE, n_classes=N_CLASSES, alpha: float = 0.25,
    strides: tuple[int, ...] | None = None,
):  # fmt: skip
    """MobileNetV1 (MLPerf Tiny VWW's ``mobilenet_v1``), width ``alpha``, 13 DW/PW blocks with BN;
    ``strides`` (stem, block 1..13) default to the 28x28 adaptation, or the reference's for a
    96-pixel input."""
    if strides is None:
        strides = MOBILENET_STRIDES_96 if input_shape[0] >= 96 else MOBILENET_STRIDES_28
    inputs = k.Input(shape=input_shape, name="image")
    x = _bn_relu(k, _conv(k, int(32 * alpha), 3, strides=strides[0], name="conv1")(inputs), "conv1")
    for i, (width, stride) in enumerate(zip(MOBILENET_BLOCKS, strides[1:], strict=True), start=1):
        x = k.layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"dw{i}")(x)
        x = _bn_relu(k, x, f"dw{i}")
        x = _bn_relu(k, _conv(k, int(width * alpha), 1, name=f"pw{i}")(x), f"pw{i}")
    x = k.layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    return k.Model(inputs, _classifier(k, x, n_classes), name="mobilenet_v1_025")


def lenet_300_100(k: ModuleType, input_shape=INPUT_SHAPE, n_classes=N_CLASSES):
    """LeNet-300-100: 784-300-100-10, ReLU, softmax."""
    inputs = k.Input(shape=input_shape, name="image")
    x = k.layers.Flatten(name="flatten")(inputs)
    x = k.layers.Dense(300, activation="relu", name="fc1")(x)
    x = k.layers.Dense(100, activation="relu", name="fc2")(x)
    out = k.layers.Dense(n_classes, activation="softmax", name="out")(x)
    return k.Model(inputs, out, name="lenet_300_100")


def lenet5(k: ModuleType, input_shape=INPUT_SHAPE, n_classes=N_CLASSES):
    """A LeNet-5-style convnet: Conv(6, 5x5, same) -> MaxPool -> Conv(16, 5x5, valid) -> MaxPool ->
    Dense 120 -> 84 -> 10, ReLU (61.7K parameters on 28x28)."""
    inputs = k.Input(shape=input_shape, name="image")
    x = k.layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = k.layers.MaxPooling2D(name="pool1")(x)
    x = k.layers.Conv2D(16, 5, padding="valid", activation="relu", name="conv2")(x)
    x = k.layers.MaxPooling2D(name="pool2")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(120, activation="relu", name="fc1")(x)
    x = k.layers.Dense(84, activation="relu", name="fc2")(x)
    out = k.layers.Dense(n_classes, activation="softmax", name="out")(x)
    return k.Model(inputs, out, name="lenet5")


@dataclass(frozen=True)
class NetDef:
    """One zoo net: its builder and, for the MLPerf ones, the reference input and classes."""

    name: str
    builder: Callable
    description: str
    reference_input: tuple[int, ...] | None = None
    reference_classes: int | None = None


NETS: dict[str, NetDef] = {
    n.name: n
    for n in (
        NetDef("ds_cnn", ds_cnn, "MLPerf Tiny KWS DS-CNN, 64 filters", (49, 10, 1), 12),
        NetDef(
            "resnet8",
            resnet8,
            f"MLPerf Tiny IC ResNet-8, {RESNET8_FILTERS} first-stage filters",
            (32, 32, 3),
            10,
        ),  # fmt: skip
        NetDef(
            "mobilenet_v1_025",
            mobilenet_v1,
            "MLPerf Tiny VWW MobileNetV1 alpha 0.25",
            (96, 96, 3),
            2,
        ),  # fmt: skip
        NetDef("lenet_300_100", lenet_300_100, "LeNet-300-100 (784-300-100-10)"),
        NetDef("lenet5", lenet5, "LeNet-5-style convnet (6-16 conv, 120-84 dense)"),
    )
}


def build(name: str, k: ModuleType, *, seed: int | None = None, reference: bool = False):
    """The zoo net ``name`` built with Keras module ``k`` (``keras`` or ``tf_keras``).

    Args:
        name: a key of :data:`NETS`.
        k: the Keras module: ``keras`` (Keras 3) or ``tf_keras`` (Keras 2, for TF-MOT).
        seed: set Keras' random seed first (the initial weights then depend on it alone).
        reference: the MLPerf Tiny input shape and class count instead of 28x28x1 / 10.

    Raises:
        InvalidArgumentError: unknown name, or ``reference`` for a net without one.

    Example:
        >>> import keras
        >>> build("resnet8", keras, seed=0).count_params()
        78666
    """
    if name not in NETS:
        raise InvalidArgumentError(f"unknown zoo net {name!r}. Fix: use one of {', '.join(NETS)}.")
    net = NETS[name]
    if seed is not None:
        k.utils.set_random_seed(seed)
    if not reference:
        return net.builder(k)
    if net.reference_input is None:
        raise InvalidArgumentError(f"{name} has no MLPerf Tiny reference shape.")
    return net.builder(k, net.reference_input, net.reference_classes)


# ---- MACs ----------------------------------------------------------------------------------------


def count_macs(model, *, nonzero: bool = False) -> int:
    """Multiply-accumulates per sample of a Keras 3 model: ``keras_legc.count_macs`` (every
    Conv2D, DepthwiseConv2D and Dense; BN, pooling, additions and activations are free), or with
    ``nonzero`` only those of its non-zero kernel weights (what a sparse kernel would compute).

    Example:
        >>> count_macs(build("lenet_300_100", keras))
        266200
    """
    import keras_legc as kl

    if not nonzero:
        return int(kl.count_macs(model))
    total = 0
    for layer in model.layers:
        if type(layer).__name__ not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        out_shape = tuple(layer.output.shape)
        # Each kernel weight is used once per output position (Dense: per leading position).
        positions = int(np.prod(out_shape[1:-1])) if len(out_shape) > 2 else 1
        total += int(np.count_nonzero(np.asarray(layer.kernel))) * positions
    return int(total)
