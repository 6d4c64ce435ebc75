"""What a channel-pruned zoo net can gain at best: the same net built narrower (every layer's
width scaled, so MACs drop by about 1.5x, 2x, 3x and 4x), exported float and int8, timed by the
edge runner (LiteRT, 1 thread, batch 1) against the full-width net. A uniformly narrower dense net
is the ideal outcome of channel pruning at that MAC reduction (no odd per-layer counts), so its
speed-up over MAC reduction bounds what pruning can reach on this runtime and machine (issues 26
and 28: target at least 0.75 for int8).

    python tools/width_latency.py [--nets ds_cnn,resnet8,mobilenet_v1_025] [--json F] [--quick]

Weights are seeded random (BatchNorm at its initial statistics): latency does not depend on the
values; int8 is calibrated on seeded random images in [0, 1]. ``--reference-shapes`` builds the
nets at MLPerf Tiny's own input shapes (DS-CNN 49x10x1, ResNet-8 32x32x3, MobileNetV1-0.25
96x96x3) instead of Fashion-MNIST's 28x28x1: more time per channel, the same per-invoke floor.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

#: net -> (width argument of its builder, full width, candidate widths, from widest)
WIDTHS = {
    "ds_cnn": ("filters", 64, tuple(range(64, 15, -1))),
    "resnet8": ("filters", 16, tuple(range(16, 3, -1))),
    "mobilenet_v1_025": ("alpha", 0.25, tuple(round(0.25 - 0.005 * i, 3) for i in range(40))),
}
FACTORS = (1.5, 2.0, 3.0, 4.0)
BENCH = {"runs": 500, "warmup": 50, "reps": 3}
QUICK = {"nets": ("ds_cnn",), "factors": (2.0,), "bench": {"runs": 20, "warmup": 5, "reps": 1}}


def _build(net: str, width, reference: bool = False):
    import keras

    from legc_research.zoo import nets as zoo

    keras.utils.set_random_seed(0)
    arg, spec = WIDTHS[net][0], zoo.NETS[net]
    if reference:  # MLPerf Tiny's input shape and class count (--reference-shapes)
        return spec.builder(keras, spec.reference_input, spec.reference_classes, **{arg: width})
    return spec.builder(keras, **{arg: width})


@functools.cache
def _macs(net: str, width, reference: bool = False) -> int:
    from legc_research.zoo import count_macs

    return count_macs(_build(net, width, reference))


def narrower(net: str, factor: float, reference: bool = False) -> tuple[object, int]:
    """The candidate width whose MACs are closest to the full net's over ``factor``, and its MACs."""
    _, full, candidates = WIDTHS[net]
    macs = functools.partial(_macs, net, reference=reference)
    target = macs(full) / factor
    best = min(candidates, key=lambda w: abs(macs(w) - target))
    return best, macs(best)


def measure(model, name: str, quant: str, folder: Path, bench_cfg: dict, sparse=False) -> dict:
    """Export ``model`` (``sparse``: TFLite's sparse storage) and time it: the median p50 of
    ``reps`` runner processes; the report's ops and verification come back too."""
    from keras_legc.errors import LegcWarning
    from keras_legc.keras.export import export_tflite
    from legc_research.evidence.edge_report import bench

    rng = np.random.default_rng(0)
    shape = (1, *model.input_shape[1:])
    path = folder / f"{name}-{quant}.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        report = export_tflite(
            model, path, quantization=quant, sparse=sparse,
            representative_data=rng.uniform(0, 1, (100, *shape[1:])).astype(np.float32),
            reference_inputs=rng.uniform(0, 1, (8, *shape[1:])).astype(np.float32),
            overwrite=True, allow_constant_output=True,
        )  # fmt: skip
    p50s = []
    for rep in range(bench_cfg["reps"]):
        res = bench(sys.executable, path, name, folder / f"{path.stem}.{rep}.json",
                    bench_cfg["runs"], bench_cfg["warmup"], allow_constant=True)  # fmt: skip
        if res is None:
            raise RuntimeError(f"the edge runner failed on {path.name} (see the log above)")
        p50s.append(res["latency"]["p50_ms"])
    return {"p50_ms": float(np.median(p50s)), "p50_ms_runs": p50s, "bytes": path.stat().st_size,
            "ops": report["ops"], "export_ok": report["verification"]["ok"]}  # fmt: skip


def pruned(net: str, factor: float, round_to: int, reference: bool = False):
    """The full-width net (seeded random weights) channel-pruned by ``kl.prune_channels`` (global
    L2, the default) to 1/``factor`` of its MACs, kept counts rounded up to ``round_to``."""
    import keras_legc as kl
    from legc_research.zoo import count_macs

    model = _build(net, WIDTHS[net][1], reference)
    return kl.prune_channels(model, macs=int(count_macs(model) / factor), round_to=round_to)


