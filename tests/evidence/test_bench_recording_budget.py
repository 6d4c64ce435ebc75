"""tools/bench_recording_budget.py (the recording overheads in docs/performance.md): one round on
LeNet-5 with Keras 3, unit recording and the empty per-step hook, and its --table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from legc_research.datasets import find_data_dir

ROOT = Path(__file__).resolve().parents[2]
MNIST = find_data_dir(required=("mnist/t10k-images-idx3-ubyte.gz",))


@pytest.mark.skipif(MNIST is None, reason="needs the MNIST test set ($LEGC_DATA_DIR)")
def test_one_round_on_lenet5_with_unit_recording_and_its_table(tmp_path):
    out = tmp_path / "lenet5.json"
    cmd = [sys.executable, "tools/bench_recording_budget.py", "--json", str(out), "--rounds", "1",
           "--arch", "lenet5", "--flavour", "keras3", "--epochs", "1",
           "--configs", "plain,batch_hook,units_every_step", "--data-dir", str(MNIST)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["arch"] == "lenet5" and result["flavour"] == "keras3"
    units = next(r for r in result["runs"] if r["config"] == "units_every_step")
    # 8,000 images / batch 32 = 250 steps, window 50 and overlap 0.1: a window every 45 steps
    assert units["optimizer_steps"] == 250 and units["every"] == 1 and units["n_windows"] == 5
    assert units["n_weights"] == 6 + 16 + 120 + 84 + 10  # one series per unit, not per weight
    hook = next(r for r in result["runs"] if r["config"] == "batch_hook")
    assert hook["optimizer_steps"] == 250 and "every" not in hook  # trained, nothing recorded
    for run in result["runs"]:  # the fit up to the last on_train_end, within the whole fit
        assert 0 < run["fit_to_train_end_s"] <= run["fit_s"]
    table = subprocess.run([sys.executable, "tools/bench_recording_budget.py", "--table", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if "units_every_step" in x)
    assert line.startswith("| lenet5 (keras3, 1) |") and "1/5" in line
