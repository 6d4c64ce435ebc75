"""Run independent blocks of numpy work on a few threads (numpy releases the GIL in its loops).

Each block writes only its own slice of a preallocated output, so results never depend on the
number of threads or on the order in which blocks finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_legc.errors import InvalidArgumentError


def default_threads() -> int:
    """The usable CPU cores of this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def check_positive_int(name: str, value) -> None:
    """Raise :class:`InvalidArgumentError` unless ``value`` is an integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(
            f"{name} must be a positive integer, got {value!r}. Fix: pass a whole number >= 1 "
            f"(e.g. {name}={_EXAMPLES.get(name, 1)})."
        )


_EXAMPLES = {"window": 50, "eval_batch_size": 1024, "validation_rows": 10_000, "chunk_size": 4096}


def check_threads(threads: int | None) -> int:
    """``threads`` validated, None meaning :func:`default_threads`."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InvalidArgumentError(
            f"threads must be a positive integer or None, got {threads!r}. Fix: leave it None "
            "(every usable core) or pass e.g. 1."
        )
    return int(threads)


def run_blocks(
    work: Callable[[int], int | None],
    starts: Iterable[int],
    threads: int,
    on_done: Callable[[int | None], None] | None = None,
) -> None:
    """Call ``work(start)`` for every start, on up to ``threads`` threads, in order of completion
    reporting ``on_done(result)`` from the calling thread. A worker's exception is re-raised here.
    """
    starts = list(starts)
    if threads == 1 or len(starts) < 2:
        for start in starts:
            result = work(start)
            if on_done is not None:
                on_done(result)
        return
    with ThreadPoolExecutor(max_workers=min(threads, len(starts))) as pool:
        for result in pool.map(work, starts):
            if on_done is not None:
                on_done(result)
