"""Keras 3 on the PyTorch backend (``KERAS_BACKEND=torch``): record -> score -> prune, masks held
exactly after every optimizer step (SGD with momentum, AdamW), strip, a ``.keras`` round trip in
the middle of fine-tuning and GradualPruning (test_keras3_pipeline.py's script, run with torch),
and export through the TensorFlow-backend twin as on JAX (test_keras3_export.py's script).

torch is several GB, so `make test` does not install it and these tests skip without it;
`make test-torch` runs them in their own virtualenv (.venv-torch), where a missing torch fails
(``LEGC_REQUIRE_TORCH=1``).
"""

import os

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
