"""The reproduction's diagnostics: SHAP agreement on Cancer, Banknote and Titanic over seeds, with a
verdict on the paper's claim, and the MNIST 784-50-30-10 alpha table beside the paper's Table 4.

Used by ``legc reproduce`` (after the run, when models were saved and the ``diagnostics`` extra is
installed) and by ``tools/diagnose_paper.py``. Reads the run folder the reproduction writes:

    RUN_DIR/models/<mode>/<dataset>/seed<s>/<method>.keras
        (methods: dense, ft, pt, random_ft, magnitude_ft, random_pt, magnitude_pt)
    RUN_DIR/data/<mode>/<dataset>.npz  (x_train, y_train, x_test, y_test, feature_names)

Missing methods, seeds or datasets are skipped and named in the document. A JSON file with every
per-seed number is written beside the Markdown (same name, .json).

The paper's claim (spec section 7, read from its SHAP figures): LEGCNet keeps the dense model's
feature importance and random pruning does not. Here, per dataset and protocol (FT, PT):

- "keeps" = mean Spearman rho of LEGC vs dense >= KEEP_RHO (0.8);
- "better than random" = paired one-sided t-test over seeds of rho(LEGC) - rho(random) with
  p < 0.05.

Verdict: reproduced (both), not reproduced (random agrees as well or better, or LEGC does not keep
the ranking although it beats random), inconclusive (fewer than 3 seeds with defined values, or a
positive difference that is not significant).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_legc._env import package_version, python_version, today
from keras_legc._io import atomic_write_bytes, atomic_write_json, check_writable
from keras_legc._progress import Progress
from keras_legc.diagnostics import FLAG_FAILED, FLAG_SMALL, diagnose, weightwatcher_layers
from keras_legc.errors import InvalidArgumentError
from keras_legc.keras.pruning import load_model
from legc_research.stats import mean_sd


@dataclass(frozen=True)
class DiagnosticsSettings:
    """SHAP sampling and progress for :func:`write_diagnostics`."""

    background: int = 100
    explain: int = 200
    seed: int = 0
    progress: bool | None = None


TABULAR = ("cancer", "banknote", "titanic")
METHODS = ("ft", "pt", "random_ft", "magnitude_ft", "random_pt", "magnitude_pt")
LABELS = {
    "ft": "LEGCNet-FT",
    "pt": "LEGCNet-PT",
    "random_ft": "Random (FT)",
    "magnitude_ft": "Magnitude (FT)",
    "random_pt": "Random (PT)",
    "magnitude_pt": "Magnitude (PT)",
}
KEEP_RHO = 0.8
MIN_SEEDS = 3
P_LEVEL = 0.05

# Paper Table 4 (MNIST 784-50-30-10), alpha / alpha_weighted per layer (spec section 7).
PAPER_TABLE4 = {
    "dense": [(2.19, 1.63), (1.51, 1.88), (1.94, 2.76)],
    "ft": [(2.24, 1.64), (1.51, 1.83), (2.29, 3.20)],
    "pt": [(2.19, 1.71), (1.51, 1.85), (2.73, 3.87)],
    "random_ft": [(2.30, 1.53), (1.70, 1.95), (2.00, 2.84)],
    "magnitude_ft": [(2.19, 1.63), (1.55, 1.85), (1.96, 2.78)],
}
TABLE4_ROWS = {
    "dense": "Dense",
    "ft": "LEGCNet-FT",
    "pt": "LEGCNet-PT",
    "random_ft": "Random",
    "magnitude_ft": "Magnitude",
}


def _seeds(folder: Path) -> list[tuple[int, Path]]:
    out = []
    for p in folder.glob("seed*"):
        m = re.fullmatch(r"seed(\d+)", p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def _mean_sd(values: list[float]) -> tuple[float, float, int]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    return (*mean_sd(v, single=float("nan")), int(v.size))


def _ms(values: list[float], digits: int = 2) -> str:
    m, s, n = _mean_sd(values)
    if n == 0:
        return "undefined"
    sd = f" +/- {s:.{digits}f}" if n > 1 else ""
    missing = len(values) - n
    return f"{m:.{digits}f}{sd} (n={n}{f', {missing} undefined' if missing else ''})"


def verdict(legc: list[float], random: list[float]) -> tuple[str, str, dict]:
    """Verdict on "LEGC keeps feature importance, random does not" from per-seed Spearman rhos.

    ``legc[i]`` and ``random[i]`` come from the same seed; NaN (undefined) pairs are dropped.
    """
    from scipy.stats import ttest_rel

    pairs = [
        (a, b)
        for a, b in zip(legc, random, strict=True)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    stats = {"n_pairs": len(pairs)}
    if len(pairs) < MIN_SEEDS:
        return (
            "inconclusive",
            f"{len(pairs)} seed(s) with defined values; at least {MIN_SEEDS} are needed",
            stats,
        )
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    diff = a - b
    stats.update(
        mean_legc=float(a.mean()), mean_random=float(b.mean()), mean_diff=float(diff.mean())
    )
    if np.all(diff == 0):
        p = 1.0
    else:
        p = float(ttest_rel(a, b, alternative="greater").pvalue)
    stats["p_greater"] = p
    wins = int((diff > 0).sum())
    what = (
        f"rho LEGC {a.mean():.2f} vs random {b.mean():.2f}, paired diff {diff.mean():+.2f}, "
        f"one-sided p = {p:.3g}, LEGC higher in {wins}/{len(diff)} seeds"
    )
    if diff.mean() <= 0:
        return "not reproduced", f"random pruning agrees as well or better ({what})", stats
    if p >= P_LEVEL:
        return "inconclusive", f"LEGC higher on average but not significantly ({what})", stats
    if a.mean() < KEEP_RHO:
        return (
            "not reproduced",
            f"LEGC beats random but does not keep the ranking (mean rho {a.mean():.2f} < "
            f"{KEEP_RHO}; {what})",
            stats,
        )
    return "reproduced", what, stats


def agreement_section(
    run_dir: Path, mode: str, args: DiagnosticsSettings, notes: list[str]
) -> tuple[list[str], dict]:
    data_dir = run_dir / "data" / mode
    model_dir = run_dir / "models" / mode
    work = []
    for ds in TABULAR:
        npz, seeds = data_dir / f"{ds}.npz", _seeds(model_dir / ds)
        if not npz.exists() or not seeds:
            notes.append(
                f"{ds}: skipped ({'no ' + str(npz) if not npz.exists() else 'no seed folders'})."
            )
            continue
        work.append((ds, npz, seeds))
    results = _agreement_per_seed(work, args, notes)
    lines, verdicts = _agreement_lines(results, args)
    if verdicts:
        kinds = {v["verdict"] for v in verdicts.values()}
        overall = (
            "reproduced"
            if kinds == {"reproduced"}
            else "not reproduced"
            if "not reproduced" in kinds
            else "inconclusive"
        )
        lines += [
            f"**Verdict on the paper's claim (LEGCNet keeps feature importance, random pruning "
            f"does not): {overall}** ({sum(v['verdict'] == 'reproduced' for v in verdicts.values())}"
            f" of {len(verdicts)} dataset/protocol pairs reproduced; rule: mean rho(LEGC) >= "
            f"{KEEP_RHO} and rho(LEGC) > rho(random) by a paired one-sided t-test over seeds at "
            f"p < {P_LEVEL}, at least {MIN_SEEDS} seeds).",
            "",
        ]
    else:
        overall = "inconclusive"
        lines += ["No LEGC/random pair found: no verdict.", ""]
    return lines, {"datasets": results, "verdicts": verdicts, "overall": overall}


def _agreement_per_seed(work: list, args: DiagnosticsSettings, notes: list[str]) -> dict:
    """SHAP agreement of every pruned model with its seed's dense model, per dataset."""
    results: dict = {}
    bar = Progress(sum(len(s) for _, _, s in work), "SHAP agreement", enabled=args.progress)
    for ds, npz, seeds in work:
        with np.load(npz, allow_pickle=False) as d:
            x = np.concatenate([d["x_train"], d["x_test"]]).astype(np.float32)
            names = [str(n) for n in d["feature_names"]] if "feature_names" in d.files else None
        k = max(1, min(5, x.shape[1] // 2))
        per_seed = {}
        for seed, folder in seeds:
            dense_path = folder / "dense.keras"
            if not dense_path.exists():
                notes.append(f"{ds} seed {seed}: no dense.keras, skipped.")
                bar.update(1)
                continue
            present = {
                m: folder / f"{m}.keras" for m in METHODS if (folder / f"{m}.keras").exists()
            }
            if not present:
                notes.append(f"{ds} seed {seed}: no pruned model, skipped.")
                bar.update(1)
                continue
            dense = load_model(dense_path, compile=False)
            pruned = {m: load_model(p, compile=False) for m, p in present.items()}
            diag = diagnose(
                dense, pruned, x, background=args.background, explain=args.explain, top_k=k,
                feature_names=names, seed=args.seed, weightwatcher=False, progress=False,
            )  # fmt: skip
            per_seed[seed] = diag.agreement
            bar.update(1)
        results[ds] = {"k": k, "n_features": int(x.shape[1]), "per_seed": per_seed}
    return results


def _agreement_lines(results: dict, args: DiagnosticsSettings) -> tuple[list[str], dict]:
    """The section's text, one table and the verdicts per dataset; ``(lines, verdicts)``."""

    lines = [
        "## SHAP feature importance: pruned vs dense (Cancer, Banknote, Titanic)",
        "",
        "Importance = mean |SHAP value| per feature (shap.DeepExplainer, "
        f"{args.background} background rows and {args.explain} explained rows sampled with seed "
        f"{args.seed} from the preprocessed train+test rows, the same rows for every model of a "
        "seed; mean over all softmax outputs). Agreement with the dense model of the same seed: "
        "Spearman's rho (whole ranking; 1 = same order) and top-k overlap (share of the dense "
        "model's k most important features among the pruned model's k; k = min(5, features // 2)). "
        "Mean +/- sd over seeds.",
        "",
    ]
    verdicts = {}
    for ds, res in results.items():
        seeds = sorted(res["per_seed"])
        if not seeds:
            continue
        k = res["k"]
        lines += [
            f"### {ds} ({res['n_features']} features, seeds {', '.join(map(str, seeds))})",
            "",
            f"| model | Spearman rho | top-{k} overlap |",
            "|---|---|---|",
        ]
        for m in METHODS:
            vals = [res["per_seed"][s].get(m) for s in seeds]
            if all(v is None for v in vals):
                continue
            rho = [v["spearman"] if v else None for v in vals]
            ov = [v["topk_overlap"] if v else None for v in vals]
            lines.append(f"| {LABELS[m]} | {_ms(rho)} | {_ms(ov)} |")
        lines.append("")
        for proto in ("ft", "pt"):
            rnd = f"random_{proto}"
            legc = [res["per_seed"][s].get(proto) for s in seeds]
            base = [res["per_seed"][s].get(rnd) for s in seeds]
            if all(v is None for v in legc) or all(v is None for v in base):
                continue
            v, why, stats = verdict(
                [x["spearman"] if x else None for x in legc],
                [x["spearman"] if x else None for x in base],
            )
            verdicts[f"{ds}/{proto}"] = {"verdict": v, "reason": why, **stats}
            lines.append(f"- {LABELS[proto]} vs {LABELS[rnd]}: **{v}**: {why}.")
        lines.append("")
    return lines, verdicts


def alpha_section(
    run_dir: Path, mode: str, args: DiagnosticsSettings, notes: list[str]
) -> tuple[list[str], dict]:
    seeds = _seeds(run_dir / "models" / mode / "mnist")
    if not seeds:
        notes.append("mnist: skipped (no seed folders).")
        return [], {}
    rows: dict[str, list[list[dict]]] = {}
    bar = Progress(len(seeds), "WeightWatcher (MNIST)", enabled=args.progress)
    for _seed, folder in seeds:
        for m in ("dense", *METHODS):
            path = folder / f"{m}.keras"
            if path.exists():
                model = load_model(path, compile=False)
                rows.setdefault(m, []).append(weightwatcher_layers(model))
        bar.update(1)
    if "dense" not in rows:
        notes.append("mnist: no dense.keras, alpha table skipped.")
        return [], {}
    shapes = ["-".join(map(str, r["shape"])) for r in rows["dense"][0]]
    header = " | ".join(f"L{i + 1} {s}" for i, s in enumerate(shapes))
    lines = [
        f"## MNIST {'-'.join([shapes[0].split('-')[0], *[s.split('-')[1] for s in shapes]])}: "
        "WeightWatcher alpha / alpha_weighted per layer",
        "",
        f"Ours: mean over {len(seeds)} seed(s) ({', '.join(str(s) for s, _ in seeds)}); paper: "
        "Table 4 (in brackets; the paper reads 2 <= alpha <= 6 as well trained). '*' marks a "
        "mean outside [2, 6]; layers too small to fit or whose fit failed are named.",
        "",
        f"| model | {header} |",
        "|---" * (len(shapes) + 1) + "|",
    ]
    table = {}
    for m in ("dense", *METHODS):
        if m not in rows:
            continue
        cells, entry = [], []
        for j in range(len(shapes)):
            per_seed = [seed_rows[j] for seed_rows in rows[m] if j < len(seed_rows)]
            flags = {r["flag"] for r in per_seed}
            a = _mean_sd([r["alpha"] for r in per_seed])
            aw = _mean_sd([r["alpha_weighted"] for r in per_seed])
            entry.append({"alpha": a[0], "alpha_sd": a[1], "alpha_weighted": aw[0],
                          "alpha_weighted_sd": aw[1], "n": a[2], "flags": sorted(flags)})  # fmt: skip
            if a[2] == 0:
                cell = " / ".join(sorted(flags & {FLAG_SMALL, FLAG_FAILED})) or "n/a"
            else:
                star = "" if 2 <= a[0] <= 6 else "*"
                cell = f"{a[0]:.2f}{star} / {aw[0]:.2f}"
            paper = PAPER_TABLE4.get(m)
            if paper and j < len(paper):
                cell += f" ({paper[j][0]:.2f} / {paper[j][1]:.2f})"
            cells.append(cell)
        table[m] = entry
        lines.append(f"| {TABLE4_ROWS.get(m, LABELS.get(m, m))} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines, {"seeds": [s for s, _ in seeds], "layers": shapes, "ours": table,
                   "paper_table4": PAPER_TABLE4}  # fmt: skip


def write_diagnostics(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    mode: str = "paper",
    settings: DiagnosticsSettings | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> dict:
    """Write ``out`` (Markdown) and ``out`` with ``.json`` from a reproduction run folder.

    Args:
        run_dir: the folder ``legc reproduce --out`` wrote (with ``models/`` and ``data/``).
        out: the Markdown file, e.g. ``docs/diagnostics.md``; the JSON goes beside it.
        mode: which preprocessing mode's models to read (``paper`` or ``clean``).
        settings: SHAP rows, sampling seed and progress bars.
        overwrite: replace existing files (otherwise :class:`~keras_legc.OutputExistsError`).
        command: the command line to print in the document's header.

    Returns:
        The JSON record (agreement per dataset and seed, verdicts, alpha table, notes).

    Raises:
        InvalidArgumentError: ``run_dir`` has no models for ``mode``.
        OutputExistsError: ``out`` or its JSON exists and ``overwrite`` is False.
        MissingDependencyError: shap / weightwatcher missing (names the extra).

    Example:
        >>> write_diagnostics("runs/reproduce", "docs/diagnostics.md", overwrite=True)
    """
    run_dir, out = Path(run_dir), Path(out)
    settings = settings or DiagnosticsSettings()
    if not (run_dir / "models" / mode).is_dir():
        raise InvalidArgumentError(
            f"{run_dir}/models/{mode} does not exist. Fix: pass the run folder of the "
            "reproduction (made without --no-models) and the mode it ran."
        )
    json_out = out.with_suffix(".json")
    check_writable(out, overwrite)
    check_writable(json_out, overwrite)
    notes: list[str] = []
    agree_lines, agree = agreement_section(run_dir, mode, settings, notes)
    alpha_lines, alpha = alpha_section(run_dir, mode, settings, notes)
    cmd = command or f"legc_research.paper_diagnostics.write_diagnostics({str(run_dir)!r}, ...)"
    head = [
        "# Diagnostics of the reproduction: feature importance and WeightWatcher alpha",
        "",
        f"Generated by `{cmd}` on {today()}, "
        f"Python {python_version()}, TensorFlow {_version('tensorflow')}, shap "
        f"{_version('shap')}, weightwatcher {_version('weightwatcher')}; run folder "
        f"`{run_dir}` (mode {mode}). Re-run the same command to regenerate.",
        "",
    ]
    tail = ["## Notes", "", *[f"- {n}" for n in notes], ""] if notes else []
    md = "\n".join(head + agree_lines + alpha_lines + tail)
    record = {"agreement": agree, "alpha": alpha, "notes": notes, "mode": mode, "command": cmd}
    atomic_write_json(json_out, _finite(record), overwrite=overwrite)
    atomic_write_bytes(out, md.encode(), overwrite=overwrite)
    return record


def _finite(v):
    """NaN/inf -> None (strict JSON), recursively."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _version(pkg: str) -> str:
    return package_version(pkg, "?")
