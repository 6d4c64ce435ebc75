"""Issue 3: chunk/thread invariance, fixed lag, FDR and differencing against direct computations,
raw snapshots on disk, and the recorder's memory bound."""

import warnings

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

import keras_legc as kl
from keras_legc import HistoryError, InvalidArgumentError, LegcWarning, windowed_lyapunov
from keras_legc.core.granger import OK, benjamini_hochberg, granger_test
from keras_legc.core.history import SNAPSHOTS_FILE, SNAPSHOTS_INDEX, load_snapshots
from keras_legc.testing.reference import granger_pvalues_statsmodels

TOL = 1e-9  # max |dp| against statsmodels


def synthetic_history(rng, n_weights=(6, 5), k=30, planted=True):
    """A History built by hand: random-walk LE series, a target some of them drive."""
    shapes = {"a": n_weights, "b": (n_weights[1], 2)}
    n = int(np.prod(shapes["a"]) + np.prod(shapes["b"]))
    le = rng.normal(size=(n, k)).astype(np.float32)
    target = rng.normal(size=k)
    if planted:
        target[1:] += 2.0 * le[3, :-1]
    le[7] = 0.25  # a degenerate (constant) series
    return kl.History(
        layers=["a", "b"],
        shapes=shapes,
        le=le,
        target=target,
        window=50,
        overlap=0.1,
        every=1,
        n_snapshots=50 + 45 * (k - 1),
        final_kernels={"a": rng.normal(size=shapes["a"]), "b": rng.normal(size=shapes["b"])},
    )


def quiet_score(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        return kl.score(*args, **kwargs)


@pytest.mark.parametrize("options", [{}, {"lag": 2}, {"fdr": True}, {"difference": True}])
def test_chunked_and_threaded_scoring_is_bit_identical(rng, options):
    history = synthetic_history(rng, n_weights=(40, 9))  # 378 weights
    reference = quiet_score(history, max_lag=5, chunk_size=10_000, threads=1, **options)
    for chunk_size, threads in [(1, 1), (7, 2), (64, 3), (377, 2)]:
        got = quiet_score(history, max_lag=5, chunk_size=chunk_size, threads=threads, **options)
        np.testing.assert_array_equal(got.pvalues, reference.pvalues)
        np.testing.assert_array_equal(got.degenerate, reference.degenerate)
        if options.get("fdr"):
            np.testing.assert_array_equal(got.qvalues, reference.qvalues)


def test_fixed_lag_equals_statsmodels_at_that_lag(rng):
    history = synthetic_history(rng)
    scores = kl.score(history, lag=3)
    assert scores.lags == (3,) and scores.max_lag == 3
    valid = scores.degenerate == OK
    ref = granger_pvalues_statsmodels(history.le[valid].astype(np.float64), history.target, 3)
    assert np.max(np.abs(scores.pvalues[valid] - ref[:, 2])) <= TOL
    assert scores.mask(alpha=0.05).info["lag"] == 3


def test_fixed_lag_too_large_is_refused_not_capped(rng):
    history = synthetic_history(rng, k=20)  # lags up to 6 fit
    with pytest.raises(HistoryError, match="lag 7 needs more than 22 points.*lag <= 6"):
        kl.score(history, lag=7)
    with pytest.raises(InvalidArgumentError, match="lag must be an integer"):
        kl.score(history, lag=0)


def test_fdr_equals_statsmodels_benjamini_hochberg(rng):
    history = synthetic_history(rng)
    scores = quiet_score(history, max_lag=4, fdr=True)
    valid = scores.degenerate == OK
    _, expected, _, _ = multipletests(scores.pvalues[valid], method="fdr_bh")
    np.testing.assert_allclose(scores.qvalues[valid], expected, rtol=1e-12, atol=0)
    assert np.isnan(scores.qvalues[~valid]).all()
    # Paper mode thresholds the q-values, which are never below the p-values.
    assert np.all(scores.qvalues[valid] >= scores.pvalues[valid])
    kept_fdr = scores.mask(alpha=0.05).n_kept
    kept_raw = quiet_score(history, max_lag=4).mask(alpha=0.05).n_kept
    assert kept_fdr <= kept_raw
    assert scores.mask(alpha=0.05).info["fdr"] is True


def test_benjamini_hochberg_on_hand_made_values():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.2])
    # sorted finite: .01 .03 .04 .2 (m = 4) -> .04 .06 .0533 .2 -> running min from the top
    expected = np.array([0.04, np.nan, 0.0533333333, 0.0533333333, 0.2])
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=1e-8)
    assert np.isnan(benjamini_hochberg(np.array([np.nan]))).all()


def test_difference_equals_statsmodels_on_differenced_series(rng):
    history = synthetic_history(rng)
    scores = quiet_score(history, max_lag=4, difference=True)
    valid = scores.degenerate == OK
    ref = granger_pvalues_statsmodels(
        np.diff(history.le[valid].astype(np.float64), axis=1), np.diff(history.target), 4
    )
    assert np.max(np.abs(scores.pvalues[valid] - ref.min(axis=1))) <= TOL
    assert scores.info["differenced"] is True


def test_linear_trend_is_constant_after_differencing(rng):
    k = 30
    cause = np.vstack([np.arange(k) * 0.1, rng.normal(size=k)])
    res = granger_test(cause, rng.normal(size=k), 3, difference=True)
    assert res.degenerate[0] != OK and res.degenerate[1] == OK


def test_scores_with_options_survive_a_reload(rng, tmp_path):
    scores = quiet_score(synthetic_history(rng), max_lag=4, fdr=True)
    scores.save(tmp_path / "s.npz")
    back = kl.Scores.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.pvalues, scores.pvalues)
    np.testing.assert_array_equal(back.qvalues, scores.qvalues)
    assert back.lags == scores.lags and back.info["fdr"] is True
    assert back.mask(alpha=0.05).n_kept == scores.mask(alpha=0.05).n_kept


