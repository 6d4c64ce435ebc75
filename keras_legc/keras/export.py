"""Conversion of a (pruned) Keras model (tf_keras, or Keras 3 on any backend) to TFLite, verified
against the Keras outputs.

Writes three files side by side, each atomically, never over existing ones unless asked:
``<name>.tflite``, ``<name>.json`` (sizes, sparsity per layer, options, verification) and
``<name>.reference.npz`` (a few inputs with the Keras outputs, for the device-side check in edge/).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_legc._env import package_version
from keras_legc._inputs import load_array
from keras_legc._io import (
    TargetLock,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    check_writable,
)
from keras_legc._version import __version__
from keras_legc.core._parallel import check_positive_int
from keras_legc.errors import (
    CollapsedModelError,
    ExportError,
    InvalidArgumentError,
    LegcWarning,
    ModelStructureError,
)
from keras_legc.keras.flavour import model_flavour, tf, to_numpy
from keras_legc.keras.tflite_runner import (  # the rule the device check (edge/) applies too
    judge_outputs,
    top1_agreement,  # noqa: F401 - re-exported: keras_legc.keras.export.top1_agreement
)
from keras_legc.masking import block_structure

QUANTIZATIONS = ("float", "float16", "dynamic", "int8")
# Largest |TFLite - Keras| output difference accepted per quantization, for outputs of order 1; for
# larger outputs (e.g. logits) the tolerance scales with the reference's scale max(1, max |y|).
TOLERANCE = {"float": 1e-4, "float16": 1e-2, "dynamic": 5e-2, "int8": 1e-1}
# int8's default check: the mean |TFLite - Keras| <= this x the same scale. An int8 file's largest
# error depends on which rows were drawn: over 16-row groups of 2,000 test images, the max rule at
# 0.1 refused up to 90% (DS-CNN) and 96% (MobileNet) of the groups of healthy files (test accuracy
# within 1.3 pp of Keras); the mean rule refuses none of them, and every group from a runtime that
# computes a file wrongly (tflite-runtime 2.14 int8 block-sparse: group means >= 0.031). Chosen on
# DS-CNN and the MNIST MLPs, confirmed on ResNet-8 and MobileNetV1-0.25: docs/export.md.
INT8_MEAN_TOLERANCE = 0.025
# Sparse storage: TFLite stores a weight tensor sparsely only from 50% zeros, and measured on a
# 784-1024-1024-10 MLP (shared notes) int8 at 50% is larger than dense and block-sparse float is
# slower than dense below ~80% (2.5x slower at 50%, 1.5x faster at 80%, 3x at 90%).
SPARSE_STORAGE_MIN = 0.5
SPARSE_SPEEDUP_MIN = 0.8
# Quantizations whose sparse export is worth a hint when a pruned model is exported dense: not
# dynamic (refused with sparse) nor int8 (larger than dense at 50%; and measured 2026-12-05, a 70%
# unstructured int8 sparse MLP failed verification on LiteRT where int8 dense passed).
SPARSE_HINT = ("float", "float16")
# The block TFLite's sparse FULLY_CONNECTED kernel reads without densifying, in (out, in) terms.
KERNEL_BLOCK = (1, 16)


def sidecar_paths(out: str | os.PathLike) -> dict[str, Path]:
    """The three files an export writes: ``{"tflite", "json", "reference"}`` -> path.

    Args:
        out: the .tflite path.

    Raises:
        InvalidArgumentError: ``out`` does not end in ``.tflite``.

    Example:
        >>> sidecar_paths("m.tflite")["reference"]
        PosixPath('m.reference.npz')

    ``"failed"`` (``m.failed.tflite``) is where a .tflite that fails verification is kept instead
    of ``out``.
    """
    out = Path(out)
    if out.suffix != ".tflite":
        raise InvalidArgumentError(
            f"the output must end in .tflite, got {out}. Fix: name it e.g. model.tflite (the "
            ".json and .reference.npz are written beside it)."
        )
    return {
        "tflite": out,
        "json": out.with_suffix(".json"),
        "reference": out.with_suffix(".reference.npz"),
        "failed": out.with_suffix(".failed.tflite"),
    }


def export_tflite(
    model,
    out: str | os.PathLike,
    *,
    quantization: str = "float",
    sparse: bool = False,
    representative_data: np.ndarray | str | os.PathLike | None = None,
    reference_inputs: np.ndarray | str | os.PathLike | None = None,
    n_reference: int = 16,
    overwrite: bool = False,
    seed: int = 0,
    allow_constant_output: bool = False,
    tolerance: float | None = None,
) -> dict:
    """Convert ``model`` (a model or a saved-model path) to ``out`` (.tflite) and verify it.

    Any plain Dense stack exports, including the smaller models that neuron pruning
    (``keras_legc.shrink``) returns.

    Args:
        model: a tf_keras model (TF-MOT pruning wrappers are stripped first), a Keras 3
            ``keras.Model`` or a path to a saved one of either flavour. Keras 3 on the TensorFlow
            backend converts in-process (``model.export(format="litert")``); on JAX (or PyTorch)
            a TensorFlow-backend twin loaded from the model's ``.keras`` file converts in a
            subprocess, and the result is verified against the original model's outputs.
        out: the .tflite path; ``.json`` and ``.reference.npz`` are written beside it.
        quantization: ``"float"``, ``"float16"``, ``"dynamic"`` (dynamic-range int8 weights) or
            ``"int8"`` (full integer, float interface; needs ``representative_data``).
        sparse: store weights with >= 50% zeros in TFLite's sparse format. A ``LegcWarning`` says
            when that brings no speed-up (zeros not in (1, 16) blocks: the runtime densifies them
            at load) or when the sparsity is below the level where sparse storage pays.
        representative_data: inputs (an array, or a .npy / .npz path) that calibrate int8
            activations: a few hundred rows of the user's own data.
        reference_inputs: inputs (array or path) for the verification and the device-side
            reference; if None, the last ``n_reference`` rows of ``representative_data``, held
            out of the calibration when it has more than ``2 * n_reference`` rows, else seeded
            standard-normal inputs.
        n_reference: number of reference rows kept.
        overwrite: replace existing output files (else ``OutputExistsError``, nothing written).
        allow_constant_output: export a model whose outputs are the same for every reference
            input. By default that is refused with ``CollapsedModelError`` before anything is
            converted: such a model ignores its input (a mask that emptied a layer does this),
            and a verification that compares two constants would say "OK".
        tolerance: None (default) checks float, float16 and dynamic files by max |TFLite -
            Keras| on the reference inputs <= :data:`TOLERANCE` x max(1, max |Keras output|),
            and int8 files by their mean error (<= :data:`INT8_MEAN_TOLERANCE` x the same
            scale): quantized outputs err most on the few inputs near a decision boundary, so an int8
            file's largest error depends on which rows were drawn. A number checks any
            quantization by max |TFLite - Keras| <= ``tolerance x max(1, max |Keras output|)``
            instead; pass one only after reading a failed verification's numbers. The
            device-side check (``edge/``) applies the same rule.

    Returns:
        The report written to the ``.json`` (also returned): bytes, ops, sparsity per layer,
        block structure, warnings and ``verification`` (the rule, ``"max"`` or ``"mean"``; the
        largest and mean |TFLite - Keras| on the reference inputs, the top-output agreement, the
        tolerances and whether it passed).

    Example:
        >>> mask = keras_legc.magnitude_mask(model, 0.9, block=(1, 16))
        >>> pruned = keras_legc.strip(keras_legc.prune(model, mask))
        >>> report = export_tflite(pruned, "m.tflite", sparse=True)
        >>> report["verification"]["ok"], "DENSIFY" in report["ops"]
        (True, False)
    """
    tolerance = check_tolerance(tolerance)
    with TargetLock(out, "exporting to"):  # a second export to `out` is refused at start
        prepared = _prepare(
            model, out, quantization, representative_data, reference_inputs, n_reference,
            overwrite, seed, sparse,
        )  # fmt: skip
        _check_responds(prepared, allow_constant_output)
        flatbuffer = _convert(prepared.model, quantization, sparse, prepared.calibration)
        check = _verify(
            prepared.model, flatbuffer, prepared.reference_inputs, quantization, tolerance
        )
        report = _report(prepared, flatbuffer, check, quantization, sparse, tolerance)
        if not sparse and quantization in SPARSE_HINT and report["sparsity"] >= SPARSE_STORAGE_MIN:
            # a pruned model stored dense is as large as the unpruned one: say what sparse gives
            sparse_file = _convert(prepared.model, quantization, True, prepared.calibration)
            report["sparse_tflite_bytes"] = len(sparse_file)
        for note in report["warnings"]:
            warnings.warn(note, LegcWarning, stacklevel=2)
        if not report["verification"]["ok"]:
            failure = _failure(prepared, check, quantization, report["verification"])
            report["tflite"] = prepared.paths["failed"].name
            report["verification"]["failure"] = failure
            warnings.warn(failure, LegcWarning, stacklevel=2)
        _write(prepared, flatbuffer, check, report, overwrite)
    return report


@dataclass
class _Prepared:
    """What the conversion needs: the plain model, its input shape and the rows to use."""

    paths: dict[str, Path]
    model: object
    source: str | None
    input_shape: tuple[int, ...]
    calibration: np.ndarray | None
    reference_inputs: np.ndarray
    held_out: bool | None


@dataclass
class _Check:
    """The verification: Keras and TFLite outputs on the reference inputs and their difference,
    judged by :func:`judge_outputs` (the max rule, or the mean rule when ``mean_atol`` is set)."""

    keras_out: np.ndarray
    tflite_out: np.ndarray
    ops: list[str]
    scale: float
    atol: float
    mean_atol: float | None = None

    def __post_init__(self):
        self.judged = judge_outputs(self.keras_out, self.tflite_out, self.atol, self.mean_atol)
        self.error = self.judged["max_abs_error"]


def _failure(prepared: _Prepared, check: _Check, quantization: str, verification: dict) -> str:
    """Why a .tflite failed verification, where it was kept instead, and the fix."""
    paths = prepared.paths
    agreement = verification["top1_agreement"]
    n = verification["n_inputs"]
    if verification["rule"] == "mean":
        return _mean_failure(prepared, check, verification)
    typical = (
        f" The mean error is {verification['mean_abs_error']:.3g}"
        + (
            ""
            if agreement is None
            else f" and {round(agreement * n)} of {n} inputs keep their top output"
        )  # fmt: skip
        + "."
    )
    if quantization == "float":
        fix = (
            "Fix: check the model's layers against the ops in the .json (a layer the converter "
            "rewrites may compute differently) and report it with the .json if they are builtin."
        )
    else:
        other = (
            "representative data that covers the inputs the model will see, or quantization "
            "'float16' or 'float'"
            if quantization == "int8"
            else "quantization 'float'"
        )
        fix = (
            f"Fix: {other}. If the errors above are what you accept from "
            f"{quantization} (quantized outputs err most on inputs near a decision boundary), "
            "pass a larger tolerance (tolerance=..., CLI --tolerance; the device check then uses "
            "it too)."
        )
    return (
        f"the {quantization} TFLite model differs from the Keras model by up to "
        f"{check.error:.3g} (tolerance {check.atol:.3g}) on the {n} reference inputs: the runtime "
        "computes it differently (the quantization does not fit the model's values, or the "
        f"runtime mis-runs an op), so it was kept as {paths['failed']}, not written to "
        f"{paths['tflite'].name}; see {paths['json']}.{typical} {fix}"
    )


def _mean_failure(prepared: _Prepared, check: _Check, verification: dict) -> str:
    """Why an int8 file failed export's default check (its mean error), and the fix."""
    paths, n = prepared.paths, verification["n_inputs"]
    agreement = verification["top1_agreement"]
    kept = "" if agreement is None else f"; {round(agreement * n)} of {n} keep their top output"
    return (
        f"the int8 TFLite model differs from the Keras model on the {n} reference inputs by "
        f"{verification['mean_abs_error']:.3g} on average (tolerance {verification['mean_atol']:.3g}"
        f"{kept}; largest difference {check.error:.3g}): the int8 file computes something else "
        "than the model (the quantization does not fit the model's values, or the runtime "
        f"mis-runs an op), so it was kept as {paths['failed']}, not written to "
        f"{paths['tflite'].name}; see {paths['json']}. Fix: representative data that covers the "
        "inputs the model will see (a few hundred rows of the training data), or quantization "
        "'float16' or 'float'. If you have measured the file on your test data and accept it, "
        "pass tolerance=... (CLI --tolerance): the check is then max |TFLite - Keras| <= "
        "tolerance x max(1, max |Keras output|), here and on the device."
    )


