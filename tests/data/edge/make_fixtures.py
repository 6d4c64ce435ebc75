"""Regenerate the small .tflite fixtures of tests/unit/test_edge_runner_unit.py (TensorFlow needed
here only; the unit tests load the committed files with the interpreter alone):

    python tests/data/edge/make_fixtures.py [--force]

Each model is a tiny Dense network exported by keras_legc's own ``export_tflite`` (the .tflite,
its .json and .reference.npz), plus two the export cannot make:
- ``int8io.tflite``: full-integer with int8 input and output tensors (the runner's quantize and
  dequantize path), with a reference written here in the export's format;
- ``int8sparse.tflite``: int8 with unstructured sparsity, which LiteRT 2.3's default XNNPACK
  delegate cannot prepare (the runner falls back to the builtin ops and says so);
- ``forged.tflite``: ``sparse.tflite`` with a sparse-kernel segment pointing outside the tensor,
  which crashes the interpreter with SIGSEGV (the ``--isolate`` exit 7);
- ``noinput.tflite``: ``dense.tflite`` with its subgraph's input list emptied: it loads, but has
  no input tensor to run (the runner's "cannot run this model");
- ``tile.tflite``: a 1 KB model whose output tiles its 4 inputs 4M times (a 64 MiB activation):
  it loads without a limit, and its arena cannot be allocated under a tight RLIMIT_AS.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_IN, HIDDEN, N_OUT = 4, 8, 3


def mlp(k, seed: int):
    k.utils.set_random_seed(seed)
    return k.Sequential(
        [
            k.layers.Input(shape=(N_IN,)),
            k.layers.Dense(HIDDEN, activation="relu"),
            k.layers.Dense(N_OUT),
        ]
    )


def int8_io(k, model, x: np.ndarray, out: Path) -> None:
    """A full-integer model whose input and output tensors are int8, with its reference."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibration = np.random.default_rng(5).normal(size=(200, N_IN)).astype("float32")
    converter.representative_dataset = lambda: ([row[None]] for row in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    out.write_bytes(converter.convert())
    want = np.asarray(model(x, training=False), dtype=np.float32)
    scale = max(1.0, float(np.abs(want).max()))
    np.savez(
        out.with_suffix(".reference.npz"),
        inputs=x,
        keras_outputs=want,
        atol=np.float64(0.1 * scale),
    )


def forge_sparse_segments(tflite: Path, out: Path) -> None:
    """``tflite`` with one segment of each sparse tensor pointing far outside it (SIGSEGV): the
    forgery of tests/integration/test_edge_runner.py (one copy of it)."""
    path = HERE.parents[1] / "integration" / "test_edge_runner.py"
    spec = importlib.util.spec_from_file_location("_edge_runner_integration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.forge_sparse_segments(tflite, out)


def drop_inputs(tflite: Path, out: Path) -> None:
    """``tflite`` whose subgraph lists no input tensor."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite.read_bytes(), 0))
    model.subgraphs[0].inputs = []
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))


def tile_model(out: Path, copies: int = 4 * 2**20) -> None:
    """A float model [1, 4] -> [copies, 4]: tiny file, large activation."""
    import tensorflow as tf

    class Tile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, N_IN], tf.float32)])
        def f(self, x):
            return tf.tile(x, [copies, 1])

    module = Tile()
    concrete = module.f.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    out.write_bytes(converter.convert())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="replace the existing fixtures")
    args = parser.parse_args(argv)
    if any(HERE.glob("*.tflite")) and not args.force:
        print(f"{HERE} already holds fixtures; pass --force to replace them", file=sys.stderr)
        return 2
    for path in [*HERE.glob("*.tflite"), *HERE.glob("*.npz"), *HERE.glob("*.json")]:
        path.unlink()

    from keras_legc.errors import LegcWarning
    from keras_legc.keras.export import export_tflite
    from keras_legc.keras.flavour import keras

    k = keras()
    # Unstructured sparsity (sparse, int8sparse) is intended here: no DENSIFY warning.
    warnings.simplefilter("ignore", LegcWarning)
    x = np.random.default_rng(1).normal(size=(6, N_IN)).astype("float32")
    dense = mlp(k, 0)
    export_tflite(dense, HERE / "dense.tflite", reference_inputs=x)
    # Zero kernels: the outputs are the biases, the same for every input (exit 6).
    flat = mlp(k, 0)
    flat.set_weights([np.zeros_like(w) if w.ndim == 2 else w + 0.5 for w in flat.get_weights()])
    export_tflite(flat, HERE / "flat.tflite", reference_inputs=x, allow_constant_output=True)
    int8_io(k, dense, x, HERE / "int8io.tflite")
    # 16 inputs with 3 rows kept: stored block-sparse, the layout whose forged segments crash.
    wide = k.Sequential([k.layers.Input(shape=(16,)), k.layers.Dense(N_OUT)])
    kernel, bias = wide.get_weights()
    kernel[3:] = 0.0
    wide.set_weights([kernel, bias])
    x16 = np.random.default_rng(3).normal(size=(4, 16)).astype("float32")
    export_tflite(wide, HERE / "sparse.tflite", sparse=True, reference_inputs=x16)
    forge_sparse_segments(HERE / "sparse.tflite", HERE / "forged.tflite")
    drop_inputs(HERE / "dense.tflite", HERE / "noinput.tflite")
    tile_model(HERE / "tile.tflite")
    # 80% of the kernel weights zero, not in blocks: a DENSIFY op the delegate refuses in int8.
    k.utils.set_random_seed(0)
    scattered = k.Sequential(
        [
            k.layers.Input(shape=(16,)),
            k.layers.Dense(HIDDEN, activation="relu"),
            k.layers.Dense(N_OUT),
        ]
    )
    weights = scattered.get_weights()
    rng = np.random.default_rng(0)
    weights[0] = weights[0] * (rng.random(weights[0].shape) < 0.2)
    scattered.set_weights(weights)
    rows = rng.normal(size=(200, 16)).astype("float32")
    export_tflite(scattered, HERE / "int8sparse.tflite", quantization="int8", sparse=True,
                  representative_data=rows, n_reference=6)  # fmt: skip
    sizes = {p.name: p.stat().st_size for p in sorted(HERE.iterdir()) if p.suffix != ".py"}
    print(json.dumps(sizes, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
