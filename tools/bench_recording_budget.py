#!/usr/bin/env python3
"""Recording overhead of WeightHistory at its default settings (the max_overhead budget) and at
every step, on the workload of ``tools/bench_scoring.py`` (LeNet-300-100, MNIST t10k split, 5
epochs, batch 32, W = 50), each fit in a fresh process, in rounds (plain, default, every step,
and UnitHistory at every step: issue 27's unit-level recording). ``--arch`` also takes a zoo net
(``legc_research.zoo``), on the same 28x28 images.

    python tools/bench_recording_budget.py --json runs/budget.json [--rounds 2] [--data-dir D]
    python tools/bench_recording_budget.py --json runs/budget-ds_cnn.json --arch ds_cnn \
        --flavour keras3 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from legc_research.evidence.bench_scoring import Workload, worker_fit
from legc_research.zoo.nets import NETS

CONFIGS = {
    "plain": {"record": False},
    "default": {"record": True, "every": None},  # every and max_overhead left to the recorder
    "every_step": {"record": True, "every": 1},
    # the LE kernel on one thread beside training (the default uses every core)
    "default_1thread": {"record": True, "every": None, "threads": 1},
    # the LEs on the training thread (background=False): no LE thread competing for the cores
    "default_inline": {"record": True, "every": None, "background": False},
    # no recorder, an empty per-step hook: the floor of any recording at every step
    "batch_hook": {"record": False, "batch_hook": True},
    # issue 27: one series per unit (filter, neuron), every step
    "units_every_step": {"record": True, "every": 1, "units": True},
}


def _spec(wl: Workload, data_dir: str, config: str, args) -> dict:
    return {
        "data_dir": data_dir, "seed": wl.seed, "n_train": wl.n_train, "n_val": wl.n_val,
        "hidden": list(wl.hidden), "batch_size": wl.batch_size, "learning_rate": wl.learning_rate,
        "window": wl.window, "overlap": wl.overlap, "every": wl.every,
        "epochs": args.epochs or wl.epochs, "flavour": args.flavour, "arch": args.arch, "run_dir": None, "save_snapshots": False, **CONFIGS[config],
    }  # fmt: skip


def _estimate(run: dict) -> str:
    """The budget's estimated fit / plain (``-`` without a budget)."""
    est = (run.get("budget") or {}).get("estimated_overhead")
    return "-" if est is None else f"{1 + est:.2f}x"


def _made(run: dict) -> str:
    """Seconds to make the recorder (the one-off kernel load since 2026-12-06; ``-`` before)."""
    made = run.get("made_s")
    return "-" if made is None else f"{made:.2f}"


def _to_train_end(runs: list[dict], rs: list[dict]) -> str:
    """The median ratio of fit time to the end of ``on_train_end`` over the plain fits' median
    (``-`` for results from before it was measured)."""
    key = "fit_to_train_end_s"
    plain = [r[key] for r in runs if r["config"] == "plain" and key in r]
    if not plain or not all(key in r for r in rs):
        return "-"
    med = statistics.median(plain)
    return f"{statistics.median(r[key] / med for r in rs):.2f}x"


def _mean_timing(runs: list[dict], key: str) -> float:
    return sum((r.get("timings") or {}).get(key, 0.0) for r in runs) / len(runs)


def table(paths: list[Path]) -> str:
    """A markdown table of bench results: per file, the median plain fit and each config's ratios
    (fit / median plain), the chosen ``every`` and windows, and where the recording's time went."""
    rows = [
        "| net (flavour, epochs) | plain fit | config | fit / plain per round | to train end / "
        "plain (median) | budget's estimate "
        "| every/windows | recorder made in (s) | target s | snapshot s | LE s (worker) |",
        "|---|---:|---|---|---|---|---|---|---:|---:|---:|",
    ]
    for path in paths:
        d = json.loads(path.read_text())
        runs = d["runs"]
        plain = sorted(r["fit_s"] for r in runs if r["config"] == "plain")
        med = statistics.median(plain)  # of two rounds: their mean
        name = f"{d.get('arch', 'mlp')} ({d.get('flavour', 'tf_keras')}, {d.get('epochs') or 5})"
        for config in dict.fromkeys(r["config"] for r in runs if r["config"] != "plain"):
            rs = [r for r in runs if r["config"] == config]
            rows.append(
                f"| {name} | {med:.2f} s | {config} | "
                + ", ".join(f"{r['fit_s'] / med:.2f}x" for r in rs)
                + " | " + _to_train_end(runs, rs)
                + " | " + ", ".join(_estimate(r) for r in rs)
                + " | " + ", ".join(f"{r.get('every')}/{r.get('n_windows')}" for r in rs)
                + " | " + ", ".join(_made(r) for r in rs)
                + "".join(f" | {_mean_timing(rs, k):.2f}"
                          for k in ("validation_s", "snapshot_s", "lyapunov_s")) + " |"
            )  # fmt: skip
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, nargs="+", help="print the markdown table of these "
                    "results files and exit")  # fmt: skip
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--arch",
        default="mlp",
        choices=("mlp", "convnet", *NETS),
        help="the benchmark's MLP or convnet, or a zoo net (28x28x1)",
    )
    ap.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}"
    )
    ap.add_argument("--epochs", type=int, default=None, help="default: the workload's 5")
    ap.add_argument(
        "--flavour",
        default="tf_keras",
        choices=("tf_keras", "keras3"),
        help="tf_keras (row 1a's) or Keras 3 on the TensorFlow backend",
    )
    ap.add_argument("--data-dir", default=os.environ.get("LEGC_DATA_DIR", "../shared/data"))
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a spec file: run one fit in this process
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return 0
    if args.json is None:
        ap.error("--json is required (or --table FILES)")
    if args.one:
        spec = json.loads(Path(args.one).read_text())
        Path(args.one).write_text(json.dumps(worker_fit(spec), default=float))
        os._exit(0)  # skip TensorFlow's slow teardown; the result is written
    wl, runs = Workload(), []
    configs = args.configs.split(",")
    if "plain" not in configs or set(configs) - set(CONFIGS):
        ap.error(f"--configs must include plain and name only {', '.join(CONFIGS)}")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for config in configs:
                path = Path(tmp) / f"{config}{r}.json"
                path.write_text(json.dumps(_spec(wl, args.data_dir, config, args)))
                subprocess.run([sys.executable, __file__, "--json", "-", "--one", str(path)],
                               check=True)  # fmt: skip
                res = json.loads(path.read_text())
                res.update(config=config, round=r, load=os.getloadavg())
                runs.append(res)
                print(f"{config} round {r}: fit {res['fit_s']:.2f} s, every {res.get('every')}, "
                      f"windows {res.get('n_windows')}, load {res['load'][0]:.2f}", flush=True)  # fmt: skip
    summary = {}
    for key in ("fit_s", "fit_to_train_end_s"):
        plain = statistics.median(r[key] for r in runs if r["config"] == "plain")
        for config in (c for c in configs if c != "plain"):
            ratios = [r[key] / plain for r in runs if r["config"] == config]
            summary[config if key == "fit_s" else f"{config} (to train end)"] = ratios
            print(f"{config}: {key} / plain (median plain {plain:.2f} s) = "
                  + ", ".join(f"{x:.2f}x" for x in ratios)
                  + f"; median {statistics.median(ratios):.2f}x")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"arch": args.arch, "flavour": args.flavour, "epochs": args.epochs, "runs": runs, "ratios": summary},
                                    indent=1, default=float))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
