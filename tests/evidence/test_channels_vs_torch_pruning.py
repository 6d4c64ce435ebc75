"""The Torch-Pruning comparison (legc_research.evidence.channels_vs_torch_pruning): the PyTorch twins
compute what the Keras zoo nets compute, count the same MACs, and --quick runs end to end.

Needs the evidence virtualenv (``make evidence-venv``: torch, torch-pruning 1.6.1); skipped without
it. The twins run there as a subprocess, as in the comparison itself."""

import json

import keras
import numpy as np
import pytest

import keras_legc as kl
from legc_research.datasets import FASHION_FILES, find_data_dir
from legc_research.evidence import channels_vs_torch_pruning as cvt
from legc_research.zoo import build

needs_venv = pytest.mark.skipif(
    cvt.evidence_python() is None,
    reason="needs the evidence virtualenv (torch, torch-pruning): run `make evidence-venv`",
)
FASHION = find_data_dir(required=FASHION_FILES)
CONV_NETS = ("resnet8", "ds_cnn", "mobilenet_v1_025", "lenet5")


def _randomised(net: str):
    """The zoo net with seeded weights and BatchNormalization statistics and scales far from
    their defaults (so a wrong BN copy or epsilon shows), and non-zero biases."""
    model = build(net, keras, seed=0)
    rng = np.random.default_rng(1)
    weights = []
    for w in model.weights:
        a = np.asarray(w)
        name = w.path.rsplit("/", 1)[-1]
        if name == "moving_variance":
            a = rng.uniform(0.5, 2.0, a.shape)
        elif name in ("moving_mean", "beta", "bias"):
            a = rng.normal(0.0, 0.1, a.shape)
        elif name == "gamma":
            a = rng.uniform(0.5, 1.5, a.shape)
        weights.append(a.astype(np.float32))
    model.set_weights(weights)
    return model


@needs_venv
@pytest.mark.parametrize("net", CONV_NETS)
def test_twin_equals_keras(net, tmp_path):
    """Softmax outputs of the twin and the Keras model on 32 random images (and 4 all-zero and
    all-one edge images) agree to atol 1e-5 (float32, different kernels); MACs counted by the
    twin's hooks equal kl.count_macs; Torch-Pruning's own count is recorded."""
    model = _randomised(net)
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.random((32, 28, 28, 1)), np.zeros((2, 28, 28, 1)),
                        np.ones((2, 28, 28, 1))]).astype(np.float32)  # fmt: skip
    want = np.asarray(model(x, training=False))
    got, info = cvt.twin_outputs(model, x, tmp_path)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.97  # ties on near-equal probabilities
    assert info["macs"] == kl.count_macs(model)
    # Torch-Pruning counts parameters (Keras' count adds the BN moving statistics) and also
    # counts biases, BatchNorm and pooling operations: more than keras-legc's MACs, never fewer
    assert info["params"] == sum(int(np.size(w)) for w in model.trainable_weights)
    assert info["tp_macs"] >= info["macs"]


