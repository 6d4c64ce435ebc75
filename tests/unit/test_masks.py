"""Mask, the ranking policy, random and magnitude baselines (numpy only)."""

import re

import numpy as np
import pytest

from keras_legc import (
    InvalidArgumentError,
    LegcWarning,
    Mask,
    MaskMismatchError,
    OutputExistsError,
    magnitude_mask,
    random_mask,
)
from keras_legc._io import read_npz
from keras_legc.masking import importance as imp
from keras_legc.masking import mask_from_ranking
from keras_legc.masking.mask import shapes_of
from keras_legc.masking.policy import check_sparsity, lamp_sparsities, mask_from_importance

SHAPES = {"a": (6, 5), "b": (5, 3)}


def test_sparsity_and_counts():
    m = random_mask(SHAPES, 0.4, seed=3)
    assert m.n_weights == 45 and m.n_pruned == 18 and m.sparsity == pytest.approx(0.4)
    assert m.shapes == SHAPES
    assert "total" in m.summary()


def test_random_is_deterministic_per_seed():
    a, b, c = (
        random_mask(SHAPES, 0.5, seed=1),
        random_mask(SHAPES, 0.5, seed=1),
        random_mask(SHAPES, 0.5, seed=2),
    )
    assert all(np.array_equal(a[n], b[n]) for n in SHAPES)
    assert any(not np.array_equal(a[n], c[n]) for n in SHAPES)


def test_magnitude_prunes_the_smallest(rng):
    kernels = {n: rng.normal(size=s) for n, s in SHAPES.items()}
    m = magnitude_mask(kernels, 0.3)
    flat = np.concatenate([np.abs(kernels[n]).ravel() for n in SHAPES])
    keep = np.concatenate([m[n].ravel() for n in SHAPES])
    assert flat[~keep].max() <= flat[keep].min()
    assert (~keep).sum() == round(0.3 * 45)


def test_per_layer_reaches_the_sparsity_in_each_layer(rng):
    kernels = {"a": rng.normal(size=(6, 5)) * 100, "b": rng.normal(size=(5, 3))}
    glob = magnitude_mask(kernels, 0.5)
    per = magnitude_mask(kernels, 0.5, per_layer=True)
    assert glob.layer_sparsity()["b"] > 0.9  # global magnitude empties the small-scale layer
    assert per.layer_sparsity() == {"a": 0.5, "b": pytest.approx(round(0.5 * 15) / 15)}


def test_ranking_uses_secondary_keys_for_ties():
    primary = {"a": np.array([1.0, 0.0, 0.0, 1.0])}
    secondary = {"a": np.array([0.0, 5.0, 2.0, 0.0])}
    m = mask_from_ranking({"a": [secondary["a"], primary["a"]]}, 0.25)
    assert m["a"].tolist() == [True, True, False, True]


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan"), "half"])
def test_sparsity_out_of_range(sparsity):
    with pytest.raises(InvalidArgumentError, match="sparsity must be"):
        random_mask(SHAPES, sparsity)


def test_mask_values_must_be_binary():
    with pytest.raises(MaskMismatchError, match="only 0 and 1"):
        Mask({"a": np.array([0, 1, 2])})
    with pytest.raises(MaskMismatchError, match="at least one layer"):
        Mask({})


def test_check_shapes_names_both_sides():
    m = random_mask(SHAPES, 0.5)
    m.check_shapes(SHAPES)
    with pytest.raises(MaskMismatchError, match="does not match"):
        m.check_shapes({"a": (6, 5), "b": (5, 4)})


def test_save_load_roundtrip_and_no_overwrite(tmp_path):
    m = random_mask(SHAPES, 0.5, seed=4)
    path = m.save(tmp_path / "m.npz")
    back = Mask.load(path)
    assert back.layers == m.layers and back.info == m.info
    assert all(np.array_equal(back[n], m[n]) for n in SHAPES)
    with pytest.raises(OutputExistsError, match="--force"):
        m.save(path)
    m.save(path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp files left behind


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(MaskMismatchError, match="not a readable keras_legc mask"):
        Mask.load(bad)
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(MaskMismatchError):
        Mask.load(tmp_path / "other.npz")


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


# ---- per_layer="lamp": LAMP's layer-adaptive sparsities ------------------------------------------


def _lamp_reference(kernels, sparsity):
    """LAMP as Lee et al. (ICLR 2021) define it, written with loops: score(u) = w_u^2 over the sum
    of w_v^2 for v at or after u in ascending |w| order; the k lowest scores (ties: layer order)
    are pruned. Returns the pruned count per layer."""
    entries = []
    for i, (name, w) in enumerate(kernels.items()):
        sq = sorted(float(v) ** 2 for v in np.ravel(w))
        for u in range(len(sq)):
            rest = sum(sq[u:])
            entries.append((sq[u] / rest if rest > 0 else 0.0, i, name))
    entries.sort(key=lambda e: (e[0], e[1]))
    k = int(round(sparsity * len(entries)))
    pruned = dict.fromkeys(kernels, 0)
    for _, _, name in entries[:k]:
        pruned[name] += 1
    return pruned


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.75, 0.9, 0.97])
@pytest.mark.parametrize("case", ["random", "scales", "ties", "zeros"])
def test_lamp_matches_the_reference(rng, sparsity, case):
    kernels = {"a": rng.normal(size=(12, 7)), "b": 0.05 * rng.normal(size=(3, 3, 4, 1)),
               "c": 30 * rng.normal(size=(9,)), "d": rng.normal(size=(2, 2))}  # fmt: skip
    if case == "ties":
        kernels = {n: np.round(k) for n, k in kernels.items()}  # many equal magnitudes
    if case == "zeros":
        kernels["a"][:6] = 0.0  # already pruned weights: score 0, pruned first
    if case == "ties" and not kernels["b"].any():
        kernels["b"][0, 0, 0, 0] = 1.0
    layer = lamp_sparsities(kernels, sparsity)
    ref = _lamp_reference(kernels, sparsity)
    assert {n: round(s * kernels[n].size) for n, s in layer.items()} == ref
    m = magnitude_mask(kernels, sparsity, per_layer="lamp")
    assert m.n_pruned == round(sparsity * m.n_weights)
    for n, w in kernels.items():  # within a layer, magnitude order
        keep = m[n]
        if keep.any() and (~keep).any():
            assert np.abs(w[~keep]).max() <= np.abs(w[keep]).min()
    assert m.info["per_layer"] == "lamp"


