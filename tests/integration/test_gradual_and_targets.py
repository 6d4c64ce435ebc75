"""Gradual causal pruning during fit, and the recorder's targets (real tf_keras + TF-MOT)."""

import warnings

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import InvalidArgumentError, LegcWarning, ModelStructureError
from keras_legc.keras.flavour import keras

k = keras()


def _data(seed=0, n=600, d=10):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    x[:, -2:] = 0.0  # two always-zero inputs: their weights never move
    y = (x[:, 0] + 0.7 * x[:, 1] - x[:, 2] + 0.3 * x[:, 3] > 0).astype("int64")
    return x[:450], y[:450], x[450:], y[450:]


def _model(seed=0, d=10, out=2, activation="softmax", loss="sparse_categorical_crossentropy"):
    k.utils.set_random_seed(seed)
    m = k.Sequential([k.layers.Input((d,)), k.layers.Dense(16, activation="tanh", name="h"),
                      k.layers.Dense(out, activation=activation, name="o")])  # fmt: skip
    m.compile(k.optimizers.Adam(0.01), loss, metrics=["accuracy"] if out > 1 else [])
    return m


@pytest.fixture(scope="module")
def dense():
    xtr, ytr, xv, yv = _data()
    model = _model()
    rec = kl.WeightHistory(every=1, window=10, validation_data=(xv, yv))
    model.fit(xtr, ytr, epochs=4, batch_size=10, callbacks=[rec], verbose=0)
    return model, kl.score(rec.history), (xtr, ytr, xv, yv)


def test_gradual_pruning_reaches_the_exact_sparsity_with_monotone_masks(dense):
    model, scores, (xtr, ytr, xv, yv) = dense
    wrapped = kl.prune(model, kl.Mask.keep_all(model))
    wrapped.compile(k.optimizers.Adam(0.005), "sparse_categorical_crossentropy",
                    metrics=["accuracy"])  # fmt: skip
    steps = 3 * 45  # 3 epochs of 45 batches
    rec = kl.WeightHistory(every=1, window=10, validation_data=(xv, yv))
    schedule = kl.PolynomialDecay(0.9, begin_step=0, end_step=90, frequency=15)
    gradual = kl.GradualPruning(rec, schedule, scores=scores, recent_windows=8, min_windows=6)
    seen = []

    class Watch(k.callbacks.Callback):  # the mask after every step: it only grows
        def on_train_batch_end(self, batch, logs=None):
            seen.append(np.concatenate([gradual.mask[n].ravel() for n in gradual.mask.layers]))

    wrapped.fit(xtr, ytr, epochs=3, batch_size=10, verbose=0,
                callbacks=[rec, gradual, Watch(), *kl.pruning_callbacks()])  # fmt: skip
    assert len(seen) == steps
    kept = np.array(seen)
    assert np.all(kept[1:] <= kept[:-1])  # masks only grow
    n = kept.shape[1]
    assert gradual.mask.n_pruned == round(0.9 * n)
    assert gradual.log[-1]["step"] == 90 and gradual.log[0]["step"] == 0
    sources = {e["evidence"] for e in gradual.log}
    assert {"given scores", "recent windows"} <= sources  # re-scored once windows existed
    stripped = kl.strip(wrapped)
    for layer in stripped.layers:
        w = layer.kernel.numpy()
        assert np.array_equal(w != 0, gradual.mask[layer.name] & (w != 0))
        assert np.all(w[~gradual.mask[layer.name]] == 0.0)
    # The never-moved weights (always-zero inputs) went first.
    assert not gradual.mask["h"][-2:].any()
    out = stripped.predict(xv, verbose=0).argmax(axis=1)
    assert (out == yv).mean() > 0.7  # 90% pruned, still far above chance


