"""How far a .tflite's outputs are from its Keras model's on many test images, not 16.

Export verifies a file on 16 reference rows by its largest error. Quantized outputs err most on
the few inputs near a decision boundary, so that maximum depends on which 16 rows were drawn.
This measures what a user would judge by instead: both models' accuracy, the share of images on
which they pick the same class, and the error's mean, 99th percentile and maximum.

    python tools/int8_agreement.py MODEL.keras FILE.tflite [MODEL.keras FILE.tflite ...] \
        [--rows 2000]

Images: the first ``--rows`` of Fashion-MNIST's test set (``$LEGC_DATA_DIR``). The .tflite runs
on TensorFlow's LiteRT interpreter (one thread, XNNPACK) and, with ``--reference-kernels``, also
on TFLite's reference kernels, to separate what the runtime's optimised kernels round from what
the quantization itself loses. ``--runtime tflite_runtime`` (or ``both``) ``--device-python PY``
runs it on tflite-runtime, through the edge runner in that Python.

Export's check, calibrated: the images are cut into groups of ``--group`` rows (export's 16
reference rows) and each group is judged by the max rule (largest error <= 0.1 x max(1, max
|Keras output|), export's int8 default until 2026-12-06) and by today's default (mean error <=
``keras_legc.keras.export.INT8_MEAN_TOLERANCE`` x the same scale): the share of groups each
refuses. ``--mnist-block-mlps`` adds files a runtime computes wrongly: the MNIST MLPs
of docs/edge.md, block-sparse int8, which tflite-runtime 2.14 mis-runs (their own MNIST images).

    python tools/int8_agreement.py --suite evidence/edge-suite/models/ds_cnn/seed0-d7177a450cca \
        --json out.json
    python tools/int8_agreement.py --mnist-block-mlps --runtime both \
        --device-python .venv-device/bin/python --json wrong.json
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import numpy as np


def run_tflite(path: str | os.PathLike, x: np.ndarray, reference_kernels: bool = False):
    """Outputs of a .tflite on ``x`` (one batch) on TensorFlow's interpreter."""
    import tensorflow as tf

    kwargs = {"num_threads": 1}
    if reference_kernels:
        kwargs["experimental_op_resolver_type"] = tf.lite.experimental.OpResolverType.BUILTIN_REF
    interp = tf.lite.Interpreter(model_path=str(path), **kwargs)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], (len(x), *x.shape[1:]))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x.astype(np.float32))
    interp.invoke()
    return interp.get_tensor(out["index"])


def run_on_device_python(python: str, path, x: np.ndarray) -> np.ndarray:
    """Outputs of a .tflite on tflite-runtime, row by row through the edge runner, in ``python``
    (a TensorFlow-free environment: ``make device-env``)."""
    import subprocess
    import tempfile

    code = (  # edge/bench.py from this checkout (the device environment need not install it)
        "import sys, numpy as np; from edge.bench import load_interpreter, run_model; "
        "i = load_interpreter(sys.argv[1], 'tflite_runtime', threads=1)[0]; "
        "np.save(sys.argv[3], run_model(i, np.load(sys.argv[2])))"
    )
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", x.astype(np.float32))
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [python, "-c", code, str(path), f"{tmp}/x.npy", f"{tmp}/y.npy"],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no message"
            raise RuntimeError(
                f"{python} could not run {path} on tflite-runtime (exit {done.returncode}): {why}. "
                "Fix: make device-env, and pass its python as --device-python."
            )
        return np.load(f"{tmp}/y.npy")


def group_verdicts(keras_out: np.ndarray, tflite_out: np.ndarray, group: int = 16) -> dict:
    """Export's check on each group of ``group`` consecutive rows, by the max rule and by the
    default: the share of groups each refuses, and the range of the groups' statistics."""
    from keras_legc.keras.export import INT8_MEAN_TOLERANCE, TOLERANCE
    from keras_legc.keras.tflite_runner import judge_outputs

    n = len(keras_out) // group * group
    max_refused, default_refused, means, kept = [], [], [], []
    for i in range(0, n, group):
        want, got = keras_out[i : i + group], tflite_out[i : i + group]
        scale = max(1.0, float(np.max(np.abs(want))))
        old = judge_outputs(want, got, TOLERANCE["int8"] * scale)
        new = judge_outputs(want, got, TOLERANCE["int8"] * scale, INT8_MEAN_TOLERANCE * scale)
        max_refused.append(not old["ok"])
        default_refused.append(not new["ok"])
        means.append(new["mean_abs_error"] / scale)
        kept.append(new["top1_agreement"])
    kept = [k for k in kept if k is not None]
    return {
        "group": group, "groups": len(means),
        "refused_by_max_rule": float(np.mean(max_refused)),
        "refused_by_default": float(np.mean(default_refused)),
        "group_mean_error": [float(min(means)), float(np.median(means)), float(max(means))],
        "group_top1": [float(min(kept)), float(max(kept))] if kept else None,
    }  # fmt: skip


