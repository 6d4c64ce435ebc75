#!/usr/bin/env python3
"""Turn benchmark JSONs from ``bench.py --json`` into a Markdown table and a latency-vs-sparsity plot.

Needs only numpy (the table) and matplotlib (only for ``--plot``); never TensorFlow.

Usage:
    python report.py results/*.json [--markdown table.md] [--plot latency.png] [--force]
                     [--baseline dense] [--title TEXT]

Rows are grouped by the ``--label`` given to bench.py, read as ``GROUP/VARIANT`` (e.g.
``lenet/block-90``); the speed-up column compares each row with the ``GROUP/<baseline>`` row of the
same runtime and quantization. A row whose output check failed is flagged (**MISMATCH**), one that
was not checked is flagged (unchecked).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np


class ReportError(Exception):
    """Bad input for the report; the message says how to fix it."""


def load_results(paths: list[str | os.PathLike]) -> list[dict]:
    """One flat row per (model, runtime) from bench.py JSON files (single or ``--runtime both``)."""
    rows = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ReportError(
                f"{path} does not exist. Fix: pass bench.py --json outputs."
            ) from None
        except ValueError as exc:
            raise ReportError(
                f"{path} is not JSON ({exc}). Fix: pass bench.py --json outputs."
            ) from exc
        results = data.get("runtimes", [data]) if isinstance(data, dict) else None
        if not results or any("latency" not in r for r in results):
            raise ReportError(
                f"{path} is not a bench.py result (no latency). Fix: pass files written by "
                "bench.py --json."
            )
        for r in results:
            rows.append(_row(r, path))
    return rows


def _row(r: dict, path) -> dict:
    export = r.get("export") or {}
    label = r.get("label") or Path(r["model"]).stem
    group, _, variant = label.partition("/")
    check = r.get("check")
    sparsity = export.get("sparsity")
    if export.get("densify"):
        structure = "unstructured"
    elif sparsity:
        structure = "block" if export.get("sparse") else "zeros, dense storage"
    else:
        structure = "dense"
    return {
        "label": label,
        "group": group,
        "variant": variant or label,
        "runtime": r["runtime"],
        "quantization": export.get("quantization") or "?",
        "sparsity": sparsity,
        "structure": structure,
        "bytes": int(r["model_bytes"]),
        "p50_ms": float(r["latency"]["p50_ms"]),
        "p90_ms": float(r["latency"]["p90_ms"]),
        "p99_ms": float(r["latency"]["p99_ms"]),
        "throughput": float(r["latency"]["throughput_per_s"]),
        "peak_rss_mib": r.get("peak_rss_bytes", 0) / 2**20,
        # the statistic the check judged: the mean error for export's int8 default, else the max
        "rule": None if check is None else check.get("rule", "max"),
        "error": None
        if check is None
        else float(
            check["mean_abs_error"] if check.get("rule") == "mean" else check["max_abs_error"]
        ),
        "atol": None
        if check is None
        else float(check["mean_atol"] if check.get("rule") == "mean" else check["atol"]),
        "ok": None if check is None else bool(check["ok"]),
        "collapsed": bool(check and check.get("collapsed")),
        "notes": r.get("notes", []),
        "units": export.get("layer_units"),
        "source": str(path),
    }


def speedups(rows: list[dict], baseline: str = "dense") -> list[float | None]:
    """p50 of the ``GROUP/baseline`` row of the same runtime and quantization / each row's p50."""
    base = {
        (r["group"], r["runtime"], r["quantization"]): r["p50_ms"]
        for r in rows
        if r["variant"] == baseline
    }
    return [
        (base[key] / r["p50_ms"]) if (key := (r["group"], r["runtime"], r["quantization"])) in base
        else None
        for r in rows
    ]  # fmt: skip


