"""Diagnostics as numbers: WeightWatcher alphas per layer, SHAP importances, and their agreement.

The paper (spec section 7) reads WeightWatcher's per-layer power-law exponent ``alpha`` (2 <= alpha
<= 6 read as "well trained") and compares SHAP feature-importance plots of dense and pruned models by
eye. :func:`diagnose` gives the same checks as numbers: per layer ``alpha`` and ``alpha_weighted``
with a flag, mean |SHAP| per feature, and the rank agreement between the dense model's importances
and each pruned model's (Spearman's rho and top-k overlap). :class:`Diagnosis` writes a JSON and a
Markdown report with PNG plots.

weightwatcher, shap and matplotlib are optional (``pip install 'keras-legc[diagnostics]'``); they
are imported inside the functions that need them. The agreement metrics need only numpy and scipy.

How the numbers are made:

- WeightWatcher analyses each Dense kernel W (shape in x out): its ESD is the eigenvalues of
  W^T W (the squared singular values of W), and alpha is the exponent of a power law fitted to the
  tail of that ESD; ``alpha_weighted = alpha * log10(lambda_max)``. Zeros of a pruned kernel are
  ordinary entries of W (no special treatment); whole zero rows or columns (dead units) lower the
  rank, and WeightWatcher fits only the non-zero eigenvalues (it reports the rest as ``rank_loss``).
  A layer with fewer than ``MIN_EVALS`` non-zero eigenvalues is not fitted: its flag says "too
  small to fit" with the count and the threshold.
- SHAP: ``shap.DeepExplainer`` (DeepLIFT rescale rule; for ReLU/linear nets its values add up
  exactly to the model output minus the background mean; its softmax rule is approximate, so the
  sum can be off by a few hundredths of a probability: the error is measured and reported as
  ``additivity_error``, not asserted) on the
  same background and explained rows for every model, sampled from ``data`` with
  ``numpy.random.default_rng(seed)``. A feature's importance is the mean |SHAP value| over the
  explained rows and over all outputs of the model (for a softmax model: over all classes).

Layout: ``metrics`` (agreement), ``weightwatcher``, ``shap_importance``, ``report`` (Diagnosis and its
files), ``pipeline`` (diagnose); this package re-exports their public names.
"""

from __future__ import annotations

from keras_legc.diagnostics.metrics import spearman_agreement, topk_overlap
from keras_legc.diagnostics.pipeline import diagnose, load_inputs
from keras_legc.diagnostics.report import MAX_FEATURES_PLOTTED, Diagnosis
from keras_legc.diagnostics.shap_importance import shap_importance
from keras_legc.diagnostics.weightwatcher import (
    ALPHA_RANGE,
    FLAG_FAILED,
    FLAG_OK,
    FLAG_OUTSIDE,
    FLAG_SMALL,
    MIN_EVALS,
    weightwatcher_layers,
)

__all__ = [
    "Diagnosis",
    "diagnose",
    "spearman_agreement",
    "topk_overlap",
    "weightwatcher_layers",
    "shap_importance",
    "load_inputs",
    "MIN_EVALS",
    "ALPHA_RANGE",
    "MAX_FEATURES_PLOTTED",
    "FLAG_OK",
    "FLAG_OUTSIDE",
    "FLAG_SMALL",
    "FLAG_FAILED",
]
