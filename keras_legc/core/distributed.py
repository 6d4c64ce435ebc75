"""Scoring on a Dask cluster: blocks of weights as tasks, results bit-identical to in-process.

``keras_legc.score(history, client=...)`` comes here. Each task scores one block of weights with
:func:`keras_legc.core.scoring.score_block`, the code in-process scoring runs, so the results are
the same bit for bit. A history whose LE series are on disk (an LE store) travels as its store
path and each worker reads its own block (the workers must see that path: one machine, or a
shared file system); an in-memory history is scattered to the workers one block at a time.
Dask is imported here only, and only when a client is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from keras_legc.core.scoring import BlockCollector, ScoreSpec, block_rows, score_block
from keras_legc.errors import InvalidArgumentError, LegcWarning, MissingDependencyError

#: seconds to wait for a scheduler given by address before giving up
CONNECT_TIMEOUT_S = 10.0
#: glibc malloc settings for the worker processes that score. Dask's nanny starts workers with
#: MALLOC_TRIM_THRESHOLD_=65536, which switches off glibc's adaptive mmap threshold: every
#: temporary of a Granger chunk (megabytes) is then a fresh mmap, zeroed by the kernel, and
#: scoring runs several times slower, mostly in kernel time (docs/scale-out.md). These restore
#: heap reuse for blocks of that size.
WORKER_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": 1 << 28, "MALLOC_MMAP_THRESHOLD_": 1 << 28}
_SLOW_TRIM = 1 << 20  # a worker trimming below this is the slow setting


def require_distributed():
    """The ``distributed`` module, or a :class:`MissingDependencyError` naming the extra.

    Example:
        >>> distributed = require_distributed()
    """
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            f"scoring on a Dask cluster needs dask.distributed, which is not installed ({exc}). "
            "Fix: pip install 'keras-legc[distributed]', or score in-process (no client)."
        ) from exc
    return distributed


def connect(client, timeout: float = CONNECT_TIMEOUT_S):
    """``(client, owned)``: a Dask ``Client`` for ``client`` (a Client, or a scheduler address)
    and whether this call opened it (then the caller closes it).

    Args:
        client: a ``distributed.Client``, or an address such as ``"tcp://10.0.0.5:8786"``.
        timeout: seconds to wait for the scheduler at an address.

    Raises:
        InvalidArgumentError: the scheduler did not answer within ``timeout`` (names the address).
        MissingDependencyError: dask.distributed is not installed.

    Example:
        >>> client, owned = connect("tcp://127.0.0.1:8786")
    """
    distributed = require_distributed()
    if isinstance(client, distributed.Client):
        return client, False
    if not isinstance(client, str):
        raise InvalidArgumentError(
            f"client must be a dask.distributed.Client or a scheduler address string, got "
            f"{type(client).__name__}. Fix: pass e.g. Client(LocalCluster()) or "
            "'tcp://host:8786'."
        )
    try:
        return distributed.Client(client, timeout=timeout, set_as_default=False), True
    except (OSError, TimeoutError, ValueError) as exc:
        raise InvalidArgumentError(
            f"could not reach a Dask scheduler at {client!r} within {timeout:g} s "
            f"({type(exc).__name__}: {exc}). Fix: check the address and port, start the "
            "scheduler (`dask scheduler`, then `dask worker ADDRESS` on each machine), or score "
            "in-process without --scheduler."
        ) from None


def worker_environ() -> dict:
    """Dask's ``distributed.nanny.pre-spawn-environ`` with :data:`WORKER_ENVIRON` applied: pass it
    to ``dask.config.set`` before starting a cluster whose workers score.

    Example:
        >>> import dask
        >>> with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
        ...     cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    """
    import dask

    require_distributed()
    return {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENVIRON}


def _trim_threshold() -> int | None:
    """On a worker: its MALLOC_TRIM_THRESHOLD_, None when unset (glibc's adaptive default)."""
    import os

    value = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _warn_slow_workers(client) -> None:
    """Warn (once per client) when workers run with Dask's default malloc trim threshold."""
    if getattr(client, "_legc_checked_malloc", False):
        return
    client._legc_checked_malloc = True
    slow = [w for w, t in client.run(_trim_threshold).items() if t is not None and t < _SLOW_TRIM]
    if slow:
        warnings.warn(
            f"{len(slow)} Dask worker(s) run with MALLOC_TRIM_THRESHOLD_ below 1 MiB (Dask's "
            "default, 65536), which makes LEGC scoring several times slower (kernel time). "
            "Fix: start the workers with keras_legc.core.distributed.WORKER_ENVIRON in their "
            "environment (dask config distributed.nanny.pre-spawn-environ; see "
            "docs/scale-out.md).",
            LegcWarning,
            stacklevel=4,
        )


def _score_task(source, start: int, stop: int, spec: ScoreSpec, selected) -> dict:
    """One Dask task: read (or receive) a block of LE rows and score it, on one thread."""
    le = source.rows(start, stop) if hasattr(source, "rows") else np.asarray(source)
    return score_block(le, spec, selected, threads=1)


def iter_blocks_on_cluster(
    client,
    history,
    spec: ScoreSpec,
    selected: np.ndarray | None = None,
    starts: Iterable[int] | None = None,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Score blocks of weights on the cluster; yield ``(start, arrays)`` as each finishes.

    Args:
        client: a Dask ``Client`` (see :func:`connect`).
        history: a :class:`~keras_legc.History`, stored (workers read its store) or in memory
            (each block is scattered).
        spec: from :meth:`ScoreSpec.resolve`.
        selected: bool ``(n_weights,)`` weights to test, or None for all.
        starts: first weight of the blocks to score (multiples of :func:`block_rows`); None: all.
            A resumable caller passes the blocks it has not saved yet.

    Example:
        >>> for start, arrays in iter_blocks_on_cluster(client, history, spec):
        ...     save(start, arrays)
    """
    distributed = require_distributed()
    n, step = history.n_weights, block_rows(history, spec.chunk_size)
    starts = list(range(0, n, step) if starts is None else starts)
    futures = {}
    for start in starts:
        stop = min(start + step, n)
        if history.stored:
            source = history.le  # pickles as its store path: the worker reads the block
        else:
            source = client.scatter(np.ascontiguousarray(history.le[start:stop]), hash=False)
        sel = None if selected is None else selected[start:stop]
        future = client.submit(_score_task, source, start, stop, spec, sel, pure=False)
        futures[future] = start
    # the client's own loop: as_completed would otherwise look for a default client, and there is
    # none when connect() opened this one (set_as_default=False), e.g. `legc score --scheduler`
    for future in distributed.as_completed(futures, loop=client.loop):
        start = futures.pop(future)
        yield start, future.result()  # re-raises a task's error here
        future.release()


def score_on_cluster(
    client,
    history,
    spec: ScoreSpec,
    selected: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """All blocks of ``history`` scored on the cluster and put together (what ``score`` uses).

    Example:
        >>> arrays = score_on_cluster(client, history, spec)
    """
    client, owned = connect(client)
    try:
        _warn_slow_workers(client)
        out = BlockCollector(history.n_weights)
        for start, arrays in iter_blocks_on_cluster(client, history, spec, selected):
            out.put(start, arrays)
            if progress is not None:
                done = arrays["pvalues"].size
                if selected is not None:
                    done = int(selected[start : start + done].sum())
                progress(done)
        return out.arrays
    finally:
        if owned:
            client.close()


__all__ = [
    "WORKER_ENVIRON",
    "worker_environ",
    "connect",
    "iter_blocks_on_cluster",
    "score_on_cluster",
    "require_distributed",
]
