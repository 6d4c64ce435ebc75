"""windowed_lyapunov against the plain per-window loop reference: identical values, not just close."""

import subprocess
import sys

import numpy as np
import pytest

from keras_legc import HistoryError, InvalidArgumentError, NonFiniteError, windowed_lyapunov
from keras_legc.core import lyapunov
from keras_legc.core.lyapunov import ROWS_PER_BLOCK, lyapunov_of_windows, n_windows, window_stride
from keras_legc.testing.reference import lyapunov_window_reference, windowed_lyapunov_reference


@pytest.mark.parametrize(
    ("window", "overlap", "length"), [(50, 0.1, 400), (20, 0.1, 97), (8, 0.5, 40), (4, 0.0, 12)]
)
def test_matches_reference_on_random_walks(rng, window, overlap, length):
    x = rng.normal(size=(7, length)).cumsum(axis=1) * 0.01
    got = windowed_lyapunov(x, window, overlap)
    ref = windowed_lyapunov_reference(x, window, overlap)
    assert got.shape == ref.shape == (7, n_windows(length, window, overlap))
    np.testing.assert_array_equal(got, ref)


def test_matches_reference_with_ties_and_duplicates(rng):
    # Few distinct values: many exact duplicates and distance ties (earliest neighbour wins).
    x = rng.integers(0, 3, size=(20, 60)).astype(float) * 0.01
    np.testing.assert_array_equal(windowed_lyapunov(x, 20), windowed_lyapunov_reference(x, 20))


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e4, 1e150])
def test_identical_to_reference_at_extreme_magnitudes(rng, scale):
    x = rng.normal(size=(5, 120)).cumsum(axis=1) * scale
    np.testing.assert_array_equal(windowed_lyapunov(x, 30), windowed_lyapunov_reference(x, 30))


def test_float32_snapshots_identical_to_reference(rng):
    # What the recorder stores: float32 weights, widened to float64 inside the kernel.
    x = (rng.normal(size=(6, 150)).cumsum(axis=1) * 0.01).astype(np.float32)
    got = windowed_lyapunov(x, 50)
    np.testing.assert_array_equal(got, windowed_lyapunov_reference(x.astype(np.float64), 50))


def test_many_series_path_blocks_and_threads_do_not_change_values(rng):
    # More series than one block: the per-window (view) path, several blocks, threads.
    n = 2 * ROWS_PER_BLOCK + 3
    x = rng.normal(size=(n, 110)).cumsum(axis=1) * 0.01
    x[5] = 0.25  # static rows mixed into a block
    x[ROWS_PER_BLOCK + 1, :60] = 0.5
    one = windowed_lyapunov(x, 50, threads=1)
    np.testing.assert_array_equal(one, windowed_lyapunov(x, 50, threads=3))
    sample = [0, 5, ROWS_PER_BLOCK, ROWS_PER_BLOCK + 1, n - 1]
    np.testing.assert_array_equal(one[sample], windowed_lyapunov_reference(x[sample], 50))
    # Row by row through the kernel gives the same bits as the blocked call.
    windows = x[:, :50]
    solo = np.array([lyapunov_of_windows(windows[i : i + 1])[0] for i in range(0, n, 17)])
    np.testing.assert_array_equal(solo, lyapunov_of_windows(windows)[::17])


def test_transposed_float32_view_is_accepted(rng):
    ring = (rng.normal(size=(40, 300)).cumsum(axis=0) * 0.01).astype(np.float32)
    np.testing.assert_array_equal(
        lyapunov_of_windows(ring.T), lyapunov_of_windows(np.ascontiguousarray(ring.T))
    )


def test_chaotic_map_is_positive_and_sine_is_not():
    x = np.empty(400)
    x[0] = 0.3
    for t in range(399):
        x[t + 1] = 4.0 * x[t] * (1.0 - x[t])  # logistic map, LE = ln 2
    le = windowed_lyapunov(x, 200)[0]
    assert np.all(le > 0.3)
    sine = np.sin(np.arange(400) * 0.1)
    assert np.all(np.abs(windowed_lyapunov(sine, 200)[0]) < 0.05)


def test_static_windows_give_zero():
    x = np.ones((3, 100))
    x[1] += 1e-7 * np.arange(100) % 3  # moves, but by less than the 1e-5 range threshold
    x[2, 60:] = 2.0  # static first window, moving later
    le = windowed_lyapunov(x, 50)
    assert np.all(le[:2] == 0.0)
    assert le[2, 0] == 0.0


def test_window_without_valid_pairs_is_zero():
    x = np.zeros(10)
    x[-1] = 1.0  # the only distinct point is not a candidate neighbour
    assert lyapunov_window_reference(x) == 0.0
    assert windowed_lyapunov(x, 10)[0, 0] == 0.0


def test_window_arithmetic():
    assert window_stride(50, 0.1) == 45 and window_stride(200, 0.1) == 180
    assert n_windows(50, 50) == 1 and n_windows(94, 50) == 1 and n_windows(95, 50) == 2
    assert n_windows(49, 50) == 0


