"""Channel pruning of real architectures (keras.applications, weights=None, small inputs) and of
a small convnet end to end: pruned 30%, the expected parameters gone, outputs equal to the
original with the removed channels zeroed (float32: rtol 1e-4, atol 1e-5 relative to the output
scale), .tflite export with output parity; the JAX backend in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.keras.export import export_tflite
from keras_legc.structure import build_graph, remove_channels, zero_channels
from keras_legc.structure.importance import l2, score_groups
from keras_legc.structure.prune import choose, keep_every_layer

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":  # pragma: no cover - the JAX case runs below
    pytest.skip("the in-process tests run on the TensorFlow backend", allow_module_level=True)

SHAPES = {"InceptionV3": (75, 75, 3), "Xception": (71, 71, 3), "InceptionResNetV2": (75, 75, 3)}
REQUIRED = ["MobileNetV2", "ResNet50", "DenseNet121", "EfficientNetB0"]
OTHERS = [
    "MobileNet", "MobileNetV3Small", "MobileNetV3Large", "ResNet50V2", "NASNetMobile",
    "ConvNeXtTiny", "EfficientNetV2B0", "Xception", "InceptionV3", "InceptionResNetV2", "VGG16",
]  # fmt: skip


def calibrate(model, x) -> None:
    """BatchNorm statistics from ``x`` (one training-mode pass with momentum 0): a freshly
    initialised deep net otherwise gives near-constant outputs, which export refuses."""
    bns = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    saved = [b.momentum for b in bns]
    for b in bns:
        b.momentum = 0.0
    model(x, training=True)
    for b, m in zip(bns, saved, strict=True):
        b.momentum = m


def application(name):
    keras.utils.set_random_seed(0)
    shape = SHAPES.get(name, (32, 32, 3))
    model = getattr(keras.applications, name)(
        weights=None, input_shape=shape, classes=10, classifier_activation=None
    )
    calibrate(model, np.random.default_rng(0).normal(size=(32, *shape)).astype("float32"))
    return model, np.random.default_rng(1).normal(size=(8, *shape)).astype("float32")


def numpy_of(model, x):
    return keras.ops.convert_to_numpy(model(x))


def check_pruned_and_exact(model, x):
    """30% by L2: the predicted parameters; a random removal equals the zeroed original."""
    graph = build_graph(model)
    plan = choose(graph, score_groups(graph, l2), ("ratio", 0.3), 1, False)
    small = kl.prune_channels(model, ratio=0.3)
    assert small.output_shape == model.output_shape
    assert small.count_params() == graph.count_params(plan) < model.count_params()
    prunable = sum(g.size for g in graph.groups if g.prunable)
    assert 0.25 * prunable < sum(len(v) for v in plan.values()) <= round(0.3 * prunable)
    assert np.all(np.isfinite(numpy_of(small, x)))
    # exact only where no LayerNormalization normalizes over the removed channels
    rng = np.random.default_rng(0)
    ln = keras.layers.LayerNormalization
    removed = {
        g.id: rng.choice(g.size, g.size // 3, replace=False)
        for g in graph.groups
        if g.prunable and not any(isinstance(graph.layers[e.layer], ln) for e in g.entries)
    }
    removed = keep_every_layer(graph, {}, removed)
    assert removed
    want = numpy_of(zero_channels(graph, removed), x)
    got = numpy_of(remove_channels(graph, removed), x)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)
    return small


@pytest.mark.parametrize("name", REQUIRED)
def test_required_architectures_prune_and_export_with_parity(name, tmp_path):
    model, x = application(name)
    small = check_pruned_and_exact(model, x)
    report = export_tflite(small, tmp_path / "m.tflite", reference_inputs=x)
    assert report["verification"]["ok"], report["verification"]


@pytest.mark.parametrize("name", OTHERS)
def test_other_applications_prune_exactly(name):
    model, x = application(name)
    check_pruned_and_exact(model, x)


def small_convnet():
    keras.utils.set_random_seed(2)
    L = keras.layers
    inp = keras.Input((16, 16, 1))
    x = L.Conv2D(16, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.Conv2D(16, 1, name="pw")(y)
    x = L.Add(name="res")([x, y])
    x = L.MaxPooling2D()(x)
    x = L.SeparableConv2D(24, 3, name="sep")(x)
    x = L.Flatten()(x)
    x = L.Dense(32, activation="relu", name="d")(x)
    return keras.Model(inp, L.Dense(10, name="out")(x), name="small_convnet")


@pytest.mark.parametrize("quantization", ["float", "int8"])
def test_a_pruned_convnet_exports_float_and_int8(quantization, tmp_path):
    model = small_convnet()
    x = np.random.default_rng(0).normal(size=(96, 16, 16, 1)).astype("float32")
    calibrate(model, x)
    small = kl.prune_channels(model, macs=kl.count_macs(model) // 2, round_to=4)
    assert kl.count_macs(small) <= kl.count_macs(model) // 2
    report = export_tflite(small, tmp_path / "m.tflite", quantization=quantization,
                           representative_data=x)  # fmt: skip
    assert report["verification"]["ok"], report["verification"]


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import keras_legc as kl
    from keras_legc.structure import build_graph, remove_channels, zero_channels
    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2))
    x = L.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    y = L.Conv2D(8, 3, padding="same", name="c2")(L.ReLU()(x))
    x = L.Add()([x, y])
    s = L.Dense(8, activation="sigmoid", name="se")(L.GlobalAveragePooling2D()(x))
    x = L.Multiply()([x, L.Reshape((1, 1, 8))(s)])
    x = L.Concatenate()([L.SeparableConv2D(4, 3, name="sep")(x), L.Conv2D(4, 3, name="c3")(x)])
    x = L.Dense(6, activation="relu", name="d")(L.Flatten()(x))
    model = keras.Model(inp, L.Dense(3, name="out")(x))
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(16, 8, 8, 2)).astype("float32")
    graph = build_graph(model)
    removed = {g.id: rng.choice(g.size, g.size // 2, replace=False)
               for g in graph.groups if g.prunable}
    want = keras.ops.convert_to_numpy(zero_channels(graph, removed)(xs))
    small = remove_channels(graph, removed)
    got = keras.ops.convert_to_numpy(small(xs))
    taylor = kl.prune_channels(model, ratio=0.3, importance="taylor",
                               data=(xs, rng.integers(0, 3, 16)))
    path = sys.argv[1] + "/small.keras"
    small.save(path)
    loaded = keras.ops.convert_to_numpy(keras.models.load_model(path)(xs))
    report = kl.export_tflite(small, sys.argv[1] + "/small.tflite", reference_inputs=xs)
    print(json.dumps({
        "backend": keras.backend.backend(), "error": float(np.abs(got - want).max()),
        "scale": float(np.abs(want).max()), "params": [model.count_params(),
        small.count_params(), graph.count_params(removed), taylor.count_params()],
        "loaded": float(np.abs(loaded - got).max()), "export": report["verification"]["ok"],
    }))
    """
)


def test_jax_backend_prunes_rebuilds_and_exports(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["backend"] == "jax"
    assert r["error"] <= 1e-5 * max(1.0, r["scale"])
    original, small, predicted, taylor = r["params"]
    assert small == predicted < original and taylor < original
    assert r["loaded"] == 0.0 and r["export"]
