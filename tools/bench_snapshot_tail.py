#!/usr/bin/env python3
"""Where a budgeted recording's snapshot time goes in ``fit``: the per-snapshot read of the kernels
(``.numpy()``) and the copy into the recorder's window, timed apart, on the budget benchmark's
LeNet-300-100 (MNIST t10k split, 8,000 training images, batch 32, 5 epochs, W = 50) at a fixed
``every``. Evidence for docs/performance.md; not a test.

    python tools/bench_snapshot_tail.py --flavour tf_keras --every 7 [--threads 1] [--data-dir D]

The "copy" time of a snapshot that closes a window also holds that window's target and the wait
for the previous window's LEs (both timed apart in the recorder's ``timings``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavour", choices=("tf_keras", "keras3"), default="tf_keras")
    ap.add_argument("--every", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="the LE threads (default: all)")
    ap.add_argument("--data-dir", default=os.environ.get("LEGC_DATA_DIR", "../shared/data"))
    args = ap.parse_args()

    import keras_legc as kl
    from keras_legc.core import recorder
    from keras_legc.keras.flavour import keras, keras3
    from legc_research.datasets import mnist_test_split

    K = keras3() if args.flavour == "keras3" else keras()
    data = mnist_test_split(args.data_dir, seed=0, n_train=8000)
    K.utils.set_random_seed(0)
    model = K.Sequential([K.layers.Input((784,)), K.layers.Dense(300, activation="relu"),
                          K.layers.Dense(100, activation="relu"),
                          K.layers.Dense(10, activation="softmax")])  # fmt: skip
    model.compile(optimizer=K.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    reads, copies = [], []
    step = recorder.Recorder.step

    def timed_step(self, kernels, steps=1):
        if self.calls % self.every:  # not recorded: the kernels are not read
            return step(self, kernels, steps)
        t0 = time.perf_counter()
        arrays = list(kernels)
        t1 = time.perf_counter()
        closed = step(self, iter(arrays), steps)
        copies.append(time.perf_counter() - t1)
        reads.append(t1 - t0)
        return closed

    recorder.Recorder.step = timed_step
    rec = kl.WeightHistory(window=50, overlap=0.1, every=args.every, threads=args.threads,
                           validation_data=(data.x_val[:2000], data.y_val[:2000]))  # fmt: skip
    t0 = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=5, callbacks=[rec], verbose=0)
    print(f"{args.flavour}, every {args.every}, LE threads {args.threads or 'all'}: fit "
          f"{time.perf_counter() - t0:.2f} s, {len(reads)} snapshots")  # fmt: skip
    for name, v in (("read", reads), ("copy", copies)):
        ms = np.array(v) * 1e3
        print(f"{name} ms: median {np.median(ms):.2f}, mean {ms.mean():.2f}, p90 "
              f"{np.percentile(ms, 90):.2f}, max {ms.max():.1f}, sum {ms.sum():.0f}")  # fmt: skip
    print("recorder timings (s):", {k: round(v, 3) for k, v in rec.timings.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
