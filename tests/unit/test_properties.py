"""Property-based checks (hypothesis) of the numerical core against its independent references.

- ``windowed_lyapunov`` must equal the plain per-window loop exactly, for any shape, window,
  overlap and magnitude (including duplicates, static stretches and values near 1e-150 or 1e150).
- ``granger_pvalues`` must equal statsmodels per lag to 1e-9 wherever statsmodels gives an answer
  and our test is not flagged degenerate, for any K, lag and magnitude.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from keras_legc import LegcWarning, windowed_lyapunov
from keras_legc.core.granger import OK, granger_test
from keras_legc.testing.reference import granger_pvalues_statsmodels, windowed_lyapunov_reference

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def series_batches(draw):
    """(series, window, overlap): random walks, quantised walks or static stretches, any scale."""
    window = draw(st.integers(4, 40))
    overlap = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    length = draw(st.integers(window, 3 * window + 5))
    n = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-150, 1e-8, 1e-3, 1.0, 1e6, 1e150]))
    kind = draw(st.sampled_from(["walk", "quantised", "piecewise"]))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, length)).cumsum(axis=1)
    if kind == "quantised":  # few distinct values: duplicates and distance ties everywhere
        x = np.round(x)
    elif kind == "piecewise":  # the weight moves only now and then, like a sparse-gradient weight
        x = np.where(rng.random((n, length)) < 0.8, 0.0, rng.normal(size=(n, length))).cumsum(1)
    return x * scale, window, overlap


@SETTINGS
@given(series_batches())
def test_windowed_lyapunov_is_identical_to_the_loop_reference(case):
    x, window, overlap = case
    got = windowed_lyapunov(x, window, overlap, threads=2)
    ref = windowed_lyapunov_reference(x, window, overlap)
    np.testing.assert_array_equal(got, ref)


@st.composite
def granger_cases(draw):
    k = draw(st.integers(5, 70))
    lag = draw(st.integers(1, max(1, (k - 2) // 3)))
    n = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    cause_scale = draw(st.sampled_from([1e-6, 1e-2, 1.0, 1e3, 1e6]))
    effect_scale = draw(st.sampled_from([1e-3, 1.0, 1e4]))
    coupled = draw(st.booleans())
    test = draw(st.sampled_from(["ssr_chi2", "ssr_ftest"]))
    rng = np.random.default_rng(seed)
    cause = rng.normal(size=(n, k)) * cause_scale
    effect = rng.normal(size=k)
    if coupled:  # a real cause, so small p-values are exercised too
        effect[1:] += 3.0 * cause[0, :-1] / cause_scale
    return cause, effect * effect_scale, lag, test


@SETTINGS
@given(granger_cases())
def test_granger_equals_statsmodels_per_lag(case):
    cause, effect, lag, test = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        res = granger_test(cause, effect, lag, test)
    ok = res.degenerate == OK
    assume(ok.any())
    ref = granger_pvalues_statsmodels(cause[ok], effect, lag, test)
    assert np.max(np.abs(res.per_lag[ok] - ref)) <= 1e-9


@SETTINGS
@given(granger_cases(), st.integers(1, 9), st.integers(1, 4))
def test_granger_does_not_depend_on_chunks_or_threads(case, chunk_size, threads):
    cause, effect, lag, test = case
    a = granger_test(cause, effect, lag, test, chunk_size=chunk_size, threads=threads)
    b = granger_test(cause, effect, lag, test, chunk_size=10_000, threads=1)
    np.testing.assert_array_equal(a.per_lag, b.per_lag)
    np.testing.assert_array_equal(a.degenerate, b.degenerate)


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_lyapunov_at_the_edges_of_float64(rng, scale):
    # Squares underflow to 0 (all points "duplicates") or overflow to inf (no finite neighbour):
    # both sides must agree that there is no valid pair, not produce NaN.
    x = rng.normal(size=(3, 60)).cumsum(axis=1) * scale
    got = windowed_lyapunov(x, 20)
    np.testing.assert_array_equal(got, windowed_lyapunov_reference(x, 20))
    assert np.all(np.isfinite(got))
