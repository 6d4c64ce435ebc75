#!/usr/bin/env python3
"""Latency benchmark of a .tflite model on the device side: numpy + one interpreter, no TensorFlow.

Runs the model at batch 1 with LiteRT (``ai_edge_litert``) or ``tflite_runtime`` (or both, side by
side), reports load time, first-invoke and warm-up time, p50/p90/p99 latency, throughput, model
size and peak RSS, and checks the outputs against the reference file written by ``legc export``
(``<model>.reference.npz``): a mismatch fails loudly (exit 3), a p50 over ``--budget-ms`` or a file
over ``--budget-kb`` fails (exit 4), a hit ``--memory-limit-mb`` fails (exit 5), bad input exits 2,
and outputs that are the same for every reference input (a model that no longer depends on its
input, e.g. a pruning mask emptied a layer) fail with exit 6 unless ``--allow-constant-output``.
With ``--isolate`` the model is first loaded and invoked once in a child process: a model that
crashes the interpreter in native code (a segfault or an abort, which no Python ``try`` can catch)
is reported with the signal and exit 7, instead of the runner dying silently.

The output check: max |runtime - Keras| over the reference inputs, on dequantised outputs, must be
<= the tolerance recorded at export (per quantization, times the reference's scale
max(1, max |y|): 1e-4 float, 1e-2 float16, 5e-2 dynamic, 0.1 int8); and the outputs must not have
collapsed (std below 5% of the reference's std across the reference rows), which is how
tflite-runtime 2.14's wrong, near-all-zero block-sparse int8 outputs look.

Usage:
    python bench.py model.tflite [--reference model.reference.npz] [--runs 500] [--warmup 50]
                    [--runtime auto|litert|tflite-runtime|both] [--threads 1] [--pin-core N]
                    [--memory-limit-mb M] [--constrained] [--budget-ms 1.0] [--budget-kb 500]
                    [--isolate] [--json out.json [--force]]

This file is self-contained: copy it to a device that has numpy and an interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_USAGE, EXIT_MISMATCH, EXIT_BUDGET, EXIT_MEMORY, EXIT_CONSTANT = 0, 2, 3, 4, 5, 6
EXIT_CRASH = 7
EXIT_CODES = (
    "exit codes: 0 ok; 2 bad input (model, reference, options); 3 output mismatch; 4 over "
    "--budget-ms/--budget-kb; 5 --memory-limit-mb hit; 6 constant output; 7 the interpreter "
    "crashed in native code (a signal such as SIGSEGV), reported with --isolate"
)
# Outputs whose spread over distinct reference inputs is below this fraction of their largest value
# are constant: the model ignores its input.
CONSTANT_RTOL = 1e-6
RUNTIMES = ("litert", "tflite_runtime")
# Outputs whose spread across the reference rows is below this fraction of the reference's spread
# have collapsed (e.g. near all-zero): a mismatch even when within the absolute tolerance.
COLLAPSE_RATIO = 0.05


class EdgeError(Exception):
    """A problem with the model, the reference or the runtime; the message says how to fix it."""


class MemoryLimitError(EdgeError):
    """The model could not be loaded or run within ``--memory-limit-mb``."""


class NativeCrashError(EdgeError):
    """The interpreter died on a signal loading or first invoking the model (``--isolate``)."""


def canonical_runtime(name: str) -> str:
    """``tflite-runtime`` and ``tflite_runtime`` are the same runtime; so are ``litert`` and
    ``ai-edge-litert``."""
    name = {"tflite-runtime": "tflite_runtime", "ai-edge-litert": "litert"}.get(name, name)
    if name not in (*RUNTIMES, "auto", "both"):
        raise EdgeError(f"unknown runtime {name!r}. Fix: use auto, litert, tflite-runtime or both.")
    return name


def resolve_runtimes(runtime: str) -> list[str]:
    """The runtimes to run: ``auto`` = the first installed, ``both`` = LiteRT and tflite-runtime
    (both must be installed)."""
    runtime = canonical_runtime(runtime)
    found = available_runtimes()
    if runtime == "auto":
        if not found:
            raise EdgeError(
                "no TFLite interpreter is installed. Fix: pip install ai-edge-litert "
                "(or tflite-runtime on devices that only have that)."
            )
        return found[:1]
    wanted = list(RUNTIMES) if runtime == "both" else [runtime]
    missing = [r for r in wanted if r not in found]
    if missing:
        pip = {"litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime==2.14.0 numpy<2"}
        raise EdgeError(
            f"--runtime {runtime} needs {', '.join(missing)}, which is not installed (found: "
            f"{', '.join(found) or 'none'}). Fix: pip install {' '.join(pip[m] for m in missing)}, "
            "or pick an installed runtime."
        )
    return wanted


def apply_constraints(pin_core: int | None = None, memory_limit_mb: float | None = None) -> dict:
    """Pin this process to one CPU core and/or cap its address space (RLIMIT_AS), for a
    constrained-device profile. Returns what was applied.

    The memory limit covers the whole process (Python, numpy and the interpreter included), so it
    must exceed what the process already maps; the current size is named if it does not.
    """
    applied = {}
    if pin_core is not None:
        allowed = sorted(os.sched_getaffinity(0))
        if pin_core not in allowed:
            raise EdgeError(
                f"--pin-core {pin_core} is not a core this process may use ({allowed}). Fix: pass "
                "one of those."
            )
        os.sched_setaffinity(0, {pin_core})
        applied["pinned_core"] = pin_core
    if memory_limit_mb is not None:
        if memory_limit_mb <= 0:
            raise EdgeError(
                f"--memory-limit-mb must be positive, got {memory_limit_mb}. Fix: pass e.g. 512."
            )
        current = _address_space_mb()
        if current is not None and memory_limit_mb <= current:
            raise MemoryLimitError(
                f"--memory-limit-mb {memory_limit_mb:g} is below what this process already maps "
                f"({current:.0f} MB of address space: Python, numpy and the interpreter library). "
                "Fix: raise the limit above that; it caps the whole process."
            )
        limit = int(memory_limit_mb * 2**20)
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY and limit > hard:
            limit = hard
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        applied["memory_limit_mb"] = memory_limit_mb
        applied["address_space_before_mb"] = current
    return applied


def _address_space_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def available_runtimes() -> list[str]:
    found = []
    for name, module in (
        ("litert", "ai_edge_litert.interpreter"),
        ("tflite_runtime", "tflite_runtime.interpreter"),
    ):
        try:
            __import__(module)
            found.append(name)
        except Exception:  # noqa: BLE001 - a broken install counts as absent
            pass
    return found


def load_interpreter(
    model: str | os.PathLike | bytes, runtime: str = "auto", threads: int | None = 1
):
    """Create and allocate an interpreter; returns ``(interpreter, runtime name, notes)``.

    If the default XNNPACK delegate cannot prepare the model (e.g. int8 with unstructured sparsity
    in LiteRT 2.3), fall back to the builtin op resolver without default delegates, and say so.
    """
    runtime = canonical_runtime(runtime)
    if runtime == "both":
        raise EdgeError("load_interpreter loads one runtime; pick litert or tflite-runtime.")
    if runtime == "auto":
        runtime = resolve_runtimes("auto")[0]
    if runtime == "litert":
        from ai_edge_litert import interpreter as mod
    elif runtime == "tflite_runtime":
        from tflite_runtime import interpreter as mod
    else:
        raise EdgeError(f"unknown runtime {runtime!r}. Fix: use auto, litert or tflite-runtime.")
    kwargs = (
        {"model_content": bytes(model)}
        if isinstance(model, (bytes, bytearray))
        else {"model_path": str(model)}
    )
    if threads:
        kwargs["num_threads"] = int(threads)
    notes = []
    try:
        try:
            interp = mod.Interpreter(**kwargs)
            interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            if "delegate" not in str(exc).lower() or not hasattr(mod, "OpResolverType"):
                raise  # handled below
            notes.append(
                f"default delegate failed ({str(exc).splitlines()[0]}); using builtin ops without "
                "delegates"
            )
            interp = mod.Interpreter(
                experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                **kwargs,
            )
            interp.allocate_tensors()
    except MemoryError as exc:
        raise MemoryLimitError(_memory_message(f"the {runtime} interpreter", "load")) from exc
    except (RuntimeError, ValueError) as exc:
        # LiteRT 2.3's allocate_tensors raises RuntimeError("") when the activation arena cannot
        # be allocated under RLIMIT_AS: under a limit, an empty message is the limit too.
        text = str(exc).lower()
        if _limited() and (not text.strip() or any(w in text for w in ("alloc", "mmap", "memory"))):
            raise MemoryLimitError(_memory_message(f"the {runtime} interpreter", "load")) from exc
        raise EdgeError(
            f"the {runtime} interpreter cannot load this model: {_one_line(exc)}. Fix: export "
            "the model again with legc export; the file is damaged, or not a model this runtime "
            "supports."
        ) from exc
    return interp, runtime, notes


def _one_line(exc: BaseException, limit: int = 240) -> str:
    """The interpreter's message on one line, at most ``limit`` characters: the runner's errors
    are one line on stderr, and a damaged model can make the interpreter list many problems."""
    text = " ".join(str(exc).split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _limited() -> bool:
    return resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY


def _memory_message(runtime: str, what: str) -> str:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return (
        f"{runtime} ran out of memory trying to {what} the model under the memory "
        f"limit ({limit / 2**20:.0f} MB of address space for the whole process). The model does "
        "not fit this constrained profile. Fix: raise --memory-limit-mb, or shrink the model "
        "(neuron pruning, int8)."
    )


def run_model(interp, inputs: np.ndarray) -> np.ndarray:
    """Outputs of the first output tensor for each row of ``inputs``, one sample at a time."""
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    results = []
    for row in np.asarray(inputs):
        interp.set_tensor(inp["index"], _quantize(row[None, ...], inp))
        interp.invoke()
        results.append(_dequantize(interp.get_tensor(out["index"]), out)[0])
    return np.stack(results)


def _quantize(x: np.ndarray, detail) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _dequantize(y: np.ndarray, detail) -> np.ndarray:
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


#: Deflate expands at most ~1032x; a zip member claiming more than this times its compressed size
#: is a zip bomb or a lie, refused before it is inflated.
MAX_INFLATE_RATIO = 1100


def check_npz_headers(archive) -> None:
    """Raise ValueError if a member's ``.npy`` header claims more data than the archive holds.

    Reads only the headers, so a corrupt or hostile ``.npz`` claiming 10^12 values (or a zip
    bomb) is refused before numpy allocates for it. keras_legc._io has the same check: this file
    imports nothing from keras_legc, so that it can be copied to a device alone.

    Args:
        archive: the ``zipfile.ZipFile`` of an ``np.load``-ed ``.npz`` (``NpzFile.zip``).

    Example:
        >>> with np.load("m.reference.npz") as data:  # doctest: +SKIP
        ...     check_npz_headers(data.zip)
    """
    for info in archive.infolist():
        if info.compress_type != 0 and info.file_size > MAX_INFLATE_RATIO * max(
            info.compress_size, 1
        ):
            raise ValueError(
                f"member {info.filename!r} claims {info.file_size} bytes from "
                f"{info.compress_size} compressed: not a real array"
            )
        with archive.open(info) as f:
            major, _ = np.lib.format.read_magic(f)
            if major not in (1, 2):
                raise ValueError(f"member {info.filename!r} is .npy version {major}")
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else (
                np.lib.format.read_array_header_2_0
            )  # fmt: skip
            shape, _, dtype = read_header(f)
            header = f.tell()
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if claimed > info.file_size - header:
            raise ValueError(
                f"member {info.filename!r} claims shape {shape} of {dtype} ({claimed} bytes) but "
                f"holds {max(info.file_size - header, 0)} bytes: truncated or forged header"
            )


def load_reference(path: str | os.PathLike) -> dict:
    """The arrays of a ``.reference.npz`` written by legc export, checked before use.

    Raises:
        EdgeError: (exit 2) missing, not an .npz, a forged or truncated header, or arrays of the
            wrong kind or shape.
    """
    import zipfile

    try:
        if Path(path).exists() and not zipfile.is_zipfile(path):
            raise ValueError("not an .npz archive: truncated, or another kind of file")
        with np.load(path, allow_pickle=False) as data:
            check_npz_headers(data.zip)  # the same check as keras_legc._io (one copyable file)
            ref = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise EdgeError(
            f"reference file {path} does not exist. Fix: pass the .reference.npz written by legc export."
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise EdgeError(
            f"{path} is not a readable reference file ({exc}). Fix: export the model again."
        ) from exc
    missing = {"inputs", "keras_outputs", "atol"} - set(ref)
    if missing:
        raise EdgeError(
            f"{path} lacks {sorted(missing)}: not a legc export reference. Fix: export the model again."
        )
    problem = _reference_problem(ref)
    if problem:
        raise EdgeError(
            f"{path} is not a usable reference: {problem}. Fix: export the model again."
        )
    return ref


def _reference_problem(ref: dict) -> str | None:
    """What is wrong with the arrays of a reference file, or None."""
    for name in ("inputs", "keras_outputs", "atol"):
        if ref[name].dtype.kind not in "biuf":
            return f"{name} holds {ref[name].dtype}, not numbers"
    inputs, outputs, atol = ref["inputs"], ref["keras_outputs"], ref["atol"]
    if inputs.ndim < 2 or len(inputs) == 0:
        return f"inputs of shape {inputs.shape}, not a batch of at least one sample"
    if outputs.ndim < 1 or len(outputs) != len(inputs):
        return f"{len(outputs) if outputs.ndim else 0} outputs for {len(inputs)} inputs"
    if atol.size != 1 or not np.isfinite(atol).all() or float(atol.ravel()[0]) < 0:
        return f"tolerance atol={atol!r} is not one finite non-negative number"
    mean_atol = ref.get("mean_atol")  # a "mean" reference (export's int8 default)
    if mean_atol is not None and (
        mean_atol.dtype.kind not in "biuf" or mean_atol.size != 1
        or not np.isfinite(mean_atol).all() or float(mean_atol.ravel()[0]) < 0
    ):  # fmt: skip
        return f"tolerance mean_atol={mean_atol!r} is not one finite non-negative number"
    if not (np.isfinite(inputs).all() and np.isfinite(outputs).all()):
        return "NaN or inf in the reference inputs or outputs"
    return None


def check_outputs(interp, ref: dict) -> dict:
    """Run the reference inputs; compare with the Keras outputs recorded at export."""
    inp = interp.get_input_details()[0]
    expected_shape = tuple(int(d) for d in inp["shape"][1:])
    if tuple(ref["inputs"].shape[1:]) != expected_shape:
        raise EdgeError(
            f"the reference inputs have shape {ref['inputs'].shape[1:]} but the model takes {expected_shape}: "
            "the reference belongs to another model. Fix: pass the .reference.npz exported with this .tflite."
        )
    got = run_model(interp, ref["inputs"])
    want = ref["keras_outputs"]
    if got.shape != want.shape:
        raise EdgeError(
            f"model outputs {got.shape} but the reference holds {want.shape}: wrong reference file."
        )
    judged = judge_outputs(
        want, got, float(ref["atol"]),
        mean_atol=None if "mean_atol" not in ref else float(ref["mean_atol"]),
    )  # fmt: skip
    err = judged["max_abs_error"]
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    want_std, got_std = float(np.std(want)), float(np.std(got))
    collapsed = bool(len(got) > 1 and want_std > 0 and got_std < COLLAPSE_RATIO * want_std)
    rows = ref["inputs"].reshape(len(ref["inputs"]), -1)
    distinct_inputs = len(rows) > 1 and float(np.max(np.ptp(rows, axis=0))) > 0.0
    spread = float(np.max(np.ptp(got.reshape(len(got), -1), axis=0))) if len(got) > 1 else 0.0
    constant = bool(distinct_inputs and spread <= CONSTANT_RTOL * scale)
    # the same file as LiteRT ran it at export (older references may lack it): how far this
    # runtime is from that run tells a runtime's error from the quantization's own
    export_run = ref.get("tflite_outputs")
    usable = (
        export_run is not None and export_run.dtype.kind in "f" and export_run.shape == got.shape
        and bool(np.isfinite(export_run).all()) and got.size > 0
    )  # fmt: skip
    return {
        "constant": constant,
        **judged,
        "export_run_error": float(np.max(np.abs(export_run - want))) if usable else None,
        "max_abs_diff_from_export_run": float(np.max(np.abs(got - export_run))) if usable else None,
        "mean_abs_diff_from_export_run": float(np.mean(np.abs(got - export_run)))
        if usable
        else None,
        "relative_error": err / scale,
        "collapsed": collapsed,
        "output_std": got_std,
        "reference_std": want_std,
        "ok": bool(judged["ok"] and not collapsed),
        "n_reference": int(len(got)),
    }


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
    moves it (docs/export.md). The top outputs are reported, not judged: where outputs are nearly
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


def time_model(interp, sample: np.ndarray, runs: int = 500, warmup: int = 50) -> dict:
    """Latency of ``invoke`` at batch 1 (input set once; what is timed is the inference)."""
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], _quantize(sample[None, ...], inp))
    t_warm = time.perf_counter()
    interp.invoke()
    first_ms = (time.perf_counter() - t_warm) * 1e3
    for _ in range(max(0, warmup - 1)):
        interp.invoke()
    warm_s = time.perf_counter() - t_warm
    times = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter_ns()
        interp.invoke()
        times[i] = time.perf_counter_ns() - t
    ms = times / 1e6
    return {
        "runs": runs,
        "warmup": warmup,
        "warmup_s": warm_s,
        "first_invoke_ms": first_ms,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "throughput_per_s": float(1000.0 / ms.mean()),
    }


def first_invoke(
    model_path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    *,
    runtime: str = "auto",
    threads: int | None = 1,
    seed: int = 0,
) -> None:
    """Load the model and invoke it once on the sample ``benchmark`` starts with; the child's work
    under ``--isolate``.

    Args:
        model_path: the .tflite.
        reference: its ``.reference.npz`` (its first input is the sample), or None (a seeded
            standard-normal sample).
        runtime: ``litert``, ``tflite_runtime`` or ``auto``.
        threads: interpreter threads.
        seed: seed of the sample when there is no reference.

    Example:
        >>> first_invoke("m.tflite", "m.reference.npz", runtime="litert")  # doctest: +SKIP
    """
    ref = load_reference(reference) if reference is not None else None
    interp, _, _ = load_interpreter(model_path, runtime, threads)
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], _quantize(_sample(ref, inp, seed)[None, ...], inp))
    interp.invoke()


def _sample(ref: dict | None, inp: dict, seed: int) -> np.ndarray:
    """The input the first invocation gets: the first reference row, else a seeded normal row."""
    if ref is not None:
        return ref["inputs"][0]
    return np.random.default_rng(seed).normal(size=inp["shape"][1:]).astype(np.float32)


def isolated_first_invoke(
    model_path: str | os.PathLike,
    reference: str | os.PathLike | None,
    runtime: str,
    threads: int | None,
    seed: int = 0,
) -> None:
    """Run ``first_invoke`` in a child Python; raise ``NativeCrashError`` if a signal ended it.

    A crash in the interpreter's native code (e.g. a forged sparse tensor whose segments point
    outside its data) kills the process with SIGSEGV, which Python cannot catch. The child takes
    that death; the parent names the signal. A child that exits with an ordinary error is not
    reported here: the parent repeats the step and reports that error in its usual way.

    Args:
        model_path: the .tflite.
        reference: the reference file (already checked by the parent), or None.
        runtime: a concrete runtime (``litert`` or ``tflite_runtime``).
        threads: interpreter threads.
        seed: seed of the sample when there is no reference.

    Raises:
        NativeCrashError: the child died on a signal (exit 7 from ``main``).

    Example:
        >>> isolated_first_invoke("m.tflite", None, "litert", 1)  # doctest: +SKIP
    """
    cmd = [sys.executable, os.path.abspath(__file__), str(model_path), "--first-invoke-only",
           "--runtime", runtime, "--threads", str(threads or 0), "--seed", str(seed)]  # fmt: skip
    if reference is not None:
        cmd += ["--reference", str(reference)]
    child = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if child.returncode >= 0:
        return
    number = -child.returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    raise NativeCrashError(
        f"the {runtime} interpreter crashed in native code ({name}, signal {number}) loading or "
        f"first invoking {model_path}: the model file is malformed in a way the interpreter does "
        "not check (e.g. forged sparse-tensor or shape metadata), or the runtime has a bug. Fix: "
        "export the model again with legc export, or try another runtime; do not ship this file."
    )


def benchmark(
    model_path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    *,
    runtime: str = "auto",
    threads: int | None = 1,
    runs: int = 500,
    warmup: int = 50,
    seed: int = 0,
    isolate: bool = False,
) -> dict:
    """Benchmark one .tflite; returns a JSON-able dict (see the module docstring).

    With ``isolate``, the model is first loaded and invoked once in a child process
    (``isolated_first_invoke``), so that a native crash is reported rather than fatal.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise EdgeError(
            f"{model_path} does not exist. Fix: pass the .tflite written by legc export."
        )
    data = model_path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgeError(
            f"{model_path} is not a TFLite model (no TFL3 identifier). Fix: pass a .tflite file."
        )
    if reference is None:
        guess = model_path.with_suffix(".reference.npz")
        reference = guess if guess.exists() else None
    ref = load_reference(reference) if reference is not None else None
    if isolate:
        isolated_first_invoke(model_path, reference, canonical_runtime(runtime), threads, seed)
    t_load = time.perf_counter()
    interp, runtime, notes = load_interpreter(model_path, runtime, threads)
    load_ms = (time.perf_counter() - t_load) * 1e3
    try:
        inp = interp.get_input_details()[0]
        result = {
            "model": str(model_path),
            "model_bytes": len(data),
            "runtime": runtime,
            "runtime_version": _runtime_version(runtime),
            "numpy": np.__version__,
            "threads": threads,
            "notes": notes,
            "input_shape": [int(d) for d in inp["shape"]],
            "input_dtype": np.dtype(inp["dtype"]).name,
            "load_ms": load_ms,
            "export": _export_info(model_path),
        }
        if ref is not None:
            result["reference"] = str(reference)
            result["check"] = check_outputs(interp, ref)
        else:
            result["check"] = None
        sample = _sample(ref, inp, seed)
        result["latency"] = time_model(interp, sample, runs, warmup)
    except MemoryError as exc:
        raise MemoryLimitError(_memory_message(f"the {runtime} interpreter", "run")) from exc
    except (RuntimeError, ValueError, IndexError) as exc:  # a damaged model: "lacks data",
        # undecodable tensor names, no input tensor
        raise EdgeError(
            f"the {runtime} interpreter cannot run this model: {_one_line(exc)}. Fix: export "
            "the model again with legc export; the file is damaged or not a complete model."
        ) from exc
    result["peak_rss_bytes"], result["peak_rss_source"] = peak_rss()
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    result["isolated_first_invoke"] = isolate
    return result


