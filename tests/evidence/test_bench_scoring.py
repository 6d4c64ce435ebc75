"""tools/bench_scoring.py --quick end to end: it runs, writes the five sections, and its checks hold."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "bench_scoring.py"


def _positive(section: dict, *keys: str) -> None:
    for key in keys:
        value = section[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, mnist_dir):
    data = mnist_dir
    out = tmp_path_factory.mktemp("bench") / "b.json"
    env = {**os.environ, "LEGC_DATA_DIR": str(data)}
    # --keep: the rerun test resumes from this run's saved measurements instead of a second run
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--work-dir",
         str(out.parent / "work"), "--keep"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc, out, env


def test_quick_benchmark_writes_five_sections(bench):
    report, proc, out, _ = bench
    sec = report["sections"]
    assert set(sec) == {
        "recording_overhead", "scoring_time", "granger_speedup", "lyapunov_speedup", "peak_rss",
    }  # fmt: skip
    o = sec["recording_overhead"]
    _positive(o, "fit_s_without_recorder", "fit_s_with_recorder", "ratio", "n_windows")
    _positive(o["recorder_timings_s"], "snapshot_s", "lyapunov_s", "validation_s")
    assert o["n_windows"] >= 6
    assert o["same_initial_weights"] is True
    c = o["convnet"]
    _positive(c, "fit_s_without_recorder", "fit_s_with_recorder", "ratio", "n_windows")
    assert c["same_initial_weights"] is True
    # every prunable weight: both Conv2D kernels and the Dense ones
    assert c["n_weights_recorded"] == 3 * 3 * 1 * 8 + 3 * 3 * 8 * 16 + 5 * 5 * 16 * 64 + 64 * 10

    s = sec["scoring_time"]
    _positive(s, "le_offline_s", "granger_score_s", "total_s", "n_weights", "n_windows")
    assert s["total_s"] == pytest.approx(s["le_offline_s"] + s["granger_score_s"])
    assert s["le_streaming_equals_offline"] is True and s["le_n_values_differing"] == 0

    g = sec["granger_speedup"]
    _positive(g, "statsmodels_s_per_weight", "batched_full_s_per_weight", "speedup_vs_full_batch")
    _positive(g, "batched_sample_s_per_weight", "n_compared")
    assert g["n_statsmodels_failed"] == 0
    assert g["n_compared"] + g["n_degenerate_in_sample"] == g["n_sample"]
    assert math.isfinite(g["max_abs_dp"]) and g["max_abs_dp"] <= 1e-9
    assert g["score_pvalues_equal_granger_test"] is True
    r = g["random"]
    _positive(r, "statsmodels_s_per_series", "batched_s_per_series", "speedup")
    _positive(r, "numpy_fallback_s_per_series")
    assert r["n_degenerate"] == 0 and r["numpy_fallback_identical"] is True
    assert r["max_abs_dp"] <= 1e-9

    ly = sec["lyapunov_speedup"]
    _positive(ly, "reference_s_per_window", "vectorised_s_per_window", "speedup")
    assert ly["identical"] is True and ly["reference_equals_streaming"] is True
    r = ly["random"]
    _positive(r, "reference_s_per_window", "kernel_s_per_window", "speedup", "first_call_s")
    assert r["identical"] is True and r["numpy_fallback_identical"] is True

    mem = sec["peak_rss"]
    assert [r["multiple"] for r in mem["runs"]] == [1, 2]
    for r in mem["runs"]:
        _positive(r, "fit_rss_mib_without_recorder", "fit_rss_mib_with_recorder", "scoring_rss_mib")
    assert mem["runs"][1]["n_windows"] > mem["runs"][0]["n_windows"]

    for key in ("platform", "python", "tensorflow", "numpy"):
        assert report["machine"][key]
    assert "--quick" in report["command"] and report["date"]
    assert "1. Recording overhead" in proc.stdout and "5. Peak RSS" in proc.stdout
    assert str(out.resolve()) in proc.stdout


def test_a_rerun_resumes_from_the_saved_measurements(bench, tmp_path):
    # A run that was interrupted keeps its finished measurements, and the same command reuses
    # them: the module's run kept its work folder (--keep); one measurement is taken out of it.
    _, _, out, env = bench
    work = out.parent / "work"
    saved = sorted(p.name for p in work.glob("*.out.json"))
    assert "kernels.out.json" in saved and "base_1x.out.json" in saved
    (work / "kernels.out.json").unlink()  # as if interrupted during that measurement
    cmd = [sys.executable, str(SCRIPT), "--quick", "--json", str(tmp_path / "r2.json"),
           "--work-dir", str(work)]  # fmt: skip
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads((tmp_path / "r2.json").read_text())
    assert sorted(report["reused_measurements"]) == sorted(
        name.removesuffix(".out.json") for name in saved if name != "kernels.out.json"
    )
    assert "reusing the result saved" in again.stderr
    assert not work.exists()  # a complete run deletes its work folder (no --keep)


def test_refuses_to_overwrite_the_json(bench):
    _, _, out, env = bench
    before = out.read_text()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "already exists" in proc.stderr and "--force" in proc.stderr
    assert out.read_text() == before


def test_missing_data_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data-dir", str(tmp_path), "--json",
         str(tmp_path / "b.json")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MNIST not found" in lines[0]
    assert not (tmp_path / "b.json").exists()
