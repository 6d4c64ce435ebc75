"""The weight-importance seam: scorers, the one policy, and target mode's rankings."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from keras_legc import InvalidArgumentError, LegcWarning, Scores
from keras_legc.core.granger import CONSTANT_CAUSE, OK
from keras_legc.masking import Importance, importance, mask_from_importance, mask_from_ranking
from keras_legc.masking import importance as imp

SHAPES = {"a": (40, 8), "b": (8, 3)}
N = 40 * 8 + 8 * 3


def _scores(rng, *, n_static=0, untestable=0):
    """Scores with ``n_static`` never-moved weights (the first ones of layer a) and ``untestable``
    moved weights without a valid test right after them."""
    kernels = {n: rng.normal(size=s) for n, s in SHAPES.items()}
    degenerate = np.full(N, OK, np.int8)
    degenerate[: n_static + untestable] = CONSTANT_CAUSE
    static = np.zeros(N, bool)
    static[:n_static] = True
    p = rng.uniform(size=N)
    r2 = rng.uniform(size=N)
    f = rng.uniform(size=N)
    for arr in (p, r2, f):
        arr[degenerate != OK] = np.nan
    return Scores(
        layers=list(SHAPES), shapes=SHAPES, pvalues=p, degenerate=degenerate, max_lag=2,
        test="ssr_ftest", kernels=kernels, static=static, f_pvalue=f, partial_r2=r2,
        selected_lag=np.where(degenerate == OK, 1, 0),
    )  # fmt: skip


def test_a_user_written_scorer_plugs_into_the_one_policy():
    def movement(initial):
        def scorer(kernels, block=None):
            keys = {n: [np.abs(k - initial[n])] for n, k in kernels.items()}
            return Importance(keys, info={"method": "movement"})

        return scorer

    kernels = {"d": np.array([[0.1, 0.5], [0.3, 0.2]])}
    mask = mask_from_importance(movement({"d": np.zeros((2, 2))}), kernels, 0.5)
    assert mask["d"].tolist() == [[False, True], [True, False]]
    assert mask.info["method"] == "movement" and mask.sparsity == 0.5


def test_lower_importance_is_pruned_first_and_later_keys_break_ties():
    kernels = {"d": np.zeros((2, 3))}
    first = np.array([[0, 0, 1], [1, 1, 1]])  # ties broken by the second key
    second = np.array([[5.0, 2.0, 0.0], [9.0, 1.0, 3.0]])
    mask = mask_from_importance(Importance({"d": [first, second]}), kernels, 0.5)
    assert mask["d"].tolist() == [[False, False, False], [True, True, True]]
    # The same ranking through the low-level lexsort keys (primary last).
    assert mask_from_ranking({"d": [second, first]}, 0.5)["d"].tolist() == mask["d"].tolist()


def test_block_aggregation_follows_each_keys_reduce_rule():
    kernels = {"d": np.ones((32, 2))}
    k = np.zeros((32, 2))
    k[16:, 0] = 1.0  # block 2 of column 0 has mean 1, the rest 0
    mask = mask_from_importance(Importance({"d": [k]}), kernels, 0.75, block=(1, 16))
    assert mask["d"][16:, 0].all() and not mask["d"][:16].any() and not mask["d"][16:, 1].any()
    assert mask.info["reached_sparsity"] == 0.75


def test_importance_validation_errors_name_the_fix():
    with pytest.raises(InvalidArgumentError, match="same number"):
        Importance({"a": [np.ones(2)], "b": [np.ones(2), np.ones(2)]})
    with pytest.raises(InvalidArgumentError, match="reduce"):
        Importance({"a": [np.ones(2)]}, reduce=("median",))
    with pytest.raises(InvalidArgumentError, match="NaN"):
        mask_from_importance(Importance({"a": [np.array([1.0, np.nan])]}), {"a": np.ones(2)}, 0.5)
    with pytest.raises(InvalidArgumentError, match="layers"):
        mask_from_importance(Importance({"x": [np.ones(2)]}), {"a": np.ones(2)}, 0.5)
    with pytest.raises(InvalidArgumentError, match="unknown scorer"):
        importance.get_scorer("nope")
    with pytest.raises(InvalidArgumentError, match="already registered"):
        importance.register("magnitude", importance.magnitude)


def test_magnitude_and_random_masks_are_the_policy_with_their_scorers(rng):
    kernels = {n: rng.normal(size=s) for n, s in SHAPES.items()}
    from keras_legc import magnitude_mask, random_mask

    for block in (None, (1, 4)):
        a = magnitude_mask(kernels, 0.6, block=block)
        b = mask_from_importance(importance.magnitude(), kernels, 0.6, block=block)
        assert all((a[n] == b[n]).all() for n in SHAPES)
        c = random_mask(SHAPES, 0.6, seed=3, block=block)
        d = mask_from_importance(importance.random(3), kernels, 0.6, block=block)
        assert all((c[n] == d[n]).all() for n in SHAPES)


@pytest.mark.parametrize("ranking", ["legc", "legc_protect", "legc_rank_product"])
def test_static_weights_are_pruned_first(rng, ranking):
    scores = _scores(rng, n_static=100)
    mask = scores.mask(sparsity=100 / N, ranking=ranking, per_layer=False)
    flat = np.concatenate([np.ravel(mask[n]) for n in SHAPES])
    assert not flat[:100].any() and flat[100:].all()


def test_paper_era_ranking_keeps_degenerate_weights_last_and_collapses(rng):
    scores = _scores(rng, n_static=300)
    with pytest.warns(LegcWarning, match="no valid Granger test"):
        old = scores.mask(sparsity=0.9, ranking="legc_pvalue", per_layer=False)
    flat = np.concatenate([np.ravel(old[n]) for n in SHAPES])
    assert flat[:300].sum() == flat.sum()  # every kept weight is a never-moved one
    assert old.info["kept_untestable"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)
        new = scores.mask(sparsity=0.9, ranking="legc", per_layer=False)  # prunes them first
    flat = np.concatenate([np.ravel(new[n]) for n in SHAPES])
    assert not flat[:300].any() and new.info["kept_untestable"] == 0.0


def test_untestable_moved_weights_get_their_magnitude_rank_not_last(rng):
    scores = _scores(rng, untestable=60)
    big = np.abs(scores.kernels["a"]).ravel()
    keep = scores.mask(sparsity=0.5, ranking="legc", per_layer=False)
    kept = np.ravel(keep["a"])[:60]
    # Untested weights survive by magnitude: the larger ones are kept more often.
    assert 0 < kept.sum() < 60
    assert big[:60][kept].mean() > big[:60][~kept].mean()


def test_protect_spares_causal_weights_until_the_non_causal_are_gone(rng):
    scores = _scores(rng)
    scores.f_pvalue[:] = 0.9
    scores.f_pvalue[:50] = 1e-8  # 50 clearly causal weights (BH q tiny)
    mask = scores.mask(sparsity=0.8, ranking="legc_protect")
    flat = np.concatenate([np.ravel(mask[n]) for n in SHAPES])
    assert flat[:50].all()  # 80% pruned, all of them from the non-causal ones


def test_rank_product_prefers_large_and_causal(rng):
    scores = _scores(rng)
    mask = scores.mask(sparsity=0.5, ranking="legc_rank_product")
    flat = np.concatenate([np.ravel(mask[n]) for n in SHAPES])
    w = np.concatenate([np.abs(np.ravel(scores.kernels[n])) for n in SHAPES])
    assert w[flat].mean() > w[~flat].mean()
    assert scores.partial_r2[flat].mean() > scores.partial_r2[~flat].mean()


def test_target_mode_arguments_are_checked(rng):
    scores = _scores(rng)
    with pytest.raises(InvalidArgumentError, match="unknown ranking"):
        scores.mask(sparsity=0.5, ranking="magnitude")
    with pytest.raises(InvalidArgumentError, match="ranking= applies to target mode"):
        scores.mask(alpha=0.05, ranking="legc")
    old = Scores(layers=["a"], shapes={"a": (2, 2)}, pvalues=np.full(4, 0.5),
                 degenerate=np.zeros(4, np.int8), max_lag=1, test="ssr_chi2")  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="score the history again"):
        old.mask(sparsity=0.5, ranking="legc")


def test_new_arrays_survive_save_and_load(rng, tmp_path):
    scores = _scores(rng, n_static=5)
    scores.save(tmp_path / "s.npz")
    back = Scores.load(tmp_path / "s.npz")
    for a in ("static", "f_pvalue", "partial_r2", "selected_lag"):
        np.testing.assert_array_equal(getattr(back, a), getattr(scores, a))
    assert back.n_static == 5


# ---- scorers --------------------------------------------------------------------------------


def _score_stub(layers=("a", "b"), shapes=None, **flat):
    shapes = shapes or {"a": (3, 2), "b": (2, 1)}
    return SimpleNamespace(layers=list(layers), shapes=shapes, **flat)


def _legc_fixture():
    kernels = {"a": np.array([[0.5, -3.0], [1.0, 0.2], [-2.0, 0.7]]), "b": np.array([[4.0], [0.1]])}
    static = np.array([False, False, True, False, False, False, False, True])
    partial_r2 = np.array([0.3, 0.1, np.nan, np.nan, 0.9, 0.5, 0.2, np.nan])
    f_pvalue = np.array([0.001, 0.2, np.nan, np.nan, 0.5, 0.01, 0.04, np.nan])
    pvalues = np.array([0.3, 0.01, 1.0, 0.5, 0.2, 0.9, 0.04, 0.7])
    degenerate = np.array([0, 0, 1, 1, 0, 0, 0, 1])
    s = _score_stub(static=static, partial_r2=partial_r2, f_pvalue=f_pvalue, pvalues=pvalues,
                degenerate=degenerate)  # fmt: skip
    return s, kernels


def _flat(keys, i):
    return np.concatenate([np.ravel(keys[n][i]) for n in ("a", "b")])


def _avg_rank(values):
    """Average-rank percentiles, by brute force."""
    v = list(values)
    return np.array([(sum(x < y for x in v) + (sum(x == y for x in v) + 1) / 2) / len(v)
                     for y in v])  # fmt: skip


@pytest.mark.parametrize("evidence", ["partial_r2", "f_pvalue"])
def test_legc_and_rank_product_keys(evidence):
    s, kernels = _legc_fixture()
    moved = ~s.static
    w = np.concatenate([np.abs(kernels[n]).ravel() for n in ("a", "b")])
    strength = s.partial_r2 if evidence == "partial_r2" else -np.log10(s.f_pvalue)
    tested = moved & np.isfinite(strength)
    causal = np.full(8, np.nan)
    causal[tested] = _avg_rank(strength[tested])
    mag = np.zeros(8)
    mag[moved] = _avg_rank(w[moved])
    legc_imp = imp.legc(s, evidence=evidence)(kernels)
    np.testing.assert_array_equal(_flat(legc_imp.keys, 0), moved.astype(float))
    np.testing.assert_allclose(_flat(legc_imp.keys, 1), np.where(tested, causal, mag))
    np.testing.assert_array_equal(_flat(legc_imp.keys, 2), w)
    assert legc_imp.reduce == ("any", "mean", "sumsq")
    assert legc_imp.info == {"method": "legc", "ranking": "legc", "evidence": evidence}
    rp = imp.legc_rank_product(s, evidence=evidence)(kernels)
    np.testing.assert_allclose(_flat(rp.keys, 1), mag * np.where(tested, causal, mag))
    assert rp.reduce == ("any", "mean", "sumsq")
    assert rp.info == {"method": "legc", "ranking": "legc_rank_product", "evidence": evidence}
    default = imp.legc_rank_product(s)(kernels)
    assert default.info["evidence"] == "partial_r2"
    assert imp.legc(s).__name__ == "legc" and imp.legc_rank_product(s).__name__ == (
        "legc_rank_product"
    )


def test_legc_f_pvalue_zero_and_single_tested_weight():
    s = _score_stub(layers=("a",), shapes={"a": (2, 2)}, static=np.array([False, True, True, False]),
                f_pvalue=np.array([0.0, 0.5, 0.5, np.nan]),
                partial_r2=np.array([0.4, np.nan, np.nan, np.nan]))  # fmt: skip
    kernels = {"a": np.array([[1.0, 2.0], [3.0, 4.0]])}
    for evidence in ("partial_r2", "f_pvalue"):
        key = imp.legc(s, evidence=evidence)(kernels).keys["a"][1].ravel()
        # the one tested weight is rank 1.0; the untested moved one falls back to |w|'s rank 1.0
        np.testing.assert_allclose(key, [1.0, 0.0, 0.0, 1.0])
    none_tested = _score_stub(layers=("a",), shapes={"a": (1, 2)}, static=np.array([False, False]),
                          partial_r2=np.array([np.nan, np.nan]))  # fmt: skip
    key = imp.legc(none_tested)({"a": np.array([[1.0, 3.0]])}).keys["a"][1].ravel()
    np.testing.assert_allclose(key, [0.5, 1.0])
    with pytest.raises(InvalidArgumentError) as err:
        imp.legc(s, evidence="F_PVALUE")
    assert "evidence must be 'partial_r2' or 'f_pvalue', got 'F_PVALUE'." in str(err.value)


def test_legc_protect_keys_and_alpha():
    s, kernels = _legc_fixture()
    p = s.f_pvalue[np.isfinite(s.f_pvalue)]
    m = p.size
    order = np.argsort(p)
    q_sorted = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    q = np.full(8, np.nan)
    q[np.flatnonzero(np.isfinite(s.f_pvalue))[order]] = np.minimum(q_sorted, 1.0)
    for alpha in (0.05, 0.5):
        got = imp.legc_protect(s, alpha=alpha)(kernels)
        causal = np.isfinite(q) & (q < alpha)
        np.testing.assert_array_equal(_flat(got.keys, 1), causal.astype(float))
        np.testing.assert_array_equal(_flat(got.keys, 0), (~s.static).astype(float))
        assert got.reduce == ("any", "mean", "sumsq")
        assert got.info == {"method": "legc", "ranking": "legc_protect", "alpha": alpha}
    one = _score_stub(layers=("a",), shapes={"a": (1, 1)}, static=np.array([False]),
                  f_pvalue=np.array([0.25]))  # fmt: skip
    # q == alpha is not a discovery (q < alpha)
    assert imp.legc_protect(one, alpha=0.25)({"a": np.ones((1, 1))}).keys["a"][1].item() == 0.0
    assert imp.legc_protect(s).__name__ == "legc_protect"
    for bad in (0.0, 1.0, 1.5, True, "0.1", -0.1):
        with pytest.raises(InvalidArgumentError) as err:
            imp.legc_protect(s, alpha=bad)
        assert f"alpha must be in (0, 1), got {bad!r}." in str(err.value)


def test_legc_pvalue_keys_per_weight_and_block():
    s, kernels = _legc_fixture()
    got = imp.legc_pvalue(s)(kernels)
    valid = s.degenerate == 0
    np.testing.assert_array_equal(_flat(got.keys, 0), ~valid)
    np.testing.assert_array_equal(_flat(got.keys, 1), -np.where(valid, s.pvalues, 0.0))
    assert got.reduce == ("all", "mean", "sumsq")
    assert got.info == {"method": "legc", "ranking": "legc_pvalue"}
    assert imp.legc_pvalue(s).__name__ == "legc_pvalue"
    blocks = imp.legc_pvalue(s)(kernels, block=(1, 2))
    ev = _flat(blocks.keys, 1)
    np.testing.assert_allclose(ev[valid], -np.log10(s.pvalues[valid]))
    assert np.isnan(ev[~valid]).all() and ev.dtype == np.float64
    assert blocks.info["block_score"] == "mean -log10 p over valid weights"
    mask = mask_from_importance(imp.legc_pvalue(s), kernels, 0.25, block=(1, 2))
    assert mask.info["method"] == "legc"


def test_static_magnitude_prunes_never_moved_first_then_small():
    s, kernels = _legc_fixture()
    got = imp.static_magnitude(s)(kernels)
    assert got.reduce == ("any", "sumsq") and got.info == {"method": "static_magnitude"}
    assert imp.static_magnitude(s).__name__ == "static_magnitude"
    np.testing.assert_array_equal(_flat(got.keys, 0), (~s.static).astype(float))
    np.testing.assert_array_equal(
        _flat(got.keys, 1), np.concatenate([np.abs(kernels[n]).ravel() for n in "ab"])
    )
    w = np.concatenate([np.abs(kernels[n]).ravel() for n in "ab"])
    for k in range(1, 8):
        mask = mask_from_importance(imp.static_magnitude(s), kernels, k / 8)
        pruned = ~np.concatenate([mask[n].ravel() for n in "ab"])
        order = sorted(range(8), key=lambda i: (not s.static[i], w[i], i))
        assert sorted(np.flatnonzero(pruned).tolist()) == sorted(order[:k])
    # in blocks of 2 inputs a block with one never-moved weight still moved ("any"), so the
    # smallest L2 block goes first: a[2, 1] (0.49) before a[0:2, 0] (1.25, half never moved)
    bmask = mask_from_importance(imp.static_magnitude(s), kernels, 0.25, block=(1, 2))
    assert bmask["a"].tolist() == [[True, True], [True, True], [True, False]]
    assert bmask["b"].tolist() == [[True], [True]]


def test_magnitude_and_random_scorers():
    k = {"d": np.array([[-2.0, 1.0], [0.5, -0.1]])}
    got = imp.magnitude()(k)
    assert got.reduce == ("sumsq",) and got.info == {"method": "magnitude"}
    assert imp.magnitude().__name__ == "magnitude" and imp.random().__name__ == "random"
    np.testing.assert_array_equal(got.keys["d"][0], np.abs(k["d"]))
    r = imp.random()(k)
    np.testing.assert_array_equal(r.keys["d"][0], np.random.default_rng(0).random((2, 2)))
    assert r.info == {"method": "random", "seed": 0}
    rb = imp.random(4)(k, block=(1, 2))
    assert rb.block == (1, 2) and rb.info == {"method": "random", "seed": 4}
    np.testing.assert_array_equal(rb.keys["d"][0], np.random.default_rng(4).random((1, 2)))


def test_require_register_and_get_scorer():
    s = _score_stub(layers=("a",), shapes={"a": (1, 1)})
    with pytest.raises(InvalidArgumentError) as err:
        imp.static_magnitude(s)({"a": np.ones((1, 1))})
    msg = str(err.value)
    assert "these scores have no 'static'" in msg
    assert msg.endswith("or made without it). Fix: score the history again with keras_legc.score.")
    with pytest.raises(InvalidArgumentError) as err:
        imp.get_scorer("nope")
    assert "register your own with keras_legc.importance.register." in str(err.value)
    one = _score_stub(layers=("a",), shapes={"a": (1, 1)}, static=np.array([False]),
                  f_pvalue=np.array([0.3]))  # fmt: skip
    assert imp.get_scorer("legc_protect", one, alpha=0.5)(
        {"a": np.ones((1, 1))}).info["alpha"] == 0.5  # fmt: skip
    name = "test_importance_registered_scorer"
    try:
        imp.register(name, imp.magnitude)
        assert imp.get_scorer(name)({"d": np.ones((1, 1))}).info == {"method": "magnitude"}
        with pytest.raises(InvalidArgumentError) as err:
            imp.register(name, imp.random)
        assert "or pass overwrite=True." in str(err.value)
        imp.register(name, imp.random, overwrite=True)
        assert imp.get_scorer(name)({"d": np.ones((1, 1))}).info["method"] == "random"
    finally:
        imp.SCORERS.pop(name, None)


def test_importance_validation_messages():
    with pytest.raises(InvalidArgumentError) as err:
        imp.Importance({})
    assert str(err.value) == "an Importance needs at least one layer; got none."
    with pytest.raises(InvalidArgumentError) as err:
        imp.Importance({"a": [np.ones(2)], "b": [np.ones(2), np.ones(2)]})
    assert str(err.value) == (
        "every layer of an Importance needs the same number (>= 1) of keys; got {'a': 1, 'b': 2}."
    )
    with pytest.raises(InvalidArgumentError) as err:
        imp.Importance({"a": [np.ones(2), np.ones(3)]})
    assert "the importance keys of layer 'a' have different shapes [(2,), (3,)]." in str(err.value)