def compare(keras_out: np.ndarray, tflite_out: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy of both, top-1 agreement, and |tflite - keras| per image (its largest entry)."""
    from keras_legc.keras.export import top1_agreement

    per_image = np.abs(tflite_out - keras_out).reshape(len(y), -1).max(axis=1)
    return {
        "rows": int(len(y)),
        "accuracy_keras": float(np.mean(keras_out.argmax(axis=1) == y)),
        "accuracy_tflite": float(np.mean(tflite_out.argmax(axis=1) == y)),
        "top1_agreement": top1_agreement(keras_out, tflite_out),  # what export reports
        "mean_abs_error": float(np.mean(np.abs(tflite_out - keras_out))),
        "p99_image_error": float(np.quantile(per_image, 0.99)),
        "max_error": float(per_image.max()),
    }


def measure(keras_path, tflite_path, x, y, reference_kernels=False, device_python=None,
            group=16) -> dict:  # fmt: skip
    """:func:`compare` for one (model, file) pair, export's check per group of rows, and the
    optimised-vs-reference-kernel gap; on tflite-runtime where ``device_python`` is given."""
    import keras

    model = keras_path if not isinstance(keras_path, (str, os.PathLike)) else (
        keras.models.load_model(keras_path, compile=False)
    )  # fmt: skip
    keras_out = np.asarray(model.predict(x, batch_size=500, verbose=0), dtype=np.float32)
    if device_python:
        tflite_out = run_on_device_python(device_python, tflite_path, x)
    else:
        tflite_out = run_tflite(tflite_path, x)
    row = {"keras": str(keras_path) if isinstance(keras_path, (str, os.PathLike)) else None,
           "tflite": str(tflite_path),
           "runtime": "tflite_runtime" if device_python else "litert",
           **compare(keras_out, tflite_out, y),
           "export_check": group_verdicts(keras_out, tflite_out, group)}  # fmt: skip
    if reference_kernels:
        ref = run_tflite(tflite_path, x, reference_kernels=True)
        row["max_error_vs_reference_kernels"] = float(np.max(np.abs(tflite_out - ref)))
    return row


def suite_pairs(folder) -> list[tuple[str, str]]:
    """The edge suite's int8 files in ``folder`` (one net and seed) with the Keras models they
    were exported from: ``<cell>-int8[.failed].tflite`` and ``<cell>[-v2].keras``."""
    pairs = []
    for tflite in sorted(Path(folder).glob("*-int8*.tflite")):
        cell = tflite.name.split("-int8")[0]
        model = next((m for m in (folder / f"{cell}-v2.keras", folder / f"{cell}.keras")
                      if m.exists()), None)  # fmt: skip
        if model is not None:
            pairs.append((str(model), str(tflite)))
    return pairs


def mnist_block_mlps(data_dir, out_dir, sparsities=(0.0, 0.5, 0.8, 0.9, 0.95)):
    """docs/edge.md's MNIST MLPs (trained as there), block-sparse (1, 16) by magnitude, exported
    int8 with sparse storage: ``[(label, model, .tflite path)]`` and the MNIST rows to judge."""
    import keras_legc as kl
    from keras_legc.keras.export import export_tflite
    from legc_research.datasets import mnist_test_split
    from legc_research.evidence.edge_report import EPOCHS, MODELS, build, masked_copy

    data = mnist_test_split(data_dir, seed=0)
    files = []
    for name, sizes in MODELS.items():
        model = build(sizes)
        model.fit(data.x_train, data.y_train, batch_size=64, epochs=EPOCHS[name], verbose=0)
        for s in sparsities:
            m = model if s == 0 else masked_copy(model, kl.magnitude_mask(model, s, block=(1, 16)))
            path = Path(out_dir) / f"{name}-block{round(100 * s)}-int8.tflite"
            # a wide tolerance: every file is kept and judged on 2,000 rows, per 16-row group
            export_tflite(m, path, quantization="int8", sparse=s > 0,
                          representative_data=data.x_train[:500],
                          reference_inputs=data.x_val[-16:], tolerance=100.0)  # fmt: skip
            files.append((f"{name} block {round(100 * s)}%", m, path))
    return files, data.x_val, data.y_val


def table(paths) -> str:
    """A Markdown table of export's check per file from ``--json`` outputs: how often each rule
    refuses a 16-row group, next to what 2,000 rows say of the file."""
    import json

    lines = [
        "| file | runtime | Keras acc. | .tflite acc. | same class | mean error | groups: mean "
        "error / scale (min-max) | groups: top kept (min-max) | refused: max rule | refused: "
        "default |",
        "|---|---|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for path in paths:
        for r in json.loads(Path(path).read_text())["rows"]:
            c = r["export_check"]
            name = "/".join(Path(r["tflite"]).parts[-3:]).replace("seed0-", "")
            top = "-" if c["group_top1"] is None else (
                f"{c['group_top1'][0]:.0%}-{c['group_top1'][1]:.0%}"
            )  # fmt: skip
            lines.append(
                f"| {name} | {r['runtime']} | {r['accuracy_keras']:.4f} | "
                f"{r['accuracy_tflite']:.4f} | {r['top1_agreement']:.1%} | "
                f"{r['mean_abs_error']:.4f} | {c['group_mean_error'][0]:.4f}-"
                f"{c['group_mean_error'][2]:.4f} | {top} | {c['refused_by_max_rule']:.0%} | "
                f"{c['refused_by_default']:.0%} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="*", help="MODEL.keras FILE.tflite, one or more pairs")
    ap.add_argument("--rows", type=int, default=2000, help="test images (default 2000)")
    ap.add_argument("--data-dir", default=os.environ.get("LEGC_DATA_DIR"))
    ap.add_argument("--reference-kernels", action="store_true")
    ap.add_argument("--runtime", choices=("litert", "tflite_runtime", "both"), default="litert")
    ap.add_argument("--device-python", default=os.environ.get("LEGC_DEVICE_PYTHON"),
                    help="Python with tflite-runtime, for --runtime tflite_runtime")  # fmt: skip
    ap.add_argument("--group", type=int, default=16, help="rows per export check (default 16)")
    ap.add_argument(
        "--mnist-block-mlps",
        metavar="DIR",
        nargs="?",
        const="runs/int8-mlps",
        help="also build docs/edge.md's block-sparse int8 MLPs in DIR and judge them",
    )
    ap.add_argument(
        "--suite",
        metavar="DIR",
        action="append",
        default=[],
        help="every int8 file of an edge-suite model folder (one net and seed)",
    )
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument(
        "--table",
        nargs="+",
        metavar="JSON",
        help="print a Markdown table of earlier --json files, and stop",
    )
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    for folder in args.suite:
        args.pairs += [path for pair in suite_pairs(Path(folder)) for path in pair]
    if len(args.pairs) % 2 or not (args.pairs or args.mnist_block_mlps):
        ap.error("give MODEL.keras FILE.tflite pairs, --suite DIR or --mnist-block-mlps")
    if not args.data_dir:
        ap.error("no data: pass --data-dir or set LEGC_DATA_DIR (it holds fashion-mnist/)")
    if args.group < 1 or args.group > args.rows:
        ap.error(f"--group must be between 1 and --rows ({args.rows}), got {args.group}")
    if (
        args.mnist_block_mlps
        and Path(args.mnist_block_mlps).exists()
        and any(Path(args.mnist_block_mlps).iterdir())
    ):
        ap.error(f"{args.mnist_block_mlps} holds files of an earlier run. Fix: remove it or pass "
                 "another folder to --mnist-block-mlps.")  # fmt: skip
    if args.runtime != "litert" and not args.device_python:
        ap.error(f"--runtime {args.runtime} needs --device-python (make device-env)")
    devices = {"litert": [None], "tflite_runtime": [args.device_python],
               "both": [None, args.device_python]}[args.runtime]  # fmt: skip
    jobs = []
    if args.pairs:
        from legc_research.zoo.train import load_data

        data = load_data(args.data_dir)
        x, y = data.x_test[: args.rows], data.y_test[: args.rows]
        jobs += [(k, t, x, y) for k, t in zip(args.pairs[::2], args.pairs[1::2], strict=True)]
    if args.mnist_block_mlps:
        Path(args.mnist_block_mlps).mkdir(parents=True, exist_ok=True)
        files, x, y = mnist_block_mlps(args.data_dir, args.mnist_block_mlps)
        jobs += [(model, path, x[: args.rows], y[: args.rows]) for _, model, path in files]
    rows = []
    for (keras_model, tflite_path, x, y), device in itertools.product(jobs, devices):
        row = measure(keras_model, tflite_path, x, y, args.reference_kernels, device, args.group)
        rows.append(row)
        check = row["export_check"]
        print(
            f"{Path(tflite_path).name} on {row['runtime']}: accuracy Keras "
            f"{row['accuracy_keras']:.4f}, TFLite {row['accuracy_tflite']:.4f}; same top class "
            f"on {row['top1_agreement']:.1%}; |error| mean {row['mean_abs_error']:.4f}, p99 per "
            f"image {row['p99_image_error']:.3f}, max {row['max_error']:.3f}; {check['group']}-row "
            f"groups refused: max rule {check['refused_by_max_rule']:.0%}, default "
            f"{check['refused_by_default']:.0%}"
            + (
                f"; optimised vs reference kernels {row['max_error_vs_reference_kernels']:.4f}"
                if args.reference_kernels
                else ""
            ),  # fmt: skip
            flush=True,
        )
    if args.json:
        from keras_legc._io import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, "n_images": args.rows, "group": args.group})
    return 0
