"""keras_legc.core.recorder: window bookkeeping, settings checks, verbose lines, writing into a
run_dir (with and without an LE store) and what happens when the disk refuses (issue 19: tests that
bite). Reference values: the offline LE of the same walk (windowed_lyapunov), counts by hand."""

import fcntl
import json
import os
import re
import shutil
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import keras_legc as kl
import keras_legc.core.recorder as recorder_module
from keras_legc import InvalidArgumentError, LegcWarning, NonFiniteError, OutputExistsError
from keras_legc.core.history import RowJournal
from keras_legc.core.lyapunov import windowed_lyapunov
from keras_legc.core.recorder import TIMINGS, Recorder, check_recording
from keras_legc.core.store import LEStore
from keras_legc.errors import MissingDependencyError

SHAPES = {"a": (2, 2), "b": (2, 1)}


def walk_of(n_steps, seed=0):
    return np.cumsum(np.random.default_rng(seed).normal(size=(n_steps, 6)), axis=0)


def feed(engine, walk, steps=1):
    closed = []
    for row in walk:
        closed.append(engine.step([row[:4].reshape(2, 2), row[4:].reshape(2, 1)], steps=steps))
    return closed


def engine_of(**options):
    options = {"window": 10, "overlap": 0.0, "target": lambda: 0.25, "background": False,
               **options}  # fmt: skip
    return Recorder(["a", "b"], SHAPES, **options)


def offline(walk, window=10, overlap=0.0):
    return windowed_lyapunov(walk.astype(np.float32).T, window, overlap).astype(np.float32)


# -- the stream --------------------------------------------------------------------------------------
def test_windows_close_every_stride_and_are_counted_by_snapshot():
    engine = engine_of(overlap=0.5)  # window 10, stride 5: windows close at 10, 15, 20, ...
    closed = feed(engine, walk_of(32))
    assert [i + 1 for i, c in enumerate(closed) if c] == [10, 15, 20, 25, 30]
    assert engine.close_snapshot == [10, 15, 20, 25, 30] == engine.close_step
    counts = {s: engine.windows_closed_by(s) for s in (0, 9, 10, 14, 15, 29, 30, 31, 1000)}
    assert counts == {0: 0, 9: 0, 10: 1, 14: 1, 15: 2, 29: 4, 30: 5, 31: 5, 1000: 5}


def test_every_and_steps_count_calls_and_optimizer_steps():
    engine = engine_of(every=3)
    walk = walk_of(65)
    closed = feed(engine, walk, steps=2)  # each call stands for 2 optimizer steps
    # calls 1, 4, 7, ... are recorded: the 10th recorded snapshot is call 28
    assert engine.calls == 65 and engine.steps == 130 and engine.snapshots == 22
    assert [i + 1 for i, c in enumerate(closed) if c] == [28, 58]
    assert engine.close_snapshot == [10, 20] and engine.close_step == [56, 116]
    history = engine.finish()
    assert np.array_equal(history.le, offline(walk[::3]))
    assert history.n_snapshots == 22 and history.every == 3
    assert history.meta == {"optimizer_steps": 130}
    prefix = engine.history(n_windows=1)
    assert prefix.n_snapshots == 10 and prefix.meta == {"optimizer_steps": 56}
    assert np.array_equal(prefix.le, history.le[:, :1])
    empty = engine.history(n_windows=0)
    assert empty.n_snapshots == 0 and empty.meta == {"optimizer_steps": 0}
    for bad in (-1, 3):
        with pytest.raises(InvalidArgumentError, match=r"n_windows must be in 0\.\.2 "):
            engine.history(n_windows=bad)


@pytest.mark.parametrize("background", [False, True])
def test_the_target_is_sampled_when_each_window_closes(background):
    calls = []
    engine = engine_of(target=lambda: calls.append(len(calls)) or 0.5 + len(calls),
                       background=background, expected_windows=1, threads=1)  # fmt: skip
    walk = walk_of(41)
    feed(engine, walk)
    history = engine.finish({"a": np.ones((2, 2)), "b": np.ones((2, 1))})
    assert calls == [0, 1, 2, 3] and np.array_equal(history.target, [1.5, 2.5, 3.5, 4.5])
    assert np.array_equal(history.le, offline(walk))  # grown from one row, in order
    assert np.array_equal(history.final_kernels["b"], np.ones((2, 1)))
    assert set(engine.timings) == set(TIMINGS) and engine.timings["lyapunov_s"] > 0
    assert all(v >= 0 for v in engine.timings.values())


