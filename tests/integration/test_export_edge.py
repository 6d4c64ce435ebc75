"""Export to TFLite (verified against Keras) and the device-side runner (no TensorFlow)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import InvalidArgumentError, OutputExistsError
from keras_legc.keras.export import export_tflite
from keras_legc.keras.flavour import keras

k = keras()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pruned_model():
    k.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = k.Sequential(
        [
            k.layers.Input(shape=(10,)),
            k.layers.Dense(32, activation="relu"),
            k.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    mask = kl.magnitude_mask(model, 0.7)
    pruned = kl.prune(model, mask)
    pruned.compile("sgd", "sparse_categorical_crossentropy")
    pruned.fit(x, y, epochs=1, callbacks=kl.pruning_callbacks(), verbose=0)
    return pruned, mask, x


def litert_outputs(path, inputs):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for row in inputs:
        interp.set_tensor(inp["index"], row[None, :])
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0])
    return np.array(rows)


@pytest.mark.parametrize(
    ("quantization", "sparse", "atol"),
    [("float", False, 1e-5), ("float", True, 1e-5), ("int8", False, 0.1)],
)
def test_tflite_matches_keras(pruned_model, tmp_path, quantization, sparse, atol):
    pruned, mask, x = pruned_model
    out = tmp_path / "m.tflite"
    report = export_tflite(
        pruned, out, quantization=quantization, sparse=sparse, representative_data=x
    )
    stripped = kl.strip(pruned)
    want = stripped(x[:32]).numpy()
    got = litert_outputs(out, x[:32])
    assert np.max(np.abs(got - want)) <= atol  # stated tolerance: 1e-5 float, 0.1 full int8
    assert report["verification"]["ok"] and report["verification"]["max_abs_error"] <= atol
    assert report["nonzero_kernel_weights"] == mask.n_kept
    assert report["layer_sparsity"] == pytest.approx(mask.layer_sparsity())
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["tflite_bytes"] == out.stat().st_size
    ref = np.load(tmp_path / "m.reference.npz")
    assert ref["inputs"].shape == (16, 10) and ref["keras_outputs"].shape == (16, 3)


def test_sparse_storage_is_smaller_for_a_sparse_model(pruned_model, tmp_path):
    pruned, _, _ = pruned_model
    dense = export_tflite(pruned, tmp_path / "d.tflite")
    sparse = export_tflite(pruned, tmp_path / "s.tflite", sparse=True)
    assert sparse["tflite_bytes"] < dense["tflite_bytes"]


def test_export_never_overwrites_without_force(pruned_model, tmp_path):
    pruned, _, _ = pruned_model
    export_tflite(pruned, tmp_path / "m.tflite")
    before = (tmp_path / "m.tflite").read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        export_tflite(pruned, tmp_path / "m.tflite", quantization="dynamic")
    assert (tmp_path / "m.tflite").read_bytes() == before
    export_tflite(pruned, tmp_path / "m.tflite", quantization="dynamic", overwrite=True)


def test_export_argument_errors(pruned_model, tmp_path):
    pruned, _, _ = pruned_model
    with pytest.raises(InvalidArgumentError, match="representative data"):
        export_tflite(pruned, tmp_path / "a.tflite", quantization="int8")
    with pytest.raises(InvalidArgumentError, match="end in .tflite"):
        export_tflite(pruned, tmp_path / "a.bin")
    with pytest.raises(InvalidArgumentError, match="must have shape"):
        export_tflite(pruned, tmp_path / "a.tflite", reference_inputs=np.zeros((4, 7)))


def run(*args, check=False):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)
    if check and proc.returncode:
        raise AssertionError(proc.stdout + proc.stderr)
    return proc


@pytest.fixture(scope="module")
def exported(pruned_model, tmp_path_factory):
    pruned, _, x = pruned_model
    folder = tmp_path_factory.mktemp("export")
    pruned.save(folder / "pruned.keras")  # still wrapped: the CLI must strip it
    np.save(folder / "x.npy", x)
    proc = run("tools/export", str(folder / "pruned.keras"), str(folder / "m.tflite"),
               "-q", "float", "--sparse", "--reference-inputs", str(folder / "x.npy"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "verification on 16 inputs" in proc.stdout
    return folder


def test_cli_export_refuses_existing_output(exported):
    proc = run(
        "-m", "keras_legc.cli", "export", str(exported / "pruned.keras"), str(exported / "m.tflite")
    )
    assert proc.returncode != 0
    assert "OutputExistsError" in proc.stderr and "--force" in proc.stderr


def test_edge_bench_runs_without_tensorflow(exported):
    out = exported / "bench.json"
    proc = run(
        "edge/bench.py", str(exported / "m.tflite"), "--runs", "50", "--json", str(out), check=True
    )
    assert "outputs match the reference" in proc.stdout
    result = json.loads(out.read_text())
    assert result["tensorflow_imported"] is False
    assert result["check"]["ok"] and result["latency"]["p50_ms"] > 0
    assert result["model_bytes"] == (exported / "m.tflite").stat().st_size
    assert result["peak_rss_bytes"] > 0
    # The JSON is never overwritten silently.
    assert (
        run(
            "edge/bench.py", str(exported / "m.tflite"), "--runs", "5", "--json", str(out)
        ).returncode
        == 2
    )


def test_edge_bench_detects_wrong_outputs(exported, tmp_path):
    ref = dict(np.load(exported / "m.reference.npz"))
    ref["keras_outputs"] = (
        ref["keras_outputs"] + 0.01
    )  # what a runtime with wrong results looks like
    np.savez(tmp_path / "wrong.npz", **ref)
    proc = run(
        "edge/bench.py",
        str(exported / "m.tflite"),
        "--reference",
        str(tmp_path / "wrong.npz"),
        "--runs",
        "5",
    )
    assert proc.returncode == 3
    assert "OUTPUT MISMATCH" in proc.stderr


def test_edge_bench_budget(exported):
    proc = run("edge/bench.py", str(exported / "m.tflite"), "--runs", "20", "--budget-ms", "1e-9")
    assert proc.returncode == 4 and "OVER BUDGET" in proc.stderr
    assert (
        run(
            "edge/bench.py", str(exported / "m.tflite"), "--runs", "20", "--budget-ms", "1000"
        ).returncode
        == 0
    )


def test_edge_bench_bad_inputs(exported, tmp_path):
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    proc = run("edge/bench.py", str(tmp_path / "junk.tflite"))
    assert proc.returncode == 2 and "not a TFLite model" in proc.stderr
    np.savez(
        tmp_path / "other.npz",
        inputs=np.zeros((2, 5), np.float32),
        keras_outputs=np.zeros((2, 3)),
        atol=0.1,
    )
    proc = run(
        "edge/bench.py", str(exported / "m.tflite"), "--reference", str(tmp_path / "other.npz")
    )
    assert proc.returncode == 2 and "belongs to another model" in proc.stderr


def _imported_modules(path):
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_layering_library_and_edge_runner_do_not_import_each_other():
    """The library verifies exports with its own runner; edge/bench.py stays one copyable file."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(p.relative_to(root))
        for p in (root / "keras_legc").rglob("*.py")
        if {"legc_edge", "edge", "legc_research", "tools"} & _imported_modules(p)
    ]
    assert offenders == []
    forbidden = {"keras_legc", "legc_research", "tensorflow", "tf_keras", "keras", "scipy"}
    assert not forbidden & _imported_modules(root / "edge" / "bench.py")