def markdown_table(rows: list[dict], baseline: str = "dense") -> str:
    """The Markdown table: one line per (model, runtime)."""
    header = (
        "| model | variant | runtime | quant | sparsity | structure | bytes | p50 ms | p90 ms | "
        f"p99 ms | speed-up vs {baseline} | abs error (tol) | output |"
    )
    lines = [header, "|" + "---|" * 13]
    for r, sp in zip(rows, speedups(rows, baseline), strict=True):
        if r["ok"] is None:
            status = "unchecked"
        elif r["ok"]:
            status = "ok"
        else:
            status = "**MISMATCH** (collapsed)" if r["collapsed"] else "**MISMATCH**"
        err = (
            "-"
            if r["error"] is None
            else (
                f"{'mean ' if r.get('rule') == 'mean' else 'max '}{r['error']:.2g} ({r['atol']:.2g})"
            )
        )
        sparsity = "-" if r["sparsity"] is None else f"{100 * r['sparsity']:.1f}%"
        lines.append(
            f"| {r['group']} | {r['variant']} | {r['runtime']} | {r['quantization']} | {sparsity} "
            f"| {r['structure']} | {r['bytes']:,} | {r['p50_ms']:.4f} | {r['p90_ms']:.4f} | "
            f"{r['p99_ms']:.4f} | {'-' if sp is None else f'{sp:.2f}x'} | {err} | {status} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str | os.PathLike, title: str | None = None) -> Path:
    """Latency (p50) vs sparsity: one panel per model group and quantization, a line per runtime
    and structure, the dense latency as a dashed line. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReportError(
            "the plot needs matplotlib, which is not installed here. Fix: pip install matplotlib, "
            "or leave out --plot (the Markdown table needs numpy only)."
        ) from None
    groups = sorted({r["group"] for r in rows})
    quants = sorted({r["quantization"] for r in rows})
    fig, axes = plt.subplots(
        len(quants), len(groups), figsize=(5 * len(groups), 3.6 * len(quants)), squeeze=False
    )
    for i, q in enumerate(quants):
        for j, g in enumerate(groups):
            ax = axes[i][j]
            sel = [r for r in rows if r["group"] == g and r["quantization"] == q]
            for runtime in sorted({r["runtime"] for r in sel}):
                mine = [r for r in sel if r["runtime"] == runtime]
                for structure, marker in (("block", "o"), ("unstructured", "x")):
                    pts = sorted(
                        (r["sparsity"], r["p50_ms"]) for r in mine if r["structure"] == structure
                    )
                    if pts:
                        xs, ys = np.array(pts).T
                        ax.plot(100 * xs, ys, marker=marker, label=f"{runtime} {structure}")
                for r in mine:
                    if r["structure"] == "dense" and r["variant"] == "dense":
                        ax.axhline(r["p50_ms"], ls="--", lw=1, color="grey")
                        ax.annotate(f"{runtime} dense", (0, r["p50_ms"]), fontsize=7)
            ax.set_title(f"{g}, {q}")
            ax.set_xlim(-2, 100)
            ax.set_xlabel("sparsity (%)")
            ax.set_ylabel("p50 latency (ms)")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_text(path: Path, text: str, force: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="legc-edge-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="bench.py --json files")
    parser.add_argument("--markdown", help="write the table here (default: print it)")
    parser.add_argument("--plot", help="write the latency-vs-sparsity PNG here (needs matplotlib)")
    parser.add_argument("--baseline", default="dense", help="variant the speed-up compares with")
    parser.add_argument("--title")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = parser.parse_args(argv)
    try:
        for out in (args.markdown, args.plot):
            if out and Path(out).exists() and not args.force:
                raise ReportError(f"{out} exists. Fix: choose another path or pass --force.")
        rows = load_results(args.results)
        table = markdown_table(rows, args.baseline)
        if args.plot:
            Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
            plot(rows, args.plot, args.title)
    except ReportError as exc:
        print(f"legc-edge-report: error: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        _write_text(Path(args.markdown), table, args.force)
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
