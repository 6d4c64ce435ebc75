"""keras-legc: prune Keras networks (weights or whole channels) by chaos and causality (LEGCNet) and
other criteria, ship them to TFLite.

Importing it selects no Keras: Keras 3 models (``import keras``, TensorFlow, JAX or PyTorch
backend) and Keras 2 models (``tf_keras``, pruned with TF-MOT) are both served, the path chosen from
each model object. TensorFlow and Keras are imported lazily, on first use of a name that needs
them, so the numpy core imports fast.
"""

from __future__ import annotations

import keras_legc.keras.flavour  # noqa: E402,F401  (quiet TF start-up; selects no Keras)
from keras_legc import errors as _errors  # noqa: E402
from keras_legc._version import __version__  # noqa: E402,F401
from keras_legc.core.granger import GrangerResult, granger_pvalues, granger_test  # noqa: E402
from keras_legc.core.history import History, load_snapshots  # noqa: E402
from keras_legc.core.lyapunov import windowed_lyapunov  # noqa: E402
from keras_legc.core.recorder import DEFAULT_MAX_OVERHEAD, budget_every  # noqa: E402
from keras_legc.core.scoring import Scores, score  # noqa: E402
from keras_legc.errors import *  # noqa: E402,F401,F403
from keras_legc.masking import (  # noqa: E402
    Importance,
    Mask,
    importance,
    magnitude_mask,
    mask_from_importance,
    random_mask,
)
from keras_legc.masking.schedule import (  # noqa: E402
    ConstantSparsity,
    PolynomialDecay,
    PruningSchedule,
    grow_mask,
)

# Public names that need TensorFlow, loaded on first access.
_LAZY = {
    "WeightHistory": "keras_legc.keras.callbacks",
    "UnitHistory": "keras_legc.keras.unit_history",
    "prune": "keras_legc.keras.pruning",
    "strip": "keras_legc.keras.pruning",
    "pruning_callbacks": "keras_legc.keras.pruning",
    "load_model": "keras_legc.keras.saving",
    "save_model": "keras_legc.keras.saving",
    "dense_layers": "keras_legc.keras.layers",
    "prunable_weights": "keras_legc.keras.registry",
    "diagnose": "keras_legc.diagnostics",
    "Diagnosis": "keras_legc.diagnostics",
    "shrink": "keras_legc.neurons",
    "prune_neurons": "keras_legc.neurons",
    "export_tflite": "keras_legc.keras.export",
    "GradualPruning": "keras_legc.keras.gradual",
    "prune_channels": "keras_legc.structure",
    "prune_channels_to_latency": "keras_legc.structure",
    "channel_groups": "keras_legc.structure",
    "count_macs": "keras_legc.structure",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_legc' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "GrangerResult",
    "granger_pvalues",
    "granger_test",
    "windowed_lyapunov",
    "Mask",
    "Importance",
    "importance",
    "mask_from_importance",
    "PolynomialDecay",
    "ConstantSparsity",
    "PruningSchedule",
    "grow_mask",
    "magnitude_mask",
    "random_mask",
    "History",
    "load_snapshots",
    "Scores",
    "score",
    "budget_every",
    "DEFAULT_MAX_OVERHEAD",
    *_errors.__all__,
    *_LAZY,
]
