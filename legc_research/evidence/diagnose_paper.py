#!/usr/bin/env python3
"""Write docs/diagnostics.md from a reproduction run: SHAP agreement on Cancer, Banknote and
Titanic over seeds, with a verdict on the paper's claim, and the MNIST 784-50-30-10 alpha table
beside the paper's Table 4.

    python tools/diagnose_paper.py RUN_DIR --out docs/diagnostics.md [--mode paper] [--force]

``legc reproduce`` does the same at the end of a run; this script re-does it on a finished run
folder with other settings. The rules and the layout are in ``legc_research/paper_diagnostics.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras_legc as kl  # (selects Keras 2 first)
from legc_research.evidence._provenance import REPO, tool_command
from legc_research.paper_diagnostics import (
    DiagnosticsSettings,
    verdict,
    write_diagnostics,
)

__all__ = ["main", "verdict"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "diagnostics.md")
    ap.add_argument("--mode", default="paper", choices=["paper", "clean"])
    ap.add_argument("--background", type=int, default=100)
    ap.add_argument("--explain", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="Seeds the SHAP row sampling.")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--force", action="store_true", help="Overwrite --out and its .json.")
    args = ap.parse_args(argv)
    settings = DiagnosticsSettings(args.background, args.explain, args.seed, args.progress)
    cmd = tool_command("diagnose_paper", argv)
    try:
        record = write_diagnostics(
            args.run_dir, args.out, mode=args.mode, settings=settings, overwrite=args.force,
            command=cmd,
        )  # fmt: skip
    except (kl.OutputExistsError, kl.InvalidArgumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    if record["agreement"]:
        print(f"verdict: {record['agreement']['overall']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
