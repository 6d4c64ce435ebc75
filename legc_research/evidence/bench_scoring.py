#!/usr/bin/env python3
"""Benchmark of LEGC recording and scoring on LeNet-300-100 / MNIST (one run, five measurements).

Workload (the issue's, kept exactly): LeNet-300-100 (Dense 784-300-100-10, relu/relu/softmax,
266,200 kernel weights) trained on the MNIST t10k split (8,000 train / 2,000 validation), batch 32,
5 epochs, SGD lr 0.05, sparse categorical crossentropy, a snapshot every optimizer step, LE window
W = 50, overlap 0.1, Granger max lag L = 14 (capped by the library to floor((K - 2) / 3) for K
windows), seeded with ``K.utils.set_random_seed(seed)`` before the model is built, so the runs with
and without the recorder start from the same weights (checked: the initial weights' SHA-256).

What it measures, all in the same invocation:

1. Recording overhead: ``model.fit`` time with ``WeightHistory`` / without it (target <= 1.5x,
   stretch 1.1x), and the recorder's own breakdown (snapshot / lyapunov / validation / save
   seconds). The recorder runs as in production (``run_dir`` set, no raw snapshots). A third fit
   with ``save_snapshots=True`` produces the raw trajectories that 2-4 need; its time is shown too.
   The same ratio on a small convnet with a Dense head (conv 8 and 16 filters, Dense 64 and 10:
   only the Dense kernels are recorded), same data, epochs and optimizer.
2. Scoring time for all weights (target <= 60 s): (a) the windowed LE of every weight computed
   offline from the raw snapshots (``windowed_lyapunov`` on the transposed memmap; the file was
   just written, so it is read from the page cache), checked bit for bit against the LE series
   that the recorder streamed; (b) ``keras_legc.score()`` (all Granger tests); and the sum.
3. Granger speed-up (target >= 1000x at max |dp| <= 1e-9): statsmodels ``grangercausalitytests``
   per weight on a seeded sample of 500 weights vs the batched ``granger_test`` per weight (all
   weights, and the sample alone); max |dp| over the per-lag p-values of the sample (weights that
   the batched path flags degenerate are left out and counted). The same on independent random
   series (as many as the weights, K = 27, L = 8: the 1x run's shape), where nothing is
   degenerate; with the numpy fallback (no numba) timed on them too.
4. LE speed-up (target >= 300x, identical values): the plain per-window loop reference
   (``windowed_lyapunov_reference``) on the same sample's raw trajectories vs the compiled kernel's
   time per window of 2(a); ``np.array_equal`` of the two on the sample. The same on i.i.d.
   random windows (no repeated values, the kernel's worst case), with the numpy fallback timed
   too, and the first call's cost (numba import + compile, or load from numba's cache).
5. Peak RSS (``ru_maxrss``) of the fit without the recorder, of the fit with it, and of
   ``score()`` (the production path: LE streamed, Granger only) at 1x, 2x and 4x the epochs
   (targets: scoring <= 2 GiB; the recorder's memory above the plain fit independent of the epochs).

Every fit and every scoring step runs in its own fresh subprocess
(``python tools/bench_scoring.py _worker KIND SPEC.json``), so TensorFlow state and peak RSS do not
leak between measurements; only ``model.fit`` (or the scoring call) is timed, never imports, data
loading or model building. Resumable: each measurement's result is saved in a work folder
(``--work-dir``, default ``/tmp/legc-bench-<hash of the JSON path>``) as it finishes, and a rerun of
the same command reuses every measurement whose spec is unchanged (``--fresh`` discards them). The
work folder is deleted after a complete run unless ``--keep``. The full run takes about 10 minutes
on 2 idle cores; ``--skip-memory`` drops the 2x/4x runs.

Run it (MNIST's t10k files in ``DATA/mnist/``):

    python tools/bench_scoring.py [--data-dir DATA] [--json runs/bench_scoring.json] [--force]
    python tools/bench_scoring.py --quick --json /tmp/b.json     # < 1 min, for tests

``--quick`` is a smoke test, not a measurement: a smaller MLP (784-32-16-10), 2,000 training
images, 500 validation images, 2 epochs, W = 20, 1x/2x only, a sample of 50 weights, 5,000 random
windows and series.

Prints a table on stdout (progress on stderr) and writes the same numbers to a JSON file
(refuses to overwrite it unless ``--force``; written atomically).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import keras_legc  # (first: selects Keras 2 before TensorFlow is imported)
from legc_research.datasets import MNIST_FILES, SHARED_DATA, find_data_dir
from legc_research.evidence._provenance import machine, portable_path, tool_command, versions

TARGETS = {
    "overhead_ratio_max": 1.5,
    "overhead_ratio_stretch": 1.1,
    "scoring_s_max": 60.0,
    "granger_speedup_min": 1000.0,
    "granger_max_dp": 1e-9,
    "le_speedup_min": 300.0,
    "scoring_rss_mib_max": 2048.0,
}


@dataclass
class Workload:
    n_train: int = 8000
    n_val: int | None = None  # None: the whole validation part (2,000 images for n_train 8,000)
    hidden: tuple[int, ...] = (300, 100)
    batch_size: int = 32
    epochs: int = 5
    learning_rate: float = 0.05
    every: int = 1
    window: int = 50
    overlap: float = 0.1
    max_lag: int = 14
    test: str = "ssr_chi2"
    seed: int = 0
    n_sample: int = 500
    multiples: tuple[int, ...] = (1, 2, 4)
    model: str = "LeNet-300-100"
    n_random: int = 266_200  # random windows, and random Granger series (K 27, L 8)
    n_random_reference: int = 2000  # of those windows, through the plain LE reference
    n_random_statsmodels: int = 200  # of those series, through statsmodels
    random_k: int = 27
    random_lag: int = 8

    @property
    def n_weights(self) -> int:
        sizes = [784, *self.hidden, 10]
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    def steps(self, epochs: int) -> int:
        return epochs * math.ceil(self.n_train / self.batch_size)


def quick_workload(seed: int, epochs: int | None) -> Workload:
    return Workload(
        n_train=2000, n_val=500, hidden=(32, 16), epochs=epochs or 2, window=20, seed=seed,
        n_sample=50, multiples=(1, 2), model="MLP 784-32-16-10 (quick)", n_random=5000,
        n_random_reference=200, n_random_statsmodels=20,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# helpers shared by the parent and the workers
# ---------------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sample_indices(n_weights: int, n_sample: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_weights, size=min(n_sample, n_weights), replace=False))


class BenchError(Exception):
    """A phase failed; the message says which and shows the worker's log tail."""


