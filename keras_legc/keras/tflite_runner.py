"""Run a .tflite flatbuffer with the installed TFLite interpreter (LiteRT or tflite-runtime).

Export verifies every file it writes with this. The device side (edge/bench.py) has its own runner
because it must stay one copyable file with numpy and an interpreter only; the library never
imports it.
"""

from __future__ import annotations

import importlib

import numpy as np

from keras_legc._quiet import native_noise_filtered
from keras_legc.errors import ExportError, MissingDependencyError

# Interpreter modules in order of preference (the same order as edge/bench.py's "auto").
INTERPRETERS = (
    ("litert", "ai_edge_litert.interpreter"),
    ("tflite_runtime", "tflite_runtime.interpreter"),
)


def interpreter_module():
    """The first importable interpreter module; ``(runtime name, module)``.

    Raises:
        MissingDependencyError: no interpreter is installed (names the extra).

    Example:
        >>> name, mod = interpreter_module()
    """
    for name, module in INTERPRETERS:
        try:
            return name, importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a broken install counts as absent
            continue
    raise MissingDependencyError(
        "export verifies every .tflite with a TFLite interpreter, and none is installed. "
        "Fix: pip install 'keras-legc[edge]' (it pins ai-edge-litert)."
    )


def load_interpreter(flatbuffer: bytes, threads: int = 1):
    """An allocated interpreter for ``flatbuffer`` and the op names it uses: ``(interp, ops)``.

    When the default XNNPACK delegate cannot prepare the model (e.g. int8 with unstructured
    sparsity in LiteRT 2.3), the builtin ops without default delegates are used instead.

    Args:
        flatbuffer: the .tflite model bytes.
        threads: interpreter threads.

    Raises:
        MissingDependencyError: no interpreter installed.
        ExportError: the interpreter cannot load the model.

    Example:
        >>> interp, ops = load_interpreter(open("m.tflite", "rb").read())
    """
    runtime, mod = interpreter_module()
    kwargs = {"model_content": bytes(flatbuffer), "num_threads": int(threads)}
    try:
        try:
            with native_noise_filtered():  # LiteRT's "INFO: Created ... delegate" line
                interp = mod.Interpreter(**kwargs)
                interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            if "delegate" not in str(exc).lower() or not hasattr(mod, "OpResolverType"):
                raise
            resolver = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            interp = mod.Interpreter(experimental_op_resolver_type=resolver, **kwargs)
            interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ExportError(
            f"the converted model could not be loaded for verification: the {runtime} "
            f"interpreter cannot load this model: {exc}"
        ) from exc
    # Op names come from a private interpreter method; an interpreter without it reports none.
    details = getattr(interp, "_get_ops_details", lambda: [])()
    return interp, sorted({op["op_name"] for op in details})


def run_rows(interp, inputs: np.ndarray) -> np.ndarray:
    """The first output of ``interp`` for each row of ``inputs`` (batch 1), as float32.

    Integer input/output tensors are (de)quantised with their recorded scale and zero point.

    Example:
        >>> y = run_rows(interp, x[:16])
    """
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    rows = []
    for row in np.asarray(inputs):
        interp.set_tensor(inp["index"], _to_tensor(row[None, ...], inp))
        interp.invoke()
        rows.append(_from_tensor(interp.get_tensor(out["index"]), out)[0])
    return np.stack(rows)


def _to_tensor(x: np.ndarray, detail) -> np.ndarray:
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    return np.clip(np.round(x / scale + zero), lo, hi).astype(dtype)


def _from_tensor(y: np.ndarray, detail) -> np.ndarray:
    if not np.issubdtype(detail["dtype"], np.integer):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale
