"""Do zeros in convolution kernels make a float .tflite faster here? (issue 25)

XNNPACK, LiteRT's CPU delegate, has a sparse path for float inference (its README: a subgraph that
starts with a 3x3 stride-2 convolution on 3 input channels and ends in a spatial mean, with 1x1
convolutions at least 2/3 zero inside). A 1-channel 28x28 net never takes it, so this times the
net built for it: MobileNetV1-0.25 at MLPerf Tiny's 96x96x3 (the zoo's ``reference`` build, seeded
random weights: latency does not depend on the values), its 1x1 (pointwise) kernels pruned by
magnitude to each sparsity, unstructured and in (1, 16) blocks, exported float with sparse storage
and timed by the edge runner (LiteRT, 1 thread, batch 1, the median p50 of fresh processes)
against the same net dense.

    python tools/sparse_conv_speed.py [--sparsities 0.5,0.8,0.9] [--json F] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from legc_research.evidence.width_latency import BENCH, measure

SPARSITIES = (0.5, 0.8, 0.9)
PATTERNS = ("unstructured", "block")
QUICK = {
    "sparsities": (0.8,),
    "patterns": ("block",),
    "bench": {"runs": 20, "warmup": 5, "reps": 1},
}


def pointwise_pruned(model, sparsity: float, pattern: str):
    """``model`` with ``sparsity`` of every 1x1 convolution kernel zeroed by magnitude (per
    layer; ``pattern="block"``: whole (1, 16) blocks), other weights as they are."""
    import keras_legc as kl

    pointwise = [
        la.name for la in model.layers
        if type(la).__name__ == "Conv2D" and tuple(la.kernel_size) == (1, 1)
    ]  # fmt: skip
    kernels = {n: model.get_layer(n).kernel.numpy() for n in pointwise}  # key: the layer name
    block = (1, 16) if pattern == "block" else None
    part = kl.magnitude_mask(kernels, sparsity, per_layer=True, block=block)
    keep = kl.Mask.keep_all(model)
    mask = kl.Mask({k: (part[k] if k in kernels else keep[k]) for k in keep})
    return kl.strip(kl.prune(model, mask)), pointwise


def run(sparsities, bench_cfg: dict, log=print, patterns=PATTERNS) -> list[dict]:
    """One row per (sparsity, pattern), the dense net first (sparsity 0, stored dense)."""
    import keras

    from legc_research.zoo import build

    model = build("mobilenet_v1_025", keras, seed=0, reference=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="legc-sparse-conv-") as tmp:
        dense = measure(model, "dense", "float", Path(tmp), bench_cfg)
        rows.append({"sparsity": 0.0, "pattern": "dense", "speedup": 1.0, **dense})
        log(f"dense: p50 {dense['p50_ms']:.4f} ms, {dense['bytes']:,} B")
        for s in sparsities:
            for pattern in patterns:
                pruned, pointwise = pointwise_pruned(model, s, pattern)
                name = f"{pattern}-{int(round(100 * s))}"
                res = measure(pruned, name, "float", Path(tmp), bench_cfg, sparse=True)
                zeros = [float(np.mean(pruned.get_layer(n).kernel.numpy() == 0)) for n in pointwise]
                rows.append({"sparsity": s, "pattern": pattern, **res,
                             "pointwise_zero_share": float(np.mean(zeros)),
                             "speedup": dense["p50_ms"] / res["p50_ms"]})  # fmt: skip
                log(f"{name}: p50 {res['p50_ms']:.4f} ms ({rows[-1]['speedup']:.2f}x), "
                    f"{res['bytes']:,} B, DENSIFY {'DENSIFY' in res['ops']}")  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| pointwise kernels | zeros in them | .tflite bytes | DENSIFY op | LiteRT p50 ms | speed-up |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        zeros = r.get("pointwise_zero_share", 0.0)
        label = (
            r["pattern"]
            if r["pattern"] == "dense"
            else f"{r['pattern']} {100 * r['sparsity']:.0f}%"
        )
        lines.append(
            f"| {label} "
            f"| {100 * zeros:.1f}% | {r['bytes']:,} | {'yes' if 'DENSIFY' in r['ops'] else 'no'} "
            f"| {r['p50_ms']:.4f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sparsities", default=",".join(str(s) for s in SPARSITIES))
    ap.add_argument("--json", type=Path, help="write the rows here (refused if it exists)")
    ap.add_argument("--quick", action="store_true",
                    help="blocks at 80%% only, 20 invokes, 1 process")  # fmt: skip
    args = ap.parse_args(argv)
    if args.json is not None and args.json.exists():
        print(f"error: {args.json} exists. Fix: choose another path or remove it.", file=sys.stderr)
        return 2
    sparsities = QUICK["sparsities"] if args.quick else tuple(
        float(s) for s in args.sparsities.split(",")
    )  # fmt: skip
    if any(not 0 < s < 1 for s in sparsities):
        print("error: --sparsities are fractions in (0, 1), e.g. 0.8.", file=sys.stderr)
        return 2
    bench_cfg = QUICK["bench"] if args.quick else BENCH
    rows = run(sparsities, bench_cfg, patterns=QUICK["patterns"] if args.quick else PATTERNS)
    print(table(rows))
    if args.json is not None:
        from keras_legc._env import machine_summary
        from keras_legc._io import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, "bench": bench_cfg, "quick": args.quick,
                                      "machine": machine_summary()})  # fmt: skip
    return 0
