"""keras_legc.core.distributed on a real in-process Dask cluster (issue 19: tests that bite).

The integration tests (tests/integration/test_distributed.py) run worker processes; these run the
same code on an in-process ``LocalCluster`` (workers are threads of this process, ~0.1 s to
start), so the mutation run (tools/mutation.py, tests/unit only) reaches every line of the module.
Every result is compared with :func:`score_block` run here, on the same rows.
"""

import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import InvalidArgumentError, LegcWarning
from keras_legc.core import distributed as dist
from keras_legc.core.scoring import ScoreSpec, score_block
from keras_legc.errors import MissingDependencyError

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there
CHUNK = 16  # weights per in-memory block
STORE_ROWS = 10  # weights per chunk of the LE store: stored blocks are 20 rows (2 chunks)


@pytest.fixture(scope="module")
def cluster():
    # tools/mutation.py runs each mutant's tests in a child forked from a process that already
    # ran a Dask client: the child inherits Dask's offload executor without its thread, and every
    # task would wait for it forever. A fresh executor makes the cluster work in such a child too.
    # (restored afterwards: the rest of the session keeps Dask's own executor)
    inherited = distributed.utils._offload_executor
    fresh = ThreadPoolExecutor(1, thread_name_prefix="Dask-Offload")
    distributed.utils._offload_executor = fresh
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dask's start-up chatter
            cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
            )
        yield cluster
        cluster.close()
    finally:
        distributed.utils._offload_executor = inherited
        fresh.shutdown(wait=False)


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture
def fast_workers(monkeypatch):
    """Workers (threads of this process) that read no slow malloc setting."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)


def history_of(rng, k=24):
    shapes = {"a": (6, 8), "b": (8, 2)}  # 64 weights: 4 in-memory blocks, 4 stored blocks
    n = 48 + 16
    le = rng.normal(size=(n, k)).astype(np.float32)
    le[5] = 0.0  # a constant (static) weight
    target = rng.normal(size=k)
    target[1:] += 1.2 * le[2, :-1]  # one weight that Granger-causes the target
    return kl.History(layers=["a", "b"], shapes=shapes, le=le, target=target, window=20,
                      overlap=0.1, every=1, n_snapshots=20 + 18 * (k - 1))  # fmt: skip


def stored(history, run_dir):
    history.save(run_dir, le_store=True, store_chunks=(STORE_ROWS, 8))
    loaded = kl.History.load(run_dir)
    assert loaded.stored and loaded.le.chunk_rows == STORE_ROWS
    return loaded


def spec_of(history):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        return ScoreSpec.resolve(history, 3, "ssr_chi2", None, False, "bic", CHUNK)


def assert_same(got: dict, want: dict):
    assert sorted(got) == sorted(want)
    for name, values in want.items():
        assert got[name].dtype == values.dtype, name
        assert np.array_equal(got[name], values, equal_nan=True), name


def default_client_or_none():
    try:
        return distributed.default_client()
    except ValueError:
        return None


# -- require_distributed, connect, worker_environ --------------------------------------------------
def test_require_distributed_returns_the_module_or_names_the_extra(monkeypatch):
    assert dist.require_distributed() is distributed
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError) as info:
        dist.require_distributed()
    message = str(info.value)
    assert "dask.distributed" in message and "keras-legc[distributed]" in message
    assert "Fix: pip install" in message and "in-process" in message
    assert "). Fix: pip install 'keras-legc[distributed]', or score in-process" in message
    with pytest.raises(MissingDependencyError, match="keras-legc.distributed"):
        dist.worker_environ()


def test_connect_passes_a_client_through(client):
    got, owned = dist.connect(client)
    assert got is client and owned is False


@pytest.mark.parametrize("bad", [42, None, b"tcp://127.0.0.1:8786"])
def test_connect_refuses_what_is_neither_a_client_nor_an_address(bad):
    with pytest.raises(InvalidArgumentError) as info:
        dist.connect(bad)
    message = str(info.value)
    assert type(bad).__name__ in message
    assert "Client or a scheduler address string" in message and "Fix: pass" in message
    assert "Fix: pass e.g. Client(LocalCluster()) or 'tcp://host:8786'." in message


def test_connect_by_address_opens_a_client_the_caller_owns(cluster):
    got, owned = dist.connect(cluster.scheduler_address, timeout=5)
    try:
        assert owned is True and isinstance(got, distributed.Client)
        assert got.scheduler.address == cluster.scheduler_address
        assert got.status == "running"
        assert default_client_or_none() is not got  # never made the session's default client
    finally:
        got.close()


@pytest.mark.parametrize(
    "address, kind", [(UNREACHABLE, "OSError"), ("nonsense://127.0.0.1:9", "ValueError")]
)
def test_an_address_nobody_answers_is_a_clear_error_in_time(address, kind):
    t0 = time.perf_counter()
    with pytest.raises(InvalidArgumentError) as info:
        dist.connect(address, timeout=0.5)
    assert time.perf_counter() - t0 < 5  # the timeout is honoured (Dask's default is 30 s)
    message = str(info.value)
    assert repr(address) in message and "within 0.5 s" in message and f"({kind}:" in message
    assert "Fix: check the address" in message and "dask scheduler" in message
    assert "`dask worker ADDRESS` on each machine), or score in-process without --scheduler." in (
        message
    )


def test_worker_environ_adds_the_malloc_settings_to_dask_config(monkeypatch):
    key = "distributed.nanny.pre-spawn-environ"
    with dask.config.set({key: {"FOO": "1", "MALLOC_TRIM_THRESHOLD_": 65536}}):
        got = dist.worker_environ()
    # the config's own entries stay, the malloc ones are replaced: 1 << 28 = 256 MiB each
    assert got == {"FOO": "1", "MALLOC_TRIM_THRESHOLD_": 2**28, "MALLOC_MMAP_THRESHOLD_": 2**28}
    # a Dask config without the key (dask.config.get reads this dict)
    monkeypatch.delitem(dask.config.config["distributed"]["nanny"], "pre-spawn-environ")
    assert dist.worker_environ() == {
        "MALLOC_TRIM_THRESHOLD_": 2**28,
        "MALLOC_MMAP_THRESHOLD_": 2**28,
    }


# -- the slow-worker warning -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, want", [(None, None), ("65536", 65536), ("not a number", None), ("", None)]
)
def test_trim_threshold_reads_the_environment(monkeypatch, value, want):
    if value is None:
        monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    else:
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", value)
    assert dist._trim_threshold() == want


def slow_warnings(client) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist._warn_slow_workers(client)
    return [str(w.message) for w in caught if issubclass(w.category, LegcWarning)]


@pytest.mark.parametrize(
    "value, warns", [("65536", True), (str(2**20 - 1), True), (str(2**20), False),
                     ("garbage", False), (None, False)],
)  # fmt: skip
def test_slow_workers_warn_once_per_client_below_one_mib(cluster, monkeypatch, value, warns):
    if value is None:
        monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    else:
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", value)  # what each worker thread reads
    with distributed.Client(cluster, set_as_default=False) as fresh:
        first = slow_warnings(fresh)
        assert len(first) == int(warns)
        if warns:  # both workers counted; the message says what to do
            assert first[0].startswith("2 Dask worker(s) run with MALLOC_TRIM_THRESHOLD_ below")
            assert "WORKER_ENVIRON" in first[0] and "docs/scale-out.md" in first[0]
            # (the sentences a user acts on: what is slow and why, and how to fix it)
            assert (
                "(Dask's default, 65536), which makes LEGC scoring several times slower"
                in (first[0])
            )
            assert (
                "(kernel time). Fix: start the workers with keras_legc.core.distributed."
                in (first[0])
            )
            assert first[0].endswith(
                "environment (dask config distributed.nanny.pre-spawn-environ; see "
                "docs/scale-out.md)."
            )
        assert slow_warnings(fresh) == []  # checked once per client
    with distributed.Client(cluster, set_as_default=False) as other:
        assert len(slow_warnings(other)) == int(warns)  # another client checks again


# -- scoring blocks on the cluster -----------------------------------------------------------------
def reference_blocks(history, spec, step, selected=None) -> dict[int, dict]:
    le = np.asarray(history.le)
    return {
        start: score_block(le[start : start + step], spec,
                           None if selected is None else selected[start : start + step])
        for start in range(0, history.n_weights, step)
    }  # fmt: skip


def test_a_task_scores_on_one_thread(rng, monkeypatch):
    # the cluster's threads_per_worker sets the parallelism: a task that used every core of its
    # worker would oversubscribe the machine (the results do not depend on threads)
    history = history_of(rng)
    spec = spec_of(history)
    used = []

    def spy(le, spec, selected=None, threads=1, progress=None):  # score_block's signature
        used.append(threads)
        return score_block(le, spec, selected, threads=1)

    monkeypatch.setattr(dist, "score_block", spy)
    dist._score_task(history.le[:8], 0, 8, spec, None)
    assert used == [1]


def test_score_task_reads_a_stored_block_or_takes_the_rows(rng, tmp_path):
    history = history_of(rng)
    spec = spec_of(history)
    on_disk = stored(history, tmp_path)
    want = score_block(history.le[7:29], spec)
    assert_same(dist._score_task(on_disk.le, 7, 29, spec, None), want)
    assert_same(dist._score_task(history.le[7:29], 7, 29, spec, None), want)


@pytest.mark.parametrize("where", ["memory", "store"])
def test_blocks_on_the_cluster_equal_blocks_scored_here(client, rng, tmp_path, where, fast_workers):
    history = history_of(rng)
    spec = spec_of(history)
    source = history if where == "memory" else stored(history, tmp_path)
    step = CHUNK if where == "memory" else 2 * STORE_ROWS  # whole chunks of the store
    want = reference_blocks(history, spec, step)
    got = dict(dist.iter_blocks_on_cluster(client, source, spec))
    assert sorted(got) == sorted(want) == list(range(0, 64, step))
    for start, arrays in want.items():
        assert_same(got[start], arrays)
    # a resumable caller asks for some blocks only
    some = dict(dist.iter_blocks_on_cluster(client, source, spec, starts=[step, 3 * step]))
    assert sorted(some) == [step, 3 * step]
    for start in some:
        assert_same(some[start], want[start])


@pytest.mark.parametrize("where", ["memory", "store"])
def test_selected_blocks_on_the_cluster(client, rng, tmp_path, where, fast_workers):
    history = history_of(rng)
    spec = spec_of(history)
    selected = rng.random(history.n_weights) < 0.4
    selected[:CHUNK] = False  # a block with nothing to test
    selected[2] = True
    source = history if where == "memory" else stored(history, tmp_path)
    step = CHUNK if where == "memory" else 2 * STORE_ROWS
    want = reference_blocks(history, spec, step, selected)
    got = dict(dist.iter_blocks_on_cluster(client, source, spec, selected))
    assert sorted(got) == sorted(want)
    for start, arrays in want.items():
        assert_same(got[start], arrays)


@pytest.mark.parametrize("where", ["memory", "store"])
@pytest.mark.parametrize("select", [False, True])
def test_score_on_cluster_is_bit_identical_and_counts_progress(
    client, rng, tmp_path, where, select, fast_workers
):
    history = history_of(rng)
    spec = spec_of(history)
    selected = (rng.random(history.n_weights) < 0.5) if select else None
    source = history if where == "memory" else stored(history, tmp_path)
    done = []
    got = dist.score_on_cluster(client, source, spec, selected, progress=done.append)
    assert_same(got, score_block(np.asarray(history.le), spec, selected))
    # one progress call per block, with the weights it tested
    step = CHUNK if where == "memory" else 2 * STORE_ROWS
    blocks = [slice(s, min(s + step, 64)) for s in range(0, 64, step)]  # the last one is short
    per_block = [s.stop - s.start if selected is None else int(selected[s].sum()) for s in blocks]
    assert sorted(done) == sorted(per_block)
    assert sum(done) == (history.n_weights if selected is None else int(selected.sum()))
    assert client.status == "running"  # the caller's client is left open


def test_score_on_cluster_by_address_closes_its_client(cluster, rng, fast_workers):
    history = history_of(rng)
    spec = spec_of(history)
    before = len(cluster.scheduler.clients)
    got = dist.score_on_cluster(cluster.scheduler_address, history, spec)
    assert_same(got, score_block(history.le, spec))
    deadline = time.monotonic() + 5
    while len(cluster.scheduler.clients) != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(cluster.scheduler.clients) == before  # the client it opened is closed


def test_score_on_cluster_warns_about_slow_workers(cluster, rng, monkeypatch):
    history = history_of(rng)
    spec = spec_of(history)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with distributed.Client(cluster, set_as_default=False) as fresh:
        with pytest.warns(LegcWarning, match=r"2 Dask worker\(s\) run with MALLOC_TRIM"):
            got = dist.score_on_cluster(fresh, history, spec)
    assert_same(got, score_block(history.le, spec))


@pytest.mark.parametrize("select", [False, True])
def test_score_with_a_client_equals_scoring_here_and_shows_its_progress(
    client, rng, capsys, select, fast_workers
):
    history = history_of(rng)
    weights = (rng.random(history.n_weights) < 0.5) if select else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)  # the short series cap max_lag
        here = kl.score(history, 3, weights=weights, chunk_size=CHUNK, progress=False)
        there = kl.score(history, 3, weights=weights, chunk_size=CHUNK, progress=True,
                         client=client)  # fmt: skip
    n = history.n_weights if weights is None else int(weights.sum())
    assert (
        capsys.readouterr()
        .err.rstrip()
        .split("\r")[-1]
        .startswith(f"LEGC scoring [{'#' * 30}] {n}/{n} ")
    )  # the bar counted every weight the cluster tested
    for name in ("pvalues", "degenerate", "static", "selected_lag", "f_pvalue", "partial_r2"):
        assert np.array_equal(getattr(there, name), getattr(here, name), equal_nan=True), name
