#!/usr/bin/env python3
"""Issue 27's unit-level study: unit LEGC against L1, L2, BatchNorm scale, Taylor and random
channel pruning at 1.5x, 2x and 3x fewer MACs, before and after a fixed fine-tuning budget.

Resumable: results are appended per cell to ``<out>/results.jsonl``; a rerun skips what it has.
See ``legc_research/evidence/unit_study.py`` for the protocol.

    python tools/unit_study.py --nets digits_mlp,lenet_300_100 --seeds 0,1,2
    python tools/unit_study.py --report docs/units.md --force --prose docs/units-verdict.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main(argv=None) -> int:
    from legc_research.evidence import unit_study as study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("runs/unit-study"),
        help="results and cached checkpoints (default runs/unit-study)",
    )
    ap.add_argument("--nets", default=",".join(study.NETS), help="comma-separated")
    ap.add_argument("--seeds", default=",".join(map(str, study.SEEDS)), help="comma-separated")
    ap.add_argument("--criteria", default=",".join(study.CRITERIA), help="comma-separated")
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("LEGC_DATA_DIR"),
        help="folder holding fashion-mnist/ (default $LEGC_DATA_DIR)",
    )
    ap.add_argument(
        "--target",
        default=study.TARGETS[0],
        choices=study.TARGETS,
        help="the recorders' target series (default misclassification; loss: the unit LEGC "
        "criteria only, from a dense net trained again with those recorders)",
    )
    ap.add_argument("--report", type=Path, help="write the markdown report here, run nothing")
    ap.add_argument("--force", action="store_true", help="overwrite the report")
    ap.add_argument(
        "--prose",
        type=Path,
        help="markdown put under the report's title (the "
        "verdict in words, written from the numbers)",
    )
    args = ap.parse_args(argv)  # fmt: skip
    if args.report:
        from legc_research.evidence.unit_study_report import write_report

        if args.report.exists() and not args.force:
            ap.error(f"{args.report} exists. Fix: pass --force to overwrite it.")
        prose = args.prose.read_text() if args.prose else None
        write_report(args.out / "results.jsonl", args.report, prose)
        print(f"wrote {args.report}")
        return 0
    nets = [n for n in args.nets.split(",") if n]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    criteria = [c for c in args.criteria.split(",") if c]
    path = study.run(args.out, nets=nets, seeds=seeds, criteria=criteria, data_dir=args.data_dir,
                     log=lambda m: print(m, flush=True), target=args.target)  # fmt: skip
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
