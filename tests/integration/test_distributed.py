"""Issue 17: scoring on a real Dask cluster (a LocalCluster of 2 worker processes): blocks of
weights as tasks, bit-identical to in-process scoring; ``legc score --scheduler``; clear errors
for an unreachable scheduler and for dask not installed."""

import sys
import time
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import keras_legc as kl
from keras_legc import InvalidArgumentError, LegcWarning
from keras_legc.core.distributed import worker_environ
from keras_legc.errors import MissingDependencyError

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

ARRAYS = ("pvalues", "degenerate", "static", "f_pvalue", "partial_r2", "selected_lag")
UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dask's own start-up chatter
        with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
            cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            )
        with distributed.Client(cluster) as c:
            yield c
        cluster.close()


def history_of(rng, n=(90, 20), k=28):
    shapes = {"a": n, "b": (n[1], 3)}
    total = n[0] * n[1] + n[1] * 3
    le = rng.normal(size=(total, k)).astype(np.float32)
    le[4] = 0.0
    target = rng.normal(size=k)
    target[1:] += 1.5 * le[2, :-1]
    return kl.History(
        layers=["a", "b"], shapes=shapes, le=le, target=target, window=20, overlap=0.1,
        every=1, n_snapshots=20 + 18 * (k - 1),
        final_kernels={name: rng.normal(size=s) for name, s in shapes.items()},
    )  # fmt: skip


def stored(history, run_dir, chunk_rows):
    history.save(run_dir, le_store=True, store_chunks=(chunk_rows, 32))
    return kl.History.load(run_dir)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        return fn(*args, **kwargs)


def assert_identical(got, want):
    for name in ARRAYS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
    for a, b in [(quiet(got.mask, 0.05), quiet(want.mask, 0.05)),
                 (quiet(got.mask, sparsity=0.8), quiet(want.mask, sparsity=0.8))]:  # fmt: skip
        assert all(np.array_equal(a[n], b[n]) for n in want.layers)


@pytest.mark.parametrize("options", [{}, {"lag": 3, "fdr": True}, {"difference": True}])
def test_cluster_scores_are_bit_identical(client, rng, tmp_path, options):
    history = history_of(rng)
    want = quiet(kl.score, history, **options)
    on_disk = stored(history, tmp_path, chunk_rows=256)  # 8 blocks read by the workers
    for source in (on_disk, history):  # in memory: scattered blocks of chunk_size weights
        got = quiet(kl.score, source, client=client, chunk_size=300, **options)
        assert_identical(got, want)
        if options.get("fdr"):
            assert np.array_equal(got.qvalues, want.qvalues, equal_nan=True)
    # both workers took part
    assert len(client.scheduler_info()["workers"]) == 2


def test_cluster_scores_selected_weights(client, rng, tmp_path):
    history = history_of(rng)
    selected = rng.random(history.n_weights) < 0.3
    selected[:400] = False  # a whole block with nothing to test
    want = quiet(kl.score, history, weights=selected)
    got = quiet(kl.score, stored(history, tmp_path, 200), weights=selected, client=client,
                chunk_size=200, progress=True)  # fmt: skip
    assert_identical(got, want)


def test_cluster_progress_counts_weights(client, rng, capsys):
    history = history_of(rng)
    quiet(kl.score, history, client=client, chunk_size=500, progress=True)
    err = capsys.readouterr().err
    assert f"{history.n_weights}/{history.n_weights}" in err and "ETA" in err


def test_a_worker_error_reaches_the_caller(client, rng, tmp_path):
    history = history_of(rng)
    history.le[1500, 7] = np.inf  # only a worker's block sees it (resolving reads weight 0)
    with pytest.raises(kl.NonFiniteError, match="diverged"):
        quiet(kl.score, stored(history, tmp_path, 256), client=client, chunk_size=256)


def test_cli_score_on_a_scheduler_by_address(client, rng, tmp_path):
    from keras_legc.cli import main

    history = history_of(rng)
    runs = {name: tmp_path / name for name in ("here", "cluster")}
    for run in runs.values():
        stored(history, run, 256)
    address = client.scheduler.address
    assert address.startswith("tcp://")
    runner = CliRunner()
    for name, extra in (("here", []), ("cluster", ["--scheduler", address])):
        res = runner.invoke(main, ["score", str(runs[name]), "--sparsity", "0.8", *extra])
        assert res.exit_code == 0, res.output
    here = kl.Scores.load(runs["here"] / "scores.npz")
    there = kl.Scores.load(runs["cluster"] / "scores.npz")
    for name in ARRAYS:
        assert np.array_equal(getattr(here, name), getattr(there, name), equal_nan=True), name
    a, b = kl.Mask.load(runs["here"] / "mask.npz"), kl.Mask.load(runs["cluster"] / "mask.npz")
    assert all(np.array_equal(a[n], b[n]) for n in history.layers)


def test_unreachable_scheduler_is_a_clear_error(rng, tmp_path):
    from keras_legc.cli import main
    from keras_legc.core.distributed import connect

    t0 = time.perf_counter()
    with pytest.raises(InvalidArgumentError, match=r"127\.0\.0\.1:9.*within 1 s.*Fix:"):
        connect(UNREACHABLE, timeout=1)
    assert time.perf_counter() - t0 < 30
    history_of(rng).save(tmp_path)
    res = CliRunner().invoke(
        main, ["score", str(tmp_path), "--scheduler", UNREACHABLE, "--scheduler-timeout", "1"]
    )
    assert res.exit_code != 0
    assert "127.0.0.1:9" in res.output and "Fix:" in res.output and "Traceback" not in res.output
    with pytest.raises(InvalidArgumentError, match="Client or a scheduler address"):
        kl.score(history_of(rng), client=42)


def test_dask_not_installed_is_a_clear_error(rng, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'keras-legc\[distributed\]'"):
        kl.score(history_of(rng), client="tcp://127.0.0.1:8786")


def test_workers_with_dasks_default_malloc_are_warned_about(rng):
    # Dask's nanny default (MALLOC_TRIM_THRESHOLD_=65536) makes scoring several times slower.
    # (Set explicitly: a nanny copies its pre-spawn settings into this process's environment.)
    assert dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"] < 2**20
    history = history_of(rng, n=(10, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
            env={"MALLOC_TRIM_THRESHOLD_": "65536"},
        )  # fmt: skip
    with cluster, distributed.Client(cluster) as slow:
        with pytest.warns(LegcWarning, match="MALLOC_TRIM_THRESHOLD_.*WORKER_ENVIRON"):
            got = kl.score(history, client=slow, max_lag=2)
    assert np.array_equal(got.pvalues, kl.score(history, max_lag=2).pvalues, equal_nan=True)