def test_lamp_keeps_a_weight_in_every_layer_where_global_magnitude_empties_one(rng):
    kernels = {"pw": rng.normal(size=(64, 64)), "dw": 0.01 * rng.normal(size=(3, 3, 64, 1)),
               "out": rng.normal(size=(64, 10))}  # fmt: skip
    with pytest.warns(LegcWarning, match="dw"):
        glob = magnitude_mask(kernels, 0.9)
    assert not glob["dw"].any()
    lamp = magnitude_mask(kernels, 0.99, per_layer="lamp")
    assert all(lamp[n].any() for n in kernels)
    # the last weights of all are each layer's largest: at k = n - 3 each layer keeps one
    n = sum(k.size for k in kernels.values())
    counts = lamp_sparsities(kernels, (n - 3) / n)
    assert {m: round(counts[m] * kernels[m].size) for m in kernels} == {
        m: kernels[m].size - 1 for m in kernels
    }
    assert all(
        magnitude_mask(kernels, (n - 3) / n, per_layer="lamp")[m].sum() == 1 for m in kernels
    )


@pytest.mark.parametrize("sizes", [(12, 24), (5, 1, 30), (1,)])
def test_lamp_refuses_a_sparsity_that_would_empty_a_layer(rng, sizes):
    # a tiny net (Vowel's 3-4-6 MLP: 36 kernel weights, 2 layers) at 98%: 35 would go, one per
    # layer must stay; refused with the highest sparsity that fits, which is then reached
    kernels = {f"k{i}": rng.normal(size=(s,)) for i, s in enumerate(sizes)}
    n, layers = sum(sizes), sum(1 for s in sizes if s)
    top = (n - layers) / n
    over = (n - layers + 0.6) / n  # rounds to one weight more than fits
    with pytest.raises(InvalidArgumentError, match=r"keeps at least one weight in each.*Fix: pass"):
        lamp_sparsities(kernels, over)
    with pytest.raises(InvalidArgumentError, match=r"per_layer=False"):
        magnitude_mask(kernels, over, per_layer="lamp")
    most = float(re.search(r"sparsity <= ([0-9.]+)", _refusal(kernels, over)).group(1))
    assert most <= top and round(most * n) == n - layers
    if most > 0:
        m = magnitude_mask(kernels, most, per_layer="lamp")
        assert m.n_pruned == n - layers and all(m[k].sum() == 1 for k in kernels if m[k].size)
    with pytest.warns(LegcWarning, match="prunes every kernel weight"):  # global: warned, emptied
        assert magnitude_mask(kernels, over, per_layer=False).n_pruned == round(over * n)


def _refusal(kernels, sparsity) -> str:
    with pytest.raises(InvalidArgumentError) as e:
        lamp_sparsities(kernels, sparsity)
    return str(e.value)


def test_lamp_in_blocks_reaches_each_layers_share_within_half_a_block(rng):
    kernels = {"a": rng.normal(size=(64, 8)), "b": 0.1 * rng.normal(size=(32, 4))}
    m = magnitude_mask(kernels, 0.6, block=(1, 16), per_layer="lamp")
    want = lamp_sparsities(kernels, 0.6)
    for n, s in m.layer_sparsity().items():
        assert abs(s - want[n]) * kernels[n].size <= 8
    assert m.info["per_layer"] == "lamp" and m.info["block"] == [1, 16]


def test_per_layer_values_and_lamp_without_weights_are_refused():
    kernels = {"a": np.ones((4, 4))}
    with pytest.raises(InvalidArgumentError, match=r"per_layer must be False.*'lamp'.*Fix"):
        magnitude_mask(kernels, 0.5, per_layer="uniform")
    with pytest.raises(InvalidArgumentError, match="every kernel weight is zero.*Fix"):
        magnitude_mask({"a": np.zeros((4, 4))}, 0.5, per_layer="lamp")
    with pytest.raises(InvalidArgumentError, match="random_mask has no weights' magnitudes.*Fix"):
        random_mask(SHAPES, 0.5, per_layer="lamp")
    assert magnitude_mask(kernels, 0.5, per_layer=np.bool_(True)).info["per_layer"] is True


