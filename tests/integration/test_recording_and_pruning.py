"""WeightHistory, score, prune and strip with real TensorFlow / tf_keras / TF-MOT."""

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import (
    HistoryError,
    MaskMismatchError,
    ModelStructureError,
    NonFiniteError,
    OutputExistsError,
    windowed_lyapunov,
)
from keras_legc.keras.flavour import keras

k = keras()
WINDOW = 12


def make_data(n=240, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype("int64")
    return x[:180], y[:180], x[180:], y[180:]


def make_model(seed=0, d=6):
    k.utils.set_random_seed(seed)
    model = k.Sequential(
        [
            k.layers.Input(shape=(d,)),
            k.layers.Dense(8, activation="tanh"),
            k.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(k.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class RawKernels(k.callbacks.Callback):
    """Test-only: keep every snapshot, to compare the streaming LE with the full-history LE."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_train_batch_end(self, batch, logs=None):
        self.rows.append(
            np.concatenate(
                [
                    w.numpy().ravel()
                    for w in (self.model.layers[0].kernel, self.model.layers[1].kernel)
                ]
            )
        )


@pytest.fixture(scope="module")
def trained():
    xtr, ytr, xv, yv = make_data()
    model = make_model()
    init = [w.copy() for w in model.get_weights()]
    rec, raw = kl.WeightHistory(validation_data=(xv, yv), every=1, window=WINDOW), RawKernels()
    model.fit(
        xtr, ytr, batch_size=6, epochs=8, validation_data=(xv, yv), callbacks=[raw, rec], verbose=0
    )
    return model, rec.history, np.asarray(raw.rows, dtype=np.float32), init, (xtr, ytr, xv, yv)


def test_streaming_le_equals_full_history_le(trained):
    _, history, raw, _, _ = trained
    assert history.n_snapshots == raw.shape[0] == 240
    full = windowed_lyapunov(raw.T, WINDOW)  # the same float32 snapshots, all held at once
    assert history.le.shape == full.shape
    np.testing.assert_array_equal(history.le, full.astype(np.float32))


def test_target_is_validation_misclassification():
    xtr, ytr, xv, yv = make_data()
    model = make_model()
    # 30 steps per epoch, windows of 10 without overlap: the last window closes at the last step.
    rec = kl.WeightHistory(validation_data=(xv, yv), every=1, window=10, overlap=0.0)
    model.fit(
        xtr, ytr, batch_size=6, epochs=2, validation_data=(xv, yv), callbacks=[rec], verbose=0
    )
    assert rec.history.n_windows == 6
    final = 1.0 - (model.predict(xv, verbose=0).argmax(axis=1) == yv).mean()
    assert rec.history.target[-1] == pytest.approx(final, abs=1e-12)
    assert np.all((rec.history.target >= 0) & (rec.history.target <= 1))


def test_initial_and_final_weights_are_recorded(trained):
    model, history, _, init, _ = trained
    assert all(np.array_equal(a, b) for a, b in zip(history.initial_weights, init, strict=True))
    first = model.layers[0]
    np.testing.assert_array_equal(history.final_kernels[first.name], first.kernel.numpy())


def test_every_k_and_explicit_validation_data():
    xtr, ytr, xv, yv = make_data()
    model = make_model()
    rec = kl.WeightHistory(window=5, every=3, validation_data=(xv, k.utils.to_categorical(yv)))
    model.fit(xtr, ytr, batch_size=6, epochs=2, callbacks=[rec], verbose=0)
    assert rec.history.n_snapshots == 20  # 60 steps, one in three


def test_history_save_load_roundtrip(trained, tmp_path):
    _, history, _, _, _ = trained
    history.save(tmp_path / "run")
    back = kl.History.load(tmp_path / "run")
    np.testing.assert_array_equal(back.le, history.le)
    np.testing.assert_array_equal(back.target, history.target)
    assert back.layers == history.layers and back.shapes == history.shapes
    assert all(
        np.array_equal(a, b)
        for a, b in zip(back.initial_weights, history.initial_weights, strict=True)
    )
    with pytest.raises(OutputExistsError):
        history.save(tmp_path / "run")
    s1, s2 = kl.score(history, max_lag=3), kl.score(tmp_path / "run", max_lag=3)
    np.testing.assert_array_equal(s1.pvalues, s2.pvalues)


def test_run_dir_is_written_during_fit_and_not_overwritten(tmp_path):
    xtr, ytr, xv, yv = make_data()
    model = make_model()
    model.fit(xtr, ytr, batch_size=6, epochs=2, validation_data=(xv, yv),
              callbacks=[kl.WeightHistory(validation_data=(xv, yv), every=1, window=5, run_dir=tmp_path / "r")], verbose=0)  # fmt: skip
    assert kl.History.load(tmp_path / "r").n_snapshots == 60
    with pytest.raises(OutputExistsError, match="already holds a recorded history"):
        kl.WeightHistory(every=1, window=5, run_dir=tmp_path / "r")


def test_corrupt_history_on_disk(trained, tmp_path):
    _, history, _, _, _ = trained
    history.save(tmp_path / "run")
    data = (tmp_path / "run" / "history.npz").read_bytes()
    (tmp_path / "run" / "history.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(HistoryError, match="unreadable or corrupt"):
        kl.History.load(tmp_path / "run")
    with pytest.raises(HistoryError, match="no recorded history"):
        kl.History.load(tmp_path)


def test_scores_and_masks(trained, tmp_path):
    _, history, _, _, _ = trained
    scores = kl.score(history, max_lag=3)
    valid = scores.degenerate == 0
    paper = scores.mask(alpha=0.05)
    keep = np.concatenate([paper[n].ravel() for n in paper.layers])
    assert np.array_equal(keep, ~valid | (scores.pvalues < 0.05))
    target = scores.mask(sparsity=0.5, ranking="legc_pvalue")
    assert target.n_pruned == round(0.5 * scores.n_weights)
    pruned = ~np.concatenate([target[n].ravel() for n in target.layers])
    if valid.all():  # least causal first: every pruned p-value >= every kept p-value
        assert scores.pvalues[pruned].min() >= scores.pvalues[~pruned].max()
    # The default (static_magnitude): never-moved weights first, then the smallest |w|.
    default = scores.mask(sparsity=0.5)
    assert default.info["ranking"] == "static_magnitude" and default.n_pruned == target.n_pruned
    assert default.info["kept_by_evidence"] == 0
    pruned = ~np.concatenate([default[n].ravel() for n in default.layers])
    w = np.concatenate([np.abs(scores.kernels[n]).ravel() for n in scores.layers])
    moved = ~scores.static
    assert not (pruned & moved).any() or not (~pruned & ~moved).any()  # never-moved go first
    assert w[pruned & moved].max(initial=0) <= w[~pruned & moved].min(initial=np.inf)
    # legc_protect: within the non-causal and within the causal weights, the smallest go first;
    # every pruned causal weight is smaller than every kept one.
    default = scores.mask(sparsity=0.5, ranking="legc_protect")
    assert default.info["ranking"] == "legc_protect" and default.n_pruned == target.n_pruned
    pruned = ~np.concatenate([default[n].ravel() for n in default.layers])
    w = np.concatenate([np.abs(scores.kernels[n]).ravel() for n in scores.layers])
    from keras_legc.core.granger import benjamini_hochberg

    causal = benjamini_hochberg(scores.f_pvalue) < 0.05
    if (pruned & causal).any() and (~pruned & causal).any():
        assert w[pruned & causal].max() <= w[~pruned & causal].min()
    back = kl.Scores.load(scores.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.pvalues, scores.pvalues)


def test_prune_finetune_keeps_masked_weights_exactly_zero(trained):
    model, history, _, _, (xtr, ytr, _, _) = trained
    before = [w.copy() for w in model.get_weights()]
    mask = kl.random_mask(model, 0.6, seed=0)
    pruned = kl.prune(model, mask)
    pruned.compile(k.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    pruned.fit(xtr, ytr, batch_size=6, epochs=2, callbacks=kl.pruning_callbacks(), verbose=0)
    for wrapper in pruned.layers:
        kernel = wrapper.layer.kernel.numpy()
        assert np.all(kernel[~mask[wrapper.layer.name]] == 0.0)
        assert np.all(kernel[mask[wrapper.layer.name]] != 0.0)
    stripped = kl.strip(pruned)
    assert [type(layer).__name__ for layer in stripped.layers] == ["Dense", "Dense"]
    for layer in stripped.layers:
        assert np.all(layer.kernel.numpy()[~mask[layer.name]] == 0.0)
    # The user's model is untouched.
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))


def test_fit_without_pruning_callbacks_still_masks(trained):
    model, _, _, _, (xtr, ytr, _, _) = trained
    mask = kl.magnitude_mask(model, 0.5)
    pruned = kl.prune(model, mask)
    pruned.compile(k.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    pruned.fit(xtr, ytr, batch_size=6, epochs=1, verbose=0)  # no UpdatePruningStep: must not crash
    for layer in kl.strip(pruned).layers:
        assert np.all(layer.kernel.numpy()[~mask[layer.name]] == 0.0)


def test_rewind_to_initial_weights(trained):
    model, history, _, init, _ = trained
    mask = kl.random_mask(model, 0.3, seed=1)
    pruned = kl.prune(model, mask, rewind_to=history)
    kernel = pruned.layers[0].layer.kernel.numpy()
    np.testing.assert_array_equal(kernel, init[0] * mask[model.layers[0].name])
    np.testing.assert_array_equal(pruned.layers[0].layer.bias.numpy(), init[1])


def test_mask_of_wrong_shape_is_refused(trained):
    model, _, _, _, _ = trained
    with pytest.raises(MaskMismatchError, match="does not match the model"):
        kl.prune(
            model, kl.random_mask({model.layers[0].name: (6, 9), model.layers[1].name: (9, 2)}, 0.5)
        )
    with pytest.raises(MaskMismatchError, match="keras_legc.Mask"):
        kl.prune(model, {model.layers[0].name: np.ones((6, 8))})


def test_model_without_dense_layer():
    model = k.Sequential([k.layers.Input(shape=(4,)), k.layers.Activation("relu")])
    with pytest.raises(ModelStructureError, match="no Dense layer"):
        kl.dense_layers(model)
    with pytest.raises(ModelStructureError, match="no prunable weight .layers: .'Activation'.."):
        model.compile("sgd", "mse")
        model.fit(np.zeros((4, 4)), np.zeros((4, 4)), validation_data=(np.zeros((2, 4)), np.zeros(2)),
                  callbacks=[kl.WeightHistory(validation_data=(np.zeros((2, 4)), np.zeros(2)), every=1, window=5)], verbose=0)  # fmt: skip
    with pytest.raises(ModelStructureError, match="no prunable weight"):
        kl.magnitude_mask(model, 0.5)


def test_history_too_short_for_one_window_or_lag_one():
    xtr, ytr, xv, yv = make_data()
    model = make_model()
    rec = kl.WeightHistory(validation_data=(xv, yv), every=1, window=50)
    model.fit(
        xtr, ytr, batch_size=60, epochs=2, validation_data=(xv, yv), callbacks=[rec], verbose=0
    )
    with pytest.raises(HistoryError, match="0 LE window"):
        kl.score(rec.history)
    rec = kl.WeightHistory(validation_data=(xv, yv), every=1, window=5)
    model.fit(
        xtr, ytr, batch_size=36, epochs=4, validation_data=(xv, yv), callbacks=[rec], verbose=0
    )
    assert rec.history.n_windows == 4
    with pytest.raises(HistoryError, match="at least 5 even at lag 1"):
        kl.score(rec.history)


def test_diverging_training_gives_non_finite_error():
    xtr, ytr, xv, yv = make_data()
    model = make_model()
    model.compile(k.optimizers.SGD(1e30), "mse")
    with pytest.raises(NonFiniteError, match="NaN or inf in the recorded weights"):
        model.fit(xtr, k.utils.to_categorical(ytr) * 1e20, batch_size=6, epochs=2,
                  validation_data=(xv, yv), callbacks=[kl.WeightHistory(validation_data=(xv, yv), every=1, window=5)], verbose=0)  # fmt: skip


def test_missing_validation_data_names_the_fix_even_when_fit_has_it():
    xtr, ytr, xv, yv = make_data()
    for fit_kwargs in ({}, {"validation_data": (xv, yv)}, {"validation_split": 0.25}):
        with pytest.raises(HistoryError, match="needs validation data") as info:
            make_model().fit(xtr, ytr, epochs=1, callbacks=[kl.WeightHistory(every=1, window=5)],
                             verbose=0, **fit_kwargs)  # fmt: skip
        assert "WeightHistory(validation_data=(x_val, y_val))" in str(info.value)