def test_meta_initial_weights_and_the_kernels_callable_reach_the_history():
    init = [np.zeros((2, 2)), np.ones(2)]
    now = {"a": np.full((2, 2), 3.0), "b": np.full((2, 1), 4.0)}
    engine = engine_of(initial_weights=init, kernels=lambda: now, meta={"model": "m"})
    feed(engine, walk_of(10))
    history = engine.history()
    assert history.initial_weights is init and history.final_kernels is now
    assert history.meta == {"model": "m", "optimizer_steps": 10}
    given = {"a": np.zeros((2, 2)), "b": np.zeros((2, 1))}
    assert engine.finish(given).final_kernels is given  # given kernels win over the callable


def test_verbose_lines(capsys):
    engine = engine_of(verbose=2, name="Rec", target_name="error")
    feed(engine, walk_of(20))
    engine.finish()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Rec: window 1 closed at step 10, error 0.2500"
    assert err[1] == "Rec: window 2 closed at step 20, error 0.2500"
    assert err[2].startswith("Rec: 20 snapshots of 6 weights -> 2 LE windows (")
    quiet = engine_of(verbose=0)
    feed(quiet, walk_of(20))
    quiet.finish()
    assert capsys.readouterr().err == ""
    summary = engine_of(verbose=1, name="S")
    feed(summary, walk_of(20))
    summary.finish()
    assert capsys.readouterr().err.startswith("S: 20 snapshots of 6 weights -> 2 LE windows")


# -- settings ----------------------------------------------------------------------------------------
def test_check_recording_returns_the_stride():
    assert check_recording(50, 0.1, 1) == 45 and check_recording(10, 0.5, 2) == 5


@pytest.mark.parametrize(
    "options, match",
    [({"every": 0}, "every must be a positive integer"),
     ({"threads": 0}, "threads must be a positive integer or None"),
     ({"save_snapshots": True}, r"^save_snapshots=True writes the raw snapshots to disk and needs a "
                                r"run_dir\. Fix: pass run_dir=\.\.\. together with save_snapshots=True\.$"),
     ({"le_store": True}, r"^le_store=True writes the LE series into run_dir/le\.zarr and needs a "
                          r"run_dir\. Fix: pass run_dir=\.\.\. together with le_store=True\.$")],
)  # fmt: skip
def test_bad_settings_are_refused_before_recording(options, match):
    options = {"every": 1, **options}
    every = options.pop("every")
    with pytest.raises(InvalidArgumentError, match=match):
        check_recording(10, 0.1, every, **options)


def test_an_occupied_run_dir_needs_overwrite(tmp_path):
    assert check_recording(10, 0.0, 1, run_dir=tmp_path) == 10  # empty: fine
    (tmp_path / "le_journal.json").write_text("{}")
    with pytest.raises(OutputExistsError) as info:
        check_recording(10, 0.0, 1, run_dir=tmp_path)
    message = str(info.value)
    assert "holds an interrupted recording (a window journal without a complete history)" in message
    assert "Fix: score what it recorded with keras_legc.score(run_dir), choose another run_dir" in (
        message
    )
    assert message.endswith("or pass overwrite=True.")
    assert check_recording(10, 0.0, 1, run_dir=tmp_path, overwrite=True) == 10
    (tmp_path / "history.npz").write_bytes(b"x")
    with pytest.raises(OutputExistsError) as info:
        check_recording(10, 0.0, 1, run_dir=str(tmp_path))
    assert "already holds a recorded history. Fix: choose another run_dir, or pass overwrite" in (
        str(info.value)
    )
    assert str(info.value).endswith("overwrite=True to replace it.")