def test_summary_names_the_options(rng):
    text = quiet_score(synthetic_history(rng), lag=2, fdr=True).summary()
    assert "lag 2 only" in text and "fdr" in text and "q < 0.05" in text


def test_progress_bar_counts_weights_and_shows_eta(rng, capsys):
    history = synthetic_history(rng, n_weights=(30, 10))
    quiet_score(history, max_lag=3, chunk_size=50, progress=True)
    err = capsys.readouterr().err
    assert f"{history.n_weights}/{history.n_weights}" in err and "ETA" in err
    quiet_score(history, max_lag=3, progress=False)
    assert capsys.readouterr().err == ""


def test_float32_le_is_widened_chunk_by_chunk(rng):
    # granger_test takes the float32 LE array as is; a float64 copy of it equals the same test.
    cause = rng.normal(size=(50, 25)).astype(np.float32)
    effect = rng.normal(size=25)
    a = granger_test(cause, effect, 3, chunk_size=8)
    b = granger_test(cause.astype(np.float64), effect, 3, chunk_size=50)
    np.testing.assert_array_equal(a.per_lag, b.per_lag)


# -- recording ----------------------------------------------------------------------------------
def _fit_small(tmp_path, **recorder_kwargs):
    from keras_legc.keras.flavour import keras

    k = keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype("int64")
    k.utils.set_random_seed(0)
    model = k.Sequential(
        [k.layers.Input((6,)), k.layers.Dense(5, activation="tanh"), k.layers.Dense(2)]
    )
    model.compile(k.optimizers.SGD(0.1), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    rec = kl.WeightHistory(
        validation_data=(x[240:], y[240:]), every=1, window=10, **recorder_kwargs
    )
    model.fit(x[:240], y[:240], batch_size=8, epochs=3, validation_data=(x[240:], y[240:]),
              callbacks=[rec], verbose=0)  # fmt: skip
    return rec


def test_raw_snapshots_on_disk_give_the_streaming_le(tmp_path):
    rec = _fit_small(tmp_path, run_dir=tmp_path / "run", save_snapshots=True)
    snaps = load_snapshots(tmp_path / "run")
    assert snaps.shape == (90, rec.history.n_weights) and snaps.dtype == np.float32
    full = windowed_lyapunov(np.asarray(snaps).T, 10)
    np.testing.assert_array_equal(rec.history.le, full.astype(np.float32))
    assert set(rec.timings) == {
        "snapshot_s",
        "lyapunov_s",
        "lyapunov_wait_s",
        "validation_s",
        "save_s",
    }
    assert all(v >= 0 for v in rec.timings.values())


def test_snapshot_index_never_claims_more_than_the_file_holds(tmp_path):
    _fit_small(tmp_path, run_dir=tmp_path / "run", save_snapshots=True)
    data = tmp_path / "run" / SNAPSHOTS_FILE
    raw = data.read_bytes()
    data.write_bytes(raw[: len(raw) // 2])  # truncated behind the index's back
    with pytest.raises(HistoryError, match="truncated"):
        load_snapshots(tmp_path / "run")
    (tmp_path / "run" / SNAPSHOTS_INDEX).write_text("{not json")
    with pytest.raises(HistoryError, match="not a keras_legc .*index"):
        load_snapshots(tmp_path / "run")
    with pytest.raises(HistoryError, match="holds no raw snapshots"):
        load_snapshots(tmp_path)


def test_save_snapshots_needs_a_run_dir():
    with pytest.raises(InvalidArgumentError, match="needs a run_dir"):
        kl.WeightHistory(every=1, save_snapshots=True)


def test_recorder_holds_one_window_not_the_whole_run(tmp_path):
    rec = _fit_small(tmp_path)
    # The ring buffer is one window of float32 snapshots plus one stride (the window the
    # background worker copies while the next snapshots arrive), whatever the number of steps.
    assert rec._ring.buffer.shape == (10 + rec._ring.stride, rec.history.n_weights)
    assert rec._ring.buffer.dtype == np.float32
    assert rec.history.n_snapshots == 90 > rec._ring.buffer.shape[0]


def test_background_and_inline_le_are_identical(tmp_path):
    inline = _fit_small(tmp_path, background=False).history
    background = _fit_small(tmp_path, background=True).history
    np.testing.assert_array_equal(inline.le, background.le)
    np.testing.assert_array_equal(inline.target, background.target)


def test_le_buffer_grows_when_keras_cannot_tell_the_number_of_steps(tmp_path):
    from keras_legc.keras.flavour import keras

    k = keras()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")

    def batches():  # a finite generator: Keras does not know the steps per epoch
        for i in range(0, 400, 4):
            yield x[i : i + 4], y[i : i + 4]

    k.utils.set_random_seed(0)
    model = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3, activation="tanh"),
                          k.layers.Dense(2)])  # fmt: skip
    model.compile(k.optimizers.SGD(0.1), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    rec = kl.WeightHistory(
        every=1, window=4, overlap=0.0, validation_data=(x[:50], y[:50]), run_dir=tmp_path / "r",
        save_snapshots=True,
    )  # fmt: skip
    model.fit(batches(), epochs=1, callbacks=[rec], verbose=0)
    assert rec.history.n_windows == 25 > 16  # the initial guess was 16 windows
    full = windowed_lyapunov(np.asarray(load_snapshots(tmp_path / "r")).T, 4, 0.0)
    np.testing.assert_array_equal(rec.history.le, full.astype(np.float32))
    back = kl.History.load(tmp_path / "r")
    np.testing.assert_array_equal(back.le, rec.history.le)