def test_gradual_pruning_leaves_excluded_layers_whole(dense):
    # exclude=: the output layer is left dense (as TF-MOT leaves layers it is not given), the
    # schedule's sparsity is reached in the other layer, with given scores and re-scored windows
    model, scores, (xtr, ytr, xv, yv) = dense
    wrapped = kl.prune(model, kl.Mask.keep_all(model))
    wrapped.compile(k.optimizers.Adam(0.005), "sparse_categorical_crossentropy")
    rec = kl.WeightHistory(every=1, window=10, validation_data=(xv, yv))
    schedule = kl.PolynomialDecay(0.8, begin_step=0, end_step=90, frequency=15)
    gradual = kl.GradualPruning(rec, schedule, scores=scores, recent_windows=8, min_windows=6,
                                exclude=["o"])  # fmt: skip
    wrapped.fit(xtr, ytr, epochs=3, batch_size=10, verbose=0,
                callbacks=[rec, gradual, *kl.pruning_callbacks()])  # fmt: skip
    assert gradual.mask.layers == ["h"] and gradual.mask.n_pruned == round(0.8 * 10 * 16)
    assert {"given scores", "recent windows"} <= {e["evidence"] for e in gradual.log}
    stripped = kl.strip(wrapped)
    assert np.all(stripped.get_layer("o").kernel.numpy() != 0.0)
    assert np.all(stripped.get_layer("h").kernel.numpy()[~gradual.mask["h"]] == 0.0)
    rec2 = kl.WeightHistory(every=1, window=10, validation_data=(xv, yv))
    with pytest.raises(InvalidArgumentError, match=r"exclude names \['out'\]"):
        wrapped.fit(xtr, ytr, epochs=1, batch_size=50, verbose=0,
                    callbacks=[rec2, kl.GradualPruning(rec2, schedule, exclude="out"),
                               *kl.pruning_callbacks()])  # fmt: skip


def test_gradual_pruning_refuses_an_unwrapped_model_and_warns_when_fit_ends_early(dense):
    model, scores, (xtr, ytr, xv, yv) = dense
    rec = kl.WeightHistory(every=1, window=10, validation_data=(xv, yv))
    schedule = kl.PolynomialDecay(0.5, begin_step=0, end_step=1000, frequency=10)
    plain = _model()
    with pytest.raises(ModelStructureError, match="Mask.keep_all"):
        plain.fit(xtr, ytr, epochs=1, batch_size=50, verbose=0,
                  callbacks=[rec, kl.GradualPruning(rec, schedule)])  # fmt: skip
    wrapped = kl.prune(model, kl.Mask.keep_all(model))
    wrapped.compile("adam", "sparse_categorical_crossentropy")
    rec2 = kl.WeightHistory(every=1, window=10, validation_data=(xv, yv))
    with pytest.warns(LegcWarning, match="before the schedule's end_step"):
        wrapped.fit(
            xtr,
            ytr,
            epochs=1,
            batch_size=50,
            verbose=0,
            callbacks=[rec2, kl.GradualPruning(rec2, schedule), *kl.pruning_callbacks()],
        )
    # 192 kernel weights in 2 layers: LAMP (the default allocation) can prune at most 190, so a
    # final 99.5% (191) is refused when fit starts, not at the schedule's last step
    rec3 = kl.WeightHistory(every=1, window=10, validation_data=(xv, yv))
    before = [w.copy() for w in wrapped.get_weights()]
    too_far = kl.PolynomialDecay(0.995, begin_step=0, end_step=5, frequency=1)
    with pytest.raises(InvalidArgumentError, match=r"at most 190 can go.*Fix: pass a sparsity"):
        wrapped.fit(xtr, ytr, epochs=1, batch_size=50, verbose=0,
                    callbacks=[rec3, kl.GradualPruning(rec3, too_far), *kl.pruning_callbacks()])  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(before, wrapped.get_weights(), strict=True))
    with pytest.raises(InvalidArgumentError, match="unknown ranking"):
        kl.GradualPruning(rec, schedule, ranking="movement")
    with pytest.raises(InvalidArgumentError, match="WeightHistory of the same fit"):
        kl.GradualPruning(None, schedule)


def test_loss_target_for_regression_and_continuous_labels_refused_for_misclassification():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6)).astype("float32")
    y = (x[:, 0] - 2.0 * x[:, 1] + 0.1 * rng.normal(size=400)).astype("float32")
    model = _model(d=6, out=1, activation="linear", loss="mse")
    with pytest.raises(InvalidArgumentError, match="target='loss'"):
        model.fit(
            x[:300],
            y[:300],
            epochs=1,
            batch_size=10,
            verbose=0,
            callbacks=[kl.WeightHistory(every=1, window=10, validation_data=(x[300:], y[300:]))],
        )
    rec = kl.WeightHistory(every=1, window=10, validation_data=(x[300:], y[300:]), target="loss")
    model.fit(x[:300], y[:300], epochs=3, batch_size=10, verbose=0, callbacks=[rec])
    target = rec.history.target
    assert rec.history.meta["target"] == "loss"
    # The last window's target is the validation MSE of the model as it was then; the loss fell.
    assert target[-1] < target[0]
    mse = float(np.mean((model.predict(x[300:], verbose=0)[:, 0] - y[300:]) ** 2))
    assert target[-1] == pytest.approx(mse, rel=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        scores = kl.score(rec.history)
    assert scores.n_weights == 6 * 16 + 16
    with pytest.raises(InvalidArgumentError, match="target must be one of"):
        kl.WeightHistory(every=1, target="accuracy")