def test_a_store_without_zarr_is_refused_at_once(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(MissingDependencyError, match="zarr"):
        check_recording(10, 0.0, 1, run_dir=tmp_path, le_store=True)


def test_a_refused_recorder_releases_its_run_dir(tmp_path):
    run = tmp_path / "run"
    lock = tmp_path / ".run.lock"  # TargetLock's file, removed when released
    with pytest.raises(InvalidArgumentError) as info:
        engine_of(run_dir=run, every=0)
    assert info.value is not None and not lock.exists()  # (info keeps the refused one alive)
    engine = engine_of(run_dir=run)
    assert lock.exists() and lock.read_text().startswith("process ")
    engine.finish()
    assert not lock.exists()  # released at finish


# -- the run directory -------------------------------------------------------------------------------
def test_the_journal_holds_every_closed_window_between_saves(tmp_path):
    engine = engine_of(run_dir=tmp_path, target=lambda: 0.125)
    walk = walk_of(35)
    feed(engine, walk)  # 3 windows, no end_epoch: only the journal has them
    index = json.loads((tmp_path / "le_journal.json").read_text())
    assert index["n_rows"] == 3 and index["target"] == [0.125] * 3
    assert index["window"] == 10 and index["overlap"] == 0.0 and index["every"] == 1
    with pytest.warns(LegcWarning, match="3 windows completed"):
        recovered = kl.History.load(tmp_path)
    assert np.array_equal(recovered.le, offline(walk))
    engine.end_epoch()
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["n_windows"] == 3
    engine.finish()
    assert not (tmp_path / "le_journal.f32").exists()


def test_snapshots_are_saved_and_committed_per_epoch(tmp_path):
    engine = engine_of(run_dir=tmp_path, save_snapshots=True, every=2)
    walk = walk_of(30)
    feed(engine, walk)
    engine.end_epoch()
    assert json.loads((tmp_path / "snapshots.json").read_text())["n_rows"] == 15
    engine.finish()
    assert np.array_equal(kl.load_snapshots(tmp_path), walk[::2].astype(np.float32))


@pytest.mark.parametrize("windows", [3, 7])
def test_a_store_recording_equals_the_in_memory_one(tmp_path, windows):
    walk = walk_of(10 * windows)
    engine = engine_of(run_dir=tmp_path, le_store=True, store_chunks=(4, 2))
    feed(engine, walk)
    history = engine.finish()
    assert history.stored and history.le.chunk_rows == 4
    assert np.array_equal(np.asarray(history.le), offline(walk))
    assert np.array_equal(np.asarray(kl.History.load(tmp_path).le), offline(walk))


def test_a_refusing_disk_keeps_the_recording_in_memory_and_warns_once(tmp_path, monkeypatch):
    walk = walk_of(70)
    engine = engine_of(run_dir=tmp_path, le_store=True, store_chunks=(4, 2))
    feed(engine, walk[:30])  # 3 windows: 2 flushed to the store, 1 held
    real, calls = LEStore.append, []

    def full_disk(self, rows):
        calls.append(len(rows))
        # the array's new shape is written, then its chunks fail: the store runs ahead
        self._array.resize((self.n_weights, self.n_windows + len(rows)))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LEStore, "append", full_disk)
    with pytest.warns(LegcWarning) as caught:
        feed(engine, walk[30:])
        history = engine.finish()
    monkeypatch.setattr(LEStore, "append", real)
    disk = [w for w in caught if "could not write" in str(w.message)]  # (the target is flat too)
    assert len(disk) == 1 and calls == [2]  # the first refusal stops every later write
    message = str(caught[0].message)
    assert "could not write the recording into" in message and "No space left" in message
    assert "history.save(run_dir, overwrite=True)" in message
    assert isinstance(engine.save_error, OSError)
    assert not history.stored and np.array_equal(history.le, offline(walk))


