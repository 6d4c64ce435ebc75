"""The device side for real: a second virtualenv with only numpy 1.26 and tflite-runtime 2.14 (no
TensorFlow) runs edge/bench.py against .tflite files exported by this environment.

Create it with ``make device-env`` (or ``bash .ci/device_env.sh``) and point LEGC_DEVICE_PYTHON at
its python; .ci/run does both. Without the variable these tests skip.

Measured behaviour of tflite-runtime 2.14 asserted here (2026-11-21): float dense and float
block-sparse models give the Keras outputs; a block-sparse full-int8 model runs without any error
but its outputs are constant (std 0 across inputs, wrong by up to ~0.3 on a small MLP): the runner
must and does fail it with exit 3 (the "collapsed" check), while LiteRT gets it right.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.keras.export import export_tflite
from keras_legc.keras.flavour import keras

ROOT = Path(__file__).resolve().parents[2]
DEVICE_PYTHON = os.environ.get("LEGC_DEVICE_PYTHON")

pytestmark = pytest.mark.skipif(
    not DEVICE_PYTHON,
    reason="LEGC_DEVICE_PYTHON is not set (create the device venv with `make device-env` and "
    "export LEGC_DEVICE_PYTHON=.venv-device/bin/python; .ci/run does this)",
)


def device(*args, check=False):
    proc = subprocess.run(
        [DEVICE_PYTHON, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    if check and proc.returncode:
        raise AssertionError(proc.stdout + proc.stderr)
    return proc


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("device")
    k = keras()
    k.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 64)).astype("float32")
    y = x[:, :10].argmax(axis=1)
    model = k.Sequential(
        [k.layers.Input(shape=(64,)), k.layers.Dense(64, activation="relu"), k.layers.Dense(10)]
    )
    model.compile("adam", k.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, verbose=0)
    export_tflite(model, folder / "dense_float.tflite", representative_data=x)
    export_tflite(model, folder / "dense_int8.tflite", quantization="int8", representative_data=x)
    mask = kl.magnitude_mask(model, 0.9, block=(1, 16))
    for layer in kl.dense_layers(model):
        w, b = layer.get_weights()
        layer.set_weights([w * mask[layer.name], b])
    export_tflite(model, folder / "block_float.tflite", sparse=True, representative_data=x)
    with pytest.warns(kl.LegcWarning, match="tflite-runtime 2.14 and older"):
        export_tflite(model, folder / "block_int8.tflite", sparse=True, quantization="int8",
                      representative_data=x)  # fmt: skip
    return folder


def test_device_env_has_no_tensorflow():
    proc = device("-c", "import tensorflow")
    assert proc.returncode != 0 and "No module named 'tensorflow'" in proc.stderr
    versions = device(
        "-c", "import numpy, tflite_runtime; print(numpy.__version__, tflite_runtime.__version__)",
        check=True,
    )  # fmt: skip
    assert versions.stdout.split() == ["1.26.4", "2.14.0"]


@pytest.mark.parametrize("name", ["dense_float", "block_float", "dense_int8"])
def test_float_models_pass_on_tflite_runtime(models, name):
    """...and int8 without block-sparse weights: what export does not warn about runs right."""
    assert json.loads((models / f"{name}.json").read_text())["wrong_on_runtimes"] == []
    out = models / f"{name}.device.json"
    device("edge/bench.py", models / f"{name}.tflite", "--runs", "50", "--json", out, check=True)
    r = json.loads(out.read_text())
    assert r["runtime"] == "tflite_runtime" and r["runtime_version"] == "2.14.0"
    assert r["check"]["ok"] and r["tensorflow_imported"] is False


def test_block_sparse_int8_wrong_outputs_are_caught(models):
    out = models / "block_int8.device.json"
    proc = device("edge/bench.py", models / "block_int8.tflite", "--runs", "20", "--json", out)
    r = json.loads(out.read_text())
    # tflite-runtime 2.14 computes constant outputs for this model without raising; the runner
    # refuses it. (If a future tflite-runtime fixed the bug, this assertion says so.)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "OUTPUT MISMATCH" in proc.stderr
    assert r["check"]["collapsed"] and not r["check"]["ok"]
    # export said so, with the reason and the fix, when it wrote the file (issue 29)
    report = json.loads((models / "block_int8.json").read_text())
    assert report["wrong_on_runtimes"] == ["tflite_runtime<=2.14"]
    assert any("tflite-runtime 2.14 and older" in n and "Fix: run it on the device with LiteRT" in n
               for n in report["warnings"])  # fmt: skip
    # LiteRT, in this environment, computes the right outputs for the same file.
    litert = subprocess.run(
        [sys.executable, "edge/bench.py", models / "block_int8.tflite", "--runs", "20"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert litert.returncode == 0, litert.stderr