@pytest.mark.skipif(FASHION is None, reason="needs LEGC_DATA_DIR with fashion-mnist/")
@needs_venv
def test_quick_run_resume_and_report(tmp_path):
    """--quick: both sides' cell recorded (ok), at most the target MACs, the same dense start;
    a rerun does nothing new; the doc gets the Evidence section once, labelled quick."""
    out, doc = tmp_path / "run", tmp_path / "channels.md"
    doc.write_text("# Channels\n\nintro\n\n## Limits\n\n- one\n")
    cache = tmp_path / "shared-cache"  # e.g. the edge suite's: its dense nets are not retrained
    argv = ["--quick", "--out", str(out), "--doc", str(doc), "--data-dir", str(FASHION),
            "--cache", str(cache)]  # fmt: skip
    assert cvt.main(argv) == 0
    assert any(cache.iterdir()) and not (out / "dense-cache").exists()
    results = json.loads((out / "results.json").read_text())
    cells = {c["side"]: c for c in results["cells"]}
    assert set(cells) == set(cvt.SIDES)
    for side, c in cells.items():
        assert c["status"] == "ok", c.get("error")
        assert c["pruned_macs"] <= c["target_macs"] == c["dense_macs"] // 2
        assert c["pruned_macs"] > 0.8 * c["target_macs"], side  # the target is hit, not undershot
        assert 0.0 <= c["accuracy_before"] <= 1.0 and 0.0 <= c["accuracy"] <= 1.0
    assert cells["keras_legc"]["version"] == cvt.KERAS_SIDE_VERSION
    assert cells["torch_pruning"]["macs"] == cells["keras_legc"]["dense_macs"]
    assert cells["torch_pruning"]["torch_pruning"] == "1.6.1"
    # the twin starts from the same trained weights: the same dense test accuracy
    dense_acc = results["nets"]["lenet5/seed0"]["accuracy"]
    assert 0.0 <= results["nets"]["lenet5/seed0"]["accuracy_finetuned"] <= 1.0
    assert abs(cells["torch_pruning"]["dense_accuracy"] - dense_acc) <= 1 / 500
    lat = cells["keras_legc"]["tflite"]["int8"]
    assert lat["p50_ms"] > 0 and lat["parity"] and lat["speedup_per_mac"] > 0

    before = (out / "results.json").read_text()
    assert cvt.main(argv) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["cells"] == results["cells"]
    assert len(again["invocations"]) == 2 and before != ""
    # --force redoes the selected cells and keeps every other row of the file
    other = {**results["cells"][0], "net": "resnet8", "note": "another net's cell"}
    nets = {**again["nets"], "resnet8/seed0": again["nets"]["lenet5/seed0"]}  # for the report
    (out / "results.json").write_text(
        json.dumps({**again, "nets": nets, "cells": [*again["cells"], other]})
    )
    assert cvt.main([*argv, "--force"]) == 0
    forced = json.loads((out / "results.json").read_text())
    assert other in forced["cells"] and len(forced["cells"]) == len(results["cells"]) + 1
    text = doc.read_text()
    assert text.count(cvt.MARK_START) == 1 and text.index(cvt.MARK_END) < text.index("## Limits")
    assert "Quick run, not the evidence" in text and "| lenet5 | 2x | l2 |" in text
    assert "not a verdict" in text and "Measured cost on this machine" in text


def test_keras_side_cells_of_an_older_version_are_dropped():
    cells = [
        {"side": "keras_legc", "net": "a"},  # before versions: 1
        {"side": "keras_legc", "net": "b", "version": cvt.KERAS_SIDE_VERSION - 1},
        {"side": "keras_legc", "net": "c", "version": cvt.KERAS_SIDE_VERSION},
        {"side": "torch_pruning", "net": "a"},  # the other side has no version: kept
    ]
    assert [c["net"] for c in cvt.current_cells(cells)] == ["c", "a"]


def _cell(side, seed, accuracy, before, factor=3.0):
    return {"side": side, "seed": seed, "net": "n", "factor": factor, "criterion": "l2",
            "status": "ok", "accuracy": accuracy, "accuracy_before": before,
            "tflite": {"int8": {}}}  # fmt: skip


def test_a_miss_against_torch_pruning_is_paired_by_seed_and_explained():
    # Torch-Pruning's cells arrive in another seed order: the pairs must still be by seed.
    legc = [_cell("keras_legc", s, a, 0.3) for s, a in [(0, 0.80), (1, 0.85), (2, 0.90)]]
    tp = [_cell("torch_pruning", s, a, 0.2) for s, a in [(2, 0.91), (0, 0.80), (1, 0.87)]]
    met = [_cell(side, 0, 0.5, 0.1, factor=2.0) for side in ("keras_legc", "torch_pruning")]
    lines = cvt.verdicts({"cells": legc + tp + met, "nets": {}})
    verdict = next(x for x in lines if x.startswith("- No worse than Torch-Pruning"))
    assert "1 of 2 (net, factor, criterion) met" in verdict
    # mean of (0.00, -2.00, -1.00) pp; before fine-tuning +10 pp on every seed
    assert "n 3x l2 -1.00 pp (per seed +0.00, -2.00, -1.00, paired t-test p 0.23" in verdict
    assert "before fine-tuning +10.00 pp" in verdict
    noise = next(x for x in lines if x.startswith("- Seed noise"))
    assert "reaches 2.00 pp" in noise


def test_no_miss_no_noise_line():
    cells = [_cell(side, 0, 0.5, 0.1) for side in ("keras_legc", "torch_pruning")]
    lines = cvt.verdicts({"cells": cells, "nets": {}})
    assert any(x.endswith("1 of 1 (net, factor, criterion) met") for x in lines)
    assert not any(x.startswith("- Seed noise") for x in lines)
