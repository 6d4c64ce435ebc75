"""The one place that selects Keras 2 (tf_keras) and imports TensorFlow.

TF-MOT 0.8.x only works with Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow
is first imported. ``keras_legc/__init__`` imports this module first, and only the environment
variable is touched at import time: TensorFlow itself is imported on first use (``tf()``,
``keras()``), so the numpy-only core (lyapunov, granger, masks) stays fast to import.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from types import ModuleType

from keras_legc.errors import MissingDependencyError, ModelStructureError

if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Keep TF's C++ start-up chatter out of users' terminals unless they asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@cache
def tf() -> ModuleType:
    """TensorFlow, with ``tf.keras`` checked to be Keras 2 (tf_keras)."""
    import tensorflow

    keras_mod = tensorflow.keras
    version = getattr(keras_mod, "__version__", "")
    if not version.startswith("2."):
        raise ModelStructureError(
            f"tf.keras is Keras {version or '3'}, but keras_legc needs Keras 2 (tf_keras) because "
            "TF-MOT 0.8 only supports Keras 2. TensorFlow was imported before keras_legc without "
            "TF_USE_LEGACY_KERAS=1. Fix: `import keras_legc` before TensorFlow, or set the "
            "environment variable TF_USE_LEGACY_KERAS=1 before starting Python."
        )
    return tensorflow


def keras() -> ModuleType:
    """The Keras 2 module (``tf.keras`` == ``tf_keras``)."""
    return tf().keras


@cache
def tfmot() -> ModuleType:
    """TensorFlow Model Optimization, imported only where pruning needs it."""
    tf()
    try:
        import tensorflow_model_optimization
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise MissingDependencyError(
            "tensorflow-model-optimization is not installed. Fix: pip install keras-legc "
            "(it pins tensorflow-model-optimization==0.8.1)."
        ) from exc
    return tensorflow_model_optimization
