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
the quantization itself loses.
"""

from __future__ import annotations

import argparse
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


def measure(keras_path, tflite_path, x, y, reference_kernels=False) -> dict:
    """:func:`compare` for one (model, file) pair, plus the optimised-vs-reference-kernel gap."""
    import keras

    model = keras.models.load_model(keras_path, compile=False)
    keras_out = np.asarray(model.predict(x, batch_size=500, verbose=0), dtype=np.float32)
    tflite_out = run_tflite(tflite_path, x)
    row = {"keras": str(keras_path), "tflite": str(tflite_path),
           **compare(keras_out, tflite_out, y)}  # fmt: skip
    if reference_kernels:
        ref = run_tflite(tflite_path, x, reference_kernels=True)
        row["max_error_vs_reference_kernels"] = float(np.max(np.abs(tflite_out - ref)))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", help="MODEL.keras FILE.tflite, one or more pairs")
    ap.add_argument("--rows", type=int, default=2000, help="test images (default 2000)")
    ap.add_argument("--data-dir", default=os.environ.get("LEGC_DATA_DIR"))
    ap.add_argument("--reference-kernels", action="store_true")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    if len(args.pairs) % 2:
        ap.error("give MODEL.keras FILE.tflite pairs")
    if not args.data_dir:
        ap.error("no data: pass --data-dir or set LEGC_DATA_DIR (it holds fashion-mnist/)")
    from legc_research.zoo.train import load_data

    data = load_data(args.data_dir)
    x, y = data.x_test[: args.rows], data.y_test[: args.rows]
    rows = []
    for keras_path, tflite_path in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        row = measure(keras_path, tflite_path, x, y, args.reference_kernels)
        rows.append(row)
        print(
            f"{Path(tflite_path).name}: accuracy Keras {row['accuracy_keras']:.4f}, TFLite "
            f"{row['accuracy_tflite']:.4f}; same top class on {row['top1_agreement']:.1%}; "
            f"|error| mean {row['mean_abs_error']:.4f}, p99 per image "
            f"{row['p99_image_error']:.3f}, max {row['max_error']:.3f}"
            + (
                f"; optimised vs reference kernels {row['max_error_vs_reference_kernels']:.4f}"
                if args.reference_kernels
                else ""
            )  # fmt: skip
        )
    if args.json:
        from keras_legc._io import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, "n_images": len(y)})
    return 0
