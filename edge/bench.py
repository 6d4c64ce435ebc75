#!/usr/bin/env python3
"""Latency benchmark of a .tflite model on the device side: numpy + one interpreter, no TensorFlow.

Runs the model at batch 1 with LiteRT (``ai_edge_litert``) or ``tflite_runtime``, reports p50/p90/p99
latency, model size and peak RSS, and checks the outputs against the reference file written by
``legc export`` (``<model>.reference.npz``): a mismatch fails loudly (exit 3), a p50 over
``--budget-ms`` fails (exit 4).

Usage:
    python bench.py model.tflite [--reference model.reference.npz] [--runs 500] [--threads 1]
                    [--runtime auto|litert|tflite_runtime] [--budget-ms 1.0] [--json out.json]

This file is self-contained: copy it to a device that has numpy and an interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_USAGE, EXIT_MISMATCH, EXIT_BUDGET = 0, 2, 3, 4


class EdgeError(Exception):
    """A problem with the model, the reference or the runtime; the message says how to fix it."""


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
    if runtime == "auto":
        found = available_runtimes()
        if not found:
            raise EdgeError(
                "no TFLite interpreter is installed. Fix: pip install ai-edge-litert "
                "(or tflite-runtime on devices that only have that)."
            )
        runtime = found[0]
    if runtime == "litert":
        from ai_edge_litert import interpreter as mod
    elif runtime == "tflite_runtime":
        from tflite_runtime import interpreter as mod
    else:
        raise EdgeError(f"unknown runtime {runtime!r}; use auto, litert or tflite_runtime.")
    kwargs = (
        {"model_content": bytes(model)}
        if isinstance(model, (bytes, bytearray))
        else {"model_path": str(model)}
    )
    if threads:
        kwargs["num_threads"] = int(threads)
    notes = []
    try:
        interp = mod.Interpreter(**kwargs)
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        if "delegate" not in str(exc).lower() or not hasattr(mod, "OpResolverType"):
            raise EdgeError(f"the {runtime} interpreter cannot load this model: {exc}") from exc
        notes.append(
            f"default delegate failed ({str(exc).splitlines()[0]}); using builtin ops without delegates"
        )
        interp = mod.Interpreter(
            experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            **kwargs,
        )
        interp.allocate_tensors()
    return interp, runtime, notes


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


def load_reference(path: str | os.PathLike) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
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
    return ref


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
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    atol = float(ref["atol"])
    return {
        "max_abs_error": err,
        "atol": atol,
        "ok": bool(err <= atol),
        "n_reference": int(len(got)),
    }


def time_model(interp, sample: np.ndarray, runs: int = 500, warmup: int = 50) -> dict:
    """Latency of ``invoke`` at batch 1 (input set once; what is timed is the inference)."""
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], _quantize(sample[None, ...], inp))
    t_warm = time.perf_counter()
    for _ in range(warmup):
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
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "throughput_per_s": float(1000.0 / ms.mean()),
    }


def benchmark(
    model_path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    *,
    runtime: str = "auto",
    threads: int | None = 1,
    runs: int = 500,
    warmup: int = 50,
    seed: int = 0,
) -> dict:
    """Benchmark one .tflite; returns a JSON-able dict (see the module docstring)."""
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
    interp, runtime, notes = load_interpreter(model_path, runtime, threads)
    inp = interp.get_input_details()[0]
    result = {
        "model": str(model_path),
        "model_bytes": len(data),
        "runtime": runtime,
        "threads": threads,
        "notes": notes,
        "input_shape": [int(d) for d in inp["shape"]],
        "input_dtype": np.dtype(inp["dtype"]).name,
    }
    if reference is not None:
        ref = load_reference(reference)
        result["reference"] = str(reference)
        result["check"] = check_outputs(interp, ref)
        sample = ref["inputs"][0]
    else:
        result["check"] = None
        sample = np.random.default_rng(seed).normal(size=inp["shape"][1:]).astype(np.float32)
    result["latency"] = time_model(interp, sample, runs, warmup)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    return result


def _write_json(path: Path, obj, force: bool) -> None:
    if path.exists() and not force:
        raise EdgeError(f"{path} exists. Fix: choose another --json path or pass --force.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="legc-edge", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help=".tflite file")
    parser.add_argument(
        "--reference", help="reference .npz from legc export (default: beside the model)"
    )
    parser.add_argument("--runtime", default="auto", choices=["auto", "litert", "tflite_runtime"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--budget-ms", type=float, help="fail (exit 4) when p50 latency exceeds this"
    )
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--force", action="store_true", help="overwrite --json if it exists")
    args = parser.parse_args(argv)
    try:
        result = benchmark(
            args.model,
            args.reference,
            runtime=args.runtime,
            threads=args.threads,
            runs=args.runs,
            warmup=args.warmup,
        )
    except EdgeError as exc:
        print(f"legc-edge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    lat, check = result["latency"], result["check"]
    print(
        f"{result['model']}: {result['model_bytes']} bytes, {result['runtime']}, "
        f"p50 {lat['p50_ms']:.4f} ms  p90 {lat['p90_ms']:.4f} ms  p99 {lat['p99_ms']:.4f} ms, "
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
        print(
            f"legc-edge: OUTPUT MISMATCH: max |error| {check['max_abs_error']:.6g} > atol {check['atol']:.3g} "
            f"on {check['n_reference']} reference inputs. This runtime computes wrong results for this model; "
            "do not ship it (try another runtime or quantization).",
            file=sys.stderr,
        )
        code = EXIT_MISMATCH
    else:
        print(
            f"outputs match the reference: max |error| {check['max_abs_error']:.3g} <= {check['atol']:.3g}"
        )
    if args.budget_ms is not None:
        result["budget_ms"] = args.budget_ms
        if lat["p50_ms"] > args.budget_ms:
            print(
                f"legc-edge: OVER BUDGET: p50 {lat['p50_ms']:.4f} ms > --budget-ms {args.budget_ms}",
                file=sys.stderr,
            )
            code = code or EXIT_BUDGET
    result["exit_code"] = code
    if args.json:
        try:
            _write_json(Path(args.json), result, args.force)
        except EdgeError as exc:
            print(f"legc-edge: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
