"""A collapsed model (outputs independent of the input) is refused at export, with its own exit
code, unless explicitly allowed; a healthy pruned model is not."""

import subprocess
import sys

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import CollapsedModelError
from keras_legc.keras.export import constant_outputs, export_tflite
from keras_legc.keras.flavour import keras

k = keras()


def _model():
    k.utils.set_random_seed(0)
    return k.Sequential([k.layers.Input((8,)), k.layers.Dense(6, activation="relu", name="h"),
                         k.layers.Dense(3, activation="softmax", name="o")])  # fmt: skip


def _emptied(model):
    mask = kl.Mask({"h": np.zeros((8, 6)), "o": np.ones((6, 3))})  # layer h emptied
    return kl.strip(kl.prune(model, mask))


def test_constant_outputs_detects_only_constant_rows():
    assert constant_outputs(np.tile([0.2, 0.3, 0.5], (5, 1)))
    assert not constant_outputs(np.array([[0.2, 0.8], [0.21, 0.79]]))
    assert not constant_outputs(np.array([[0.2, 0.8]]))  # one row cannot tell


def test_export_refuses_a_collapsed_model_unless_allowed(tmp_path):
    collapsed = _emptied(_model())
    with pytest.raises(
        CollapsedModelError, match=r"identical for all 16 reference inputs.*\['h'\]"
    ):
        export_tflite(collapsed, tmp_path / "c.tflite")
    assert not (tmp_path / "c.tflite").exists()
    report = export_tflite(collapsed, tmp_path / "c.tflite", allow_constant_output=True)
    assert report["verification"]["ok"]
    healthy = kl.strip(kl.prune(_model(), kl.magnitude_mask(_model(), 0.8)))
    assert export_tflite(healthy, tmp_path / "h.tflite")["verification"]["ok"]


def test_cli_export_exits_6_on_a_collapsed_model(tmp_path):
    kl.save_model(_emptied(_model()), tmp_path / "c.keras")
    cmd = [sys.executable, "-m", "keras_legc.cli", "export", str(tmp_path / "c.keras"),
           str(tmp_path / "c.tflite")]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 6, out.stderr[-2000:]
    assert "CollapsedModelError" in out.stderr and "--allow-constant-output" in out.stderr
    ok = subprocess.run([*cmd, "--allow-constant-output"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_edge_runner_exits_6_on_constant_outputs_unless_allowed(tmp_path):
    bench = [sys.executable, "edge/bench.py", "--runs", "5", "--warmup", "1"]
    export_tflite(_emptied(_model()), tmp_path / "c.tflite", allow_constant_output=True)
    out = subprocess.run([*bench, str(tmp_path / "c.tflite")], capture_output=True, text=True)
    assert out.returncode == 6, out.stderr[-2000:]
    assert "CONSTANT OUTPUT" in out.stderr and "--allow-constant-output" in out.stderr
    allowed = subprocess.run([*bench, str(tmp_path / "c.tflite"), "--allow-constant-output"],
                             capture_output=True, text=True)  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    healthy = kl.strip(kl.prune(_model(), kl.magnitude_mask(_model(), 0.5)))
    export_tflite(healthy, tmp_path / "h.tflite")
    ok = subprocess.run([*bench, str(tmp_path / "h.tflite")], capture_output=True, text=True)
    assert ok.returncode == 0 and "outputs match" in ok.stdout, ok.stderr[-2000:]
