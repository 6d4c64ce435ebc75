"""Mean |SHAP value| per feature (shap.DeepExplainer), with the measured additivity error."""

from __future__ import annotations

import importlib
import time
import types
import warnings
from contextlib import contextmanager

import numpy as np

from keras_legc.diagnostics._common import _plain_model, _require


def shap_importance(
    model, background: np.ndarray, x: np.ndarray, *, chunk: int = 50, progress=None
) -> tuple[np.ndarray, dict]:
    """Mean |SHAP value| per feature of ``model`` on rows ``x`` (DeepExplainer on ``background``).

    Args:
        model: a built Keras 3 (TensorFlow backend) or Keras 2 model with one flat input.
        background: rows the explainer integrates over (a sample of the data).
        x: rows to explain.
        chunk: rows explained per call (the progress bar advances per chunk).
        progress: a :class:`keras_legc._progress.Progress` to advance by ``len(x)``, or None.

    Returns:
        ``(importance, info)``: importance has one value per feature, the mean of |SHAP| over
        the rows of ``x`` and over every output of the model; info has ``n_outputs``,
        ``additivity_error`` (max |sum of SHAP + expected value - model output|) and ``seconds``.

    Example:
        >>> imp, info = shap_importance(model, x_train[:100], x_test[:200])
    """
    shap = _require("shap", "SHAP feature importance")
    model = _plain_model(model, "the model")
    background = np.asarray(background, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TensorFlow version is newer.*")
        with _shap_accepts(model):
            explainer = shap.DeepExplainer(model, background)
        parts = []
        for start in range(0, len(x), chunk):
            # shap's own additivity assertion (tolerance 0.01) fails on softmax outputs of some
            # pruned nets: its softmax rule is approximate (ReLU/linear parts are exact). The
            # error is measured below and reported instead.
            sv = explainer.shap_values(x[start : start + chunk], check_additivity=False)
            sv = np.asarray(sv, dtype=np.float64)
            if sv.ndim == 2:
                sv = sv[:, :, None]
            parts.append(sv)
            if progress is not None:
                progress.update(min(chunk, len(x) - start))
    values = np.concatenate(parts, axis=0)  # rows x features x outputs
    out = np.asarray(model(x, training=False), dtype=np.float64).reshape(len(x), -1)
    expected = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)
    additivity = float(np.abs(values.sum(axis=1) + expected - out).max())
    importance = np.abs(values).mean(axis=(0, 2))
    info = {
        "n_outputs": int(values.shape[2]),
        "additivity_error": additivity,
        "seconds": time.perf_counter() - t0,
    }
    return importance, info


@contextmanager
def _shap_accepts(model):
    """Let SHAP's TensorFlow explainer accept a tf_keras (Keras 2) model.

    SHAP recognises a Keras model by ``isinstance(model, tf.keras.Model)``, and ``tf.keras`` is
    Keras 3 unless the user selected Keras 2 (keras_legc does not: no global switch). While the
    explainer is built, SHAP's own ``tf`` reference (``shap.explainers.tf_utils.tf``) reads
    ``tf.keras`` as tf_keras for a Keras 2 model; nothing else in the process sees a change.
    """
    from keras_legc.keras.flavour import keras, model_flavour, tf

    if model_flavour(model) != "keras2" or tf().keras.Model is keras().Model:
        yield
        return
    utils = importlib.import_module("shap.explainers.tf_utils")
    real = getattr(utils, "tf", None)

    keras2 = keras()

    class _TensorFlowSeenByShap(types.ModuleType):
        keras = keras2

        def __getattr__(self, name):
            return getattr(tf(), name)

    utils.tf = _TensorFlowSeenByShap("tensorflow")
    try:
        yield
    finally:
        utils.tf = real