def run(nets, factors, bench_cfg: dict, log=print, widths=None, quants=("float", "int8"),
        round_tos=(), reference=False):  # fmt: skip
    """One row per (net, factor, quantization), the full width first (factor 1); ``widths``:
    these widths instead of the factors' (a sweep, to see where the runtime's speed steps);
    ``round_tos``: channel-pruned nets at the factors, one per ``round_to``, instead of narrower
    ones; ``reference``: the nets at MLPerf Tiny's input shapes."""
    from keras_legc.errors import InvalidArgumentError
    from legc_research.zoo import count_macs

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for net in nets:
            full = WIDTHS[net][1]
            full_macs = _macs(net, full, reference)
            # (factor, label, model maker): the full width first
            plan = [(1.0, full, lambda net=net, w=full: _build(net, w, reference))]
            if round_tos:
                plan += [(f, f"pruned, round_to={r}", lambda f=f, r=r, net=net: pruned(net, f, r, reference))
                         for f in factors for r in round_tos]  # fmt: skip
            else:
                chosen = [(None, w) for w in widths if w != full] if widths else [
                    (f, narrower(net, f, reference)[0]) for f in factors]  # fmt: skip
                plan += [(f, w, lambda w=w, net=net: _build(net, w, reference)) for f, w in chosen]
            for quant in quants:
                base = None
                for i, (factor, width, make) in enumerate(plan):
                    try:
                        model = make()
                    except InvalidArgumentError as exc:  # e.g. round_to=16 on 16-channel groups
                        log(f"{net} {quant} {width} at {factor:g}x: {exc}")
                        rows.append({"net": net, "quantization": quant, "factor": factor,
                                     "width": width, "error": str(exc)})  # fmt: skip
                        continue
                    macs = count_macs(model)
                    m = measure(model, f"{net}-{i}", quant, Path(tmp), bench_cfg)
                    base = base or m["p50_ms"]
                    row = {"net": net, "quantization": quant, "factor": factor, "width": width,
                           "macs": macs, "mac_reduction": full_macs / macs, **m,
                           "speedup": base / m["p50_ms"]}  # fmt: skip
                    row["speedup_over_reduction"] = row["speedup"] / row["mac_reduction"]
                    rows.append(row)
                    log(f"{net} {quant} width {width}: {row['mac_reduction']:.2f}x fewer MACs, "
                        f"p50 {m['p50_ms']:.4f} ms, speed-up {row['speedup']:.2f}x = "
                        f"{row['speedup_over_reduction']:.2f} of it")  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| net | quant | width | MACs | fewer MACs | LiteRT p50 ms | speed-up | "
             "speed-up / MAC reduction |", "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['net']} | {r['quantization']} | {r['width']} | "
                         f"{r['factor']:g}x fewer: not reachable | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {r['net']} | {r['quantization']} | {r['width']} | {r['macs']:,} | "
            f"{r['mac_reduction']:.2f}x | {r['p50_ms']:.4f} | {r['speedup']:.2f}x | "
            f"{r['speedup_over_reduction']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default=",".join(WIDTHS), help=f"from {', '.join(WIDTHS)}")
    ap.add_argument("--json", type=Path, help="write the rows here (refused if it exists)")
    ap.add_argument("--quick", action="store_true", help="DS-CNN at 2x, 20 invokes, 1 process")
    ap.add_argument("--widths", help="comma-separated widths (filters, or alpha for MobileNet) "
                    "instead of the MAC factors: a sweep")  # fmt: skip
    ap.add_argument("--quantizations", default="float,int8", help="float,int8 (default both)")
    ap.add_argument(
        "--reference-shapes",
        action="store_true",
        help="MLPerf Tiny's input shapes (49x10x1, 32x32x3, 96x96x3), not 28x28x1",
    )
    ap.add_argument("--round-to", help="comma-separated round_to values: channel-pruned nets "
                    "(kl.prune_channels, L2) at the MAC factors instead of narrower ones")  # fmt: skip
    args = ap.parse_args(argv)
    nets = QUICK["nets"] if args.quick else tuple(args.nets.split(","))
    bad = [n for n in nets if n not in WIDTHS]
    if bad:
        print(f"error: unknown nets {bad}. Fix: choose from {', '.join(WIDTHS)}.", file=sys.stderr)
        return 2
    if args.json is not None and args.json.exists():
        print(f"error: {args.json} exists. Fix: choose another path or remove it.", file=sys.stderr)
        return 2
    factors = QUICK["factors"] if args.quick else FACTORS
    widths = None
    if args.widths:
        cast = float if any("." in w for w in args.widths.split(",")) else int
        widths = [cast(w) for w in args.widths.split(",")]
    round_tos = tuple(int(r) for r in args.round_to.split(",")) if args.round_to else ()
    quants = tuple(args.quantizations.split(","))
    if set(quants) - {"float", "int8"}:
        print("error: --quantizations takes float and/or int8.", file=sys.stderr)
        return 2
    rows = run(nets, factors, QUICK["bench"] if args.quick else BENCH, widths=widths,
               quants=quants, round_tos=round_tos, reference=args.reference_shapes)  # fmt: skip
    print(table(rows))
    if args.json is not None:
        from keras_legc._io import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, "bench": BENCH, "quick": args.quick,
                                      "reference_shapes": args.reference_shapes})  # fmt: skip
    return 0
