"""Bad input gets a clear keras_legc error that names the problem and the fix."""

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import HistoryError, InvalidArgumentError, NonFiniteError


def make_history(le, target):
    le = np.asarray(le, dtype=np.float32)
    return kl.History(
        layers=["d"], shapes={"d": (le.shape[0], 1)}, le=le, target=target,
        window=10, overlap=0.1, every=1, n_snapshots=100,
    )  # fmt: skip


def test_non_finite_target_or_le_series(rng):
    target = rng.random(20)
    target[4] = np.nan
    with pytest.raises(NonFiniteError, match="target"):
        kl.score(make_history(rng.normal(size=(3, 20)), target))
    le = rng.normal(size=(3, 20))
    le[1, 2] = np.inf
    with pytest.raises(NonFiniteError, match="LE series"):
        kl.score(make_history(le, rng.random(20)))


def test_alpha_and_sparsity_misuse(rng):
    scores = kl.score(make_history(rng.normal(size=(4, 30)), rng.random(30)), max_lag=2)
    with pytest.raises(InvalidArgumentError, match="either alpha"):
        scores.mask(0.05, sparsity=0.5)
    for alpha in (0.0, 1.0, -1, 2):
        with pytest.raises(InvalidArgumentError, match="alpha must be in"):
            scores.mask(alpha)
    with pytest.raises(InvalidArgumentError, match="sparsity must be in"):
        scores.mask(sparsity=1.0)


def test_all_weights_degenerate(rng):
    scores = kl.score(make_history(np.zeros((3, 30)), rng.random(30)), max_lag=2)
    assert scores.degenerate_counts() == {"constant cause series": 3}
    with pytest.raises(HistoryError, match="all 3 weights are degenerate"):
        scores.mask(alpha=0.05)


def test_degenerate_weights_kept_in_paper_mode_static_ones_pruned_first_in_target_mode(rng):
    le = rng.normal(size=(6, 30))
    le[0] = 0.0  # degenerate
    scores = kl.score(make_history(le, rng.random(30)), max_lag=2)
    assert scores.n_degenerate == 1
    assert scores.mask(alpha=0.05)["d"][0, 0]  # kept in paper mode
    # The paper-era ranking prunes degenerate weights last: 5 of 6 pruned, it survives ...
    assert scores.mask(sparsity=0.8, ranking="legc_pvalue")["d"][0, 0]
    # ... the default knows it never moved (LE 0 in every window) and prunes it first.
    assert scores.static[0] and not scores.mask(sparsity=0.2)["d"][0, 0]


def test_history_that_does_not_fit_its_layers(rng):
    with pytest.raises(HistoryError, match="inconsistent history"):
        kl.History(
            layers=["d"], shapes={"d": (4, 2)}, le=rng.normal(size=(7, 20)), target=rng.random(20),
            window=10, overlap=0.1, every=1, n_snapshots=100,
        )  # fmt: skip


def test_bad_recorder_arguments():
    for kwargs in ({"every": 0}, {"eval_batch_size": 0}, {"window": 2}, {"overlap": 1.0}):
        with pytest.raises(InvalidArgumentError):
            kl.WeightHistory(**kwargs)


def test_numpy_alpha_and_list_shapes(rng):
    scores = kl.score(make_history(rng.normal(size=(4, 30)), rng.random(30)), max_lag=2)
    assert scores.mask(np.float32(0.05)).layers == ["d"]
    assert kl.random_mask({"a": [6, 5]}, 0.5).shapes == {"a": (6, 5)}
