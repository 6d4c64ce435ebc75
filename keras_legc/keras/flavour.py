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

from keras_legc.errors import MissingDependencyError

if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Keep TF's C++ start-up chatter out of users' terminals unless they asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@cache
def tf() -> ModuleType:
    """TensorFlow (imported on first use, after the Keras 2 selection above)."""
    import tensorflow

    return tensorflow


@cache
def keras() -> ModuleType:
    """The Keras 2 module, ``tf_keras`` (what ``tf.keras`` is when TF_USE_LEGACY_KERAS=1).

    If TensorFlow was imported before keras_legc without TF_USE_LEGACY_KERAS=1, ``tf.keras`` is
    Keras 3; models built with it are refused with a clear error by ``keras_legc.keras.layers``.
    """
    tf()
    try:
        import tf_keras
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise MissingDependencyError(
            "tf_keras is not installed. Fix: pip install keras-legc (it pins tf_keras==2.21.0)."
        ) from exc
    return tf_keras


def keras_selection_ok() -> bool:
    """True when ``tf.keras`` is Keras 2 (tf_keras), i.e. the selection took effect."""
    return tf().keras.Model is keras().Model


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


def model_flavour(model) -> str:
    """``"keras2"`` for a tf_keras (Keras 2) model, ``"keras3"`` for a Keras 3 ``keras.Model``.

    Decided from the model object's class alone (no Keras is imported or selected here), so the
    library serves both kinds in one process.

    Raises:
        ModelStructureError: when ``model`` is neither.
    """
    from keras_legc.errors import ModelStructureError

    for cls in type(model).__mro__:
        module = cls.__module__ or ""
        if cls.__name__ == "Model" and module.startswith("tf_keras"):
            return "keras2"
        if cls.__name__ == "Model" and module.startswith("keras"):
            return "keras3"
    raise ModelStructureError(
        f"expected a Keras model, got {type(model).__module__}.{type(model).__name__}. "
        "Fix: pass the keras.Model (Keras 3) or tf_keras.Model (Keras 2) itself."
    )
