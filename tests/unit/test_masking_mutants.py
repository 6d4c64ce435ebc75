"""Tests that bite (issue 19): masking behaviour checked against independent computations.

Written from mutmut's surviving mutants of keras_legc/masking (docs/mutation.json): every test
states a property of the public behaviour (a value computed here by brute force, an error and
the fix it names, a provenance field) so that changing the code changes a result. Numpy only.
"""

from __future__ import annotations

import itertools
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from keras_legc._io import read_npz
from keras_legc.errors import InvalidArgumentError, MaskMismatchError
from keras_legc.masking import importance as imp
from keras_legc.masking.blocks import block_grid, block_reduce, block_structure, check_block
from keras_legc.masking.mask import Mask, shapes_of
from keras_legc.masking.policy import (
    check_sparsity,
    magnitude_mask,
    mask_from_importance,
    mask_from_ranking,
    random_mask,
)
from keras_legc.masking.schedule import PolynomialDecay, grow_mask

# ---- PolynomialDecay ------------------------------------------------------------------------


def _poly(step, final, begin, end, initial=0.0, power=3.0):
    """TF-MOT's formula, written out independently."""
    t = (step - begin) / (end - begin)
    t = 0.0 if t < 0 else 1.0 if t > 1 else t
    return final + (initial - final) * (1 - t) ** power


@pytest.mark.parametrize("step", [0, 5, 10, 37, 50, 99, 110, 200])
def test_polynomial_decay_matches_the_formula(step):
    s = PolynomialDecay(0.8, begin_step=10, end_step=110, frequency=7, initial_sparsity=0.2,
                        power=2.0)  # fmt: skip
    assert s.sparsity_at(step) == pytest.approx(_poly(step, 0.8, 10, 110, 0.2, 2.0), abs=1e-12)


def test_polynomial_decay_defaults_are_tfmot():
    s = PolynomialDecay(0.9, begin_step=0, end_step=1000)
    assert (s.frequency, s.initial_sparsity, s.power) == (100, 0.0, 3.0)
    assert s.sparsity_at(500) == pytest.approx(0.9 - 0.9 * 0.5**3)
    assert s.sparsity_at(0) == 0.0 and s.sparsity_at(1000) == pytest.approx(0.9)
    assert [t for t in range(0, 1001) if s.prunes_at(t)] == list(range(0, 1001, 100))


def test_polynomial_decay_prunes_at_begin_every_frequency_and_end():
    s = PolynomialDecay(0.5, begin_step=3, end_step=20, frequency=5)
    expected = [t for t in range(0, 40) if t == 20 or (3 <= t < 20 and (t - 3) % 5 == 0)]
    assert [t for t in range(0, 40) if s.prunes_at(t)] == expected == [3, 8, 13, 18, 20]
    one = PolynomialDecay(0.5, begin_step=0, end_step=4, frequency=1)
    assert [t for t in range(-2, 8) if one.prunes_at(t)] == [0, 1, 2, 3, 4]


def test_polynomial_decay_accepts_the_boundaries():
    PolynomialDecay(0.0, begin_step=0, end_step=1, frequency=1)
    PolynomialDecay(0.5, begin_step=np.int64(2), end_step=np.int64(3), initial_sparsity=0.5,
                    power=0.5)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"final_sparsity": 1.0}, "sparsity must be in [0, 1)"),
        ({"initial_sparsity": -0.1}, "sparsity must be in [0, 1)"),
        ({"begin_step": 1.0}, "must be integers"),
        ({"end_step": True}, "must be integers"),
        ({"frequency": 2.5}, "must be integers"),
        ({"begin_step": -1}, "need 0 <= begin_step < end_step"),
        ({"begin_step": 10, "end_step": 10}, "need 0 <= begin_step < end_step"),
        ({"begin_step": 11, "end_step": 10}, "need 0 <= begin_step < end_step"),
        ({"frequency": 0}, "frequency >= 1"),
        ({"initial_sparsity": 0.6}, "initial_sparsity must be <= final_sparsity"),
        ({"power": 0.0}, "power > 0"),
        ({"power": -1.0}, "power > 0"),
    ],
)
def test_polynomial_decay_rejects_bad_arguments(kwargs, words):
    args = {"final_sparsity": 0.5, "begin_step": 0, "end_step": 10, "frequency": 2, **kwargs}
    with pytest.raises(InvalidArgumentError) as err:
        PolynomialDecay(**args)
    assert words in str(err.value)


