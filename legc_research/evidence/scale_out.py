#!/usr/bin/env python3
"""Scale-out evidence: a history bigger than a worker's memory, scored on a Dask cluster.

Workload (issue 17): a synthetic history of ``--weights`` N weights x ``--windows`` 100 windows
(default N = 20M: 8 GB of float32 LE) written to a Zarr LE store (``keras_legc.core.store``),
scored with ``keras_legc``'s Dask path (``iter_blocks_on_cluster``, what ``score(client=...)``
runs) on a LocalCluster of ``--workers`` 2 worker processes, one thread each, ``--memory-limit``
2GB each (or on a running cluster, ``--scheduler ADDRESS``). Max lag "auto" (14), ssr_chi2, BIC lag
selection: the defaults of ``keras_legc.score``.

The synthetic LE: per block of weights, a seeded generator (seed, block) makes white-noise series;
1% of the weights follow a driver series that leads the target by one window (Granger-causal),
0.5% are constant 0 (weights that never moved). Any block can be regenerated from the seed alone.

What it reports, all from the same invocation:
- wall time of the cluster scoring, throughput in weight-windows per second;
- peak memory per worker (the worker process's ``ru_maxrss``, and the largest RSS sampled while
  it scored), against the memory limit;
- equality: ``--sample-blocks`` blocks, seeded, scored again in this process
  (``score_block``, the in-process code) and compared with ``np.array_equal`` on every per-weight
  array (p-values, degenerate codes, static flags, BIC lags, F-test p-values, partial R²);
- the anchor: the in-process throughput of that re-scoring on ``--threads`` threads (what a user
  on this machine would run instead), and the ratio;
- an estimate of the full 20M-weight run from this run's throughput.

Resumable: the store is written block by block (``generated.json`` records the blocks done), and
every scored block's arrays are saved as ``results/block_<start>.npz`` as it finishes; a rerun with
the same ``--work-dir`` and sizes skips what is there. Wall time and throughput are those of the
blocks scored in this invocation.

Run it:

    python tools/scale_out.py --weights 500000 --json runs/scale_out_500k.json
    python tools/scale_out.py                       # the full 20M (hours on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from keras_legc._io import atomic_write_json, read_npz, write_npz
from legc_research.evidence._provenance import machine, today, tool_command, versions

FULL_WEIGHTS = 20_000_000
CAUSAL_SHARE, STATIC_SHARE = 0.01, 0.005
RESULT_FORMAT = "legc_research.scale_out_block"
SPEC_KEYS = ("weights", "windows", "chunk_rows", "seed")


# -- the synthetic history ---------------------------------------------------------------------
def driver_and_target(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The driver series the causal weights follow and the target it leads by one window."""
    rng = np.random.default_rng([seed, 0xD21])
    driver = rng.normal(size=k)
    target = 0.3 * rng.normal(size=k)
    target[1:] += driver[:-1]
    return driver, target


def synthetic_block(seed: int, start: int, stop: int, k: int) -> np.ndarray:
    """LE rows ``start:stop`` (float32), the same whenever they are made."""
    rng = np.random.default_rng([seed, start])
    block = rng.normal(size=(stop - start, k)).astype(np.float32)
    driver, _ = driver_and_target(seed, k)
    kind = rng.random(stop - start)
    causal = kind < CAUSAL_SHARE
    block[causal] = (driver + 0.5 * block[causal]).astype(np.float32)
    block[(kind >= CAUSAL_SHARE) & (kind < CAUSAL_SHARE + STATIC_SHARE)] = 0.0
    return block


