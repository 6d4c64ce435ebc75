"""Export of Keras 3 models to TFLite (TensorFlow backend in-process, JAX backend in a subprocess),
checked against the Keras outputs with LiteRT directly, the CLI, and the edge runner on the result."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.errors import CollapsedModelError
from keras_legc.keras.export import TOLERANCE, export_tflite
from keras_legc.keras.saving import keras3
from tests import catalogue as C

ROOT = Path(__file__).resolve().parents[2]
DEVICE_PYTHON = os.environ.get("LEGC_DEVICE_PYTHON")
# Float export: the same float32 graph, so outputs agree to rounding (measured ~1e-7 here).
FLOAT_ATOL = 1e-5

BUILD = """
def build(k, seed=0, sparsity=0.9):
    '''A 64-64-8 MLP whose kernels are zero in (1 output x 16 inputs) blocks, 90% of them.'''
    import numpy as np

    k.utils.set_random_seed(seed)
    model = k.Sequential([k.Input((64,)), k.layers.Dense(64, activation="relu"),
                          k.layers.Dense(8)], name="k3mlp")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        w, b = (np.asarray(v) for v in layer.get_weights())
        blocks = np.abs(w.reshape(w.shape[0] // 16, 16, w.shape[1])).sum(axis=1)
        keep = blocks >= np.quantile(blocks, sparsity)
        w = w * np.repeat(keep, 16, axis=0)
        layer.set_weights([w, b + rng.normal(0, 0.1, b.shape).astype("float32")])
    return model
"""
exec(BUILD)  # the same builder runs in the JAX subprocess below


def litert(path, x):
    """Outputs of the .tflite at ``path`` on rows ``x`` (LiteRT, batch 1), independently of export."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for row in x:
        interp.set_tensor(inp["index"], row[None, :].astype(inp["dtype"]))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0])
    return np.array(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def model_and_data():
    k = keras3()
    if k.backend.backend() != "tensorflow":
        pytest.skip("this process runs Keras 3 on another backend; the JAX test covers it")
    x = np.random.default_rng(1).normal(size=(300, 64)).astype("float32")
    return build(k), x  # noqa: F821 - defined by exec(BUILD)


@pytest.mark.parametrize(
    ("quantization", "sparse"),
    [("float", False), ("dynamic", False), ("int8", False), ("float", True)],
)
def test_keras3_tf_backend_export_matches_keras(model_and_data, tmp_path, quantization, sparse):
    model, x = model_and_data
    out = tmp_path / "m.tflite"
    report = export_tflite(
        model, out, quantization=quantization, sparse=sparse, representative_data=x
    )
    want = np.asarray(model(x[-32:], training=False))
    got = litert(out, x[-32:])
    scale = max(1.0, float(np.abs(want).max()))
    # float: rounding only; dynamic / int8: the existing rule, TOLERANCE x max(1, max |y|).
    atol = FLOAT_ATOL if quantization == "float" else TOLERANCE[quantization] * scale
    assert np.abs(got - want).max() <= atol
    assert report["verification"]["ok"]
    assert report["keras3"] == {
        "keras": keras3().__version__,
        "backend": "tensorflow",
        "converter": "keras model.export(format='litert')",
    }
    kernels = [layer.kernel.numpy() for layer in model.layers]
    assert report["nonzero_kernel_weights"] == sum(int(np.count_nonzero(w)) for w in kernels)
    assert not [op for op in report["ops"] if op.startswith("Flex")]  # builtins only
    if sparse:
        assert "DENSIFY" not in report["ops"]  # block-sparse: the sparse kernel, not densified
        assert all(report["block_structured_zeros"][layer.name] == 1.0 for layer in model.layers)
        dense = export_tflite(model, tmp_path / "d.tflite")
        assert report["tflite_bytes"] < 0.5 * dense["tflite_bytes"]


def test_saved_model_fallback_matches_model_export(model_and_data):
    """Keras < 3.13 has no litert export; the TF converter path gives the same outputs."""
    from keras_legc.keras import export as E
    from keras_legc.keras.tflite_runner import load_interpreter, run_rows

    model, x = model_and_data
    settings = E._converter_settings("float", False, None)
    old = E._convert_saved_model(model, settings)
    new = E._convert(model, "float", False, None)
    rows = x[:16]
    a = run_rows(load_interpreter(old)[0], rows)
    b = run_rows(load_interpreter(new)[0], rows)
    np.testing.assert_allclose(a, b, atol=FLOAT_ATOL)
    np.testing.assert_allclose(a, np.asarray(model(rows)), atol=FLOAT_ATOL)


def test_keras3_collapsed_model_is_refused(model_and_data, tmp_path):
    model, x = model_and_data
    k = keras3()
    emptied = k.models.clone_model(model)
    emptied.set_weights(model.get_weights())
    first = emptied.layers[0]
    first.set_weights([np.zeros_like(w) for w in first.get_weights()])
    with pytest.raises(CollapsedModelError, match=r"every kernel weight of \['dense"):
        export_tflite(emptied, tmp_path / "c.tflite")
    assert not list(tmp_path.iterdir())


TWIN_SCRIPT = BUILD + textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    import keras
    import keras_legc as kl
    from keras_legc.keras.export import export_tflite

    from ai_edge_litert.interpreter import Interpreter

    def litert(path, x):
        interp = Interpreter(model_path=str(path))
        interp.allocate_tensors()
        i, o = interp.get_input_details()[0], interp.get_output_details()[0]
        rows = []
        for row in x:
            interp.set_tensor(i["index"], row[None, :])
            interp.invoke()
            rows.append(interp.get_tensor(o["index"])[0])
        return np.array(rows)

    tmp = Path(sys.argv[1])
    model = build(keras)
    x = np.random.default_rng(1).normal(size=(300, 64)).astype("float32")
    back = kl.load_model(kl.save_model(model, tmp / "m.keras"), compile=False)
    result = {"backend": keras.backend.backend(), "round_trip": all(
        np.array_equal(a, b) for a, b in zip(model.get_weights(), back.get_weights()))}
    want = keras.ops.convert_to_numpy(model(x[-32:]))
    for q, sparse in [("float", False), ("int8", False), ("float", True)]:
        out = tmp / f"{q}{'_sparse' if sparse else ''}.tflite"
        report = export_tflite(model, out, quantization=q, sparse=sparse, representative_data=x)
        result[out.stem] = {
            "error": float(np.abs(litert(out, x[-32:]) - want).max()),
            "scale": max(1.0, float(np.abs(want).max())),
            "ok": report["verification"]["ok"], "keras3": report["keras3"], "ops": report["ops"],
        }
    print(json.dumps(result))
    """
)


def test_jax_backend_model_exports_through_a_tensorflow_twin(tmp_path):
    pytest.importorskip("jax")
    check_export_through_twin("jax", tmp_path)


def check_export_through_twin(backend: str, tmp_path) -> None:
    """A model built on ``backend`` exports through the TensorFlow-backend twin, and LiteRT computes
    what the model does (also test_keras3_torch.py's check, for the PyTorch backend)."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    proc = subprocess.run(
        [sys.executable, "-c", TWIN_SCRIPT, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend and result["round_trip"]
    for name, atol in [("float", FLOAT_ATOL), ("float_sparse", FLOAT_ATOL), ("int8", None)]:
        r = result[name]
        limit = atol if atol is not None else TOLERANCE["int8"] * r["scale"]
        assert r["error"] <= limit, (name, r)
        assert r["ok"] and r["keras3"]["backend"] == backend
        assert r["keras3"]["converter"].startswith("TensorFlow-backend twin")
    assert "DENSIFY" not in result["float_sparse"]["ops"]


@pytest.fixture(scope="module")
def cli_export(model_and_data, tmp_path_factory):
    """`legc export --sparse` on a Keras 3 .keras file."""
    model, x = model_and_data
    tmp = tmp_path_factory.mktemp("cli")
    kl.save_model(model, tmp / "m.keras")
    np.save(tmp / "x.npy", x)
    out = C.cli(
        "export", str(tmp / "m.keras"), str(tmp / "m.tflite"), "--sparse",
        "--representative", str(tmp / "x.npy"),
    )  # fmt: skip
    return tmp, out


def test_cli_export_of_a_keras3_file_names_the_flavour(cli_export):
    tmp, out = cli_export
    assert "Keras 3, tensorflow backend model" in out and "OK" in out
    report = json.loads((tmp / "m.json").read_text())
    assert report["source"] == str(tmp / "m.keras") and report["keras3"]["backend"] == "tensorflow"


def test_cli_names_keras2_too(tmp_path):
    kl.save_model(C.mlp(), tmp_path / "k2.keras")
    out = C.cli("export", str(tmp_path / "k2.keras"), str(tmp_path / "k2.tflite"))
    assert "Keras 2 (tf_keras) model" in out and "keras3" not in json.loads(
        (tmp_path / "k2.json").read_text()
    )


def edge(python, tflite, out):
    cmd = [python, "edge/bench.py", str(tflite), "--runs", "20", "--json", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=180)


def test_edge_runner_checks_the_keras3_export(cli_export):
    tmp, _ = cli_export
    proc = edge(sys.executable, tmp / "m.tflite", tmp / "litert.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads((tmp / "litert.json").read_text())
    assert r["check"]["ok"] and r["runtime"] == "litert"


@pytest.mark.skipif(not DEVICE_PYTHON, reason="LEGC_DEVICE_PYTHON is not set (make device-env)")
def test_device_runtime_checks_the_keras3_export(cli_export):
    tmp, _ = cli_export
    proc = edge(DEVICE_PYTHON, tmp / "m.tflite", tmp / "device.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads((tmp / "device.json").read_text())
    assert r["check"]["ok"] and r["runtime"] == "tflite_runtime"
    assert r["tensorflow_imported"] is False


def test_cli_neurons_names_the_flavour_of_either_file(model_and_data, tmp_path):
    model, x = model_and_data
    np.save(tmp_path / "y.npy", np.zeros(len(x), dtype="int64"))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "x6.npy", x[:, :6])
    k2 = kl.save_model(C.mlp(), tmp_path / "k2.keras")
    out = C.cli("neurons", "score", str(k2), "--x", str(tmp_path / "x6.npy"),
                "--y", str(tmp_path / "y.npy"), "--top", "3")  # fmt: skip
    assert f"loaded {k2}: Keras 2 (tf_keras) model" in out and "[" in out.splitlines()[-1]
    k3 = kl.save_model(model, tmp_path / "k3.keras")
    try:  # the neuron scorers' Keras 3 path is not this test's subject, the flavour line is
        out = C.cli("neurons", "score", str(k3), "--x", str(tmp_path / "x.npy"),
                    "--y", str(tmp_path / "y.npy"), "--top", "3")  # fmt: skip
    except C.SubprocessError as exc:
        out = str(exc)
        assert "Traceback" not in out
    assert f"loaded {k3}: Keras 3 (tensorflow backend) model" in out
