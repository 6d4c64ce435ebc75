"""legc_research.evidence.sparse_conv_speed: MobileNetV1-0.25 at 96x96x3 with its 1x1 kernels
pruned, exported float with sparse storage and timed against the dense file (--quick)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from legc_research.evidence import sparse_conv_speed as scs
from legc_research.zoo import build


@pytest.mark.parametrize("pattern", scs.PATTERNS)
def test_only_the_pointwise_kernels_are_pruned(pattern):
    model = build("mobilenet_v1_025", keras, seed=0, reference=True)
    pruned, pointwise = scs.pointwise_pruned(model, 0.8, pattern)
    assert pointwise == [f"pw{i}" for i in range(1, 14)]
    for before, after in zip(model.layers, pruned.layers, strict=True):
        for w0, w1 in zip(before.get_weights(), after.get_weights(), strict=True):
            if before.name in pointwise and w0.ndim == 4:
                kept = w1 != 0
                assert abs(1 - kept.mean() - 0.8) < 0.02  # 80% of this kernel, per layer
                np.testing.assert_array_equal(w1[kept], w0[kept])  # the rest untouched
                if pattern == "unstructured":  # magnitude: every zero is at most every kept one
                    assert np.abs(w0[~kept]).max() <= np.abs(w0[kept]).min()
            else:
                np.testing.assert_array_equal(w0, w1)


def test_quick_run_times_the_dense_and_the_sparse_files(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert scs.main(["--quick", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["pattern"], r["sparsity"]) for r in rows] == [("dense", 0.0), ("block", 0.8)]
    dense = rows[0]
    assert "DENSIFY" not in dense["ops"] and dense["export_ok"]
    for r in rows[1:]:
        assert r["export_ok"] and "DENSIFY" in r["ops"]  # sparse storage, expanded at load
        assert r["bytes"] < 0.5 * dense["bytes"]  # 80% of the 1x1 kernels (most weights) gone
        assert r["speedup"] == pytest.approx(dense["p50_ms"] / r["p50_ms"])
        assert r["pointwise_zero_share"] == pytest.approx(0.8, abs=0.02)
    assert "| block 80% | 8" in capsys.readouterr().out
    assert scs.main(["--quick", "--json", str(out)]) == 2  # never overwritten
