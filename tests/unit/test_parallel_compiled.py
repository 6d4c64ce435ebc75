"""keras_legc.core._parallel (argument checks, blocks on threads) and keras_legc.core._compiled (the
lazy numba kernels and their fallbacks) (issue 19: tests that bite)."""

import importlib
import os
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from keras_legc import InvalidArgumentError
from keras_legc.core import _compiled, _parallel


# -- _parallel ---------------------------------------------------------------------------------------
def test_default_threads_are_the_usable_cores():
    assert _parallel.default_threads() == len(os.sched_getaffinity(0)) >= 1


def test_default_threads_on_one_core_and_without_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})  # pinned to one core
    assert _parallel.default_threads() == 1
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows: the CPU count instead
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert _parallel.default_threads() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert _parallel.default_threads() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undeterminable": one thread
    assert _parallel.default_threads() == 1


@pytest.mark.parametrize("good", [1, 7, np.int64(3), np.int32(1)])
def test_positive_integers_pass(good):
    assert _parallel.check_positive_int("window", good) is None


@pytest.mark.parametrize("bad", [0, -2, True, False, 1.0, "3", None, np.float64(2.0)])
@pytest.mark.parametrize("name, example", [("window", 50), ("chunk_size", 4096), ("odd", 1)])
def test_other_values_are_refused_with_an_example(bad, name, example):
    with pytest.raises(InvalidArgumentError) as info:
        _parallel.check_positive_int(name, bad)
    message = str(info.value)
    assert f"{name} must be a positive integer, got {bad!r}." in message
    assert f"Fix: pass a whole number >= 1 (e.g. {name}={example})." in message


def test_threads_none_means_every_usable_core():
    assert _parallel.check_threads(None) == _parallel.default_threads()


@pytest.mark.parametrize("good", [1, 2, np.int64(5)])
def test_threads_are_returned_as_int(good):
    got = _parallel.check_threads(good)
    assert got == int(good) and type(got) is int


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "4", np.float32(1.0)])
def test_bad_threads_are_refused(bad):
    with pytest.raises(InvalidArgumentError) as info:
        _parallel.check_threads(bad)
    message = str(info.value)
    assert f"threads must be a positive integer or None, got {bad!r}." in message
    assert message.endswith("Fix: leave it None (every usable core) or pass e.g. 1.")


@pytest.mark.parametrize("threads", [1, 2, 5])
@pytest.mark.parametrize("n", [0, 1, 2, 9])
def test_run_blocks_does_every_block_once_and_reports_in_order(threads, n):
    starts = list(range(0, 4 * n, 4))
    seen, done = [], []
    lock = threading.Lock()

    def work(start):
        with lock:
            seen.append(start)
        return start * 10

    _parallel.run_blocks(work, starts, threads, on_done=done.append)
    assert sorted(seen) == starts
    assert done == [s * 10 for s in starts]  # on_done gets each result, in the order of starts
    seen.clear()
    _parallel.run_blocks(work, iter(starts), threads)  # any iterable; no on_done
    assert sorted(seen) == starts


@pytest.mark.parametrize("threads, n", [(1, 3), (4, 1)])
def test_one_thread_or_one_block_runs_in_the_calling_thread(threads, n):
    idents = []
    _parallel.run_blocks(lambda s: idents.append(threading.get_ident()), range(n), threads)
    assert idents == [threading.get_ident()] * n


@pytest.mark.parametrize("n", [2, 3])
def test_blocks_run_concurrently_on_the_threads(n):
    barrier = threading.Barrier(n, timeout=10)  # broken unless n blocks run at the same time
    idents = set()

    def work(start):
        idents.add(threading.get_ident())
        barrier.wait()

    _parallel.run_blocks(work, range(n), threads=n)
    assert len(idents) == n and threading.get_ident() not in idents


def test_run_blocks_never_uses_more_threads_than_asked():
    idents = set()
    lock = threading.Lock()

    def work(start):
        with lock:
            idents.add(threading.get_ident())
        time.sleep(0.005)  # busy workers: a pool allowed more threads would start them

    _parallel.run_blocks(work, range(24), threads=2)
    assert len(idents) <= 2


