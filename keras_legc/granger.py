"""Batched Granger-causality tests: does each weight's LE series cause the misclassification series?

Pure numpy/scipy, no TensorFlow. Equal to statsmodels ``grangercausalitytests`` (``ssr_chi2test`` and
``ssr_ftest``) to ~1e-12, but batched over all series (``../shared/spec/legcnet.md`` section 4):

for each lag ``p`` the restricted design ``[1, y_{t-1..t-p}]`` is shared by all series, so it is
factored once (thin QR). Each series' lag block is residualised against it and factored in one
batched QR; the drop in the residual sum of squares gives the statistic.

Degenerate series (constant cause, cause lags collinear with the target's own lags, perfect fit)
would give statsmodels a meaningless number. Here they get a NaN p-value and a reason code, and are
counted: never silently kept or pruned.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from keras_legc.errors import HistoryError, InvalidArgumentError, LegcWarning, NonFiniteError

TESTS = ("ssr_chi2", "ssr_ftest")

# Reason codes in GrangerResult.degenerate.
OK, CONSTANT_CAUSE, COLLINEAR_CAUSE, PERFECT_FIT = 0, 1, 2, 3
DEGENERATE_REASONS = {
    CONSTANT_CAUSE: "constant cause series",
    COLLINEAR_CAUSE: "cause lags collinear with the target's own lags",
    PERFECT_FIT: "perfect fit (zero residual)",
}
_RANK_TOL = 1e-10  # |R_jj| of the residualised lag block, relative to the block's norm
_FIT_TOL = 1e-12  # SSR_u relative to SSR_r below which the fit is called perfect
DEFAULT_CHUNK = 4096


@dataclass
class GrangerResult:
    """Everything one batched Granger run produced.

    Attributes:
        pvalues: ``(n_series,)`` minimum p-value over lags; NaN where the series is degenerate.
        per_lag: ``(n_series, max_lag)`` p-value at each lag 1..max_lag (NaN where degenerate).
        degenerate: ``(n_series,)`` int8 reason code, 0 for a valid test (see DEGENERATE_REASONS).
        max_lag: the largest lag actually tested (after capping for short series).
        test: ``"ssr_chi2"`` or ``"ssr_ftest"``.
    """

    pvalues: np.ndarray
    per_lag: np.ndarray
    degenerate: np.ndarray
    max_lag: int
    test: str

    def degenerate_counts(self) -> dict[str, int]:
        """Number of degenerate series per reason (only reasons that occur)."""
        codes, counts = np.unique(self.degenerate[self.degenerate > 0], return_counts=True)
        return {DEGENERATE_REASONS[int(c)]: int(n) for c, n in zip(codes, counts, strict=True)}


def effective_max_lag(n_points: int, max_lag: int) -> int:
    """Largest feasible lag: statsmodels needs ``n_points > 3 * lag + 1``."""
    return min(int(max_lag), (int(n_points) - 2) // 3)


def granger_test(
    cause: np.ndarray,
    effect: np.ndarray,
    max_lag: int,
    test: str = "ssr_chi2",
    *,
    chunk_size: int = DEFAULT_CHUNK,
    progress=None,
) -> GrangerResult:
    """Granger test of every row of ``cause`` against ``effect`` for lags 1..max_lag.

    Args:
        cause: ``(n_series, K)`` candidate cause series (e.g. the LE series of each weight).
        effect: ``(K,)`` effect series (e.g. the misclassification rate per window).
        max_lag: the largest lag L; capped to ``floor((K - 2) / 3)`` with a warning when the
            series is too short for it.
        test: ``"ssr_chi2"`` (statsmodels ``ssr_chi2test``, the paper's) or ``"ssr_ftest"``.
        chunk_size: series per batch; bounds peak memory to ~``chunk_size * K * L * 24`` bytes.
        progress: optional callable, called with the number of series finished after each batch.

    Returns:
        A :class:`GrangerResult`.
    """
    x, y = _check_inputs(cause, effect, max_lag, test)
    k = y.size
    lag_max = effective_max_lag(k, max_lag)
    if lag_max < 1:
        raise HistoryError(
            f"the series have {k} points, too few for a Granger test even at lag 1 (needs at "
            "least 5). Fix: record more LE windows: train longer, or use a smaller window."
        )
    if lag_max < max_lag:
        warnings.warn(
            f"max_lag={max_lag} needs more than {3 * max_lag + 1} points but the series have {k}; "
            f"testing lags 1..{lag_max} instead (effective lag = min(L, floor((K-2)/3))).",
            LegcWarning,
            stacklevel=2,
        )
    if np.ptp(y) == 0.0:
        raise HistoryError(
            "the effect (target) series is constant, so nothing can Granger-cause it: the "
            "validation misclassification rate never changed while recording. Fix: use more "
            "validation data, train longer, or check that the model learns at all."
        )
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InvalidArgumentError(f"chunk_size must be a positive integer, got {chunk_size!r}.")

    n = x.shape[0]
    per_lag = np.full((n, lag_max), np.nan)
    degenerate = np.zeros(n, dtype=np.int8)
    # A cause that never changes (over the points any lag uses) cannot cause anything.
    degenerate[np.ptp(x[:, : k - 1], axis=1) == 0.0] = CONSTANT_CAUSE
    restricted = [_RestrictedFit(y, lag) for lag in range(1, lag_max + 1)]
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        block = degenerate[start:stop]
        for fit in restricted:
            p, reason = fit.test(x[start:stop], test)
            per_lag[start:stop, fit.lag - 1] = p
            newly = (block == OK) & (reason != OK)
            block[newly] = reason[newly]
        if progress is not None:
            progress(stop - start)
    per_lag[degenerate > 0] = np.nan
    pvalues = np.full(n, np.nan)
    valid = degenerate == OK
    pvalues[valid] = per_lag[valid].min(axis=1)
    return GrangerResult(pvalues, per_lag, degenerate, lag_max, test)


def granger_pvalues(
    cause: np.ndarray,
    effect: np.ndarray,
    max_lag: int,
    test: str = "ssr_chi2",
    *,
    per_lag: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
):
    """Minimum Granger p-value over lags 1..max_lag of each cause series, batched.

    Equal to calling statsmodels ``grangercausalitytests(np.column_stack([effect, cause_i]),
    max_lag)`` for each row and taking the minimum p-value of the chosen test over lags.
    Degenerate series get NaN (use :func:`granger_test` for the reasons).

    Args:
        cause: ``(n_series, K)`` or ``(K,)``.
        effect: ``(K,)``.
        max_lag: largest lag L (capped for short series, with a warning).
        test: ``"ssr_chi2"`` or ``"ssr_ftest"``.
        per_lag: also return the ``(n_series, L)`` per-lag p-values.
        chunk_size: series per batch.

    Returns:
        ``pvalues`` of shape ``(n_series,)``, or ``(pvalues, per_lag_pvalues)`` if ``per_lag``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> granger_pvalues(rng.normal(size=(4, 40)), rng.normal(size=40), max_lag=3).shape
        (4,)
    """
    res = granger_test(cause, effect, max_lag, test, chunk_size=chunk_size)
    return (res.pvalues, res.per_lag) if per_lag else res.pvalues


class _RestrictedFit:
    """The target's own-lag regression at one lag, shared by every cause series."""

    def __init__(self, y: np.ndarray, lag: int):
        k = y.size
        self.lag = lag
        self.n = k - lag
        design = np.column_stack(
            [np.ones(self.n)] + [y[lag - j : k - j] for j in range(1, lag + 1)]
        )
        q, _ = np.linalg.qr(design)
        target = y[lag:]
        self.q = q
        self.resid = target - q @ (q.T @ target)
        self.ssr_r = float(self.resid @ self.resid)

    def test(self, x: np.ndarray, test: str) -> tuple[np.ndarray, np.ndarray]:
        lag, n, k = self.lag, self.n, x.shape[1]
        # Lag block of every series: (m, n, lag), column j-1 holds x_{t-j}.
        block = np.stack([x[:, lag - j : k - j] for j in range(1, lag + 1)], axis=2)
        scale = np.sqrt(np.einsum("mij,mij->m", block, block))
        # Residualise against the shared restricted design: X~ = X - Q (Q' X).
        block -= np.einsum("ia,maj->mij", self.q, np.einsum("ia,mij->maj", self.q, block))
        qx, rx = np.linalg.qr(block)
        diag = np.abs(np.diagonal(rx, axis1=1, axis2=2)).min(axis=1)
        collinear = diag <= _RANK_TOL * scale
        coef = np.einsum("mij,i->mj", qx, self.resid)
        resid_u = self.resid[None, :] - np.einsum("mij,mj->mi", qx, coef)
        ssr_u = np.einsum("mi,mi->m", resid_u, resid_u)
        perfect = ssr_u <= _FIT_TOL * self.ssr_r
        delta = np.maximum(self.ssr_r - ssr_u, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if test == "ssr_chi2":
                p = stats.chi2.sf(n * delta / ssr_u, lag)
            else:
                dof = n - 2 * lag - 1
                p = stats.f.sf((delta / lag) / (ssr_u / dof), lag, dof)
        reason = np.zeros(x.shape[0], dtype=np.int8)
        reason[perfect] = PERFECT_FIT
        reason[collinear] = COLLINEAR_CAUSE
        return np.where(reason == OK, p, np.nan), reason


def _check_inputs(cause, effect, max_lag, test) -> tuple[np.ndarray, np.ndarray]:
    if test not in TESTS:
        raise InvalidArgumentError(f"test must be one of {TESTS}, got {test!r}.")
    if not isinstance(max_lag, (int, np.integer)) or isinstance(max_lag, bool) or max_lag < 1:
        raise InvalidArgumentError(f"max_lag must be an integer >= 1, got {max_lag!r}.")
    x = np.asarray(cause, dtype=np.float64)
    y = np.asarray(effect, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or y.ndim != 1 or x.shape[1] != y.size:
        raise InvalidArgumentError(
            f"cause must be (n_series, K) and effect (K,) with the same K; got cause "
            f"{np.shape(cause)} and effect {np.shape(effect)}."
        )
    for name, arr in (("cause", x), ("effect", y)):
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError(
                f"the {name} series contains NaN or inf. Fix: training diverged or the "
                "history is corrupt; lower the learning rate and record again."
            )
    return x, y
