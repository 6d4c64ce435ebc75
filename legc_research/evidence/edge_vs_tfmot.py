"""keras-legc against TF-MOT on the zoo's conv nets, from the edge suite's results (issue 25's
evidence): every keras-legc unstructured method against TF-MOT ``prune_low_magnitude`` +
``PolynomialDecay`` at the same sparsity, and keras-legc's 2:4 against TF-MOT's 2:4, paired by
seed (the same dense checkpoint, the same fine-tuning budget), float and int8; and the default
ranking against global magnitude (issue 27's target on the conv nets).

    python tools/edge_suite.py --report-only   # written beside edge-suite.md

The targets (issue 25): at every sparsity no worse than TF-MOT by more than
:data:`TOLERANCE_PP`, and ahead of it at the highest sparsity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_legc._io import atomic_write_bytes
from legc_research.results_report import SIGNIFICANCE, direction, paired

#: (keras-legc method, the TF-MOT method it is paired with)
PAIRS = (
    ("legc_magnitude", "tfmot"),
    ("legc_gradual", "tfmot"),
    ("legc_gradual_same_zeros", "tfmot"),
    ("legc_default", "tfmot"),
    ("legc_default_same_zeros", "tfmot"),
    ("legc_default_block", "tfmot"),
    ("legc_2of4", "tfmot_2of4"),
    ("legc_2of4_same_zeros", "tfmot_2of4"),
)
#: the issue's tolerance: "no worse than TF-MOT by more than 0.3 pp"
TOLERANCE_PP = 0.3
#: the method whose verdict is the headline (the library's default ranking)
HEADLINE = "legc_default"
#: the like-for-like comparisons: as many zeros as TF-MOT (which leaves depthwise kernels dense),
#: one-shot (the default ranking) and gradual
SAME_ZEROS = ("legc_default_same_zeros", "legc_gradual_same_zeros")
#: keras-legc's 2:4 against TF-MOT's: on every prunable weight, and on TF-MOT's weights only
TWO_OF_FOUR = ("legc_2of4", "legc_2of4_same_zeros")
#: issue 27: the default ranking against what a user would pick instead, global magnitude (the
#: same one-shot budget, the same sparsity of every prunable weight)
MAGNITUDE = "legc_magnitude"


def _cells(results: dict) -> dict[tuple, dict]:
    """``(net, method, target, quantization) -> {seed: cell}`` of the cells that ran."""
    out: dict[tuple, dict] = {}
    for c in results["cells"]:
        if c["status"] == "ok":
            key = (c["net"], c["method"], round(float(c["target"]), 6), c["quantization"])
            out.setdefault(key, {})[int(c["seed"])] = c
    return out


def _ratio(mine: dict, anchor: dict, seeds: Sequence[int], get) -> float | None:
    """The mean over ``seeds`` of ``get(mine) / get(anchor)`` (None if any value is missing)."""
    values = [(get(mine[s]), get(anchor[s])) for s in seeds]
    if not values or any(a is None or b in (None, 0) for a, b in values):
        return None
    return float(np.mean([a / b for a, b in values]))


def _p50(cell: dict) -> float | None:
    """The cell's LiteRT latency, as the edge suite reads it (its fastest runner process; None
    where it is marked not comparable)."""
    from legc_research.evidence.edge_suite import timed_p50

    return timed_p50(cell)


def comparisons(results: dict) -> list[dict]:
    """One row per (net, quantization, target, keras-legc method) that has its TF-MOT pair on at
    least one common seed: accuracies (means), the paired difference in pp, its t-test p, and the
    keras-legc model's .tflite bytes and LiteRT p50 as ratios to TF-MOT's."""
    cells = _cells(results)
    rows = []
    for (net, method, target, quant), mine in sorted(cells.items()):
        anchor_name = dict(PAIRS).get(method)
        anchor = cells.get((net, anchor_name, target, quant)) if anchor_name else None
        if not anchor:
            continue
        seeds = sorted(set(mine) & set(anchor))
        if not seeds:
            continue
        test = paired([mine[s]["accuracy"] for s in seeds], [anchor[s]["accuracy"] for s in seeds])
        rows.append({
            "net": net, "quantization": quant, "target": target, "method": method,
            "anchor": anchor_name, "seeds": seeds,
            "accuracy": float(np.mean([mine[s]["accuracy"] for s in seeds])),
            "anchor_accuracy": float(np.mean([anchor[s]["accuracy"] for s in seeds])),
            "diff_pp": 100 * test["mean"], "sd_pp": 100 * test["sd"], "p": test["p"],
            "pruned_share": float(np.mean([mine[s].get("pruned_share", np.nan) for s in seeds])),
            "anchor_pruned_share": float(
                np.mean([anchor[s].get("pruned_share", np.nan) for s in seeds])
            ),
            "bytes_ratio": _ratio(mine, anchor, seeds, lambda c: c["tflite_bytes"]),
            "p50_ratio": _ratio(mine, anchor, seeds, _p50),
        })  # fmt: skip
    return rows


def failures(results: dict) -> list[str]:
    """One line per failed cell of a compared method (left out of the pairs, so said here): net,
    method, target, quantization, seed and the error's first sentence."""
    methods = {m for pair in PAIRS for m in pair}
    lines = []
    for c in results["cells"]:
        if c["status"] == "failed" and c["method"] in methods:
            first = str(c.get("error", "")).split(": it ")[0].split(". ")[0]
            lines.append(f"- {c['net']} {c['method']} {100 * float(c['target']):.0f}% "
                         f"{c['quantization']}, seed {c['seed']}: {first}.")  # fmt: skip
    return lines


