"""The device-side runner (edge/bench.py) run as a subprocess with the real LiteRT interpreter:
collapsed outputs, size budget, runtimes, constrained profile and memory limit."""

import json
import os
import signal
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


# -- a model that crashes the interpreter in native code (--isolate) --------------------------
def forge_sparse_segments(tflite: Path, out: Path) -> Path:
    """``tflite`` (a sparse export) with one segment of its sparse kernel pointing far outside it.

    The file keeps its TFL3 header and passes the flatbuffer checks (every field is in range for
    its type), so the runner hands it to the interpreter, whose densify step reads outside the
    tensor and dies with SIGSEGV in native code (LiteRT 2.3 and tflite-runtime 2.14 alike).
    """
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite.read_bytes(), 0))
    forged = 0
    for tensor in model.subgraphs[0].tensors:
        for dim in tensor.sparsity.dimMetadata if tensor.sparsity else []:
            if dim.arraySegments is not None:
                values = list(dim.arraySegments.values)
                values[len(values) // 2] = 255  # the largest uint8 segment offset
                dim.arraySegments.values = values
                forged += 1
    assert forged, "the export holds no sparse tensor to forge"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return out


@pytest.fixture(scope="module")
def crashing(folder) -> Path:
    model = mlp()
    kernel, *rest = model.get_weights()
    # 3 of 16 input rows kept: the converter stores the kernel block-sparse (three levels of
    # sparsity metadata, blocks of 4), the layout whose forged segments crash both runtimes.
    kernel[3:] = 0.0
    model.set_weights([kernel, *rest])
    x = np.random.default_rng(3).normal(size=(8, 16)).astype("float32")
    with pytest.warns(Warning):  # unstructured sparsity: the converter adds a DENSIFY op
        export_tflite(model, folder / "sparse.tflite", sparse=True, reference_inputs=x)
    return forge_sparse_segments(folder / "sparse.tflite", folder / "forged.tflite")


def device_pythons() -> list[str]:
    """This Python (LiteRT) and the device venv's (tflite-runtime 2.14) when it is set."""
    device = os.environ.get("LEGC_DEVICE_PYTHON")
    return [sys.executable] + ([device] if device else [])


@pytest.mark.parametrize(
    "python", device_pythons(), ids=["litert", "device"][: len(device_pythons())]
)
def test_isolate_reports_a_native_crash_with_its_signal(crashing, folder, python, tmp_path):
    def run(*args):
        return subprocess.run([python, "edge/bench.py", crashing, "--reference",
                               folder / "sparse.reference.npz", "--runs", "5", *map(str, args)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip

    # The crash is real: without --isolate the runner itself dies on SIGSEGV, printing nothing.
    plain = run()
    assert plain.returncode == -signal.SIGSEGV, (plain.returncode, plain.stderr[-500:])
    assert "legc-edge" not in plain.stderr
    isolated = run("--isolate", "--json", tmp_path / "r.json")
    assert isolated.returncode == 7, (isolated.returncode, isolated.stderr[-800:])
    assert "NATIVE CRASH" in isolated.stderr and "SIGSEGV, signal 11" in isolated.stderr
    assert "Fix:" in isolated.stderr and not (tmp_path / "r.json").exists()


def test_isolate_passes_a_good_model_through(folder, tmp_path):
    out = tmp_path / "ok.json"
    proc = bench(folder / "m.tflite", "--runs", "5", "--isolate", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["isolated_first_invoke"] is True
    # A model the interpreter refuses with an ordinary error: the child exits 2, and the parent
    # reports that error as usual (exit 2, not 7).
    data = (folder / "m.tflite").read_bytes()
    (tmp_path / "half.tflite").write_bytes(data[: len(data) // 2])
    bad = bench(tmp_path / "half.tflite", "--isolate", "--runs", "5")
    assert bad.returncode == 2 and "cannot load this model" in bad.stderr, bad.stderr[-500:]


def test_help_names_every_exit_code_and_legc_bench_its_own_name():
    proc = bench("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: legc-edge")
    codes = " ".join(proc.stdout.split("exit codes:")[1].split())
    for code in range(2, 8):
        assert f"; {code} " in codes, code
    assert "7 the interpreter crashed in native code" in codes and "--isolate" in codes
    legc = subprocess.run([sys.executable, "-m", "legc_research.cli", "bench", "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert legc.returncode == 0 and legc.stdout.startswith("usage: legc bench"), legc.stdout[:200]
