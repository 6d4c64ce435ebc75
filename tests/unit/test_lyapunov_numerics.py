"""The numpy LE kernel (the fallback without numba) and the compiled one against the plain loop
reference at block boundaries, at the static threshold, on float32 input, without spurious numpy
warnings, and from fresh threads (the thread-local scratch arrays)."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from keras_legc import NonFiniteError
from keras_legc.core import _compiled, lyapunov
from keras_legc.core.lyapunov import (
    ROWS_PER_BLOCK,
    STATIC_RANGE,
    lyapunov_of_windows,
    windowed_lyapunov,
)
from keras_legc.testing.reference import lyapunov_window_reference


def _reference(x: np.ndarray) -> np.ndarray:
    return np.array([lyapunov_window_reference(row) for row in np.asarray(x, dtype=np.float64)])


@pytest.fixture
def numpy_kernel(monkeypatch):
    """lyapunov_of_windows without numba: the vectorised numpy kernel."""
    monkeypatch.setitem(_compiled._loaded, "_lyapunov_kernel", None)


def _walks(seed: int, n: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, w)).cumsum(axis=1)


def test_numpy_kernel_covers_every_block_with_static_rows_mixed_in(numpy_kernel):
    # 2 * 128 + 44 rows: three blocks, the last one partial; every 7th row static.
    x = _walks(0, 2 * ROWS_PER_BLOCK + 44, 12)
    x[::7] = 0.25
    got = lyapunov_of_windows(x, threads=1)
    np.testing.assert_array_equal(got, _reference(x))
    assert got.dtype == np.float64
    assert (got[::7] == 0).all() and (got[1::7] != 0).all()


def test_numpy_kernel_computes_in_float64_for_float32_windows(numpy_kernel):
    x = (_walks(1, 20, 30) * 1e-3 + 0.1).astype(np.float32)
    np.testing.assert_array_equal(lyapunov_of_windows(x, threads=1), _reference(x))


def test_a_block_whose_moving_count_equals_the_window_length(numpy_kernel):
    # 11 windows of 10 steps: 10 move, one moves less than STATIC_RANGE (LE 0 by definition)
    x = _walks(2, 11, 10)
    x[4] = 0.5 + 1e-7 * np.random.default_rng(3).normal(size=10)
    got = lyapunov_of_windows(x, threads=1)
    assert got[4] == 0.0
    np.testing.assert_array_equal(got, _reference(x))


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_range_of_exactly_static_range_is_moving(monkeypatch, kernel):
    if kernel == "numpy":
        monkeypatch.setitem(_compiled._loaded, "_lyapunov_kernel", None)
    r = np.random.default_rng(4).random((3, 20))
    r[:, 0], r[:, 1] = 0.0, 1.0
    x = STATIC_RANGE * r  # max - min == STATIC_RANGE exactly: the window moved
    assert (np.ptp(x, axis=1) == STATIC_RANGE).all()
    got = lyapunov_of_windows(x, threads=1)
    np.testing.assert_array_equal(got, _reference(x))
    assert (got != 0).all()


def test_numpy_kernel_raises_no_numpy_warnings_at_the_edges(numpy_kernel):
    w = 12
    no_pair = np.zeros(w)
    no_pair[-1] = 1.0  # moves, but every reference point is a duplicate: no valid pair, LE 0
    huge = _walks(5, 1, w)[0] * 1e158 + 1e160  # positive: squares of differences overflow
    x = np.stack([no_pair, huge, _walks(6, 1, w)[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = lyapunov_of_windows(x, threads=1)
    np.testing.assert_array_equal(got, _reference(x))
    assert got[0] == 0.0 and np.isfinite(got).all()


def _in_a_fresh_thread(func):
    result = {}

    def run():
        try:
            result["value"] = func()
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_numpy_kernel_in_fresh_threads_and_after_a_longer_window():
    # Each thread keeps its own scratch arrays: the first call in a thread has none, and a call
    # with a window two steps shorter must not reuse the longer window's arrays.
    long, short = _walks(7, 5, 12), _walks(8, 5, 10)

    def both():
        return lyapunov._lyapunov_numpy(long, 1), lyapunov._lyapunov_numpy(short, 1)

    got_long, got_short = _in_a_fresh_thread(both)
    np.testing.assert_array_equal(got_long, _reference(long))
    np.testing.assert_array_equal(got_short, _reference(short))


def test_windowed_lyapunov_without_numba_equals_the_reference(numpy_kernel):
    x = _walks(9, 3, 70)
    got = windowed_lyapunov(x, window=20, overlap=0.1)
    want = np.array([[lyapunov_window_reference(s[j * 18 : j * 18 + 20]) for j in range(3)]
                     for s in x])  # fmt: skip
    np.testing.assert_array_equal(got, want)


def test_the_compiled_kernel_across_its_blocks_and_in_fresh_threads():
    # 2 * 512 + 77 windows: three kernel blocks; integer windows are widened to float64; a fresh
    # thread has no scratch yet, and a shorter window after a longer one gets its own.
    x = _walks(10, 2 * 512 + 77, 8)
    x[::5] = 1.0
    ints = np.round(x * 10).astype(np.int64)

    def run():
        return (lyapunov_of_windows(x, threads=1), lyapunov_of_windows(ints, threads=1),
                lyapunov_of_windows(x[:, :6], threads=1))  # fmt: skip

    got, got_int, got_short = _in_a_fresh_thread(run)
    np.testing.assert_array_equal(got, _reference(x))
    np.testing.assert_array_equal(got_int, _reference(ints))
    np.testing.assert_array_equal(got_short, _reference(x[:, :6]))
    np.testing.assert_array_equal(lyapunov_of_windows(x, threads=2), got)


def test_many_series_one_window_position_at_a_time():
    # ROWS_PER_BLOCK series or more take the per-position path: same values as the reference
    x = _walks(11, ROWS_PER_BLOCK + 3, 40)
    got = windowed_lyapunov(x, window=12, overlap=0.25)  # stride 9: windows at 0, 9, 18, 27
    assert got.shape == (ROWS_PER_BLOCK + 3, 4)
    want = np.array([[lyapunov_window_reference(s[j * 9 : j * 9 + 12]) for j in range(4)]
                     for s in x])  # fmt: skip
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(windowed_lyapunov(x[5], window=12, overlap=0.25), got[5:6])


def test_stride_rounds_half_up_and_is_at_least_one():
    assert lyapunov.window_stride(25, 0.1) == 23  # 22.5 rounds up (Python's round gives 22)
    assert lyapunov.window_stride(50, 0.0) == 50
    assert lyapunov.window_stride(4, 0.99) == 1  # 0.04 rounds to 0: at least 1
    assert lyapunov.n_windows(94, 50) == 1 and lyapunov.n_windows(95, 50, 0.1) == 2
    assert lyapunov.n_windows(49, 50) == 0 and lyapunov.n_windows(50, 50, 0.5) == 1
    assert lyapunov.n_windows(100, 50, 0.5) == 3  # starts 0, 25, 50


def test_window_ring_equals_a_list_of_the_last_snapshots():
    ring = lyapunov.WindowRing(n=2, window=5, overlap=0.4)  # stride 3
    assert ring.stride == 3 and ring.buffer.shape == (5, 2) and ring.buffer.dtype == np.float32
    seen, closed = [], []
    for t in range(14):
        ring.next_row()[:] = (t, -t)
        seen.append((t, -t))
        if ring.push():
            closed.append(t)
            np.testing.assert_array_equal(ring.chronological(), np.array(seen[-5:]))
    assert closed == [4, 7, 10, 13]  # the first after 5 snapshots, then every 3
    assert ring.count == 14
    assert lyapunov.WindowRing(n=1, window=4, dtype=np.float64).buffer.dtype == np.float64


def _message(exc_type, func, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as info:
        func(*args, **kwargs)
    return str(info.value)


def test_errors_name_the_problem_and_the_fix():
    from keras_legc.errors import HistoryError, InvalidArgumentError, NonFiniteError

    msg = _message(InvalidArgumentError, lyapunov_of_windows, np.zeros((3, 3)))
    assert msg == "expected windows of shape (n, W) with W >= 4, got (3, 3)."
    assert "got (10,)" in _message(InvalidArgumentError, lyapunov_of_windows, np.zeros(10))
    msg = _message(InvalidArgumentError, windowed_lyapunov, np.zeros((2, 3, 60)), 50)
    assert msg.startswith("series must be 1-D (T,) or 2-D (n_series, T); got shape (2, 3, 60)")
    for dtype in (complex, bool, object):
        msg = _message(InvalidArgumentError, windowed_lyapunov, np.zeros((2, 60), dtype), 50)
        assert (
            "got dtype" in msg and "Fix: pass a float array of weight values (n_series, T)" in msg
        )
    msg = _message(HistoryError, windowed_lyapunov, np.zeros((2, 30)), 50)
    assert msg.startswith("series of 30 steps is shorter than one LE window of 50 steps. Fix: ")
    assert msg.endswith("or use a smaller window.")
    x = np.zeros((3, 60))
    x[2, 11] = -np.inf
    msg = _message(NonFiniteError, windowed_lyapunov, x, 50)
    assert msg.startswith("series 2 has a non-finite value (NaN or inf) at step 11. Fix: ")
    assert "lower the learning rate or clip gradients and record again." in msg
    for window in (3, 4.0, True, "50"):
        msg = _message(InvalidArgumentError, lyapunov.window_stride, window)
        assert f"got {window!r}. Fix: use the paper's 50 (MNIST) or 200 (tabular)" in msg
    for overlap in (1.0, -0.01):
        msg = _message(InvalidArgumentError, lyapunov.window_stride, 50, overlap)
        assert msg == f"overlap must be in [0, 1), got {overlap!r}. Fix: use the paper's 0.1."
    assert lyapunov.window_stride(np.int64(4), 0) == 4


# -- the finite check, the default stride, the scratch buffers (issue 19: the last survivors) ------
def test_a_non_finite_value_in_the_first_series_is_found():
    x = np.ones((9, 20))
    x[0, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"^series 0 has a non-finite value .* at step 0\."):
        lyapunov._check_finite(x, rows_per_check=4)


def test_every_series_of_a_tall_block_is_checked():
    x = np.ones((12, 5))  # more series than steps: the check walks the series (rows)
    x[11, 4] = np.inf
    with pytest.raises(NonFiniteError, match=r"^series 11 .* at step 4\. Fix: training diverged"):
        lyapunov._check_finite(x, rows_per_check=4)


def test_the_default_overlap_is_the_papers_10_percent():
    assert lyapunov.window_stride(50) == 45 == lyapunov.window_stride(50, 0.1)
    assert lyapunov.n_windows(140, 50) == 3  # windows start at 0, 45, 90


def test_the_kernel_raises_no_floating_point_warnings_on_a_new_window_length():
    # a new W makes each thread allocate its scratch buffer afresh: every value in it that the
    # log reads must have been written (an unwritten 0 would warn "divide by zero")
    x = np.random.default_rng(5).normal(size=(40, 43)).cumsum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = lyapunov_of_windows(x, threads=1)
    np.testing.assert_allclose(got, [lyapunov_window_reference(row) for row in x], rtol=1e-12)


def test_a_ring_with_spare_rows_keeps_the_closed_window_until_the_next_closes():
    """spare=stride: the window that closed stays readable while the next stride snapshots are
    written (a background worker copies it); older ones are refused, not returned wrong."""
    ring = lyapunov.WindowRing(n=2, window=5, overlap=0.4, spare=3)  # stride 3
    assert ring.buffer.shape == (8, 2)
    seen, closed = [], []
    for t in range(20):
        row = np.array([t, -t], dtype=np.float32)
        ring.next_row()[:] = row
        seen.append(row)
        if ring.push():
            closed.append(ring.count)
        for c in closed[-1:]:  # the last closed window, at every later snapshot until the next
            np.testing.assert_array_equal(ring.chronological(c), np.array(seen[c - 5 : c]))
    assert closed == [5, 8, 11, 14, 17, 20]
    with pytest.raises(ValueError, match="no longer in the ring"):
        ring.chronological(16)
