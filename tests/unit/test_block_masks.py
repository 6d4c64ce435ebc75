"""Block-structured masks (numpy only): structure, sparsity, and each block score checked against a
plain per-block loop."""

import itertools
import warnings

import numpy as np
import pytest

from keras_legc import InvalidArgumentError, Scores, magnitude_mask, random_mask
from keras_legc.core.granger import OK
from keras_legc.masking import block_reduce, block_structure, check_block
from keras_legc.masking.blocks import block_grid

SHAPES = {"a": (64, 12), "b": (12, 5), "c": (20, 3)}  # b and c have partial last blocks


def blocks(shape, block):
    """Plain reference: the (row slice, column slice) of every block of a Keras (in, out) kernel."""
    r, c = block
    n_in, n_out = shape
    return [
        (slice(i, min(i + c, n_in)), slice(j, min(j + r, n_out)))
        for i in range(0, n_in, c)
        for j in range(0, n_out, r)
    ]


def assert_block_structure(mask, block):
    for name, keep in mask.items():
        for rows, cols in blocks(keep.shape, block):
            part = keep[rows, cols]
            assert part.all() or not part.any(), f"{name} block {rows},{cols} is mixed"


@pytest.mark.parametrize("block", [(1, 16), (4, 4), (2, 8), (3, 5)])
@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95])
def test_random_blocks_have_the_structure_and_sparsity(block, sparsity):
    mask = random_mask(SHAPES, sparsity, seed=1, block=block)
    assert_block_structure(mask, block)
    largest = block[0] * block[1]
    # The reached sparsity is within half a (full) block of the request, and reported.
    assert abs(mask.n_pruned - sparsity * mask.n_weights) <= largest / 2
    assert mask.info["reached_sparsity"] == mask.sparsity
    assert mask.info["block"] == list(block)


@pytest.mark.parametrize("block", [(1, 16), (2, 8)])
def test_per_layer_block_sparsity_in_every_layer(block):
    mask = random_mask(SHAPES, 0.8, seed=2, block=block, per_layer=True)
    assert_block_structure(mask, block)
    for name, s in mask.layer_sparsity().items():
        n = np.prod(SHAPES[name])
        assert abs(s * n - 0.8 * n) <= block[0] * block[1] / 2


def test_block_1x16_means_16_consecutive_inputs_of_one_output():
    # Keras kernel (in, out): a (1, 16) block is 16 consecutive rows of one column.
    mask = random_mask({"d": (32, 4)}, 0.5, seed=0, block=(1, 16))
    keep = mask["d"]
    assert keep.shape == (32, 4)
    for j in range(4):
        for i in (0, 16):
            assert len(set(keep[i : i + 16, j].tolist())) == 1
    # ... and not 16 consecutive columns: rows differ within some column pair somewhere.
    assert block_reduce(keep, (1, 16), "size").shape == (2, 4)


def test_partial_last_block_is_a_smaller_block():
    sizes = block_reduce(np.zeros((20, 3)), (1, 16), "size")
    assert sizes.tolist() == [[16, 16, 16], [4, 4, 4]]
    kernel = np.ones((20, 3))
    kernel[16:] = 0.01  # the partial blocks have the smallest norms
    mask = magnitude_mask({"c": kernel}, 0.2, block=(1, 16))
    # 12 weights requested: exactly the three 4-weight partial blocks.
    assert mask.n_pruned == 12 and not mask["c"][16:].any() and mask["c"][:16].all()


def test_magnitude_blocks_prune_the_smallest_l2_norms(rng):
    kernels = {n: rng.normal(size=s) for n, s in SHAPES.items()}
    block = (2, 8)
    mask = magnitude_mask(kernels, 0.6, block=block)
    assert_block_structure(mask, block)
    pruned, kept = [], []
    for n, k in kernels.items():
        for rows, cols in blocks(k.shape, block):
            norm = float(np.sqrt((k[rows, cols] ** 2).sum()))
            (kept if mask[n][rows, cols].all() else pruned).append(norm)
    assert max(pruned) <= min(kept)
    assert mask.info["block_score"] == "L2 norm"


def test_random_blocks_deterministic_per_seed():
    a, b, c = (random_mask(SHAPES, 0.7, seed=s, block=(1, 16)) for s in (5, 5, 6))
    assert all(np.array_equal(a[n], b[n]) for n in SHAPES)
    assert any(not np.array_equal(a[n], c[n]) for n in SHAPES)