def test_polynomial_decay_messages_name_the_values_and_the_fix():
    with pytest.raises(InvalidArgumentError) as err:
        PolynomialDecay(0.5, begin_step=5, end_step=3, frequency=2)
    msg = str(err.value)
    assert "begin_step=5, end_step=3, frequency=2" in msg and "Fix: end_step" in msg
    assert "(epochs x steps per epoch)" in msg
    with pytest.raises(InvalidArgumentError) as err:
        PolynomialDecay(0.5, begin_step=0, end_step=3.0)
    assert "got (0, 3.0, 100)" in str(err.value)
    with pytest.raises(InvalidArgumentError) as err:
        PolynomialDecay(0.5, begin_step=0, end_step=3, power=-2)
    assert str(err.value) == (
        "initial_sparsity must be <= final_sparsity and power > 0 (masks only grow)."
    )


# ---- grow_mask ----------------------------------------------------------------------------


def _brute_grow(previous, kernels, sparsity):
    """Keep everything pruned; add the smallest |w| of the rest (layer then row-major ties)."""
    names = list(kernels)
    flat_w = np.concatenate([np.abs(kernels[n]).ravel() for n in names])
    flat_p = np.concatenate([(~previous[n]).ravel() for n in names])
    k = int(round(sparsity * flat_w.size))
    order = sorted(range(flat_w.size), key=lambda i: (not flat_p[i], flat_w[i], i))
    keep = np.ones(flat_w.size, bool)
    keep[order[:k]] = False
    out, start = {}, 0
    for n in names:
        size = kernels[n].size
        out[n] = keep[start : start + size].reshape(kernels[n].shape)
        start += size
    return out


def test_grow_mask_keeps_pruned_weights_and_adds_the_smallest():
    rng = np.random.default_rng(3)
    kernels = {"a": rng.normal(size=(6, 4)), "b": rng.normal(size=(4, 3))}
    m1 = grow_mask(None, imp.magnitude(), kernels, 0.25)
    ref1 = mask_from_importance(imp.magnitude(), kernels, 0.25)
    assert all(np.array_equal(m1[n], ref1[n]) for n in kernels)
    kernels = {n: rng.normal(size=k.shape) for n, k in kernels.items()}  # the net moved
    m2 = grow_mask(m1, imp.magnitude(), kernels, 0.5)
    expected = _brute_grow(m1, kernels, 0.5)
    assert m2.n_pruned == round(0.5 * 36)
    assert all(np.array_equal(m2[n], expected[n]) for n in kernels)
    assert all(not (m2[n] & ~m1[n]).any() for n in kernels)
    assert m2.info["method"] == "magnitude" and m2.info["sparsity"] == 0.5
    assert m2.info["per_layer"] is False


def test_grow_mask_takes_an_importance_and_lists():
    kernels = {"d": [[1.0, 2.0], [3.0, 4.0]]}
    m1 = grow_mask(None, imp.magnitude(), kernels, 0.25)
    assert m1["d"].tolist() == [[False, True], [True, True]]
    new = {"d": np.array([[1.0, 2.0], [3.0, 0.5]])}
    importance = imp.magnitude()(new)
    m2 = grow_mask(m1, importance, [("d", x) for x in [new["d"]]] and new, 0.5)
    assert m2["d"].tolist() == [[False, True], [True, False]]
    same = grow_mask(m1, imp.magnitude(), new, 0.25)  # same sparsity: nothing new
    assert same["d"].tolist() == m1["d"].tolist()


def test_grow_mask_per_layer_grows_every_layer():
    rng = np.random.default_rng(5)
    kernels = {"a": rng.normal(size=(8, 4)), "b": 10 + rng.random(size=(4, 4))}
    m1 = grow_mask(None, imp.magnitude(), kernels, 0.25, per_layer=True)
    m2 = grow_mask(m1, imp.magnitude(), kernels, 0.5, per_layer=True)
    assert m1.layer_sparsity() == {"a": 0.25, "b": 0.25}
    assert m2.layer_sparsity() == {"a": 0.5, "b": 0.5}
    assert m2.info["per_layer"] is True
    glob = grow_mask(None, imp.magnitude(), kernels, 0.5)  # global: the large layer b survives
    with pytest.raises(InvalidArgumentError) as err:
        grow_mask(glob, imp.magnitude(), kernels, 0.5, per_layer=True)
    msg = str(err.value)
    assert "bring back weights already pruned in ['a']" in msg
    assert "Fix: keep per_layer and block the same" in msg