def check_tolerance(tolerance) -> float | None:
    """``tolerance`` for :func:`export_tflite`: None, or a finite number > 0."""
    if tolerance is None:
        return None
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(tolerance, bool) or not np.isfinite(value) or value <= 0:
        raise InvalidArgumentError(
            f"tolerance must be a finite number > 0 or None, got {tolerance!r}. Fix: leave it None "
            f"(the quantization's default: {TOLERANCE}) or pass e.g. tolerance=0.15."
        )
    return value


def check_combination(quantization: str, sparse: bool) -> None:
    """Refuse, before any work, a quantization the runtimes compute wrongly.

    Dynamic-range int8 weights stored sparse: the converter's file is right (LiteRT's builtin
    kernels run it within tolerance), but the XNNPACK delegate that LiteRT and TensorFlow's
    interpreter apply by default gives NaN or garbage outputs for it (measured with ai-edge-litert
    2.3 and TF 2.21: a 90% block-sparse MLP gives NaN; docs/edge.md).

    Raises:
        InvalidArgumentError: quantization is not one of QUANTIZATIONS, or dynamic with sparse.

    Example:
        >>> check_combination("int8", True)
    """
    if quantization not in QUANTIZATIONS:
        raise InvalidArgumentError(
            f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}. Fix: 'float' "
            "(exact), 'dynamic' (int8 weights, no data needed) or 'int8' (with "
            "representative_data)."
        )
    if quantization == "dynamic" and sparse:
        raise InvalidArgumentError(
            "dynamic-range quantization with sparse storage is refused: LiteRT's default XNNPACK "
            "delegate computes sparse dynamic-range weights wrongly (NaN or garbage outputs, no "
            "error). Fix: int8 with representative data and sparse (CLI: -q int8 "
            "--representative-data x.npy --sparse), float with sparse, or dynamic without sparse."
        )


