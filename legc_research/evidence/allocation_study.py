"""How a target sparsity is shared among layers, chosen on development nets: one global ``|w|``
ranking (``per_layer=False``), the same sparsity in every layer (``True``), or LAMP's
layer-adaptive sparsities (``"lamp"``).

The edge suite found the global ranking emptying DS-CNN's depthwise kernels at 75% and 90%
(docs/against-tfmot-convnets.md). This study picks the library's default on nets that are *not*
reported there: half-width versions of the zoo's DS-CNN (32 filters) and ResNet-8 (8 first-stage
filters), LeNet-5, and LeNet-300-100 (an MLP, where the global ranking was chosen), trained on a
Fashion-MNIST training subset and judged on the validation split (never the test set). Each
cell: the dense net, a magnitude mask with that allocation, the mask held while fine-tuning
(``kl.prune``), validation accuracy.

    python tools/allocation_study.py [--json F] [--nets ...] [--seeds 0,1] [--train N]
        [--epochs E] [--finetune-epochs F] [--quick]

Results are saved after every cell (``--json``); a rerun skips the cells already there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: development net -> (zoo builder name, width keyword, width): half the reported nets' width
DEV_NETS = {
    "ds_cnn_32": ("ds_cnn", "filters", 32),
    "resnet8_8": ("resnet8", "filters", 8),
    "lenet5": ("lenet5", None, None),
    "lenet_300_100": ("lenet_300_100", None, None),  # an MLP: the default must not lose there
}
ALLOCATIONS = {"global": False, "uniform": True, "lamp": "lamp"}
SPARSITIES = (0.5, 0.75, 0.9)
SUBSET = (20000, 5000, 0)  # train / validation / test images: the test set is never read
EPOCHS, FINETUNE_EPOCHS, BATCH, LR, FINETUNE_LR = 4, 1, 128, 1e-3, 5e-4
QUICK = {"nets": ("lenet5",), "seeds": (0,), "sparsities": (0.75,), "subset": (1000, 300, 0)}


def _build(net: str, seed: int):
    import keras

    from legc_research.zoo import nets as zoo

    name, arg, width = DEV_NETS[net]
    keras.utils.set_random_seed(seed)
    return zoo.NETS[name].builder(keras, **({arg: width} if arg else {}))


def _fit(model, data, epochs: int, lr: float, seed: int, callbacks=()) -> None:
    """``epochs`` of Adam at ``lr`` over the training subset, its order seeded by ``seed``."""
    from legc_research.zoo import train

    train.deterministic(seed)
    train.compile_model(model, lr)
    model.fit(data.x_train, data.y_train, batch_size=BATCH, epochs=epochs, shuffle=True,
              callbacks=list(callbacks), verbose=0)  # fmt: skip


def run(out: Path, nets: Sequence[str], seeds: Sequence[int], sparsities: Sequence[float],
        subset=SUBSET, epochs: int = EPOCHS, finetune_epochs: int = FINETUNE_EPOCHS,
        log=print) -> dict:  # fmt: skip
    """Every (net, seed, sparsity, allocation) cell, saved to ``out`` after each (one file holds
    one training budget: a rerun with another budget is refused)."""
    import keras

    import keras_legc as kl
    from keras_legc._io import atomic_write_json
    from keras_legc.errors import LegcWarning
    from legc_research.zoo import train

    budget = {"subset": list(subset), "epochs": epochs, "finetune_epochs": finetune_epochs}
    results = json.loads(out.read_text()) if out.is_file() else {"cells": [], **budget}
    if {k: results.get(k) for k in budget} != budget:
        raise SystemExit(
            f"{out} holds cells of another budget ({ {k: results.get(k) for k in budget} }); "
            "use another --json"
        )
    done = {(c["net"], c["seed"], c["sparsity"], c["allocation"]) for c in results["cells"]}
    data = train.load_data(subset=subset)
    for net in nets:
        for seed in seeds:
            todo = [(s, a) for s in sparsities for a in ALLOCATIONS
                    if (net, seed, s, a) not in done]  # fmt: skip
            if not todo:
                continue
            dense = _build(net, seed)
            _fit(dense, data, epochs, LR, seed)
            weights = dense.get_weights()
            dense_acc = train.accuracy(dense, data.x_val, data.y_val)
            log(f"{net} seed {seed}: dense validation accuracy {dense_acc:.4f}")
            for sparsity, allocation in todo:
                t0 = time.perf_counter()
                model = _build(net, seed)
                model.set_weights(weights)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", LegcWarning)
                    mask = kl.magnitude_mask(model, sparsity, per_layer=ALLOCATIONS[allocation])
                pruned = kl.prune(model, mask)
                _fit(pruned, data, finetune_epochs, FINETUNE_LR, 1000 + seed,
                     kl.pruning_callbacks(pruned))  # fmt: skip
                cell = {
                    "net": net, "seed": seed, "sparsity": sparsity, "allocation": allocation,
                    "val_accuracy": train.accuracy(kl.strip(pruned), data.x_val, data.y_val),
                    "dense_val_accuracy": dense_acc,
                    "layer_sparsity": {k: round(v, 4) for k, v in mask.layer_sparsity().items()},
                    "emptied": [k for k, v in mask.items() if not v.any()],
                    "warned": len(caught), "seconds": time.perf_counter() - t0,
                }  # fmt: skip
                results["cells"].append(cell)
                atomic_write_json(out, results, overwrite=True)
                log(
                    f"  {sparsity:.2f} {allocation:8s} {cell['val_accuracy']:.4f}"
                    f"{'  emptied ' + str(cell['emptied']) if cell['emptied'] else ''}"
                )
                keras.backend.clear_session()
    return results


def summary(results: dict) -> list[str]:
    """A markdown table: mean validation accuracy per (net, sparsity) and allocation, and the
    mean over every cell of each allocation's gap to the best one."""
    cells = results["cells"]
    rows = sorted({(c["net"], c["sparsity"]) for c in cells})
    allocs = [a for a in ALLOCATIONS if any(c["allocation"] == a for c in cells)]
    lines = ["| net | sparsity | " + " | ".join(allocs) + " |",
             "|---|---|" + "---|" * len(allocs)]  # fmt: skip
    gaps = {a: [] for a in allocs}
    for net, s in rows:
        means = {}
        for a in allocs:
            acc = [c["val_accuracy"] for c in cells
                   if (c["net"], c["sparsity"], c["allocation"]) == (net, s, a)]  # fmt: skip
            means[a] = float(np.mean(acc)) if acc else None
        best = max(v for v in means.values() if v is not None)
        for a, v in means.items():
            if v is not None:
                gaps[a].append(best - v)
        cols = " | ".join("-" if v is None else f"{100 * v:.2f}" for v in means.values())
        lines.append(f"| {net} | {s:.2f} | {cols} |")
    lines.append("")
    lines.append("Mean gap to the best allocation of each row (pp): " + ", ".join(
        f"{a} {100 * np.mean(g):.2f}" for a, g in gaps.items() if g))  # fmt: skip
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default="runs/allocation-study.json", help="results (resumable)")
    p.add_argument("--nets", default=",".join(DEV_NETS))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
    p.add_argument("--train", type=int, default=SUBSET[0], help="training images")
    p.add_argument("--epochs", type=int, default=EPOCHS, help="dense training epochs")
    p.add_argument("--finetune-epochs", type=int, default=FINETUNE_EPOCHS)
    p.add_argument("--quick", action="store_true", help="LeNet-5, one cell row, 1,000 images")
    a = p.parse_args(argv)
    nets = [n for n in a.nets.split(",") if n]
    unknown = [n for n in nets if n not in DEV_NETS]
    if unknown:
        print(f"unknown development net(s) {unknown}: use {', '.join(DEV_NETS)}", file=sys.stderr)
        return 2
    seeds = tuple(int(s) for s in a.seeds.split(","))
    sparsities = tuple(float(s) for s in a.sparsities.split(","))
    subset = (a.train, *SUBSET[1:])
    if a.quick:
        nets, seeds, sparsities, subset = (QUICK["nets"], QUICK["seeds"], QUICK["sparsities"],
                                           QUICK["subset"])  # fmt: skip
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = run(out, nets, seeds, sparsities, subset, a.epochs, a.finetune_epochs)
    print("\n".join(summary(results)))
    return 0