def test_grow_mask_refuses_to_shrink_block_scores_and_other_shapes():
    kernels = {"d": np.arange(1.0, 33.0).reshape(16, 2)}
    m = grow_mask(None, imp.magnitude(), kernels, 0.5)
    with pytest.raises(InvalidArgumentError) as err:
        grow_mask(m, imp.magnitude(), kernels, 0.25)
    msg = str(err.value)
    assert "only grows: asked for sparsity 0.25 below the current 0.5000" in msg
    assert "Fix: use a non-decreasing schedule" in msg
    with pytest.raises(InvalidArgumentError) as err:
        grow_mask(m, imp.random(0), kernels, 0.75, block=(1, 4))
    msg = str(err.value)
    assert msg == (
        "grow_mask needs per-weight importance (it ranks the already pruned weights first); "
        "this scorer scored whole blocks. Fix: use a per-weight scorer."
    )
    with pytest.raises(MaskMismatchError) as err:
        grow_mask(m, imp.magnitude(), {"d": np.ones((2, 16))}, 0.75)
    assert "the mask does not match the kernels: mask layers" in str(err.value)
    with pytest.raises(InvalidArgumentError):
        grow_mask(m, imp.magnitude(), kernels, 1.0)


def test_grow_mask_in_blocks_ranks_blocks_by_l2_norm():
    # blocks (1, 8) of a (16, 4) kernel: 8 rows of one column; grid (2, 4)
    k1 = np.full((16, 4), 5.0)
    k1[:8, 0] = k1[:8, 1] = 0.1  # blocks (0, 0) and (0, 1) go first
    m1 = grow_mask(None, imp.magnitude(), {"d": k1}, 0.25, block=(1, 8))
    k2 = np.full((16, 4), 5.0)
    k2[8, 0] = 3.0  # block (1, 0): mean |w| 0.375 but L2^2 9
    k2[9:16, 0] = 0.0
    k2[8:16, 1] = 0.9  # block (1, 1): mean |w| 0.9, L2^2 6.48: the smaller norm
    m2 = grow_mask(m1, imp.magnitude(), {"d": k2}, 0.375, block=(1, 8))
    pruned = block_reduce(~m2["d"], (1, 8), "all")
    assert pruned.tolist() == [[True, True, False, False], [False, True, False, False]]


def test_grow_mask_in_blocks_keeps_whole_blocks():
    rng = np.random.default_rng(1)
    kernels = {"d": rng.normal(size=(16, 4))}
    m1 = grow_mask(None, imp.magnitude(), kernels, 0.25, block=(1, 8))
    m2 = grow_mask(m1, imp.magnitude(), {"d": rng.normal(size=(16, 4))}, 0.5, block=(1, 8))
    assert m2.sparsity == 0.5 and not (m2["d"] & ~m1["d"]).any()
    grid = block_reduce(m2["d"], (1, 8), "any") == block_reduce(m2["d"], (1, 8), "all")
    assert grid.all()  # every block is all kept or all pruned


# ---- Mask -----------------------------------------------------------------------------------


def test_keep_all_iter_and_shapes_of():
    m = Mask.keep_all({"a": (2, 3), "b": [4, 1]})
    assert m.layers == ["a", "b"] and list(m) == ["a", "b"] and len(m) == 2
    assert m["a"].dtype == bool and m["a"].all() and m.shapes == {"a": (2, 3), "b": (4, 1)}
    assert m.info == {"method": "keep_all"} and m.sparsity == 0.0
    assert Mask.keep_all(m).shapes == m.shapes
    assert shapes_of({"k": np.zeros((5, 7))}) == {"k": (5, 7)}
    assert shapes_of({"k": (np.int64(2), 3.0)}) == {"k": (2, 3)}


def test_mask_rejects_non_binary_and_names_values():
    assert Mask({"d": np.array([[0, 1]])})["d"].dtype == bool
    with pytest.raises(MaskMismatchError) as err:
        Mask({"d": np.arange(8)})
    msg = str(err.value)
    assert "such as [0, 1, 2, 3, 4]." in msg and "Fix: threshold your scores" in msg
    with pytest.raises(MaskMismatchError):
        Mask({"d": np.array(["0", "1"])})
    with pytest.raises(MaskMismatchError) as err:
        Mask({})
    assert str(err.value) == "a mask needs at least one layer; got none."
    with pytest.raises(MaskMismatchError):  # 0/1 but not numbers
        Mask({"d": np.array([0, 1], dtype=object)})


