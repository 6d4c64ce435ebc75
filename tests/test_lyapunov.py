"""windowed_lyapunov against the plain per-window loop reference (to 1e-12)."""

import numpy as np
import pytest

from keras_legc import HistoryError, InvalidArgumentError, NonFiniteError, windowed_lyapunov
from keras_legc.lyapunov import n_windows, window_stride
from keras_legc.testing.reference import lyapunov_window_reference, windowed_lyapunov_reference

TOL = 1e-12


@pytest.mark.parametrize(
    ("window", "overlap", "length"), [(50, 0.1, 400), (20, 0.1, 97), (8, 0.5, 40), (4, 0.0, 12)]
)
def test_matches_reference_on_random_walks(rng, window, overlap, length):
    x = rng.normal(size=(7, length)).cumsum(axis=1) * 0.01
    got = windowed_lyapunov(x, window, overlap)
    ref = windowed_lyapunov_reference(x, window, overlap)
    assert got.shape == ref.shape == (7, n_windows(length, window, overlap))
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)


def test_matches_reference_with_ties_and_duplicates(rng):
    # Few distinct values: many exact duplicates and distance ties (earliest neighbour wins).
    x = rng.integers(0, 3, size=(20, 60)).astype(float) * 0.01
    np.testing.assert_allclose(
        windowed_lyapunov(x, 20), windowed_lyapunov_reference(x, 20), atol=TOL
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


@pytest.mark.parametrize(("window", "overlap"), [(3, 0.1), (50, 1.0), (50, -0.1), (10.5, 0.1)])
def test_bad_window_arguments(window, overlap):
    with pytest.raises(InvalidArgumentError):
        windowed_lyapunov(np.zeros((2, 100)), window, overlap)