def layout(n: int) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Dense-like layers holding n weights: 1000-wide kernels, the remainder in a last one."""
    rows, rest = divmod(n, 1000)
    layers, shapes = [], {}
    if rows:
        layers.append("dense")
        shapes["dense"] = (rows, 1000)
    if rest:
        layers.append("dense_rest")
        shapes["dense_rest"] = (1, rest)
    return layers, shapes


def build_history(run_dir: Path, args, log) -> float:
    """Write (or finish writing) the store and its History; returns the seconds it took now."""
    import keras_legc as kl
    from keras_legc.core.store import STORE_NAME, LEStore, StoredLE

    n, k, rows = args.weights, args.windows, args.chunk_rows
    done_path = run_dir / "generated.json"
    spec = {key: getattr(args, key) for key in SPEC_KEYS}
    if (run_dir / "history.npz").exists():
        return 0.0
    t0 = time.perf_counter()
    state = json.loads(done_path.read_text()) if done_path.exists() else None
    if state is None or state["spec"] != spec:
        store = LEStore(run_dir / STORE_NAME, n, chunk_rows=rows, chunk_windows=k, overwrite=True)
        store.resize(k)
        state = {"spec": spec, "blocks_done": 0}
        atomic_write_json(done_path, state, overwrite=True)
    else:
        store = LEStore.open(run_dir / STORE_NAME)  # a rerun: finish filling it
    starts = list(range(0, n, rows))
    for i in range(state["blocks_done"], len(starts)):
        start = starts[i]
        store.write_rows(start, synthetic_block(args.seed, start, min(start + rows, n), k))
        state["blocks_done"] = i + 1
        atomic_write_json(done_path, state, overwrite=True)
        if i % 20 == 0 or i == len(starts) - 1:
            log(f"generated {i + 1}/{len(starts)} blocks")
    layers, shapes = layout(n)
    _, target = driver_and_target(args.seed, k)
    kl.History(
        layers=layers, shapes=shapes, le=StoredLE(run_dir / STORE_NAME, k), target=target,
        window=50, overlap=0.1, every=1, n_snapshots=50 + 45 * (k - 1),
        meta={"synthetic": spec},
    ).save(run_dir)  # fmt: skip
    return time.perf_counter() - t0


# -- the cluster and its memory ------------------------------------------------------------------
def _worker_memory() -> dict:
    """On a worker: its process's peak and current resident set, in bytes."""
    import psutil

    return {
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss": psutil.Process().memory_info().rss,
    }


class MemorySampler:
    """Polls every worker's RSS while the scoring runs (a background thread of this process)."""

    def __init__(self, client, every_s: float = 1.0):
        self.client, self.every_s, self.peak = client, every_s, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for worker, mem in self.client.run(_worker_memory).items():
                    self.peak[worker] = max(self.peak.get(worker, 0), mem["rss"])
            except Exception:  # noqa: BLE001 - a worker restarting; the next poll sees it
                pass
            self._stop.wait(self.every_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def start_cluster(args):
    import distributed

    if args.scheduler:
        from keras_legc.core.distributed import connect

        return connect(args.scheduler)[0], None
    import dask

    from keras_legc.core.distributed import worker_environ

    # glibc's malloc as without Dask (keras_legc.core.distributed.WORKER_ENVIRON; docs/scale-out.md)
    env = worker_environ() if args.malloc == "legc" else None
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env} if env else {}):
        cluster = _local_cluster(distributed, args)
    return distributed.Client(cluster), cluster


def _local_cluster(distributed, args):
    return distributed.LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True,
        memory_limit=args.memory_limit, dashboard_address=None,
    )  # fmt: skip


# -- scoring, resumable --------------------------------------------------------------------------
def block_path(results: Path, start: int) -> Path:
    return results / f"block_{start:012d}.npz"


