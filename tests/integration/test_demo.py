"""The main job, `legc demo`, end to end in quick mode (real training, export and edge runs)."""

import json
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "legc_research.cli", "demo", "--quick", "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_demo_prints_the_table_and_writes_artefacts(demo_run):
    out, proc = demo_run
    for name in ("dense", "LEGC", "random", "magnitude"):
        assert f"| {name} |" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["results"]
    assert set(rows) == {"dense", "LEGC", "random", "magnitude"}
    n_dense = rows["dense"]["nonzero_weights"]
    for name in ("LEGC", "random", "magnitude"):  # equal sparsity across the three masks
        assert rows[name]["nonzero_weights"] == round(0.2 * n_dense)
        assert rows[name]["pruned_pct"] == pytest.approx(80.0, abs=0.1)
    for row in rows.values():
        assert 0.0 <= row["accuracy"] <= 1.0 and row["p50_us"] > 0 and row["tflite_bytes"] > 0
    assert rows["dense"]["accuracy"] > 0.9  # the dense model learns the task
    for f in ("history/history.npz", "scores.npz", "mask_legc.npz", "dense.keras", "tflite/legc.tflite",
              "tflite/legc.reference.npz", "tflite/legc.bench.json", "summary.md"):  # fmt: skip
        assert (out / f).exists(), f


def test_demo_diagnoses_every_pruned_model(demo_run):
    out, proc = demo_run
    summary = json.loads((out / "summary.json").read_text())
    diag = summary["diagnostics"]
    assert set(diag["agreement"]) == {"LEGC", "random", "magnitude"}
    for name, a in diag["agreement"].items():
        assert -1.0 <= a["spearman"] <= 1.0 and 0.0 <= a["topk_overlap"] <= 1.0
        assert summary["results"][name]["shap_spearman"] == a["spearman"]
    report = json.loads((out / "diagnostics" / "report.json").read_text())
    assert report["feature_names"][0] == "mean radius"  # sklearn's names, not x0
    for f in ("report.md", "shap.png", "alpha.png"):
        assert (out / "diagnostics" / f).exists(), f
    assert "SHAP Spearman vs dense" in proc.stdout and "(reference)" in proc.stdout


def test_demo_table_without_diagnostics_has_no_shap_columns():
    from legc_research.demo import format_table

    row = {"accuracy": 0.9, "macro_f1": 0.9, "pruned_pct": 0.0, "nonzero_weights": 10,
           "tflite_bytes": 100, "p50_us": 1.0}  # fmt: skip
    assert "SHAP" not in format_table({"dense": row})
    with_shap = format_table(
        {"dense": row, "LEGC": {**row, "shap_spearman": 0.5, "shap_topk_overlap": 0.4}}
    )
    assert "| 0.500 | 0.40 |" in with_shap and "(reference)" in with_shap


def test_demo_refuses_to_overwrite(demo_run):
    out, _ = demo_run
    proc = subprocess.run(
        [sys.executable, "-m", "legc_research.cli", "demo", "--quick", "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "OutputExistsError" in proc.stderr and "--force" in proc.stderr


def test_cli_score_on_the_demo_history(demo_run, tmp_path):
    out, _ = demo_run
    proc = subprocess.run(
        [sys.executable, "-m", "keras_legc.cli", "score", str(out / "history"), "--sparsity", "0.5",
         "--out", str(tmp_path / "mask.npz")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    from keras_legc import Mask

    assert Mask.load(tmp_path / "mask.npz").sparsity == pytest.approx(0.5, abs=1e-3)
