"""The device-side runner (edge/bench.py) run as a subprocess with the real LiteRT interpreter:
collapsed outputs, size budget, runtimes, constrained profile and memory limit."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_legc.keras.export import export_tflite
from keras_legc.keras.flavour import keras

k = keras()
ROOT = Path(__file__).resolve().parents[2]


def bench(*args):
    return subprocess.run(
        [sys.executable, "edge/bench.py", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


def mlp(n_in=16, hidden=32, n_out=4, seed=0):
    k.utils.set_random_seed(seed)
    return k.Sequential(
        [
            k.layers.Input(shape=(n_in,)),
            k.layers.Dense(hidden, activation="relu"),
            k.layers.Dense(n_out),
        ]
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edge")
    model = mlp()
    x = np.random.default_rng(1).normal(size=(40, 16)).astype("float32")
    export_tflite(model, folder / "m.tflite", reference_inputs=x)
    # A model whose outputs are constant (zero kernels: the bias only), like a runtime that
    # computes near-all-zero outputs; and a reference that looks like a small-output model.
    flat = mlp()
    flat.set_weights([np.zeros_like(w) if w.ndim == 2 else w for w in flat.get_weights()])
    export_tflite(flat, folder / "flat.tflite", reference_inputs=x, allow_constant_output=True)
    ref = dict(np.load(folder / "flat.reference.npz"))
    spread = np.random.default_rng(2).normal(scale=0.02, size=ref["keras_outputs"].shape)
    ref["keras_outputs"] = (ref["keras_outputs"] + spread).astype(np.float32)
    np.savez(folder / "small_spread.npz", **ref)
    return folder


def test_collapsed_outputs_fail_even_within_the_absolute_tolerance(folder):
    ref = np.load(folder / "small_spread.npz")
    got_vs_want = np.abs(
        np.load(folder / "flat.reference.npz")["keras_outputs"] - ref["keras_outputs"]
    )
    ref_atol = float(ref["atol"])
    # Float tolerance 1e-4 would flag this too; use a loose int8-like tolerance to isolate the
    # collapse check.
    loose = dict(ref)
    loose["atol"] = np.float64(0.1)
    np.savez(folder / "loose.npz", **loose)
    assert got_vs_want.max() < 0.1 and ref_atol < 0.1
    proc = bench(folder / "flat.tflite", "--reference", folder / "loose.npz", "--runs", "5",
                 "--json", folder / "flat.bench.json")  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "OUTPUT MISMATCH" in proc.stderr and "collapsed" in proc.stderr
    check = json.loads((folder / "flat.bench.json").read_text())["check"]
    assert check["collapsed"] and check["max_abs_error"] <= check["atol"] and not check["ok"]


def test_size_budget(folder):
    size_kib = (folder / "m.tflite").stat().st_size / 1024
    over = bench(folder / "m.tflite", "--runs", "5", "--budget-kb", f"{size_kib * 0.9:.3f}")
    assert over.returncode == 4 and "OVER BUDGET" in over.stderr and "KiB" in over.stderr
    ok = bench(folder / "m.tflite", "--runs", "5", "--budget-kb", f"{size_kib * 1.1:.3f}")
    assert ok.returncode == 0, ok.stderr
    # A wrong output outranks a budget: exit 3, not 4.
    both = bench(folder / "flat.tflite", "--reference", folder / "small_spread.npz", "--runs",
                 "5", "--budget-kb", "0.001")  # fmt: skip
    assert both.returncode == 3


def test_result_fields_and_export_metadata(folder):
    out = folder / "full.json"
    proc = bench(folder / "m.tflite", "--runs", "30", "--warmup", "7", "--constrained",
                 "--runtime", "litert", "--json", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    lat = r["latency"]
    assert r["runtime"] == "litert" and r["threads"] == 1 and lat["warmup"] == 7
    assert lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    assert lat["throughput_per_s"] == pytest.approx(1000 / lat["mean_ms"])
    assert lat["first_invoke_ms"] > 0 and r["load_ms"] > 0 and r["peak_rss_bytes"] > 2**20
    assert r["constraints"]["threads"] == 1 and "pinned_core" in r["constraints"]
    assert r["export"]["quantization"] == "float" and r["export"]["sparsity"] == 0.0
    assert r["tensorflow_imported"] is False


def test_runtime_choices(folder):
    have_tflite_runtime = subprocess.run(
        [sys.executable, "-c", "import tflite_runtime.interpreter"], capture_output=True
    ).returncode == 0  # fmt: skip
    proc = bench(folder / "m.tflite", "--runs", "5", "--runtime", "both")
    if have_tflite_runtime:
        assert proc.returncode == 0
    else:
        assert proc.returncode == 2
        assert "tflite_runtime, which is not installed" in proc.stderr and "Fix:" in proc.stderr
    proc = bench(folder / "m.tflite", "--runtime", "nope")
    assert proc.returncode == 2  # argparse refuses it


def test_pin_core_must_be_allowed(folder):
    import os

    bad = max(os.sched_getaffinity(0)) + 1000
    proc = bench(folder / "m.tflite", "--runs", "5", "--pin-core", bad)
    assert proc.returncode == 2 and "is not a core this process may use" in proc.stderr


def test_memory_limit(folder, tmp_path):
    tiny = bench(folder / "m.tflite", "--runs", "5", "--memory-limit-mb", "1")
    assert tiny.returncode == 5 and "already maps" in tiny.stderr and "Fix:" in tiny.stderr
    # Measure what the runner maps before loading, then allow it ~2 MB more than that: a model of
    # ~3.2 MB of weights cannot be loaded.
    probe = bench(folder / "m.tflite", "--runs", "5", "--memory-limit-mb", "100000",
                  "--json", tmp_path / "probe.json")  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    before = json.loads((tmp_path / "probe.json").read_text())["constraints"]
    big = mlp(n_in=784, hidden=1024, n_out=10)
    export_tflite(big, tmp_path / "big.tflite")
    proc = bench(tmp_path / "big.tflite", "--runs", "5", "--memory-limit-mb",
                 f"{before['address_space_before_mb'] + 2:.0f}")  # fmt: skip
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "MEMORY LIMIT" in proc.stderr and "raise --memory-limit-mb" in proc.stderr
