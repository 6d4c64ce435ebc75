"""score() around its edges: the fewest windows, a corrupt target, weight selections (what the
untested weights get), the static-weight blocks and the empty-layer warning's key facts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.core.granger import CONSTANT_CAUSE, granger_test
from keras_legc.core.scoring import MIN_WINDOWS, Scores, ScoreSpec, _static_weights, score_block
from keras_legc.errors import HistoryError, InvalidArgumentError, LegcWarning, NonFiniteError


def _history(k: int, seed: int = 0) -> kl.History:
    rng = np.random.default_rng(seed)
    le = rng.normal(size=(12, k))
    le[3] = 0.0  # never moved
    return kl.History(
        layers=["a", "b"], shapes={"a": (2, 4), "b": (4, 1)}, le=le,
        target=rng.normal(size=k).cumsum(), window=10, overlap=0.1, every=1,
        n_snapshots=10 + 9 * (k - 1),
    )  # fmt: skip


def _score(*args, **kwargs) -> Scores:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        return kl.score(*args, **kwargs)


def test_the_fewest_windows_a_granger_test_needs_are_enough():
    assert MIN_WINDOWS == 5  # lag 1 needs K > 3 * 1 + 1
    h = _history(MIN_WINDOWS)
    s = _score(h)
    assert s.lags == (1,)
    # equal to the Granger test of the LE series (float32 in the history) written directly
    want = granger_test(np.asarray(h.le, np.float64), h.target, 1)
    np.testing.assert_array_equal(s.pvalues, want.pvalues)


def test_too_few_windows_names_the_count_and_the_fix():
    h = _history(MIN_WINDOWS - 1)
    with pytest.raises(HistoryError) as info:
        kl.score(h)
    msg = str(info.value)
    assert "4 LE window(s)" in msg and f"at least {MIN_WINDOWS}" in msg
    assert "even at lag 1. Fix: train for more steps" in msg
    assert msg.endswith("or use a smaller window.")


def test_a_corrupt_target_names_the_problem_and_the_fix():
    h = _history(10)
    h.target[3] = np.nan
    with pytest.raises(NonFiniteError) as info:
        kl.score(h)
    msg = str(info.value)
    assert msg.startswith("the target series contains NaN or inf")
    assert msg.endswith("Fix: record it again.")


@pytest.mark.parametrize(
    "weights",
    [np.ones(13, bool), np.ones(11, bool), np.ones(12, np.int64), np.ones((3, 4), bool)],
)
def test_weights_of_the_wrong_shape_or_type_are_refused(weights):
    with pytest.raises(InvalidArgumentError) as info:
        kl.score(_history(10), weights=weights)
    msg = str(info.value)
    assert "boolean array of shape (12,)" in msg and f"{weights.shape}" in msg
    assert "Fix: pass e.g. the flattened kept entries of a Mask" in msg


def test_selecting_no_weight_names_the_fix():
    with pytest.raises(InvalidArgumentError) as info:
        kl.score(_history(10), weights=np.zeros(12, bool))
    assert str(info.value).endswith("Fix: select at least one.")


def test_untested_weights_get_no_evidence_in_every_array():
    h = _history(20)
    chosen = np.zeros(12, bool)
    chosen[[0, 2, 5, 11]] = True
    part, full = _score(h, weights=chosen), _score(h)
    for name in ("pvalues", "f_pvalue", "partial_r2", "selected_lag", "degenerate"):
        np.testing.assert_array_equal(getattr(part, name)[chosen], getattr(full, name)[chosen])
    assert np.isnan(part.pvalues[~chosen]).all() and np.isnan(part.f_pvalue[~chosen]).all()
    assert np.isnan(part.partial_r2[~chosen]).all()
    assert (part.selected_lag[~chosen] == 0).all() and (part.selected_lag[chosen] >= 1).all()
    assert (part.degenerate[~chosen] == CONSTANT_CAUSE).all()


def test_score_block_arrays_have_the_per_weight_dtypes():
    h = _history(20)
    spec = ScoreSpec.resolve(h, "auto", "ssr_chi2", None, False, "bic", 4096)
    selected = np.arange(12) % 2 == 0
    for sel in (None, selected, np.zeros(12, bool)):
        arrays = score_block(np.asarray(h.le), spec, sel)
        assert arrays["degenerate"].dtype == np.int8
        assert arrays["selected_lag"].dtype == np.int16
        assert arrays["static"].dtype == bool
        assert arrays["pvalues"].dtype == np.float64


def test_static_weights_block_by_block():
    le = np.random.default_rng(1).normal(size=(10, 5))
    le[[0, 4, 9]] = 0.0
    le[6, 2] = 0.0  # one zero window is not static
    want = np.array([not any(v != 0 for v in row) for row in le])
    for rows in (1, 3, 4, 10, 1 << 16):
        got = _static_weights(le, rows=rows)
        assert got.dtype == bool
        np.testing.assert_array_equal(got, want)


def test_empty_layer_warning_states_the_consequence():
    s = Scores(layers=["a", "b"], shapes={"a": (2, 2), "b": (2, 1)},
               pvalues=[0.01, 0.01, 0.01, 0.01, 0.9, 0.9], degenerate=np.zeros(6), max_lag=1,
               test="ssr_chi2")  # fmt: skip
    with pytest.warns(LegcWarning) as rec:
        m = s.mask(alpha=0.05)
    (w,) = [r for r in rec if "prunes every kernel weight" in str(r.message)]
    msg = str(w.message)
    assert "layer(s) ['b']" in msg
    assert "output no longer depends on its input" in msg and "no fine-tuning can recover" in msg
    assert "p-values are uniformly high" in msg
    assert m.info["empty_layers"] == ["b"]


def test_scores_record_how_they_were_made():
    h = _history(20)
    h.final_kernels = {"a": np.full((2, 4), 2.0), "b": np.ones((4, 1))}
    s = _score(h, max_lag=3, lag=2, difference=True, criterion="aic", fdr=True)
    assert s.info == {"n_windows": 20, "window": 10, "requested_max_lag": 3, "fdr": True,
                      "differenced": True, "criterion": "aic",
                      "target_flat_windows": 1}  # fmt: skip
    assert s.kernels is h.final_kernels and s.lags == (2,) and s.max_lag == 2
    want = granger_test(np.asarray(h.le, np.float64), h.target, 3, lag=2, difference=True)
    np.testing.assert_array_equal(s.pvalues, want.pvalues)
    from keras_legc.core.granger import benjamini_hochberg

    np.testing.assert_array_equal(s.qvalues, benjamini_hochberg(want.pvalues))
    t = _score(h, test="ssr_ftest", criterion=None)
    assert t.test == "ssr_ftest" and t.f_pvalue is None and t.selected_lag is None
    f_test = granger_test(np.asarray(h.le, np.float64), h.target, "auto", "ssr_ftest")
    np.testing.assert_array_equal(t.pvalues, f_test.pvalues)
    assert t.info["requested_max_lag"] == "auto" and t.info["criterion"] is None


def test_progress_bar_names_the_work_and_counts_the_weights(capsys):
    h = _history(20)
    chosen = np.zeros(12, bool)
    chosen[:5] = True
    _score(h, progress=True, weights=chosen)
    err = capsys.readouterr().err
    assert "\rLEGC scoring [" in err and "5/5" in err
    _score(h, progress=False)
    assert capsys.readouterr().err == ""


def test_fdr_must_be_a_bool():
    with pytest.raises(InvalidArgumentError) as info:
        kl.score(_history(10), fdr="yes")
    msg = str(info.value)
    assert msg.startswith("fdr must be True or False, got 'yes'. Fix: fdr=True adds")
    assert "Benjamini-Hochberg q-values across weights; the paper's mode is fdr=False." in msg
    assert _score(_history(10), fdr=np.bool_(True)).qvalues is not None


def test_nan_in_the_le_series_is_named_as_diverged_weights():
    h = _history(10)
    h.le[7, 2] = np.nan
    with pytest.raises(NonFiniteError) as info:
        kl.score(h)
    msg = str(info.value)
    assert msg.startswith("the LE series contain NaN or inf; the recorded weights diverged.")
    assert msg.endswith("Fix: lower the learning rate and record again.")
    assert isinstance(info.value.__cause__, NonFiniteError)


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"threads": 0}, "threads"), ({"chunk_size": 0}, "chunk_size")]
)
def test_bad_threads_and_chunk_size_are_refused(kwargs, name):
    with pytest.raises(InvalidArgumentError, match=name):
        kl.score(_history(10), **kwargs)


def test_results_do_not_depend_on_chunks_or_threads():
    h = _history(20)
    want = _score(h)
    for chunk_size, threads in ((1, 1), (5, 2), (12, 3)):
        got = _score(h, chunk_size=chunk_size, threads=threads)
        for name in ("pvalues", "degenerate", "static", "f_pvalue", "partial_r2", "selected_lag"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


def test_block_rows_in_memory_is_chunk_size_times_threads():
    from keras_legc.core.scoring import block_rows

    h = _history(10)
    assert block_rows(h, 100) == 100  # one thread by default
    assert block_rows(h, 100, threads=3) == 300


def test_block_collector_puts_blocks_in_any_order_keeping_their_dtypes():
    from keras_legc.core.scoring import BlockCollector

    out = BlockCollector(5)
    out.put(3, {"degenerate": np.array([2, 0], np.int8), "static": np.array([True, False])})
    out.put(0, {"degenerate": np.array([0, 1, 3], np.int8), "static": np.zeros(3, bool)})
    assert out.n == 5
    np.testing.assert_array_equal(out.arrays["degenerate"], [0, 1, 3, 2, 0])
    np.testing.assert_array_equal(out.arrays["static"], [False, False, False, True, False])
    assert out.arrays["degenerate"].dtype == np.int8 and out.arrays["static"].dtype == bool


def test_a_stored_history_reports_progress_per_block(tmp_path, capsys):
    h = _history(20)
    h.save(tmp_path / "run", le_store=True)
    stored = kl.History.load(tmp_path / "run")
    assert stored.stored
    got = _score(stored, progress=True, chunk_size=4, threads=1)
    err = capsys.readouterr().err
    assert "\rLEGC scoring [" in err and "12/12" in err
    np.testing.assert_array_equal(got.pvalues, _score(h).pvalues)


def test_differencing_costs_a_window_when_the_lags_are_capped():
    # K = 11 allows lags 1..3; differenced, K = 10 allows only 1..2 (no warning for "auto")
    h = _history(11)
    assert _score(h).lags == (1, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = kl.score(h, difference=True)
    assert s.lags == (1, 2) and s.max_lag == 2
    want = granger_test(np.asarray(h.le, np.float64), h.target, "auto", difference=True)
    np.testing.assert_array_equal(s.pvalues, want.pvalues)


def _flat_target_history(k: int = 40, flat: int = 28, seed: int = 0) -> kl.History:
    """A history whose validation error reached 0 and stayed there for the last ``flat`` windows
    (the README's example on some seeds): every weight's test is an exact fit."""
    rng = np.random.default_rng(seed)
    target = np.r_[np.linspace(0.3, 0.01, k - flat) + rng.uniform(0, 0.01, k - flat),
                   np.zeros(flat)]  # fmt: skip
    kernels = {"a": rng.normal(size=(6, 4)), "b": rng.normal(size=(4, 2))}
    return kl.History(
        layers=["a", "b"], shapes={"a": (6, 4), "b": (4, 2)}, le=rng.normal(size=(32, k)),
        target=target, window=10, overlap=0.1, every=1, n_snapshots=10 + 9 * (k - 1),
        final_kernels=kernels,
    )  # fmt: skip


def test_a_mostly_flat_target_falls_back_to_the_weights_order_with_a_warning():
    h = _flat_target_history()
    assert h.target_flat_windows == 28
    scores = _score(h, progress=False)
    assert scores.n_degenerate == scores.n_weights  # the cause: every test is an exact fit
    with pytest.warns(LegcWarning, match=r'last 28 of the 40 windows.*weights\' order.*"loss"'):
        mask = scores.mask(sparsity=0.8)
    # the fallback is the magnitude order (no weight is static here), at the asked sparsity
    want = kl.magnitude_mask(h.final_kernels, 0.8)
    assert mask.sparsity == pytest.approx(0.8, abs=0.02)
    for name in ("a", "b"):
        np.testing.assert_array_equal(mask[name], want[name])
    with pytest.raises(HistoryError, match=r'last 28 of the 40 windows.*target="loss"'):
        scores.mask(alpha=0.05)


def test_all_degenerate_without_a_flat_target_keeps_its_error():
    h = _flat_target_history(flat=0)
    h.le[:] = 0.0  # nothing moved: the cause is the weights, not the target
    scores = _score(h, progress=False)
    with pytest.raises(HistoryError, match="check that the weights actually move"):
        scores.mask(sparsity=0.8)


def test_summary_and_mask_speak_of_target_modes_test():
    """The paper's min-p count is labelled as such; target mode's count (F at the BIC lag, BH
    q < 0.05) is computed here independently; the mask says what the evidence protected (the
    default: nothing; legc_protect: against a static-magnitude mask built here)."""
    from keras_legc.masking.importance import static_magnitude

    rng = np.random.default_rng(3)
    k = 30
    target = rng.normal(size=k).cumsum()
    le = rng.normal(size=(32, k))
    le[:6, :-1] += 2.0 * target[1:]  # six weights whose LE leads the target: causal
    h = kl.History(
        layers=["a", "b"], shapes={"a": (6, 4), "b": (4, 2)}, le=le, target=target, window=10,
        overlap=0.1, every=1, n_snapshots=10 + 9 * (k - 1),
        final_kernels={"a": rng.normal(size=(6, 4)) * 0.01, "b": rng.normal(size=(4, 2))},
    )  # fmt: skip
    s = _score(h, progress=False)
    f = s.f_pvalue
    tested = np.isfinite(f)
    order = np.argsort(f[tested])
    m_t = tested.sum()
    adj = np.minimum.accumulate((f[tested][order] * m_t / np.arange(1, m_t + 1))[::-1])[::-1]
    q = np.full(f.shape, np.nan)
    q[np.flatnonzero(tested)[order]] = np.minimum(adj, 1.0)
    causal = np.isfinite(q) & (q < 0.05)
    text = s.summary()
    assert (f"causal by target mode's test (F-test at the BIC lag, Benjamini-Hochberg "
            f"q < 0.05): {int(causal.sum())} of {int(m_t)} tested") in text  # fmt: skip
    assert "the paper's test (lags 1..9 (min p)): causal (p < 0.05)" in text
    assert causal[:6].sum() >= 1  # the case is real
    default = s.mask(sparsity=0.5)  # static_magnitude: no causal evidence used
    assert default.info["kept_by_evidence"] == 0
    assert default.info["kept_by_magnitude"] == default.n_kept
    mask = s.mask(sparsity=0.5, ranking="legc_protect")
    kept = np.concatenate([mask[n].ravel() for n in ("a", "b")])
    plain = kl.mask_from_importance(static_magnitude(s), h.final_kernels, 0.5)
    plain_kept = np.concatenate([plain[n].ravel() for n in ("a", "b")])
    assert mask.info["kept_causal"] == int((kept & causal).sum())
    assert mask.info["kept_by_evidence"] == int((kept & ~plain_kept).sum()) > 0
    assert mask.info["kept_by_magnitude"] == int(kept.sum()) - mask.info["kept_by_evidence"]
    assert f"kept by causal evidence: {mask.info['kept_by_evidence']}" in mask.summary()
