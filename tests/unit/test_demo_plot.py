"""`legc demo`'s plot of a few weights' LE series and the target series (legc_research/demo.py)."""

import sys

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.errors import OutputExistsError
from legc_research.demo import _extreme_weights, plot_series


@pytest.fixture(scope="module")
def recorded():
    """A small history in which weight 0's LE series leads the target by one window."""
    rng = np.random.default_rng(7)
    n_windows, shapes = 40, {"d0": (3, 4), "d1": (4, 2)}
    le = rng.normal(size=(20, n_windows)).astype(np.float32)
    target = np.r_[0.5, 0.8 * le[0, :-1]] + 0.05 * rng.normal(size=n_windows)
    history = kl.History(
        layers=["d0", "d1"], shapes=shapes, le=le, target=target, window=10, overlap=0.1,
        every=1, n_snapshots=400,
    )  # fmt: skip
    return history, kl.score(history, max_lag=2)


def test_plot_shows_the_most_and_least_causal_weights(recorded, tmp_path):
    history, scores = recorded
    picks = _extreme_weights(scores, 3)
    lowest = [r for r, k in picks if k]
    highest = [r for r, k in picks if not k]
    assert lowest[0] == 0  # the weight whose LE drives the target has the lowest p-value
    assert max(scores.pvalues[lowest]) <= min(scores.pvalues[highest])
    path = plot_series(history, scores, tmp_path / "le_target.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(OutputExistsError):
        plot_series(history, scores, path)
    assert plot_series(history, scores, path, overwrite=True) == path


def test_without_matplotlib_the_plot_is_skipped_with_the_fix(
    recorded, tmp_path, monkeypatch, capsys
):
    history, scores = recorded
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    assert plot_series(history, scores, tmp_path / "p.png") is None
    assert not (tmp_path / "p.png").exists()
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "pip install 'keras-legc[diagnostics]'" in line
