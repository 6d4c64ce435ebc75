"""Granger numerics that the statsmodels comparisons alone left open (issue 19): defaults, the
single-lag and differenced paths, chunk boundaries, dtypes, degenerate corner cases, BH q-values.

References: statsmodels ``grangercausalitytests`` (through keras_legc.testing.reference) and plain
loops written out here; every expected value is computed independently of keras_legc.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from keras_legc import HistoryError, InvalidArgumentError, NonFiniteError
from keras_legc.core import _compiled
from keras_legc.core.granger import (
    AUTO_MAX_LAG,
    COLLINEAR_CAUSE,
    CONSTANT_CAUSE,
    OK,
    PERFECT_FIT,
    benjamini_hochberg,
    effective_max_lag,
    granger_pvalues,
    granger_test,
)
from keras_legc.testing.reference import granger_pvalues_statsmodels, partial_r2_reference

TOL = 1e-9


def _series(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)), rng.normal(size=k).cumsum()


def _planted(seed: int, n: int, k: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """An effect driven by cause 0 through lags 1..lag (so a criterion picks a lag >= 2)."""
    rng = np.random.default_rng(seed)
    cause = rng.normal(size=(n, k))
    effect = 0.2 * rng.normal(size=k)
    for j in range(1, lag + 1):
        effect[j:] += (0.9 - 0.1 * j) * cause[0, :-j]
    return cause, effect


def test_default_max_lag_is_the_papers_14():
    # K = 60 allows floor(58 / 3) = 19 > 14: the default is what limits the lags.
    cause, effect = _series(0, 3, 60)
    res = granger_test(cause, effect)
    assert res.max_lag == 14 and res.lags == tuple(range(1, 15))
    assert res.test == "ssr_chi2"
    p = granger_pvalues(cause, effect)
    assert isinstance(p, np.ndarray) and p.shape == (3,)  # per_lag is off by default
    ref = granger_pvalues_statsmodels(cause, effect, 14).min(axis=1)
    assert np.max(np.abs(p - ref)) <= TOL


def test_auto_max_lag_is_14_or_what_the_series_allow():
    assert AUTO_MAX_LAG == 14
    assert effective_max_lag(100, "auto") == 14
    assert effective_max_lag(20, "auto") == 6  # floor((20 - 2) / 3)
    assert effective_max_lag(100, 5) == 5
    cause, effect = _series(1, 2, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" caps silently
        res = granger_test(cause, effect, "auto")
    assert res.lags == tuple(range(1, 7))


@pytest.mark.parametrize("test", ["ssr_chi2", "ssr_ftest"])
def test_single_lag_is_statsmodels_at_that_lag(test):
    cause, effect = _series(2, 6, 40)
    res = granger_test(cause, effect, 14, test, lag=3)
    assert res.lags == (3,) and res.max_lag == 3 and res.test == test
    ref = granger_pvalues_statsmodels(cause, effect, 3, test)[:, 2]
    assert res.per_lag.shape == (6, 1)
    assert np.max(np.abs(res.pvalues - ref)) <= TOL
    p, per_lag = granger_pvalues(cause, effect, 14, test, per_lag=True, lag=3)
    assert per_lag.shape == (6, 1)
    assert np.max(np.abs(p - ref)) <= TOL


@pytest.mark.parametrize("chunk_size", [4, 4096])
def test_differenced_test_is_statsmodels_on_the_differenced_series(chunk_size):
    cause, effect = _series(3, 9, 30)
    ref = granger_pvalues_statsmodels(np.diff(cause, axis=1), np.diff(effect), 4)
    res = granger_test(cause, effect, 4, difference=True, chunk_size=chunk_size)
    assert np.max(np.abs(res.per_lag - ref)) <= TOL
    p = granger_pvalues(cause, effect, 4, difference=True, chunk_size=chunk_size)
    assert np.max(np.abs(p - ref.min(axis=1))) <= TOL


def test_chunk_boundaries_and_a_lone_last_series():
    # 10 series in chunks of 4: 4 + 4 + 2; and chunks of 3: a last chunk of one series.
    cause, effect = _series(4, 10, 25)
    ref = granger_pvalues_statsmodels(cause, effect, 3)
    for chunk_size in (3, 4, 10):
        res = granger_test(cause, effect, 3, chunk_size=chunk_size)
        assert np.max(np.abs(res.per_lag - ref)) <= TOL, chunk_size
    with pytest.raises(InvalidArgumentError, match=r"^chunk_size must be a positive integer"):
        granger_pvalues(cause, effect, 3, chunk_size=0)


def test_result_dtypes_are_the_documented_ones():
    cause, effect = _series(5, 4, 30)
    cause[1] = 2.0  # degenerate
    res = granger_test(cause, effect, 3, criterion="bic")
    assert res.degenerate.dtype == np.int8
    assert res.per_lag.dtype == np.float64 and res.pvalues.dtype == np.float64
    assert res.degenerate_counts() == {"constant cause series": 1}


def test_float32_and_integer_causes_are_widened_to_float64():
    rng = np.random.default_rng(6)
    cause32 = rng.normal(size=(5, 30)).astype(np.float32)
    effect = rng.normal(size=30)
    want = granger_test(cause32.astype(np.float64), effect, 4)
    got = granger_test(cause32, effect, 4)
    np.testing.assert_array_equal(got.per_lag, want.per_lag)
    ints = rng.integers(-50, 50, size=(3, 30))
    np.testing.assert_array_equal(
        granger_test(ints, effect, 4).per_lag, granger_test(ints.astype(float), effect, 4).per_lag
    )


def test_non_finite_cause_names_the_series_across_chunks():
    cause, effect = _series(7, 12, 25)
    cause[9, 4] = np.inf
    cause[10, 2] = np.nan
    with pytest.raises(NonFiniteError) as info:
        granger_test(cause, effect, 3, chunk_size=4)  # series 9 is row 1 of the third chunk
    msg = str(info.value)
    assert "series 9" in msg and "NaN or inf" in msg
    assert msg.endswith("lower the learning rate and record again.")


def test_cause_constant_except_its_last_point_is_a_constant_cause():
    # The last point is never a lag of anything, so the cause is constant for every lag.
    cause, effect = _series(8, 3, 30)
    cause[1] = 0.0
    cause[1, -1] = 5.0
    res = granger_test(cause, effect, 2)
    assert res.degenerate.tolist() == [OK, CONSTANT_CAUSE, OK]
    assert np.isnan(res.per_lag[1]).all() and np.isnan(res.pvalues[1])


def test_cause_with_one_move_before_the_end_is_testable_at_lag_1():
    # x[K-2] is x_{t-1} of the last point: at lag 1 the cause is a (valid) spike, not constant.
    cause, effect = _series(9, 2, 30)
    cause[1] = 0.0
    cause[1, -2] = 1.0
    res = granger_test(cause, effect, 1)
    assert res.degenerate.tolist() == [OK, OK]
    ref = granger_pvalues_statsmodels(cause, effect, 1)[:, 0]
    assert np.max(np.abs(res.pvalues - ref)) <= TOL
    # at lag 2 the second lag column x[0..K-3] is all zeros: collinear with the intercept
    assert granger_test(cause, effect, 2).degenerate[1] == COLLINEAR_CAUSE


def test_progress_counts_every_series_and_threads_are_checked():
    cause, effect = _series(10, 11, 25)
    done = []
    granger_test(cause, effect, 3, chunk_size=4, threads=1, progress=done.append)
    assert sorted(done) == [3, 4, 4]
    with pytest.raises(InvalidArgumentError, match="threads"):
        granger_test(cause, effect, 3, threads=0)


@pytest.mark.parametrize("numpy_path", [False, True])
def test_p_values_do_not_depend_on_the_cause_scale(monkeypatch, numpy_path):
    # Scaling a cause by c scales its lag block; the regression's fit, and so every p-value and
    # the collinearity verdict, is unchanged (down to tiny magnitudes).
    if numpy_path:
        monkeypatch.setitem(_compiled._loaded, "_granger_kernel", None)
    cause, effect = _series(11, 3, 30)
    base = granger_test(cause, effect, 3)
    for scale in (1e-13, 1e-9, 1e4):
        scaled = granger_test(cause * scale, effect, 3)
        assert scaled.degenerate.tolist() == [OK, OK, OK], scale
        assert np.max(np.abs(scaled.per_lag - base.per_lag)) <= 1e-9, scale


@pytest.mark.parametrize("criterion", ["bic", "aic"])
def test_f_test_at_a_selected_lag_above_one_is_statsmodels(criterion):
    cause, effect = _planted(12, 8, 60, 3)
    res = granger_test(cause, effect, 5, "ssr_ftest", criterion=criterion)
    assert res.selected_lag[0] >= 2  # the planted cause needs its lags 2 and 3
    ftest = granger_pvalues_statsmodels(cause, effect, 5, "ssr_ftest")
    for i, lag in enumerate(res.selected_lag):
        assert abs(res.f_pvalue[i] - ftest[i, lag - 1]) <= TOL, i
        assert (
            abs(res.partial_r2[i] - partial_r2_reference(cause[i : i + 1], effect, lag)[0]) <= 1e-9
        )


def test_degenerate_series_with_a_criterion_raise_no_numpy_warnings():
    # A perfect fit (SSR_u = 0) would divide by zero in the F statistic and log(0) in the IC.
    cause, effect = _series(13, 4, 30)
    cause[1] = 3.0
    cause[2, :-1] = effect[1:]  # effect_t = cause_{t-1} exactly: a perfect fit at every lag
    for kernel in (True, False):
        with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
            if not kernel:
                mp.setitem(_compiled._loaded, "_granger_kernel", None)
            warnings.simplefilter("error")
            res = granger_test(cause, effect, 3, "ssr_ftest", criterion="bic")
        assert res.degenerate[0] == OK and res.degenerate[1] != OK and res.degenerate[2] != OK
        assert res.selected_lag[1] == res.selected_lag[2] == 0
        assert np.isnan(res.f_pvalue[1:3]).all() and np.isnan(res.partial_r2[1:3]).all()


def test_lag_too_large_for_the_series_is_an_error_naming_the_fix():
    cause, effect = _series(14, 2, 12)
    with pytest.raises(HistoryError, match=r"choose lag <= 3"):
        granger_test(cause, effect, 14, lag=4)


def test_a_fixed_lag_on_too_few_points_for_any_lag_asks_for_more_windows():
    # 4 points allow no lag at all ((4 - 2) // 3 = 0): "choose lag <= 0" would be no advice
    cause, effect = _series(4, 2, 4)
    msg = _message(HistoryError, granger_test, cause, effect, 14, lag=1)
    assert msg.endswith("series have 4. Fix: record at least 5 points: more LE windows.")
    assert "lag <= 0" not in msg


def test_a_fixed_lag_where_only_lag_1_fits_names_lag_1():
    # 5 points: (5 - 2) // 3 = 1, the boundary where "choose lag <= 1" is still advice
    cause, effect = _series(5, 2, 5)
    msg = _message(HistoryError, granger_test, cause, effect, 14, lag=2)
    assert msg.endswith("series have 5. Fix: choose lag <= 1 or record more LE windows.")


def _bh_loop(p: list[float]) -> list[float]:
    """Benjamini-Hochberg written out: q_i = min over p_j >= p_i of p_j * m / rank_j, capped at 1."""
    finite = [v for v in p if np.isfinite(v)]
    m = len(finite)
    ranked = sorted(finite)
    out = []
    for v in p:
        if not np.isfinite(v):
            out.append(float("nan"))
            continue
        best = min(ranked[j] * m / (j + 1) for j in range(m) if ranked[j] >= v)
        out.append(min(best, 1.0))
    return out


def test_benjamini_hochberg_equals_the_plain_loop_with_ties_nan_and_float32():
    p = [0.01, 0.04, 0.04, np.nan, 0.03, 0.9, 0.2, 0.04]
    np.testing.assert_allclose(benjamini_hochberg(np.array(p)), _bh_loop(p), rtol=1e-15)
    # five values: p * m rounds differently in float32 (times 4 would be exact)
    p32 = np.array([0.011, 0.023, 0.037, 0.5, 0.2], dtype=np.float32)
    got = benjamini_hochberg(p32)
    assert got.dtype == np.float64
    # the arithmetic happens in float64: equal to the loop on the float32 values, bit for bit
    np.testing.assert_array_equal(got, _bh_loop([float(v) for v in p32]))
    assert np.isnan(benjamini_hochberg(np.array([np.nan, np.inf]))).all()


def test_benjamini_hochberg_q_values_never_exceed_one():
    # p-values above 1 (e.g. from a one-sided correction) still give q <= 1, as statsmodels does
    got = benjamini_hochberg(np.array([0.2, 1.5, 3.0]))
    np.testing.assert_array_equal(got, _bh_loop([0.2, 1.5, 3.0]))
    assert got.max() == 1.0


def _message(exc_type, func, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as info:
        func(*args, **kwargs)
    return str(info.value)


def test_argument_errors_name_the_problem_and_the_fix():
    cause, effect = _series(15, 2, 20)
    msg = _message(InvalidArgumentError, granger_test, cause, effect, 2, "lrtest")
    assert "got 'lrtest'. Fix: 'ssr_chi2' (the paper's) or 'ssr_ftest'." in msg
    for bad in (0, True, 2.0, "all"):
        msg = _message(InvalidArgumentError, granger_test, cause, effect, bad)
        assert f"got {bad!r}. Fix: 'auto' (the largest the windows allow, at most 14)" in msg
        assert msg.endswith("or e.g. max_lag=8.")
    for bad in (0, True, 1.0):
        msg = _message(InvalidArgumentError, granger_test, cause, effect, 3, lag=bad)
        assert f"got {bad!r}. Fix: None tests every lag up to max_lag; an int tests" in msg
    msg = _message(InvalidArgumentError, granger_test, cause, effect, 2, criterion="hqic")
    assert "got 'hqic'. Fix: 'bic' (the default lag choice), 'aic', or None to skip" in msg
    # numpy integers are integers; "auto" still checks the test's name
    assert granger_test(cause, effect, np.int64(2), lag=np.int64(1)).lags == (1,)
    assert "Fix: 'ssr_chi2'" in _message(
        InvalidArgumentError, granger_test, cause, effect, "auto", "F"
    )


def test_series_errors_name_the_problem_and_the_fix():
    cause, effect = _series(16, 2, 20)
    msg = _message(InvalidArgumentError, granger_test, cause.astype(complex), effect, 2)
    assert "got dtype complex128. Fix: pass a float array (n_series, K), e.g. History.le." in msg
    for c, e in ((cause, effect[:-1]), (cause[None], effect), (cause, np.stack([effect] * 2))):
        msg = _message(InvalidArgumentError, granger_test, c, e, 2)
        assert f"got cause {c.shape} and effect {e.shape}. Fix: pass History.le (weights x " in msg
        assert msg.endswith("windows) and History.target (windows,) of the same history.")
    bad = effect.copy()
    bad[4] = np.inf
    msg = _message(NonFiniteError, granger_test, cause, bad, 2)
    assert msg.startswith("the effect series contains NaN or inf. Fix: training diverged")
    assert msg.endswith("the history is corrupt; lower the learning rate and record again.")
    msg = _message(HistoryError, granger_test, cause, np.full(20, 0.3), 2)
    assert msg.startswith("the effect (target) series is constant, so nothing can Granger-cause")
    assert "it: the validation target (misclassification rate or loss) never changed" in msg
    assert "while recording. Fix: use more validation data, train longer" in msg
    # one series as a 1-D list: the same as a one-row array
    one = granger_test(list(cause[1]), effect, 2)
    np.testing.assert_array_equal(one.per_lag, granger_test(cause[1:], effect, 2).per_lag)


def test_length_errors_and_the_cap_warning_state_the_numbers():
    cause, effect = _series(17, 2, 12)
    msg = _message(HistoryError, granger_test, cause, effect, 14, lag=4, difference=True)
    assert msg.startswith("a Granger test at lag 4 needs more than 13 points, but after ")
    assert (
        "differencing, the series have 11. Fix: choose lag <= 3 or record more LE windows." in msg
    )
    msg = _message(HistoryError, granger_test, cause[:, :4], effect[:4], 1)
    assert msg.startswith("the series have 4 points, too few for a Granger test even at lag 1")
    assert "(needs at least 5). Fix: record more LE windows: train longer" in msg
    msg = _message(HistoryError, granger_test, cause[:, :5], effect[:5], 1, difference=True)
    assert msg.startswith("after differencing, the series have 4 points, too few")
    with pytest.warns(Warning) as rec:
        granger_test(cause, effect, 5, difference=True)
    msg = str(rec[0].message)
    assert msg.startswith("max_lag=5 needs more than 16 points but after differencing, the series")
    assert "have 11; testing lags 1..3 instead (effective lag = min(L, floor((K-2)/3)))." in msg


@pytest.mark.parametrize("test", ["ssr_chi2", "ssr_ftest"])
@pytest.mark.parametrize("kernel", [True, False])
def test_an_exact_fit_is_flagged_without_numpy_warnings(monkeypatch, test, kernel):
    # effect_t = cause_{t-1} on small integers: the unrestricted residual is exactly 0.0 here, so
    # the statistic divides by zero and the information criterion takes log(0)
    if not kernel:
        monkeypatch.setitem(_compiled._loaded, "_granger_kernel", None)
    cause = np.array([1.0, 2.0, 1.0, 1.0, 1.0, -2.0, 0.0, -2.0, -2.0, 0.0])
    effect = np.zeros(10)
    effect[1:] = cause[:-1]
    other = np.random.default_rng(18).normal(size=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = granger_test(np.stack([cause, other]), effect, 1, test, criterion="bic")
    assert res.degenerate.tolist() == [PERFECT_FIT, OK]
    assert np.isnan(res.pvalues[0]) and np.isnan(res.f_pvalue[0]) and res.selected_lag[0] == 0
    ref = granger_pvalues_statsmodels(other[None], effect, 1, test)[0, 0]
    assert abs(res.pvalues[1] - ref) <= TOL


def test_effect_of_another_dtype_or_shape():
    cause, effect = _series(19, 3, 20)
    effect32 = effect.astype(np.float32)
    np.testing.assert_array_equal(  # widened to float64 before any arithmetic
        granger_test(cause, effect32, 3).per_lag,
        granger_test(cause, effect32.astype(np.float64), 3).per_lag,
    )
    np.testing.assert_array_equal(  # differenced in float64 too
        granger_test(cause, effect32, 3, difference=True).per_lag,
        granger_test(cause, effect32.astype(np.float64), 3, difference=True).per_lag,
    )
    for c, e in ((cause[:, :, None], effect), (cause, effect[:, None])):  # K matches, ndim not
        msg = _message(InvalidArgumentError, granger_test, c, e, 2)
        assert "cause must be (n_series, K) and effect (K,)" in msg


def test_a_near_exact_fit_is_perfect_relative_to_the_targets_own_fit():
    # SSR_u below 1e-12 of SSR_r is a perfect fit, whatever the effect's scale (here SSR_r ~ 1e7)
    rng = np.random.default_rng(20)
    cause = rng.normal(size=(2, 30))
    effect = np.zeros(30)
    effect[1:] = 1e3 * cause[0, :-1] + 1e-8 * rng.normal(size=29)
    res = granger_test(cause, effect, 1)
    assert res.degenerate.tolist() == [PERFECT_FIT, OK]


def test_a_lone_series_in_its_chunk_gives_the_same_bits_without_numba(monkeypatch):
    # numpy sums an (n, 1) column in another order than an (n, m) block: a lone series is
    # duplicated so that chunking never changes a bit (10 series in chunks of 3: a lone last one)
    monkeypatch.setitem(_compiled._loaded, "_granger_kernel", None)
    cause, effect = _series(21, 10, 40)
    whole = granger_test(cause, effect, 4, chunk_size=10)
    for chunk_size in (1, 3):
        got = granger_test(cause, effect, 4, chunk_size=chunk_size)
        np.testing.assert_array_equal(got.per_lag, whole.per_lag)