def score_on_cluster(client, history, spec, results: Path, log) -> dict:
    from keras_legc.core.distributed import iter_blocks_on_cluster
    from keras_legc.core.scoring import block_rows

    step = block_rows(history, spec.chunk_size)
    starts = list(range(0, history.n_weights, step))
    todo = [s for s in starts if not block_path(results, s).exists()]
    log(f"scoring {len(todo)} of {len(starts)} blocks of {step} weights on the cluster")
    t0 = time.perf_counter()
    weights = 0
    with MemorySampler(client) as sampler:
        for i, (start, arrays) in enumerate(iter_blocks_on_cluster(client, history, spec,
                                                                   starts=todo)):  # fmt: skip
            write_npz(block_path(results, start), {"format": RESULT_FORMAT, "version": 1,
                                                   "start": start}, arrays)  # fmt: skip
            weights += arrays["pvalues"].size
            if i % 10 == 0 or i == len(todo) - 1:
                rate = weights * history.n_windows / max(time.perf_counter() - t0, 1e-9)
                log(f"  {i + 1}/{len(todo)} blocks, {rate:,.0f} weight-windows/s")
    wall = time.perf_counter() - t0
    memory = client.run(_worker_memory)
    return {
        "blocks_total": len(starts),
        "blocks_scored_now": len(todo),
        "block_weights": step,
        "weights_scored_now": weights,
        "wall_s": wall,
        "weight_windows_per_s": weights * history.n_windows / wall if weights else None,
        "workers": {
            w: {
                "peak_rss_mib": m["maxrss"] / 2**20,
                "peak_sampled_rss_mib": sampler.peak.get(w, 0) / 2**20,
            }
            for w, m in memory.items()
        },  # fmt: skip
    }


def check_sample(history, spec, results: Path, args, log) -> dict:
    """Re-score a seeded sample of blocks in this process; compare every array bit for bit."""
    from keras_legc.core.scoring import block_rows, score_block

    step = block_rows(history, spec.chunk_size)
    starts = np.arange(0, history.n_weights, step)
    rng = np.random.default_rng(args.seed)
    sample = sorted(rng.choice(starts, size=min(args.sample_blocks, starts.size), replace=False))
    equal, elapsed, weights = {}, 0.0, 0
    for start in sample:
        stop = min(int(start) + step, history.n_weights)
        le = history.le.rows(int(start), stop)
        t0 = time.perf_counter()
        here = score_block(le, spec, threads=args.threads)
        elapsed += time.perf_counter() - t0
        weights += stop - int(start)
        _, there = read_npz(block_path(results, int(start)), RESULT_FORMAT, 1)
        equal[int(start)] = all(
            name in there and here[name].dtype == there[name].dtype
            and np.array_equal(here[name], there[name], equal_nan=True)
            for name in here
        )  # fmt: skip
        log(f"  block {start}: {'identical' if equal[int(start)] else 'DIFFERENT'}")
    return {
        "blocks": [int(s) for s in sample],
        "weights": weights,
        "bit_identical": all(equal.values()),
        "per_block": {str(k): v for k, v in equal.items()},
        "in_process_threads": args.threads,
        "in_process_s": elapsed,
        "in_process_weight_windows_per_s": weights * history.n_windows / elapsed,
    }


def summarise(history, results: Path) -> dict:
    """What the scores say (all blocks): valid tests, p < 0.05, degenerate and static weights."""
    valid = significant = static = 0
    for path in sorted(results.glob("block_*.npz")):
        _, arrays = read_npz(path, RESULT_FORMAT, 1)
        ok = arrays["degenerate"] == 0
        valid += int(ok.sum())
        significant += int((arrays["pvalues"][ok] < 0.05).sum())
        static += int(arrays["static"].sum())
    return {"valid_tests": valid, "p_below_0_05": significant, "static": static,
            "weights": history.n_weights}  # fmt: skip


