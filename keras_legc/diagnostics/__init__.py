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
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_legc.errors import (
    InvalidArgumentError,
    LegcWarning,
    MissingDependencyError,
    ModelStructureError,
)

#: A layer needs at least this many non-zero eigenvalues for its power-law fit to be reported.
MIN_EVALS = 10
#: The range of alpha the paper reads as "well trained".
ALPHA_RANGE = (2.0, 6.0)
#: Features shown in the SHAP bar chart (the most important ones of the dense model).
MAX_FEATURES_PLOTTED = 20

FLAG_OK = "ok"
FLAG_OUTSIDE = "outside [2, 6]"
FLAG_SMALL = "too small to fit"
FLAG_FAILED = "fit failed"

_EXTRA = "pip install 'keras-legc[diagnostics]'"
_PACKAGES = {"shap": "shap", "weightwatcher": "weightwatcher", "matplotlib": "matplotlib"}


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


def _require(module: str, purpose: str):
    """Import an optional package, or raise MissingDependencyError naming the extra."""
    import importlib

    try:
        with _quiet():  # weightwatcher logs and prints on import
            return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{_PACKAGES.get(module, module)} is not installed (or cannot be imported: {exc}); "
            f"keras_legc needs it for {purpose}. Fix: {_EXTRA}"
        ) from exc


