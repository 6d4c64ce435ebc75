"""Which Keras a model belongs to, and the one place that imports TensorFlow, tf_keras and Keras 3.

keras_legc serves both Keras flavours in one process, chosen per model object
(:func:`model_flavour`), never by a global switch: importing keras_legc does not set
``TF_USE_LEGACY_KERAS`` and does not change what ``tf.keras`` is. Keras 2 models (``tf_keras``)
are pruned with TF-MOT; Keras 3 models (``import keras``, any backend) with a mask constraint
(:mod:`keras_legc.keras.keras3`). TensorFlow and both Kerases are imported on first use, so the
numpy-only core (lyapunov, granger, masks) stays fast to import.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import cache
from types import ModuleType

from keras_legc.errors import MissingDependencyError

# Keep TF's C++ start-up chatter out of users' terminals unless they asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LEGACY_ENV = "TF_USE_LEGACY_KERAS"


@cache
def tf() -> ModuleType:
    """TensorFlow (imported on first use)."""
    import tensorflow

    return tensorflow


@cache
def keras() -> ModuleType:
    """The Keras 2 module, ``tf_keras`` (the TF-MOT path).

    Importing it changes nothing for the user: ``tf.keras`` stays whatever their environment
    makes it (Keras 3 unless they set ``TF_USE_LEGACY_KERAS=1`` themselves).
    """
    tf()
    try:
        import tf_keras
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise MissingDependencyError(
            "tf_keras is not installed. Fix: pip install keras-legc (it pins tf_keras==2.21.0)."
        ) from exc
    return tf_keras


@cache
def keras3() -> ModuleType:
    """The Keras 3 module, ``keras`` (its backend is the user's ``KERAS_BACKEND``)."""
    try:
        import keras as keras3_module
    except ImportError as exc:  # pragma: no cover - TensorFlow installs it
        raise MissingDependencyError(
            "keras (Keras 3) is not installed. Fix: pip install 'keras>=3.13'."
        ) from exc
    return keras3_module


def keras_of(model) -> ModuleType:
    """The Keras module ``model`` belongs to: ``tf_keras`` or ``keras`` (Keras 3).

    Example:
        >>> k = keras_of(model)
        >>> isinstance(model.layers[-1], k.layers.Dense)
        True
    """
    return keras3() if model_flavour(model) == "keras3" else keras()


def keras_selection_ok() -> bool:
    """True when ``tf.keras`` is Keras 2 (tf_keras). Informational only: keras_legc no longer
    needs it, it serves Keras 3 models too."""
    return tf().keras.Model is keras().Model


@contextmanager
def _keep_user_keras():
    """Undo what importing TF-MOT does to the process: it sets ``TF_USE_LEGACY_KERAS=1`` and
    then touches ``tf.keras``, which would turn the user's ``tf.keras`` into Keras 2. ``tf.keras``
    is resolved first, under the user's own environment, and the variable is restored after."""
    before = os.environ.get(LEGACY_ENV)
    getattr(tf().keras, "Model", None)  # resolve tf.keras now, as the user's environment says
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LEGACY_ENV, None)
        else:
            os.environ[LEGACY_ENV] = before


@cache
def tfmot() -> ModuleType:
    """TensorFlow Model Optimization (Keras 2 only), imported only where pruning needs it."""
    keras()
    with _keep_user_keras():
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


def to_numpy(value, dtype=None):
    """A model's output (or a loss) as a numpy array, whatever the Keras and its backend.

    TensorFlow tensors and JAX arrays convert with ``np.asarray``; a PyTorch tensor computed from
    trainable weights carries autograd state, which numpy refuses, so it is detached (and moved to
    the CPU) first.
    """
    import numpy as np

    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu()
    return np.asarray(value, dtype=dtype)