def test_too_short_series():
    with pytest.raises(HistoryError, match="shorter than one LE window"):
        windowed_lyapunov(np.zeros((2, 30)), 50)


def test_non_finite_series():
    x = np.zeros((2, 60))
    x[1, 7] = np.nan
    with pytest.raises(NonFiniteError, match="series 1 .* step 7"):
        windowed_lyapunov(x, 50)


def test_bad_thread_count():
    with pytest.raises(InvalidArgumentError, match="threads"):
        windowed_lyapunov(np.zeros((2, 100)), 50, threads=0)


@pytest.mark.parametrize(("window", "overlap"), [(3, 0.1), (50, 1.0), (50, -0.1), (10.5, 0.1)])
def test_bad_window_arguments(window, overlap):
    with pytest.raises(InvalidArgumentError):
        windowed_lyapunov(np.zeros((2, 100)), window, overlap)


def test_non_finite_found_beyond_the_first_check_block(rng):
    x = rng.normal(size=(9, 60))
    x[7, 33] = np.inf
    with pytest.raises(NonFiniteError, match="series 7 .* step 33"):
        lyapunov._check_finite(x, rows_per_check=4)  # the bad row sits in the second block


def _window_kinds(rng, w):
    """Windows of every kind the kernel special-cases, as ``(name, (n, w) float64 array)``."""
    n = 40
    steps = rng.integers(0, 5, size=(n, w))  # piecewise constant: few values held for a few steps
    held = np.take_along_axis(rng.normal(size=(n, 5)), steps, axis=1)
    runs = np.repeat(held[:, : (w + 4) // 5], 5, axis=1)[:, :w]
    binary = rng.integers(0, 2, size=(n, w)).astype(float)
    return [
        ("random", rng.normal(size=(n, w))),
        ("walk", rng.normal(size=(n, w)).cumsum(axis=1) * 1e-3),
        ("piecewise constant", runs),
        ("few values, shuffled", held),
        ("ties on a grid", rng.integers(0, 4, size=(n, w)) * 0.25),
        ("constant", np.full((n, w), 0.3)),
        ("almost static", 0.3 + 1e-6 * rng.normal(size=(n, w))),
        ("tiny moves that underflow", binary + 1e-200 * rng.normal(size=(n, w))),
        ("huge, squares overflow", rng.normal(size=(n, w)) * 1e300),
        ("huge", rng.normal(size=(n, w)) * 1e150),
        ("tiny", rng.normal(size=(n, w)) * 1e-140),
        ("one jump", np.where(np.arange(w) < w // 2, 0.0, 1.0) * np.ones((n, 1))),
    ]


@pytest.mark.parametrize("w", [4, 5, 50, 200])
def test_compiled_kernel_identical_to_reference_on_every_window_kind(rng, w):
    for name, x in _window_kinds(rng, w):
        ref = np.array([lyapunov_window_reference(row) for row in x])
        with np.errstate(over="ignore", invalid="ignore"):
            got = lyapunov_of_windows(x, threads=1)
            fallback = lyapunov._lyapunov_numpy(x, 1)
        np.testing.assert_array_equal(got, ref, err_msg=name)
        np.testing.assert_array_equal(fallback, ref, err_msg=name)


def test_compiled_kernel_reads_every_layout_and_dtype(rng):
    x = rng.normal(size=(700, 60)).cumsum(axis=1).astype(np.float32)  # > one kernel block
    want = lyapunov_of_windows(np.ascontiguousarray(x, dtype=np.float64), threads=1)
    read_only = np.lib.stride_tricks.sliding_window_view(x, 50, axis=1)[:, 5]
    for view in (x, np.asfortranarray(x), x[::-1][::-1], read_only, x.astype(np.float16)):
        got = lyapunov_of_windows(view, threads=2)
        if view.dtype == np.float16:
            want16 = [lyapunov_window_reference(row) for row in view[:30].astype(np.float64)]
            np.testing.assert_array_equal(got[:30], want16)
        elif view is read_only:
            np.testing.assert_array_equal(got, lyapunov_of_windows(np.array(read_only)))
        else:
            np.testing.assert_array_equal(got, want)


def test_numpy_fallback_when_numba_is_missing_warns_once_and_agrees(rng, tmp_path):
    # A fresh interpreter in which `import numba` fails: the numpy kernel, one warning.
    x = rng.normal(size=(30, 50)).cumsum(axis=1)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, warnings; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from keras_legc.core.lyapunov import lyapunov_of_windows\n"
        "x = np.load(sys.argv[1])\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    a = lyapunov_of_windows(x)\n"
        "    b = lyapunov_of_windows(x[::-1])\n"
        "print(len(caught), caught[0].message)\n"
        "np.save(sys.argv[2], np.concatenate([a, b]))\n"
    )
    out = tmp_path / "le.npy"
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.npy"), str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert run.stdout.startswith("1 numba could not be imported")
    assert "pip install" in run.stdout
    want = np.concatenate([lyapunov_of_windows(x), lyapunov_of_windows(x[::-1])])
    np.testing.assert_array_equal(np.load(out), want)
