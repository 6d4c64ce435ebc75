"""Shared fixtures and the test markers.

Tests live in three folders, each a marker (``pytest -m unit`` etc.):
- ``tests/unit``: the numpy core and masking (no model training; seconds);
- ``tests/integration``: real TensorFlow, tf_keras, TF-MOT, LiteRT and statsmodels end to end;
- ``tests/evidence``: the evidence scripts behind docs/ in their --quick modes (slowest; they skip
  without the data folder).
"""

import os
from pathlib import Path

import numpy as np
import pytest

import keras_legc  # noqa: F401  (selects Keras 2 before TensorFlow is imported)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
MARKERS = ("unit", "integration", "evidence")


def pytest_configure(config):
    for name in MARKERS:
        config.addinivalue_line("markers", f"{name}: tests in tests/{name}/")


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in MARKERS:
            item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def find_data(*required: str) -> Path | None:
    """The one data-folder lookup of the tests: ``$LEGC_DATA_DIR``, else ``../shared/data`` beside
    the checkout, if it holds ``required`` (through legc_research's own lookup)."""
    from legc_research.datasets import find_data_dir

    return find_data_dir(None, fallbacks=(REPO.parent / "shared" / "data",), required=required)


MNIST_FILES = ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The data folder holding the MNIST test set; the test skips without it."""
    root = find_data(*MNIST_FILES)
    if root is None:
        pytest.skip("MNIST t10k files not found (set LEGC_DATA_DIR to the folder holding mnist/)")
    return root


@pytest.fixture(scope="session")
def paper_data_dir() -> Path:
    """The data folder holding the paper's datasets and MNIST; the test skips without it."""
    root = find_data("legcnet/Iris.csv", *MNIST_FILES)
    if root is None:
        pytest.skip("needs LEGC_DATA_DIR with legcnet/ and mnist/")
    return root
