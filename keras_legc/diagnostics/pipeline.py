"""diagnose(): WeightWatcher alphas and SHAP importances of a dense model and its pruned variants,
their agreement, and the report."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from keras_legc._env import versions
from keras_legc.diagnostics._common import _as_x, _plain_model, _require
from keras_legc.diagnostics.metrics import _agreement
from keras_legc.diagnostics.report import Diagnosis
from keras_legc.diagnostics.shap_importance import shap_importance
from keras_legc.diagnostics.weightwatcher import ALPHA_RANGE, MIN_EVALS, weightwatcher_layers
from keras_legc.errors import InvalidArgumentError, LegcWarning


def load_inputs(path: str | os.PathLike, key: str = "x") -> tuple[np.ndarray, list[str] | None]:
    """Model inputs from a ``.npy`` file, or from ``key`` of a ``.npz`` (with ``feature_names``).

    Args:
        path: the file.
        key: the array's name inside a ``.npz``.

    Returns:
        ``(x, feature_names or None)``.

    Example:
        >>> x, names = load_inputs("data/cancer.npz", key="x_test")
    """
    from keras_legc._inputs import load_array

    return load_array(path, "model inputs", key=key, with_names=True)


def diagnose(
    dense,
    pruned,
    data,
    *,
    background: int = 100,
    explain: int = 200,
    top_k: int = 5,
    feature_names: Sequence[str] | None = None,
    seed: int = 0,
    weightwatcher: bool = True,
    shap: bool = True,
    dense_name: str = "dense",
    min_evals: int = MIN_EVALS,
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Diagnosis:
    """WeightWatcher alphas, SHAP importances and their dense-vs-pruned agreement.

    Args:
        dense: the reference (dense) tf.keras model.
        pruned: a pruned model, or ``{name: model}`` for several (e.g. LEGC, random, magnitude).
        data: model inputs ``x`` (rows x features) or ``(x, y)`` (y is not used).
        background: rows sampled as SHAP's background (the baseline it integrates over).
        explain: rows sampled (from the rest, when there are enough) whose SHAP values are averaged.
        top_k: how many top features the top-k overlap compares (capped below the feature count,
            with a warning).
        feature_names: one name per feature (default ``x0, x1, ...``).
        seed: seeds the row sampling (``numpy.random.default_rng(seed)``): same seed, same report.
        weightwatcher: compute the per-layer alphas.
        shap: compute SHAP importances and agreement.
        dense_name: the name of the dense model in the report.
        min_evals: fewest non-zero eigenvalues for a layer's alpha to be reported.
        out_dir: also :meth:`Diagnosis.save` the report there.
        overwrite: let ``save`` replace existing report files.
        progress: progress bars on stderr (None: only on a terminal).

    Returns:
        A :class:`Diagnosis`.

    Raises:
        MissingDependencyError: shap / weightwatcher / matplotlib missing (names the extra).
        InvalidArgumentError / ModelStructureError: bad data, sizes or models.

    Example:
        >>> d = keras_legc.diagnose(dense, {"legc": legc, "random": rnd}, x_test,
        ...                         feature_names=names, out_dir="runs/diag")
        >>> d.agreement["legc"]["spearman"]
    """
    _require_engines(weightwatcher, shap, out_dir)
    models, others = _collect_models(dense, pruned, dense_name)
    x = _as_x(data)
    names, k = _check_sizes(models, x, feature_names, background, explain, min_evals, top_k, shap)
    bg_idx, ex_idx, disjoint = _sample_rows(len(x), background, explain, seed)
    settings = {
        "seed": int(seed),
        "n_rows": int(len(x)),
        "n_features": int(x.shape[1]),
        "n_background": int(len(bg_idx)),
        "n_explain": int(len(ex_idx)),
        "explained_rows_disjoint_from_background": disjoint,
        "top_k": k,
        "min_evals": int(min_evals),
        "alpha_range": list(ALPHA_RANGE),
        "explainer": "shap.DeepExplainer",
        "versions": versions(_VERSIONED, skip_missing=True),
    }
    diag = Diagnosis(models=list(models), feature_names=names, settings=settings)
    if weightwatcher:
        _run_weightwatcher(diag, models, int(min_evals), progress)
    if shap:
        _run_shap(diag, models, x[bg_idx], x[ex_idx], progress)
        ref = diag.importances[dense_name]
        for name in others:
            diag.agreement[name] = _agreement(ref, diag.importances[name], k, name, dense_name)
    if out_dir is not None:
        diag.save(out_dir, overwrite=overwrite)
    return diag


# The packages whose versions a diagnosis records (those installed).
_VERSIONED = ("keras-legc", "tensorflow", "shap", "weightwatcher")


def _require_engines(weightwatcher: bool, shap: bool, out_dir) -> None:
    """Fail early, naming the extra, when an optional package the call needs is missing."""
    if out_dir is not None or weightwatcher:  # weightwatcher imports matplotlib too
        _require("matplotlib", "the report's plots" if out_dir is not None else "WeightWatcher")
    if weightwatcher:
        _require("weightwatcher", "the per-layer alpha (WeightWatcher)")
    if shap:
        _require("shap", "SHAP feature importance")
    if not (weightwatcher or shap):
        raise InvalidArgumentError(
            "both weightwatcher and shap are off, so there is nothing to diagnose. Fix: leave at "
            "least one of them True."
        )


def _collect_models(dense, pruned, dense_name: str) -> tuple[dict, list[str]]:
    """``({name: plain model}, pruned names)``, the dense model first."""
    others = dict(pruned) if isinstance(pruned, Mapping) else {"pruned": pruned}
    if not others:
        raise InvalidArgumentError(
            "pruned is empty. Fix: pass a pruned model or a {name: model} mapping."
        )
    if dense_name in others:
        raise InvalidArgumentError(
            f"a pruned model is named {dense_name!r}, the dense model's name. Fix: rename it or "
            "pass dense_name=..."
        )
    models = {dense_name: _plain_model(dense, f"dense model {dense_name!r}")}
    for name, m in others.items():
        models[str(name)] = _plain_model(m, f"pruned model {name!r}")
    return models, [str(name) for name in others]


def _check_sizes(models, x, feature_names, background, explain, min_evals, top_k, shap):
    """Checks the models against the data and the counts; returns ``(feature names, top_k)``."""
    f = x.shape[1]
    for name, m in models.items():
        if m.input_shape[-1] != f:
            raise InvalidArgumentError(
                f"model {name!r} takes {m.input_shape[-1]} features but data has {f}. Fix: pass "
                "the data the models were trained on (same preprocessing)."
            )
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(f)]
    if len(names) != f:
        raise InvalidArgumentError(
            f"feature_names has {len(names)} names for {f} features. Fix: one name per column."
        )
    for label, v in (("background", background), ("explain", explain), ("min_evals", min_evals)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise InvalidArgumentError(
                f"{label} must be a positive integer, got {v!r}. Fix: e.g. 100."
            )
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise InvalidArgumentError(f"top_k must be a positive integer, got {top_k!r}. Fix: e.g. 5.")
    k = int(top_k)
    if shap and k >= f:
        k = max(1, f - 1)
        warnings.warn(
            f"top_k={top_k} is not below the number of features ({f}), where the overlap would "
            f"always be 1; using top_k={k}.",
            LegcWarning,
            stacklevel=3,
        )
    return names, k


def _sample_rows(n: int, background: int, explain: int, seed: int):
    """Seeded background and explained row indices (disjoint when there are enough rows)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_bg = min(int(background), n)
    bg_idx = np.sort(perm[:n_bg])
    disjoint = n - n_bg >= int(explain)
    rest = perm[n_bg:] if disjoint else perm
    ex_idx = np.sort(rest[: min(int(explain), len(rest))])
    return bg_idx, ex_idx, bool(disjoint)


def _run_weightwatcher(diag: Diagnosis, models: dict, min_evals: int, progress) -> None:
    from keras_legc._progress import Progress

    bar = Progress(len(models), "WeightWatcher", enabled=progress)
    for name, m in models.items():
        diag.layers[name] = weightwatcher_layers(m, min_evals=min_evals)
        bar.update(1)


def _run_shap(diag: Diagnosis, models: dict, background, explained, progress) -> None:
    from keras_legc._progress import Progress

    bar = Progress(len(models) * len(explained), "SHAP", enabled=progress)
    for name, m in models.items():
        imp, info = shap_importance(m, background, explained, progress=bar)
        diag.importances[name] = imp
        diag.shap_info[name] = info
