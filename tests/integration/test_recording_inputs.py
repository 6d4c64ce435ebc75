"""WeightHistory with tf.data validation sets, EarlyStopping, and TensorBoard logs (real TF)."""

import numpy as np
import pytest

# The same small classification task and model as the recording tests.
from test_recording_and_pruning import make_data, make_model

import keras_legc as kl
from keras_legc import HistoryError, InvalidArgumentError
from keras_legc.keras.flavour import keras, keras3, tf

k = keras()
WINDOW = 10


def dataset(x, y, batch=16):
    return tf().data.Dataset.from_tensor_slices((x, y)).batch(batch)


def record(validation, *, epochs=4, fit_kwargs=None, **recorder_kwargs):
    """Fit with ``validation`` given to fit and (unless overridden) to the recorder."""
    x, y, _, _ = make_data()
    model = make_model()
    recorder_kwargs = {"validation_data": validation, **recorder_kwargs}
    rec = kl.WeightHistory(every=1, window=WINDOW, background=False, **recorder_kwargs)
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[rec],
              validation_data=validation, **(fit_kwargs or {}))  # fmt: skip
    return rec, model


# ---- tf.data validation sets ------------------------------------------------------------------


def test_a_dataset_gives_the_same_target_as_arrays():
    _, _, xv, yv = make_data()
    by_arrays, _ = record((xv, yv))
    by_dataset, _ = record(dataset(xv, yv))
    assert by_dataset.history.n_windows == by_arrays.history.n_windows > 2
    np.testing.assert_array_equal(by_dataset.history.target, by_arrays.history.target)
    np.testing.assert_array_equal(by_dataset.history.le, by_arrays.history.le)


def test_dataset_given_to_the_recorder_is_read_once_and_bounded():
    _, _, xv, yv = make_data()
    # A shuffling dataset: reading it at every window would evaluate different orders; rows are
    # bounded to the first 32 (two batches), so the target is a multiple of 1/32.
    shuffled = tf().data.Dataset.from_tensor_slices((xv, yv)).shuffle(60, seed=1).batch(16)
    rec, _ = record(None, validation_data=shuffled, validation_rows=32)
    assert rec._val[0].shape == (32, 6)
    target = rec.history.target
    np.testing.assert_allclose(target * 32, np.round(target * 32), atol=1e-9)
    # validation_batches bounds in batches
    rec, _ = record(None, validation_data=dataset(xv, yv, batch=7), validation_batches=3)
    assert rec._val[0].shape == (21, 6)


def test_infinite_dataset_needs_a_bound():
    _, _, xv, yv = make_data()
    forever = dataset(xv, yv).repeat()
    with pytest.raises(InvalidArgumentError, match="infinite.*validation_batches"):
        record(None, validation_data=forever)
    rec, _ = record(None, epochs=2, validation_data=forever, validation_batches=1)
    assert rec._val[0].shape == (16, 6)


def test_dataset_without_labels_or_unbatched_is_refused():
    _, _, xv, yv = make_data()
    with pytest.raises(InvalidArgumentError, match=r"\(x, y\)"):
        record(None, validation_data=tf().data.Dataset.from_tensor_slices(xv).batch(8))
    with pytest.raises(InvalidArgumentError, match="batched"):
        record(None, validation_data=tf().data.Dataset.from_tensor_slices((xv, yv)))


def test_no_validation_data_is_still_refused():
    with pytest.raises(HistoryError, match="needs validation data"):
        record(None)


# ---- EarlyStopping(restore_best_weights=True) -------------------------------------------------