def _prepare(
    model,
    out,
    quantization,
    representative_data,
    reference_inputs,
    n_reference,
    overwrite,
    seed,
    sparse=False,
) -> _Prepared:
    """Check the arguments and outputs, load and strip the model, pick calibration/reference rows."""
    from keras_legc.keras.saving import load_model

    check_combination(quantization, sparse)
    check_positive_int("n_reference", n_reference)
    paths = sidecar_paths(out)
    for path in paths.values():
        check_writable(path, overwrite)
    source = str(model) if isinstance(model, (str, os.PathLike)) else None
    if source is not None:
        model = load_model(model, compile=False)
    model = _plain(model)
    input_shape = _input_shape(model)
    _check_output_shape(model)
    rng = np.random.default_rng(seed)
    if isinstance(representative_data, (str, os.PathLike)):
        representative_data = load_inputs(representative_data, "representative data")
    if isinstance(reference_inputs, (str, os.PathLike)):
        reference_inputs = load_inputs(reference_inputs, "reference inputs")
    if representative_data is not None:
        representative_data = _as_inputs(representative_data, input_shape, "representative data")
    if quantization == "int8" and representative_data is None:
        raise InvalidArgumentError(
            "full int8 quantization needs representative data to calibrate activations. Fix: pass "
            "representative_data (CLI: --representative inputs.npy) with a few hundred rows."
        )
    calibration, held_out = representative_data, False
    if reference_inputs is None:
        if representative_data is not None:
            if len(representative_data) > 2 * n_reference:
                calibration = representative_data[:-n_reference]
                held_out = True
            reference_inputs = representative_data[-n_reference:]
        else:
            reference_inputs = rng.standard_normal((n_reference, *input_shape)).astype(np.float32)
            held_out = True
    else:
        held_out = None  # the caller's rows: unknown whether they were used to calibrate
    reference_inputs = _as_inputs(reference_inputs, input_shape, "reference inputs")[:n_reference]
    return _Prepared(paths, model, source, input_shape, calibration, reference_inputs, held_out)


