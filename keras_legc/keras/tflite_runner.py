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


def top1_agreement(reference: np.ndarray, other: np.ndarray) -> float | None:
    """The share of rows whose largest output is the same in both; None for outputs with fewer
    than two entries per row (no top output to compare).

    Example:
        >>> top1_agreement(np.array([[0.1, 0.9], [0.6, 0.4]]), np.array([[0.2, 0.8], [0.4, 0.6]]))
        0.5
    """
    ref = np.asarray(reference).reshape(len(reference), -1)
    oth = np.asarray(other).reshape(len(other), -1)
    if ref.shape[1] < 2 or len(ref) == 0:
        return None
    return float(np.mean(np.argmax(ref, axis=1) == np.argmax(oth, axis=1)))


def judge_outputs(
    want: np.ndarray, got: np.ndarray, atol: float, mean_atol: float | None = None
) -> dict:
    """Whether ``got`` (a .tflite's outputs) matches ``want`` (the Keras model's): export and the
    device check judge with this one rule.

    Without ``mean_atol`` the rule is ``"max"``: max |got - want| <= ``atol``. With it, the rule
    is ``"mean"`` (export's default for int8): mean |got - want| <= ``mean_atol``. A quantized
    file errs most on the few inputs near a decision boundary, so its largest error depends on
    which rows were drawn; its mean error does not, and a runtime that computes the file wrongly
    moves it (docs/export.md). edge/bench.py holds the same function (it
    stays one copyable file); a test checks that both agree. The top outputs are reported, not judged: where outputs are nearly
    tied (an untrained model) they flip on errors far below any tolerance.

    Example:
        >>> judge_outputs(np.array([[0.1, 0.9]]), np.array([[0.3, 0.7]]), atol=0.1)["ok"]
        False
        >>> judge_outputs(np.array([[0.1, 0.9]]), np.array([[0.3, 0.7]]), 0.1, mean_atol=0.25)["ok"]
        True
    """
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
    err = float(diff.max()) if diff.size else 0.0
    mean = float(diff.mean()) if diff.size else 0.0
    judged = {"rule": "max" if mean_atol is None else "mean", "max_abs_error": err,
              "mean_abs_error": mean, "top1_agreement": top1_agreement(want, got),
              "atol": float(atol)}  # fmt: skip
    if mean_atol is None:
        return {**judged, "ok": bool(err <= atol)}
    return {**judged, "mean_atol": float(mean_atol), "ok": bool(mean <= mean_atol)}