def _flavour_model(flavour):
    if flavour == "keras2":
        return keras(), make_model()
    k3 = keras3()
    if k3.backend.backend() != "tensorflow":
        pytest.skip("the Keras 3 case runs on the TensorFlow backend")
    k3.utils.set_random_seed(0)
    model = k3.Sequential([k3.Input((6,)), k3.layers.Dense(8, activation="tanh"),
                           k3.layers.Dense(2, activation="softmax")])  # fmt: skip
    model.compile(k3.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return k3, model


@pytest.mark.parametrize("flavour", ["keras2", "keras3"])
@pytest.mark.parametrize("recorder_first", [True, False])
def test_final_kernels_agree_with_the_model_after_early_stopping(recorder_first, flavour, tmp_path):
    x, y, xv, yv = make_data()
    kk, model = _flavour_model(flavour)
    # The loss falls, so "max" mode keeps epoch 1 as the best: stops after 2 more, restores epoch 1.
    stop = kk.callbacks.EarlyStopping(monitor="loss", mode="max", patience=2,
                                      restore_best_weights=True)  # fmt: skip
    rec = kl.WeightHistory(every=1, window=WINDOW, background=False, run_dir=tmp_path / "run",
                           validation_data=(xv, yv), early_stopping=stop)  # fmt: skip
    callbacks = [rec, stop] if recorder_first else [stop, rec]
    fit = model.fit(x, y, batch_size=16, epochs=10, verbose=0, callbacks=callbacks,
                    validation_data=(xv, yv))  # fmt: skip
    assert len(fit.history["loss"]) == 3  # it did stop early
    hist = rec.history
    assert hist.meta["final_kernels"] == "early_stopping_best"
    assert hist.meta["final_kernels_epoch"] == 1
    assert hist.n_snapshots == 3 * 12  # the recording covers the whole training
    for layer in model.layers:
        np.testing.assert_array_equal(hist.final_kernels[layer.name], layer.kernel.numpy())
    saved = kl.History.load(tmp_path / "run")
    for layer in model.layers:
        np.testing.assert_array_equal(saved.final_kernels[layer.name], layer.kernel.numpy())
    assert saved.meta["final_kernels"] == "early_stopping_best"


def test_early_stopping_that_is_not_one_is_refused():
    with pytest.raises(InvalidArgumentError, match="early_stopping must be the EarlyStopping"):
        kl.WeightHistory(early_stopping=k.callbacks.TerminateOnNaN())


def test_final_kernels_without_early_stopping_are_the_end_of_training():
    rec, model = record(make_data()[2:])
    assert "final_kernels" not in rec.history.meta  # nothing restored: the end of training
    for layer in model.layers:
        np.testing.assert_array_equal(rec.history.final_kernels[layer.name], layer.kernel.numpy())


# ---- TensorBoard -------------------------------------------------------------------------------


def read_events(log_dir):
    """{tag: [(step, value array)]} and {tag: plugin name} from the event files in log_dir."""
    events, plugins = {}, {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf().compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                array = tf().make_ndarray(value.tensor)
                events.setdefault(value.tag, []).append((event.step, array))
                plugins.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
    return events, plugins


def test_tensorboard_log_has_target_le_histograms_and_static_share(tmp_path):
    x, y, xv, yv = make_data()
    model = make_model()
    # The output layer does not train: its weights are static in every window.
    model.layers[1].trainable = False
    model.compile(k.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    rec = kl.WeightHistory(
        every=1, window=WINDOW, log_dir=tmp_path / "tb", validation_data=(xv, yv)
    )
    model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[rec], validation_data=(xv, yv))
    hist = rec.history
    events, plugins = read_events(tmp_path / "tb")
    first, last = (layer.name for layer in model.layers)
    # TensorBoard shows a tag by its plugin: these are what its scalars/histograms panels read.
    assert plugins["legc/target_misclassification"] == plugins["legc/static_share"] == "scalars"
    assert plugins[f"legc/le/{first}"] == "histograms"
    assert {"legc/target_misclassification", "legc/static_share", f"legc/le/{first}",
            f"legc/le/{last}", f"legc/static_share/{first}"} <= set(events)  # fmt: skip
    target = events["legc/target_misclassification"]
    assert len(target) == hist.n_windows > 3
    steps = [step for step, _ in target]
    assert steps == sorted(steps) and steps[0] == WINDOW  # the first window closes at step 10
    np.testing.assert_allclose([v for _, v in target], hist.target, rtol=1e-6)
    for i, (_, counts) in enumerate(events[f"legc/le/{first}"]):
        assert counts[:, 2].sum() == 6 * 8  # every weight of the layer, once per window
        le = hist.le_of(first)[..., i]
        assert counts[0, 0] == pytest.approx(le.min(), rel=1e-5)
    # The frozen layer never moves: its static share is 1 in every window, the trained one's 0.
    assert all(v == 1.0 for _, v in events[f"legc/static_share/{last}"])
    assert all(v == 0.0 for _, v in events[f"legc/static_share/{first}"])
    overall = [v for _, v in events["legc/static_share"]]
    np.testing.assert_allclose(overall, 16 / (48 + 16))


# ---- legc reproduce: progress with ETA -----------------------------------------------------------


def test_reproduce_shows_progress_under_its_run_lines(tmp_path, paper_data_dir, capsys):
    from dataclasses import replace

    from legc_research.reproduce import ReproduceConfig, reproduce

    config = replace(ReproduceConfig.quick(), datasets=("iris",), modes=("clean",), seeds=(0,),
                     sweep=(), save_models=False)  # fmt: skip
    reproduce(tmp_path, config, data_dir=paper_data_dir, progress=True)
    err = capsys.readouterr().err
    assert "[1/1] clean iris" in err  # the run line, printed above the bar
    assert "reproduce [" in err and "1/1" in err and "ETA" in err and err.endswith("\n")
    reproduce(tmp_path, config, data_dir=paper_data_dir, overwrite=True, progress=False)
    err = capsys.readouterr().err
    assert "[1/1] clean iris" in err and "ETA" not in err


# ---- the target's forward pass ----------------------------------------------------------------


@pytest.mark.parametrize("target", ["misclassification", "loss"])
def test_keras3_target_uses_the_compiled_predict_and_agrees_with_an_eager_call(target):
    """Keras 3 evaluates the target through the model's compiled predict function (a convnet's
    eager call costs several times more); its value equals one computed from eager outputs."""
    K = keras3()
    x, y, xv, yv = make_data()
    K.utils.set_random_seed(0)
    model = K.Sequential([K.layers.Input((x.shape[1],)), K.layers.Dense(8, activation="relu"),
                          K.layers.Dense(int(y.max()) + 1, activation="softmax")])  # fmt: skip
    model.compile("adam", "sparse_categorical_crossentropy")
    rec = kl.WeightHistory(every=1, window=WINDOW, validation_data=(xv, yv), target=target,
                           eval_batch_size=7, background=False)  # fmt: skip
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[rec])
    eager = np.asarray(model(xv, training=False))
    if target == "misclassification":
        expected = float(np.mean(eager.argmax(axis=1) != yv))
        assert rec._misclassification() == pytest.approx(expected, abs=1e-12)
    else:
        p = eager[np.arange(len(yv)), yv]
        assert rec._validation_loss() == pytest.approx(float(np.mean(-np.log(p))), rel=1e-4)
    calls, real = [], model.predict_on_batch  # a spy that calls through to Keras
    model.predict_on_batch = lambda batch: calls.append(len(batch)) or real(batch)
    rec._misclassification()
    assert calls[0] == 7 and sum(calls) == len(xv)  # batches of eval_batch_size, all rows