def constant_outputs(outputs: np.ndarray, rtol: float = 1e-6) -> bool:
    """True when every row of ``outputs`` is the same (to ``rtol`` of the largest output): a model
    that computes this on distinct inputs no longer depends on its input.

    Example:
        >>> constant_outputs(np.array([[0.1, 0.9], [0.1, 0.9]]))
        True
    """
    out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if len(out) < 2:
        return False
    scale = max(1.0, float(np.max(np.abs(out))))
    return bool(np.max(np.ptp(out, axis=0)) <= rtol * scale)


def _check_responds(prepared: _Prepared, allow: bool) -> None:
    """Refuse a model whose outputs are constant over the reference inputs (unless allowed)."""
    rows = prepared.reference_inputs
    if allow or len(rows) < 2 or np.ptp(rows.reshape(len(rows), -1), axis=0).max() == 0.0:
        return  # identical reference rows cannot tell
    out = to_numpy(prepared.model(rows, training=False))
    if constant_outputs(out):
        empty = [n for n, k in _kernels(prepared.model).items() if not k.any()]
        why = f" (every kernel weight of {empty} is 0)" if empty else ""
        raise CollapsedModelError(
            f"the model's outputs are identical for all {len(rows)} reference inputs{why}: it no "
            "longer depends on its input, so it would export and verify 'OK' while being useless. "
            "Fix: prune less, or with an allocation that does not empty layers (per_layer='lamp', "
            "Scores.mask's default, or per_layer=True); or pass allow_constant_output=True (CLI: --allow-constant-output) "
            "if a constant model is what you want."
        )


def _verify(
    model, flatbuffer: bytes, reference_inputs: np.ndarray, quantization: str, tolerance=None
) -> _Check:
    """Run Keras and the TFLite interpreter on the reference inputs; the tolerance (the
    quantization's default, or the user's) scales with the reference's outputs."""
    from keras_legc.keras.tflite_runner import load_interpreter, run_rows

    keras_out = to_numpy(model(reference_inputs, training=False), dtype=np.float32)
    interp, ops = load_interpreter(flatbuffer, threads=1)
    tflite_out = run_rows(interp, reference_inputs)
    scale = max(1.0, float(np.max(np.abs(keras_out))))  # rows >= 1: _as_inputs refuses none
    factor = TOLERANCE[quantization] if tolerance is None else tolerance
    mean_rule = quantization == "int8" and tolerance is None  # a given tolerance: the max rule
    return _Check(
        keras_out, tflite_out, ops, scale, factor * scale,
        mean_atol=INT8_MEAN_TOLERANCE * scale if mean_rule else None,
    )  # fmt: skip


