"""Shared fixtures and the test markers.

Tests live in three folders, each a marker (``pytest -m unit`` etc.):
- ``tests/unit``: the numpy core and masking (no model training; seconds);
- ``tests/integration``: real TensorFlow, tf_keras, TF-MOT, LiteRT and statsmodels end to end;
- ``tests/evidence``: the evidence scripts behind docs/ in their --quick modes (slowest; they skip
  without the data folder).

A fourth marker, ``slow``, holds the evidence folder and the tests in :data:`SLOW`: ``make test``
runs ``-m "not slow"`` (the fast set, about 3 minutes on the 2-core machine), ``make test-slow``
the rest, ``make test-all`` and ``.ci/run`` everything.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import keras_legc  # noqa: F401  (selects Keras 2 before TensorFlow is imported)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No test downloads (MNIST into ~/.keras): tests that need MNIST use the data folder or skip;
# test_package_data.py fetches from a local server with this unset.
os.environ.setdefault("LEGC_OFFLINE", "1")

if "MUTANT_UNDER_TEST" in os.environ:
    # mutmut forks each mutant from the process that ran the tests first. TensorFlow's thread
    # pools do not survive a fork: a tf.function (Keras' fit and predict) called in the child waits
    # for them forever. Run functions op by op there (tools/mutation.py also sets
    # TF_NUM_INTEROP_THREADS=-1 for sessions: the TFLite converter's SavedModel load).
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)

REPO = Path(__file__).resolve().parents[1]
MARKERS = ("unit", "integration", "evidence")

#: The slow set (``-m slow``): every test in these folders, files and tests. Chosen from
#: ``pytest --durations=60`` (2026-11-29, 2-core machine shared with other jobs): the evidence
#: scripts (~135 s) and the integration tests that train and export end to end or start fresh
#: TensorFlow processes (>= 12 s each there).
SLOW_FOLDERS = ("evidence",)
SLOW = (
    "tests/integration/test_default_ranking.py",  # trains a digits MLP 2 x (30 + 2 x 10 epochs)
    "tests/integration/test_demo.py",  # runs `legc demo --quick` (~50 s)
    # trains a LeNet-300-100 three times on 2,000 Fashion-MNIST images (~15 s)
    "tests/integration/test_zoo.py::test_training_is_deterministic_and_cached_by_recipe",
    "tests/integration/test_crash_safety.py",  # SIGKILLs TensorFlow processes (~70 s)
    "tests/integration/test_readme_example.py",  # the README's example, 8 seeds x 2 backends
    "tests/integration/test_determinism.py::test_three_runs_are_bit_identical",
    "tests/integration/test_diagnostics.py::test_cli_diagnose_end_to_end",
    "tests/integration/test_export_blocks.py::test_cli_representative_alias",
    "tests/integration/test_collapse_refused.py::test_cli_export_exits_6_on_a_collapsed_model",
    "tests/integration/test_export_edge.py::test_cli_export_refuses_existing_output",
    "tests/integration/test_export_edge.py::test_cli_export_hints_sparse_and_prints_no_converter_chatter",
    "tests/integration/test_first_contact.py::test_legc_hides_tensorflow_startup_lines_but_not_errors",
    "tests/integration/test_diagnostics.py::test_missing_extra_names_what_to_install",
    "tests/integration/test_catalogue.py::test_bad_input_gives_a_clear_error"
    "[no TFLite interpreter installed (the edge extra missing)]",
    # every registered layer kind, one fresh process per flavour (1-2 min each on the shared machine)
    "tests/integration/test_registry.py::test_every_registered_layer_kind_end_to_end",
    # Keras 3 in fresh processes per backend (13-30 s each on the shared machine)
    "tests/integration/test_keras3_export.py::test_jax_backend_model_exports_through_a_tensorflow_twin",
    "tests/integration/test_keras3_pipeline.py::test_keras3_pipeline_on_each_backend",
    "tests/integration/test_keras3_models.py::test_tf_keras_is_the_users_keras_before_and_after",
    "tests/integration/test_keras3_torch.py",  # PyTorch backend (skips without torch; make test-torch)
    # export's own Keras 3 conversions and twin subprocess (mutation tests; 1-20 s each)
    "tests/unit/test_export_tf.py::test_keras3_exports_through_its_litert_export",
    "tests/unit/test_export_tf.py::test_keras3_before_3_13_converts_from_a_saved_model",
    "tests/unit/test_export_tf.py::test_keras3_int8_and_sparse_settings_reach_the_converter",
    "tests/unit/test_export_tf.py::test_twin_main_converts_a_keras_file",
    "tests/unit/test_export_tf.py::test_other_backends_convert_through_a_tensorflow_subprocess",
    "tests/unit/test_export_tf.py::test_twin_failure_names_the_subprocess_error_and_the_fix",
    # channel pruning of keras.applications with .tflite export, and JAX in a fresh process
    "tests/integration/test_structure_applications.py::test_required_architectures_prune_and_export_with_parity",
    "tests/integration/test_structure_applications.py::test_other_applications_prune_exactly",
    "tests/integration/test_structure_applications.py::test_jax_backend_prunes_rebuilds_and_exports",
)


def pytest_configure(config):
    for name in MARKERS:
        config.addinivalue_line("markers", f"{name}: tests in tests/{name}/")
    config.addinivalue_line(
        "markers", "slow: the slow set (tests/conftest.py SLOW); `make test` leaves it out"
    )


def _is_slow(nodeid: str, entry: str) -> bool:
    if "::" in entry:
        return nodeid == entry or nodeid.startswith(entry + "[")
    return nodeid.startswith(entry + "::")


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in MARKERS:
            item.add_marker(getattr(pytest.mark, folder))
        if folder in SLOW_FOLDERS or any(_is_slow(item.nodeid, e) for e in SLOW):
            item.add_marker(pytest.mark.slow)
    _check_slow_entries(config, items)


def _check_slow_entries(config, items) -> None:
    """Refuse a SLOW entry that names no test any more (a rename would silently make it fast)."""
    if any("::" in str(arg) for arg in config.args):
        return  # single tests were asked for: the other entries are legitimately absent
    ids = [item.nodeid for item in items]
    for entry in SLOW:
        file = entry.split("::")[0]
        collected = any(i.startswith(file + "::") for i in ids)
        if collected and not any(_is_slow(i, entry) for i in ids):
            raise pytest.UsageError(
                f"tests/conftest.py SLOW lists {entry}, which names no test. Fix: update SLOW."
            )


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