def test_summary_table_values():
    m = Mask({"first": np.array([[1, 0], [0, 0]]), "second": np.ones((3, 1))})
    lines = m.summary().split("\n")
    assert lines[0].split() == ["layer", "shape", "weights", "kept", "pruned", "%"]
    assert lines[0] == f"{'layer':<24}{'shape':>14}{'weights':>10}{'kept':>10}{'pruned %':>10}"
    assert lines[1].split() == ["first", "(2,", "2)", "4", "1", "75.00"]
    assert lines[2].split() == ["second", "(3,", "1)", "3", "3", "0.00"]
    assert lines[3].split() == ["total", "7", "4", f"{100 * 3 / 7:.2f}"]
    assert lines[3].startswith("total" + " " * 19 + " " * 14)
    assert len(lines) == 4


def test_save_load_roundtrip_and_model_check(tmp_path):
    m = Mask({"d": np.array([[1, 0], [1, 1]])}, info={"method": "manual"})
    path = m.save(tmp_path / "m.npz")
    with np.load(path) as raw:
        assert raw["layer_0"].dtype == np.uint8
    meta, _ = read_npz(path, "keras_legc.mask", 2)
    assert meta["format"] == "keras_legc.mask" and meta["version"] == 2
    assert meta["layers"] == ["d"] and meta["info"] == {"method": "manual"}
    assert meta["weights"] == [["d", "kernel"]]
    back = Mask.load(path)
    assert back["d"].tolist() == m["d"].tolist() and back.info == {"method": "manual"}
    assert Mask.load(path, model={"d": (2, 2)}).layers == ["d"]

    class Named(dict):
        name = "mynet"

    with pytest.raises(MaskMismatchError) as err:
        Mask.load(path, model=Named({"d": (3, 2)}))
    msg = str(err.value)
    assert (
        "does not match the model 'mynet'" in msg and "the model 'mynet' has {'d': (3, 2)}" in msg
    )
    assert msg.endswith("(or its history), not from another one.")
    with pytest.raises(MaskMismatchError) as err:
        Mask.load(path, model={"e": (2, 2)})
    assert "does not match the model ''" in str(err.value)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(2))
    with pytest.raises(MaskMismatchError) as err:
        Mask.load(bad)
    assert "Fix: pass a file written by Mask.save." in str(err.value)


def test_check_shapes_default_names_the_model():
    m = Mask.keep_all({"d": (2, 2)})
    with pytest.raises(MaskMismatchError) as err:
        m.check_shapes({"d": (2, 3)})
    assert "does not match the model:" in str(err.value)


# ---- blocks -------------------------------------------------------------------------------


