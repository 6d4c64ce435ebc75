"""Mask, the ranking policy, random and magnitude baselines (numpy only)."""

import numpy as np
import pytest

from keras_legc import (
    InvalidArgumentError,
    Mask,
    MaskMismatchError,
    OutputExistsError,
    magnitude_mask,
    random_mask,
)
from keras_legc.masking import mask_from_ranking

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