def test_library_and_edge_runner_judge_outputs_alike():
    """edge/bench.py keeps its own copy of the output rule (it stays one copyable file): export's
    verification and the device check must pass and refuse the same outputs."""
    from legc_edge import bench

    from keras_legc.keras import tflite_runner

    rng = np.random.default_rng(11)
    for trial in range(200):
        shape = [(16, 10), (8, 2), (7, 3), (9, 1), (5, 2, 2)][trial % 5]
        want = rng.random(shape)
        got = want + rng.normal(0, [0.002, 0.02, 0.2][trial % 3], size=shape)
        if trial % 4 == 0:
            got = got[:, ::-1]
        args = [(0.1, None), (0.1, 0.025), (0.5, 0.05)][trial % 3]
        assert tflite_runner.judge_outputs(want, got, *args) == bench.judge_outputs(
            want, got, *args
        )


def test_cli_export_hints_sparse_and_prints_no_converter_chatter(pruned_model, exported):
    """A pruned model exported without --sparse: a hint with the size --sparse gives (checked
    against a real --sparse export); sparsity over all parameters next to the Dense kernels';
    no converter log lines (int8 prints `fully_quantize: 0, ...` without the filter); warnings as
    one clean line."""
    legc = ("-m", "keras_legc.cli", "export", str(exported / "pruned.keras"))
    out = exported / "int8.tflite"
    proc = run(*legc, str(out), "-q", "int8", "--representative-data", str(exported / "x.npy"))
    assert proc.returncode == 0, proc.stderr
    v = json.loads(out.with_suffix(".json").read_text())["verification"]  # int8: the mean rule
    assert v["rule"] == "mean" and v["mean_atol"] == 0.025 * v["reference_scale"]
    assert (
        f"mean |tflite - keras| = {v['mean_abs_error']:.3g} (tolerance {v['mean_atol']:.3g})"
        in (proc.stdout)
    ), proc.stdout
    assert "fully_quantize" not in proc.stderr and "W0000" not in proc.stderr, proc.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    weights = [np.asarray(w) for w in kl.strip(pruned_model[0]).get_weights()]
    n, nonzero = sum(w.size for w in weights), sum(int(np.count_nonzero(w)) for w in weights)
    assert (report["parameters"], report["nonzero_parameters"]) == (n, nonzero)
    assert f"{100 * (1 - nonzero / n):.1f}% of all {n:,} parameters zero; Dense kernels " in (
        proc.stdout
    )
    dense = run(*legc, str(exported / "dense.tflite"))
    sparse = run(*legc, str(exported / "sparse.tflite"), "--sparse")
    assert dense.returncode == 0 == sparse.returncode, dense.stderr + sparse.stderr
    size = (exported / "sparse.tflite").stat().st_size
    dense_size = (exported / "dense.tflite").stat().st_size
    assert size < dense_size
    assert f"--sparse stores them sparsely: {size} bytes instead of {dense_size}." in dense.stdout
    assert "--sparse stores" not in sparse.stdout
    # a warning prints as one clean line: its class and message, no source location
    warned = [line for line in sparse.stderr.splitlines() if "Warning" in line]
    assert warned and all(line.startswith("LegcWarning: ") for line in warned), sparse.stderr
    assert ".py:" not in sparse.stderr and "warnings.warn" not in sparse.stderr


