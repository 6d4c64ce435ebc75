"""The channel dependency graph (keras_legc/structure/graph.py, handlers.py) on tiny Keras 3
models: which (layer, weight, axis, indices) each group holds, written out by hand per model;
boundaries; refusals; user handlers."""

from __future__ import annotations

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.errors import InvalidArgumentError, ModelStructureError
from keras_legc.structure import (
    PassThrough,
    build_graph,
    register_handler,
    remove_channels,
    unregister_handler,
    zero_channels,
)

keras = pytest.importorskip("keras")
L = keras.layers


def entries(group) -> dict[str, tuple]:
    """``"layer.weight@axis" -> (positions, channels)`` of a group."""
    return {f"{'/'.join(e.layer)}.{e.weight}@{e.axis}": (e.positions.tolist(), e.channels.tolist())
            for e in group.entries}  # fmt: skip


def group_of(graph, layer_name):
    hits = [g for g in graph.groups if layer_name in g.layers]
    assert len(hits) == 1, [str(g) for g in graph.groups]
    return hits[0]


def conv_bn_conv():
    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(3, 1, name="c2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, L.Dense(2, name="out")(x))


def test_conv_bn_conv_group_holds_the_filter_the_bn_entries_and_the_next_input():
    graph = build_graph(conv_bn_conv())
    g = group_of(graph, "c1")
    assert g.size == 4 and g.prunable
    four = ([0, 1, 2, 3], [0, 1, 2, 3])
    assert entries(g) == {
        "c1.kernel@3": four, "c1.bias@0": four, "bn.gamma@0": four, "bn.beta@0": four,
        "bn.moving_mean@0": four, "bn.moving_variance@0": four, "c2.kernel@2": four,
    }  # fmt: skip
    c2 = group_of(graph, "c2")  # through GlobalAveragePooling2D into the Dense kernel's rows
    assert entries(c2)["out.kernel@0"] == ([0, 1, 2], [0, 1, 2])
    assert not group_of(graph, "out").prunable  # the classifier's outputs
    assert "output" in group_of(graph, "out").blocked
    text = str(g)
    assert "ChannelGroup" in text and "bn.gamma axis 0" in text and "prunable" in text


def test_residual_add_and_broadcast_gate_couple_every_branch():
    inp = keras.Input((5, 5, 3))
    a = L.Conv2D(4, 1, name="a")(inp)
    b = L.Conv2D(4, 3, padding="same", name="b")(a)
    x = L.Add(name="res")([a, b])
    s = L.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    s = L.Conv2D(4, 1, activation="sigmoid", name="gate")(s)  # (1, 1, 4) times (5, 5, 4)
    x = L.Multiply(name="se")([x, s])
    spatial = L.Conv2D(1, 1, name="spatial")(x)  # a width-1 gate couples nothing
    x = L.Multiply(name="att")([x, spatial])
    x = L.Flatten(name="flat")(x)
    graph = build_graph(keras.Model(inp, L.Dense(2, name="out")(x)))
    g = group_of(graph, "a")
    assert g.layers == ["a", "b", "gate"] and g.size == 4
    e = entries(g)
    for name in ("a.kernel@3", "b.kernel@3", "b.kernel@2", "gate.kernel@3", "gate.kernel@2",
                 "spatial.kernel@2"):  # fmt: skip
        assert e[name] == ([0, 1, 2, 3], [0, 1, 2, 3]), name
    # Flatten of (5, 5, 4): feature p*4 + c is channel c
    pos, ch = e["out.kernel@0"]
    assert pos == list(range(100)) and ch == [p % 4 for p in range(100)]
    assert group_of(graph, "spatial").size == 1 and not group_of(graph, "spatial").prunable


def test_concatenate_offsets_split_the_next_kernel_between_groups():
    inp = keras.Input((4, 4, 2))
    a = L.Conv2D(3, 1, name="a")(inp)
    b = L.Conv2D(2, 1, name="b")(inp)
    x = L.Concatenate(name="cat")([a, b])
    x = L.Conv2D(5, 1, name="c")(x)
    x = L.GlobalMaxPooling2D()(x)
    graph = build_graph(keras.Model(inp, L.Dense(2, name="out")(x)))
    assert entries(group_of(graph, "a"))["c.kernel@2"] == ([0, 1, 2], [0, 1, 2])
    assert entries(group_of(graph, "b"))["c.kernel@2"] == ([3, 4], [0, 1])


def test_depthwise_multiplier_and_separable_pointwise_index_by_input_channel():
    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 1, name="c")(inp)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = L.SeparableConv2D(4, 3, depth_multiplier=2, name="sep")(x)
    x = L.GlobalAveragePooling2D()(x)
    graph = build_graph(keras.Model(inp, L.Dense(2, name="out")(x)))
    e = entries(group_of(graph, "c"))
    assert e["dw.kernel@2"] == ([0, 1, 2], [0, 1, 2])
    assert e["dw.bias@0"] == ([0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2])  # channel c*2 + j
    assert e["sep.depthwise_kernel@2"] == ([0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2])
    # the separable's pointwise input is dw's output times its own multiplier: 12 positions
    assert e["sep.pointwise_kernel@2"] == (list(range(12)), [p // 4 for p in range(12)])
    assert entries(group_of(graph, "sep"))["sep.pointwise_kernel@3"][0] == [0, 1, 2, 3]


def test_grouped_conv_is_a_boundary_but_a_depthwise_grouped_conv_passes_channels():
    inp = keras.Input((4, 4, 2))
    x = L.Conv2D(4, 1, name="a")(inp)
    x = L.Conv2D(4, 3, groups=2, name="grouped")(x)
    x = L.Conv2D(6, 1, name="b")(x)
    x = L.Conv2D(6, 1, groups=6, name="dwlike")(x)
    x = L.GlobalAveragePooling2D()(x)
    graph = build_graph(keras.Model(inp, L.Dense(2, name="out")(x)))
    assert "grouped" in group_of(graph, "a").blocked
    assert not group_of(graph, "grouped").prunable
    b = group_of(graph, "b")
    assert b.prunable and entries(b)["dwlike.kernel@3"] == (list(range(6)), list(range(6)))


def test_unknown_layers_are_boundaries_named_in_the_reason():
    inp = keras.Input((4,))
    x = L.Dense(5, name="h")(inp)
    x = L.Lambda(lambda t: t * 2.0, name="double")(x)
    x = L.Dense(3, name="h2")(x)
    graph = build_graph(keras.Model(inp, L.Dense(2, name="out")(x)))
    assert "double" in group_of(graph, "h").blocked
    assert group_of(graph, "h2").prunable


def test_keras_ops_between_layers_pass_channels_through():
    inp = keras.Input((4, 4, 1))
    x = L.Conv2D(3, 1, name="c")(inp)
    y = keras.ops.relu(x + 3.0) * (1.0 / 6.0)  # MobileNetV3's hard sigmoid
    x = L.Multiply(name="hs")([x, y])
    x = L.GlobalAveragePooling2D()(x)
    graph = build_graph(keras.Model(inp, L.Dense(2, name="out")(x)))
    assert group_of(graph, "c").prunable


def test_shared_layer_calls_couple_their_inputs():
    inp = keras.Input((4,))
    a = L.Dense(3, name="a")(inp)
    b = L.Dense(3, name="b")(inp)
    shared = L.Dense(2, name="shared")
    x = L.Add(name="sum")([shared(a), shared(b)])
    graph = build_graph(keras.Model(inp, L.Dense(2, name="out")(x)))
    assert group_of(graph, "a") is group_of(graph, "b")


def test_nested_models_are_walked_and_their_inputs_resized():
    inner_in = keras.Input((3, 3, 4))
    inner = keras.Model(inner_in, L.Conv2D(5, 1, name="inner_conv")(inner_in), name="block")
    seq = keras.Sequential([keras.Input((3, 3, 5)), L.ReLU(name="r"), L.Conv2D(2, 1, name="s")],
                           name="seq")  # fmt: skip
    inp = keras.Input((3, 3, 2))
    x = L.Conv2D(4, 1, name="stem")(inp)
    x = seq(inner(x))
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(2, name="out")(x))
    graph = build_graph(model)
    stem = group_of(graph, "stem")
    assert "block/inner_conv.kernel@2" in entries(stem)
    assert group_of(graph, "block/inner_conv").prunable
    excluded = build_graph(model, exclude=["block"])  # a nested model's outputs kept
    assert "excluded layer 'block'" in group_of(excluded, "block/inner_conv").blocked
    removed = {stem.id: [1, 3], group_of(graph, "block/inner_conv").id: [0]}
    small = remove_channels(graph, removed)
    assert small.get_layer("block").get_layer("inner_conv").kernel.shape == (1, 1, 2, 4)
    assert small.get_layer("seq").get_layer("s").kernel.shape == (1, 1, 4, 2)
    x = np.random.default_rng(0).normal(size=(3, 3, 3, 2)).astype("float32")
    zeroed = zero_channels(graph, removed)
    np.testing.assert_allclose(np.asarray(small(x)), np.asarray(zeroed(x)), rtol=1e-5, atol=1e-6)


def test_refusals_name_the_problem():
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ModelStructureError, match="subclassed"):
        build_graph(Sub())
    with pytest.raises(ModelStructureError, match="never built"):
        build_graph(keras.Sequential([L.Dense(2)]))
    import tf_keras

    with pytest.raises(ModelStructureError, match="Keras 3"):
        build_graph(tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))]))
    with pytest.raises(InvalidArgumentError, match="nope"):
        build_graph(conv_bn_conv(), exclude=["nope"])


