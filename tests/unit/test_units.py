"""core/units.py: unit statistics against a plain loop, and a planted unit found by the same
recorder, LE kernel and Granger tests that score weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from keras_legc.core.granger import benjamini_hochberg
from keras_legc.core.recorder import Recorder
from keras_legc.core.scoring import score
from keras_legc.core.units import UnitSpec, UnitView, unit_statistic
from keras_legc.errors import InvalidArgumentError


def _reference(w: np.ndarray, axes: tuple[int, ...], statistic: str) -> np.ndarray:
    """Plain loops: every unit index, every entry that feeds it."""
    axes = tuple(sorted(a % w.ndim for a in axes))
    unit_shape = [w.shape[a] for a in axes]
    out = []
    for unit in itertools.product(*map(range, unit_shape)):
        entries = []
        for index in itertools.product(*map(range, w.shape)):
            if tuple(index[a] for a in axes) == unit:
                entries.append(float(w[index]))
        e = np.array(entries)
        out.append({"l2": np.sqrt((e * e).sum()), "l1": np.abs(e).sum(),
                    "mean_abs": np.abs(e).mean() if e.size else 0.0}[statistic])  # fmt: skip
    return np.array(out)


@pytest.mark.parametrize("statistic", ["l2", "l1", "mean_abs"])
@pytest.mark.parametrize(
    "shape, axes",
    [((5, 3), (-1,)), ((3, 3, 2, 4), (-1,)), ((3, 3, 4, 2), (2, 3)), ((2, 2, 3, 5), (2,)),
     ((7,), (0,)), ((1, 1, 1, 1), (-1,)), ((0, 3), (-1,))],
)  # fmt: skip
def test_unit_statistic_equals_a_plain_loop(shape, axes, statistic):
    rng = np.random.default_rng(hash((shape, axes)) % 2**32)
    w = rng.normal(size=shape) * rng.choice([1e-8, 1.0, 1e6])
    got = unit_statistic(w, axes, statistic)
    want = _reference(w, axes, statistic)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("statistic", ["l2", "l1", "mean_abs"])
@pytest.mark.parametrize("shape, axes", [((300, 20), (-1,)), ((3, 3, 6, 2), (2, 3)),
                                         ((3, 3, 4, 6), (2,)), ((0, 4), (-1,))])  # fmt: skip
def test_float32_weights_are_summed_in_float64(shape, axes, statistic):
    """float32 kernels (what recorders read) are summed in float64: the LE of a unit's norm series
    amplifies a float32 sum's last-digit differences to 1e-3 (tests/integration/
    test_unit_history.py compares with a float64 recomputation)."""
    rng = np.random.default_rng(len(shape))
    w = (rng.normal(size=shape) * rng.choice([1e-6, 1.0, 1e3])).astype(np.float32)
    got = unit_statistic(w, axes, statistic)
    assert got.dtype == np.float64
    # to 1e-12: a float32 sum (relative error ~1e-7) would fail here
    np.testing.assert_allclose(got, _reference(w.astype(np.float64), axes, statistic), rtol=1e-12)


def test_depthwise_unit_order_is_channel_times_multiplier_plus_m():
    w = np.zeros((3, 3, 4, 2))
    w[:, :, 1, 0] = 1.0  # channel 1, multiplier 0 -> output channel 2
    assert np.flatnonzero(unit_statistic(w, (2, 3))).tolist() == [2]


@pytest.mark.parametrize("axes", [(), (4,), (-5,), (0, 2), (1, 1)])
def test_bad_unit_axes_are_refused_with_a_fix(axes):
    with pytest.raises(InvalidArgumentError, match="Fix|distinct"):
        UnitSpec("conv", (3, 3, 2, 4), axes)


def test_view_checks_shapes_and_statistic():
    view = UnitView([UnitSpec("a", (2, 3)), UnitSpec("b", (3, 3, 1, 2), (2, 3))])
    assert view.shapes == {"a": (3,), "b": (2,)}
    with pytest.raises(InvalidArgumentError, match="shape"):
        view([np.ones((3, 2)), np.ones((3, 3, 1, 2))])
    with pytest.raises(InvalidArgumentError, match="statistic"):
        UnitView([UnitSpec("a", (2, 3))], statistic="median")
    with pytest.raises(InvalidArgumentError, match="distinct"):
        UnitView([UnitSpec("a", (2, 3)), UnitSpec("a", (2, 3))])


def _logistic(r: float, x0: float, n: int) -> np.ndarray:
    x = np.empty(n)
    x[0] = x0
    for t in range(1, n):
        x[t] = r * x[t - 1] * (1 - x[t - 1])
    return x


def test_a_planted_unit_is_found_and_an_independent_one_is_not():
    """Two units of 6 incoming weights each follow a logistic map whose parameter r changes every
    window: the driver's r sets the next window's target, the other unit's r is independent.
    Through UnitView -> Recorder -> score (F-test at the BIC lag, Benjamini-Hochberg), the driver
    is causal and the independent unit is not."""
    rng = np.random.default_rng(0)
    window, n_windows = 40, 60
    r_driver = rng.uniform(3.6, 4.0, n_windows)
    r_other = rng.uniform(3.6, 4.0, n_windows)
    scale = rng.uniform(0.5, 1.5, size=(6, 2))
    steps = []
    for k in range(n_windows):
        a = _logistic(r_driver[k], rng.uniform(0.2, 0.8), window)
        b = _logistic(r_other[k], rng.uniform(0.2, 0.8), window)
        steps += [scale * np.array([a[t], b[t]]) for t in range(window)]
    # the target of window k is the driver's chaos in window k - 1, plus a little noise
    target = np.concatenate([[0.5], r_driver[:-1]]) + rng.normal(0, 0.01, n_windows)
    closed = iter(target)
    view = UnitView([UnitSpec("dense", (6, 2))])
    rec = Recorder(view.layers, view.shapes, window=window, overlap=0.0,
                   target=lambda: float(next(closed)), background=False)  # fmt: skip
    for w in steps:
        rec.step(view([w]))
    history = rec.finish(view.of({"dense": steps[-1]}))
    assert history.n_windows == n_windows
    scores = score(history, progress=False)
    q = benjamini_hochberg(scores.f_pvalue)
    assert q[0] < 0.05, q
    assert q[1] >= 0.05, q
    assert scores.partial_r2[0] > scores.partial_r2[1]


def test_unit_max_lag_keeps_about_ten_windows_per_lag():
    from keras_legc.core.units import unit_max_lag

    assert [unit_max_lag(k) for k in (0, 5, 12, 22, 50, 80, 142, 500)] == [1, 1, 1, 2, 4, 7, 14, 14]


def test_unit_importance_puts_never_moved_units_first_then_effect_size_percentiles():
    from keras_legc.core.scoring import Scores
    from keras_legc.core.units import unit_importance

    n = 6
    s = Scores(
        layers=["c"], shapes={"c": (n,)}, pvalues=np.full(n, 0.5), degenerate=np.zeros(n, np.int8),
        test="ssr_ftest", max_lag=2, lags=[1, 2], kernels={"c": np.arange(1.0, n + 1)},
        static=np.array([True, False, False, False, False, True]),
        f_pvalue=np.array([np.nan, 0.01, 0.5, np.nan, 0.2, np.nan]),
        partial_r2=np.array([np.nan, 0.4, 0.01, np.nan, 0.1, np.nan]),
        selected_lag=np.array([0, 1, 1, 0, 1, 0]),
    )  # fmt: skip
    got = unit_importance(s, {"c": np.array([9.0, 1.0, 2.0, 3.0, 4.0, 9.0])})["c"]
    assert got[0] == got[5] == 0.0  # never moved
    # tested units by effect size percentile among the tested (0.01 < 0.1 < 0.4)
    np.testing.assert_allclose(got[[2, 4, 1]], [1 / 3, 2 / 3, 1.0])
    # the moved unit with no valid test gets its magnitude's percentile among the moved units
    np.testing.assert_allclose(got[3], 3 / 4)
