"""Which Keras a model belongs to is read from the model object; importing keras_legc selects
nothing (no TF_USE_LEGACY_KERAS, no TensorFlow import)."""

import os
import subprocess
import sys

import pytest

from keras_legc.errors import ModelStructureError
from keras_legc.keras.flavour import model_flavour


def _fake_model(module: str):
    base = type("Model", (), {"__module__": module})
    return type("MyNet", (base,), {"__module__": "user_code"})()


@pytest.mark.parametrize(
    ("module", "flavour"),
    [("keras.src.models.model", "keras3"), ("tf_keras.src.engine.training", "keras2")],
)
def test_flavour_comes_from_the_model_class(module, flavour):
    assert model_flavour(_fake_model(module)) == flavour


def test_not_a_model_is_refused_with_the_fix():
    with pytest.raises(ModelStructureError, match="expected a Keras model.*Fix"):
        model_flavour([1, 2, 3])


def test_import_sets_no_keras_selection():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    code = (
        "import os, sys, keras_legc\n"
        "assert 'TF_USE_LEGACY_KERAS' not in os.environ, os.environ['TF_USE_LEGACY_KERAS']\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print('clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "clean"


def test_to_numpy_converts_tensorflow_and_jax_outputs_as_numpy_does():
    import numpy as np

    from keras_legc.keras.flavour import to_numpy

    values = np.array([[0.25, -1.5], [3.0, 0.0]], dtype=np.float32)
    tf = pytest.importorskip("tensorflow")
    got = to_numpy(tf.constant(values), dtype=np.float64)
    assert got.dtype == np.float64 and np.array_equal(got, values)
    jnp = pytest.importorskip("jax.numpy")
    got = to_numpy(jnp.asarray(values))
    assert got.dtype == np.float32 and np.array_equal(got, values)
    assert np.array_equal(to_numpy(values.tolist()), values)
    # (a PyTorch output with gradients: tests/integration/test_keras3_torch.py)