def test_exclude_keeps_a_layers_output_channels():
    graph = build_graph(conv_bn_conv(), exclude=["bn"])
    assert "excluded" in group_of(graph, "c1").blocked
    assert group_of(graph, "c2").prunable
    assert [g.id for g in kl.channel_groups(conv_bn_conv(), exclude="c2") if g.prunable] != []


class Scale(L.Layer):
    """Multiplies each channel by its own weight (a user's layer)."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="w")

    def call(self, x):
        return x * self.w


class ScaleHandler(PassThrough):
    def propagate(self, b, call):
        b.bind(call, call.layer.w, 0, call.inputs[0])
        return [call.inputs[0]]


def scaled_model():
    inp = keras.Input((4,))
    x = L.Dense(6, name="h")(inp)
    x = Scale(name="scale")(x)
    return keras.Model(inp, L.Dense(2, name="out")(x))


def test_a_registered_handler_makes_a_users_layer_prunable():
    model = scaled_model()
    assert "scale" in group_of(build_graph(model), "h").blocked
    register_handler(Scale, ScaleHandler())
    try:
        with pytest.raises(InvalidArgumentError, match="overwrite"):
            register_handler(Scale, ScaleHandler())
        graph = build_graph(model)
        g = group_of(graph, "h")
        assert g.prunable and "scale.w@0" in entries(g)
        small = remove_channels(graph, {g.id: [0, 4]})
        assert small.get_layer("scale").w.shape == (4,)
        x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
        zeroed = zero_channels(graph, {g.id: [0, 4]})
        np.testing.assert_allclose(np.asarray(small(x)), np.asarray(zeroed(x)), atol=1e-6)
    finally:
        unregister_handler(Scale)
    with pytest.raises(InvalidArgumentError, match="propagate"):
        register_handler(Scale, object())


def test_a_softmax_over_channels_keeps_them():
    inp = keras.Input((4,))
    x = L.Dense(5, activation="softmax", name="attn")(inp)  # a hidden softmax over its units
    x = L.Dense(6, name="h")(x)
    x = L.Activation("softmax", name="sm")(x)
    graph = build_graph(keras.Model(inp, L.Dense(2, name="out")(x)))
    assert "softmax" in group_of(graph, "attn").blocked
    assert "sm" in group_of(graph, "h").blocked