def verdicts(rows: list[dict], method: str = HEADLINE, results: dict | None = None) -> list[str]:
    """Issue 25's targets for ``method``, per net and quantization: within
    :data:`TOLERANCE_PP` of TF-MOT at every sparsity, and ahead at the highest; a failed cell of
    ``method`` in ``results`` (a collapsed model) fails the target."""
    failed = {}
    for c in (results or {}).get("cells", []):
        if c["status"] == "failed" and c["method"] == method:
            failed.setdefault((c["net"], c["quantization"]), []).append(c)
    lines = []
    for net, quant in sorted({(r["net"], r["quantization"]) for r in rows} | set(failed)):
        lost = failed.get((net, quant), [])
        if lost:
            where = sorted({f"{100 * float(c['target']):.0f}%" for c in lost})
            lines.append(f"- {net}, {quant}: NOT met: {len(lost)} cell(s) failed (at "
                         f"{', '.join(where)}; listed below).")  # fmt: skip
            continue
        mine = sorted(
            (r for r in rows if (r["net"], r["quantization"], r["method"]) == (net, quant, method)),
            key=lambda r: r["target"],
        )
        if not mine:
            continue
        worst = min(mine, key=lambda r: r["diff_pp"])
        top = mine[-1]
        within = worst["diff_pp"] >= -TOLERANCE_PP
        ahead = top["diff_pp"] > 0
        n = min(len(r["seeds"]) for r in mine)
        lines.append(
            f"- {net}, {quant}: worst {worst['diff_pp']:+.2f} pp (at {100 * worst['target']:.0f}%): "
            f"{'met' if within else 'NOT met'} (>= -{TOLERANCE_PP} pp); at "
            f"{100 * top['target']:.0f}% {top['diff_pp']:+.2f} pp (p {_p(top['p'])}): "
            f"{'ahead' if ahead else 'NOT ahead'}"
            + ("" if n >= 3 else f" ({n} seed{'s' if n > 1 else ''} so far: not yet the evidence)")
            + "."
        )
    return lines