def _report(
    prepared: _Prepared, flatbuffer: bytes, check: _Check, quantization, sparse, tolerance=None
) -> dict:
    """The .json report: sizes, ops, sparsity per layer, block structure, warnings, verification."""
    kernels = _kernels(prepared.model)
    n_weights = sum(k.size for k in kernels.values())
    n_nonzero = sum(int(np.count_nonzero(k)) for k in kernels.values())
    sparsity = 1.0 - n_nonzero / n_weights if n_weights else 0.0
    structure = {n: block_structure(k, KERNEL_BLOCK) for n, k in kernels.items()}
    notes = _sparse_warnings(sparse, sparsity, kernels, structure, check.ops) if sparse else []
    wrong_on = _wrong_runtimes(quantization, sparse, kernels, structure)
    notes += [WRONG_RUNTIMES[name] for name in wrong_on]
    report = {
        "keras_legc": __version__,
        "tensorflow": package_version("tensorflow"),
        "source": prepared.source,
        "tflite": prepared.paths["tflite"].name,
        "tflite_bytes": len(flatbuffer),
        "quantization": quantization,
        "sparse": bool(sparse),
        "input_shape": list(prepared.input_shape),
        "ops": check.ops,
        "kernel_weights": int(n_weights),
        "nonzero_kernel_weights": int(n_nonzero),
        "sparsity": sparsity,
        **_parameter_counts(prepared.model),
        "layer_sparsity": {  # an empty kernel (a zero-width input) is 0.0, as the total is
            n: float(1.0 - np.count_nonzero(k) / k.size) if k.size else 0.0
            for n, k in kernels.items()
        },
        "layer_units": {n: int(k.shape[-1]) for n, k in kernels.items()},
        "block_structured_zeros": {"block": list(KERNEL_BLOCK), **structure},
        "densify": "DENSIFY" in check.ops,
        "warnings": notes,
        "wrong_on_runtimes": wrong_on,
        "verification": {
            "n_inputs": int(len(prepared.reference_inputs)),
            "held_out": prepared.held_out,
            "rule": check.judged["rule"],
            "max_abs_error": check.error,
            "mean_abs_error": check.judged["mean_abs_error"],
            "reference_scale": check.scale,
            "atol": check.atol,
            **({"mean_atol": check.judged["mean_atol"]} if check.judged["rule"] == "mean" else {}),
            "tolerance": _tolerance_text(check.judged["rule"], quantization, tolerance),
            "tolerance_given": tolerance is not None,
            "top1_agreement": check.judged["top1_agreement"],
            "ok": check.judged["ok"],
        },
    }
    if model_flavour(prepared.model) == "keras3":  # Keras 2 reports keep their exact fields
        report["keras3"] = _keras3_info(prepared.model)
    return report


def _tolerance_text(rule: str, quantization: str, tolerance) -> str:
    """The check in words, for the report."""
    if rule == "mean":
        return f"mean |tflite - keras| <= {INT8_MEAN_TOLERANCE} x max(1, max |keras output|)"
    factor = TOLERANCE[quantization] if tolerance is None else tolerance
    return f"max |tflite - keras| <= {factor} x max(1, max |keras output|)"


def _write(prepared: _Prepared, flatbuffer: bytes, check: _Check, report: dict, overwrite) -> None:
    """The .tflite, the .reference.npz (inputs and both outputs) and the .json, each atomically."""
    paths = prepared.paths
    ok = report["verification"]["ok"]
    atomic_write_bytes(paths["tflite" if ok else "failed"], flatbuffer, overwrite=overwrite)

    def write_reference(f):
        np.savez(
            f,
            inputs=prepared.reference_inputs,
            keras_outputs=check.keras_out,
            tflite_outputs=check.tflite_out,
            atol=np.float64(check.atol),
            # the device check applies the same rule (older runners read atol alone)
            **({"mean_atol": np.float64(check.mean_atol)} if check.mean_atol is not None else {}),
        )

    atomic_write(paths["reference"], write_reference, overwrite=overwrite)
    atomic_write_json(paths["json"], report, overwrite=overwrite)


def load_inputs(path: str | os.PathLike, what: str = "inputs") -> np.ndarray:
    """Rows of model inputs from a ``.npy``, or a ``.npz`` (its ``x``/``inputs`` array, or its only
    one).

    Example:
        >>> x = load_inputs("calibration.npy")
    """
    return load_array(path, what)


#: Runtimes measured to compute a kind of export wrongly, and what the export says about it.
WRONG_RUNTIMES = {
    "tflite_runtime<=2.14": (
        "int8 with block-sparse weights: tflite-runtime 2.14 and older (its last release) compute "
        "this model's outputs wrongly, constant or far off, without an error (docs/edge.md: every "
        "int8 block-sparse MLP; docs/edge-suite.md: ResNet-8 with (1, 16)-block convolutions at "
        "90%; LiteRT (ai-edge-litert) computes them right, and the file passed verification with "
        "LiteRT here). Fix: run it on the device with LiteRT (pip install ai-edge-litert), or for "
        "tflite-runtime export float with sparse, or int8 without sparse."
    ),
}


