"""Windowed largest Lyapunov exponent of many series at once (TISEAN ``lyap_r``, m=2, delay 1).

Pure numpy, no TensorFlow. See ``../shared/spec/legcnet.md`` section 3 for the semantics:

1. embed each window as ``v_t = (x_t, x_{t+1})``;
2. for every reference point ``t = 0..W-3`` find its nearest neighbour ``u != t`` among the same
   points by Euclidean distance, ignoring exact duplicates (distance 0); ties go to the earliest ``u``;
3. ``d0 = |v_t - v_u|``, ``d1 = |v_{t+1} - v_{u+1}|``; pairs where either is 0 are skipped;
4. ``lambda = mean(ln d1) - mean(ln d0)`` in nats per step.

A window whose range is below ``STATIC_RANGE`` (a weight that did not move) gets 0, as does a window
with no valid pair.
"""

from __future__ import annotations

import numpy as np

from keras_legc.errors import HistoryError, InvalidArgumentError, NonFiniteError

STATIC_RANGE = 1e-5
MIN_WINDOW = 4  # two reference points with successors need W >= 4
# Rows (series x windows) processed at once; each row needs ~3 * (W-2)^2 float64 of scratch.
_ROWS_PER_BLOCK_BYTES = 64 * 2**20


def window_stride(window: int, overlap: float = 0.1) -> int:
    """Stride between window starts: ``round((1 - overlap) * window)``, at least 1."""
    _check_window(window, overlap)
    return max(1, int(np.floor((1.0 - overlap) * window + 0.5)))


def n_windows(length: int, window: int, overlap: float = 0.1) -> int:
    """Number of complete windows in a series of ``length`` points (0 if shorter than a window)."""
    stride = window_stride(window, overlap)
    if length < window:
        return 0
    return (length - window) // stride + 1


def lyapunov_of_windows(windows: np.ndarray) -> np.ndarray:
    """The LE of each row of ``windows`` (shape ``(n, W)``), vectorised; returns float64 ``(n,)``.

    This is the per-window kernel that both :func:`windowed_lyapunov` and the streaming recorder
    (:class:`keras_legc.WeightHistory`) use, so the two agree bit for bit.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < MIN_WINDOW:
        raise InvalidArgumentError(
            f"expected windows of shape (n, W) with W >= {MIN_WINDOW}, got {x.shape}."
        )
    n, w = x.shape
    out = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out
    moving = np.ptp(x, axis=1) >= STATIC_RANGE
    rows = np.flatnonzero(moving)
    block = max(1, _ROWS_PER_BLOCK_BYTES // (3 * 8 * (w - 2) ** 2))
    for start in range(0, rows.size, block):
        idx = rows[start : start + block]
        out[idx] = _lyapunov_rows(x[idx])
    return out


def _lyapunov_rows(x: np.ndarray) -> np.ndarray:
    a, b = x[:, :-1], x[:, 1:]  # embedded points v_t = (a_t, b_t), t = 0 .. W-2
    m = x.shape[1] - 2  # reference points and candidates: t = 0 .. W-3
    da = a[:, :m, None] - a[:, None, :m]
    d2 = da * da
    db = b[:, :m, None] - b[:, None, :m]
    d2 += db * db
    # Self-pairs and exact duplicates have distance 0: never neighbours.
    d2[d2 == 0.0] = np.inf
    u = np.argmin(d2, axis=2)  # first minimum = earliest neighbour on ties
    d0sq = np.take_along_axis(d2, u[:, :, None], axis=2)[:, :, 0]
    t1 = np.arange(1, m + 1)
    a1 = np.take_along_axis(a, u + 1, axis=1) - a[:, t1]
    b1 = np.take_along_axis(b, u + 1, axis=1) - b[:, t1]
    d1sq = a1 * a1 + b1 * b1
    valid = np.isfinite(d0sq) & (d1sq > 0.0)
    count = valid.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # ln d = 0.5 ln d^2; invalid pairs contribute 0 to both sums.
        log_ratio = np.where(valid, 0.5 * (np.log(d1sq) - np.log(d0sq)), 0.0)
        lam = log_ratio.sum(axis=1) / count
    return np.where(count > 0, lam, 0.0)


def windowed_lyapunov(series: np.ndarray, window: int, overlap: float = 0.1) -> np.ndarray:
    """LE series of every input series: one value per window of length ``window``.

    Args:
        series: array ``(n_series, T)`` (or ``(T,)`` for one series) of weight values over steps.
        window: window length W in steps (paper: 200 for tabular data, 50 for MNIST).
        overlap: fraction of overlap between consecutive windows (paper: 0.1), in ``[0, 1)``.

    Returns:
        float64 array ``(n_series, n_windows)`` with ``n_windows = floor((T - W) / s) + 1`` and
        stride ``s = round((1 - overlap) * W)``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(3, 500))
        >>> windowed_lyapunov(x, window=50).shape
        (3, 11)
    """
    x = np.asarray(series)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InvalidArgumentError(
            f"series must be 1-D (T,) or 2-D (n_series, T); got shape {x.shape}."
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InvalidArgumentError(f"series must be real numbers, got dtype {x.dtype}.")
    stride = window_stride(window, overlap)
    length = x.shape[1]
    k = n_windows(length, window, overlap)
    if k == 0:
        raise HistoryError(
            f"series of {length} steps is shorter than one LE window of {window} steps. "
            "Fix: record more steps (train longer or record every step) or use a smaller window."
        )
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise NonFiniteError(
            f"series {bad[0]} has a non-finite value (NaN or inf) at step {bad[1]}. "
            "Fix: training diverged; lower the learning rate or clip gradients and record again."
        )
    n = x.shape[0]
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=1)[:, ::stride][:, :k]
    return lyapunov_of_windows(view.reshape(n * k, window)).reshape(n, k)


def _check_window(window: int, overlap: float) -> None:
    if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < MIN_WINDOW:
        raise InvalidArgumentError(f"window must be an integer >= {MIN_WINDOW}, got {window!r}.")
    if not (0.0 <= float(overlap) < 1.0):
        raise InvalidArgumentError(f"overlap must be in [0, 1), got {overlap!r}.")