# -- what the remaining mutants showed no test checked (issue 19) ------------------------------------
def spy_lyapunov(monkeypatch, naps=()):
    """Wrap the recorder's LE kernel: record the thread of each call and sleep ``naps[i]`` s
    before the i-th one (the values are the real kernel's)."""
    real, calls = recorder_module.lyapunov_of_windows, []

    def spied(windows, *, threads=None):
        if len(calls) < len(naps):
            time.sleep(naps[len(calls)])
        calls.append(threading.current_thread())
        return real(windows, threads=threads)

    monkeypatch.setattr(recorder_module, "lyapunov_of_windows", spied)
    return calls


def test_by_default_windows_are_computed_on_one_background_thread(monkeypatch):
    calls = spy_lyapunov(monkeypatch)
    engine = Recorder(["a", "b"], SHAPES, window=10, overlap=0.0, target=lambda: 0.25)
    walk = walk_of(30)
    assert feed(engine, walk[:10])[-1]  # window 1 closed ...
    assert engine.history().n_windows == 0  # ... and is in flight: not in the history yet
    engine.end_epoch()  # waits for it
    assert engine.history().n_windows == 1
    feed(engine, walk[10:])
    worker = calls[0]
    # finish stops the worker: it has ended when finish returns (had finish only asked it to stop,
    # the worker could not run to its end before this thread yields the GIL, 10 s from now)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        history = engine.finish()
        stopped = not worker.is_alive()
    finally:
        sys.setswitchinterval(interval)
    assert stopped
    assert np.array_equal(history.le, offline(walk))  # the same values as inline
    assert worker is not threading.current_thread() and calls == [worker] * 3
    again = engine.finish()  # finishing twice is harmless, like closing a file twice
    assert np.array_equal(again.le, history.le) and again.n_snapshots == 30


def test_defaults_print_nothing_and_name_the_recorder_and_target(capsys):
    quiet = Recorder(["a", "b"], SHAPES, window=10, target=lambda: 0.5, background=False)
    feed(quiet, walk_of(20))
    quiet.finish()
    assert capsys.readouterr().err == ""  # verbose=0 by default
    start = time.perf_counter()
    engine = engine_of(verbose=2)
    feed(engine, walk_of(20))
    engine.finish()
    wall = time.perf_counter() - start
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Recorder: window 1 closed at step 10, target 0.2500"
    # the summary's seconds: those since the recorder started, so at most this test's clock
    summary = re.fullmatch(
        r"Recorder: 20 snapshots of 6 weights -> 2 LE windows \((.*) s\)", err[2]
    )
    assert summary and 0 <= float(summary.group(1)) <= wall + 0.05


def test_the_constructor_checks_every_setting_before_recording():
    for options, match in [({"threads": 0}, "threads must be a positive integer or None"),
                           ({"save_snapshots": True}, "save_snapshots=True .* needs a run_dir")]:  # fmt: skip
        with pytest.raises(InvalidArgumentError, match=match):
            engine_of(**options)


def test_three_layers_are_laid_out_one_after_the_other():
    engine = Recorder(["x", "y", "z"], {"x": (2,), "y": (2,), "z": (1, 2)}, window=10,
                      overlap=0.0, target=lambda: 0.5, background=False)  # fmt: skip
    walk = walk_of(20)
    for row in walk:
        engine.step([row[0:2], row[2:4], row[4:6].reshape(1, 2)])
    assert np.array_equal(engine.finish().le, offline(walk))


def test_the_le_series_is_one_float32_buffer_grown_by_doubling():
    # History.le is a view of the recorder's buffer: history() per epoch costs no memory.
    engine = engine_of(expected_windows=0)  # at least one row
    walk, rows = walk_of(50), []
    for k in range(5):
        feed(engine, walk[10 * k : 10 * (k + 1)])
        history = engine.history()
        assert np.shares_memory(history.le, engine.history().le)
        assert history.le.base.dtype == np.float32
        rows.append(history.le.base.shape[0])
    assert rows == [1, 2, 4, 4, 8]  # doubled whenever a window finds it full
    three = engine_of(expected_windows=3)
    feed(three, walk[:30])
    assert three.history().le.base.shape == (3, 6)  # as many rows as expected, no more
    assert np.array_equal(three.history(n_windows=3).le, offline(walk[:30]))  # k == n_le is fine


