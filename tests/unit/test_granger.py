"""granger_pvalues / granger_test against statsmodels grangercausalitytests (max |dp| <= 1e-9)."""

import warnings

import numpy as np
import pytest
from statsmodels.tools.sm_exceptions import InfeasibleTestError

from keras_legc import HistoryError, InvalidArgumentError, LegcWarning, NonFiniteError
from keras_legc.core.granger import (
    COLLINEAR_CAUSE,
    CONSTANT_CAUSE,
    OK,
    PERFECT_FIT,
    benjamini_hochberg,
    granger_pvalues,
    granger_test,
)
from keras_legc.testing.reference import granger_pvalues_statsmodels

TOL = 1e-9


@pytest.mark.parametrize("test", ["ssr_chi2", "ssr_ftest"])
@pytest.mark.parametrize(("k", "lag"), [(5, 1), (8, 2), (20, 6), (44, 14), (60, 3)])
def test_matches_statsmodels_on_random_series(rng, test, k, lag):
    cause = rng.normal(size=(25, k))
    effect = rng.normal(size=k)
    res = granger_test(cause, effect, lag, test)
    ref = granger_pvalues_statsmodels(cause, effect, lag, test)
    assert res.max_lag == lag
    assert np.all(res.degenerate == OK)
    assert np.max(np.abs(res.per_lag - ref)) <= TOL
    assert np.max(np.abs(res.pvalues - ref.min(axis=1))) <= TOL


def test_matches_statsmodels_on_causal_and_scaled_series(rng):
    k = 50
    scales = np.logspace(-4, 3, 10)  # magnitudes 1e-4 .. 1e3
    cause = rng.normal(size=(10, k)) * scales[:, None]
    effect = np.zeros(k)
    effect[1:] = cause[3, :-1] / scales[3] + 0.1 * rng.normal(size=k - 1)
    p, per_lag = granger_pvalues(cause, effect, 4, per_lag=True)
    ref = granger_pvalues_statsmodels(cause, effect, 4)
    assert np.max(np.abs(per_lag - ref)) <= TOL
    assert p[3] < 1e-6  # the planted cause is found


def test_chunking_is_bit_identical(rng):
    cause = rng.normal(size=(103, 30))
    effect = rng.normal(size=30)
    a = granger_test(cause, effect, 5, chunk_size=7)
    b = granger_test(cause, effect, 5, chunk_size=1000)
    np.testing.assert_array_equal(a.per_lag, b.per_lag)
    np.testing.assert_array_equal(a.degenerate, b.degenerate)


def test_degenerate_series_are_flagged_and_counted(rng):
    k = 40
    effect = rng.normal(size=k)
    cause = rng.normal(size=(5, k))
    cause[0] = 0.7  # constant
    cause[1] = 0.0  # constant zero
    cause[2] = 3 * effect - 1  # its lags are exactly the target's own lags (collinear)
    res = granger_test(cause, effect, 3)
    assert res.degenerate.tolist() == [CONSTANT_CAUSE, CONSTANT_CAUSE, COLLINEAR_CAUSE, OK, OK]
    assert np.isnan(res.pvalues[:3]).all() and np.isfinite(res.pvalues[3:]).all()
    assert res.degenerate_counts() == {
        "constant cause series": 2,
        "cause lags collinear with the target's own lags": 1,
    }
    # statsmodels refuses the constant ones outright: we flag them instead of guessing.
    with pytest.raises(InfeasibleTestError):
        granger_pvalues_statsmodels(cause[:1], effect, 3)
    ref = granger_pvalues_statsmodels(cause[3:], effect, 3)
    assert np.max(np.abs(res.per_lag[3:] - ref)) <= TOL


def test_perfect_fit_is_flagged(rng):
    k = 30
    cause = rng.normal(size=(2, k))
    effect = np.zeros(k)
    effect[1:] = 2.0 * cause[0, :-1]  # y_t = 2 x_{t-1}: the unrestricted model fits exactly
    effect[0] = 0.3
    res = granger_test(cause, effect, 2)
    assert res.degenerate[0] == PERFECT_FIT
    assert np.isnan(res.pvalues[0])
    assert res.degenerate[1] == OK


