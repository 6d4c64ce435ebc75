"""Channel pruning to a measured latency: the MAC target is searched, and each candidate is
exported to .tflite and timed by the edge runner (``legc_edge.bench``) on LiteRT in fresh
processes (1 thread, batch 1, the median of repeated invokes after a warm-up).

Latency is a staircase in the MACs, not a line (``docs/channels.md``: XNNPACK's channel tiles and
its per-invoke floor), so the search measures instead of predicting: it halves the MACs until a
candidate is fast enough, then bisects between the fastest-too-slow and the slowest-fast-enough
candidates, and returns the largest model it measured within the target.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_legc.errors import ExportError, InvalidArgumentError, LegcWarning
from keras_legc.structure.prune import count_macs, prune_channels

#: Halvings of the MACs tried before the target is called unreachable (1/2 .. 1/256).
MAX_HALVINGS = 8


def litert_p50_ms(
    model,
    *,
    quantization: str = "float",
    representative_data=None,
    runs: int = 200,
    warmup: int = 20,
    reps: int = 3,
    seed: int = 0,
) -> float:
    """The latency in ms of ``model`` exported to .tflite (``quantization``) and timed by
    the edge runner (``python -m legc_edge.bench``, installed with keras-legc: LiteRT, 1 thread,
    batch 1, ``runs`` invokes after ``warmup``, its output check against the export's reference)
    in ``reps`` fresh processes: the smallest of their medians. A fresh process runs a file in
    one of two modes on the 2-core development machine (2026-12-06: 13 int8 MobileNet files of
    the same size and ops gave 0.085 or 0.104 ms per process, at random; one process's median
    wandered by up to 70%), so only a slow mode adds time; timed in the process that had just run
    the converter, an int8 DS-CNN read 0.159 ms against 0.067 ms fresh.

    Only the speed is judged here: int8 is exported with a wide verification tolerance (the
    caller exports the chosen model properly), and constant outputs are allowed.
    """
    from keras_legc.keras.export import export_tflite

    shape = tuple(int(d) for d in model.input_shape[1:])
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="legc-latency-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        path = Path(tmp) / "m.tflite"
        export_tflite(
            model, path, quantization=quantization, representative_data=representative_data,
            reference_inputs=rng.uniform(0.0, 1.0, (4, *shape)).astype(np.float32),
            allow_constant_output=True, tolerance=1.0 if quantization == "int8" else None,
        )  # fmt: skip
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "legc_edge.bench", str(path), "--runtime", "litert",
               "--threads", "1", "--runs", str(runs), "--warmup", str(warmup),
               "--allow-constant-output", "--json", str(out), "--force"]  # fmt: skip
        p50s = []
        for _ in range(reps):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no message"
                raise ExportError(
                    f"the edge runner could not time the .tflite (exit {done.returncode}): {why}"
                )
            p50s.append(float(json.loads(out.read_text())["latency"]["p50_ms"]))
    return float(min(p50s))


def prune_channels_to_latency(
    model,
    latency_ms: float,
    *,
    measure: Callable[[object], float] | None = None,
    bisections: int = 6,
    verbose: bool = True,
    **kwargs,
):
    """The largest channel-pruned ``model`` (of those measured) whose latency is at most
    ``latency_ms``.

    Args:
        model: a Keras 3 model, as for :func:`prune_channels`.
        latency_ms: the target, in milliseconds per invoke at batch 1.
        measure: ``measure(model) -> ms``; default :func:`litert_p50_ms` (float .tflite on
            LiteRT, 1 thread). For int8, pass e.g. ``functools.partial(litert_p50_ms,
            quantization="int8", representative_data=x)``; for another device, a function that
            times it there.
        bisections: bisection steps after a fast-enough candidate is found (each halves the
            interval of MAC targets still open).
        verbose: one line per measurement on stderr.
        **kwargs: passed to :func:`prune_channels` (``importance``, ``data``, ``round_to``,
            ``exclude``, ``per_layer``, ...); not a target (``ratio``, ``params``, ``macs``).

    Returns:
        A new plain Keras model; ``model`` itself is not changed. Where ``model`` already meets
        the target, a copy with no channel removed.

    Raises:
        InvalidArgumentError: a latency that is not a finite number > 0, a second target in
            ``kwargs``, or a target no candidate meets (the message gives the fastest measured).

    Example:
        >>> small = prune_channels_to_latency(model, 0.05)            # doctest: +SKIP
    """
    if isinstance(latency_ms, bool) or not _finite_positive(latency_ms):
        raise InvalidArgumentError(
            f"latency_ms must be a finite number > 0 (milliseconds), got {latency_ms!r}. "
            "Fix: pass e.g. latency_ms=0.05."
        )
    given = [k for k in ("ratio", "params", "macs") if kwargs.get(k) is not None]
    if given:
        raise InvalidArgumentError(
            f"prune_channels_to_latency takes its target from latency_ms, not {given}. Fix: "
            "drop them, or call prune_channels for a ratio, parameter or MAC target."
        )
    kwargs = {k: v for k, v in kwargs.items() if k not in ("ratio", "params", "macs")}
    if isinstance(bisections, bool) or not isinstance(bisections, int) or bisections < 0:
        raise InvalidArgumentError(f"bisections must be an integer >= 0, got {bisections!r}.")
    measure = measure or litert_p50_ms
    dense_macs = count_macs(model)

    def say(line: str) -> None:
        if verbose:
            print(f"prune_channels_to_latency: {line}", file=sys.stderr, flush=True)

    def candidate(fraction: float):
        macs = max(1, int(dense_macs * fraction))
        try:
            small = prune_channels(model, macs=macs, **kwargs)
        except InvalidArgumentError as exc:
            if "cannot be reached" not in str(exc):
                raise
            return None, math.inf
        got = measure(small)
        ms = float(got) if isinstance(got, int | float | np.number) else math.nan
        if not (math.isfinite(ms) and ms > 0):
            raise InvalidArgumentError(
                f"measure(model) must return the latency in milliseconds, a finite number > 0; "
                f"it returned {got!r}. Fix: return e.g. the median of timed invokes, in ms."
            )
        say(f"{dense_macs / count_macs(small):.2f}x fewer MACs: {ms:.4f} ms")
        return small, ms

    full, ms = candidate(1.0)
    if ms <= latency_ms:
        say(f"the model meets {latency_ms} ms already ({ms:.4f} ms): nothing removed")
        return full
    fastest, too_slow, fast_enough, best = ms, 1.0, None, None
    for _ in range(MAX_HALVINGS):  # halve until a candidate is fast enough
        fraction = too_slow / 2
        small, ms = candidate(fraction)
        if small is None:
            break
        fastest = min(fastest, ms)
        if ms <= latency_ms:
            fast_enough, best = fraction, small
            break
        too_slow = fraction
    if best is None:
        raise InvalidArgumentError(
            f"latency_ms={latency_ms} cannot be reached: the fastest candidate measured "
            f"{fastest:.4f} ms (down to {too_slow:.3g} of the MACs). Fix: ask for at least "
            f"{fastest:.4f} ms, prune more layers (exclude fewer), or use int8."
        )
    for _ in range(bisections):  # the largest fast-enough fraction between the two
        fraction = (fast_enough + too_slow) / 2
        small, ms = candidate(fraction)
        if small is not None and ms <= latency_ms:
            fast_enough, best = fraction, small
        else:
            too_slow = fraction
    say(f"chose {dense_macs / count_macs(best):.2f}x fewer MACs for {latency_ms} ms")
    return best


def _finite_positive(value) -> bool:
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


__all__ = ["litert_p50_ms", "prune_channels_to_latency"]
