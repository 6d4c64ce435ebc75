"""tools/neurons_report.py --quick end to end: writes the doc, the JSON and three plots; refusals."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "neurons_report.py"


def test_quick_report_writes_doc_json_and_plots_and_refuses_to_overwrite(tmp_path, mnist_dir):
    env = {**os.environ, "LEGC_DATA_DIR": str(mnist_dir)}
    out = tmp_path / "docs"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--out-dir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "neurons.md").read_text()
    for section in ("## A. Accuracy", "## B. Cost", "## C. What it buys", "QUICK MODE"):
        assert section in md
    for png in ("mnist100", "mnist50x2", "lenet"):
        assert (out / "img" / f"neurons_{png}.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "neurons.json").read_text())
    curves = report["accuracy"]["mnist100"]["curves"]
    assert set(curves) == {
        "brute_force/iterative", "brute_force/single", "taylor2/iterative", "taylor2/single",
        "taylor1/iterative", "taylor1/single", "legc/iterative", "random/iterative",
    }  # fmt: skip
    assert len({c["accuracy"][0] for c in curves.values()}) == 1  # same starting model
    for c in report["cost"].values():
        assert c["ratio"] > 1 and c["max_rel_diff"] < 1e-6
    rows = report["lenet"]["rows"]
    assert [r["removed_pct"] for r in rows] == [0, 30, 30, 50, 50, 70, 70]
    assert all(r["verify_ok"] and r["check_ok"] for r in rows)
    assert rows[-1]["macs"] < rows[0]["macs"] and rows[-1]["tflite_bytes"] < rows[0]["tflite_bytes"]
    before = md
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert again.returncode == 2 and "--force" in again.stderr
    assert (out / "neurons.md").read_text() == before


def test_missing_data_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data-dir", str(tmp_path), "--out-dir",
         str(tmp_path / "o")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MNIST not found" in lines[0] and "Fix:" in lines[0]
    assert not (tmp_path / "o").exists()
