"""Rebuild (keras_legc/structure/rebuild.py) and the MAC counter: a rebuilt model equals the
original with the removed channels zeroed (the only difference is the summation order: float32,
rtol 1e-5, atol 1e-6 of outputs of order 1); it is plain, saves and loads; MACs equal hand
counts."""

from __future__ import annotations

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.errors import InvalidArgumentError
from keras_legc.structure import build_graph, remove_channels, zero_channels

keras = pytest.importorskip("keras")
L = keras.layers
RTOL, ATOL = 1e-5, 1e-6


def every_coupling():
    """One model with each coupling rule: BN, residual Add, SE gate, depthwise with multiplier,
    separable, Concatenate, a Keras op, Flatten into Dense, Dense into Dense."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="r1")(x)
    y = L.Conv2D(8, 3, padding="same", name="c2")(x)
    y = L.Add(name="res")([x, y])
    s = L.GlobalAveragePooling2D(name="gap")(y)
    s = L.Dense(8, activation="sigmoid", name="se")(s)
    s = L.Reshape((1, 1, 8), name="rs")(s)
    y = L.Multiply(name="mul")([y, s])
    z = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(y)
    z = L.SeparableConv2D(6, 3, name="sep")(z)
    z = L.Concatenate(name="cat")([z, L.Conv2D(4, 3, name="c3")(y)])
    z = L.MaxPooling2D(name="pool")(z + 1.0)
    z = L.Flatten(name="fl")(z)
    z = L.Dense(7, activation="relu", name="d1")(z)
    z = L.Dense(5, activation="tanh", name="d2")(z)
    model = keras.Model(inp, L.Dense(3, name="out")(z))
    bn = model.get_layer("bn1")  # non-trivial statistics, so BN is not an identity
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(size=8), rng.normal(size=8),
                    rng.uniform(0.5, 2, 8)])  # fmt: skip
    return model


def random_removal(graph, seed, fraction=0.5):
    rng = np.random.default_rng(seed)
    return {g.id: rng.choice(g.size, max(1, int(fraction * g.size)), replace=False)
            for g in graph.groups if g.prunable}  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rebuilt_model_equals_the_zeroed_original(seed):
    model = every_coupling()
    graph = build_graph(model)
    removed = random_removal(graph, seed)
    small, zeroed = remove_channels(graph, removed), zero_channels(graph, removed)
    x = np.random.default_rng(seed).normal(size=(6, 8, 8, 3)).astype("float32")
    want, got = np.asarray(zeroed(x)), np.asarray(small(x))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # not vacuous: removing the same channels without zeroing them changes the outputs
    assert np.abs(np.asarray(model(x)) - got).max() > 1e-3
    assert small.count_params() == graph.count_params(removed) < model.count_params()
    assert [la.name for la in small.layers] == [la.name for la in model.layers]
    assert {type(la) for la in small.layers} == {type(la) for la in model.layers}  # no wrappers


def test_rebuilt_sequential_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((10, 10, 1)), L.Conv2D(6, 3, name="c"), L.BatchNormalization(name="bn"),
        L.Activation("relu", name="act"), L.Conv2D(4, 3, strides=2, name="c2"),
        L.Dropout(0.1, name="drop"), L.Flatten(name="fl"), L.Dense(5, name="h"),
        L.Dense(2, name="out"),
    ], name="seq")  # fmt: skip
    graph = build_graph(model)
    removed = random_removal(graph, 3)
    small = remove_channels(graph, removed)
    assert isinstance(small, keras.Sequential) and small.name == "seq"
    x = np.random.default_rng(2).normal(size=(4, 10, 10, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(small(x)), np.asarray(zero_channels(graph, removed)(x)),
                               rtol=RTOL, atol=ATOL)  # fmt: skip
    path = tmp_path / "small.keras"
    small.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(small(x)))


def test_compiled_models_come_back_compiled():
    model = every_coupling()
    model.compile("adam", "mse")
    small = kl.prune_channels(model, ratio=0.25)
    assert small.compiled and small.optimizer is not model.optimizer


def test_bad_removals_are_refused():
    graph = build_graph(every_coupling())
    out = next(g for g in graph.groups if "out" in g.layers)
    c1 = next(g for g in graph.groups if "c1" in g.layers)
    with pytest.raises(InvalidArgumentError, match="cannot be pruned"):
        remove_channels(graph, {out.id: [0]})
    with pytest.raises(InvalidArgumentError, match="disconnect"):
        remove_channels(graph, {c1.id: range(c1.size)})
    with pytest.raises(InvalidArgumentError, match="0..7"):
        remove_channels(graph, {c1.id: [8]})
    with pytest.raises(InvalidArgumentError, match="no channel group"):
        remove_channels(graph, {999: [0]})


def test_mac_counts_equal_hand_counts():
    inp = keras.Input((10, 10, 3))
    x = L.Conv2D(8, 3, name="conv")(inp)  # out 8x8x8: 64 positions * 3*3*3*8
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)  # 64 * 3*3*8*2
    x = L.SeparableConv2D(4, 3, strides=2, name="sep")(x)  # out 3x3: 9 * (3*3*16 + 16*4)
    x = L.Conv2DTranspose(5, 2, strides=2, name="tr")(x)  # 9 input positions * 2*2*5*4
    x = L.BatchNormalization(name="bn")(x)  # 0
    x = L.Conv2D(6, 1, groups=1, name="pw")(x)  # out 6x6: 36 * 5*6
    x = L.Dense(7, name="d3")(x)  # per position: 36 * 6*7
    x = L.Flatten()(x)
    out = L.Dense(2, name="out")(x)  # 252*2
    hand = (64 * 3 * 3 * 3 * 8 + 64 * 3 * 3 * 8 * 2 + 9 * (3 * 3 * 16 + 16 * 4) + 9 * 2 * 2 * 5 * 4
            + 36 * 5 * 6 + 36 * 6 * 7 + 6 * 6 * 7 * 2)  # fmt: skip
    model = keras.Model(inp, out)
    assert kl.count_macs(model) == hand
    grouped = keras.Sequential([keras.Input((5, 5, 4)), L.Conv2D(6, 3, groups=2)])
    assert kl.count_macs(grouped) == 9 * 3 * 3 * 2 * 6  # kernel (3, 3, 4/2, 6)


def test_mac_count_of_a_pruned_model_is_what_the_graph_predicted():
    model = every_coupling()
    graph = build_graph(model)
    removed = random_removal(graph, 4)
    small = remove_channels(graph, removed)
    assert kl.count_macs(small) == graph.count_macs(removed) < kl.count_macs(model)


def conv1d_net():
    inp = keras.Input((20, 2))
    x = L.Conv1D(6, 3, name="c")(inp)
    x = L.PReLU(shared_axes=[1], name="prelu")(x)
    x = L.ZeroPadding1D(1)(x)
    x = L.SeparableConv1D(5, 3, name="sep")(x)
    x = L.UpSampling1D(2)(x)
    x = L.Conv1DTranspose(4, 3, strides=2, name="tr")(x)
    x = L.Cropping1D(1)(x)
    x = L.DepthwiseConv1D(3, name="dw")(x)
    x = L.GlobalMaxPooling1D()(x)
    return keras.Model(inp, L.Dense(2, name="out")(x))


def conv3d_net():
    inp = keras.Input((6, 6, 6, 1))
    x = L.Conv3D(5, 3, name="c")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Conv3DTranspose(4, 2, strides=2, name="tr")(x)
    x = L.AveragePooling3D(2)(x)
    x = L.Conv3D(3, 1, name="pw")(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(2, name="out")(x))


def conv2d_transpose_net():
    inp = keras.Input((5, 5, 2))
    x = L.Conv2DTranspose(6, 3, strides=2, padding="same", name="tr")(inp)
    x = L.LeakyReLU(name="lrelu")(x)
    x = L.Conv2D(4, 3, padding="same", name="c")(x)
    x = L.Cropping2D(1)(L.ZeroPadding2D(1)(x))
    x = L.Reshape((-1, 4), name="rows")(x)  # keeps the channel axis last
    x = L.Dense(3, name="d")(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(2, name="out")(x))


@pytest.mark.parametrize("build", [conv1d_net, conv3d_net, conv2d_transpose_net])
def test_other_layer_families_rebuild_exactly(build):
    keras.utils.set_random_seed(3)
    model = build()
    graph = build_graph(model)
    assert sum(g.prunable for g in graph.groups) >= 3
    removed = random_removal(graph, 5)
    small = remove_channels(graph, removed)
    x = np.random.default_rng(3).normal(size=(4, *model.input_shape[1:])).astype("float32")
    want = keras.ops.convert_to_numpy(zero_channels(graph, removed)(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(x)), want, rtol=RTOL, atol=ATOL)
    assert small.count_params() == graph.count_params(removed) < model.count_params()
    assert kl.count_macs(small) == graph.count_macs(removed) < kl.count_macs(model)


def test_layer_normalization_groups_are_pruned_but_not_exactly():
    keras.utils.set_random_seed(4)
    inp = keras.Input((6,))
    x = L.Dense(8, name="h")(inp)
    x = L.LayerNormalization(name="ln")(x)
    model = keras.Model(inp, L.Dense(2, name="out")(x))
    graph = build_graph(model)
    group = next(g for g in graph.groups if "h" in g.layers)
    assert group.prunable and any(e.layer == ("ln",) for e in group.entries)
    small = remove_channels(graph, {group.id: [0, 1, 2]})
    assert small.get_layer("ln").gamma.shape == (5,)
