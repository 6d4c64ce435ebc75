"""Is a channel-pruned net's gap to dense a matter of fine-tuning budget? (issue 26)

The Torch-Pruning comparison's target "ResNet-8 at 2x fewer MACs within 0.5 pp of dense" compares
the pruned net after the zoo recipe's fine-tuning budget (2 epochs, fresh Adam at 5e-4) with the
dense net trained on for the same 2 epochs (``channels_vs_torch_pruning``). This run trains both
on, epoch by epoch, under exactly that protocol (the same dense checkpoints, ``kl.prune_channels(
macs=dense / factor, importance=criterion)``, the same per-epoch data order, optimizer and batch:
``channels_vs_torch_pruning.keras_finetune``), and records test accuracy after every epoch, so
the gap is read at 2, 4, ... epochs. After the recipe's 2 epochs both arms are the comparison's
own cells (the report checks them against ``--compare``'s results where they are there).

Results go to ``<out>/results.json`` after every (net, seed, arm); a rerun skips what it has.

    python tools/finetune_budget.py --nets resnet8 --seeds 0,1,2 --epochs 8 \\
        --cache evidence/edge-suite/dense-cache --out evidence/finetune-budget
    python tools/finetune_budget.py --report-only --out evidence/finetune-budget
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import keras_legc as kl
from keras_legc._env import cpu, machine_summary
from keras_legc._io import atomic_write_json
from keras_legc.errors import InvalidArgumentError
from legc_research.evidence.channels_vs_torch_pruning import keras_finetune, orders
from legc_research.zoo import nets as zoo
from legc_research.zoo import train

FORMAT = "keras_legc.finetune_budget"
ARMS = ("dense", "pruned")


def _load(path: Path) -> dict:
    if not path.exists():
        return {"format": FORMAT, "cells": [], "invocations": []}
    results = json.loads(path.read_text())
    if results.get("format") != FORMAT:
        raise InvalidArgumentError(
            f"{path} is not a {FORMAT} results file. Fix: pass another --out."
        )
    return results


def run_arm(dense, arm: str, factor: float, criterion: str, data, rec, order) -> dict:
    """Train ``arm`` (the dense net, or it pruned to ``1/factor`` of its MACs) on for
    ``len(order)`` epochs; test accuracy after each."""
    import keras

    model = keras.models.clone_model(dense)
    model.set_weights(dense.get_weights())
    if arm == "pruned":
        model = kl.prune_channels(model, macs=zoo.count_macs(dense) / factor, importance=criterion)
    accuracies: list[float] = []
    seconds = keras_finetune(
        model, data, rec, order,
        after_epoch=lambda _: accuracies.append(train.accuracy(model, data.x_test, data.y_test)),
    )  # fmt: skip
    return {"accuracy": accuracies, "macs": zoo.count_macs(model),
            "params": int(model.count_params()), "seconds": seconds}  # fmt: skip


def run(args, log=print) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = _load(path)
    results["invocations"].append({"argv": args.argv, "date": time.strftime("%Y-%m-%d %H:%M"),
                                   "machine": machine_summary(), "cpu": cpu()})  # fmt: skip
    data = train.load_data(args.data_dir)
    for net in args.nets:
        rec = train.recipe(net)
        for seed in args.seeds:
            todo = [arm for arm in ARMS if not any(
                _key(c) == (net, seed, arm, args.factor, args.criterion)
                and len(c["accuracy"]) >= args.epochs for c in results["cells"])]  # fmt: skip
            if not todo:
                continue
            dense = train.train_dense(net, seed, data, args.cache, log=log).model
            order = orders(seed, args.epochs, len(data.y_train))
            for arm in todo:
                key = (net, seed, arm, args.factor, args.criterion)
                log(f"{net} seed {seed} {arm}: {args.epochs} epochs")
                cell = {"net": net, "seed": seed, "arm": arm, "factor": args.factor,
                        "criterion": args.criterion, "finetune_lr": rec.finetune_lr,
                        "batch_size": rec.batch_size, "recipe_epochs": rec.finetune_epochs,
                        **run_arm(dense, arm, args.factor, args.criterion, data, rec, order)}  # fmt: skip
                log(f"  accuracy per epoch: {', '.join(f'{a:.4f}' for a in cell['accuracy'])}")
                results["cells"] = [c for c in results["cells"] if _key(c) != key] + [cell]
                atomic_write_json(path, results, overwrite=True)
    return results


def _key(cell: dict) -> tuple:
    return (cell["net"], cell["seed"], cell["arm"], cell["factor"], cell["criterion"])


def report(results: dict, compare: dict | None = None) -> str:
    """A markdown table per (net, factor, criterion): dense and pruned test accuracy after each
    epoch, means over seeds, and the gap (pruned - dense) with its spread."""
    lines = []
    groups = sorted({(c["net"], c["factor"], c["criterion"]) for c in results["cells"]})
    for net, factor, criterion in groups:
        cells = [c for c in results["cells"] if (c["net"], c["factor"], c["criterion"]) ==
                 (net, factor, criterion)]  # fmt: skip
        seeds = sorted({c["seed"] for c in cells if c["arm"] == "dense"} &
                       {c["seed"] for c in cells if c["arm"] == "pruned"})  # fmt: skip
        if not seeds:
            continue
        acc = {(c["seed"], c["arm"]): c["accuracy"] for c in cells}
        epochs = min(len(acc[s, a]) for s in seeds for a in ARMS)
        pruned = next(c for c in cells if c["arm"] == "pruned")
        dense = next(c for c in cells if c["arm"] == "dense")
        lines += [
            f"{net}, {factor:g}x fewer MACs ({pruned['macs']:,} of {dense['macs']:,}), "
            f"{criterion}, seeds {', '.join(map(str, seeds))}; the recipe's budget is "
            f"{pruned['recipe_epochs']} epochs:",
            "",
            "| epochs | dense | pruned | pruned - dense (pp) | per seed (pp) |",
            "|---|---|---|---|---|",
        ]
        for e in range(epochs):
            d = np.array([acc[s, "dense"][e] for s in seeds])
            p = np.array([acc[s, "pruned"][e] for s in seeds])
            gap = 100 * (p - d)
            lines.append(f"| {e + 1} | {d.mean():.4f} | {p.mean():.4f} | {gap.mean():+.2f} | "
                         f"{', '.join(f'{g:+.2f}' for g in gap)} |")  # fmt: skip
        r = pruned["recipe_epochs"]
        if epochs > r:
            # one epoch's test accuracy is a noisy endpoint: the gap averaged over the epochs from
            # the recipe's on, and how far the dense net itself moves between epochs
            gaps = [100 * np.mean(np.subtract(acc[s, "pruned"][r - 1 : epochs],
                                              acc[s, "dense"][r - 1 : epochs])) for s in seeds]  # fmt: skip
            swing = max(100 * np.max(np.abs(np.diff(acc[s, "dense"][:epochs]))) for s in seeds)
            lines += [
                "",
                f"Averaged over epochs {r}-{epochs}, pruned - dense: {np.mean(gaps):+.2f} pp "
                f"(per seed {', '.join(f'{g:+.2f}' for g in gaps)}). The dense net's own test "
                f"accuracy moves by up to {swing:.2f} pp from one epoch to the next.",
            ]
        lines.append("")
        if compare is not None:
            lines += _against_comparison(compare, net, factor, criterion, seeds, acc,
                                         pruned["recipe_epochs"])  # fmt: skip
    return "\n".join(lines)


def _against_comparison(compare, net, factor, criterion, seeds, acc, n) -> list[str]:
    """After the recipe's epochs both arms are the Torch-Pruning comparison's cells: say whether
    they came out the same (the same protocol on another day or CPU may not)."""
    out = []
    for s in seeds:
        base = compare["nets"].get(f"{net}/seed{s}", {}).get("accuracy_finetuned")
        cell = next((c for c in compare["cells"] if c["net"] == net and c["seed"] == s and
                     c["side"] == "keras_legc" and c["criterion"] == criterion and
                     abs(c["factor"] - factor) < 1e-9), None)  # fmt: skip
        if base is None or cell is None or len(acc[s, "dense"]) < n:
            continue
        out.append(f"- seed {s}, after {n} epochs: dense {acc[s, 'dense'][n - 1]:.4f} here, "
                   f"{base:.4f} in the comparison; pruned {acc[s, 'pruned'][n - 1]:.4f} here, "
                   f"{cell['accuracy']:.4f} there")  # fmt: skip
    return out + ([""] if out else [])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default="resnet8", help="comma-separated zoo nets")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--factor", type=float, default=2.0, help="MAC reduction, > 1 (default 2)")
    ap.add_argument("--criterion", default="l2", choices=("l1", "l2", "bn_scale", "random"),
                    help="prune_channels importance (default l2; taylor and legc need data "
                         "this run does not pass)")  # fmt: skip
    ap.add_argument("--epochs", type=int, default=8, help="fine-tuning epochs to run (default 8)")
    ap.add_argument("--cache", default="evidence/edge-suite/dense-cache",
                    help="the dense checkpoints (trained there when missing)")  # fmt: skip
    ap.add_argument("--out", default="evidence/finetune-budget")
    ap.add_argument("--compare", default="evidence/channels-vs-tp/results.json",
                    help="the Torch-Pruning comparison's results, checked at the recipe's epochs")  # fmt: skip
    ap.add_argument("--data-dir", default=None, help="LEGC_DATA_DIR by default")
    ap.add_argument("--report-only", action="store_true", help="print the table, train nothing")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.nets = [n for n in args.nets.split(",") if n]
    unknown = [n for n in args.nets if n not in zoo.NETS]
    if unknown:
        ap.error(f"unknown net {unknown[0]!r}; use one of {', '.join(zoo.NETS)}")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        ap.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if not args.factor > 1:
        ap.error(f"--factor is a MAC reduction and must be above 1, got {args.factor:g}")
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    results = _load(Path(args.out) / "results.json") if args.report_only else run(args)
    compare = Path(args.compare)
    print(report(results, json.loads(compare.read_text()) if compare.is_file() else None))
    return 0
