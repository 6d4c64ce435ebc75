"""Lag order by BIC/AIC, the F-test at that lag and its partial R-squared, against independent
references (a plain least-squares loop for the order, statsmodels for the test and the fits)."""

import numpy as np
import pytest

from keras_legc import InvalidArgumentError
from keras_legc.core.granger import OK, granger_test
from keras_legc.testing.reference import (
    granger_pvalues_statsmodels,
    partial_r2_reference,
    selected_lag_reference,
)

TOL = 1e-9


def _planted(rng, k, n, lag):
    """Random series, and an effect driven by the first cause at ``lag``."""
    cause = rng.normal(size=(n, k))
    effect = 0.3 * rng.normal(size=k)
    effect[lag:] += cause[0, :-lag]
    return cause, effect


@pytest.mark.parametrize("criterion", ["bic", "aic"])
@pytest.mark.parametrize(("k", "max_lag", "seed"), [(20, 4, 0), (44, 14, 1), (60, 6, 2), (9, 2, 3)])
def test_selected_lag_equals_the_plain_loop(criterion, k, max_lag, seed):
    rng = np.random.default_rng(seed)
    cause, effect = _planted(rng, k, 30, min(2, max_lag))
    res = granger_test(cause, effect, max_lag, "ssr_ftest", criterion=criterion)
    ref = selected_lag_reference(cause, effect, res.max_lag, criterion)
    assert np.all(res.degenerate == OK)
    np.testing.assert_array_equal(res.selected_lag, ref)
    assert len(set(res.selected_lag.tolist())) >= 1


def test_f_pvalue_and_partial_r2_at_the_selected_lag_match_statsmodels():
    rng = np.random.default_rng(5)
    cause, effect = _planted(rng, 50, 12, 3)
    res = granger_test(cause, effect, 5, "ssr_chi2", criterion="bic")
    per_lag_f = granger_pvalues_statsmodels(cause, effect, 5, "ssr_ftest")
    for i, lag in enumerate(res.selected_lag):
        assert abs(res.f_pvalue[i] - per_lag_f[i, lag - 1]) <= TOL
        assert abs(res.partial_r2[i] - partial_r2_reference(cause[i], effect, lag)[0]) <= TOL
    assert res.selected_lag[0] == 3  # the planted lag is found
    assert res.partial_r2[0] > 0.5 > np.nanmax(res.partial_r2[1:])
    # The paper's minimum-p evidence is unchanged by the selection.
    plain = granger_test(cause, effect, 5, "ssr_chi2")
    np.testing.assert_array_equal(plain.pvalues, res.pvalues)
    assert plain.selected_lag is None


def test_degenerate_series_have_no_selection_and_chunking_changes_nothing():
    rng = np.random.default_rng(7)
    cause, effect = _planted(rng, 30, 9, 1)
    cause[4] = 1.5  # constant: degenerate
    a = granger_test(cause, effect, 4, criterion="bic", chunk_size=2)
    b = granger_test(cause, effect, 4, criterion="bic", chunk_size=100)
    assert a.degenerate[4] != OK and a.selected_lag[4] == 0 and np.isnan(a.f_pvalue[4])
    np.testing.assert_array_equal(a.selected_lag, b.selected_lag)
    np.testing.assert_array_equal(a.f_pvalue, b.f_pvalue)
    np.testing.assert_array_equal(a.partial_r2, b.partial_r2)


def test_unknown_criterion_is_refused():
    with pytest.raises(InvalidArgumentError, match="criterion"):
        granger_test(np.ones((2, 20)), np.arange(20.0), 2, criterion="hqic")
