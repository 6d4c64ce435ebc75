"""keras_legc.core.recorder: window bookkeeping, settings checks, verbose lines, writing into a
run_dir (with and without an LE store) and what happens when the disk refuses (issue 19: tests that
bite). Reference values: the offline LE of the same walk (windowed_lyapunov), counts by hand."""

import json
import sys

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import InvalidArgumentError, LegcWarning, OutputExistsError
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
    assert len(caught) == 1 and calls == [2]  # the first refusal stops every later write
    message = str(caught[0].message)
    assert "could not write the recording into" in message and "No space left" in message
    assert "history.save(run_dir, overwrite=True)" in message
    assert isinstance(engine.save_error, OSError)
    assert not history.stored and np.array_equal(history.le, offline(walk))
