"""Masks over every weight kind, numpy side: (layer, weight) keys, the v2 file format reading v1
files, N:M (TF-MOT's ``sparsity_m_by_n``), conv blocks, ``legc_*`` scorers registered after import,
and the pruning-schedule protocol."""

from pathlib import Path

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import Mask, importance, magnitude_mask, random_mask
from keras_legc.errors import InvalidArgumentError
from keras_legc.masking.blocks import block_expand, block_grid, block_reduce
from keras_legc.masking.mask import split_key, weight_key
from keras_legc.masking.policy import m_by_n_mask

DATA = Path(__file__).resolve().parents[1] / "data"


def test_keys_name_the_layer_and_the_weight():
    m = Mask({"dense": np.ones((2, 2)), ("sep", "pointwise_kernel"): np.zeros((1, 1, 2, 2))})
    assert m.layers == ["dense", "sep/pointwise_kernel"]
    assert m.weights == [("dense", "kernel"), ("sep", "pointwise_kernel")]
    assert m["sep", "pointwise_kernel"] is m["sep/pointwise_kernel"]
    assert m["dense", "kernel"] is m["dense"]
    for layer, weight in [("a", "kernel"), ("b", "depthwise_kernel"), ("lstm", "recurrent_kernel")]:
        assert split_key(weight_key(layer, weight)) == (layer, weight)


def test_version_1_file_written_by_the_previous_release_loads():
    # tests/data/mask_v1.npz was written by Mask.save of keras_legc at format version 1.
    m = Mask.load(DATA / "mask_v1.npz")
    assert m.layers == ["hidden", "out"] and m.weights == [("hidden", "kernel"), ("out", "kernel")]
    assert m["hidden"].astype(int).tolist() == [
        [1, 1, 1, 0], [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 0]
    ]  # fmt: skip
    assert m["out"].astype(int).tolist() == [[0, 1], [1, 1], [1, 1], [1, 0]]
    assert m.info == {"method": "magnitude", "sparsity": 0.4}
    Mask.load(DATA / "mask_v1.npz", model={"hidden": (6, 4), "out": (4, 2)})


def test_version_2_round_trip_keeps_weight_keys(tmp_path):
    rng = np.random.default_rng(0)
    m = Mask(
        {
            "conv": rng.random((3, 3, 2, 4)) > 0.5,
            "sep/depthwise_kernel": rng.random((3, 3, 2, 1)) > 0.5,
        }
    )
    back = Mask.load(m.save(tmp_path / "m.npz"))
    assert back.weights == m.weights
    assert all(np.array_equal(back[k], m[k]) for k in m)