def _brute_reduce(a, block, how):
    r, c = block
    n_in, n_out = a.shape
    gi, go = -(-n_in // c), -(-n_out // r)
    out = np.zeros((gi, go), dtype=object)
    for i, j in itertools.product(range(gi), range(go)):
        part = a[i * c : (i + 1) * c, j * r : (j + 1) * r].ravel()
        finite = [float(x) for x in part if np.isfinite(x)] if how in ("sum", "mean") else []
        out[i, j] = {
            "size": float(part.size),
            "any": bool(np.any(part.astype(bool))),
            "all": bool(np.all(part.astype(bool))),
            "sum": float(sum(finite)),
            "mean": float(sum(finite) / len(finite)) if finite else np.nan,
        }[how]
    return out


@pytest.mark.parametrize("how", ["size", "any", "all", "sum", "mean"])
@pytest.mark.parametrize("block", [(1, 1), (1, 3), (2, 2), (3, 1)])
def test_block_reduce_matches_a_loop(how, block):
    rng = np.random.default_rng(7)
    a = rng.normal(size=(7, 5))
    if how in ("any", "all"):
        a = (rng.random(size=(7, 5)) < 0.6).astype(np.int64)
        a[:3, :2] = 1  # whole blocks of ones for "all"
    else:
        a[0, :] = np.nan  # single finite entries and all-NaN blocks
        a[1:3, 0] = np.nan
        a[:, 4] = np.nan
        a[5, 4] = 2.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-NaN block must not warn
        with np.errstate(all="warn"):
            got = block_reduce(a, block, how)
    ref = _brute_reduce(a, block, how).astype(np.float64 if how not in ("any", "all") else bool)
    assert got.shape == block_grid(a.shape, block)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_block_reduce_unknown_and_block_grid_messages():
    with pytest.raises(InvalidArgumentError) as err:
        block_reduce(np.ones((4, 4)), (1, 2), "max")
    assert "unknown block aggregation 'max'; use sum, mean, any, all." in str(err.value)
    with pytest.raises(InvalidArgumentError) as err:
        block_grid((4,), (1, 2))
    msg = str(err.value)
    assert "got shape (4,). Fix: use block=None for this model." in msg
    assert block_grid((4, 4, 4), (1, 2)) == (8, 4)  # a conv kernel: (h * in, out)
    assert check_block((1, 1)) == (1, 1) and check_block([2.0, 1]) == (2, 1)
    for bad in [(1, 0), (0, 1), "12", (1.5, 2), (1, 2, 3)]:
        with pytest.raises(InvalidArgumentError):
            check_block(bad)


def test_block_structure_counts_zeros_in_all_zero_blocks():
    k = np.ones((8, 2))
    k[:4, 0] = 0.0  # one whole (1, 4) block
    k[5, 1] = 0.0  # a lone zero
    assert block_structure(k, (1, 4)) == pytest.approx(4 / 5)
    assert block_structure(np.ones((4, 4)), (1, 4)) == 1.0


# ---- scorers --------------------------------------------------------------------------------


def _scores(layers=("a", "b"), shapes=None, **flat):
    shapes = shapes or {"a": (3, 2), "b": (2, 1)}
    return SimpleNamespace(layers=list(layers), shapes=shapes, **flat)


def _legc_fixture():
    kernels = {"a": np.array([[0.5, -3.0], [1.0, 0.2], [-2.0, 0.7]]), "b": np.array([[4.0], [0.1]])}
    static = np.array([False, False, True, False, False, False, False, True])
    partial_r2 = np.array([0.3, 0.1, np.nan, np.nan, 0.9, 0.5, 0.2, np.nan])
    f_pvalue = np.array([0.001, 0.2, np.nan, np.nan, 0.5, 0.01, 0.04, np.nan])
    pvalues = np.array([0.3, 0.01, 1.0, 0.5, 0.2, 0.9, 0.04, 0.7])
    degenerate = np.array([0, 0, 1, 1, 0, 0, 0, 1])
    s = _scores(static=static, partial_r2=partial_r2, f_pvalue=f_pvalue, pvalues=pvalues,
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
    s = _scores(layers=("a",), shapes={"a": (2, 2)}, static=np.array([False, True, True, False]),
                f_pvalue=np.array([0.0, 0.5, 0.5, np.nan]),
                partial_r2=np.array([0.4, np.nan, np.nan, np.nan]))  # fmt: skip
    kernels = {"a": np.array([[1.0, 2.0], [3.0, 4.0]])}
    for evidence in ("partial_r2", "f_pvalue"):
        key = imp.legc(s, evidence=evidence)(kernels).keys["a"][1].ravel()
        # the one tested weight is rank 1.0; the untested moved one falls back to |w|'s rank 1.0
        np.testing.assert_allclose(key, [1.0, 0.0, 0.0, 1.0])
    none_tested = _scores(layers=("a",), shapes={"a": (1, 2)}, static=np.array([False, False]),
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
    one = _scores(layers=("a",), shapes={"a": (1, 1)}, static=np.array([False]),
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
    s = _scores(layers=("a",), shapes={"a": (1, 1)})
    with pytest.raises(InvalidArgumentError) as err:
        imp.static_magnitude(s)({"a": np.ones((1, 1))})
    msg = str(err.value)
    assert "these scores have no 'static'" in msg
    assert msg.endswith("or made without it). Fix: score the history again with keras_legc.score.")
    with pytest.raises(InvalidArgumentError) as err:
        imp.get_scorer("nope")
    assert "register your own with keras_legc.importance.register." in str(err.value)
    one = _scores(layers=("a",), shapes={"a": (1, 1)}, static=np.array([False]),
                  f_pvalue=np.array([0.3]))  # fmt: skip
    assert imp.get_scorer("legc_protect", one, alpha=0.5)(
        {"a": np.ones((1, 1))}).info["alpha"] == 0.5  # fmt: skip
    name = "test_masking_mutants_scorer"
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


# ---- policy -------------------------------------------------------------------------------


def test_mask_from_ranking_defaults_info_and_per_layer_shapes():
    keys = {"a": [np.array([[1.0, 2.0], [3.0, 4.0]])], "b": [np.array([[10.0, 20.0, 30.0]])]}
    glob = mask_from_ranking(keys, 0.4)
    assert glob.info == {"sparsity": 0.4, "per_layer": False}
    assert glob["a"].tolist() == [[False, False], [False, True]]  # global: round(2.8) in a
    assert glob["b"].all()
    per = mask_from_ranking(keys, 0.5, per_layer=True, info={"method": "x"})
    assert per.shapes == {"a": (2, 2), "b": (1, 3)}
    assert per.info == {"sparsity": 0.5, "per_layer": True, "method": "x"}
    assert per["b"].tolist() == [[False, False, True]]
    assert mask_from_ranking(keys, 0.0).n_pruned == 0


def test_block_mask_info_target_and_errors():
    kernels = {"d": np.array([[4.0, 1.0], [3.0, 2.0]])}
    m = mask_from_importance(imp.magnitude(), kernels, 0.25, block=(1, 1))
    assert m["d"].tolist() == [[True, False], [True, True]]
    assert m.info["sparsity"] == 0.25 and m.info["per_layer"] is False
    assert m.info["block"] == [1, 1] and m.info["reached_sparsity"] == 0.25
    assert m.info["layout"] == "(out, in): r outputs x c inputs"
    with pytest.raises(InvalidArgumentError) as err:
        mask_from_ranking({"d": [np.ones((2, 2))]}, 0.5, block=(1, 1))
    assert str(err.value) == "mask_from_ranking(block=...) needs the kernel shapes."
    with pytest.raises(InvalidArgumentError) as err:
        mask_from_ranking({"d": [np.ones((2, 2))]}, 0.5, block=(1, 2), shapes={"d": (2, 2)})
    msg = str(err.value)
    assert "block sort key for layer 'd' has shape (2, 2), expected the block grid (1, 2)." in msg


def test_ranking_keys_errors_and_block_mean_of_nan():
    k = {"d": np.ones((4, 2))}
    rb = imp.random(0)(k, block=(1, 2))
    with pytest.raises(InvalidArgumentError) as err:
        mask_from_importance(rb, k, 0.5, block=(1, 4))
    msg = str(err.value)
    assert "scored blocks of (1, 2) but block=(1, 4) was asked for." in msg
    assert msg.endswith("was asked for. Fix: ask the scorer for the same block.")
    nan_key = imp.Importance({"d": [np.array([[np.nan, 1.0], [0.5, 2.0]])]})
    with pytest.raises(InvalidArgumentError) as err:
        mask_from_importance(nan_key, {"d": np.ones((2, 2))}, 0.5)
    assert str(err.value).endswith(
        "give weights without a score a definite rank (e.g. 0 to prune them first)."
    )
    nan32 = imp.Importance({"d": [np.array([[np.nan, 1.0], [0.5, 2.0]], dtype=np.float32)]})
    with pytest.raises(InvalidArgumentError):
        mask_from_importance(nan32, {"d": np.ones((2, 2))}, 0.5)
    # a block whose mean key has no finite entry ranks as 0: pruned before a block of mean 0.5
    key = np.array([[np.nan, 0.5], [np.nan, 0.5]])
    m = mask_from_importance(imp.Importance({"d": [key]}), {"d": np.ones((2, 2))}, 0.5,
                             block=(1, 2))  # fmt: skip
    assert m["d"].tolist() == [[False, True], [False, True]]
    ints = imp.Importance({"d": [np.array([[3, 1], [2, 4]])]})
    assert mask_from_importance(ints, {"d": np.ones((2, 2))}, 0.25)["d"].tolist() == [
        [True, False], [True, True]]  # fmt: skip


def test_check_sparsity_messages_and_masks_defaults():
    assert check_sparsity(0.0) == 0.0
    with pytest.raises(InvalidArgumentError) as err:
        check_sparsity("0.5")
    assert "Fix: pass e.g. 0.8 to prune 80% of the kernel weights." in str(err.value)
    m = magnitude_mask({"d": np.arange(4.0).reshape(2, 2)}, 0.5)
    assert "block_score" not in m.info
    shapes = {"d": (6, 4)}
    assert random_mask(shapes, 0.5)["d"].tolist() == random_mask(shapes, 0.5, seed=0)[
        "d"].tolist()  # fmt: skip
    expected = np.random.default_rng(0).random((6, 4)).ravel()
    pruned = np.sort(np.argsort(expected, kind="stable")[:12])
    assert np.flatnonzero(~random_mask(shapes, 0.5)["d"].ravel()).tolist() == pruned.tolist()