# --------------------------------------------------------------------------------------------
# Agreement metrics (pure numpy/scipy)
# --------------------------------------------------------------------------------------------


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise InvalidArgumentError(
            f"importance vectors must be 1-D and of equal length, got shapes {a.shape} and "
            f"{b.shape}. Fix: pass one value per feature for both models."
        )
    if a.size < 2:
        raise InvalidArgumentError(
            f"agreement needs at least 2 features, got {a.size}. Fix: pass longer vectors."
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InvalidArgumentError(
            "importance vectors contain NaN or inf. Fix: check the model outputs are finite."
        )
    return a, b


def _constant(v: np.ndarray) -> bool:
    return bool(np.ptp(v) == 0.0)


def spearman_agreement(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation between two importance vectors (ties get average ranks).

    Args:
        a: importance per feature of one model (e.g. dense mean |SHAP|).
        b: importance per feature of the other model, same features in the same order.

    Returns:
        rho in [-1, 1]; 1 means the same ranking. NaN when either vector is constant (every
        feature equally important, e.g. a model whose output ignores its input): a rank
        correlation is undefined then, and reports say so instead of inventing a number.

    Raises:
        InvalidArgumentError: shapes differ, fewer than 2 features, or non-finite values.

    Example:
        >>> spearman_agreement([0.1, 0.5, 0.3], [1.0, 3.0, 2.0])
        1.0
    """
    a, b = _check_pair(a, b)
    if _constant(a) or _constant(b):
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def topk_overlap(a: Sequence[float], b: Sequence[float], k: int) -> float:
    """Share of the k most important features of ``a`` that are also among the k of ``b``.

    ``|top_k(a) & top_k(b)| / k``. Ties are broken by feature index (the earlier feature counts as
    more important), so the result is deterministic; NaN when either vector is constant (its
    top-k would be decided by the tie-break alone).

    Args:
        a: importance per feature of one model.
        b: importance per feature of the other model.
        k: how many top features to compare, 1 <= k <= number of features (k = n gives 1.0).

    Raises:
        InvalidArgumentError: k out of range, shapes differ, fewer than 2 features, non-finite.

    Example:
        >>> topk_overlap([5, 4, 3, 2, 1], [4, 5, 0, 3, 1], k=2)
        1.0
    """
    a, b = _check_pair(a, b)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= a.size:
        raise InvalidArgumentError(
            f"k must be an integer in [1, {a.size}] (the number of features), got {k!r}. Fix: "
            "pass a smaller k."
        )
    if _constant(a) or _constant(b):
        return float("nan")
    top_a = np.argsort(-a, kind="stable")[:k]
    top_b = np.argsort(-b, kind="stable")[:k]
    return float(np.intersect1d(top_a, top_b).size / k)


def _agreement(dense: np.ndarray, other: np.ndarray, k: int, name: str, ref: str) -> dict:
    rho = spearman_agreement(dense, other)
    overlap = topk_overlap(dense, other, k)
    note = ""
    constant = [n for n, v in ((ref, dense), (name, other)) if _constant(v)]
    if constant:
        note = (
            f"undefined: the importances of {' and '.join(constant)} are constant (every feature "
            "equally important, e.g. all-zero SHAP values because the output ignores the input)"
        )
    return {"spearman": rho, "topk_overlap": overlap, "k": k, "note": note}


# --------------------------------------------------------------------------------------------
# WeightWatcher
# --------------------------------------------------------------------------------------------


def _plain_model(model, what: str):
    """The model with pruning wrappers stripped, after checking it is a Keras 2 Dense model."""
    from keras_legc.keras.layers import dense_layers, is_pruning_wrapper

    dense_layers(model)
    if any(is_pruning_wrapper(layer) for layer in model.layers):
        from keras_legc.keras.pruning import strip

        model = strip(model)
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 2:
        raise ModelStructureError(
            f"{what} has input shape {shape}; diagnose explains models with one flat input "
            "(rows x features). Fix: pass a model whose input is (None, n_features)."
        )
    return model


def weightwatcher_layers(model, *, min_evals: int = MIN_EVALS) -> list[dict]:
    """WeightWatcher's alpha and alpha_weighted for every Dense layer of ``model``, flagged.

    Args:
        model: a built tf.keras (Keras 2) model (pruning wrappers are stripped first).
        min_evals: fewest non-zero eigenvalues a layer needs for its fit to be reported.

    Returns:
        One dict per Dense layer, in order: ``layer``, ``shape``, ``n_evals`` (min(in, out)),
        ``n_nonzero_evals``, ``alpha``, ``alpha_weighted``, ``lambda_max``, ``xmin``,
        ``tail_points`` (eigenvalues in the fitted tail), ``flag`` ("ok", "outside [2, 6]",
        "too small to fit", "fit failed"), ``reason`` (why, for the last two and the range),
        ``ww_warning`` (WeightWatcher's own label, e.g. "over-trained"), and ``eigenvalues``
        (the ESD, a numpy array, for plots).

    Example:
        >>> rows = weightwatcher_layers(model)
        >>> [(r["layer"], r["alpha"], r["flag"]) for r in rows]
    """
    ww = _require("weightwatcher", "the per-layer alpha (WeightWatcher)")
    from keras_legc.keras.layers import dense_layers

    model = _plain_model(model, "the model")
    layers = dense_layers(model)
    try:
        with _quiet():
            details = ww.WeightWatcher(model=model).analyze(min_evals=1, plot=False)
    except Exception as exc:  # keep going: every layer gets "fit failed" with the reason
        details, failure = None, f"WeightWatcher failed: {type(exc).__name__}: {exc}"
    else:
        failure = ""
    by_name = {}
    if details is not None and len(details):
        for rec in details.to_dict("records"):
            by_name[str(rec.get("name"))] = rec
    rows = []
    for layer in layers:
        kernel = layer.kernel.numpy().astype(np.float64)
        evals = np.sort(np.linalg.svd(kernel, compute_uv=False) ** 2)[::-1]
        tol = evals[0] * max(kernel.shape) * np.finfo(np.float32).eps if evals.size else 0.0
        nonzero = int((evals > tol).sum())
        row = {
            "layer": layer.name,
            "shape": [int(d) for d in kernel.shape],
            "n_evals": int(evals.size),
            "n_nonzero_evals": nonzero,
            "alpha": float("nan"),
            "alpha_weighted": float("nan"),
            "lambda_max": float(evals[0]) if evals.size else float("nan"),
            "xmin": float("nan"),
            "tail_points": 0,
            "flag": FLAG_OK,
            "reason": "",
            "ww_warning": "",
            "eigenvalues": evals,
        }
        rec = by_name.get(layer.name)
        if nonzero < min_evals:
            row["flag"] = FLAG_SMALL
            row["reason"] = (
                f"{nonzero} non-zero eigenvalue(s) < {min_evals} needed for a power-law fit"
                + (f" ({evals.size - nonzero} lost to zero rows/columns)" if nonzero < evals.size else "")
            )  # fmt: skip
        elif rec is None:
            row["flag"] = FLAG_FAILED
            row["reason"] = failure or "WeightWatcher returned no row for this layer"
        else:
            alpha = float(rec.get("alpha", float("nan")))
            row.update(
                alpha=alpha,
                alpha_weighted=float(rec.get("alpha_weighted", float("nan"))),
                xmin=float(rec.get("xmin", float("nan"))),
                tail_points=int(rec.get("num_pl_spikes", 0) or 0),
                ww_warning=str(rec.get("warning", "") or ""),
            )
            if not math.isfinite(alpha) or alpha <= 1.0:
                row["flag"] = FLAG_FAILED
                row["reason"] = f"power-law fit gave alpha = {alpha}"
            elif not ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]:
                row["flag"] = FLAG_OUTSIDE
                row["reason"] = (
                    "alpha < 2: heavy-tailed beyond the usual range (WeightWatcher: over-trained)"
                    if alpha < ALPHA_RANGE[0]
                    else "alpha > 6: close to random (WeightWatcher: under-trained)"
                )
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# SHAP
# --------------------------------------------------------------------------------------------


def shap_importance(
    model, background: np.ndarray, x: np.ndarray, *, chunk: int = 50, progress=None
) -> tuple[np.ndarray, dict]:
    """Mean |SHAP value| per feature of ``model`` on rows ``x`` (DeepExplainer on ``background``).

    Args:
        model: a built tf.keras (Keras 2) model with one flat input.
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


# --------------------------------------------------------------------------------------------
# diagnose
# --------------------------------------------------------------------------------------------


@dataclass
class Diagnosis:
    """What :func:`diagnose` found; ``save`` writes it as report.json, report.md and PNGs.

    Attributes:
        models: model names, the dense (reference) model first.
        layers: ``{model: [layer row, ...]}`` from :func:`weightwatcher_layers` (empty if skipped).
        importances: ``{model: mean |SHAP| per feature}`` (empty if skipped).
        agreement: ``{pruned model: {"spearman", "topk_overlap", "k", "note"}}`` vs the dense one.
        feature_names: one name per feature.
        shap_info: ``{model: {"n_outputs", "additivity_error", "seconds"}}``.
        settings: the arguments and sizes used (seed, rows, top_k, versions).
    """

    models: list[str]
    layers: dict[str, list[dict]] = field(default_factory=dict)
    importances: dict[str, np.ndarray] = field(default_factory=dict)
    agreement: dict[str, dict] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    shap_info: dict[str, dict] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return self.models[0]

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN written as null, eigenvalues left out)."""

        def clean(v):
            if isinstance(v, float | np.floating):
                return float(v) if math.isfinite(v) else None
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, np.ndarray):
                return [clean(x) for x in v.tolist()]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items() if k != "eigenvalues"}
            if isinstance(v, list | tuple):
                return [clean(x) for x in v]
            return v

        return clean(
            {
                "format": "keras_legc.diagnosis",
                "version": 1,
                "models": self.models,
                "reference": self.reference,
                "settings": self.settings,
                "weightwatcher": self.layers,
                "feature_names": self.feature_names,
                "importance": {m: np.asarray(v) for m, v in self.importances.items()},
                "importance_definition": (
                    "mean |SHAP value| over the explained rows and over all model outputs "
                    "(shap.DeepExplainer)"
                ),
                "shap_info": self.shap_info,
                "agreement": self.agreement,
            }
        )

    def to_json(self) -> str:
        """The report as JSON text (``report.json``)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_markdown(self, images: Mapping[str, str] | None = None) -> str:
        """The report as Markdown (``report.md``); ``images`` maps plot names to relative paths."""
        images = images or {}
        s = self.settings
        lines = ["# keras-legc diagnostics", ""]
        lines.append(
            f"Models: {', '.join(f'`{m}`' for m in self.models)} (reference: `{self.reference}`). "
            f"Seed {s.get('seed')}."
        )
        lines.append("")
        if self.layers:
            lo, hi = ALPHA_RANGE
            lines += [
                "## WeightWatcher: power-law exponent per layer",
                "",
                f"alpha / alpha_weighted per Dense layer. The paper reads {lo:g} <= alpha <= {hi:g} "
                "as well trained; alpha < 2 is what WeightWatcher calls over-trained, alpha > 6 "
                "under-trained (close to random). alpha_weighted = alpha * log10(lambda_max). "
                f"Layers with fewer than {s.get('min_evals', MIN_EVALS)} non-zero eigenvalues are "
                "not fitted. Zeros of pruned kernels are ordinary entries of W; all-zero "
                "rows/columns lower the rank and only non-zero eigenvalues are fitted.",
                "",
            ]
            names = [r["layer"] for r in self.layers[self.reference]]
            shapes = {
                r["layer"]: "x".join(map(str, r["shape"])) for r in self.layers[self.reference]
            }
            lines.append("| model | " + " | ".join(f"{n} ({shapes[n]})" for n in names) + " |")
            lines.append("|---" * (len(names) + 1) + "|")
            for m in self.models:
                by = {r["layer"]: r for r in self.layers.get(m, [])}
                cells = []
                for n in names:
                    r = by.get(n)
                    if r is None:
                        cells.append("n/a")
                    elif r["flag"] in (FLAG_SMALL, FLAG_FAILED):
                        cells.append(f"{r['flag']}")
                    else:
                        mark = "" if r["flag"] == FLAG_OK else " (!)"
                        cells.append(f"{r['alpha']:.2f} / {r['alpha_weighted']:.2f}{mark}")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            lines.append("")
            notes = [
                f"- `{m}` {r['layer']}: {r['flag']}: {r['reason']}"
                for m in self.models
                for r in self.layers.get(m, [])
                if r["flag"] != FLAG_OK
            ]
            if notes:
                lines += ["Flags ((!) = outside [2, 6]):", "", *notes, ""]
            if "alpha" in images:
                lines += [f"![alpha per layer]({images['alpha']})", ""]
            esd = [(k, v) for k, v in images.items() if k.startswith("esd:")]
            if esd:
                lines.append(
                    "ESD plots (log-log histogram of the eigenvalues of W^T W; dashed: xmin):"
                )
                lines.append("")
                lines += [f"- [{k[4:]}]({v})" for k, v in esd]
                lines.append("")
        if self.importances:
            k = s.get("top_k")
            lines += [
                "## SHAP feature importance and agreement with the reference",
                "",
                f"Importance = mean |SHAP value| over {s.get('n_explain')} explained rows and all "
                f"model outputs (shap.DeepExplainer, {s.get('n_background')} background rows, the "
                "same rows for every model). Spearman's rho compares the whole ranking (1 = same "
                f"order, 0 = unrelated); top-{k} overlap is the share of the reference's {k} most "
                "important features that are also among the model's top "
                f"{k} (1 = same top features).",
                "",
                f"| model | Spearman rho | top-{k} overlap | note |",
                "|---|---|---|---|",
            ]
            for m, a in self.agreement.items():
                rho = "undefined" if _nan(a["spearman"]) else f"{a['spearman']:.3f}"
                ov = "undefined" if _nan(a["topk_overlap"]) else f"{a['topk_overlap']:.2f}"
                lines.append(f"| {m} | {rho} | {ov} | {a['note']} |")
            lines.append("")
            ref = np.asarray(self.importances[self.reference])
            order = np.argsort(-ref, kind="stable")[: min(len(ref), MAX_FEATURES_PLOTTED)]
            lines.append(
                f"Mean |SHAP| of the {len(order)} most important features of `{self.reference}`:"
            )
            lines.append("")
            lines.append("| feature | " + " | ".join(self.models) + " |")
            lines.append("|---" * (len(self.models) + 1) + "|")
            for j in order:
                vals = " | ".join(f"{float(self.importances[m][j]):.4g}" for m in self.models)
                lines.append(f"| {self.feature_names[j]} | {vals} |")
            lines.append("")
            add = max((i["additivity_error"] for i in self.shap_info.values()), default=0.0)
            lines.append(
                f"SHAP additivity check (sum of SHAP values + expected value = model output): "
                f"max error {add:.2g}."
            )
            lines.append("")
            if "shap" in images:
                lines += [f"![mean |SHAP| per feature]({images['shap']})", ""]
        lines.append(
            f"Versions: {', '.join(f'{k} {v}' for k, v in sorted(s.get('versions', {}).items()))}."
        )
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """A few lines for a terminal."""
        out = []
        for m in self.models:
            rows = self.layers.get(m, [])
            if rows:
                cells = [
                    f"{r['layer']}={r['alpha']:.2f}" if r["flag"] not in (FLAG_SMALL, FLAG_FAILED)
                    else f"{r['layer']}={r['flag']}"
                    for r in rows
                ]  # fmt: skip
                out.append(f"{m}: alpha {' '.join(cells)}")
        for m, a in self.agreement.items():
            out.append(
                f"{m} vs {self.reference}: Spearman {a['spearman']:.3f}, "
                f"top-{a['k']} overlap {a['topk_overlap']:.2f}" + (f" ({a['note']})" if a["note"] else "")
            )  # fmt: skip
        return "\n".join(out)

    def save(self, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``report.json``, ``report.md``, ``alpha.png``, ``shap.png`` and ``esd/*.png``.

        Every file is written atomically. Nothing is written when any of them exists and
        ``overwrite`` is False.

        Args:
            out_dir: the folder (created if needed).
            overwrite: replace existing report files.

        Returns:
            The path of ``report.md``.

        Example:
            >>> diagnosis.save("runs/diag", overwrite=True)
        """
        from keras_legc._io import atomic_write, atomic_write_bytes, check_writable

        _require("matplotlib", "the report's plots")
        out = Path(out_dir)
        figures = self._figures()
        targets = [out / "report.json", out / "report.md", *(out / p for p in figures)]
        for t in targets:  # refuse before writing anything
            check_writable(t, overwrite)
        for rel, draw in figures.items():
            fig = draw()
            atomic_write(out / rel, lambda f, fig=fig: fig.savefig(f, format="png", dpi=110),
                         overwrite=overwrite)  # fmt: skip
        images = {_image_key(rel): rel for rel in figures}
        atomic_write_bytes(out / "report.json", self.to_json().encode(), overwrite=overwrite)
        md = self.to_markdown(images)
        return atomic_write_bytes(out / "report.md", md.encode(), overwrite=overwrite)

    # -- plots (matplotlib's object API with the Agg canvas: no display, no pyplot state) --

    def _figures(self) -> dict[str, Any]:
        """``{relative path: function that draws the figure}`` (drawn only when written)."""
        figs = {}
        if self.layers:
            figs["alpha.png"] = self._alpha_figure
            for m in self.models:
                for r in self.layers.get(m, []):
                    if r["flag"] not in (FLAG_SMALL,) and len(r.get("eigenvalues", [])):
                        rel = f"esd/{_safe(m)}__{_safe(r['layer'])}.png"
                        figs[rel] = lambda m=m, r=r: _esd_figure(m, r)
        if self.importances:
            figs["shap.png"] = self._shap_figure
        return figs

    def _alpha_figure(self):
        fig = _figure(figsize=(8, 6))
        names = [r["layer"] for r in self.layers[self.reference]]
        x = np.arange(len(names))
        width = 0.8 / len(self.models)
        for panel, key in enumerate(("alpha", "alpha_weighted")):
            ax = fig.add_subplot(2, 1, panel + 1)
            if key == "alpha":
                ax.axhspan(*ALPHA_RANGE, color="tab:green", alpha=0.12, label="2 <= alpha <= 6")
            for i, m in enumerate(self.models):
                by = {r["layer"]: r for r in self.layers.get(m, [])}
                vals = [by[n][key] if n in by else np.nan for n in names]
                ax.bar(x + (i - (len(self.models) - 1) / 2) * width, np.nan_to_num(vals), width,
                       label=m)  # fmt: skip
            ax.set_xticks(x, names)
            ax.set_ylabel(key)
            ax.axhline(0, color="black", linewidth=0.5)
        fig.axes[0].legend(fontsize=7, ncol=min(len(self.models) + 1, 4))
        fig.axes[0].set_title("WeightWatcher per layer (layers not fitted: no bar)")
        fig.tight_layout()
        return fig

    def _shap_figure(self):
        ref = np.asarray(self.importances[self.reference])
        order = np.argsort(-ref, kind="stable")[: min(len(ref), MAX_FEATURES_PLOTTED)][::-1]
        n = len(self.models)
        fig = _figure(figsize=(2.6 * n + 1.5, 0.28 * len(order) + 1.5))
        labels = [self.feature_names[j] for j in order]
        first = None
        for i, m in enumerate(self.models):
            ax = fig.add_subplot(1, n, i + 1, sharey=first)
            first = first or ax
            ax.barh(np.arange(len(order)), np.asarray(self.importances[m])[order])
            if i == 0:
                ax.set_yticks(np.arange(len(order)), labels, fontsize=7)
            else:
                ax.tick_params(axis="y", labelleft=False)
            a = self.agreement.get(m)
            title = (
                m
                if a is None
                else f"{m}\nrho {_fmt(a['spearman'])}, top-{a['k']} {_fmt(a['topk_overlap'], 2)}"
            )
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("mean |SHAP|", fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
        fig.tight_layout()
        return fig


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if _nan(v) else f"{v:.{digits}f}"


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _image_key(rel: str) -> str:
    if rel.startswith("esd/"):
        return "esd:" + rel[4:-4].replace("__", " / ")
    return rel[:-4]


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _esd_figure(model_name: str, row: dict):
    evals = np.asarray(row["eigenvalues"], dtype=np.float64)
    evals = evals[evals > 0]
    fig = _figure(figsize=(5, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    if evals.size:
        lo, hi = evals.min(), evals.max()
        bins = np.geomspace(lo, hi * 1.0001, max(8, min(50, evals.size // 2))) if hi > lo else 8
        ax.hist(evals, bins=bins, density=True, color="tab:blue", alpha=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
    if math.isfinite(row["xmin"]):
        ax.axvline(row["xmin"], color="red", linestyle="--", label=f"xmin {row['xmin']:.3g}")
        ax.legend(fontsize=7)
    ax.set_xlabel("eigenvalue of W^T W")
    ax.set_ylabel("density")
    ax.set_title(
        f"{model_name} / {row['layer']}: alpha {_fmt(row['alpha'], 2)} ({row['flag']})", fontsize=9
    )
    fig.tight_layout()
    return fig


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
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InvalidArgumentError(
            f"cannot read {path} as .npy/.npz ({type(exc).__name__}: {exc}). Fix: save the "
            "inputs with numpy.save or numpy.savez."
        ) from exc
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        if key not in loaded.files:
            raise InvalidArgumentError(
                f"{path} has no array {key!r} (it has {sorted(loaded.files)}). Fix: pass --key "
                "with the name of the model inputs."
            )
        names = (
            [str(n) for n in loaded["feature_names"]] if "feature_names" in loaded.files else None
        )
        return loaded[key], names


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("keras-legc", "tensorflow", "shap", "weightwatcher"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


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
    from keras_legc._progress import Progress

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
    if isinstance(pruned, Mapping):
        others = dict(pruned)
    else:
        others = {"pruned": pruned}
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
    x = _as_x(data)
    n, f = x.shape
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
            stacklevel=2,
        )

    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_bg = min(int(background), n)
    bg_idx = np.sort(perm[:n_bg])
    rest = perm[n_bg:] if n - n_bg >= int(explain) else perm
    ex_idx = np.sort(rest[: min(int(explain), len(rest))])
    settings = {
        "seed": int(seed),
        "n_rows": int(n),
        "n_features": int(f),
        "n_background": int(len(bg_idx)),
        "n_explain": int(len(ex_idx)),
        "explained_rows_disjoint_from_background": bool(n - n_bg >= int(explain)),
        "top_k": k,
        "min_evals": int(min_evals),
        "alpha_range": list(ALPHA_RANGE),
        "explainer": "shap.DeepExplainer",
        "versions": _versions(),
    }
    diag = Diagnosis(models=list(models), feature_names=names, settings=settings)

    if weightwatcher:
        bar = Progress(len(models), "WeightWatcher", enabled=progress)
        for name, m in models.items():
            diag.layers[name] = weightwatcher_layers(m, min_evals=int(min_evals))
            bar.update(1)
    if shap:
        bar = Progress(len(models) * len(ex_idx), "SHAP", enabled=progress)
        for name, m in models.items():
            imp, info = shap_importance(m, x[bg_idx], x[ex_idx], progress=bar)
            diag.importances[name] = imp
            diag.shap_info[name] = info
        ref = diag.importances[dense_name]
        for name in others:
            diag.agreement[str(name)] = _agreement(ref, diag.importances[str(name)], k, str(name),
                                                   dense_name)  # fmt: skip
    if out_dir is not None:
        diag.save(out_dir, overwrite=overwrite)
    return diag


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
]
