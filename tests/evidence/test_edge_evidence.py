"""tools/edge_report.py --quick: the evidence pipeline end to end (MNIST needed; skips without)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_evidence_run(tmp_path, mnist_dir):
    cmd = [sys.executable, "tools/edge_report.py", "--quick", "--out", str(tmp_path / "run"),
           "--doc", str(tmp_path / "edge.md"), "--img-dir", str(tmp_path / "img"),
           "--note", "Machine note: a test paragraph.", "--data-dir", str(mnist_dir)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = (tmp_path / "edge.md").read_text()
    assert "--quick smoke run" in doc and "on the target device" in doc
    assert "\n\nMachine note: a test paragraph.\n" in doc  # --note: its own paragraph
    assert "| lenet | block-90 | litert | float |" in doc
    assert "| lenet | unstructured-90 | litert | float |" in doc
    assert "## Target" in doc and "lenet:" in doc
    assert (tmp_path / "img" / "edge_lenet.png").read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("LEGC_DEVICE_PYTHON"):
        assert "| tflite_runtime |" in doc
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 2 and "--force" in again.stderr
