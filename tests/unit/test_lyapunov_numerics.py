"""The numpy LE kernel (the fallback without numba) and the compiled one against the plain loop
reference at block boundaries, at the static threshold, on float32 input, without spurious numpy
warnings, and from fresh threads (the thread-local scratch arrays)."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

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
