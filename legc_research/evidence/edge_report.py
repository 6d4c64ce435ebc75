#!/usr/bin/env python3
"""Edge evidence: size, latency and output error of pruned MLPs on LiteRT and tflite-runtime.

One command builds everything and writes ``docs/edge.md`` (+ ``docs/img/edge_<model>.png``):

    python tools/edge_report.py [--data-dir DATA] [--device-python .venv-device/bin/python] [--force]
    python tools/edge_report.py --quick --out /tmp/er --doc /tmp/er/edge.md --img-dir /tmp/er  # smoke

Workload:
- Models: LeNet-300-100 (784-300-100-10) and an MLP 784-1024-1024-10 (relu, softmax-free logits),
  both trained briefly (Adam, batch 64; 3 epochs and 1 epoch) on the MNIST t10k split of
  ``legc_research.datasets.mnist_test_split`` (8,000 train / 2,000 validation, seed 0).
- Variants of each: dense; unstructured (magnitude, weight by weight) and block-sparse (magnitude,
  whole (1, 16) blocks = 1 output x 16 consecutive inputs) at 50/80/90/95% of kernel weights; and,
  when ``keras_legc.shrink`` is importable (the neuron-pruning issue), a neuron-shrunk model with
  70% of each hidden layer's units removed (lowest L2 norm of incoming weights). Magnitude masks
  stand in for LEGC masks: latency depends on the structure of the zeros, not on which weights they
  are (LEGC block masks have the same structure; an LEGC score needs a recorded history).
  No fine-tuning after pruning: the output error compares each .tflite with its own Keras model.
- Each variant is exported as float and full int8 (calibrated on 500 training images; the
  reference inputs are 16 held-out validation images), with ``sparse=True`` for sparse variants.
- Each .tflite is benchmarked at batch 1, 1 thread, by ``edge/bench.py`` in a subprocess: with
  LiteRT (this environment) and with tflite-runtime 2.14 in the device venv (``--device-python`` or
  ``$LEGC_DEVICE_PYTHON``; skipped with a note when absent). The bench checks outputs against the
  export's reference; a failed check is flagged in the table, never hidden.

``--quick``: LeNet only, 90% only, 300 training images, 1 epoch, 30 timed runs: a smoke test of the
pipeline, not a measurement. The doc is refused if it exists, unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

import keras_legc as kl
from keras_legc.errors import InvalidArgumentError
from keras_legc.keras.export import export_tflite
from keras_legc.keras.flavour import keras
from legc_research.datasets import find_data_dir, mnist_t10k, mnist_test_split
from legc_research.evidence._provenance import REPO as ROOT
from legc_research.evidence._provenance import package_version, python_version, today

MODELS = {"lenet": (784, 300, 100, 10), "mlp1024": (784, 1024, 1024, 10)}
EPOCHS = {"lenet": 3, "mlp1024": 1}
SPARSITIES = (0.5, 0.8, 0.9, 0.95)
SHRINK_FRACTION = 0.7
TARGET_SPEEDUP = 2.5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build(sizes, seed=0):
    k = keras()
    k.utils.set_random_seed(seed)
    layers = [k.layers.Input(shape=(sizes[0],))]
    layers += [k.layers.Dense(n, activation="relu") for n in sizes[1:-1]]
    model = k.Sequential([*layers, k.layers.Dense(sizes[-1])])
    model.compile(
        k.optimizers.Adam(1e-3),
        k.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def masked_copy(model, mask):
    k = keras()
    out = k.models.clone_model(model)
    out.set_weights(model.get_weights())
    for layer in kl.dense_layers(out):
        w, b = layer.get_weights()
        layer.set_weights([w * mask[layer.name], b])
    out.compile(loss=model.loss, metrics=["accuracy"])
    return out


def shrunk_copy(model):
    """Remove SHRINK_FRACTION of each hidden layer's units (lowest incoming L2 norm)."""
    shrink = getattr(kl, "shrink", None)
    if shrink is None:
        return None
    remove = {}
    for layer in kl.dense_layers(model)[:-1]:
        norms = np.linalg.norm(layer.get_weights()[0], axis=0)
        n = int(round(SHRINK_FRACTION * norms.size))
        remove[layer.name] = np.sort(np.argsort(norms, kind="stable")[:n]).tolist()
    small = shrink(model, remove)
    small.compile(loss=model.loss, metrics=["accuracy"])
    return small


def accuracy(model, data) -> float:
    logits = model(data.x_val, training=False).numpy()
    return float((logits.argmax(axis=1) == data.y_val).mean())


def variants(name, model, sparsities, notes):
    yield "dense", model, False
    for s in sparsities:
        pct = int(round(100 * s))
        yield f"unstructured-{pct}", masked_copy(model, kl.magnitude_mask(model, s)), True
        block = kl.magnitude_mask(model, s, block=(1, 16))
        yield f"block-{pct}", masked_copy(model, block), True
    small = shrunk_copy(model)
    if small is None:
        notes.append(
            f"{name}: keras_legc.shrink is not importable in this checkout (the neuron-pruning "
            "issue is not merged), so the neuron-shrunk rows are skipped."
        )
        log(f"note: {notes[-1]}")
    else:
        yield f"shrunk-{int(100 * SHRINK_FRACTION)}units", small, False


