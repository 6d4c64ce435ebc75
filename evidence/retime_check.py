"""Are edge-suite latencies from different runs comparable? Re-time the dense file of a net and a
cell's kept file in the same minutes, alternating, in fresh processes as the suite does.

    python evidence/retime_check.py ds_cnn legc_2of4_same_zeros-0.5-float  # after a suite run
    python evidence/retime_check.py ds_cnn legc_2of4_same_zeros-0.5-float --mark

``--mark`` records the finding on every cell of that net and method (``latency_unreliable``,
with the numbers): the report then leaves their latency out (``edge_suite.timed_p50``).

The dense file is exported again from the suite's dense checkpoint (seed 0, float, unpruned: the
same graph as the suite's dense cell). Prints each process's LiteRT p50 and the fastest per file,
next to the p50 the suite's results hold for those cells. Session 23 (2026-12-07): the cells made
13:27-13:37 UTC (DS-CNN, ResNet-8) looked 1.1-1.7x faster than dense; this showed the dense
file itself then ran 16-38% faster than when the other cells were timed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_legc._io import atomic_write_json  # noqa: E402
from legc_research.evidence.edge_report import bench  # noqa: E402
from legc_research.evidence.edge_suite import cell_p50  # noqa: E402


def main(net: str, cell: str, mark: bool = False, reps: int = 3) -> None:
    import keras

    from keras_legc.keras.export import export_tflite

    ckpts = sorted((ROOT / "evidence/edge-suite/dense-cache" / net).glob("seed0-*/dense.keras"))
    kept = sorted((ROOT / "evidence/edge-suite/models" / net).glob(f"seed0-*/{cell}.tflite"))
    if len(ckpts) != 1 or len(kept) != 1:
        raise SystemExit(f"retime_check: need one seed-0 dense checkpoint of {net!r} and one kept "
                         f"file {cell}.tflite (METHOD-TARGET-QUANT, e.g. legc_2of4-0.5-float) "
                         f"under evidence/edge-suite; found {len(ckpts)} and {len(kept)}. Fix: run "
                         "the suite for that net and seed first.")  # fmt: skip
    (ckpt,), (kept,) = ckpts, kept
    out = ROOT / "runs" / "retime" / net
    out.mkdir(parents=True, exist_ok=True)
    dense = out / "dense-float.tflite"
    if not dense.exists():
        export_tflite(keras.models.load_model(ckpt), dense, overwrite=True)
    # the suite's two runners: LiteRT in this environment, tflite_runtime in the device venv
    pythons = {"litert": sys.executable, "tflite_runtime": str(ROOT / ".venv-device/bin/python")}
    p50 = {(rt, name): [] for rt in pythons for name in ("dense", cell)}
    for rep in range(reps):
        for rt, python in pythons.items():
            for name, path in (("dense", dense), (cell, kept)):
                res = bench(python, path, name, out / f"{name}.{rt}.{rep}.bench.json", 500, 50)
                p50[rt, name].append(res["latency"]["p50_ms"])
    path = ROOT / "evidence/edge-suite/results.json"
    results = json.loads(path.read_text())
    method, target, quant = cell.rsplit("-", 2)
    stored = {}
    for c in results["cells"]:
        if (c["net"], c["seed"], c["quantization"], c["status"]) == (net, 0, quant, "ok"):
            if c["method"] in ("dense", method) and (
                c["method"] == "dense" or float(c["target"]) == float(target)
            ):
                stored[c["method"]] = c["latency"]
    for (rt, name), runs in p50.items():
        then = cell_p50(stored.get("dense" if name == "dense" else method, {}).get(rt, {}))
        print(
            f"{net} {rt} {name}: now {min(runs):.4f} ms (processes "
            f"{', '.join(f'{r:.4f}' for r in runs)}); in the suite's results "
            f"{float('nan') if then is None else then:.4f} ms"
        )
    if mark:
        if "dense" not in stored:
            raise SystemExit(f"retime_check: no measured dense cell of {net} seed 0 to compare "
                             "with; nothing marked.")  # fmt: skip
        then = cell_p50(stored["dense"]["litert"])
        why = (
            f"re-timed beside the dense file on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"the same dense {net} float file ran {min(p50['litert', 'dense']):.4f} ms on LiteRT "
            f"against {then:.4f} ms in these results (evidence/retime_check.py)"
        )
        n = 0
        for c in results["cells"]:
            if (c["net"], c["method"]) == (net, method):
                c["latency_unreliable"] = why
                n += 1
        atomic_write_json(path, results, overwrite=True)
        print(f"marked {n} cells: {why}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], mark="--mark" in sys.argv[3:])