def _reference_m_by_n(w, m, n, in_axis):
    """TF-MOT's generate_m_by_n_mask, written out with loops: in every n consecutive entries along
    the input axis, zero the m smallest |w| (a short last group is zero-padded first)."""
    moved = np.moveaxis(np.abs(w), in_axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    keep = np.zeros_like(rows, dtype=bool)
    for r in range(rows.shape[0]):
        for start in range(0, rows.shape[1], n):
            group = list(rows[r, start : start + n]) + [0.0] * (n - len(rows[r, start : start + n]))
            order = np.argsort(group, kind="stable")
            for j in order[m:]:
                if start + j < rows.shape[1]:
                    keep[r, start + j] = True
    return np.moveaxis(keep.reshape(moved.shape), -1, in_axis)


@pytest.mark.parametrize(
    "shape,in_axis",
    [((8, 3), 0), ((10, 5), 0), ((3, 3, 8, 4), -2), ((3, 6, 5), -2), ((2, 2, 4, 7), -1)],
)
@pytest.mark.parametrize("m_n", [(2, 4), (1, 4), (3, 8)])
def test_m_by_n_matches_the_reference_on_random_weights(shape, in_axis, m_n):
    rng = np.random.default_rng(sum(shape) + m_n[1])
    w = rng.normal(size=shape)
    got = m_by_n_mask([np.abs(w)], m_n, in_axis)
    assert np.array_equal(got, _reference_m_by_n(w, *m_n, in_axis))
    # at most n - m kept in every group of n consecutive inputs
    moved = np.moveaxis(got, in_axis, -1).reshape(-1, shape[in_axis])
    n = m_n[1]
    for start in range(0, moved.shape[1], n):
        assert moved[:, start : start + n].sum(axis=1).max() <= n - m_n[0]


def test_magnitude_mask_m_by_n_over_every_weight_kind():
    rng = np.random.default_rng(1)
    kernels = {"dense": rng.normal(size=(8, 4)), "conv": rng.normal(size=(3, 3, 8, 2))}
    mask = magnitude_mask(kernels, sparsity_m_by_n=(2, 4))
    assert mask.sparsity == 0.5 and mask.info["sparsity_m_by_n"] == [2, 4]
    # Dense (in, out): groups of 4 rows of one column; Conv (h, w, in, out): along in.
    assert np.all(mask["dense"].reshape(2, 4, 4).sum(axis=1) == 2)
    assert np.all(mask["conv"].reshape(3, 3, 2, 4, 2).sum(axis=3) == 2)
    kept = np.abs(kernels["dense"][:4, 0])[mask["dense"][:4, 0]]
    assert kept.min() >= np.abs(kernels["dense"][:4, 0])[~mask["dense"][:4, 0]].max()


@pytest.mark.parametrize("bad", [(4, 2), (2, 2), (0, 4), "24", (2.5, 4), (1, 2, 3)])
def test_m_by_n_refuses_bad_patterns(bad):
    with pytest.raises(InvalidArgumentError, match="sparsity_m_by_n must be two integers"):
        magnitude_mask({"d": np.ones((4, 4))}, sparsity_m_by_n=bad)


def test_m_by_n_and_a_sparsity_are_refused_together():
    with pytest.raises(InvalidArgumentError, match="drop sparsity="):
        magnitude_mask({"d": np.ones((4, 4))}, 0.5, sparsity_m_by_n=(2, 4))
    with pytest.raises(InvalidArgumentError, match="give a sparsity"):
        magnitude_mask({"d": np.ones((4, 4))})


def test_conv_blocks_run_along_input_channels_as_litert_stores_them():
    rng = np.random.default_rng(2)
    k = rng.normal(size=(3, 3, 16, 4))
    assert block_grid(k.shape, (1, 16)) == (9, 4)
    mask = magnitude_mask({"conv": k}, 0.5, block=(1, 16))
    # each block is 16 consecutive input channels of one (h, w) tap and one output channel
    blocks = mask["conv"].reshape(9, 16, 4)
    assert np.all(blocks.all(axis=1) | ~blocks.any(axis=1))
    norms = np.sqrt((k.reshape(9, 16, 4) ** 2).sum(axis=1))
    assert norms[~blocks.any(axis=1)].max() <= norms[blocks.all(axis=1)].min()
    grid = block_reduce(np.ones(k.shape), (1, 16), "size")
    assert grid.shape == (9, 4) and block_expand(grid, k.shape, (1, 16)).shape == k.shape
    r = random_mask({"conv": k.shape}, 0.5, block=(1, 16))
    assert np.all(
        r["conv"].reshape(9, 16, 4).all(axis=1) | ~r["conv"].reshape(9, 16, 4).any(axis=1)
    )


def test_a_legc_scorer_registered_after_import_is_a_ranking():
    from test_block_masks import make_scores

    scores = make_scores(np.random.default_rng(3))
    importance.register("legc_test_mag", lambda s: importance.magnitude(), overwrite=True)
    try:
        assert "legc_test_mag" in importance.legc_rankings()
        m = scores.mask(sparsity=0.5, ranking="legc_test_mag")
        assert m.info["ranking"] == "legc_test_mag" and abs(m.sparsity - 0.5) < 0.01
        nm = scores.mask(sparsity_m_by_n=(2, 4), ranking="legc_pvalue")
        assert nm.sparsity <= 0.5 and nm.info["sparsity_m_by_n"] == [2, 4]
    finally:
        importance.SCORERS.pop("legc_test_mag")
    with pytest.raises(InvalidArgumentError, match="unknown ranking 'legc_test_mag'"):
        scores.mask(sparsity=0.5, ranking="legc_test_mag")


def test_schedules_follow_tfmots_protocol():
    poly = kl.PolynomialDecay(0.8, begin_step=0, end_step=10, frequency=5)
    assert poly(0) == (True, 0.0) and poly(5)[0] and not poly(6)[0] and poly(10) == (True, 0.8)
    const = kl.ConstantSparsity(0.6, begin_step=2, frequency=3)
    assert [const(s)[0] for s in range(9)] == [False, False, True, False, False, True, False,
                                               False, True]  # fmt: skip
    assert const(4)[1] == 0.6 == const.final_sparsity and const.end_step == -1
    ended = kl.ConstantSparsity(0.6, begin_step=0, end_step=4, frequency=3)
    assert [ended(s)[0] for s in range(6)] == [True, False, False, True, True, False]
    assert isinstance(poly, kl.PruningSchedule) and isinstance(const, kl.PruningSchedule)
    with pytest.raises(InvalidArgumentError):
        kl.ConstantSparsity(0.6, begin_step=-1)
    with pytest.raises(InvalidArgumentError):
        kl.ConstantSparsity(1.2, begin_step=0)
