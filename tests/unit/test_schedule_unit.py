"""keras_legc.masking.schedule without TensorFlow: ``PolynomialDecay`` against TF-MOT's formula
written out independently, and ``grow_mask`` against a brute-force regrowth (numpy only; the
schedule driving real training is tests/integration/test_schedule.py)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_legc.errors import InvalidArgumentError, MaskMismatchError
from keras_legc.masking import importance as imp
from keras_legc.masking.blocks import block_reduce
from keras_legc.masking.policy import (
    mask_from_importance,
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
