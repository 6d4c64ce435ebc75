import os

import numpy as np
import pytest

import keras_legc  # noqa: F401  (selects Keras 2 before TensorFlow is imported)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