def test_lamp_refuses_non_finite_weights_and_a_mapping_of_other_layers():
    with pytest.raises(InvalidArgumentError, match=r"\['b'\] are not all finite.*Fix"):
        magnitude_mask({"a": np.ones((2, 2)), "b": np.array([1.0, np.inf])}, 0.5, per_layer="lamp")
    keys = {"a": [np.arange(4.0)], "b": [np.arange(3.0)]}
    with pytest.raises(InvalidArgumentError, match="one sparsity per layer"):
        mask_from_ranking(keys, 0.5, per_layer={"a": 0.5})
    m = mask_from_ranking(keys, 0.5, per_layer={"a": 0.5, "b": 1 / 3})
    assert (
        m.layer_sparsity() == {"a": 0.5, "b": pytest.approx(1 / 3)}
        and m.info["per_layer"] == "lamp"
    )


EXCLUDE_KERNELS = {"conv": (3, 3, 4, 8), "dw/depthwise_kernel": (3, 3, 8, 1), "pw": (8, 16)}


@pytest.mark.parametrize("per_layer", [False, True, "lamp"])
@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_exclude_keeps_those_weights_whole_and_prunes_the_rest_as_if_alone(rng, per_layer,
                                                                           sparsity):  # fmt: skip
    # TF-MOT's way of leaving layers dense: the excluded weights are kept whole, and the others
    # get exactly the mask they would get with the excluded ones not there at all
    kernels = {k: rng.normal(size=s) for k, s in EXCLUDE_KERNELS.items()}
    got = magnitude_mask(kernels, sparsity, per_layer=per_layer, exclude=["dw"])
    alone = magnitude_mask({k: kernels[k] for k in ("conv", "pw")}, sparsity, per_layer=per_layer)
    assert got.layers == list(EXCLUDE_KERNELS) and got["dw/depthwise_kernel"].all()
    for k in ("conv", "pw"):
        np.testing.assert_array_equal(got[k], alone[k])
    assert got.info["exclude"] == ["dw/depthwise_kernel"]
    assert got.info["sparsity_of_the_rest"] == alone.sparsity
    n_rest = sum(np.prod(EXCLUDE_KERNELS[k]) for k in ("conv", "pw"))
    if per_layer is True:  # rounded in each layer
        assert got.n_pruned == sum(
            round(sparsity * np.prod(EXCLUDE_KERNELS[k])) for k in ("conv", "pw")
        )
    else:
        assert got.n_pruned == round(sparsity * n_rest)


def test_exclude_with_blocks_n_by_m_random_and_a_weight_key(rng):
    kernels = {k: rng.normal(size=s) for k, s in EXCLUDE_KERNELS.items()}
    # a depthwise kernel has no block layout (as a model's registry says): excluding it is what
    # lets the others go in blocks
    layouts = {"dw/depthwise_kernel": (2, None)}
    with pytest.raises(InvalidArgumentError, match="no block layout"):
        mask_from_importance(imp.magnitude(), kernels, 0.5, block=(1, 16), layouts=layouts)
    blocks = mask_from_importance(imp.magnitude(), kernels, 0.5, block=(1, 16), layouts=layouts,
                                  exclude="dw/depthwise_kernel")  # fmt: skip
    assert blocks["dw/depthwise_kernel"].all()
    # within half a (1, 16) block of the 416 weights not excluded
    assert abs(blocks.info["reached_sparsity"] - 0.5) <= 8 / 416
    assert blocks.info["sparsity_of_the_rest"] == blocks.info["reached_sparsity"]
    two_of_four = magnitude_mask(kernels, sparsity_m_by_n=(2, 4), exclude=["conv"])
    assert two_of_four["conv"].all() and two_of_four.layer_sparsity()["pw"] == 0.5
    drawn = random_mask({k: np.shape(v) for k, v in kernels.items()}, 0.5, seed=3, exclude=["pw"])
    assert drawn["pw"].all() and drawn.n_pruned == round(0.5 * (3 * 3 * 4 * 8 + 3 * 3 * 8))


def test_exclude_refuses_unknown_names_and_excluding_everything(rng):
    kernels = {k: rng.normal(size=s) for k, s in EXCLUDE_KERNELS.items()}
    with pytest.raises(InvalidArgumentError, match=r"exclude names \['depthwise'\].*Fix: use "):
        magnitude_mask(kernels, 0.5, exclude=["dw", "depthwise"])
    with pytest.raises(InvalidArgumentError, match="nothing left to prune"):
        magnitude_mask(kernels, 0.5, exclude=["conv", "dw", "pw"])
    # "d" is not a prefix match of "dw/...": only a whole layer name or key names a weight
    with pytest.raises(InvalidArgumentError, match=r"\['d'\]"):
        magnitude_mask(kernels, 0.5, exclude="d")
