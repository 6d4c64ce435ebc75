"""tools/channels_timing.py --quick (the pass times in docs/channels.md): one JSON line for the
MLPerf Tiny DS-CNN, whose MACs equal the hand count, pruned 30% in seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_timing_of_the_ds_cnn():
    done = subprocess.run([sys.executable, "tools/channels_timing.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    # conv 10x4 stride 2 on 49x10 -> 25x5 positions; 4 x (depthwise 3x3 + pointwise 64x64); Dense
    positions = 25 * 5
    hand = positions * 10 * 4 * 64 + 4 * positions * (3 * 3 * 64 + 64 * 64) + 64 * 12
    assert row["model"] == "ds_cnn" and row["macs"] == hand == 2_656_768
    assert row["macs_after"] < 0.8 * hand and row["params_after"] < row["params"]
    assert 0 < row["total_s"] < 60
