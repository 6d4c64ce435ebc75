"""The gradual schedule's numpy side: TF-MOT's PolynomialDecay shape, masks that only grow."""

import pytest

from keras_legc import InvalidArgumentError
from keras_legc.masking import importance
from keras_legc.masking.schedule import PolynomialDecay, grow_mask


def test_polynomial_decay_matches_tfmot_formula_and_ends_exactly():
    from keras_legc.keras.flavour import tfmot

    ours = PolynomialDecay(0.95, begin_step=10, end_step=210, frequency=20, initial_sparsity=0.1)
    theirs = tfmot().sparsity.keras.PolynomialDecay(0.1, 0.95, 10, 210, power=3, frequency=20)
    for step in (10, 30, 50, 110, 190, 210, 400):
        prune, sparsity = theirs(step)
        assert abs(ours.sparsity_at(step) - float(sparsity)) < 1e-6
        if step < 210:
            assert ours.prunes_at(step) == bool(prune)
    assert ours.prunes_at(210) and not ours.prunes_at(211) and not ours.prunes_at(9)


def test_masks_only_grow_and_reach_the_final_sparsity_exactly(rng):
    kernels = {"a": rng.normal(size=(30, 7)), "b": rng.normal(size=(7, 3))}
    n = 30 * 7 + 7 * 3
    sched = PolynomialDecay(0.9, begin_step=0, end_step=100, frequency=10)
    mask = None
    for step in range(101):
        if not sched.prunes_at(step):
            continue
        kernels = {
            k: v + 0.3 * rng.normal(size=v.shape) for k, v in kernels.items()
        }  # evidence moves
        new = grow_mask(mask, importance.magnitude(), kernels, sched.sparsity_at(step))
        if mask is not None:
            assert all((new[k] <= mask[k]).all() for k in kernels)  # pruned stays pruned
        assert new.n_pruned == round(sched.sparsity_at(step) * n)
        mask = new
    assert mask.n_pruned == round(0.9 * n)


def test_grow_mask_refuses_to_shrink_or_regrow(rng):
    kernels = {"a": rng.normal(size=(10, 4)), "b": rng.normal(size=(4, 20))}
    m = grow_mask(None, importance.magnitude(), kernels, 0.5)
    with pytest.raises(InvalidArgumentError, match="only grows"):
        grow_mask(m, importance.magnitude(), kernels, 0.3)
    kernels["b"] = kernels["b"] * 100  # the global mask pruned mostly layer a
    with pytest.raises(InvalidArgumentError, match="bring back"):
        grow_mask(m, importance.magnitude(), kernels, 0.5, per_layer=True)


def test_schedule_arguments_are_checked():
    with pytest.raises(InvalidArgumentError, match="begin_step < end_step"):
        PolynomialDecay(0.5, begin_step=10, end_step=10)
    with pytest.raises(InvalidArgumentError, match="sparsity"):
        PolynomialDecay(1.5, begin_step=0, end_step=10)
    with pytest.raises(InvalidArgumentError, match="only grow"):
        PolynomialDecay(0.5, begin_step=0, end_step=10, initial_sparsity=0.6)