def test_max_lag_is_capped_with_a_warning(rng):
    cause, effect = rng.normal(size=(3, 20)), rng.normal(size=20)
    with pytest.warns(LegcWarning, match="testing lags 1..6"):
        res = granger_test(cause, effect, 14)
    assert res.max_lag == 6 and res.per_lag.shape == (3, 6)
    ref = granger_pvalues_statsmodels(cause, effect, 6)
    assert np.max(np.abs(res.per_lag - ref)) <= TOL


def test_too_short_for_lag_one(rng):
    with pytest.raises(HistoryError, match="too few for a Granger test even at lag 1"):
        granger_pvalues(rng.normal(size=(2, 4)), rng.normal(size=4), 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs(rng, bad):
    cause, effect = rng.normal(size=(2, 20)), rng.normal(size=20)
    cause[1, 5] = bad
    with pytest.raises(NonFiniteError, match="NaN or inf"):
        granger_pvalues(cause, effect, 2)
    cause[1, 5] = 0.0
    effect[3] = bad
    with pytest.raises(NonFiniteError, match="effect"):
        granger_pvalues(cause, effect, 2)


def test_constant_effect_is_refused(rng):
    with pytest.raises(HistoryError, match="constant"):
        granger_pvalues(rng.normal(size=(2, 20)), np.full(20, 0.1), 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test": "lrtest"}, "test must be one of"),
        ({"max_lag": 0}, "max_lag must be an integer"),
        ({"max_lag": 2.5}, "max_lag must be an integer"),
    ],
)
def test_bad_arguments(rng, kwargs, match):
    args = {
        "cause": rng.normal(size=(2, 20)),
        "effect": rng.normal(size=20),
        "max_lag": 2,
        **kwargs,
    }
    with pytest.raises(InvalidArgumentError, match=match):
        granger_pvalues(**args)


def test_shape_mismatch(rng):
    with pytest.raises(InvalidArgumentError, match="same K"):
        granger_pvalues(rng.normal(size=(2, 20)), rng.normal(size=19), 2)


def test_no_warning_when_lag_fits(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        granger_pvalues(rng.normal(size=(2, 44)), rng.normal(size=44), 14)


@pytest.mark.parametrize(("k", "lag"), [(6, 1), (27, 8), (44, 14), (60, 3)])
@pytest.mark.parametrize(
    "options",
    [{}, {"test": "ssr_ftest"}, {"criterion": "bic"}, {"chunk_size": 7}, {"difference": True}],
)
def test_compiled_kernel_gives_the_numpy_paths_bits(rng, monkeypatch, k, lag, options):
    # The numba kernel repeats the numpy path's floating-point operations in the same order: the
    # same bits, degenerate series included (constant, collinear, rounded, half constant).
    from keras_legc.core import _compiled

    cause = rng.normal(size=(75, k))
    effect = rng.normal(size=k)
    cause[3], cause[4], cause[5] = 1.0, effect, np.round(cause[5])
    cause[6, : k // 2] = 0.0
    compiled = granger_test(cause, effect, lag, **options)
    monkeypatch.setitem(_compiled._loaded, "_granger_kernel", None)  # the numpy fallback
    fallback = granger_test(cause, effect, lag, **options)
    for field in ("per_lag", "pvalues", "degenerate", "selected_lag", "f_pvalue", "partial_r2"):
        a, b = getattr(compiled, field), getattr(fallback, field)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=field)
    assert compiled.degenerate[3] == CONSTANT_CAUSE


def test_benjamini_hochberg_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    for m in (1, 2, 7, 200):
        p = rng.uniform(size=m) ** 3
        p[rng.integers(0, m)] = 0.9999
        np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1],
                                   rtol=1e-12)  # fmt: skip
    p = np.array([0.01, np.nan, 0.04, 0.03, np.inf])
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="fdr_bh")[1])
    assert np.isnan(q[[1, 4]]).all() and np.isnan(benjamini_hochberg(np.full(3, np.nan))).all()
