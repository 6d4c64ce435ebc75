"""legc_research.zoo: the nets' shapes, parameter and MAC counts (against hand counts and the MLPerf
Tiny anchors), the Keras 3 / tf_keras twins, and the trainer's determinism and cache key."""

import shutil

import keras
import numpy as np
import pytest
import tf_keras

from keras_legc._env import machine
from keras_legc.errors import InvalidArgumentError
from legc_research.datasets import find_data_dir
from legc_research.zoo import NETS, build, count_macs
from legc_research.zoo.train import Recipe, cache_key, load_data, train_dense


def _hand_macs_28() -> dict:
    """MACs per sample counted by hand from each architecture (out positions x kernel size)."""
    ds_cnn = 14 * 14 * 64 * (10 * 4) + 4 * (14 * 14 * 64 * 9 + 14 * 14 * 64 * 64) + 64 * 10
    resnet8 = (
        28 * 28 * 16 * 9 * 1  # stem
        + 2 * 28 * 28 * 16 * 9 * 16  # stack 1
        + 14 * 14 * 32 * 9 * 16
        + 14 * 14 * 32 * 9 * 32
        + 14 * 14 * 32 * 16  # stack 2 + proj
        + 7 * 7 * 64 * 9 * 32
        + 7 * 7 * 64 * 9 * 64
        + 7 * 7 * 64 * 32  # stack 3 + proj
        + 64 * 10
    )
    # MobileNetV1-0.25 on 28x28: stem stride 1, blocks 2, 4 and 12 halve (28 -> 14 -> 7 -> 4).
    widths = (16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256)
    sides = (28, 14, 14, 7, 7, 7, 7, 7, 7, 7, 7, 4, 4)
    mobilenet, cin = 28 * 28 * 8 * 9, 8
    for w, s in zip(widths, sides, strict=True):
        mobilenet += s * s * cin * 9 + s * s * cin * w
        cin = w
    mobilenet += 256 * 10
    lenet5 = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 25 * 6 + 400 * 120 + 120 * 84 + 84 * 10
    return {"ds_cnn": ds_cnn, "resnet8": resnet8, "mobilenet_v1_025": mobilenet,
            "lenet_300_100": 784 * 300 + 300 * 100 + 100 * 10, "lenet5": lenet5}  # fmt: skip


@pytest.mark.parametrize("name", list(NETS))
def test_macs_and_params_match_hand_counts(name):
    model = build(name, keras, seed=0)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert count_macs(model) == _hand_macs_28()[name]
    hand_params = {"ds_cnn": 24_778, "resnet8": 78_378, "mobilenet_v1_025": 223_706,
                   "lenet_300_100": 266_610, "lenet5": 61_706}  # fmt: skip
    assert model.count_params() == hand_params[name]


# The MLPerf Tiny reference counts (shared notes, anchors section 4): params with BN, weights +
# biases without BN, MACs. ResNet-8 with the original 16 first-stage filters.
ANCHORS = {
    "ds_cnn": (24_908, 22_604, 2_656_768),
    "resnet8": (78_666, 77_706, 12_501_632),
    "mobilenet_v1_025": (221_794, 210_850, 7_489_664),
}


@pytest.mark.parametrize("name", list(ANCHORS))
def test_reference_shapes_reproduce_the_mlperf_counts(name):
    model = build(name, keras, seed=0, reference=True)
    params, no_bn, macs = ANCHORS[name]
    bn = sum(la.count_params() for la in model.layers if "BatchNormalization" in type(la).__name__)
    assert (model.count_params(), model.count_params() - bn, count_macs(model)) == (
        params,
        no_bn,
        macs,
    )


def test_nonzero_macs_drop_by_the_zeroed_weights_times_positions():
    model = build("lenet5", keras, seed=0)
    conv2, fc1 = model.get_layer("conv2"), model.get_layer("fc1")
    k = conv2.kernel.numpy()
    k[..., :4] = 0.0  # 4 of 16 output channels: 25 * 6 * 4 weights, each at 10 x 10 positions
    conv2.kernel.assign(k)
    w = fc1.kernel.numpy()
    w[:100] = 0.0  # 100 of 400 inputs: 100 * 120 weights, one position
    fc1.kernel.assign(w)
    expected = count_macs(model) - 25 * 6 * 4 * 100 - 100 * 120
    assert count_macs(model, nonzero=True) == expected
    assert count_macs(model) == _hand_macs_28()["lenet5"]  # structural MACs unchanged


