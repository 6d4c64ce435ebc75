"""What every diagnostic shares: the optional-import guard, weightwatcher's silencing, and the
model/data checks (pruning wrappers stripped, one flat input)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np

from keras_legc.errors import InvalidArgumentError, MissingDependencyError, ModelStructureError

_PACKAGES = {"shap": "shap", "weightwatcher": "weightwatcher", "matplotlib": "matplotlib",
             "sklearn": "scikit-learn"}  # fmt: skip


@contextlib.contextmanager
def _quiet():
    """Silence weightwatcher's stdout prints and INFO/WARNING logs (e.g. "SMALL N PL FIT")."""
    ww_logger = logging.getLogger("weightwatcher")
    level = ww_logger.level
    ww_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        ww_logger.setLevel(level)


def _require(module: str, purpose: str, extra: str = "diagnostics"):
    """Import an optional package, or raise MissingDependencyError naming the extra to install."""
    import importlib

    try:
        with _quiet():  # weightwatcher logs and prints on import
            return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{_PACKAGES.get(module, module)} is not installed (or cannot be imported: {exc}); "
            f"keras_legc needs it for {purpose}. Fix: pip install 'keras-legc[{extra}]'"
        ) from exc


def _plain_model(model, what: str):
    """The model with its pruning wrappers (Keras 2) or mask constraints (Keras 3) stripped,
    after checking it is a Keras Dense model."""
    from keras_legc.keras.layers import dense_layers, is_mask_held, is_pruning_wrapper

    dense_layers(model)
    if any(is_pruning_wrapper(layer) or is_mask_held(layer) for layer in model.layers):
        from keras_legc.keras.pruning import strip

        model = strip(model)
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 2:
        raise ModelStructureError(
            f"{what} has input shape {shape}; diagnose explains models with one flat input "
            "(rows x features). Fix: pass a model whose input is (None, n_features)."
        )
    return model


def _as_x(data) -> np.ndarray:
    if isinstance(data, tuple | list) and len(data) == 2 and not np.isscalar(data[0]):
        data = data[0]
    try:
        x = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"data must be an array of model inputs or a tuple (x, y), got {type(data).__name__} "
            f"({exc}). Fix: pass x as a 2-D numpy array (rows x features)."
        ) from exc
    if x.ndim != 2 or len(x) < 2:
        raise InvalidArgumentError(
            f"data must be 2-D (rows x features) with at least 2 rows, got shape {x.shape}. Fix: "
            "pass x (or (x, y)) with one row per example."
        )
    if not np.isfinite(x).all():
        raise InvalidArgumentError(
            "data contains NaN or inf. Fix: impute or drop those rows before diagnosing."
        )
    return x
