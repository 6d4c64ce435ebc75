"""Batched Granger-causality tests: does each weight's LE series cause the misclassification series?

Pure numpy/scipy, no TensorFlow. Equal to statsmodels ``grangercausalitytests`` (``ssr_chi2test`` and
``ssr_ftest``) to ~1e-12, but batched over all series (``../shared/spec/legcnet.md`` section 4):

for each lag ``p`` the restricted design ``[1, y_{t-1..t-p}]`` is shared by all series, so it is
factored once (thin QR). Each series' lag block is residualised against it and factored in one
batched QR; the drop in the residual sum of squares gives the statistic. The batched QR runs in a
numba kernel (``keras_legc.core._granger_kernel``) that does the numpy path's floating-point
operations in the same order, so both give the same bits; numpy is the fallback without numba.

Degenerate series (constant cause, cause lags collinear with the target's own lags, perfect fit)
would give statsmodels a meaningless number. Here they get a NaN p-value and a reason code, and are
counted: never silently kept or pruned.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from keras_legc.core._compiled import compiled
from keras_legc.core._parallel import check_positive_int, check_threads, run_blocks
from keras_legc.errors import HistoryError, InvalidArgumentError, LegcWarning, NonFiniteError

TESTS = ("ssr_chi2", "ssr_ftest")
CRITERIA = ("bic", "aic")

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
        per_lag: ``(n_series, len(lags))`` p-value at each tested lag (NaN where degenerate).
        degenerate: ``(n_series,)`` int8 reason code, 0 for a valid test (see DEGENERATE_REASONS).
        max_lag: the largest lag actually tested (after capping for short series).
        test: ``"ssr_chi2"`` or ``"ssr_ftest"``.
        lags: the lags tested, in the order of ``per_lag``'s columns.
        selected_lag: with ``criterion=``, the lag the information criterion chose for each
            series (0 where degenerate), else None.
        f_pvalue: with ``criterion=``, the F-test p-value at the selected lag (NaN where
            degenerate), else None.
        partial_r2: with ``criterion=``, the effect size at the selected lag: the share of the
            target's restricted residual sum of squares that the cause's lags explain,
            ``(SSR_r - SSR_u) / SSR_r`` in [0, 1] (NaN where degenerate), else None.
    """

    pvalues: np.ndarray
    per_lag: np.ndarray
    degenerate: np.ndarray
    max_lag: int
    test: str
    lags: tuple[int, ...] = ()
    selected_lag: np.ndarray | None = None
    f_pvalue: np.ndarray | None = None
    partial_r2: np.ndarray | None = None

    def degenerate_counts(self) -> dict[str, int]:
        """Number of degenerate series per reason (only reasons that occur)."""
        codes, counts = np.unique(self.degenerate[self.degenerate > 0], return_counts=True)
        return {DEGENERATE_REASONS[int(c)]: int(n) for c, n in zip(codes, counts, strict=True)}


AUTO_MAX_LAG = 14  # the paper's L; "auto" takes it or the largest the series allow, silently