@pytest.mark.parametrize("threads", [1, 3])
def test_a_blocks_error_reaches_the_caller(threads):
    def work(start):
        if start == 2:
            raise ValueError("block 2 failed")
        return start

    with pytest.raises(ValueError, match="block 2 failed"):
        _parallel.run_blocks(work, range(5), threads)


# -- _compiled ---------------------------------------------------------------------------------------
@pytest.fixture
def fresh(monkeypatch):
    """_compiled as in a new process: nothing loaded, nothing warned, the cache on."""
    monkeypatch.setattr(_compiled, "_loaded", {})
    monkeypatch.setattr(_compiled, "_warned", False)
    monkeypatch.setattr(_compiled, "CACHE", True)
    return _compiled


def test_a_kernel_module_is_imported_once(fresh):
    pytest.importorskip("numba")
    first = fresh.compiled("_lyapunov_kernel")
    assert first is sys.modules["keras_legc.core._lyapunov_kernel"]
    assert fresh.compiled("_lyapunov_kernel") is first
    assert fresh._loaded == {"_lyapunov_kernel": first}


def test_with_numba_lyapunov_and_granger_use_their_kernels_without_a_warning(fresh):
    pytest.importorskip("numba")
    from keras_legc.core.granger import granger_test
    from keras_legc.core.lyapunov import lyapunov_of_windows

    rng = np.random.default_rng(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the numpy fallback would warn once
        lyapunov_of_windows(rng.normal(size=(3, 20)), threads=1)
        granger_test(rng.normal(size=(2, 30)), rng.normal(size=30), 2)
    assert fresh._loaded == {
        "_lyapunov_kernel": sys.modules["keras_legc.core._lyapunov_kernel"],
        "_granger_kernel": sys.modules["keras_legc.core._granger_kernel"],
    }


def test_without_numba_the_kernels_are_none_after_one_warning(fresh, monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # as if numba were not installed
    for name in ("_lyapunov_kernel", "_granger_kernel"):
        monkeypatch.delitem(sys.modules, f"keras_legc.core.{name}", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fresh.compiled("_lyapunov_kernel") is None
        assert fresh.compiled("_granger_kernel") is None
        assert fresh.compiled("_lyapunov_kernel") is None
    assert [w.category for w in caught] == [RuntimeWarning]  # once per process
    message = str(caught[0].message)
    assert message.startswith("numba could not be imported (")
    assert message.endswith(
        "; Lyapunov exponents and Granger tests fall back to numpy: the same values, several "
        "times slower. Fix: pip install 'numba==0.68.1'."
    )
    assert fresh._loaded == {"_lyapunov_kernel": None, "_granger_kernel": None}
    assert fresh.CACHE is True


def test_an_unwritable_cache_compiles_in_memory(fresh, monkeypatch):
    name = "keras_legc.core._kernel_for_test"
    stale = object()  # what a failed import can leave behind
    monkeypatch.setitem(sys.modules, name, stale)
    module = object()
    calls = []

    def import_module(path):
        calls.append((path, fresh.CACHE, path in sys.modules))
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return module

    monkeypatch.setattr(importlib, "import_module", import_module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = fresh.compiled("_kernel_for_test")
    assert got is module and fresh._loaded["_kernel_for_test"] is module
    # the second import runs with the cache off and without the half-imported module
    assert calls == [(name, True, True), (name, False, False)]
    assert [w.category for w in caught] == [RuntimeWarning]
    message = str(caught[0].message)
    assert message.startswith("numba could not write the compiled kernels' cache (")
    assert "No space left" in message
    assert message.endswith(
        "); they are compiled in memory for this process instead (a few seconds, once per "
        "process). Fix: free disk space, or set NUMBA_CACHE_DIR to a writable folder."
    )
    assert fresh._warned is False  # the numba-missing warning is still to come if it happens


def test_an_unwritable_cache_before_the_module_exists_compiles_in_memory(fresh, monkeypatch):
    # the import can fail before anything is put in sys.modules: nothing to remove then
    name = "keras_legc.core._kernel_for_test"
    monkeypatch.delitem(sys.modules, name, raising=False)
    module, calls = object(), []

    def import_module(path):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(30, "Read-only file system")
        return module

    monkeypatch.setattr(importlib, "import_module", import_module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert fresh.compiled("_kernel_for_test") is module
    assert calls == [name, name] and fresh.CACHE is False