def make_scores(rng, degenerate_block=True):
    layers = list(SHAPES)
    n = sum(int(np.prod(s)) for s in SHAPES.values())
    pvalues = rng.uniform(1e-12, 1.0, size=n)
    degenerate = np.zeros(n, np.int8)
    degenerate[rng.random(n) < 0.1] = 2  # scattered degenerate weights
    # Layer a is (64, 12) raveled row-major: rows 0..15 of column 0 are flat indices 0, 12, ...
    a_deg = np.zeros((64, 12), bool)
    a_deg[:16, 0] = True
    degenerate[: 64 * 12][a_deg.ravel()] = 2
    pvalues[degenerate != OK] = np.nan
    kernels = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    return Scores(
        layers=layers, shapes=SHAPES, pvalues=pvalues, degenerate=degenerate, max_lag=2,
        test="ssr_chi2", kernels=kernels,
    )  # fmt: skip


def test_legc_blocks_prune_the_least_causal_mean_evidence_first(rng):
    scores = make_scores(rng)
    block = (1, 16)
    mask = scores.mask(sparsity=0.7, block=block, ranking="legc_pvalue", per_layer=False)
    assert_block_structure(mask, block)
    assert mask.info["method"] == "legc" and "mean -log10 p" in mask.info["block_score"]
    p = scores.pvalues_by_layer()
    flat = np.split(scores.degenerate == OK, [768, 828])
    valid = {n: v.reshape(SHAPES[n]) for n, v in zip(scores.layers, flat, strict=True)}
    pruned, kept, all_degenerate_kept = [], [], []
    for n in scores.layers:
        for rows, cols in blocks(SHAPES[n], block):
            ok = valid[n][rows, cols]
            if not ok.any():
                all_degenerate_kept.append(bool(mask[n][rows, cols].all()))
                continue
            ev = float(np.mean(-np.log10(p[n][rows, cols][ok])))
            (kept if mask[n][rows, cols].all() else pruned).append(ev)
    assert max(pruned) <= min(kept) + 1e-12
    assert all_degenerate_kept == [True]  # the wholly degenerate block is pruned last: kept here
    assert abs(mask.n_pruned - 0.7 * mask.n_weights) <= 8


def test_legc_block_needs_target_mode(rng):
    scores = make_scores(rng)
    with pytest.raises(InvalidArgumentError, match="Fix: pass sparsity"):
        scores.mask(alpha=0.05, block=(1, 16))
    with pytest.raises(InvalidArgumentError, match="Fix: pass sparsity"):
        scores.mask(block=(1, 16))


@pytest.mark.parametrize("bad", [(0, 16), (1,), (1, 2, 3), "1x16", (1.5, 16), None, 16])
def test_bad_block_shapes_are_refused(bad):
    with pytest.raises(InvalidArgumentError, match="block must be two positive integers"):
        check_block(bad)
    if bad is not None:
        with pytest.raises(InvalidArgumentError, match="Fix:"):
            random_mask(SHAPES, 0.5, block=bad)


def test_block_structure_measures_how_much_of_the_zeros_are_in_blocks(rng):
    k = rng.normal(size=(64, 12))
    blocky = k * magnitude_mask({"k": k}, 0.8, block=(1, 16))["k"]
    scattered = k * magnitude_mask({"k": k}, 0.8)["k"]
    assert block_structure(blocky, (1, 16)) == 1.0
    assert block_structure(scattered, (1, 16)) < 0.5
    assert block_structure(k, (1, 16)) == 1.0  # no zeros at all: nothing unstructured


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


def test_a_block_mask_that_empties_outputs_says_so():
    from keras_legc import LegcWarning
    from keras_legc.masking import mask_from_ranking

    # a 64-input, 8-output kernel: 4 (1, 16) blocks per output; outputs 4-7 rank lowest in all
    # their blocks, so half the weights pruned empties them
    grid = block_grid((64, 8), (1, 16))
    low_outputs = np.tile(np.r_[np.full(4, 10.0), np.full(4, 1.0)], (grid[0], 1))
    with pytest.warns(LegcWarning, match=r"d: 4 of 8\).*Fix: a lower sparsity"):
        mask = mask_from_ranking({"d": [low_outputs]}, 0.5, block=(1, 16), shapes={"d": (64, 8)})
    assert mask.info["outputs_without_weights"] == {"d": 4}
    assert not np.asarray(mask["d"])[:, 4:].any() and np.asarray(mask["d"])[:, :4].all()
    # the same share of blocks taken from every output: none emptied, nothing to warn of
    by_input = np.tile(np.arange(grid[0], dtype=float)[:, None], (1, grid[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)
        mask = mask_from_ranking({"d": [by_input]}, 0.5, block=(1, 16), shapes={"d": (64, 8)})
    assert mask.info["outputs_without_weights"] == {}
    # a quarter or fewer emptied: counted, not warned
    two = low_outputs.copy()
    two[:, 6:] = 0.5  # outputs 6-7 lowest: 25% of the blocks is all of theirs
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)
        mask = mask_from_ranking({"d": [two]}, 0.25, block=(1, 16), shapes={"d": (64, 8)})
    assert mask.info["outputs_without_weights"] == {"d": 2}