# ---------------------------------------------------------------------------------------------
# workers (each runs in a fresh subprocess)
# ---------------------------------------------------------------------------------------------
def worker_fit(spec: dict) -> dict:
    """Build, compile and fit the model (optionally with WeightHistory); time model.fit only."""
    import hashlib

    from keras_legc.keras.flavour import keras, keras3
    from legc_research.datasets import mnist_test_split

    K = keras3() if spec.get("flavour") == "keras3" else keras()  # tf_keras: row 1a's flavour
    data = mnist_test_split(spec["data_dir"], seed=spec["seed"], n_train=spec["n_train"])
    x_val, y_val = data.x_val, data.y_val
    if spec["n_val"]:
        x_val, y_val = x_val[: spec["n_val"]], y_val[: spec["n_val"]]
    K.utils.set_random_seed(spec["seed"])
    model = _build_model(K, spec.get("arch", "mlp"), spec["hidden"])
    x_train = data.x_train.reshape((-1, *model.input_shape[1:]))
    x_val = x_val.reshape((-1, *model.input_shape[1:]))
    model.compile(
        optimizer=K.optimizers.SGD(spec["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    callbacks, recorder = [], None
    made_s = None
    if spec["record"]:
        t0 = time.perf_counter()  # the recorder loads the LE kernel when made: timed apart
        # every None and no max_overhead: the recorder's defaults (its budget)
        budget = {"max_overhead": spec["max_overhead"]} if "max_overhead" in spec else {}
        if "threads" in spec:  # the LE kernel's threads
            budget["threads"] = spec["threads"]
        if "background" in spec:  # the LEs on a worker thread (default) or inline
            budget["background"] = spec["background"]
        # units: one series per unit (filter, neuron) instead of per weight (issue 27)
        recorder_class = keras_legc.UnitHistory if spec.get("units") else keras_legc.WeightHistory
        recorder = recorder_class(
            window=spec["window"], overlap=spec["overlap"], every=spec["every"],
            validation_data=(x_val, y_val), run_dir=spec["run_dir"],
            save_snapshots=spec["save_snapshots"], verbose=0, **budget,
        )  # fmt: skip
        made_s = time.perf_counter() - t0
        callbacks = [recorder]
    elif spec.get("batch_hook"):  # the floor of any per-step recorder: a hook that does nothing
        callbacks = [_BatchHook(K)]
    ended = _TrainEnd(K)  # last: its on_train_end follows the recorder's
    rss_before = peak_rss_mib()
    t0 = time.perf_counter()
    fit = model.fit(
        x_train, data.y_train, batch_size=spec["batch_size"], epochs=spec["epochs"],
        callbacks=[*callbacks, ended], verbose=0,
    )  # fmt: skip
    fit_s = time.perf_counter() - t0
    out = {
        "fit_s": fit_s,
        # to the end of the last callback's on_train_end: without what Keras does after the
        # callbacks (tearing down the data iterator), which took 0-2.4 s at random in plain and
        # recorded fits alike on the 2-core machine (2026-12-06)
        "fit_to_train_end_s": ended.at - t0,
        "rss_before_fit_mib": rss_before,
        "rss_peak_mib": peak_rss_mib(),
        "init_sha256": digest.hexdigest(),
        "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "final_loss": float(fit.history["loss"][-1]),
        "final_train_accuracy": float(fit.history["accuracy"][-1]),
        "n_train": len(data.x_train),
        "n_val": len(x_val),
    }
    if recorder is not None:
        h = recorder.history
        out.update(
            made_s=made_s,
            timings=dict(recorder.timings),
            n_snapshots=h.n_snapshots,
            every=h.every,
            overhead=recorder.overhead,
            budget={
                k: h.meta.get(k) for k in ("max_overhead", "estimated_overhead", "calibration")
            },
            n_windows=h.n_windows,
            n_weights=h.n_weights,
            final_val_misclassification=float(h.target[-1]) if h.n_windows else None,
        )
    return out


def _TrainEnd(K):
    """A callback that notes when ``on_train_end`` reached it (put it last)."""

    class TrainEnd(K.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.at = None

        def on_train_end(self, logs=None):
            self.at = time.perf_counter()

    return TrainEnd()


def _BatchHook(K):
    """A callback with an empty ``on_train_batch_end``: what Keras itself charges a callback that
    runs at every step."""

    class BatchHook(K.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    return BatchHook()


def _build_model(K, arch: str, hidden):
    """The benchmark's MLP (LeNet-300-100 by default), its small convnet with a Dense head, or a
    net of the zoo by name (``legc_research.zoo``: 28x28x1 input, 10 classes)."""
    from legc_research.zoo.nets import NETS, build

    if arch in NETS:
        return build(arch, K)  # the seed is set by the caller
    layers = [K.layers.Input(shape=(784,))]
    if arch == "convnet":
        layers += [
            K.layers.Reshape((28, 28, 1)),
            K.layers.Conv2D(8, 3, activation="relu"),
            K.layers.MaxPooling2D(),
            K.layers.Conv2D(16, 3, activation="relu"),
            K.layers.MaxPooling2D(),
            K.layers.Flatten(),
            K.layers.Dense(64, activation="relu"),
        ]
    else:
        layers += [K.layers.Dense(h, activation="relu") for h in hidden]
    layers += [K.layers.Dense(10, activation="softmax")]
    return K.Sequential(layers, name=arch)


def worker_kernels(spec: dict) -> dict:
    """Sections 3 and 4 on synthetic inputs: the LE kernel on i.i.d. random windows and Granger on
    independent random series, against the plain reference / statsmodels and the numpy fallback."""
    from keras_legc.core import lyapunov
    from keras_legc.testing.reference import granger_pvalues_statsmodels, lyapunov_window_reference

    rng = np.random.default_rng(spec["seed"])
    windows = rng.normal(size=(spec["n_random"], spec["window"]))
    out = {"n_windows": len(windows), "window": spec["window"]}
    t0 = time.perf_counter()
    lyapunov.lyapunov_of_windows(windows[:2])  # numba import + compile or cache load
    out["le_first_call_s"] = time.perf_counter() - t0
    out["le_kernel_s"], le = _timed(lyapunov.lyapunov_of_windows, windows)
    out["le_numpy_fallback_s"], le_numpy = _timed(
        lyapunov._lyapunov_numpy, windows, lyapunov.check_threads(None)
    )
    sample = windows[: spec["n_random_reference"]]
    out["le_reference_s"], ref = _timed(lambda: [lyapunov_window_reference(w) for w in sample])
    out["le_n_reference"] = len(sample)
    out["le_identical_to_reference"] = bool(np.array_equal(np.array(ref), le[: len(sample)]))
    out["le_numpy_fallback_identical"] = bool(np.array_equal(le_numpy, le))

    k, lag = spec["random_k"], spec["random_lag"]
    cause, effect = rng.normal(size=(spec["n_random"], k)), rng.normal(size=k)
    out.update(n_series=len(cause), k=k, lag=lag)
    out["granger_s"], res = _timed(keras_legc.granger_test, cause, effect, lag, spec["test"])
    from keras_legc.core import _compiled

    _compiled._loaded["_granger_kernel"] = None  # this process only: time the numpy fallback
    out["granger_numpy_fallback_s"], res_numpy = _timed(
        keras_legc.granger_test, cause, effect, lag, spec["test"]
    )
    out["granger_numpy_fallback_identical"] = bool(
        np.array_equal(res.per_lag, res_numpy.per_lag, equal_nan=True)
    )
    n_sm = spec["n_random_statsmodels"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["statsmodels_s"], sm = _timed(
            granger_pvalues_statsmodels, cause[:n_sm], effect, lag, spec["test"]
        )
    out["n_statsmodels"] = n_sm
    out["n_degenerate"] = int(np.count_nonzero(res.degenerate))
    out["max_abs_dp"] = float(np.max(np.abs(res.per_lag[:n_sm] - sm)))
    return out


def _timed(fn, *args):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def worker_offline_le(spec: dict) -> dict:
    """Section 2(a) and 4: LE of all weights from the raw snapshots; the plain reference on a sample."""
    from keras_legc.testing.reference import windowed_lyapunov_reference

    history = keras_legc.History.load(spec["run_dir"])
    snap = keras_legc.load_snapshots(spec["run_dir"])
    if snap.shape != (history.n_snapshots, history.n_weights):
        raise BenchError(f"snapshots {snap.shape} do not match the history {history!r}")
    window, overlap = history.window, history.overlap
    # The kernel's first call imports numba and compiles (or loads numba's cache): timed apart.
    first_call_s, _ = _timed(keras_legc.windowed_lyapunov, np.zeros((1, window)), window)
    t0 = time.perf_counter()
    le = keras_legc.windowed_lyapunov(snap.T, window, overlap)  # a view of the memmap, no copy
    le_s = time.perf_counter() - t0
    rss_le = peak_rss_mib()
    le32 = le.astype(np.float32)
    n_diff = int(np.count_nonzero(le32 != history.le)) if le32.shape == history.le.shape else -1

    sample = np.asarray(spec["sample"])
    traj = np.asarray(snap[:, sample].T, dtype=np.float64)  # (n_sample, n_snapshots)
    t0 = time.perf_counter()
    ref = windowed_lyapunov_reference(traj, window, overlap)
    ref_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vec_sample = keras_legc.windowed_lyapunov(traj, window, overlap)
    vec_sample_s = time.perf_counter() - t0
    return {
        "le_first_call_s": first_call_s,
        "le_offline_s": le_s,
        "n_weights": history.n_weights,
        "n_windows": int(le.shape[1]),
        "n_snapshots": history.n_snapshots,
        "snapshots_bytes": int(snap.size) * 4,
        "streaming_equals_offline": bool(n_diff == 0),
        "n_values_differing": n_diff,
        "max_abs_diff_streaming_offline": float(np.max(np.abs(le32 - history.le)))
        if n_diff > 0
        else 0.0,
        "rss_peak_after_le_mib": rss_le,
        "reference_s": ref_s,
        "reference_n_weights": len(sample),
        "reference_equals_offline": bool(np.array_equal(ref, le[sample])),
        "reference_equals_streaming": bool(
            np.array_equal(ref.astype(np.float32), history.le[sample])
        ),
        "vectorised_sample_s": vec_sample_s,
        "vectorised_sample_equals_reference": bool(np.array_equal(vec_sample, ref)),
    }


def worker_score(spec: dict) -> dict:
    """Section 2(b) and 5 (score() time and peak RSS); with ``granger``: section 3 too."""
    history = keras_legc.History.load(spec["run_dir"])
    rss_loaded = peak_rss_mib()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", keras_legc.LegcWarning)
        t0 = time.perf_counter()
        scores = keras_legc.score(
            history, max_lag=spec["max_lag"], test=spec["test"], progress=False
        )
        score_s = time.perf_counter() - t0
    out = {
        "score_s": score_s,
        "rss_after_load_mib": rss_loaded,
        "rss_peak_mib": peak_rss_mib(),  # measured before anything else runs in this process
        "n_weights": history.n_weights,
        "n_windows": history.n_windows,
        "effective_max_lag": scores.max_lag,
        "n_degenerate": scores.n_degenerate,
        "degenerate_counts": scores.degenerate_counts(),
        "lag_warnings": [
            str(w.message) for w in caught if issubclass(w.category, keras_legc.LegcWarning)
        ],
    }
    if spec.get("granger"):
        out["granger"] = _granger_comparison(history, scores, spec)
    return out


def _granger_comparison(history, scores, spec: dict) -> dict:
    from keras_legc.testing.reference import granger_pvalues_statsmodels

    le, target, test = history.le, history.target, spec["test"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", keras_legc.LegcWarning)
        t0 = time.perf_counter()
        full = keras_legc.granger_test(le, target, spec["max_lag"], test)
        full_s = time.perf_counter() - t0
        sample = np.asarray(spec["sample"])
        t0 = time.perf_counter()
        alone = keras_legc.granger_test(le[sample], target, spec["max_lag"], test)
        alone_s = time.perf_counter() - t0
    lag = full.max_lag
    per_lag = full.per_lag[sample]
    valid = full.degenerate[sample] == 0
    cause = le[sample].astype(np.float64)
    sm = np.full((len(sample), lag), np.nan)
    sm_s, n_timed, failures = 0.0, 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' own warnings on short series
        for i in np.flatnonzero(valid):
            t0 = time.perf_counter()
            try:
                sm[i] = granger_pvalues_statsmodels(cause[i], target, lag, test)[0]
            except Exception as exc:  # counted and reported, never hidden
                failures.append(f"weight {int(sample[i])}: {type(exc).__name__}: {exc}")
                continue
            sm_s += time.perf_counter() - t0
            n_timed += 1
    compared = valid & np.all(np.isfinite(sm), axis=1)
    dp = np.abs(per_lag[compared] - sm[compared])
    alone_vs_full = np.abs(alone.per_lag - per_lag)
    return {
        "effective_max_lag": lag,
        "n_sample": len(sample),
        "n_degenerate_in_sample": int((~valid).sum()),
        "n_statsmodels_failed": len(failures),
        "statsmodels_failures": failures[:5],
        "n_statsmodels_nonfinite": int((valid & ~np.all(np.isfinite(sm), axis=1)).sum()),
        "n_compared": int(compared.sum()),
        "statsmodels_s": sm_s,
        "statsmodels_s_per_weight": sm_s / max(n_timed, 1),
        "batched_full_s": full_s,
        "batched_full_s_per_weight": full_s / history.n_weights,
        "batched_sample_s": alone_s,
        "batched_sample_s_per_weight": alone_s / len(sample),
        "max_abs_dp": float(dp.max()) if dp.size else float("nan"),
        "sample_alone_max_abs_diff_vs_full": float(np.nanmax(alone_vs_full))
        if np.isfinite(alone_vs_full).any()
        else 0.0,
        "score_pvalues_equal_granger_test": bool(
            np.array_equal(scores.pvalues, full.pvalues, equal_nan=True)
        ),
    }


WORKERS = {
    "fit": worker_fit,
    "offline_le": worker_offline_le,
    "score": worker_score,
    "kernels": worker_kernels,
}


def worker_main(argv: list[str]) -> int:
    kind, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    result = WORKERS[kind](spec)
    result["worker_rss_final_peak_mib"] = peak_rss_mib()
    from keras_legc._io import atomic_write_json

    atomic_write_json(Path(spec["out"]), result, overwrite=True)  # whole or absent: resumable
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip TensorFlow's slow interpreter teardown (~1.5 s a process); everything is written.
    os._exit(0)


# ---------------------------------------------------------------------------------------------
# the parent: runs the workers, checks, prints, writes the JSON
# ---------------------------------------------------------------------------------------------
@dataclass
class Runner:
    """Runs one measurement in a fresh worker process, or reuses its saved result: a measurement
    whose result file exists under ``tmp`` with the same spec is not run again (resuming)."""

    tmp: Path
    env: dict = field(default_factory=lambda: dict(os.environ))
    reused: list = field(default_factory=list)

    def __call__(self, kind: str, label: str, spec: dict) -> dict:
        spec_path, out_path, log_path = (
            self.tmp / f"{label}.{s}" for s in ("spec.json", "out.json", "log")
        )
        spec = {**spec, "kind": kind, "out": str(out_path)}
        if out_path.exists() and spec_path.exists():
            if json.loads(spec_path.read_text()) == spec:
                say(f"{label}: reusing the result saved by an earlier run ({out_path})")
                self.reused.append(label)
                return json.loads(out_path.read_text())
        out_path.unlink(missing_ok=True)
        if kind == "fit" and spec.get("run_dir"):  # a run interrupted mid-fit left it half written
            shutil.rmtree(spec["run_dir"], ignore_errors=True)
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", __spec__.name, "_worker", kind, str(spec_path)]
        t0 = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        if proc.returncode != 0 or not out_path.exists():
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            raise BenchError(
                f"phase {label!r} failed (exit {proc.returncode}); its log ends:\n{tail}"
            )
        result = json.loads(out_path.read_text())
        result["wall_s"] = time.perf_counter() - t0
        from keras_legc._io import atomic_write_json

        atomic_write_json(out_path, result, overwrite=True)
        return result


def work_dir(arg: str | None, json_path: Path) -> Path:
    """The work folder: ``--work-dir``, else one per JSON path under /tmp (so a rerun resumes)."""
    if arg:
        return Path(arg)
    import hashlib

    key = hashlib.sha256(str(json_path.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"legc-bench-{key}"


def resolve_data_dir(arg: str | None) -> Path | None:
    found = find_data_dir(arg, fallbacks=(SHARED_DATA,), required=MNIST_FILES)
    return found.resolve() if found is not None else None


def machine_info() -> dict:
    return {
        **machine(),
        **versions(("tensorflow", "tf_keras", "numpy", "scipy", "statsmodels", "numba")),
        "keras_legc": keras_legc.__version__,
    }


def run_benchmark(wl: Workload, data_dir: Path, tmp: Path, skip_memory: bool) -> dict:
    run = Runner(tmp)
    base_spec = {
        "data_dir": str(data_dir), "seed": wl.seed, "n_train": wl.n_train, "n_val": wl.n_val,
        "hidden": list(wl.hidden), "batch_size": wl.batch_size, "learning_rate": wl.learning_rate,
        "window": wl.window, "overlap": wl.overlap, "every": wl.every,
    }  # fmt: skip
    score_spec = {"max_lag": wl.max_lag, "test": wl.test}
    multiples = (1,) if skip_memory else wl.multiples
    results: dict = {"fits": {}, "scores": {}}

    def fit(label, epochs, record, run_dir=None, save_snapshots=False, arch="mlp"):
        what = "with WeightHistory" if record else "without recorder"
        if save_snapshots:
            what += " + raw snapshots"
        say(f"{label}: fit {arch} {epochs} epochs ({wl.steps(epochs)} steps) {what} ...")
        res = run("fit", label, {
            **base_spec, "epochs": epochs, "record": record, "arch": arch,
            "run_dir": str(run_dir) if run_dir else None, "save_snapshots": save_snapshots,
        })  # fmt: skip
        say(f"{label}: model.fit {res['fit_s']:.1f} s, peak RSS {res['rss_peak_mib']:.0f} MiB")
        results["fits"][label] = res
        return res

    # -- 1x: overhead, raw snapshots, offline LE, score + Granger comparison ---------------------
    e1 = wl.epochs
    fit("base_1x", e1, record=False)
    fit("rec_1x", e1, record=True, run_dir=tmp / "rec_1x")
    snap_dir = tmp / "snap_1x"
    if not (tmp / "offline_le.out.json").exists() and not (snap_dir / "snapshots.f32").exists():
        (tmp / "snap_1x.out.json").unlink(missing_ok=True)  # resuming: the raw snapshots are gone
    fit("snap_1x", e1, record=True, run_dir=snap_dir, save_snapshots=True)
    sample = sample_indices(wl.n_weights, wl.n_sample, wl.seed).tolist()
    say(f"offline LE of all {wl.n_weights:,} weights from the raw snapshots, and the plain "
        f"reference on {len(sample)} of them ...")  # fmt: skip
    results["offline_le"] = run(
        "offline_le", "offline_le", {"run_dir": str(snap_dir), "sample": sample}
    )
    say(f"offline LE {results['offline_le']['le_offline_s']:.1f} s, reference "
        f"{results['offline_le']['reference_s']:.1f} s")  # fmt: skip
    say("score() on the 1x history, then batched Granger vs statsmodels on the sample ...")
    results["scores"]["1x"] = run("score", "score_1x", {
        **score_spec, "run_dir": str(snap_dir), "granger": True, "sample": sample,
    })  # fmt: skip
    g = results["scores"]["1x"]["granger"]
    say(f"score() {results['scores']['1x']['score_s']:.1f} s; statsmodels "
        f"{g['statsmodels_s']:.1f} s for {g['n_compared']} weights")  # fmt: skip
    (snap_dir / "snapshots.f32").unlink(missing_ok=True)  # free the disk before the longer runs

    # -- the kernels on random inputs; the convnet's recording overhead -----------------------------
    say(f"LE kernel on {wl.n_random:,} random windows, Granger on {wl.n_random:,} random series "
        f"(K {wl.random_k}, L {wl.random_lag}), against the references ...")  # fmt: skip
    results["kernels"] = run("kernels", "kernels", {
        "seed": wl.seed, "window": wl.window, "test": wl.test, "n_random": wl.n_random,
        "n_random_reference": wl.n_random_reference, "random_k": wl.random_k,
        "random_lag": wl.random_lag, "n_random_statsmodels": wl.n_random_statsmodels,
    })  # fmt: skip
    fit("conv_base_1x", e1, record=False, arch="convnet")
    fit("conv_rec_1x", e1, record=True, run_dir=tmp / "conv_rec_1x", arch="convnet")

    # -- 2x/4x: memory -----------------------------------------------------------------------------
    for m in multiples[1:]:
        fit(f"base_{m}x", m * e1, record=False)
        fit(f"rec_{m}x", m * e1, record=True, run_dir=tmp / f"rec_{m}x")
        say(f"score() on the {m}x history ...")
        results["scores"][f"{m}x"] = run("score", f"score_{m}x", {
            **score_spec, "run_dir": str(tmp / f"rec_{m}x"),
        })  # fmt: skip
        say(f"score() {results['scores'][f'{m}x']['score_s']:.1f} s")
    results["multiples"] = list(multiples)
    results["reused"] = run.reused
    return results


def summarise(wl: Workload, raw: dict) -> dict:
    """The five sections (numbers, target, met) from the workers' raw results."""
    return {
        "recording_overhead": _overhead_section(wl, raw),
        "scoring_time": _scoring_section(wl, raw),
        "granger_speedup": _granger_section(wl, raw),
        "lyapunov_speedup": _lyapunov_section(wl, raw),
        "peak_rss": _memory_section(wl, raw),
    }


def _overhead_section(wl: Workload, raw: dict) -> dict:
    """Section 1: fit with / without the recorder."""
    fits, t = raw["fits"], TARGETS
    base, rec, snap = fits["base_1x"], fits["rec_1x"], fits["snap_1x"]

    ratio = rec["fit_s"] / base["fit_s"]
    conv_base, conv_rec = fits["conv_base_1x"], fits["conv_rec_1x"]
    conv_ratio = conv_rec["fit_s"] / conv_base["fit_s"]
    overhead = {
        "epochs": wl.epochs,
        "optimizer_steps": rec["optimizer_steps"],
        "n_snapshots": rec["n_snapshots"],
        "n_windows": rec["n_windows"],
        "fit_s_without_recorder": base["fit_s"],
        "fit_s_with_recorder": rec["fit_s"],
        "ratio": ratio,
        "target_max": t["overhead_ratio_max"],
        "met": ratio <= t["overhead_ratio_max"],
        "target_stretch": t["overhead_ratio_stretch"],
        "stretch_met": ratio <= t["overhead_ratio_stretch"],
        "recorder_timings_s": rec["timings"],
        "recorder_total_s": sum(rec["timings"].values()),
        "lyapunov_s_per_window": rec["timings"]["lyapunov_s"] / max(rec["n_windows"], 1),
        "fit_s_with_recorder_and_raw_snapshots": snap["fit_s"],
        "ratio_with_raw_snapshots": snap["fit_s"] / base["fit_s"],
        "raw_snapshot_run_timings_s": snap["timings"],
        "same_initial_weights": len({f["init_sha256"] for f in (base, rec, snap)}) == 1,
        "final_train_accuracy": rec["final_train_accuracy"],
        "final_val_misclassification": rec["final_val_misclassification"],
        "convnet": {
            "model": "convnet: conv 8 + conv 16 (3x3, max-pool), Dense 64 + Dense 10",
            "n_weights_recorded": conv_rec["n_weights"],
            "n_windows": conv_rec["n_windows"],
            "fit_s_without_recorder": conv_base["fit_s"],
            "fit_s_with_recorder": conv_rec["fit_s"],
            "ratio": conv_ratio,
            "met": conv_ratio <= t["overhead_ratio_max"],
            "stretch_met": conv_ratio <= t["overhead_ratio_stretch"],
            "recorder_timings_s": conv_rec["timings"],
            "same_initial_weights": conv_base["init_sha256"] == conv_rec["init_sha256"],
        },
    }
    return overhead


def _scoring_section(wl: Workload, raw: dict) -> dict:
    """Section 2: LE offline + Granger scoring time."""
    off, s1, t = raw["offline_le"], raw["scores"]["1x"], TARGETS
    total = off["le_offline_s"] + s1["score_s"]
    scoring = {
        "n_weights": off["n_weights"],
        "n_windows": off["n_windows"],
        "n_snapshots": off["n_snapshots"],
        "snapshots_mib": off["snapshots_bytes"] / 2**20,
        "le_offline_s": off["le_offline_s"],
        "granger_score_s": s1["score_s"],
        "total_s": total,
        "target_max_s": t["scoring_s_max"],
        "met": total <= t["scoring_s_max"],
        "usable_cpus": machine_info()["usable_cpus"],
        "requested_max_lag": wl.max_lag,
        "effective_max_lag": s1["effective_max_lag"],
        "lag_warnings": s1["lag_warnings"],
        "n_degenerate": s1["n_degenerate"],
        "degenerate_counts": s1["degenerate_counts"],
        "le_streaming_equals_offline": off["streaming_equals_offline"],
        "le_n_values_differing": off["n_values_differing"],
        "le_max_abs_diff": off["max_abs_diff_streaming_offline"],
    }
    return scoring


def _granger_section(wl: Workload, raw: dict) -> dict:
    """Section 3: batched Granger against statsmodels."""
    g, t = raw["scores"]["1x"]["granger"], TARGETS
    sm, bf, bs = (
        g["statsmodels_s_per_weight"],
        g["batched_full_s_per_weight"],
        g["batched_sample_s_per_weight"],
    )
    speedup = sm / bf
    kr = raw["kernels"]
    sm_random = kr["statsmodels_s"] / kr["n_statsmodels"]
    batched_random = kr["granger_s"] / kr["n_series"]
    fallback_random = kr["granger_numpy_fallback_s"] / kr["n_series"]
    random_speedup = sm_random / batched_random
    random = {
        "n_series": kr["n_series"], "k": kr["k"], "lag": kr["lag"],
        "n_statsmodels": kr["n_statsmodels"], "n_degenerate": kr["n_degenerate"],
        "statsmodels_s_per_series": sm_random, "batched_s_per_series": batched_random,
        "batched_s": kr["granger_s"], "speedup": random_speedup,
        "numpy_fallback_s_per_series": fallback_random,
        "numpy_fallback_speedup": sm_random / fallback_random,
        "numpy_fallback_identical": kr["granger_numpy_fallback_identical"],
        "max_abs_dp": kr["max_abs_dp"],
        "met": bool(random_speedup >= t["granger_speedup_min"]
                    and kr["max_abs_dp"] <= t["granger_max_dp"]),
    }  # fmt: skip
    granger = {
        **g,
        "speedup_vs_full_batch": speedup,
        "speedup_vs_sample_batch": sm / bs,
        "target_speedup_min": t["granger_speedup_min"],
        "target_max_dp": t["granger_max_dp"],
        "le_series_met": bool(
            speedup >= t["granger_speedup_min"] and g["max_abs_dp"] <= t["granger_max_dp"]
        ),
        "random": random,
    }
    granger["met"] = granger["le_series_met"] and random["met"]
    return granger


def _lyapunov_section(wl: Workload, raw: dict) -> dict:
    """Section 4: the vectorised LE against the plain reference."""
    off, t = raw["offline_le"], TARGETS
    ref_pw = off["reference_s"] / (off["reference_n_weights"] * off["n_windows"])
    vec_pw = off["le_offline_s"] / (off["n_weights"] * off["n_windows"])
    le_speedup = ref_pw / vec_pw
    identical = off["reference_equals_offline"]
    kr = raw["kernels"]
    ref_random = kr["le_reference_s"] / kr["le_n_reference"]
    kernel_random = kr["le_kernel_s"] / kr["n_windows"]
    fallback_random = kr["le_numpy_fallback_s"] / kr["n_windows"]
    random = {
        "n_windows": kr["n_windows"], "n_reference": kr["le_n_reference"],
        "reference_s_per_window": ref_random, "kernel_s_per_window": kernel_random,
        "speedup": ref_random / kernel_random,
        "numpy_fallback_s_per_window": fallback_random,
        "numpy_fallback_speedup": ref_random / fallback_random,
        "identical": kr["le_identical_to_reference"],
        "numpy_fallback_identical": kr["le_numpy_fallback_identical"],
        "first_call_s": kr["le_first_call_s"],
        "met": bool(ref_random / kernel_random >= t["le_speedup_min"]
                    and kr["le_identical_to_reference"]),
    }  # fmt: skip
    lyap = {
        "n_sample": off["reference_n_weights"],
        "n_windows": off["n_windows"],
        "window": wl.window,
        "reference_s": off["reference_s"],
        "reference_s_per_window": ref_pw,
        "vectorised_s_per_window": vec_pw,
        "speedup": le_speedup,
        "first_call_s": off["le_first_call_s"],
        "vectorised_sample_s_per_window": off["vectorised_sample_s"]
        / (off["reference_n_weights"] * off["n_windows"]),
        "identical": identical,
        "reference_equals_streaming": off["reference_equals_streaming"],
        "vectorised_sample_equals_reference": off["vectorised_sample_equals_reference"],
        "target_speedup_min": t["le_speedup_min"],
        "real_windows_met": bool(le_speedup >= t["le_speedup_min"] and identical),
        "random": random,
    }
    lyap["met"] = lyap["real_windows_met"] and random["met"]
    return lyap


def _memory_section(wl: Workload, raw: dict) -> dict:
    """Section 5: peak RSS of recording and scoring at 1x..Nx the epochs."""
    fits, scores, t = raw["fits"], raw["scores"], TARGETS
    rows = []
    for m in raw["multiples"]:
        b, r, s = fits[f"base_{m}x"], fits[f"rec_{m}x"], scores[f"{m}x"]
        rows.append({
            "multiple": m, "epochs": m * wl.epochs, "n_windows": r["n_windows"],
            "fit_rss_mib_without_recorder": b["rss_peak_mib"], "fit_rss_mib_with_recorder": r["rss_peak_mib"],
            "recorder_extra_rss_mib": r["rss_peak_mib"] - b["rss_peak_mib"],
            "le_series_mib": r["n_weights"] * r["n_windows"] * 4 / 2**20,
            "scoring_rss_mib": s["rss_peak_mib"], "score_s": s["score_s"],
            "effective_max_lag": s["effective_max_lag"],
            "fit_s_without_recorder": b["fit_s"], "fit_s_with_recorder": r["fit_s"],
            "overhead_ratio": r["fit_s"] / b["fit_s"],
        })  # fmt: skip
    extra1, extra_n = rows[0]["recorder_extra_rss_mib"], rows[-1]["recorder_extra_rss_mib"]
    growth = extra_n - extra1
    allowed = max(0.10 * extra1, 32.0)
    # The LE series is the recorder's output (4 bytes per weight per window) and grows by design;
    # everything else (ring buffer, window in flight, copies) must not.
    le_growth = rows[-1]["le_series_mib"] - rows[0]["le_series_mib"]
    scoring_max = max(r["scoring_rss_mib"] for r in rows)
    memory = {
        "runs": rows,
        "scoring_rss_mib_max": scoring_max,
        "target_scoring_rss_mib_max": t["scoring_rss_mib_max"],
        "scoring_met": scoring_max <= t["scoring_rss_mib_max"],
        "recorder_extra_rss_growth_mib": growth,
        "recorder_growth_allowed_mib": allowed,
        "recording_independent_of_epochs": growth <= allowed if len(rows) > 1 else None,
        "le_series_growth_mib": le_growth,
        "recorder_growth_beyond_le_series_mib": growth - le_growth,
        "recording_beyond_le_series_independent_of_epochs": (
            growth - le_growth <= allowed if len(rows) > 1 else None
        ),
        "rule": "recorder extra RSS (with - without recorder, same epochs) may grow by at most "
        "max(10% of its 1x value, 32 MiB) from 1x to the largest multiple; reported both in "
        "total (strict) and beyond the growth of the LE series itself",
    }
    return memory


def _mark(ok) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def _row(label, value, note="") -> str:
    return f"  {label:<48} {value:>14}  {note}".rstrip()


def format_report(report: dict) -> str:
    """The text report: a header, then one block per section."""
    sec = report["sections"]
    blocks = [
        _header_lines(report),
        _overhead_lines(sec["recording_overhead"]),
        _scoring_lines(sec["scoring_time"]),
        _granger_lines(sec["granger_speedup"], sec["scoring_time"]),
        _lyapunov_lines(sec["lyapunov_speedup"]),
        _memory_lines(sec["peak_rss"]) + [f"JSON: {report['json']}"],
    ]
    return "\n".join(line for block in blocks for line in block)


def _header_lines(report: dict) -> list[str]:
    """Command, date, machine, workload."""
    wl, mach, sec = report["workload"], report["machine"], report["sections"]
    o, s = sec["recording_overhead"], sec["scoring_time"]
    return [
        "keras-legc scoring benchmark",
        f"command : {report['command']}",
        f"date    : {report['date']}",
        f"machine : {mach['platform']}, {mach['cpu_count']} CPUs ({mach['usable_cpus']} usable), "
        f"Python {mach['python']}, tensorflow {mach['tensorflow']}, tf_keras {mach['tf_keras']}, "
        f"numpy {mach['numpy']}, scipy {mach['scipy']}, statsmodels {mach['statsmodels']}, "
        f"numba {mach.get('numba')}",
        f"workload: {wl['model']} ({s['n_weights']:,} kernel weights), MNIST t10k split "
        f"{wl['n_train']} train / {report['n_val_used']} val, batch {wl['batch_size']}, "
        f"{wl['epochs']} epochs ({o['optimizer_steps']} steps), SGD lr {wl['learning_rate']}, "
        f"snapshot every {wl['every']} step(s), W={wl['window']}, overlap {wl['overlap']}, "
        f"L={wl['max_lag']} (effective {s['effective_max_lag']} for K={s['n_windows']} windows), "
        f"{wl['test']}, seed {wl['seed']}",
        f"resumed : {len(report['reused_measurements'])} measurement(s) reused from an earlier, "
        f"interrupted run: {', '.join(report['reused_measurements'])}"
        if report["reused_measurements"]
        else "resumed : no (every measurement ran in this invocation)",
        "",
    ]


def _overhead_lines(o: dict) -> list[str]:
    """Section 1."""
    tm, row, mark = o["recorder_timings_s"], _row, _mark
    return [
        f"1. Recording overhead ({o['epochs']} epochs)            target <= {o['target_max']:.2f}x, "
        f"stretch {o['target_stretch']:.2f}x",
        row("model.fit without WeightHistory", f"{o['fit_s_without_recorder']:.2f} s"),
        row("model.fit with WeightHistory (run_dir, no raw)", f"{o['fit_s_with_recorder']:.2f} s"),
        row("ratio", f"{o['ratio']:.2f}x", f"{mark(o['met'])}, stretch {mark(o['stretch_met'])}"),
        row("recorder: snapshot copies", f"{tm['snapshot_s']:.2f} s"),
        row(
            f"recorder: LE of {o['n_windows']} closed windows",
            f"{tm['lyapunov_s']:.2f} s",
            f"({o['lyapunov_s_per_window']:.2f} s per window, background thread)",
        ),
        row("recorder: fit blocked waiting for LE", f"{tm.get('lyapunov_wait_s', 0.0):.2f} s"),
        row("recorder: validation target", f"{tm['validation_s']:.2f} s"),
        row("recorder: saving the history", f"{tm['save_s']:.2f} s"),
        row(
            "fit with WeightHistory + raw snapshots",
            f"{o['fit_s_with_recorder_and_raw_snapshots']:.2f} s",
            f"({o['ratio_with_raw_snapshots']:.2f}x; only to get the trajectories for 2-4)",
        ),
        row("same initial weights in all three fits", "yes" if o["same_initial_weights"] else "NO"),
        row(
            "final train accuracy / val misclassification",
            f"{o['final_train_accuracy']:.3f} / {o['final_val_misclassification']:.3f}",
        ),
        *_convnet_lines(o["convnet"]),
        "",
    ]


def _convnet_lines(c: dict) -> list[str]:
    """Section 1, the convnet's rows."""
    return [
        f"  {c['model']}: {c['n_weights_recorded']:,} kernel weights recorded, "
        f"{c['n_windows']} windows",
        _row("  model.fit without / with WeightHistory",
             f"{c['fit_s_without_recorder']:.2f} / {c['fit_s_with_recorder']:.2f} s"),
        _row("  ratio", f"{c['ratio']:.2f}x",
             f"{_mark(c['met'])}, stretch {_mark(c['stretch_met'])}"),
    ]  # fmt: skip


def _scoring_lines(s: dict) -> list[str]:
    """Section 2."""
    row, mark = _row, _mark
    return [
        f"2. Scoring time, all {s['n_weights']:,} weights x {s['n_windows']} windows"
        f"           target <= {s['target_max_s']:.0f} s",
        row(
            "(a) LE from the raw snapshots (offline)",
            f"{s['le_offline_s']:.2f} s",
            f"({s['snapshots_mib']:.0f} MiB memmap, page cache warm)",
        ),
        row(
            f"(b) Granger, score(max_lag={s['requested_max_lag']}) -> L={s['effective_max_lag']}",
            f"{s['granger_score_s']:.2f} s",
        ),
        row("total", f"{s['total_s']:.2f} s", mark(s["met"]) + f" (on {s['usable_cpus']} cores)"),
        row(
            "streaming LE == offline LE (float32, bitwise)",
            "identical" if s["le_streaming_equals_offline"] else "DIFFERENT",
            f"({s['le_n_values_differing']:,} of {s['n_weights'] * s['n_windows']:,} values differ)",
        ),
        row(
            "degenerate weights (no valid test)",
            f"{s['n_degenerate']:,}",
            ", ".join(f"{k}: {v:,}" for k, v in s["degenerate_counts"].items()),
        ),
        "",
    ]


def _granger_lines(g: dict, s: dict) -> list[str]:
    """Section 3."""
    row, mark = _row, _mark
    return [
        f"3. Granger speed-up, sample of {g['n_sample']} weights, L={g['effective_max_lag']}"
        f"          target >= {g['target_speedup_min']:.0f}x at max |dp| <= {g['target_max_dp']:.0e}",
        row(
            "statsmodels, per weight",
            f"{g['statsmodels_s_per_weight'] * 1e3:.3f} ms",
            f"({g['n_compared']} weights; {g['n_degenerate_in_sample']} degenerate left out, "
            f"{g['n_statsmodels_failed']} failed)",
        ),
        row(
            f"batched, per weight (all {s['n_weights']:,})",
            f"{g['batched_full_s_per_weight'] * 1e6:.2f} us",
            f"({g['batched_full_s']:.2f} s in all)",
        ),
        row(
            "batched, per weight (the sample alone)",
            f"{g['batched_sample_s_per_weight'] * 1e6:.2f} us",
        ),
        row(
            "speed-up (vs all-weights batch)", f"{g['speedup_vs_full_batch']:.0f}x", mark(g["met"])
        ),
        row("speed-up (vs sample-alone batch)", f"{g['speedup_vs_sample_batch']:.0f}x"),
        row("max |dp| batched vs statsmodels, per lag", f"{g['max_abs_dp']:.2e}"),
        *_granger_random_lines(g["random"]),
        "",
    ]


def _granger_random_lines(r: dict) -> list[str]:
    """Section 3, the independent random series."""
    return [
        f"  independent random series: {r['n_series']:,} x K={r['k']}, L={r['lag']} "
        f"({r['n_statsmodels']} through statsmodels)",
        _row("  statsmodels, per series", f"{r['statsmodels_s_per_series'] * 1e3:.3f} ms"),
        _row("  batched (numba), per series", f"{r['batched_s_per_series'] * 1e6:.2f} us",
             f"({r['batched_s']:.2f} s in all)"),
        _row("  speed-up", f"{r['speedup']:.0f}x", _mark(r["met"])),
        _row("  numpy fallback, per series", f"{r['numpy_fallback_s_per_series'] * 1e6:.2f} us",
             f"({r['numpy_fallback_speedup']:.0f}x; "
             f"{'identical' if r['numpy_fallback_identical'] else 'DIFFERENT'} p-values)"),
        _row("  max |dp| vs statsmodels, per lag", f"{r['max_abs_dp']:.2e}"),
    ]  # fmt: skip


def _lyapunov_lines(ly: dict) -> list[str]:
    """Section 4."""
    row, mark = _row, _mark
    return [
        f"4. LE speed-up vs the plain per-window reference, sample of {ly['n_sample']}"
        f"   target >= {ly['target_speedup_min']:.0f}x, identical",
        row(
            f"reference, per window (W={ly['window']})",
            f"{ly['reference_s_per_window'] * 1e6:.1f} us",
            f"({ly['n_sample']} weights x {ly['n_windows']} windows, {ly['reference_s']:.1f} s)",
        ),
        row(
            "kernel, per window (all weights, 2a)",
            f"{ly['vectorised_s_per_window'] * 1e6:.2f} us",
            f"(after a first call of {ly['first_call_s']:.2f} s, not counted)",
        ),
        row(
            "kernel, per window (the sample alone)",
            f"{ly['vectorised_sample_s_per_window'] * 1e6:.2f} us",
        ),
        row("speed-up on real windows", f"{ly['speedup']:.0f}x", mark(ly["real_windows_met"])),
        row(
            "values: reference vs offline (np.array_equal)",
            "identical" if ly["identical"] else "DIFFERENT",
        ),
        row(
            "values: reference vs streamed (float32)",
            "identical" if ly["reference_equals_streaming"] else "DIFFERENT",
        ),
        *_lyapunov_random_lines(ly["random"]),
        "",
    ]


def _lyapunov_random_lines(r: dict) -> list[str]:
    """Section 4, the i.i.d. random windows."""
    same = {True: "identical", False: "DIFFERENT"}
    return [
        f"  i.i.d. random windows: {r['n_windows']:,} ({r['n_reference']} through the reference)",
        _row("  reference, per window", f"{r['reference_s_per_window'] * 1e6:.1f} us"),
        _row("  kernel, per window", f"{r['kernel_s_per_window'] * 1e6:.2f} us",
             f"(first call {r['first_call_s']:.2f} s: numba import + compile or cache load)"),
        _row("  speed-up", f"{r['speedup']:.0f}x",
             f"{_mark(r['met'])}, {same[r['identical']]} values"),
        _row("  numpy fallback, per window", f"{r['numpy_fallback_s_per_window'] * 1e6:.2f} us",
             f"({r['numpy_fallback_speedup']:.0f}x, {same[r['numpy_fallback_identical']]})"),
    ]  # fmt: skip


def _memory_lines(mem: dict) -> list[str]:
    """Section 5 (the per-multiple table, then the verdicts)."""
    row, mark = _row, _mark
    lines = [
        f"5. Peak RSS (ru_maxrss, MiB)        target: scoring <= {mem['target_scoring_rss_mib_max']:.0f} MiB; "
        "recorder memory independent of epochs",
        f"  {'epochs':>6} {'windows':>7} {'fit':>8} {'fit+rec':>8} {'rec extra':>9} {'LE series':>9} "
        f"{'score()':>8} {'score s':>8} {'overhead':>8}",
    ]
    for r in mem["runs"]:
        lines.append(
            f"  {r['epochs']:>6} {r['n_windows']:>7} {r['fit_rss_mib_without_recorder']:>8.0f} "
            f"{r['fit_rss_mib_with_recorder']:>8.0f} {r['recorder_extra_rss_mib']:>9.0f} "
            f"{r['le_series_mib']:>9.1f} {r['scoring_rss_mib']:>8.0f} {r['score_s']:>8.2f} "
            f"{r['overhead_ratio']:>7.2f}x"
        )
    lines += [
        row("scoring peak RSS (max over runs)", f"{mem['scoring_rss_mib_max']:.0f} MiB", mark(mem["scoring_met"])),
        row("recorder extra RSS growth, 1x -> largest", f"{mem['recorder_extra_rss_growth_mib']:.0f} MiB",
            f"{mark(mem['recording_independent_of_epochs'])} (allowed {mem['recorder_growth_allowed_mib']:.0f} MiB)"),
        row("  of which the LE series itself", f"{mem['le_series_growth_mib']:.0f} MiB"),
        row("  growth beyond the LE series", f"{mem['recorder_growth_beyond_le_series_mib']:.0f} MiB",
            mark(mem['recording_beyond_le_series_independent_of_epochs'])),
        "",
    ]  # fmt: skip
    return lines


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="tools/bench_scoring.py",
        description="Benchmark LEGC recording overhead, scoring time, speed-ups and memory.",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny run for tests (< 1 min), not a measurement"
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs of the 1x run (default 5; quick 2)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--json", default="runs/bench_scoring.json", help="output JSON (default %(default)s)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.add_argument("--data-dir", default=None,
                   help="folder holding mnist/ (default $LEGC_DATA_DIR, else <repo>/../shared/data)")  # fmt: skip
    p.add_argument("--skip-memory", action="store_true", help="skip the 2x/4x epoch runs")
    p.add_argument("--keep", action="store_true", help="keep the work folder after a complete run")
    p.add_argument(
        "--work-dir",
        default=None,
        help="folder for the run folders and each measurement's saved result "
        "(default /tmp/legc-bench-<hash of the JSON path>); a rerun resumes from it",
    )
    p.add_argument("--fresh", action="store_true",
                   help="discard the saved measurements of an earlier, interrupted run")  # fmt: skip
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs must be >= 1")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_worker"]:
        return worker_main(argv[1:])
    args = parse_args(argv)
    prog = "bench_scoring"
    data_dir = resolve_data_dir(args.data_dir)
    if data_dir is None:
        where = (
            args.data_dir
            or f"$LEGC_DATA_DIR ({os.environ.get('LEGC_DATA_DIR') or 'unset'}) or {SHARED_DATA}"
        )
        print(f"{prog}: error: MNIST not found under {where} (need {' and '.join(MNIST_FILES)}). "
              "Fix: pass --data-dir or set LEGC_DATA_DIR to the folder holding mnist/.", file=sys.stderr)  # fmt: skip
        return 2
    json_path = Path(args.json)
    if json_path.exists() and not args.force:
        print(f"{prog}: error: {json_path} already exists. Fix: choose another --json, or pass --force.",
              file=sys.stderr)  # fmt: skip
        return 2
    wl = (
        quick_workload(args.seed, args.epochs)
        if args.quick
        else Workload(epochs=args.epochs or 5, seed=args.seed)
    )
    snapshot_bytes = wl.steps(wl.epochs) // wl.every * wl.n_weights * 4
    free = shutil.disk_usage("/tmp").free
    if free < 3 * snapshot_bytes:
        print(f"{prog}: error: /tmp has {free / 2**30:.1f} GiB free; the raw snapshots need "
              f"{snapshot_bytes / 2**30:.2f} GiB and the benchmark wants 3x that. Fix: free space "
              "in /tmp or lower --epochs.", file=sys.stderr)  # fmt: skip
        return 2

    command = tool_command("bench_scoring", argv)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    tmp = work_dir(args.work_dir, json_path)
    if args.fresh:
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    say(
        f"{wl.model}, {wl.n_weights:,} weights, {wl.epochs} epochs, multiples {wl.multiples}; work "
        f"folder {tmp}"
    )
    t0 = time.perf_counter()
    try:
        raw = run_benchmark(wl, data_dir, tmp, args.skip_memory)
        sections = summarise(wl, raw)
    except (BenchError, KeyboardInterrupt) as exc:
        print(f"{prog}: error: {exc or 'interrupted'}. The measurements finished so far are saved "
              f"in {tmp}: run the same command again to resume.", file=sys.stderr)  # fmt: skip
        return 1
    if args.keep:
        say(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "command": command,
        "date": date,
        "machine": machine_info(),
        "workload": {**asdict(wl), "n_weights": wl.n_weights, "data_dir": portable_path(data_dir)},
        "n_val_used": raw["fits"]["base_1x"]["n_val"],
        "wall_s": time.perf_counter() - t0,
        "reused_measurements": raw["reused"],
        "targets": TARGETS,
        "sections": sections,
        "raw": raw,
        "json": portable_path(json_path),
    }
    from keras_legc._io import atomic_write_json

    atomic_write_json(json_path, report, overwrite=args.force)
    print(format_report(report))
    say(f"done in {report['wall_s']:.0f} s; wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