def verdicts_2of4(rows: list[dict], method: str) -> list[str]:
    """The 2:4 target for ``method``, per net and quantization: within :data:`TOLERANCE_PP` of
    TF-MOT's 2:4 (one target, so no "ahead at the highest")."""
    lines = []
    for r in sorted((r for r in rows if r["method"] == method),
                    key=lambda r: (r["net"], r["quantization"])):  # fmt: skip
        n = len(r["seeds"])
        lines.append(
            f"- {r['net']}, {r['quantization']}: {r['diff_pp']:+.2f} pp (p {_p(r['p'])}; share "
            f"pruned {_share(r.get('pruned_share'))} against {_share(r.get('anchor_pruned_share'))}"
            f"): {'met' if r['diff_pp'] >= -TOLERANCE_PP else 'NOT met'} (>= -{TOLERANCE_PP} pp)"
            + ("" if n >= 3 else f" ({n} seed{'s' if n > 1 else ''} so far: not yet the evidence)")
            + "."
        )
    return lines


def verdicts_vs_magnitude(results: dict, method: str = HEADLINE) -> list[str]:
    """Issue 27's target on the conv nets, per net and quantization: ``method`` no worse than
    global magnitude (:data:`MAGNITUDE`) beyond seed noise at any sparsity, i.e. missed where a
    paired t-test over the seeds finds it worse (p < ``SIGNIFICANCE``) or where a cell of
    ``method`` failed. A seed on which global magnitude's model failed (collapsed) while
    ``method``'s ran is counted as such, not paired: there is no accuracy to pair with."""
    by = {}
    for c in results["cells"]:
        if c["method"] in (method, MAGNITUDE):
            key = (c["net"], c["quantization"], round(float(c["target"]), 6))
            by.setdefault(key, {}).setdefault(c["method"], {})[int(c["seed"])] = c
    lines = []
    for net, quant in sorted({k[:2] for k in by}):
        parts, missed, seeds = [], False, set()
        for target in sorted(t for n, q, t in by if (n, q) == (net, quant)):
            cell = by[net, quant, target]
            mine, theirs = cell.get(method, {}), cell.get(MAGNITUDE, {})
            common = sorted(set(mine) & set(theirs))
            if not common:
                continue
            seeds |= set(common)
            ok = [s for s in common if mine[s]["status"] == theirs[s]["status"] == "ok"]
            lost = [s for s in common if mine[s]["status"] != "ok"]
            collapsed = [s for s in common if theirs[s]["status"] != "ok" and s not in lost]
            said = []
            if lost:
                missed = True
                said.append(f"{len(lost)} of its cells failed")
            elif ok:
                t = paired([mine[s]["accuracy"] for s in ok], [theirs[s]["accuracy"] for s in ok])
                worse = direction(t) == "worse"
                missed |= worse
                said.append(f"{100 * t['mean']:+.2f} pp (p {_p(t['p'])})" + (" worse" * worse))
            if collapsed:
                said.append(f"global magnitude failed on {len(collapsed)} of {len(common)} seeds "
                            f"where {method} ran")  # fmt: skip
            parts.append(f"{100 * target:.0f}%: " + ", and ".join(said))
        if not parts:
            continue
        n = len(seeds)
        lines.append(
            f"- {net}, {quant}: {'; '.join(parts)}: {'NOT met' if missed else 'met'}"
            + ("" if n >= 3 else f" ({n} seed{'s' if n > 1 else ''} so far: not yet the evidence)")
            + "."
        )
    return lines


def _p(p: float) -> str:
    return "-" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3f}"