def _wrong_runtimes(quantization, sparse, kernels, structure) -> list[str]:
    """The runtimes of WRONG_RUNTIMES that compute this export wrongly: full int8 with sparse
    storage of a weight >= 50% zeros, nearly all in blocks. Convolutions count too, although the
    converter densifies them at load (DENSIFY): tflite-runtime 2.14 collapsed the edge suite's
    ResNet-8 pruned in (1, 16) blocks to 90% (its 50% and 75% ran right)."""
    if quantization != "int8" or not sparse:
        return []
    blocked = [n for n, k in kernels.items() if k.size and
               1.0 - np.count_nonzero(k) / k.size >= SPARSE_STORAGE_MIN and structure[n] >= 0.9]  # fmt: skip
    return ["tflite_runtime<=2.14"] if blocked else []


def _sparse_warnings(sparse, sparsity, kernels, structure, ops) -> list[str]:
    """What sparse storage will and will not buy for these kernels (measured, see the notes)."""
    notes = []
    stored = {n: 1.0 - np.count_nonzero(k) / k.size for n, k in kernels.items()}
    if sparsity < SPARSE_STORAGE_MIN:
        notes.append(
            f"sparse storage was asked for but the kernels are only {100 * sparsity:.1f}% zeros; "
            f"TFLite stores a tensor sparsely only from {100 * SPARSE_STORAGE_MIN:.0f}% zeros and "
            "below that the file is as large as dense (int8 at 50% is larger). Fix: prune to a "
            "higher sparsity or export without sparse."
        )
        return notes
    # convolution kernels (3-D and more) have no sparse kernel on LiteRT's x86 builds
    conv = [n for n, k in kernels.items() if np.ndim(k) >= 3 and stored[n] >= SPARSE_STORAGE_MIN]
    dense_layers = [n for n, k in kernels.items() if np.ndim(k) < 3]
    unstructured = [
        n for n in dense_layers if stored[n] >= SPARSE_STORAGE_MIN and structure[n] < 0.9
    ]  # the converter uses its block encoding when nearly all zeros are in blocks
    fc_sparsity = (  # the block note is about the Dense kernels alone
        sparsity
        if len(dense_layers) == len(kernels)
        else _zero_share(kernels[n] for n in dense_layers)
    )
    if conv:
        notes.append(
            f"convolution kernels stored sparse (layers {', '.join(conv)}) are expanded at load: "
            "LiteRT has no sparse convolution kernel here (measured 2026-12-06 on x86: "
            "MobileNetV1-0.25 at 96x96x3, float, its 1x1 kernels 50-90% zero, unstructured or in "
            "(1, 16) blocks, ran at 0.99-1.01x the dense file's speed; docs/layers.md). XNNPACK "
            "runs sparse 1x1 convolutions only on ARM builds, and only in float. The file is "
            "smaller. Fix: for speed on every runtime, int8 included, remove channels instead "
            "(keras_legc.prune_channels)."
        )
    if unstructured or ("DENSIFY" in ops and not conv):
        notes.append(
            "the sparsity is unstructured (zeros not in blocks of 1 output x 16 consecutive "
            f"inputs{': layers ' + ', '.join(unstructured) if unstructured else ''}), so the "
            "converter adds a DENSIFY op and the runtime expands the weights at load: the file "
            "is smaller but there is no speed-up. Fix: prune with block=(1, 16) "
            "(Scores.mask / magnitude_mask / random_mask) for the sparse kernel."
        )
    elif any(stored[n] >= SPARSE_STORAGE_MIN for n in dense_layers) and fc_sparsity < (
        SPARSE_SPEEDUP_MIN
    ):
        notes.append(
            f"block-sparse at {100 * fc_sparsity:.1f}%: the sparse kernel is slower than dense "
            f"below about {100 * SPARSE_SPEEDUP_MIN:.0f}% (measured 2.5x slower at 50%). Fix: "
            "prune to >= 80% for a speed-up, or export without sparse for speed."
        )
    return notes


def _zero_share(arrays) -> float:
    """The share of zeros over all of ``arrays``."""
    arrays = list(arrays)
    size = sum(a.size for a in arrays)
    return 1.0 - sum(int(np.count_nonzero(a)) for a in arrays) / size if size else 0.0


def _parameter_counts(model) -> dict:
    """Every parameter of the model (not only the Dense kernels keras-legc prunes): how many, how
    many are non-zero, and the sparsity over all of them."""
    values = [np.asarray(v.numpy()) for v in model.weights]
    n = sum(v.size for v in values)
    nonzero = sum(int(np.count_nonzero(v)) for v in values)
    return {
        "parameters": int(n),
        "nonzero_parameters": int(nonzero),
        "parameter_sparsity": 1.0 - nonzero / n if n else 0.0,
    }