def peak_rss() -> tuple[int, str]:
    """This process's own peak resident set size in bytes, and where it was read.

    On Linux, ``VmHWM`` of /proc/self/status: the high-water mark of this program's own memory.
    Not ``getrusage(RUSAGE_SELF).ru_maxrss``, which exec does not reset: started by posix_spawn
    or vfork (what Python's subprocess uses) it carries the parent's peak, started by fork+exec
    the parent's size at the fork, so a benchmark run from a Python with TensorFlow loaded read
    ~1 GB instead of ~50 MB. Where /proc is missing (macOS, BSD) ``ru_maxrss`` is the fallback
    (bytes on macOS, KiB elsewhere), and the source says it may include the parent's peak.

    Returns:
        ``(bytes, source)``, source ``"VmHWM"`` or ``"ru_maxrss (may include the parent's)"``.

    Example:
        >>> nbytes, source = peak_rss()
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except (OSError, ValueError, IndexError):
        pass
    unit = 1 if sys.platform == "darwin" else 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
    return maxrss, "ru_maxrss (may include the parent's)"


def _runtime_version(runtime: str) -> str | None:
    module = {"litert": "ai_edge_litert", "tflite_runtime": "tflite_runtime"}[runtime]
    try:
        from importlib.metadata import version

        return version({"litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}[runtime])
    except Exception:  # noqa: BLE001 - informational only
        return getattr(sys.modules.get(module), "__version__", None)


def _export_info(model_path: Path) -> dict | None:
    """What legc export recorded beside the model (quantization, sparsity, ...), if present."""
    path = model_path.with_suffix(".json")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or "quantization" not in info:
        return None  # not written by legc export
    keys = ("quantization", "sparse", "sparsity", "densify", "ops", "tflite_bytes", "layer_units")
    out = {k: info.get(k) for k in keys}
    out["verification"] = info.get("verification")
    out["label"] = info.get("label")
    return out


def _write_json(path: Path, obj, force: bool) -> None:
    if path.exists() and not force:
        raise EdgeError(f"{path} exists. Fix: choose another --json path or pass --force.")
    # open(..., "x") creates the file 0o666 & ~umask, as a plain open would (mkstemp: always 0600)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "x") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as exc:  # a parent that is a file, a target that is a folder, a full disk
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the folder itself is the problem: nothing was written
        raise EdgeError(
            f"cannot write {path}: {exc.strerror or exc}. Fix: pass a --json path in a folder you "
            "can write to."
        ) from exc


def _parser(prog: str = "legc-edge") -> argparse.ArgumentParser:
    """The command line (its options and their help)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], epilog=EXIT_CODES
    )
    parser.add_argument("model", help=".tflite file")
    parser.add_argument(
        "--reference", help="reference .npz from legc export (default: beside the model)"
    )
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", "litert", "tflite-runtime", "tflite_runtime", "both"],
        help="interpreter; both = LiteRT and tflite-runtime side by side",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50, help="untimed invokes first")
    parser.add_argument("--pin-core", type=int, help="pin the process to this CPU core")
    parser.add_argument(
        "--memory-limit-mb", type=float, help="cap the process address space (RLIMIT_AS)"
    )
    parser.add_argument(
        "--constrained",
        action="store_true",
        help="constrained profile: 1 thread, pinned to one core (--pin-core or the first allowed)",
    )
    parser.add_argument(
        "--budget-ms", type=float, help="fail (exit 4) when p50 latency exceeds this"
    )
    parser.add_argument(
        "--budget-kb", type=float, help="fail (exit 4) when the file exceeds this (KiB = 1024 B)"
    )
    parser.add_argument(
        "--allow-constant-output",
        action="store_true",
        help="do not fail (exit 6) when the outputs are the same for every reference input",
    )
    parser.add_argument("--label", help="a name for this model in reports (e.g. lenet/block-90)")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--force", action="store_true", help="overwrite --json if it exists")
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="load and invoke the model once in a child process first: a native crash of the "
        "interpreter (segfault, abort) is reported with its signal and exit 7",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the input without a reference")
    # The child of --isolate: load, invoke once, exit (0, or the usual error codes).
    parser.add_argument("--first-invoke-only", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None, prog: str = "legc-edge") -> int:
    """The command line; returns the exit code (see ``EXIT_CODES``).

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        prog: the program name its usage and help show (``legc bench`` runs it as such).

    Example:
        >>> code = main(["m.tflite", "--runs", "100", "--isolate"])  # doctest: +SKIP
    """
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.first_invoke_only:
        return _first_invoke_main(args)
    threads = 1 if args.constrained else args.threads
    pin = args.pin_core
    if args.constrained and pin is None:
        pin = min(os.sched_getaffinity(0))
    if args.json and Path(args.json).exists() and not args.force:
        print(
            f"legc-edge: error: {args.json} exists. Fix: choose another --json path or pass --force.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        runtimes = resolve_runtimes(args.runtime)
        constraints = apply_constraints(pin, args.memory_limit_mb)
        results = [
            benchmark(
                args.model,
                args.reference,
                runtime=r,
                threads=threads,
                runs=args.runs,
                warmup=args.warmup,
                seed=args.seed,
                isolate=args.isolate,
            )  # fmt: skip
            for r in runtimes
        ]
    except NativeCrashError as exc:
        print(f"legc-edge: NATIVE CRASH: {exc}", file=sys.stderr)
        return EXIT_CRASH
    except MemoryLimitError as exc:
        print(f"legc-edge: MEMORY LIMIT: {exc}", file=sys.stderr)
        return EXIT_MEMORY
    except MemoryError:
        print(
            f"legc-edge: MEMORY LIMIT: {_memory_message('the benchmark', 'read or run')}",
            file=sys.stderr,
        )
        return EXIT_MEMORY
    except EdgeError as exc:
        print(f"legc-edge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    codes = []
    for result in results:
        result["constraints"] = {"threads": threads, **constraints}
        result["label"] = args.label
        codes.append(_report(result, args))
    code = EXIT_MISMATCH if EXIT_MISMATCH in codes else max(codes)
    out = results[0] if len(results) == 1 else {
        "model": results[0]["model"],
        "model_bytes": results[0]["model_bytes"],
        "runtimes": results,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }  # fmt: skip
    out["exit_code"] = code
    if args.json:
        try:
            _write_json(Path(args.json), out, args.force)
        except EdgeError as exc:
            print(f"legc-edge: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return code


def _first_invoke_main(args) -> int:
    """The child of ``--isolate``: 0 when the model loads and runs once, else the usual code."""
    try:
        first_invoke(args.model, args.reference, runtime=args.runtime, threads=args.threads,
                     seed=args.seed)  # fmt: skip
    except (MemoryError, MemoryLimitError):
        return EXIT_MEMORY
    except (EdgeError, RuntimeError, ValueError, IndexError):  # the parent reports it
        return EXIT_USAGE
    return EXIT_OK


def _judged(check: dict) -> str:
    """The statistic the check judged, against its tolerance (``<=`` passed, ``>`` failed)."""
    if check.get("rule") != "mean":  # a failure shows more digits: the gap may be small
        if check["max_abs_error"] <= check["atol"]:
            return f"max |error| {check['max_abs_error']:.3g} <= {check['atol']:.3g}"
        return f"max |error| {check['max_abs_error']:.6g} > atol {check['atol']:.3g}"
    sign = "<=" if check["mean_abs_error"] <= check["mean_atol"] else ">"
    kept = check.get("top1_agreement")
    return f"mean |error| {check['mean_abs_error']:.3g} {sign} {check['mean_atol']:.3g}" + (
        "" if kept is None else f" (top output kept on {kept:.0%} of inputs)"
    )


def _report(result: dict, args) -> int:
    """Print one runtime's result; apply the output check and the budgets; return its exit code."""
    lat, check = result["latency"], result["check"]
    print(
        f"{result['model']}: {result['model_bytes']} bytes, {result['runtime']} "
        f"{result['runtime_version'] or ''}, load {result['load_ms']:.1f} ms, first invoke "
        f"{lat['first_invoke_ms']:.3f} ms, p50 {lat['p50_ms']:.4f} ms  p90 {lat['p90_ms']:.4f} ms  "
        f"p99 {lat['p99_ms']:.4f} ms, {lat['throughput_per_s']:.0f}/s, "
        f"peak RSS {result['peak_rss_bytes'] / 2**20:.1f} MiB"
    )
    for note in result["notes"]:
        print(f"note: {note}")
    code = EXIT_OK
    if check is None:
        print(
            "warning: no reference outputs: outputs were NOT checked (pass --reference)",
            file=sys.stderr,
        )
    elif not check["ok"]:
        why = (
            f"the outputs collapsed (std {check['output_std']:.3g} vs the reference's "
            f"{check['reference_std']:.3g})"
            if check["collapsed"]
            else _judged(check)
        )
        diff = check.get("max_abs_diff_from_export_run")
        against_export = (
            ""
            if diff is None
            else f" It differs by up to {diff:.3g} from the same file as LiteRT ran it at export "
            f"(which was within {check['export_run_error']:.3g} of Keras)."
        )
        if check.get("rule") == "mean":  # the typical difference from the export run decides
            diff_small = check.get("mean_abs_diff_from_export_run") is not None and (
                check["mean_abs_diff_from_export_run"] <= 0.5 * check["mean_atol"]
            )
        else:
            diff_small = diff is not None and diff <= 0.5 * check["atol"]
        if diff_small and not check["collapsed"]:
            verdict = (  # the runtime agrees with LiteRT: the file is what differs from Keras
                " This runtime computes the file as LiteRT did at export: the file itself "
                "differs from the Keras model (see the export's verification; re-export it)."
            )
        else:
            verdict = (
                " This runtime computes wrong results for this model; do not ship it (try "
                "another runtime or quantization)."
            )
        print(
            f"legc-edge: OUTPUT MISMATCH ({result['runtime']}): {why} on {check['n_reference']} "
            f"reference inputs.{against_export}{verdict}",
            file=sys.stderr,
        )
        code = EXIT_MISMATCH
    elif check.get("constant") and not args.allow_constant_output:
        print(
            f"legc-edge: CONSTANT OUTPUT ({result['runtime']}): the outputs are the same for all "
            f"{check['n_reference']} reference inputs, so the model no longer depends on its input "
            "(a pruning mask that emptied a layer does this). Fix: prune less, or re-export a "
            "working model; pass --allow-constant-output if a constant model is intended.",
            file=sys.stderr,
        )
        code = EXIT_CONSTANT
    else:
        print(f"outputs match the reference: {_judged(check)}")
    budgets = {}
    if args.budget_ms is not None:
        budgets["budget_ms"] = args.budget_ms
        if lat["p50_ms"] > args.budget_ms:
            print(
                f"legc-edge: OVER BUDGET: p50 {lat['p50_ms']:.4f} ms > --budget-ms {args.budget_ms}",
                file=sys.stderr,
            )
            code = code or EXIT_BUDGET
    if args.budget_kb is not None:
        budgets["budget_kb"] = args.budget_kb
        kib = result["model_bytes"] / 1024
        if kib > args.budget_kb:
            print(
                f"legc-edge: OVER BUDGET: the model is {kib:.1f} KiB > --budget-kb {args.budget_kb}",
                file=sys.stderr,
            )
            code = code or EXIT_BUDGET
    result.update(budgets)
    result["exit_code"] = code
    return code


if __name__ == "__main__":
    raise SystemExit(main())