def test_timings_add_up_every_window(tmp_path, monkeypatch):
    nap = 0.05
    offline(walk_of(10))  # compile the kernel first: its one-off cost is no window's
    calls = spy_lyapunov(monkeypatch, naps=[2 * nap])  # the first window's LEs take 0.1 s
    naps = {"target": [nap], "kernels": [0.0, nap], "snapshot": [nap]}  # first (timed) calls

    def napping(what, value):
        time.sleep(naps[what].pop(0) if naps[what] else 0.0)
        return value

    def kernels_of(row):  # a generator: iterated inside the recorder's snapshot timing
        yield napping("snapshot", row[:4].reshape(2, 2))
        yield row[4:].reshape(2, 1)

    now = {"a": np.zeros((2, 2)), "b": np.zeros((2, 1))}
    start = time.perf_counter()
    engine = Recorder(["a", "b"], SHAPES, window=10, overlap=0.0, run_dir=tmp_path,
                      target=lambda: napping("target", 0.5), kernels=lambda: napping("kernels", now))  # fmt: skip
    assert engine.timings == dict.fromkeys(TIMINGS, 0.0)  # nothing spent yet
    for step, row in enumerate(walk_of(30), 1):
        engine.step(kernels_of(row))
        if step in (10, 20):
            engine.end_epoch()  # at 10: waits ~0.1 s for window 1, then saves (0.05 s)
    engine.finish()
    wall = time.perf_counter() - start
    t = engine.timings
    assert len(calls) == 3
    # sums over every window, not the last one: each first call slept, the later ones did not
    assert t["snapshot_s"] >= nap and t["validation_s"] >= nap and t["save_s"] >= nap
    assert t["lyapunov_s"] >= 2 * nap and t["lyapunov_wait_s"] >= nap
    # the main thread's timings are disjoint intervals of this test's clock
    main = t["snapshot_s"] + t["validation_s"] + t["lyapunov_wait_s"] + t["save_s"]
    assert main <= wall and t["lyapunov_s"] <= wall


def test_a_diverged_recording_is_refused_at_the_window_with_the_fix():
    engine = engine_of()
    walk = walk_of(10)
    walk[6, 2] = np.nan
    with pytest.raises(NonFiniteError) as info:
        feed(engine, walk)
    message = str(info.value)
    assert message.startswith(
        "NaN or inf in the recorded weights by optimizer step 10: training diverged"
    )
    assert (
        "so its trajectory has no Lyapunov exponent. Fix: lower the learning rate or clip"
        in message
    )
    assert message.endswith("gradients, then record again.")


def test_a_run_dir_in_use_by_another_process_is_refused_naming_it(tmp_path):
    run = tmp_path / "run"
    with open(tmp_path / ".run.lock", "w") as held:  # another process's lock (a separate flock)
        held.write("process 4242 (train.py, since 2026-01-01 00:00:00)")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputExistsError) as info:
            engine_of(run_dir=run)
    message = str(info.value)
    assert (
        f"{run} is in use: process 4242 (train.py, since 2026-01-01 00:00:00) is recording"
        in message
    )
    assert "is recording into it now. Fix: wait" in message


def test_a_fresh_run_dir_holds_an_empty_history_and_journal_and_saves_only_new_windows(tmp_path):
    engine = engine_of(run_dir=tmp_path)
    index = json.loads((tmp_path / "le_journal.json").read_text())
    assert index["n_rows"] == 0 and index["target"] == [] and index["window"] == 10
    assert kl.History.load(tmp_path).n_windows == 0
    saved = (tmp_path / "history.npz").stat().st_ino  # each save replaces the file (a new inode)
    engine.end_epoch()  # no window closed: nothing to save
    assert (tmp_path / "history.npz").stat().st_ino == saved
    feed(engine, walk_of(10))
    engine.end_epoch()
    assert (tmp_path / "history.npz").stat().st_ino != saved
    saved = (tmp_path / "history.npz").stat().st_ino
    engine.end_epoch()  # still one window: not saved again
    assert (tmp_path / "history.npz").stat().st_ino == saved
    engine.finish()


