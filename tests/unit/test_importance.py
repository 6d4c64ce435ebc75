"""The weight-importance seam: scorers, the one policy, and target mode's rankings."""

import warnings

import numpy as np
import pytest

from keras_legc import InvalidArgumentError, LegcWarning, Scores
from keras_legc.core.granger import CONSTANT_CAUSE, OK
from keras_legc.masking import Importance, importance, mask_from_importance, mask_from_ranking

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
    mask = scores.mask(sparsity=100 / N, ranking=ranking)
    flat = np.concatenate([np.ravel(mask[n]) for n in SHAPES])
    assert not flat[:100].any() and flat[100:].all()


def test_paper_era_ranking_keeps_degenerate_weights_last_and_collapses(rng):
    scores = _scores(rng, n_static=300)
    with pytest.warns(LegcWarning, match="no valid Granger test"):
        old = scores.mask(sparsity=0.9, ranking="legc_pvalue")
    flat = np.concatenate([np.ravel(old[n]) for n in SHAPES])
    assert flat[:300].sum() == flat.sum()  # every kept weight is a never-moved one
    assert old.info["kept_untestable"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)
        new = scores.mask(sparsity=0.9, ranking="legc")  # prunes them first
    flat = np.concatenate([np.ravel(new[n]) for n in SHAPES])
    assert not flat[:300].any() and new.info["kept_untestable"] == 0.0


def test_untestable_moved_weights_get_their_magnitude_rank_not_last(rng):
    scores = _scores(rng, untestable=60)
    big = np.abs(scores.kernels["a"]).ravel()
    keep = scores.mask(sparsity=0.5, ranking="legc")
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
