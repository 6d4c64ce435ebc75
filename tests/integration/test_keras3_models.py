"""Keras 3 models in the same process as tf_keras ones: no global switch, the same numbers as
Keras 2 for the same weights and data, the same refusals, tf.data validation, rewinding."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.errors import ModelStructureError

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":  # pragma: no cover - CI runs the TF backend here
    pytest.skip("these tests compare against tf_keras on the TF backend", allow_module_level=True)
import tf_keras  # noqa: E402

NO_SWITCH = r"""
import os, sys
import numpy as np
{first}
import keras_legc as kl
import tensorflow as tf
import keras
import tf_keras
before = tf.keras.Model
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = (x[:, 0] > 0).astype("int64")
def use(k, first):
    m = k.Sequential([first, k.layers.Dense(6, activation="relu"), k.layers.Dense(2)])
    p = kl.prune(m, kl.magnitude_mask(m, 0.5))  # TF-MOT is imported on the way for tf_keras
    p.compile("sgd", k.losses.SparseCategoricalCrossentropy(from_logits=True))
    p.fit(x, y, epochs=1, verbose=0, callbacks=kl.pruning_callbacks(p))
    return type(kl.strip(p)).__module__.split(".")[0]
flavours = [use(tf.keras, tf.keras.Input((4,))), use(keras, keras.Input((4,))),
            use(tf_keras, tf_keras.layers.InputLayer(input_shape=(4,)))]
assert tf.keras.Model is before is keras.Model, (tf.keras.Model, before)
assert "TF_USE_LEGACY_KERAS" not in os.environ
print(",".join(flavours))
"""


@pytest.mark.parametrize("first", ["import tensorflow as tf; tf.keras.Model", "import keras"])
def test_tf_keras_is_the_users_keras_before_and_after(first):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "KERAS_BACKEND")}
    code = NO_SWITCH.format(first=first)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "keras,keras,tf_keras"


def _twins():
    keras.utils.set_random_seed(3)
    m3 = keras.Sequential([keras.Input((8,)), keras.layers.Dense(12, activation="relu", name="h"),
                           keras.layers.Dense(2, activation="softmax", name="o")])  # fmt: skip
    m2 = tf_keras.Sequential([tf_keras.layers.InputLayer(input_shape=(8,)),
                              tf_keras.layers.Dense(12, activation="relu", name="h"),
                              tf_keras.layers.Dense(2, activation="softmax", name="o")])  # fmt: skip
    m2.set_weights(m3.get_weights())
    return {"keras3": (m3, keras), "keras2": (m2, tf_keras)}


def test_same_weights_and_data_give_the_same_evidence_under_keras2_and_keras3():
    """Tolerance: LE series and p-values within 1e-6, masks identical (measured on the 2-core CPU
    machine, 2026-11-29: the differences were exactly 0, both run the same TF kernels)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(320, 8)).astype("float32")
    y = (x[:, 0] * x[:, 1] + x[:, 2] > 0).astype("int64")
    out = {}
    for name, (model, k) in _twins().items():
        model.compile(k.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
        rec = kl.WeightHistory(
            every=1, window=12, validation_data=(x[:96], y[:96]), background=False
        )
        model.fit(x, y, epochs=8, batch_size=16, shuffle=False, verbose=0, callbacks=[rec])
        scores = kl.score(rec.history, progress=False)
        out[name] = (rec.history, scores, scores.mask(sparsity=0.5))
    (h3, s3, m3), (h2, s2, m2) = out["keras3"], out["keras2"]
    assert h3.le.shape == h2.le.shape and h3.n_windows >= 10
    np.testing.assert_allclose(h3.le, h2.le, rtol=0, atol=1e-6)
    np.testing.assert_allclose(h3.target, h2.target, rtol=0, atol=1e-6)
    np.testing.assert_allclose(s3.pvalues, s2.pvalues, rtol=0, atol=1e-6)
    for layer in ("h", "o"):
        assert np.array_equal(m3[layer], m2[layer])


def test_keras3_structures_are_refused_like_keras2_ones():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(ModelStructureError, match="subclassed.*Fix"):
        kl.dense_layers(sub)
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ModelStructureError, match="not built.*Fix"):
        kl.dense_layers(unbuilt)
    inp = keras.Input((4,))
    shared = keras.layers.Dense(4, name="shared")
    with pytest.raises(ModelStructureError, match="shared.*Fix"):
        kl.dense_layers(keras.Model(inp, shared(shared(inp))))
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="inner")
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)])
    with pytest.raises(ModelStructureError, match="nested model.*Fix"):
        kl.dense_layers(outer)
    with pytest.raises(ModelStructureError, match="no Dense layer.*Fix"):
        kl.dense_layers(keras.Sequential([keras.Input((4,)), keras.layers.Flatten()]))
    mixed = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, dtype="float64")])
    assert [la.name for la in kl.dense_layers(mixed)] == [mixed.layers[0].name]


