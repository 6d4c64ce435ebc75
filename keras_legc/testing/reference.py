"""Plain, per-series reference implementations (slow on purpose: loops, no shared code).

They restate ``../shared/spec/legcnet.md`` directly so that the vectorised code in
``keras_legc.core.lyapunov`` and ``keras_legc.core.granger`` can be checked against something independent.
"""

from __future__ import annotations

import math

import numpy as np


def _log(v: float) -> float:
    # numpy's log, not math.log: the two libms differ in the last bit for ~1e-4 of inputs, and the
    # point of the reference is to check the algorithm, so both sides use the same elementary log.
    return float(np.log(np.float64(v)))


def lyapunov_window_reference(x) -> float:
    """LE of one window, TISEAN lyap_r semantics with m=2, delay 1, written as plain loops.

    Squares are written ``d * d`` (Python's ``d ** 2`` goes through ``pow`` and can differ in the
    last bit), so the vectorised kernel can be required to match this exactly.
    """
    x = [float(v) for v in x]
    w = len(x)
    if max(x) - min(x) < 1e-5:
        return 0.0
    points = [(x[t], x[t + 1]) for t in range(w - 1)]
    candidates = range(w - 2)
    sum_log_d0 = 0.0
    sum_log_d1 = 0.0
    count = 0
    for t in candidates:
        best_u, best_d = None, math.inf
        for u in candidates:
            if u == t:
                continue
            da, db = points[t][0] - points[u][0], points[t][1] - points[u][1]
            d = da * da + db * db
            if d == 0.0:
                continue  # exact duplicate
            if d < best_d:  # strict: the earliest wins on a tie
                best_u, best_d = u, d
        if best_u is None:
            continue
        da = points[t + 1][0] - points[best_u + 1][0]
        db = points[t + 1][1] - points[best_u + 1][1]
        d1 = da * da + db * db
        if d1 == 0.0:
            continue
        sum_log_d0 += 0.5 * _log(best_d)
        sum_log_d1 += 0.5 * _log(d1)
        count += 1
    if count == 0:
        return 0.0
    return sum_log_d1 / count - sum_log_d0 / count


def windowed_lyapunov_reference(series, window: int, overlap: float = 0.1) -> np.ndarray:
    """Per-series, per-window loop over :func:`lyapunov_window_reference`."""
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    stride = max(1, int(math.floor((1.0 - overlap) * window + 0.5)))
    k = (x.shape[1] - window) // stride + 1
    out = np.zeros((x.shape[0], k))
    for i in range(x.shape[0]):
        for j in range(k):
            out[i, j] = lyapunov_window_reference(x[i, j * stride : j * stride + window])
    return out


def granger_pvalues_statsmodels(cause, effect, max_lag: int, test: str = "ssr_chi2") -> np.ndarray:
    """Per-lag p-values from statsmodels ``grangercausalitytests``, one series at a time.

    Returns an array ``(n_series, max_lag)``. ``test`` is ``"ssr_chi2"`` or ``"ssr_ftest"``.
    """
    from statsmodels.tsa.stattools import grangercausalitytests

    key = {"ssr_chi2": "ssr_chi2test", "ssr_ftest": "ssr_ftest"}[test]
    cause = np.atleast_2d(np.asarray(cause, dtype=np.float64))
    effect = np.asarray(effect, dtype=np.float64)
    out = np.empty((cause.shape[0], max_lag))
    for i, x in enumerate(cause):
        data = np.column_stack([effect, x])  # column 2 is tested as a cause of column 1
        res = grangercausalitytests(data, maxlag=max_lag)
        for lag in range(1, max_lag + 1):
            out[i, lag - 1] = res[lag][0][key][1]
    return out


def selected_lag_reference(cause, effect, max_lag: int, criterion: str = "bic") -> np.ndarray:
    """Lag order of each cause series by an information criterion, one least-squares fit at a time.

    For every lag ``p`` in 1..max_lag the unrestricted regression ``y_t ~ 1 + y_{t-1..t-p} +
    x_{t-1..t-p}`` is fitted on the same rows ``t = max_lag .. K-1`` (``N = K - max_lag``) with
    ``numpy.linalg.lstsq``; ``IC = N ln(SSR / N) + c (2p + 1)``, ``c = ln N`` (BIC) or 2 (AIC);
    the smallest IC wins, the smaller lag on ties (to 1e-9 relative).
    """
    cause = np.atleast_2d(np.asarray(cause, dtype=np.float64))
    y = np.asarray(effect, dtype=np.float64)
    k = y.size
    n = k - max_lag
    c = math.log(n) if criterion == "bic" else 2.0
    out = np.zeros(cause.shape[0], dtype=int)
    for i, x in enumerate(cause):
        best_ic, best_p = math.inf, 0
        for p in range(1, max_lag + 1):
            rows = [[1.0] + [y[t - j] for j in range(1, p + 1)] + [x[t - j] for j in range(1, p + 1)]
                    for t in range(max_lag, k)]  # fmt: skip
            design, target = np.array(rows), y[max_lag:]
            beta = np.linalg.lstsq(design, target, rcond=None)[0]
            ssr = float(np.sum((target - design @ beta) ** 2))
            ic = n * math.log(ssr / n) + c * (2 * p + 1)
            if best_p == 0 or ic < best_ic - 1e-9 * abs(best_ic):
                best_ic, best_p = ic, p
        out[i] = best_p
    return out


def partial_r2_reference(cause, effect, lag: int) -> np.ndarray:
    """``(SSR_r - SSR_u) / SSR_r`` of the Granger regressions at one lag (statsmodels' own fits:
    ``grangercausalitytests`` returns both OLS results)."""
    from statsmodels.tsa.stattools import grangercausalitytests

    cause = np.atleast_2d(np.asarray(cause, dtype=np.float64))
    effect = np.asarray(effect, dtype=np.float64)
    out = np.empty(cause.shape[0])
    for i, x in enumerate(cause):
        res = grangercausalitytests(np.column_stack([effect, x]), maxlag=[lag])
        restricted, unrestricted = res[lag][1][0], res[lag][1][1]
        out[i] = (restricted.ssr - unrestricted.ssr) / restricted.ssr
    return out
