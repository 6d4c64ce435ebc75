"""The :class:`Diagnosis` record and its renderings: JSON, Markdown, terminal summary, PNG plots."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_legc.diagnostics._common import _require
from keras_legc.diagnostics.weightwatcher import (
    ALPHA_RANGE,
    FLAG_FAILED,
    FLAG_OK,
    FLAG_SMALL,
    MIN_EVALS,
)

#: Features shown in the SHAP bar chart (the most important ones of the dense model).
MAX_FEATURES_PLOTTED = 20


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
            lines += self._markdown_weightwatcher(images)
        if self.importances:
            lines += self._markdown_shap(images)
        lines.append(
            f"Versions: {', '.join(f'{k} {v}' for k, v in sorted(s.get('versions', {}).items()))}."
        )
        return "\n".join(lines) + "\n"

    def _markdown_weightwatcher(self, images: Mapping[str, str]) -> list[str]:
        """The WeightWatcher section: alpha per layer and model, flags, plot links."""
        s = self.settings
        lines: list[str] = []
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
        shapes = {r["layer"]: "x".join(map(str, r["shape"])) for r in self.layers[self.reference]}
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
            lines.append("ESD plots (log-log histogram of the eigenvalues of W^T W; dashed: xmin):")
            lines.append("")
            lines += [f"- [{k[4:]}]({v})" for k, v in esd]
            lines.append("")
        return lines

    def _markdown_shap(self, images: Mapping[str, str]) -> list[str]:
        """The SHAP section: agreement with the reference, top features, additivity."""
        s = self.settings
        lines: list[str] = []
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
        return lines

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