def _plain(model):
    """The model to convert: a Keras 2 model with TF-MOT wrappers stripped; a Keras 3 model as is
    (its pruning lives in kernel constraints, which hold the zeros and take no part in inference)."""
    if model_flavour(model) == "keras2":
        from keras_legc.keras.pruning import strip

        return strip(model)
    _kernels(model)  # refuse a model without prunable weights here, as the Keras 2 path does
    return model


def _kernels(model) -> dict[str, np.ndarray]:
    """``{key: weight}`` of every prunable weight (:func:`keras_legc.prunable_weights`) as numpy
    (any flavour, any Keras 3 backend)."""
    from keras_legc.keras.registry import weights_of

    return weights_of(model)


def _input_shape(model) -> tuple[int, ...]:
    shape = model.input_shape
    if isinstance(shape, list):
        raise ModelStructureError(
            f"the model has {len(shape)} inputs; export supports single-input models. Fix: export a "
            "model with one input tensor."
        )
    if any(d is None for d in shape[1:]):
        raise ModelStructureError(
            f"the model input shape {shape} has unknown dimensions besides the batch. Fix: give "
            "the Input layer a fixed shape."
        )
    if 0 in shape[1:]:  # no input values: the model's outputs are constants, and numpy's
        # reductions over the empty rows would fail deep inside the collapsed-model check
        raise ModelStructureError(
            f"the model input shape {shape} has a dimension of size 0: the model has no input "
            "values to depend on. Fix: give the Input layer at least one value per dimension."
        )
    return tuple(int(d) for d in shape[1:])


def _check_output_shape(model) -> None:
    """Refuse a model with no output values (a zero-size output dimension): it has nothing to
    convert or verify, and numpy's reductions over its empty outputs would fail deep inside."""
    for shape in (tuple(output.shape) for output in model.outputs):
        if 0 in shape[1:]:
            raise ModelStructureError(
                f"the model output shape {shape} has a dimension of size 0: the model outputs "
                "nothing. Fix: end the model in a layer with at least one unit."
            )


def _as_inputs(x, input_shape, what) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape:
        raise InvalidArgumentError(
            f"{what} must have shape (n, {', '.join(map(str, input_shape))}) to match the model "
            f"input, got {x.shape}. Fix: pass rows of this model's inputs."
        )
    if len(x) == 0:  # nothing to calibrate on, or a verification of nothing that says "OK"
        raise InvalidArgumentError(f"{what} have no rows. Fix: pass at least one row of inputs.")
    if not np.all(np.isfinite(x)):
        raise InvalidArgumentError(f"{what} contain NaN or inf. Fix: pass finite inputs.")
    return x


# Keras 3 writes .tflite itself from this version on (model.export(format="litert")).
KERAS_LITERT_MIN = (3, 13)


def _convert(model, quantization, sparse, representative_data) -> bytes:
    """The .tflite flatbuffer: tf_keras through ``TFLiteConverter.from_keras_model``; Keras 3 on the
    TensorFlow backend through ``model.export(format="litert")``; Keras 3 on any other backend
    through a TensorFlow-backend twin built from the model's ``.keras`` file in a subprocess."""
    from keras_legc._quiet import native_noise_filtered

    settings = _converter_settings(quantization, sparse, representative_data)
    try:
        with native_noise_filtered():  # the converter's log lines, in the quiet CLI only
            if model_flavour(model) == "keras2":
                converter = tf().lite.TFLiteConverter.from_keras_model(model)
                return _run_converter(converter, settings)
            return _convert_keras3(model, settings, quantization, sparse, representative_data)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(
            f"TFLite conversion failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "Fix: check that every layer has a TFLite builtin op (Dense/activations do)."
        ) from exc


def _converter_settings(quantization, sparse, representative_data) -> dict:
    """TFLite converter attributes for a quantization mode (and sparse storage), the one place that
    maps the modes to converter options, for every conversion path."""
    lite = tf().lite
    optimizations = []
    if quantization != "float":
        optimizations.append(lite.Optimize.DEFAULT)
    if sparse:
        optimizations.append(lite.Optimize.EXPERIMENTAL_SPARSITY)
    settings: dict = {"optimizations": optimizations, "target_spec": {}}
    if quantization == "float16":
        settings["target_spec"]["supported_types"] = [tf().float16]
    if quantization == "int8":

        def representative():
            for row in representative_data[:500]:
                yield [row[None, ...]]

        settings["representative_dataset"] = representative
        settings["target_spec"]["supported_ops"] = [lite.OpsSet.TFLITE_BUILTINS_INT8]
    return settings