def test_cli_export_keeps_a_failed_tflite_aside_and_exits_3(exported):
    from click.testing import CliRunner

    from keras_legc.cli import main

    out = exported / "f16.tflite"
    args = ["export", str(exported / "pruned.keras"), str(out), "-q", "float16"]
    done = CliRunner().invoke(main, [*args, "--tolerance", "1e-9"])  # float16 cannot meet it
    assert done.exit_code == 3, done.output
    assert not out.exists() and out.with_suffix(".failed.tflite").exists()
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["tflite"] == "f16.failed.tflite" and "Fix:" in report["verification"]["failure"]
    assert f"wrote {out.with_suffix('.failed.tflite')}" in done.output
    assert f"OVER TOLERANCE: {out} not written" in done.output
    assert "given)" in done.output and report["verification"]["tolerance_given"] is True
    error = report["verification"]["max_abs_error"]
    # the user's tolerance decides, and goes into the reference file the device check reads
    passed = CliRunner().invoke(main, [*args, "--tolerance", str(2 * error), "--force"])
    assert passed.exit_code == 0 and out.exists(), passed.output
    atol = float(np.load(out.with_suffix(".reference.npz"))["atol"])
    scale = json.loads(out.with_suffix(".json").read_text())["verification"]["reference_scale"]
    assert atol == pytest.approx(2 * error * scale, rel=1e-6)
    refused = CliRunner().invoke(main, [*args, "--tolerance", "0", "--force"])
    assert refused.exit_code == 2 and "tolerance must be a finite number > 0" in refused.output
