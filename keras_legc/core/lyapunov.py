"""Windowed largest Lyapunov exponent of many series at once (TISEAN ``lyap_r``, m=2, delay 1).

Pure numpy, no TensorFlow. See ``../shared/spec/legcnet.md`` section 3 for the semantics:

1. embed each window as ``v_t = (x_t, x_{t+1})``;
2. for every reference point ``t = 0..W-3`` find its nearest neighbour ``u != t`` among the same
   points by Euclidean distance, ignoring exact duplicates (distance 0); ties go to the earliest ``u``;
3. ``d0 = |v_t - v_u|``, ``d1 = |v_{t+1} - v_{u+1}|``; pairs where either is 0 are skipped;
4. ``lambda = mean(ln d1) - mean(ln d0)`` in nats per step.

A window whose range is below ``STATIC_RANGE`` (a weight that did not move) gets 0, as does a window
with no valid pair.

The kernel is compiled with numba (``keras_legc.core._lyapunov_kernel``), imported and compiled on
the first call, not on ``import keras_legc``. Without numba a vectorised numpy kernel gives the
same values, several times slower, after one warning.
"""

from __future__ import annotations

import threading

import numpy as np

from keras_legc.core._compiled import compiled
from keras_legc.core._parallel import check_threads, run_blocks
from keras_legc.errors import HistoryError, InvalidArgumentError, NonFiniteError

STATIC_RANGE = 1e-5
MIN_WINDOW = 4  # two reference points with successors need W >= 4
# Rows (windows) per block: ~2 * W^2 float64 of scratch each, so 128 rows of W = 50 stay ~5 MB,
# small enough to stay in cache, large enough to amortise numpy's per-call overhead.
ROWS_PER_BLOCK = 128
# Rows per block of the compiled kernel: 2 * (W - 2) float64 of scratch each (0.4 MB for W = 50).
KERNEL_ROWS_PER_BLOCK = 512


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


