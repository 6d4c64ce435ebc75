"""A mask that prunes every kernel weight of a layer disconnects the net: Scores.mask says so."""

import warnings

import numpy as np
import pytest

from keras_legc import LegcWarning, Scores, magnitude_mask
from keras_legc.core.granger import OK

SHAPES = {"a": (20, 10), "b": (10, 2)}


def _scores(seed=0):
    """Layer a: strongly causal (p <= 1e-3); layer b: uniformly non-causal (p >= 0.5)."""
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(1e-9, 1e-3, 200), rng.uniform(0.5, 1.0, 20)])
    return Scores(
        layers=list(SHAPES), shapes=SHAPES, pvalues=p, degenerate=np.full(220, OK, np.int8),
        max_lag=2, test="ssr_chi2", kernels={k: rng.normal(size=s) for k, s in SHAPES.items()},
    )  # fmt: skip


def test_global_ranking_that_empties_a_layer_warns_and_records_it():
    scores = _scores()
    with pytest.warns(
        LegcWarning, match=r"every kernel weight of layer\(s\) \['b'\].*per_layer=True"
    ):
        mask = scores.mask(
            sparsity=0.2, ranking="legc_pvalue", per_layer=False
        )  # 44 weights: all 20 of b first (highest p), 24 of a
    assert mask.info["empty_layers"] == ["b"] and not mask["b"].any()
    with pytest.warns(LegcWarning, match=r"\['b'\].*higher alpha"):
        assert scores.mask(alpha=0.05).info["empty_layers"] == ["b"]


def test_no_warning_when_every_layer_keeps_weights():
    scores = _scores()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)
        per_layer = scores.mask(sparsity=0.2, per_layer=True, ranking="legc_pvalue")
        small = scores.mask(
            sparsity=0.05, ranking="legc_pvalue", per_layer=False
        )  # 11 weights, all from b: 9 of b's 20 stay
    assert per_layer.info["empty_layers"] == [] and small.info["empty_layers"] == []
    assert per_layer["b"].mean() == pytest.approx(0.8)


def test_global_magnitude_that_empties_a_layer_warns_at_the_callers_line():
    # a depthwise-like layer of small weights beside larger ones: global magnitude at 75% takes
    # all of it (the edge suite's DS-CNN collapsed this way), per layer it keeps a quarter
    rng = np.random.default_rng(0)
    kernels = {"dw": rng.uniform(-0.01, 0.01, (3, 3, 1, 8)), "pw": rng.normal(size=(1, 1, 8, 64))}
    with pytest.warns(
        LegcWarning, match=r"\['dw'\].*depthwise kernels\)\. Fix: per_layer='lamp'"
    ) as w:
        mask = magnitude_mask(kernels, 0.75)
    assert not mask["dw"].any() and w[0].filename == __file__
    assert "empty_layers" not in mask.info  # magnitude masks' files are unchanged
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)
        per_layer = magnitude_mask(kernels, 0.75, per_layer=True)
        magnitude_mask(kernels, 0.1)  # 58 of 584 weights, all from dw: 14 of its 72 stay
    assert per_layer["dw"].mean() == pytest.approx(0.25)