def test_already_pruned_and_unpruned_models():
    model, _ = _twins()["keras3"]
    mask = kl.magnitude_mask(model, 0.5)
    pruned = kl.prune(model, mask)
    with pytest.raises(ModelStructureError, match="already wrapped.*strip"):
        kl.prune(pruned, mask)
    assert kl.strip(model) is model
    from keras_legc.keras.pruning import mask_of

    with pytest.raises(ModelStructureError, match="holds no keras_legc mask"):
        mask_of(model)


def test_tf_data_validation_and_rewind_on_keras3():
    import tensorflow as tf

    model, _ = _twins()["keras3"]
    initial = model.get_weights()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(192, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    val = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(16)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    rec = kl.WeightHistory(validation_data=val, every=1, window=8)
    model.fit(x, y, validation_data=val, epochs=3, batch_size=16, verbose=0, callbacks=[rec])
    history = rec.history
    assert history.n_windows >= 5 and np.isfinite(history.target).all()
    mask = kl.magnitude_mask(model, 0.5)
    rewound = kl.prune(model, mask, rewind_to=history)
    for i, layer in enumerate(kl.dense_layers(rewound)):
        keep = np.asarray(mask[layer.name], bool)
        np.testing.assert_array_equal(layer.kernel.numpy(), initial[2 * i] * keep)
    assert all(np.array_equal(a, b) for a, b in zip(history.initial_weights, initial, strict=True))


def test_shrink_and_neuron_pruning_return_a_keras3_model():
    model, _ = _twins()["keras3"]
    x = np.random.default_rng(4).normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    record = kl.prune_neurons(model, "taylor2", x, y, fraction=0.25, progress=False)
    small = kl.shrink(model, record)
    assert isinstance(small, keras.Model)
    removed = record.as_dict()
    assert small.layers[0].units == 12 - len(removed.get("h", []))
    # Removing units only drops their contribution: outputs match the numpy view of the same net.
    from keras_legc.neurons import DenseNet

    np.testing.assert_allclose(small.predict(x, verbose=0),
                               DenseNet.from_model(model).with_removed(removed).output(x),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    with pytest.raises(ModelStructureError, match="strip"):
        kl.shrink(kl.prune(model, kl.magnitude_mask(model, 0.5)), {"h": [0]})


def test_keras3_shrink_is_the_channel_graphs_rebuild_with_means_folded_too():
    # Keras 3 models are shrunk by structure.remove_channels (one structural pruner): a
    # Functional chain stays Functional (the Dense-chain rebuild returns a Sequential), and the
    # outputs equal the numpy view with the units removed, or replaced by their means
    from keras_legc.neurons import DenseNet

    keras.utils.set_random_seed(3)
    inp = keras.Input((8,))
    h = keras.layers.Dense(12, activation="relu", name="a")(inp)
    h = keras.layers.Dense(6, activation="tanh", name="b")(h)
    model = keras.Model(inp, keras.layers.Dense(3, name="out")(h))
    x = np.random.default_rng(5).normal(size=(40, 8)).astype("float32")
    remove = {"a": [0, 4, 7], "b": [2]}
    net = DenseNet.from_model(model).with_removed(remove)
    small = kl.shrink(model, remove)
    assert type(small) is type(model) and [la.name for la in small.layers] == [
        la.name for la in model.layers
    ]  # fmt: skip
    assert small.get_layer("a").units == 9 and small.get_layer("b").units == 5
    np.testing.assert_allclose(small(x), net.output(x), rtol=1e-5, atol=1e-5)
    folded = kl.shrink(model, remove, fold_mean_activations=x)
    np.testing.assert_allclose(folded(x), net.with_means_folded(x).output(x), rtol=1e-5,
                               atol=1e-5)  # fmt: skip
    assert np.max(np.abs(np.asarray(folded(x)) - np.asarray(small(x)))) > 1e-3
    # a layer without a bias that folding gives one: the Dense-chain rebuild adds it
    nobias = keras.Sequential([keras.Input((8,)), keras.layers.Dense(12, activation="relu",
                               name="a"), keras.layers.Dense(3, use_bias=False, name="out")])  # fmt: skip
    f2 = kl.shrink(nobias, {"a": [1]}, fold_mean_activations=x)
    assert f2.get_layer("out").use_bias
    want = DenseNet.from_model(nobias).with_removed({"a": [1]}).with_means_folded(x).output(x)
    np.testing.assert_allclose(f2(x), want, rtol=1e-5, atol=1e-5)
