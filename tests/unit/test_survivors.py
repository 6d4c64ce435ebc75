"""Tests added from the survivors of the mutation campaign (tools/mutation.py, issue 19).

Each pins a behaviour that surviving mutants changed without any unit test noticing: the numpy
activations and their gradients (checked against scipy and finite differences, not against the
code's own formulas), and ``score``'s defaults, its run_dir path and its ``weights`` selection.
"""

import warnings

import numpy as np
import pytest
import scipy.special

import keras_legc as kl
from keras_legc.core.dense import activate, activation_backward, activation_derivatives
from keras_legc.core.granger import benjamini_hochberg
from keras_legc.errors import InvalidArgumentError

Z = np.linspace(-30.0, 30.0, 6 * 7).reshape(6, 7)
REFERENCE = {
    "linear": lambda z: z,
    "sigmoid": scipy.special.expit,
    "tanh": np.tanh,
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "softmax": lambda z: scipy.special.softmax(z, axis=-1),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activations_equal_an_independent_reference(name):
    np.testing.assert_allclose(activate(name, Z), REFERENCE[name](Z), rtol=1e-12, atol=1e-15)


def test_an_unknown_activation_is_refused():
    with pytest.raises(InvalidArgumentError, match="unknown activation 'swish'.*Fix"):
        activate("swish", Z)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_gradients_equal_finite_differences(name):
    z = np.random.default_rng(0).normal(size=(4, 5)) * 2 + 0.05  # no relu kink within h of 0
    d_out = np.random.default_rng(1).normal(size=z.shape)
    h = 1e-6
    numeric = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[i] = h
        numeric[i] = np.sum(d_out * (REFERENCE[name](z + step) - REFERENCE[name](z - step))) / (
            2 * h
        )
    got = activation_backward(d_out, REFERENCE[name](z), name)
    np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-8)


def history(seed=0, k=30):
    rng = np.random.default_rng(seed)
    le = rng.normal(size=(40, k))
    le[5] = 0.0  # a weight that never moved: static
    return kl.History(
        layers=["a", "b"], shapes={"a": (6, 5), "b": (5, 2)}, le=le,
        target=rng.normal(size=k).cumsum(), window=20, overlap=0.1, every=1,
        n_snapshots=20 + 18 * (k - 1),
    )  # fmt: skip


def score(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kl.score(*args, **kwargs)


def test_score_defaults_are_the_documented_ones():
    h = history()
    default = score(h)
    explicit = score(h, max_lag="auto", test="ssr_chi2", fdr=False, difference=False,
                     lag=None, criterion="bic")  # fmt: skip
    np.testing.assert_array_equal(default.pvalues, explicit.pvalues)
    assert default.qvalues is None and default.info["fdr"] is False
    assert default.info["differenced"] is False
    # and each default matters: the other choice changes the result
    assert not np.array_equal(score(h, difference=True).pvalues, default.pvalues, equal_nan=True)
    assert score(h, fdr=True).qvalues is not None


def test_score_of_a_run_dir_equals_score_of_its_history(tmp_path):
    h = history()
    h.save(tmp_path / "run")
    np.testing.assert_array_equal(score(tmp_path / "run").pvalues, score(h).pvalues)
    np.testing.assert_array_equal(score(str(tmp_path / "run")).pvalues, score(h).pvalues)


def test_scoring_selected_weights_tests_those_and_marks_the_rest_untested():
    h = history()
    chosen = np.zeros(h.n_weights, bool)
    chosen[::3] = True
    full, part = score(h), score(h, weights=chosen)
    np.testing.assert_array_equal(part.pvalues[chosen], full.pvalues[chosen])
    assert np.isnan(part.pvalues[~chosen]).all()
    assert part.static[~chosen].all()  # untested weights count as static (kept last)
    assert not part.static[chosen].any() and full.static[5] and not full.static[4]
    assert part.pvalues.shape == full.pvalues.shape == (h.n_weights,)
    with pytest.raises(InvalidArgumentError, match="selects no weight"):
        score(h, weights=np.zeros(h.n_weights, bool))


@pytest.mark.parametrize("name", ["linear", "sigmoid", "tanh", "relu"])
def test_activation_derivatives_equal_finite_differences(name):
    z = np.random.default_rng(2).normal(size=(3, 4)) * 2 + 0.05
    h = 1e-4
    f = REFERENCE[name]
    d1, d2 = activation_derivatives(name, z, f(z))
    np.testing.assert_allclose(d1, (f(z + h) - f(z - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d2, (f(z + h) - 2 * f(z) + f(z - h)) / h**2, rtol=1e-3, atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="softmax.*Fix"):
        activation_derivatives("softmax", z, f(z))


def test_benjamini_hochberg_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    for m in (1, 2, 7, 200):
        p = rng.uniform(size=m) ** 3
        p[rng.integers(0, m)] = 0.9999
        np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1],
                                   rtol=1e-12)  # fmt: skip
    p = np.array([0.01, np.nan, 0.04, 0.03, np.inf])
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="fdr_bh")[1])
    assert np.isnan(q[[1, 4]]).all() and np.isnan(benjamini_hochberg(np.full(3, np.nan))).all()


def test_history_tail_keeps_the_last_windows():
    h = history(k=30)
    recent = h.tail(12)
    np.testing.assert_array_equal(recent.le, h.le[:, -12:])
    np.testing.assert_array_equal(recent.target, h.target[-12:])
    assert recent.n_windows == 12 and recent.meta["tail_windows"] == 12
    assert (recent.layers, recent.shapes, recent.window) == (h.layers, h.shapes, h.window)
    assert (recent.overlap, recent.every, recent.n_snapshots) == (h.overlap, h.every, h.n_snapshots)
    assert h.tail(30).n_windows == 30
    for bad in (0, 31):
        with pytest.raises(kl.HistoryError, match=f"n_windows must be in 1..30, got {bad}"):
            h.tail(bad)


def test_scores_save_refuses_to_overwrite_by_default_and_round_trips(tmp_path):
    s = score(history(), fdr=True)
    s.save(tmp_path / "s.npz")
    with pytest.raises(kl.OutputExistsError):
        s.save(tmp_path / "s.npz")
    s.save(tmp_path / "s.npz", overwrite=True)
    back = kl.Scores.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.pvalues, s.pvalues)
    np.testing.assert_array_equal(back.qvalues, s.qvalues)
    np.testing.assert_array_equal(back.static, s.static)
    assert back.layers == s.layers and back.info["fdr"] is True
