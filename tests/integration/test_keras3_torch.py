"""Keras 3 on the PyTorch backend (``KERAS_BACKEND=torch``): record -> score -> prune, masks held
exactly after every optimizer step (SGD with momentum, AdamW), strip, a ``.keras`` round trip in
the middle of fine-tuning and GradualPruning (test_keras3_pipeline.py's script, run with torch),
export through the TensorFlow-backend twin as on JAX (test_keras3_export.py's script), and neuron
pruning + ``shrink`` against the numpy view of the same net.

torch is several GB, so `make test` does not install it and these tests skip without it;
`make test-torch` runs them in their own virtualenv (.venv-torch), where a missing torch fails
(``LEGC_REQUIRE_TORCH=1``).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.integration.test_keras3_export import check_export_through_twin
from tests.integration.test_keras3_pipeline import _run, check_keras3


@pytest.fixture(autouse=True)
def torch_installed():
    if os.environ.get("LEGC_REQUIRE_TORCH") == "1":
        import torch  # noqa: F401  (make test-torch: a missing torch is a failure, not a skip)
    else:
        pytest.importorskip("torch")


def test_keras3_pipeline_on_the_torch_backend():
    check_keras3(_run("torch"))


def test_torch_backend_model_exports_through_a_tensorflow_twin(tmp_path):
    check_export_through_twin("torch", tmp_path)


NEURONS = """
import json
import numpy as np
import keras
import keras_legc as kl
from keras_legc.neurons import DenseNet

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(12, activation="relu", name="h"),
                          keras.layers.Dense(2, name="o")])
x = np.random.default_rng(4).normal(size=(64, 8)).astype("float32")
y = (x[:, 0] > 0).astype("int64")
record = kl.prune_neurons(model, "taylor2", x, y, fraction=0.25, progress=False)
small = kl.shrink(model, record)
removed = record.as_dict()
want = DenseNet.from_model(model).with_removed(removed).output(x)
print(json.dumps({"backend": keras.backend.backend(), "keras3": isinstance(small, keras.Model),
                  "units": small.layers[0].units, "removed": len(removed.get("h", [])),
                  "error": float(np.abs(small.predict(x, verbose=0) - want).max())}))
"""


def test_neuron_pruning_and_shrink_on_the_torch_backend():
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run([sys.executable, "-c", NEURONS], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["backend"] == "torch" and r["keras3"] and r["removed"] >= 1, r
    assert r["units"] == 12 - r["removed"]
    # removing units only drops their contribution: the numpy view of the same net agrees
    assert r["error"] <= 1e-5, r


def test_to_numpy_detaches_a_torch_output_that_carries_gradients():
    import torch

    from keras_legc.keras.flavour import to_numpy

    w = torch.tensor([[1.5, -2.0]], requires_grad=True)
    out = w * 2.0
    with pytest.raises(RuntimeError, match="requires grad"):
        np.asarray(out)  # what the library did before: numpy refuses it
    got = to_numpy(out, dtype=np.float64)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[3.0, -4.0]])