def effective_max_lag(n_points: int, max_lag: int | str) -> int:
    """Largest feasible lag: statsmodels needs ``n_points > 3 * lag + 1``."""
    top = AUTO_MAX_LAG if max_lag == "auto" else int(max_lag)
    return min(top, (int(n_points) - 2) // 3)


def granger_test(
    cause: np.ndarray,
    effect: np.ndarray,
    max_lag: int = 14,
    test: str = "ssr_chi2",
    *,
    lag: int | None = None,
    difference: bool = False,
    criterion: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    threads: int | None = None,
    progress=None,
) -> GrangerResult:
    """Granger test of every row of ``cause`` against ``effect`` for lags 1..max_lag.

    Args:
        cause: ``(n_series, K)`` candidate cause series (e.g. the LE series of each weight); any
            real dtype (float32 is widened to float64 one chunk at a time, never all at once).
        effect: ``(K,)`` effect series (e.g. the misclassification rate per window).
        max_lag: the largest lag L; capped to ``floor((K - 2) / 3)`` with a warning when the
            series is too short for it.
        test: ``"ssr_chi2"`` (statsmodels ``ssr_chi2test``, the paper's) or ``"ssr_ftest"``.
        lag: test this single lag only (instead of every lag 1..max_lag and the minimum); an
            infeasible lag is an error, not capped. Off by default (the paper's minimum over lags).
        difference: difference both series once (``x_t - x_{t-1}``, jointly) before testing, for
            series with a trend; costs one point. Off by default.
        criterion: also choose each series' lag order by an information criterion of the
            unrestricted regression (``"bic"`` or ``"aic"``, as VAR order selection does: every
            candidate lag 1..L fitted on the same sample, the points after the first L) and
            report the F-test at that lag (``selected_lag``, ``f_pvalue``, ``partial_r2``).
            The minimum-p ``pvalues`` are computed as without it.
        chunk_size: series per batch; bounds peak memory to ~``chunk_size * K * (L + 4) * 8``
            bytes per thread. Results do not depend on it (bit for bit).
        threads: worker threads over chunks (None: every usable core); results do not depend on
            it either.
        progress: optional callable, called with the number of series finished after each batch.

    Returns:
        A :class:`GrangerResult`; ``per_lag`` has one column per tested lag (``result.lags``).
    """
    x, y, lags = _prepare(cause, effect, max_lag, test, lag, difference, chunk_size, criterion)
    return _test_all(x, y, lags, test, difference, criterion, chunk_size,
                     check_threads(threads), progress)  # fmt: skip


def _prepare(cause, effect, max_lag, test, lag, difference, chunk_size, criterion):
    """Checked inputs: the cause rows, the (differenced) effect and the lags to test."""
    x, y = _check_inputs(cause, effect, max_lag, test)
    if difference:
        y = np.diff(y)
    lags = _lags_to_test(y.size, max_lag, lag, difference)
    if np.ptp(y) == 0.0:
        raise HistoryError(
            "the effect (target) series is constant, so nothing can Granger-cause it: the "
            "validation target (misclassification rate or loss) never changed while recording. "
            "Fix: use more validation data, train longer, or check that the model learns at all."
        )
    check_positive_int("chunk_size", chunk_size)
    if criterion not in (None, *CRITERIA):
        raise InvalidArgumentError(
            f"criterion must be one of {CRITERIA} or None, got {criterion!r}. Fix: 'bic' "
            "(the default lag choice), 'aic', or None to skip lag selection."
        )
    return x, y, lags


def _test_all(x, y, lags, test, difference, criterion, chunk_size, threads, progress):
    """Every lag's test of every series, chunk by chunk on the worker threads."""
    n, k = x.shape[0], y.size
    per_lag = np.full((n, len(lags)), np.nan)
    degenerate = np.zeros(n, dtype=np.int8)
    restricted = [_RestrictedFit(y, p) for p in lags]
    selection = None if criterion is None else _LagSelection(y, lags, criterion, n)

    def run_chunk(start: int) -> int:
        stop = min(start + chunk_size, n)
        chunk = _chunk_columns(x, start, stop, difference)  # (K, m) float64, m >= 2
        block = degenerate[start:stop]
        # A cause that never changes (over the points any lag uses) cannot cause anything.
        block[np.ptp(chunk[: k - 1], axis=0)[: stop - start] == 0.0] = CONSTANT_CAUSE
        fits = []
        for col, fit in enumerate(restricted):
            result = fit.test(chunk, test)
            per_lag[start:stop, col] = result.p[: stop - start]
            reason = result.reason[: stop - start]
            newly = (block == OK) & (reason != OK)
            block[newly] = reason[newly]
            fits.append(result)
        if selection is not None:
            selection.select(chunk, fits, start, stop)
        return stop - start

    run_blocks(run_chunk, range(0, n, chunk_size), threads, progress)
    per_lag[degenerate > 0] = np.nan
    pvalues = np.full(n, np.nan)
    valid = degenerate == OK
    pvalues[valid] = per_lag[valid].min(axis=1)
    result = GrangerResult(pvalues, per_lag, degenerate, max(lags), test, tuple(lags))
    if selection is not None:
        selection.finish(result)
    return result


def granger_pvalues(
    cause: np.ndarray,
    effect: np.ndarray,
    max_lag: int = 14,
    test: str = "ssr_chi2",
    *,
    per_lag: bool = False,
    lag: int | None = None,
    difference: bool = False,
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
        per_lag: also return the per-lag p-values (one column per tested lag).
        lag: test this single lag only.
        difference: difference both series jointly first.
        chunk_size: series per batch.

    Returns:
        ``pvalues`` of shape ``(n_series,)``, or ``(pvalues, per_lag_pvalues)`` if ``per_lag``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> granger_pvalues(rng.normal(size=(4, 40)), rng.normal(size=40), max_lag=3).shape
        (4,)
    """
    res = granger_test(
        cause, effect, max_lag, test, lag=lag, difference=difference, chunk_size=chunk_size
    )
    return (res.pvalues, res.per_lag) if per_lag else res.pvalues


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) across all finite entries; NaN stays NaN.

    ``q_(i) = min_{j >= i} p_(j) * m / j`` over the ``m`` finite p-values sorted ascending, capped
    at 1. A weight is a discovery at false discovery rate ``alpha`` when ``q < alpha``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    m = int(finite.sum())
    if m == 0:
        return q
    values = p[finite]
    order = np.argsort(values, kind="stable")
    ranked = values[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[finite] = out
    return q


def _lags_to_test(k: int, max_lag: int, lag: int | None, difference: bool) -> list[int]:
    what = "after differencing, " if difference else ""
    if lag is not None:
        if isinstance(lag, bool) or not isinstance(lag, (int, np.integer)) or lag < 1:
            raise InvalidArgumentError(
                f"lag must be an integer >= 1 or None, got {lag!r}. Fix: None tests every lag up "
                "to max_lag; an int tests that one lag."
            )
        if effective_max_lag(k, lag) < lag:
            fits = (k - 2) // 3  # the largest lag these points allow; 0: none (lag 1 needs 5)
            fix = f"choose lag <= {fits} or record" if fits >= 1 else "record at least 5 points:"
            raise HistoryError(
                f"a Granger test at lag {lag} needs more than {3 * lag + 1} points, but {what}the "
                f"series have {k}. Fix: {fix} more LE windows."
            )
        return [int(lag)]
    lag_max = effective_max_lag(k, max_lag)
    if lag_max < 1:
        raise HistoryError(
            f"{what}the series have {k} points, too few for a Granger test even at lag 1 (needs "
            "at least 5). Fix: record more LE windows: train longer, or use a smaller window."
        )
    if max_lag != "auto" and lag_max < max_lag:
        warnings.warn(
            f"max_lag={max_lag} needs more than {3 * max_lag + 1} points but {what}the series "
            f"have {k}; testing lags 1..{lag_max} instead (effective lag = min(L, "
            "floor((K-2)/3))).",
            LegcWarning,
            stacklevel=3,
        )
    return list(range(1, lag_max + 1))


def _chunk_columns(x: np.ndarray, start: int, stop: int, difference: bool) -> np.ndarray:
    """Rows ``start:stop`` of ``x`` as float64 columns ``(K, m)``; finite-checked, m >= 2.

    A lone series is duplicated: numpy reduces an ``(n, 1)`` column with a different summation
    order than an ``(n, m)`` block, and results must not depend on how the series were chunked.
    """
    rows = np.asarray(x[start:stop], dtype=np.float64)
    if not np.all(np.isfinite(rows)):
        bad = start + int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        raise NonFiniteError(
            f"the cause series contains NaN or inf (series {bad}). Fix: training diverged or "
            "the history is corrupt; lower the learning rate and record again."
        )
    if difference:
        rows = np.diff(rows, axis=1)
    if rows.shape[0] == 1:
        rows = np.concatenate([rows, rows])
    return np.ascontiguousarray(rows.T)


def _coldot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise dot products of two ``(n, m)`` arrays, summed over rows in order."""
    return np.add.reduce(a * b, axis=0)


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
        self.q_matrix = np.ascontiguousarray(q)
        self.q = [np.ascontiguousarray(q[:, a : a + 1]) for a in range(q.shape[1])]
        self.resid = target - q @ (q.T @ target)
        self.ssr_r = float(self.resid @ self.resid)

    def _residualise(self, b: np.ndarray) -> None:
        # One Gram-Schmidt pass against the (orthonormal) restricted basis. A second pass changed
        # no p-value by more than 1e-12 in the statsmodels comparison, near-collinear cases included.
        for qa in self.q:
            b -= qa * _coldot(qa, b)

    def test(self, xt: np.ndarray, test: str | None) -> _LagFit:
        """p-values, reason codes and sums of squares of every column of ``xt`` (``(K, m)``);
        ``test=None`` only fits (no p-values: the lag selection needs the sums of squares)."""
        lag, n = self.lag, self.n
        kernel = compiled("_granger_kernel")
        if kernel is None:
            ssr_u, smallest, scale2 = self._unrestricted_numpy(xt)
        else:
            ssr_u, smallest, scale2 = (np.empty(xt.shape[1]) for _ in range(3))
            kernel.lag_fit(xt, lag, self.q_matrix, self.resid, ssr_u, smallest, scale2, kernel.TILE)
        collinear = smallest <= _RANK_TOL * np.sqrt(scale2)
        perfect = ssr_u <= _FIT_TOL * self.ssr_r
        delta = np.maximum(self.ssr_r - ssr_u, 0.0)
        reason = np.zeros(xt.shape[1], dtype=np.int8)
        reason[perfect] = PERFECT_FIT
        reason[collinear] = COLLINEAR_CAUSE
        if test is None:
            return _LagFit(None, reason, ssr_u, delta, self.ssr_r)
        with np.errstate(divide="ignore", invalid="ignore"):
            if test == "ssr_chi2":
                p = stats.chi2.sf(n * delta / ssr_u, lag)
            else:
                dof = n - 2 * lag - 1
                p = stats.f.sf((delta / lag) / (ssr_u / dof), lag, dof)
        return _LagFit(np.where(reason == OK, p, np.nan), reason, ssr_u, delta, self.ssr_r)

    def _unrestricted_numpy(self, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SSR_u, the smallest residualised lag-column norm and the lag block's sum of squares of
        every column of ``xt`` (the numpy fallback of ``_granger_kernel.lag_fit``, same bits)."""
        lag, k = self.lag, xt.shape[0]
        # Orthonormalise each series' lag block [x_{t-1} .. x_{t-lag}] against the restricted
        # design and then column by column (modified Gram-Schmidt, vectorised over the series).
        basis, scale2, smallest = [], 0.0, np.inf
        for j in range(1, lag + 1):
            b = xt[lag - j : k - j].copy()  # (n, m): x_{t-j} for t = lag .. K-1
            scale2 = scale2 + _coldot(b, b)
            self._residualise(b)
            for qk in basis:
                b -= qk * _coldot(qk, b)
            norm = np.sqrt(_coldot(b, b))
            smallest = np.minimum(smallest, norm)
            with np.errstate(divide="ignore", invalid="ignore"):
                basis.append(b / np.where(norm > 0.0, norm, 1.0))
        resid = np.repeat(self.resid[:, None], xt.shape[1], axis=1)
        for qk in basis:
            resid -= qk * _coldot(qk, resid)
        return _coldot(resid, resid), smallest, scale2


@dataclass
class _LagFit:
    """One lag's test of a chunk of series: p-values, reasons, SSR_u and SSR_r - SSR_u."""

    p: np.ndarray | None
    reason: np.ndarray
    ssr_u: np.ndarray
    delta: np.ndarray
    ssr_r: float


class _LagSelection:
    """Per-series lag order by an information criterion of the unrestricted regression.

    As in VAR order selection, every candidate lag ``p`` in 1..L is fitted on the same sample
    (the points from index L on), so the criteria are comparable:
    ``IC(p) = N ln(SSR_u(p) / N) + c (2p + 1)`` with ``N = K - L`` and ``c = ln N`` (BIC) or 2
    (AIC). The smallest IC wins; ties go to the smaller lag. The F-test is then taken at that lag
    on its own full sample (as a fixed-lag test would be).
    """

    def __init__(self, y: np.ndarray, lags: list[int], criterion: str, n_series: int):
        self.lags, self.top = lags, max(lags)
        self.n_common = y.size - self.top
        self.penalty = np.log(self.n_common) if criterion == "bic" else 2.0
        self.common = [_RestrictedFit(y[self.top - p :], p) for p in lags]
        self.n_full = [y.size - p for p in lags]
        self.selected = np.zeros(n_series, dtype=np.int16)
        self.f_pvalue = np.full(n_series, np.nan)
        self.partial_r2 = np.full(n_series, np.nan)

    def select(self, chunk: np.ndarray, fits: list[_LagFit], start: int, stop: int) -> None:
        m = stop - start
        ic = np.empty((len(self.lags), chunk.shape[1]))
        for i, (p, fit) in enumerate(zip(self.lags, self.common, strict=True)):
            ssr = fit.test(chunk[self.top - p :], None).ssr_u
            with np.errstate(divide="ignore"):
                ic[i] = self.n_common * np.log(ssr / self.n_common) + self.penalty * (2 * p + 1)
        best = np.argmin(ic, axis=0)[:m]  # argmin: the first (smallest) lag on ties
        rows = np.arange(m)
        # The F-test only at each series' selected lag: one vectorised call, not one per lag.
        delta = np.stack([f.delta[:m] for f in fits])[best, rows]
        ssr_u = np.stack([f.ssr_u[:m] for f in fits])[best, rows]
        ssr_r = np.array([f.ssr_r for f in fits])[best]
        lag = np.asarray(self.lags, dtype=np.float64)[best]
        dof = np.asarray(self.n_full, dtype=np.float64)[best] - 2 * lag - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            self.f_pvalue[start:stop] = stats.f.sf((delta / lag) / (ssr_u / dof), lag, dof)
            self.partial_r2[start:stop] = delta / ssr_r
        self.selected[start:stop] = np.asarray(self.lags)[best]

    def finish(self, result: GrangerResult) -> None:
        bad = result.degenerate != OK
        self.selected[bad] = 0
        self.f_pvalue[bad] = np.nan
        self.partial_r2[bad] = np.nan
        result.selected_lag, result.f_pvalue = self.selected, self.f_pvalue
        result.partial_r2 = self.partial_r2


def _check_inputs(cause, effect, max_lag, test) -> tuple[np.ndarray, np.ndarray]:
    if test not in TESTS:
        raise InvalidArgumentError(
            f"test must be one of {TESTS}, got {test!r}. Fix: 'ssr_chi2' (the paper's) or "
            "'ssr_ftest'."
        )
    if max_lag == "auto":
        return _check_series(cause, effect)
    if not isinstance(max_lag, (int, np.integer)) or isinstance(max_lag, bool) or max_lag < 1:
        raise InvalidArgumentError(
            f"max_lag must be an integer >= 1 or 'auto', got {max_lag!r}. Fix: 'auto' (the "
            "largest the windows allow, at most 14) or e.g. max_lag=8."
        )
    return _check_series(cause, effect)


def _check_series(cause, effect) -> tuple[np.ndarray, np.ndarray]:
    x = cause if isinstance(cause, np.ndarray) else np.asarray(cause)
    y = np.asarray(effect, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InvalidArgumentError(
            f"cause must hold real numbers, got dtype {x.dtype}. Fix: pass a float array "
            "(n_series, K), e.g. History.le."
        )
    if x.ndim != 2 or y.ndim != 1 or x.shape[1] != y.size:
        raise InvalidArgumentError(
            f"cause must be (n_series, K) and effect (K,) with the same K; got cause "
            f"{np.shape(cause)} and effect {np.shape(effect)}. Fix: pass History.le (weights x "
            "windows) and History.target (windows,) of the same history."
        )
    if not np.all(np.isfinite(y)):
        raise NonFiniteError(
            "the effect series contains NaN or inf. Fix: training diverged or the history is "
            "corrupt; lower the learning rate and record again."
        )
    return x, y