def test_overwrite_replaces_everything_an_interrupted_recording_left(tmp_path):
    old, run = tmp_path / "old", tmp_path / "run"
    first = engine_of(run_dir=old, save_snapshots=True, le_store=True, store_chunks=(4, 2))
    feed(first, walk_of(35, seed=1))
    first.end_epoch()
    feed(first, walk_of(10, seed=2))  # a window in the journal only: the run looks interrupted
    shutil.copytree(old, run)  # (as a recording killed now would leave it)
    first.finish()
    assert {"history.npz", "le_journal.f32", "snapshots.f32", "le.zarr"} <= set(os.listdir(run))
    with pytest.raises(OutputExistsError, match="already holds a recorded history"):
        engine_of(run_dir=run)
    walk = walk_of(30)
    engine = engine_of(run_dir=run, overwrite=True, save_snapshots=True, le_store=True,
                       store_chunks=(4, 2), every=2)  # fmt: skip
    assert json.loads((run / "snapshots.json").read_text())["every"] == 2
    feed(engine, np.repeat(walk, 2, axis=0))  # every 2nd call recorded: the walk itself
    prefix = engine.history(n_windows=2)
    assert prefix.n_windows == 2 and np.array_equal(np.asarray(prefix.le), offline(walk)[:, :2])
    history = engine.finish()
    assert np.array_equal(np.asarray(kl.History.load(run).le), offline(walk))
    assert np.array_equal(np.asarray(history.le), offline(walk))
    assert np.array_equal(kl.load_snapshots(run), walk.astype(np.float32))
    zarr = pytest.importorskip("zarr")  # (le_store=True needs it anyway)
    assert zarr.open_array(str(run / "le.zarr"), mode="r").chunks == (4, 2)  # store_chunks


def test_a_refusing_disk_warns_once_naming_the_fix_and_leaks_no_file(tmp_path, monkeypatch):
    def full_disk(self, row):
        raise OSError(28, "No space left on device")

    engine = engine_of(run_dir=tmp_path, save_snapshots=True)
    monkeypatch.setattr(RowJournal, "append", full_disk)
    with pytest.warns(LegcWarning) as caught:
        feed(engine, walk_of(20))
        history = engine.finish()
    assert len(caught) == 1 and history.n_windows == 2
    message = str(caught[0].message)
    assert message.startswith(f"Recorder: could not write the recording into {tmp_path} (")
    assert "No space left on device); training goes on and the history is kept in memory" in message
    assert (
        "(the run_dir keeps its last complete save). Fix: free disk space, then save the" in message
    )
    assert message.endswith(
        "History that fit() returns with history.save(run_dir, overwrite=True)."
    )
    fds = "/proc/self/fd"
    if os.path.isdir(fds):  # the writers' files were closed at finish, although writing stopped
        open_files = [os.path.realpath(os.path.join(fds, fd)) for fd in os.listdir(fds)]
        assert not [f for f in open_files if f.startswith(str(tmp_path.resolve()))]


@pytest.mark.parametrize(("name", "fix"), [("misclassification", 'target="loss"'),
                                           ("loss", "larger or harder validation set")])  # fmt: skip
def test_a_target_that_stops_moving_is_warned_about_once_at_the_end(name, fix):
    values = iter([0.3, 0.2, 0.1] + [0.0] * 20)
    engine = engine_of(target=lambda: next(values), target_name=name)
    feed(engine, walk_of(100))  # 10 windows: the target is 0 in the last 7
    with pytest.warns(LegcWarning) as caught:
        history = engine.finish()
    assert history.target_flat_windows == 7
    (warning,) = [w for w in caught if "stayed at 0" in str(w.message)]
    assert f"the {name} target stayed at 0 for the last 7 of 10 windows" in str(warning.message)
    assert fix in str(warning.message)


def test_a_target_that_keeps_moving_gives_no_flat_warning():
    values = iter(np.linspace(0.5, 0.0, 10))
    engine = engine_of(target=lambda: next(values))
    feed(engine, walk_of(100))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)
        engine.finish()