def lyapunov_of_windows(windows: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """The LE of each row of ``windows`` (shape ``(n, W)``), compiled; returns float64 ``(n,)``.

    This is the per-window kernel that both :func:`windowed_lyapunov` and the streaming recorder
    (:class:`keras_legc.WeightHistory`) use, so the two agree bit for bit. Rows are processed in
    blocks of :data:`KERNEL_ROWS_PER_BLOCK` (float32 and float64 read in place, never copied
    whole) on ``threads`` worker threads; every row's value is identical to the plain loop
    reference and independent of the blocking and of the thread count. The first call in a process
    imports numba and compiles the kernel (about 2-4 s once, then loaded from numba's cache in
    under a second).

    Args:
        windows: ``(n, W)`` real array, any float dtype, any memory layout (e.g. a transposed view).
        threads: worker threads; None uses every usable core, 1 runs in the calling thread.

    Returns:
        float64 array ``(n,)``: the LE of each window in nats per step, 0 for a static window.

    Example:
        >>> w = np.random.default_rng(0).normal(size=(4, 50))
        >>> lyapunov_of_windows(w, threads=1).shape
        (4,)
    """
    x = np.asarray(windows)
    if x.ndim != 2 or x.shape[1] < MIN_WINDOW:
        raise InvalidArgumentError(
            f"expected windows of shape (n, W) with W >= {MIN_WINDOW}, got {x.shape}."
        )
    threads = check_threads(threads)
    kernel = compiled("_lyapunov_kernel")
    if kernel is None:
        return _lyapunov_numpy(x, threads)
    out = np.empty(x.shape[0], dtype=np.float64)
    w = x.shape[1]

    def run_block(start: int) -> None:
        block = x[start : start + KERNEL_ROWS_PER_BLOCK]
        if block.dtype != np.float32 and block.dtype != np.float64:
            block = block.astype(np.float64)
        sq = _kernel_scratch(block.shape[0], w)
        count = np.empty(block.shape[0], dtype=np.int64)
        kernel.squared_distances(block, sq, count, STATIC_RANGE)
        np.log(sq, out=sq)  # numpy's log, as in the reference; ln 1 = 0 for the invalid pairs
        kernel.mean_log_ratio(sq, count, out[start : start + block.shape[0]])

    run_blocks(run_block, range(0, x.shape[0], KERNEL_ROWS_PER_BLOCK), threads)
    return out


def _kernel_scratch(rows: int, w: int) -> np.ndarray:
    """This thread's reusable ``(rows, 2, W - 2)`` float64 array of squared distances."""
    have = getattr(_local, "squares", None)
    if have is None or have.shape[2] != w - 2 or have.shape[0] < rows:
        _local.squares = have = np.empty((max(rows, KERNEL_ROWS_PER_BLOCK), 2, w - 2))
    return have[:rows]


def _lyapunov_numpy(x: np.ndarray, threads: int) -> np.ndarray:
    """The vectorised numpy kernel (the fallback without numba): same values, bit for bit."""
    n = x.shape[0]
    out = np.zeros(n, dtype=np.float64)
    starts = range(0, n, ROWS_PER_BLOCK)

    def run_block(start: int) -> None:
        block = np.asarray(x[start : start + ROWS_PER_BLOCK], dtype=np.float64)
        moving = np.flatnonzero(np.ptp(block, axis=1) >= STATIC_RANGE)
        if moving.size == block.shape[0]:
            out[start : start + block.shape[0]] = _lyapunov_rows(block)
        elif moving.size:
            out[start + moving] = _lyapunov_rows(block[moving])

    run_blocks(run_block, starts, threads)
    return out


_local = threading.local()


def _scratch(rows: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's reusable work arrays for ``rows`` windows of length ``w``.

    Reusing them matters: a fresh multi-megabyte array per block is a fresh mmap whose pages all
    fault on first touch, which made the kernel 3-4x slower in the main thread.
    """
    have = getattr(_local, "arrays", None)
    if have is None or have[1].shape[2] != w - 1 or have[0].shape[0] < rows:
        big = w - 1
        cap = max(rows, ROWS_PER_BLOCK)
        _local.arrays = have = (np.empty((cap, big, big)), np.empty((cap, w - 2, big)))
    return have[0][:rows], have[1][:rows]


def _lyapunov_rows(x: np.ndarray) -> np.ndarray:
    """LE of every row of a C-contiguous float64 block whose rows all move."""
    # Squares of differences beyond ~1e154 overflow to inf: such a pair is simply never a valid
    # neighbour (the loop reference agrees), so the overflow is expected, not an error.
    with np.errstate(over="ignore"):
        return _lyapunov_rows_unchecked(x)


def _lyapunov_rows_unchecked(x: np.ndarray) -> np.ndarray:
    r, w = x.shape
    m = w - 2  # reference points and candidates: v_t = (x_t, x_{t+1}), t = 0 .. m-1
    big = m + 1  # the distance matrix runs over x_0 .. x_m
    xs = x[:, :big]
    sq, d2 = _scratch(r, w)
    np.subtract(xs[:, None, :], xs[:, :, None], out=sq)  # sq[t, u] = x_u - x_t
    np.multiply(sq, sq, out=sq)
    # d2[t, u] = |v_t - v_u|^2 = sq[t, u] + sq[t+1, u+1]: in the flattened (big x big) matrix the
    # second term sits big + 1 further on, so one contiguous add builds all rows at once (the last
    # column of each row of the (m, big) result wraps around and is masked below).
    flat = sq.reshape(r, big * big)
    np.add(flat[:, : m * big - 1], flat[:, big + 1 :], out=d2.reshape(r, m * big)[:, : m * big - 1])
    d2[:, :, m] = np.inf
    diag = np.arange(m)
    d2[:, diag, diag] = np.inf  # a point is not its own neighbour
    # Exact duplicates (distance 0) are not neighbours either. Squared distances are >= 0, and for
    # non-negative doubles the order of the bit patterns is the order of the values, so
    # subtracting 1 from the bits sends 0 to the largest pattern (behind inf) and keeps every
    # other order and tie: one argmin then finds the nearest distinct point, earliest on ties.
    bits = d2.view(np.uint64)
    bits -= np.uint64(1)
    u = bits.argmin(axis=2)
    d0sq = (np.take_along_axis(bits, u[:, :, None], axis=2)[:, :, 0] + np.uint64(1)).view(
        np.float64
    )  # inf (or the wrapped 0) when t has no distinct neighbour: invalid below
    t1 = np.arange(1, m + 1)
    a1 = np.take_along_axis(x, u + 1, axis=1) - x[:, t1]
    b1 = np.take_along_axis(x, u + 2, axis=1) - x[:, t1 + 1]
    d1sq = a1 * a1 + b1 * b1
    valid = np.isfinite(d0sq) & (d0sq > 0.0) & (d1sq > 0.0)
    count = valid.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # ln d = 0.5 ln d^2. Sums run left to right (cumsum) like the plain loop reference, so the
        # values are identical to it, not just close; skipped pairs add an exact 0.
        sum1 = np.cumsum(np.where(valid, 0.5 * np.log(d1sq), 0.0), axis=1)[:, -1]
        sum0 = np.cumsum(np.where(valid, 0.5 * np.log(d0sq), 0.0), axis=1)[:, -1]
        lam = sum1 / count - sum0 / count
    return np.where(count > 0, lam, 0.0)


def windowed_lyapunov(
    series: np.ndarray, window: int, overlap: float = 0.1, *, threads: int | None = None
) -> np.ndarray:
    """LE series of every input series: one value per window of length ``window``.

    Args:
        series: array ``(n_series, T)`` (or ``(T,)`` for one series) of weight values over steps.
        window: window length W in steps (paper: 200 for tabular data, 50 for MNIST).
        overlap: fraction of overlap between consecutive windows (paper: 0.1), in ``[0, 1)``.
        threads: worker threads for the kernel (None: every usable core).

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
        raise InvalidArgumentError(
            f"series must be real numbers, got dtype {x.dtype}. Fix: pass a float array of "
            "weight values (n_series, T)."
        )
    stride = window_stride(window, overlap)
    length = x.shape[1]
    k = n_windows(length, window, overlap)
    if k == 0:
        raise HistoryError(
            f"series of {length} steps is shorter than one LE window of {window} steps. "
            "Fix: record more steps (train longer or record every step) or use a smaller window."
        )
    _check_finite(x)
    n = x.shape[0]
    if n < ROWS_PER_BLOCK:  # few series: one call over a (small) copy of all their windows
        view = np.lib.stride_tricks.sliding_window_view(x, window, axis=1)[:, ::stride][:, :k]
        return lyapunov_of_windows(view.reshape(n * k, window), threads=threads).reshape(n, k)
    out = np.empty((n, k))
    for j in range(k):  # many series: one window position at a time, a view, never a copy
        out[:, j] = lyapunov_of_windows(x[:, j * stride : j * stride + window], threads=threads)
    return out


class WindowRing:
    """The last ``window`` snapshots of a stream; an LE window closes every ``stride`` snapshots.

    Memory is one window (plus ``spare`` rows), however long the stream. With ``spare=stride``
    a closed window stays intact until the next one closes, so another thread can copy it while
    the next ``stride`` snapshots are written (what :class:`WeightHistory` does: the copy is then
    not on the training thread). Used by :class:`WeightHistory` and by the reproduction's numpy
    trainer.

    Example:
        >>> ring = WindowRing(n=3, window=4, overlap=0.25)
        >>> for t in range(7):
        ...     ring.next_row()[:] = t
        ...     if ring.push():
        ...         print(ring.chronological()[:, 0])
        [0. 1. 2. 3.]
        [3. 4. 5. 6.]
    """

    def __init__(self, n: int, window: int, overlap: float = 0.1, dtype=np.float32, spare=0):
        self.window, self.stride = int(window), window_stride(window, overlap)
        self.size = self.window + int(spare)
        self.buffer = np.empty((self.size, int(n)), dtype=dtype)
        self.count = 0

    def next_row(self) -> np.ndarray:
        """The row to fill with the next snapshot (then call :meth:`push`)."""
        return self.buffer[self.count % self.size]

    def push(self) -> bool:
        """Count the snapshot just written; True when it closes a window."""
        self.count += 1
        closed = self.count - self.window
        return closed >= 0 and closed % self.stride == 0

    def chronological(self, count: int | None = None) -> np.ndarray:
        """The window that ends at snapshot ``count`` (default: the current one), oldest
        snapshot first, ``(window, n)`` (a copy). A window older than the current one is still
        in the buffer for ``spare`` snapshots."""
        count = self.count if count is None else int(count)
        if not 0 <= self.count - count <= self.size - self.window:
            raise ValueError(f"the window ending at snapshot {count} is no longer in the ring")
        start = (count - self.window) % self.size
        end = start + self.window
        if end <= self.size:
            return self.buffer[start:end].copy()
        return np.concatenate([self.buffer[start:], self.buffer[: end - self.size]], axis=0)


def _check_finite(x: np.ndarray, rows_per_check: int = 1 << 16) -> None:
    """NaN/inf check a block of series at a time: ``x`` may be a multi-GB memmap of snapshots,
    and a whole-array ``isfinite`` would allocate one byte per value."""
    for start in range(0, x.shape[0], rows_per_check):
        finite = np.isfinite(x[start : start + rows_per_check])
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            raise NonFiniteError(
                f"series {start + bad[0]} has a non-finite value (NaN or inf) at step {bad[1]}. "
                "Fix: training diverged; lower the learning rate or clip gradients and record "
                "again."
            )


def _check_window(window: int, overlap: float) -> None:
    if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < MIN_WINDOW:
        raise InvalidArgumentError(
            f"window must be an integer >= {MIN_WINDOW}, got {window!r}. Fix: use the paper's 50 "
            "(MNIST) or 200 (tabular), or any integer >= 4."
        )
    if not (0.0 <= float(overlap) < 1.0):
        raise InvalidArgumentError(
            f"overlap must be in [0, 1), got {overlap!r}. Fix: use the paper's 0.1."
        )