def bench(python, tflite, label, out_json, runs, warmup, allow_constant=False) -> dict | None:
    cmd = [python, str(ROOT / "edge" / "bench.py"), str(tflite), "--runs", str(runs), "--warmup",
           str(warmup), "--threads", "1", "--label", label, "--json", str(out_json), "--force"]  # fmt: skip
    if allow_constant:
        cmd.append("--allow-constant-output")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode not in (0, 3):
        log(f"bench failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-2000:]}")
        return None
    return json.loads(out_json.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=find_data_dir())
    parser.add_argument("--device-python", default=os.environ.get("LEGC_DEVICE_PYTHON"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "edge-report"))
    parser.add_argument("--doc", default=str(ROOT / "docs" / "edge.md"))
    parser.add_argument("--img-dir", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument(
        "--note", action="append", default=[],
        help="a paragraph for the header (e.g. the machine's load); repeatable",
    )  # fmt: skip
    args = parser.parse_args(argv)
    doc = Path(args.doc)
    if doc.exists() and not args.force:
        print(f"error: {doc} exists. Fix: pass --force to regenerate it.", file=sys.stderr)
        return 2
    try:  # the data folder's mnist/, else Keras' MNIST cache (fetched once when online)
        mnist_t10k(args.data_dir)
    except InvalidArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    img_dir = Path(args.img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    models = {"lenet": MODELS["lenet"]} if args.quick else MODELS
    sparsities = (0.9,) if args.quick else SPARSITIES

    data = mnist_test_split(args.data_dir, seed=0)
    runtimes = [("litert", sys.executable)]
    notes = []
    if args.device_python and Path(args.device_python).exists():
        runtimes.append(("tflite_runtime", args.device_python))
    else:
        notes.append(
            "tflite-runtime rows are missing: no device python (--device-python or "
            "LEGC_DEVICE_PYTHON; create it with `make device-env`)."
        )
        log(f"note: {notes[-1]}")

    rows_json, keras_rows = _measure(args, models, sparsities, data, runtimes, notes, out)
    write_doc(args, doc, img_dir, rows_json, keras_rows, notes, sparsities)
    log(f"wrote {doc}")
    return 0


def _measure(args, models, sparsities, data, runtimes, notes, out: Path):
    """Train each model, export every variant (float, int8) and benchmark it on each runtime;
    returns the benchmark JSON paths and the Keras rows (model, variant, weights, accuracy)."""
    n_train = 300 if args.quick else None
    runs, warmup = (30, 5) if args.quick else (args.runs, 100)
    x_train, y_train = data.x_train[:n_train], data.y_train[:n_train]
    calibration = data.x_train[:500]
    reference = data.x_val[:16]
    rows_json, keras_rows = [], []
    for name, sizes in models.items():
        log(f"training {name} {sizes} ...")
        model = build(sizes)
        epochs = 1 if args.quick else EPOCHS[name]
        model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
        for variant, m, sparse in variants(name, model, sparsities, notes):
            n_weights = sum(int(layer.kernel.shape.num_elements()) for layer in kl.dense_layers(m))
            keras_rows.append((name, variant, n_weights, accuracy(m, data)))
            for quant in ("float", "int8"):
                path = out / f"{name}_{variant}_{quant}.tflite"
                log(f"export {path.name}")
                # --quick trains 1 epoch on 300 images: a 90% mask may empty a layer there. The
                # smoke run times it anyway; a measurement run refuses such a model.
                export_tflite(
                    m, path, quantization=quant, sparse=sparse, representative_data=calibration,
                    reference_inputs=reference, overwrite=True, allow_constant_output=args.quick,
                )  # fmt: skip
                for runtime, python in runtimes:
                    res = out / f"{path.stem}.{runtime}.bench.json"
                    label = f"{name}/{variant}"
                    if bench(python, path, label, res, runs, warmup, args.quick) is not None:
                        rows_json.append(res)
                        log(
                            f"  {runtime}: {json.loads(res.read_text())['latency']['p50_ms']:.4f} ms"
                        )
    return rows_json, keras_rows


def write_doc(args, doc, img_dir, rows_json, keras_rows, notes, sparsities) -> None:
    """Write the document (tables, target verdicts, plots, notes) and rows.json."""
    from legc_edge import report

    rows = report.load_results(rows_json)
    images = []
    for group in sorted({r["group"] for r in rows}):
        png = img_dir / f"edge_{group}.png"
        report.plot([r for r in rows if r["group"] == group], png, f"{group}: p50 latency, batch 1")
        images.append(png)
    lines = _header_lines(args) + _setup_lines(args, sparsities)
    lines += _result_lines(rows, report, keras_rows)
    for png in images:
        rel = os.path.relpath(png, doc.parent)
        lines.append(f"![latency vs sparsity]({rel})")
        lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(lines)
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_name(f".{doc.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, doc)
    (Path(args.out) / "rows.json").write_text(json.dumps(rows, indent=1, default=str))


def _result_lines(rows, report, keras_rows) -> list[str]:
    """The target verdicts, the flagged rows, the benchmark table and the Keras accuracies."""
    table = report.markdown_table(rows)
    speed = {}
    for r, sp in zip(rows, report.speedups(rows), strict=True):
        if r["variant"] == "block-90" and r["quantization"] == "float" and r["runtime"] == "litert":
            speed[r["group"]] = sp
    flagged = [r for r in rows if r["ok"] is False]
    lines = [
        "## Target: block-sparse 90% float >= 2.5x faster than dense float on LiteRT",
        "",
    ]
    for group, sp in speed.items():
        verdict = "met" if sp is not None and sp >= TARGET_SPEEDUP else "NOT met"
        lines.append(f"- {group}: {'-' if sp is None else f'{sp:.2f}x'} ({verdict})")
    lines += [
        "",
        f"Rows whose outputs failed the check: {len(flagged)}"
        + (
            " — "
            + "; ".join(
                f"{r['group']}/{r['variant']} {r['quantization']} on {r['runtime']}"
                for r in flagged
            )
            if flagged
            else ""
        )
        + ".",
        "",
        "## Results",
        "",
        table,
        "Keras models (validation accuracy on the 2,000 held-out t10k images, before export):",
        "",
        "| model | variant | kernel weights | accuracy |",
        "|---|---|---|---|",
    ]
    lines += [f"| {g} | {v} | {n:,} | {a:.4f} |" for g, v, n, a in keras_rows]
    lines += [""]
    return lines


def _header_lines(args) -> list[str]:
    cmd = "python tools/edge_report.py" + (" --quick" if args.quick else "") + " --force"
    lines = [
        "# Edge deployment: size, latency and output error of pruned MLPs",
        "",
        f"Generated by `{cmd}` (with `LEGC_DATA_DIR` and `LEGC_DEVICE_PYTHON` set) on "
        f"{today()}, on a 2-core CPU dev machine, Python "
        f"{python_version()}, TF {package_version('tensorflow')}.",
        "",
        "Latencies are p50/p90/p99 of one benchmark per row on this machine (not a device); "
        "compare rows within the table, and re-run the command on the target device for its "
        "own numbers.",
    ]
    for note in args.note:
        lines += ["", note]
    if args.quick:
        lines += ["", "**This is a --quick smoke run, not a measurement.**"]
    return lines


def _setup_lines(args, sparsities) -> list[str]:
    return [
        "",
        "## Setup",
        "",
        "- Models: LeNet-300-100 (784-300-100-10) and 784-1024-1024-10 MLP, relu, logits out; "
        "trained briefly with Adam (3 and 1 epochs) on the MNIST t10k split (8,000 train / 2,000 "
        "validation, seed 0). Not fine-tuned after pruning.",
        "- Masks: magnitude, unstructured (weight by weight) vs block (1, 16) = 1 output unit x 16 "
        "consecutive input weights (whole blocks pruned, smallest L2 norm first). Latency depends "
        "on the structure of the zeros, not on which weights are zero, so magnitude masks stand in "
        "for LEGC masks here (`Scores.mask(sparsity=..., block=(1, 16))` gives the same structure).",
        f"- Sparsity levels: {', '.join(f'{int(100 * s)}%' for s in sparsities)} of kernel weights "
        "(reached within half a block of the request).",
        "- Export: float and full int8 (500 training images calibrate; 16 held-out validation "
        "images are the reference), `sparse=True` for pruned variants (TFLite sparse storage).",
        "- Benchmark: `edge/bench.py`, batch 1, 1 thread, "
        f"{30 if args.quick else args.runs} timed runs after a warm-up; LiteRT (ai-edge-litert) in "
        "the main environment, tflite-runtime 2.14 with numpy 1.26 in the device venv (no "
        "TensorFlow).",
        "- Exit codes of `edge/bench.py` (also in its `--help`): 0 ok; 2 bad input (model, "
        "reference, options); 3 output mismatch; 4 over `--budget-ms`/`--budget-kb`; 5 "
        "`--memory-limit-mb` hit; 6 constant output; 7 the interpreter crashed in native code "
        "(SIGSEGV, SIGABRT...): with `--isolate` the first load and invocation run in a child "
        "process, so such a crash is reported with its signal instead of ending the runner "
        "silently.",
        "- Output error: max |TFLite - Keras| on the 16 reference inputs; tolerance 1e-4 (float) / "
        "0.1 (int8) times max(1, max |Keras output|). The runner also fails outputs that collapsed "
        "(std < 5% of the reference's). Rows that fail are marked **MISMATCH**.",
        "",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