@pytest.mark.parametrize("name", list(NETS))
def test_keras3_and_tf_keras_twins_compute_the_same(name):
    """One definition, two Kerases: the Keras 3 weights in the tf_keras twin give the same outputs
    (BN statistics and scales randomised too, so every layer takes part)."""
    k3 = build(name, keras, seed=1)
    rng = np.random.default_rng(0)

    def randomised(path, w):
        if path.startswith("dw") and path.endswith("kernel"):  # 9 taps: unit gain (Keras'
            return rng.normal(0.0, (2 / 9) ** 0.5, w.shape).astype(np.float32)  # fans do not)
        if path.endswith(("gamma", "moving_variance")):
            return rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
        if path.endswith(("beta", "moving_mean", "bias")):
            return rng.normal(0.0, 0.1, w.shape).astype(np.float32)
        return w

    weights = [randomised(v.path, w) for v, w in zip(k3.weights, k3.get_weights(), strict=True)]
    k3.set_weights(weights)
    k2 = build(name, tf_keras, seed=1)
    k2.set_weights(k3.get_weights())
    x = rng.random((4, 28, 28, 1), dtype=np.float32)
    a = np.asarray(k3(x, training=False))
    b = np.asarray(k2(x, training=False))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[0], a[1])  # the outputs depend on the input


def test_unknown_net_and_missing_reference_are_refused():
    with pytest.raises(InvalidArgumentError, match="unknown zoo net"):
        build("resnet50", keras)
    with pytest.raises(InvalidArgumentError, match="no MLPerf Tiny reference"):
        build("lenet5", keras, reference=True)


needs_data = pytest.mark.skipif(
    find_data_dir(required=("fashion-mnist/train-images-idx3-ubyte.gz",)) is None,
    reason="needs LEGC_DATA_DIR with fashion-mnist/",
)


@needs_data
def test_training_is_deterministic_and_cached_by_recipe(tmp_path):
    data = load_data(subset=(2000, 100, 100))  # 63 steps of 32: 6 LE windows of 10
    logs = []
    a = train_dense("lenet_300_100", 3, data, tmp_path / "a", quick=True, log=logs.append)
    b = train_dense("lenet_300_100", 3, data, tmp_path / "b", quick=True, log=logs.append)
    assert len(logs) == 4  # trained twice (start and end lines), in two caches
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    again = train_dense("lenet_300_100", 3, data, tmp_path / "a", quick=True, log=logs.append)
    assert len(logs) == 4 and again.folder == a.folder  # loaded, not retrained
    # the checkpoint names the CPU it was trained on (another CPU can train other weights)
    assert again.meta["machine"]["cpu"] == machine()["cpu"]
    np.testing.assert_array_equal(again.model.get_weights()[0], a.model.get_weights()[0])
    assert again.scores.n_weights == a.scores.n_weights
    assert again.history.n_windows == a.history.n_windows
    # kept without its history (the committed evidence cache): the model and scores still load
    shutil.rmtree(a.folder / "history")
    bare = train_dense("lenet_300_100", 3, data, tmp_path / "a", quick=True, log=logs.append)
    assert len(logs) == 4 and bare.history is None
    np.testing.assert_array_equal(bare.scores.pvalues, a.scores.pvalues)
    # any change to the recipe or the data changes the checkpoint's key
    rec = Recipe(epochs=1, finetune_epochs=1, batch_size=32, window=10)
    key = cache_key("lenet_300_100", 3, rec, data)
    assert key != cache_key("lenet_300_100", 3, Recipe(epochs=2, batch_size=32, window=10), data)
    assert key != cache_key("lenet_300_100", 4, rec, data)
    assert key != cache_key("lenet_300_100", 3, rec, load_data(subset=(1999, 100, 100)))
