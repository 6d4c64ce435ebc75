"""The numpy MLP trainer against tf_keras (the independent reference), and its mask contract."""

import numpy as np
import pytest

import keras_legc  # noqa: F401
from keras_legc.errors import InvalidArgumentError, MaskMismatchError
from legc_research.mlp import MLP, MLPSpec, one_hot_targets, train

CASES = [
    ((5, 4, 1), ("sigmoid", "sigmoid"), "mse", "normal"),
    ((5, 6, 3), ("sigmoid", "sigmoid"), "mse", "normal"),
    ((6, 5, 4, 3), ("sigmoid", "sigmoid", "softmax"), "mse", "torch"),
    ((6, 7, 3), ("relu", "softmax"), "crossentropy", "glorot"),
    ((4, 3, 1), ("tanh", "sigmoid"), "crossentropy", "glorot"),
]


def _keras_loss(spec):
    from keras_legc.keras.flavour import keras

    if spec.loss == "mse":
        return keras().losses.MeanSquaredError()
    if spec.sizes[-1] == 1:
        return keras().losses.BinaryCrossentropy()
    return keras().losses.CategoricalCrossentropy()


@pytest.mark.parametrize("sizes,acts,loss,init", CASES)
def test_sgd_steps_equal_tf_keras(sizes, acts, loss, init, rng):
    """Ten SGD steps (batch 4) of the numpy net equal tf_keras train_on_batch with SGD(lr)."""
    from keras_legc.keras.flavour import keras

    spec = MLPSpec(sizes, acts, loss)
    net = MLP.init(spec, seed=3, scheme=init)
    model = net.to_keras()
    model.compile(keras().optimizers.SGD(learning_rate=0.3), loss=_keras_loss(spec))
    x = rng.normal(size=(40, sizes[0]))
    labels = rng.integers(0, max(2, sizes[-1]), size=40)
    targets = one_hot_targets(labels, sizes[-1])
    for step in range(10):
        idx = slice(4 * step, 4 * step + 4)
        model.train_on_batch(x[idx].astype(np.float32), targets[idx].astype(np.float32))
        g_k, g_b = net.gradients(x[idx], targets[idx])
        for i in range(spec.n_layers):
            net.kernels[i] -= 0.3 * g_k[i]
            net.biases[i] -= 0.3 * g_b[i]
    got = model.get_weights()
    for i in range(spec.n_layers):
        np.testing.assert_allclose(got[2 * i], net.kernels[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got[2 * i + 1], net.biases[i], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model(x.astype(np.float32)).numpy(), net.predict(x), atol=1e-5)


def test_mask_applied_before_first_step_and_kept_after_every_update(rng):
    spec = MLPSpec((5, 6, 2), ("sigmoid", "sigmoid"))
    net = MLP.init(spec, seed=0)
    mask = {n: (rng.random(k.shape) > 0.5).astype(np.float64) for n, k in net.kernel_dict().items()}
    seen = []

    def check(n):
        for k, name in zip(n.kernels, spec.names, strict=True):
            seen.append(np.all(k[mask[name] == 0] == 0.0))

    x, y = rng.normal(size=(30, 5)), rng.integers(0, 2, size=30)
    result = train(net, x, y, lr=0.5, batch_size=1, max_epochs=2, seed=0, mask=mask, on_step=check)
    assert result.steps == 60 and len(seen) == 120 and all(seen)
    assert net.n_nonzero == sum(int(m.sum()) for m in mask.values())
    # The kept weights did move.
    assert all(np.any(k[mask[n] == 1] != 0) for k, n in zip(net.kernels, spec.names, strict=True))


def test_stopping_rule_stops_at_first_epoch_reaching_threshold(rng):
    x = rng.normal(size=(80, 2))
    y = (x[:, 0] > 0).astype(int)  # linearly separable: reaches 0.9 quickly
    spec = MLPSpec((2, 4, 1), ("sigmoid", "sigmoid"))
    net = MLP.init(spec, seed=1)
    res = train(net, x, y, lr=0.5, batch_size=1, max_epochs=200, seed=0, threshold=0.9)
    assert res.reached and res.epochs == len(res.train_accuracy) < 200
    assert res.train_accuracy[-1] >= 0.9 and all(a < 0.9 for a in res.train_accuracy[:-1])
    # An unreachable threshold runs to the cap and says so.
    net = MLP.init(spec, seed=1)
    res = train(net, x, y, lr=0.5, batch_size=1, max_epochs=3, seed=0, threshold=1.01)
    assert not res.reached and res.epochs == 3


def test_same_seed_same_run_and_identity_mask_changes_nothing(rng):
    spec = MLPSpec((3, 4, 3), ("sigmoid", "sigmoid"))
    x, y = rng.normal(size=(50, 3)), rng.integers(0, 3, size=50)
    a, b = MLP.init(spec, seed=2), MLP.init(spec, seed=2)
    train(a, x, y, lr=0.1, batch_size=1, max_epochs=3, seed=7)
    ones = {n: np.ones_like(k) for n, k in b.kernel_dict().items()}
    train(b, x, y, lr=0.1, batch_size=1, max_epochs=3, seed=7, mask=ones)
    for ka, kb in zip(a.kernels, b.kernels, strict=True):
        np.testing.assert_array_equal(ka, kb)


def test_bad_arguments_are_refused():
    with pytest.raises(InvalidArgumentError, match="activations"):
        MLPSpec((3, 2), ("sigmoid", "relu"))
    with pytest.raises(InvalidArgumentError, match="crossentropy"):
        MLPSpec((3, 2), ("relu",), "crossentropy")
    net = MLP.init(MLPSpec((3, 2), ("sigmoid",)), seed=0)
    with pytest.raises(MaskMismatchError, match="shape"):
        train(net, np.zeros((4, 3)), np.zeros(4), lr=0.1, batch_size=1, max_epochs=1, seed=0,
              mask={"dense": np.ones((2, 3))})  # fmt: skip