def _ratio_text(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _share(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}"


def table(rows: list[dict]) -> list[str]:
    """The Markdown table, one line per comparison."""
    head = (
        "| net | quant | sparsity | keras-legc method | seeds | its acc. | TF-MOT acc. | "
        "diff (pp, paired) | p | share pruned (its / TF-MOT's) | bytes vs TF-MOT | "
        "LiteRT p50 vs TF-MOT |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        target = "2:4" if r["anchor"] == "tfmot_2of4" else f"{100 * r['target']:.0f}%"
        lines.append(
            f"| {r['net']} | {r['quantization']} | {target} | {r['method']} | "
            f"{','.join(map(str, r['seeds']))} | {r['accuracy']:.4f} | {r['anchor_accuracy']:.4f} "
            f"| {r['diff_pp']:+.2f} ± {r['sd_pp']:.2f} | {_p(r['p'])} | "
            f"{_share(r.get('pruned_share'))} / {_share(r.get('anchor_pruned_share'))} | "
            f"{_ratio_text(r['bytes_ratio'])} | {_ratio_text(r['p50_ratio'])} |"
        )
    return lines


def write_doc(results: dict, doc: Path, command: str, machine: str) -> Path:
    """``docs/against-tfmot-convnets.md`` from the edge suite's ``results``."""
    rows = comparisons(results)
    dates = sorted(i["date"] for i in results.get("invocations", []))
    lines = [
        "# keras-legc against TF-MOT on conv nets (Fashion-MNIST, MLPerf Tiny shapes)",
        "",
        "Every layer pruned: TF-MOT `prune_low_magnitude` + `PolynomialDecay` (and its 2:4) "
        "against keras-legc's global magnitude (`legc_magnitude`, `per_layer=False`), gradual, "
        "default ranking (unstructured and (1, 16) blocks, which leave depthwise kernels dense as "
        "no LiteRT kernel runs them in blocks; these three share the sparsity among "
        "layers by LAMP, the default since 2026-12-06: [allocation.md](allocation.md)) and 2:4, "
        "from the same dense checkpoint with the same fine-tuning budget, paired by seed. "
        "Accuracy is the .tflite's on the test set (LiteRT); bytes and LiteRT p50 (1 thread, "
        "batch 1) are keras-legc's model over TF-MOT's, mean over the seeds. The cells are the "
        "edge suite's ([edge-suite.md](edge-suite.md)).",
        "",
        "TF-MOT's registry has no prunable weight in `DepthwiseConv2D`, so at the same nominal "
        "sparsity it prunes fewer of the net's weights than keras-legc, which prunes depthwise "
        "kernels too: *share pruned* gives both, as shares of all trainable parameters. "
        "`legc_default_same_zeros` (one-shot) and `legc_gradual_same_zeros` prune as many "
        "weights as TF-MOT, the like-for-like comparison; `legc_2of4_same_zeros` is 2:4 on TF-MOT's "
        "weights only.",
        "",
        f"- Command: `{command}` (the edge suite; this page is written with its report)",
        f"- Machine: {machine}",
        f"- Runs: {', '.join(dates) if dates else '-'}",
        "",
    ]
    if results.get("quick"):
        lines += ["> **A `--quick` run: one net, one seed, a data subset. Not the evidence.**", ""]
    lines += ["## Targets", "",
              f"No worse than TF-MOT by more than {TOLERANCE_PP} pp at every sparsity, ahead at "
              "the highest. For keras-legc's one-shot default ranking "
              f"(`{HEADLINE}`, the same sparsity of its prunable weights):", ""]  # fmt: skip
    lines += verdicts(rows, results=results) or ["- no cell has both methods yet."]
    for method, how in zip(SAME_ZEROS, ("one-shot default ranking", "gradual pruning"),
                           strict=True):  # fmt: skip
        lines += ["", f"For keras-legc's {how} to as many zeros as TF-MOT (`{method}`):", ""]
        lines += verdicts(rows, method, results) or ["- no cell has both methods yet."]
    for method, how in zip(TWO_OF_FOUR, ("on every prunable weight", "on the weights TF-MOT's "
                                         "2:4 prunes (depthwise kernels left dense)"),
                           strict=True):  # fmt: skip
        lines += ["", f"keras-legc's 2:4 against TF-MOT's 2:4, {how} (`{method}`):", ""]
        lines += verdicts_2of4(rows, method) or ["- no cell has both methods yet."]
    lines += ["", f"The default ranking (`{HEADLINE}`) against global magnitude (`{MAGNITUDE}`), "
              "issue 27's target: no worse beyond seed noise (paired t-test, p < "
              f"{SIGNIFICANCE}) at any sparsity:", ""]  # fmt: skip
    lines += verdicts_vs_magnitude(results) or ["- no cell has both methods yet."]
    lines += ["", "## Every comparison", ""] + table(rows) + [""]
    failed = failures(results)
    if failed:
        lines += ["## Cells that failed (not in the pairs above)", ""] + failed + [""]
    doc.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(doc, ("\n".join(lines)).encode(), overwrite=True)
