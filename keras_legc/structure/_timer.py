"""Time a .tflite on LiteRT in a fresh process: ``python -m keras_legc.structure._timer FILE RUNS
WARMUP`` prints ``{"p50_ms": ...}``. A fresh process, as the edge runner does: timed in the
process that had just run TensorFlow's converter, the same int8 DS-CNN read 0.159 ms against
0.067 ms in a fresh one (2026-12-06; TensorFlow's thread pools are the likely cause, not shown)."""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def p50_ms(path: str, runs: int, warmup: int, seed: int = 0) -> float:
    from keras_legc.keras.tflite_runner import _to_tensor, load_interpreter

    with open(path, "rb") as f:
        interp, _ = load_interpreter(f.read(), threads=1)
    inp = interp.get_input_details()[0]
    rng = np.random.default_rng(seed)
    sample = rng.uniform(0.0, 1.0, tuple(int(d) for d in inp["shape"])).astype(np.float32)
    interp.set_tensor(inp["index"], _to_tensor(sample, inp))
    for _ in range(warmup):
        interp.invoke()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by latency.litert_p50_ms
    print(json.dumps({"p50_ms": p50_ms(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))}))