def _run_converter(converter, settings: dict) -> bytes:
    """Apply ``settings`` to a ``TFLiteConverter`` and convert (its warnings silenced)."""
    for name, value in settings.items():
        if name == "target_spec":
            for key, spec in value.items():
                setattr(converter.target_spec, key, spec)
        else:
            setattr(converter, name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bytes(converter.convert())


def _convert_keras3(model, settings, quantization, sparse, representative_data) -> bytes:
    """A Keras 3 model to .tflite, by the path its backend allows."""
    from keras_legc.keras.saving import keras3_backend

    if keras3_backend() != "tensorflow":
        return _convert_twin(model, quantization, sparse, representative_data)
    # Builtin ops only: the edge runner (LiteRT without the Flex delegate) must run the file.
    spec = {"supported_ops": [tf().lite.OpsSet.TFLITE_BUILTINS], **settings["target_spec"]}
    settings = {**settings, "target_spec": spec}
    if not _keras_has_litert():
        return _convert_saved_model(model, settings)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="legc-litert-") as tmp:
        out = os.path.join(tmp, "model.tflite")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.export(out, format="litert", verbose=False, **settings)
        return Path(out).read_bytes()


def _convert_saved_model(model, settings) -> bytes:
    """Keras 3 (TensorFlow backend) before 3.13: ``model.export`` to a SavedModel, then the TF
    converter (what Keras' own litert export does; a bare concrete function loses the variables)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="legc-savedmodel-") as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf().lite.TFLiteConverter.from_saved_model(tmp)
        return _run_converter(converter, settings)


#: set in the twin's environment: a twin that would start another twin refuses instead
TWIN_ENV = "LEGC_EXPORT_TWIN"


def _convert_twin(model, quantization, sparse, representative_data) -> bytes:
    """A non-TensorFlow-backend Keras 3 model (JAX, PyTorch): its ``.keras`` file (config and
    weights, backend-independent) is loaded by a subprocess with ``KERAS_BACKEND=tensorflow``, which
    converts that twin. The caller verifies the result against the original model's outputs."""
    import subprocess
    import sys
    import tempfile

    from keras_legc.keras.saving import keras3_backend

    if os.environ.get(TWIN_ENV) == "1":  # the twin itself: another twin would spawn without end
        raise ExportError(
            f"the TensorFlow-backend twin found Keras on the {keras3_backend()} backend, although "
            "it was started with KERAS_BACKEND=tensorflow. Fix: check that nothing in the "
            "environment (a sitecustomize, a keras.json read before the variable) forces a "
            "backend, or export from a process with KERAS_BACKEND=tensorflow."
        )
    with tempfile.TemporaryDirectory(prefix="legc-twin-") as tmp:
        src, out = os.path.join(tmp, "model.keras"), os.path.join(tmp, "model.tflite")
        model.save(src)
        calibration = os.path.join(tmp, "calibration.npy")
        if representative_data is not None:
            np.save(calibration, np.asarray(representative_data, dtype=np.float32))
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", TWIN_ENV: "1"}
        code = "from keras_legc.keras.export import _twin_main; _twin_main()"
        args = [src, out, quantization, str(bool(sparse)), calibration]
        done = subprocess.run(
            [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0 or not os.path.exists(out):
            last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
            raise ExportError(
                f"converting the {keras3_backend()}-backend model through its TensorFlow-backend "
                f"twin failed: {last}. Fix: install TensorFlow beside Keras 3 (the twin needs "
                "it), or export from a process with KERAS_BACKEND=tensorflow."
            )
        return Path(out).read_bytes()


def _twin_main() -> None:
    """Subprocess side of :func:`_convert_twin`: argv = src.keras out.tflite quantization sparse
    calibration.npy (absent when none)."""
    import sys

    from keras_legc.keras.saving import load_model

    src, out, quantization, sparse, calibration = sys.argv[1:6]
    representative = np.load(calibration) if os.path.exists(calibration) else None
    twin = load_model(src, compile=False, unsafe=True)  # our own file, from the caller's object
    flatbuffer = _convert(twin, quantization, sparse == "True", representative)
    Path(out).write_bytes(flatbuffer)


def _keras3_info(model) -> dict:
    """How a Keras 3 model was converted, for its report."""
    from keras_legc.keras.saving import keras3, keras3_backend

    backend = keras3_backend()
    if backend != "tensorflow":
        path = "TensorFlow-backend twin (subprocess) + keras model.export(format='litert')"
    elif _keras_has_litert():
        path = "keras model.export(format='litert')"
    else:
        path = "keras model.export(format='tf_saved_model') + tf.lite.TFLiteConverter"
    return {"keras": keras3().__version__, "backend": backend, "converter": path}


def _keras_has_litert() -> bool:
    from keras_legc.keras.saving import keras3

    return tuple(int(p) for p in keras3().__version__.split(".")[:2]) >= KERAS_LITERT_MIN
