"""The numpy Dense stack against a small MLP written out here, activations at their edges (large
logits, any number of axes, exactly 0), and the per-layer split of flat per-weight arrays."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from keras_legc.core._layout import layer_slices, split_by_layer
from keras_legc.core.dense import (
    ACTIVATIONS,
    DenseStack,
    activate,
    activation_backward,
    activation_derivatives,
    predicted_class,
)
from keras_legc.errors import InvalidArgumentError


class Net(DenseStack):
    def __init__(self, kernels, biases, activations, masks=None):
        self.kernels, self.biases, self.activations, self.masks = (
            kernels,
            biases,
            activations,
            masks,
        )

    def unit_masks(self):
        return self.masks


class CheckedNet(Net):
    """Refuses inputs of the wrong width, as keras_legc.neurons.DenseNet does."""

    def _as_input(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.kernels[0].shape[0]:
            raise InvalidArgumentError(f"bad input {x.shape}")
        return x


def _net(seed=0, sizes=(4, 5, 3, 2), acts=("relu", "tanh", "softmax"), cls=Net, masks=None):
    rng = np.random.default_rng(seed)
    kernels = [rng.normal(size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.normal(size=b) for b in sizes[1:]]
    return cls(kernels, biases, list(acts), masks)


def _mlp_reference(net, x, masks=None):
    """The forward pass written out, one unit at a time."""
    funcs = {
        "relu": lambda v: max(v, 0.0),
        "tanh": np.tanh,
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "linear": lambda v: v,
    }
    zs, acts = [], []
    a = np.asarray(x, dtype=np.float64)
    for i, (w, b, f) in enumerate(zip(net.kernels, net.biases, net.activations, strict=True)):
        z = np.array([[sum(a[r, k] * w[k, j] for k in range(w.shape[0])) + b[j]
                       for j in range(w.shape[1])] for r in range(a.shape[0])])  # fmt: skip
        if f == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        else:
            out = np.vectorize(funcs[f])(z)
        if masks is not None and i < len(net.kernels) - 1:
            out = out * masks[i]
        zs.append(z)
        acts.append(out)
        a = out
    return zs, acts


def test_forward_equals_the_written_out_mlp_in_every_layer():
    net = _net()
    x = np.random.default_rng(1).normal(size=(6, 4))
    zs, acts = net.forward(x)
    ref_z, ref_a = _mlp_reference(net, x)
    assert len(zs) == len(acts) == 3
    for got, want in zip(zs + acts, ref_z + ref_a, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.output(x), ref_a[-1], rtol=1e-12)  # the last layer's output
    assert not np.allclose(net.output(x)[:, :2], ref_a[1][:, :2])


def test_masks_silence_hidden_units_only():
    masks = [np.array([1, 0, 1, 1, 0]), np.array([0, 1, 1])]
    net = _net(masks=masks)
    x = np.random.default_rng(2).normal(size=(3, 4))
    _, acts = net.forward(x)
    _, ref = _mlp_reference(net, x, masks)
    for got, want in zip(acts, ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert (acts[0][:, [1, 4]] == 0).all() and (acts[1][:, 0] == 0).all()


def test_known_first_pre_activations_replace_the_input():
    net = _net(cls=CheckedNet)
    x = np.random.default_rng(3).normal(size=(5, 4))
    zs, acts = net.forward(x)
    z0 = x @ net.kernels[0] + net.biases[0]
    zs2, acts2 = net.forward(None, z0=z0)  # x is ignored: never checked, never multiplied
    for got, want in zip(zs2 + acts2, zs + acts, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # a different z0 changes the output: it is really used
    assert not np.allclose(net.forward(None, z0=z0 + 1.0)[1][-1], acts[-1])


def test_a_stack_with_mismatched_layer_lists_is_refused():
    net = _net()
    net.activations = net.activations[:2]  # three kernels, two activations
    with pytest.raises(ValueError):
        net.forward(np.ones((1, 4)))


def test_predict_in_batches_equals_output_and_handles_no_rows():
    net = _net(sizes=(4, 5, 3, 7), acts=("relu", "sigmoid", "linear"))
    x = np.random.default_rng(4).normal(size=(10, 4))
    np.testing.assert_allclose(net.predict(x, batch_size=3), net.output(x), rtol=1e-12)
    np.testing.assert_allclose(net.predict(x.tolist()), net.output(x), rtol=1e-12)  # a list works
    empty = net.predict(np.empty((0, 4)))
    assert empty.shape == (0, 7)  # the last layer's width, not an earlier one's


def test_softmax_over_the_last_axis_of_any_array_and_large_logits():
    rng = np.random.default_rng(5)
    for z in (rng.normal(size=4), rng.normal(size=(3, 4)), rng.normal(size=(2, 3, 4))):
        np.testing.assert_allclose(activate("softmax", z), scipy.special.softmax(z, axis=-1),
                                   rtol=1e-12)  # fmt: skip
    # rows of very different magnitude: each row is shifted by its own maximum, no overflow
    z = np.array([[1000.0, 1001.0], [0.0, 1.0], [-2000.0, -2001.0]])
    got = activate("softmax", z)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, scipy.special.softmax(z, axis=-1), rtol=1e-12)


def test_softmax_backward_is_the_jacobian_product_on_any_array():
    rng = np.random.default_rng(6)
    for shape in ((4,), (2, 3, 4)):
        z, d_out = rng.normal(size=shape), rng.normal(size=shape)
        s = scipy.special.softmax(z, axis=-1)
        # J = diag(s) - s s^T per vector along the last axis: J^T d = s * (d - <d, s>)
        want = np.empty(shape)
        for idx in np.ndindex(shape[:-1]):
            jac = np.diag(s[idx]) - np.outer(s[idx], s[idx])
            want[idx] = jac.T @ d_out[idx]
        np.testing.assert_allclose(activation_backward(d_out, s, "softmax"), want, rtol=1e-10,
                                   atol=1e-14)  # fmt: skip


def test_relu_derivatives_at_zero_and_dtypes():
    z = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
    d1, d2 = activation_derivatives("relu", z, np.maximum(z, 0))
    np.testing.assert_array_equal(d1, [0.0, 0.0, 1.0])  # relu'(0) = 0, as TF's gradient
    assert d1.dtype == np.float32 and d2.dtype == np.float32
    np.testing.assert_array_equal(d2, [0.0, 0.0, 0.0])


def test_derivatives_of_softmax_are_refused_naming_the_elementwise_ones():
    with pytest.raises(InvalidArgumentError) as info:
        activation_derivatives("softmax", np.zeros(2), np.zeros(2))
    msg = str(info.value)
    assert "'softmax'" in msg and "Fix" in msg
    listed = msg.split("Fix:")[1]
    assert all(f"'{name}'" in listed for name in ACTIVATIONS[:-1])
    assert "softmax" not in listed


def test_split_by_layer_keeps_trailing_axes():
    shapes = {"a": (3, 2), "b": (2, 4)}
    flat = np.arange(14 * 5).reshape(14, 5)  # per weight, 5 values (e.g. one per window)
    parts = split_by_layer(flat, ["a", "b"], shapes)
    assert parts["a"].shape == (3, 2, 5) and parts["b"].shape == (2, 4, 5)
    np.testing.assert_array_equal(parts["a"].reshape(6, 5), flat[:6])
    np.testing.assert_array_equal(parts["b"][1, 3], flat[13])
    assert layer_slices(["b", "a"], shapes) == {"b": slice(0, 8), "a": slice(8, 14)}


def test_one_unit_exactly_at_the_threshold_is_class_0_and_classes_are_int64():
    # "above 0.5" (or above 0 for a logit): a tie is not above
    out = np.array([[0.5], [0.5000001], [0.0]])
    got = predicted_class(out)
    assert got.dtype == np.int64 and got.tolist() == [0, 1, 0]
    assert predicted_class(out - 0.5, logits=True).tolist() == [0, 1, 0]


Z = np.linspace(-30.0, 30.0, 6 * 7).reshape(6, 7)
REFERENCE = {
    "linear": lambda z: z,
    "sigmoid": scipy.special.expit,
    "tanh": np.tanh,
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "softmax": lambda z: scipy.special.softmax(z, axis=-1),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activations_equal_an_independent_reference(name):
    np.testing.assert_allclose(activate(name, Z), REFERENCE[name](Z), rtol=1e-12, atol=1e-15)


def test_an_unknown_activation_is_refused():
    with pytest.raises(InvalidArgumentError, match="unknown activation 'swish'.*Fix"):
        activate("swish", Z)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_gradients_equal_finite_differences(name):
    z = np.random.default_rng(0).normal(size=(4, 5)) * 2 + 0.05  # no relu kink within h of 0
    d_out = np.random.default_rng(1).normal(size=z.shape)
    h = 1e-6
    numeric = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[i] = h
        numeric[i] = np.sum(d_out * (REFERENCE[name](z + step) - REFERENCE[name](z - step))) / (
            2 * h
        )
    got = activation_backward(d_out, REFERENCE[name](z), name)
    np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", ["linear", "sigmoid", "tanh", "relu"])
def test_activation_derivatives_equal_finite_differences(name):
    z = np.random.default_rng(2).normal(size=(3, 4)) * 2 + 0.05
    h = 1e-4
    f = REFERENCE[name]
    d1, d2 = activation_derivatives(name, z, f(z))
    np.testing.assert_allclose(d1, (f(z + h) - f(z - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d2, (f(z + h) - 2 * f(z) + f(z - h)) / h**2, rtol=1e-3, atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="softmax.*Fix"):
        activation_derivatives("softmax", z, f(z))