# -- the command ----------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(prog="scale_out", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=int, default=FULL_WEIGHTS, help="N weights (default 20M).")
    p.add_argument("--windows", type=int, default=100, help="LE windows K (default 100).")
    p.add_argument("--chunk-rows", type=int, default=32_768,
                   help="weights per store chunk = per Dask task (default 32768: 13 MB at K=100).")  # fmt: skip
    p.add_argument("--chunk-size", type=int, default=4096, help="score()'s chunk_size.")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="2GB", help="per worker (default 2GB).")
    p.add_argument("--scheduler", help="use a running cluster at this address instead.")
    p.add_argument("--threads", type=int, default=2, help="in-process anchor's threads.")
    p.add_argument("--sample-blocks", type=int, default=2, help="blocks re-scored in-process.")
    p.add_argument("--malloc", choices=("legc", "dask"), default="legc",
                   help="worker malloc settings: keras_legc's WORKER_ENVIRON (default) or Dask's "
                   "own (MALLOC_TRIM_THRESHOLD_=65536), to measure the difference.")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, help="store + per-block results (resumable); "
                   "default: a folder under the temp dir named by the sizes.")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep --work-dir after a complete run.")
    p.add_argument("--json", type=Path, help="write the report here.")
    p.add_argument("--force", action="store_true", help="overwrite --json.")
    args = p.parse_args(argv)
    for name in ("weights", "windows", "chunk_rows", "chunk_size", "workers", "threads",
                 "sample_blocks"):  # fmt: skip
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.windows < 5:
        p.error("--windows must be >= 5 (a Granger test at lag 1 needs 5 points)")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.json and args.json.exists() and not args.force:
        print(f"scale_out: error: {args.json} already exists. Fix: choose another --json, or "
              "pass --force.", file=sys.stderr)  # fmt: skip
        return 2
    work = args.work_dir or Path(tempfile.gettempdir()) / (
        f"legc-scale-out-{args.weights}x{args.windows}-c{args.chunk_rows}-s{args.seed}")  # fmt: skip
    need = args.weights * args.windows * 4 * 1.05
    if not (work / "history.npz").exists() and shutil.disk_usage(work.parent if work.parent.exists() else "/").free < need:  # fmt: skip
        print(f"scale_out: error: the store needs ~{need / 2**30:.1f} GiB free under {work}. "
              "Fix: pass --work-dir on a bigger disk, or lower --weights.", file=sys.stderr)  # fmt: skip
        return 2
    run_dir, results = work / "run", work / "results"
    results.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    import keras_legc as kl
    from keras_legc.core.scoring import ScoreSpec

    log(f"history: {args.weights:,} weights x {args.windows} windows "
        f"({args.weights * args.windows * 4 / 1e9:.2f} GB float32) in {run_dir}")  # fmt: skip
    generate_s = build_history(run_dir, args, log)
    history = kl.History.load(run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = ScoreSpec.resolve(history, "auto", "ssr_chi2", None, False, "bic", args.chunk_size)
    client, cluster = start_cluster(args)
    try:
        cluster_part = score_on_cluster(client, history, spec, results, log)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    log(f"checking {args.sample_blocks} blocks against in-process scoring")
    sample = check_sample(history, spec, results, args, log)
    rate = cluster_part["weight_windows_per_s"]
    full = FULL_WEIGHTS * args.windows
    report = {
        "command": tool_command("scale_out", argv),
        "date": today(utc=True),
        "machine": machine(),
        "versions": versions(
            ["keras-legc", "numpy", "dask", "distributed", "zarr"], skip_missing=True
        ),  # fmt: skip
        "workload": {
            "weights": args.weights,
            "windows": args.windows,
            "le_bytes": args.weights * args.windows * 4,
            "chunk_rows": args.chunk_rows,
            "chunk_size": args.chunk_size,
            "max_lag": spec.max_lag,
            "test": spec.test,
            "criterion": spec.criterion,
            "seed": args.seed,
            "worker_malloc": args.malloc,
            "cluster": args.scheduler
            or (
                f"LocalCluster({args.workers} workers x 1 thread, "
                f"processes, memory_limit={args.memory_limit})"
            ),
        },  # fmt: skip
        "generate_s_now": generate_s,
        "cluster": cluster_part,
        "equality": sample,
        "cluster_vs_in_process": (
            rate / sample["in_process_weight_windows_per_s"] if rate else None
        ),
        "estimate_full_20M": {
            "score_s": full / rate if rate else None,
            "generate_s": (generate_s * FULL_WEIGHTS / args.weights) if generate_s else None,
        },
        "scores": summarise(history, results),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        atomic_write_json(args.json, report, overwrite=args.force)
    complete = len(list(results.glob("block_*.npz"))) == cluster_part["blocks_total"]
    if complete and not args.keep and not args.work_dir:
        shutil.rmtree(work)
    return 0 if sample["bit_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
