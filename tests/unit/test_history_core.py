"""keras_legc.core.history: History's views, save/load round trips (in memory and with an LE
store), recovery from the window journal and the journal itself (issue 19: tests that bite).
Expected values are the numpy arrays the tests build, sliced by hand."""

import json
import warnings

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import HistoryError, LegcWarning, OutputExistsError
from keras_legc.core.history import (
    JOURNAL_FORMAT,
    JOURNAL_NAME,
    SNAPSHOTS_FORMAT,
    History,
    RowJournal,
    journal_index,
    load_snapshots,
    read_journal,
)
from keras_legc.core.store import StoredLE

SHAPES = {"a": (3, 4), "b": (4, 2)}  # 12 + 8 = 20 weights
K = 9


def make(rng, k=K, overlap=0.1, **extra):
    le = rng.normal(size=(20, k)).astype(np.float32)
    return History(
        layers=["a", "b"], shapes=SHAPES, le=le, target=rng.normal(size=k), window=10,
        overlap=overlap, every=2, n_snapshots=10 + 9 * (k - 1),
        initial_weights=[rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(4, 2))],
        final_kernels={name: rng.normal(size=s) for name, s in SHAPES.items()},
        meta={"note": "hand-made", "epochs": 3}, **extra,
    )  # fmt: skip


def assert_same_history(got, want):
    assert got.layers == want.layers and got.shapes == want.shapes
    assert np.array_equal(np.asarray(got.le), np.asarray(want.le))
    assert got.le.dtype == np.float32 and got.target.dtype == np.float64
    assert np.array_equal(got.target, want.target)
    assert (got.window, got.overlap, got.every, got.n_snapshots) == (
        want.window, want.overlap, want.every, want.n_snapshots)  # fmt: skip
    assert len(got.initial_weights) == len(want.initial_weights)
    for a, b in zip(got.initial_weights, want.initial_weights, strict=True):
        assert np.array_equal(a, b)
    assert sorted(got.final_kernels) == sorted(want.final_kernels)
    for name in want.final_kernels:
        assert np.array_equal(got.final_kernels[name], want.final_kernels[name])


# -- the views ---------------------------------------------------------------------------------------
def test_an_inconsistent_history_is_refused(rng):
    with pytest.raises(HistoryError) as info:
        History(layers=["a", "b"], shapes=SHAPES, le=np.zeros((19, 4)), target=np.zeros(4),
                window=10, overlap=0.1, every=1, n_snapshots=40)  # fmt: skip
    assert "LE array (19, 4)" in str(info.value) and "20 weights" in str(info.value)
    assert "4 windows" in str(info.value)
    assert str(info.value).endswith(" windows. Fix: record it again with WeightHistory.")
    with pytest.raises(HistoryError, match="has 3 windows"):
        History(layers=["a", "b"], shapes=SHAPES, le=np.zeros((20, 4)), target=np.zeros(3),
                window=10, overlap=0.1, every=1, n_snapshots=40)  # fmt: skip


def test_sizes_offsets_and_layers(rng):
    h = make(rng)
    assert (h.n_weights, h.n_windows) == (20, K) and not h.stored
    assert h.offsets() == {"a": slice(0, 12), "b": slice(12, 20)}
    assert np.array_equal(h.le_of("a"), h.le[:12].reshape(3, 4, K))
    assert np.array_equal(h.le_of("b"), h.le[12:].reshape(4, 2, K))
    assert repr(h) == "History(layers=['a', 'b'], weights=20, windows=9, window=10, snapshots=82)"


def test_a_stored_layer_reads_only_its_rows(rng, tmp_path):
    h = make(rng)
    h.save(tmp_path, le_store=True, store_chunks=(5, 4))
    loaded = kl.History.load(tmp_path)
    reads = []

    class Counting(StoredLE):
        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

    loaded.le.__class__ = Counting
    got = loaded.le_of("b")
    assert np.array_equal(got, h.le[12:].reshape(4, 2, K)) and got.shape == (4, 2, K)
    assert reads == [slice(12, 20)]  # one read, of layer b's rows only


@pytest.mark.parametrize("k", [1, 4, K])
def test_tail_keeps_the_last_windows_and_everything_else(rng, k):
    h = make(rng)
    t = h.tail(k)
    assert np.array_equal(t.le, h.le[:, -k:]) and np.array_equal(t.target, h.target[-k:])
    assert t.n_windows == k and t.layers == h.layers and t.shapes == h.shapes
    assert (t.window, t.overlap, t.every, t.n_snapshots) == (10, 0.1, 2, h.n_snapshots)
    assert t.initial_weights is h.initial_weights and t.final_kernels is h.final_kernels
    assert t.meta == {"note": "hand-made", "epochs": 3, "tail_windows": k}
    assert "tail_windows" not in h.meta


@pytest.mark.parametrize("bad", [0, -1, K + 1])
def test_tail_refuses_a_window_count_out_of_range(rng, bad):
    with pytest.raises(HistoryError, match=rf"n_windows must be in 1\.\.{K}, got {bad}\."):
        make(rng).tail(bad)


# -- save and load -----------------------------------------------------------------------------------
def test_save_and_load_round_trip_in_memory(rng, tmp_path):
    h = make(rng)
    assert h.save(tmp_path / "run") == tmp_path / "run"
    loaded = kl.History.load(tmp_path / "run")
    assert_same_history(loaded, h)
    assert loaded.meta == {"note": "hand-made", "epochs": 3} and not loaded.stored
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["n_windows"] == K and manifest["n_initial_weights"] == 3
    assert manifest["has_initial_weights"] is True and "le_store" not in manifest
    with pytest.raises(OutputExistsError):
        h.save(tmp_path / "run")
    h.tail(3).save(tmp_path / "run", overwrite=True)
    assert kl.History.load(tmp_path / "run").n_windows == 3


def test_a_history_without_weights_round_trips(rng, tmp_path):
    h = History(layers=["a", "b"], shapes=SHAPES, le=np.ones((20, 2)), target=[0.5, 0.25],
                window=10, overlap=0.1, every=1, n_snapshots=19,
                meta={"format": "not mine", "version": 99})  # fmt: skip
    h.save(tmp_path)
    loaded = kl.History.load(tmp_path)
    assert loaded.initial_weights is None and loaded.final_kernels is None
    assert loaded.meta == {}  # the manifest's own format and version are never overridden
    assert np.array_equal(loaded.target, [0.5, 0.25])


def test_saving_into_a_store_and_back(rng, tmp_path):
    h = make(rng)
    h.save(tmp_path / "s", le_store=True, store_chunks=(6, 4))
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["le_store"] == "le.zarr" and manifest["le_store_start"] == 0
    stored = kl.History.load(tmp_path / "s")
    assert stored.stored and stored.le.chunk_rows == 6
    assert_same_history(stored, h)
    # a stored history saved elsewhere: its store is copied; le_store=False: back into the .npz
    stored.tail(5).save(tmp_path / "copy")
    copy = kl.History.load(tmp_path / "copy")
    assert copy.stored and copy.le.path == (tmp_path / "copy" / "le.zarr").resolve()
    assert np.array_equal(np.asarray(copy.le), h.le[:, -5:])
    stored.save(tmp_path / "flat", le_store=False)
    flat = kl.History.load(tmp_path / "flat")
    assert not flat.stored and not (tmp_path / "flat" / "le.zarr").exists()
    assert_same_history(flat, h)
    # saved again where its store already is: the store stays, the manifest is rewritten
    stored.tail(4).save(tmp_path / "s", overwrite=True)
    again = kl.History.load(tmp_path / "s")
    assert again.le.start == K - 4 and np.array_equal(np.asarray(again.le), h.le[:, -4:])


def test_a_stored_history_refuses_to_replace_another_store(rng, tmp_path):
    h = make(rng)
    h.save(tmp_path / "s", le_store=True)
    stored = kl.History.load(tmp_path / "s")
    h.save(tmp_path / "other", le_store=True)
    (tmp_path / "other" / "history.npz").unlink()  # only the store is left there
    with pytest.raises(OutputExistsError, match="le.zarr already exists.*overwrite=True"):
        stored.save(tmp_path / "other")


# -- load's errors and the journal -------------------------------------------------------------------
def test_loading_an_empty_or_interrupted_run_dir_says_what_is_there(rng, tmp_path):
    with pytest.raises(HistoryError, match="holds no recorded history.*Fix: pass the run_dir"):
        kl.History.load(tmp_path)
    (tmp_path / ".history.npz.x1y2.tmp").write_bytes(b"partial")
    with pytest.raises(HistoryError) as info:
        kl.History.load(tmp_path)
    assert "holds no complete history, only .history.npz.x1y2.tmp" in str(info.value)
    assert "before its first save completed" in str(info.value)


def journal_of(run, layers=("a", "b"), shapes=SHAPES, rows=(), target=None, **extra):
    index = journal_index(JOURNAL_FORMAT, layers, shapes, window=10, overlap=0.5, every=1,
                          **extra)  # fmt: skip
    journal = RowJournal(run, JOURNAL_NAME, index, overwrite=True)
    for row in rows:
        journal.append(row)
    journal.commit(**({} if target is None else {"target": target}))
    journal.close()


@pytest.mark.parametrize("store", [False, True])
def test_a_journal_longer_than_the_save_is_used(rng, tmp_path, store):
    h = make(rng, k=3, overlap=0.5)
    h.save(tmp_path, le_store=store)
    rows = rng.normal(size=(5, 20)).astype(np.float32)
    journal_of(tmp_path, rows=rows, target=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    with pytest.warns(LegcWarning) as caught:
        loaded = kl.History.load(tmp_path)
    message = str(caught[0].message)
    assert "interrupted: 5 windows completed (the last full save had 3); using all 5" in message
    assert np.array_equal(np.asarray(loaded.le), rows.T)
    assert np.array_equal(loaded.target, [0.1, 0.2, 0.3, 0.4, 0.5])
    # window 10, overlap 0.5: stride 5, so 5 windows span 10 + 4 * 5 snapshots
    assert loaded.n_snapshots == 30 and loaded.overlap == 0.5
    assert loaded.le.flags.c_contiguous is not store  # a stored history stays a view


def test_a_journal_no_longer_than_the_save_is_ignored(rng, tmp_path):
    h = make(rng, k=3)
    h.save(tmp_path)
    journal_of(tmp_path, rows=rng.normal(size=(3, 20)), target=[0.0] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_history(kl.History.load(tmp_path), h)


def test_a_journal_of_another_model_is_refused(rng, tmp_path):
    make(rng, k=3).save(tmp_path)
    journal_of(tmp_path, layers=("a", "c"), shapes={"a": (3, 4), "c": (4, 2)},
               rows=rng.normal(size=(5, 20)), target=[0.0] * 5)  # fmt: skip
    with pytest.raises(HistoryError) as info:
        kl.History.load(tmp_path)
    assert "belongs to another model" in str(info.value) and "['a', 'c']" in str(info.value)


def test_a_journal_without_a_target_falls_back_to_the_save(rng, tmp_path):
    h = make(rng, k=3)
    h.save(tmp_path)
    journal_of(tmp_path, rows=rng.normal(size=(5, 20)))  # no target in the index
    with pytest.warns(LegcWarning) as caught:
        loaded = kl.History.load(tmp_path)
    message = str(caught[0].message)
    assert message == (
        f"ignoring the window journal in {tmp_path}: its index records no target series. Fix: "
        "record again. Using the last complete save."
    )
    assert_same_history(loaded, h)


# -- RowJournal and read_journal ---------------------------------------------------------------------
def test_row_journal_commits_only_complete_rows(rng, tmp_path):
    rows = rng.normal(size=(4, 20)).astype(np.float32)
    journal = RowJournal(tmp_path / "new", "snapshots", journal_index(
        SNAPSHOTS_FORMAT, ["a", "b"], SHAPES, every=1))  # fmt: skip
    assert json.loads((tmp_path / "new" / "snapshots.json").read_text())["n_rows"] == 0
    for row in rows[:3]:
        journal.append(row)
    journal.commit(note="three")
    journal.append(rows[3])  # appended, not committed yet
    index, got = read_journal(tmp_path / "new", "snapshots", SNAPSHOTS_FORMAT)
    assert index["n_rows"] == 3 and index["note"] == "three" and index["dtype"] == "float32"
    assert index["n_weights"] == 20 and np.array_equal(got, rows[:3])
    journal.close()  # commits the last row
    assert np.array_equal(load_snapshots(tmp_path / "new"), rows)
    with pytest.raises(OutputExistsError) as info:
        RowJournal(tmp_path / "new", "snapshots", {"format": SNAPSHOTS_FORMAT})
    assert str(info.value) == (
        f"{tmp_path / 'new' / 'snapshots.f32'} already exists. Fix: choose another run_dir, or "
        "pass overwrite=True."
    )


def test_an_empty_journal_reads_as_no_rows(tmp_path):
    RowJournal(tmp_path, "snapshots", journal_index(SNAPSHOTS_FORMAT, ["a", "b"], SHAPES)).close()
    index, rows = read_journal(tmp_path, "snapshots", SNAPSHOTS_FORMAT)
    assert index["n_rows"] == 0 and rows.shape == (0, 20) and rows.dtype == np.float32


def test_closing_with_remove_deletes_the_journal(rng, tmp_path):
    journal = RowJournal(tmp_path, "j", journal_index(JOURNAL_FORMAT, ["a", "b"], SHAPES))
    journal.append(rng.normal(size=20))
    journal.close(remove=True)
    assert not (tmp_path / "j.f32").exists() and not (tmp_path / "j.json").exists()
    journal.close(remove=True)  # twice is harmless


def test_a_truncated_journal_is_refused(rng, tmp_path):
    journal = RowJournal(tmp_path, "j", journal_index(JOURNAL_FORMAT, ["a", "b"], SHAPES))
    for _ in range(3):
        journal.append(rng.normal(size=20))
    journal.close()
    data = (tmp_path / "j.f32").read_bytes()
    (tmp_path / "j.f32").write_bytes(data[:-4])  # one value short of 3 rows
    with pytest.raises(HistoryError) as info:
        read_journal(tmp_path, "j", JOURNAL_FORMAT)
    assert str(info.value) == (
        f"{tmp_path / 'j.f32'} is shorter than the 3 rows its index records: the file was "
        "truncated. Fix: record again."
    )
    with pytest.raises(HistoryError, match="is not a keras_legc keras_legc.snapshots index"):
        read_journal(tmp_path, "j", SNAPSHOTS_FORMAT)
    with pytest.raises(FileNotFoundError) as info:
        read_journal(tmp_path, "none", JOURNAL_FORMAT)
    assert str(info.value) == str(tmp_path / "none.json")  # names the index it looked for


def test_journal_index_counts_the_weights():
    index = journal_index("fmt", ("a", "b"), {"a": (3, 4), "b": (4, 2)}, window=5)
    assert index == {"format": "fmt", "version": 1, "layers": ["a", "b"],
                     "shapes": {"a": [3, 4], "b": [4, 2]}, "n_weights": 20, "window": 5}  # fmt: skip


def test_no_snapshots_is_a_clear_error(tmp_path):
    with pytest.raises(HistoryError) as info:
        load_snapshots(tmp_path)
    assert str(info.value) == (
        f"{tmp_path} holds no raw snapshots. Fix: record with "
        "WeightHistory(run_dir=..., save_snapshots=True)."
    )


# -- load's messages and its recovery paths, word for word (issue 19: the mutation survivors) ------
def rewrite_save(run, **changes):
    """Rewrite ``run``'s history.npz with ``changes`` to its manifest (a value of None: the field
    removed) or its arrays (keys ``array_<name>``)."""
    from keras_legc._io import read_npz, write_npz
    from keras_legc.core.history import FORMAT, FORMAT_VERSION, HISTORY_FILE

    manifest, data = read_npz(run / HISTORY_FILE, FORMAT, FORMAT_VERSION)
    arrays = {name: data[name] for name in data}
    for key, value in changes.items():
        if key.startswith("array_"):
            arrays[key.removeprefix("array_")] = value
        elif value is None:
            manifest.pop(key)
        else:
            manifest[key] = value
    write_npz(run / HISTORY_FILE, manifest, arrays, overwrite=True, compress=False)


def test_load_messages_name_what_is_there_and_the_fix(rng, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HistoryError) as info:
        kl.History.load(empty)
    assert str(info.value) == (
        f"{empty} holds no recorded history (no history.npz). Fix: pass the run_dir given to "
        "WeightHistory."
    )
    (empty / ".history.npz.a1.tmp").write_bytes(b"partial")
    (empty / ".history.npz.b2.tmp").write_bytes(b"partial")
    with pytest.raises(HistoryError) as info:
        kl.History.load(empty)
    assert str(info.value) == (
        f"{empty} holds no complete history, only .history.npz.a1.tmp, .history.npz.b2.tmp: the "
        "recording was interrupted before its first save completed. Fix: record again."
    )
    journal_only = tmp_path / "journal_only"
    journal_of(journal_only, rows=rng.normal(size=(2, 20)), target=[0.0, 1.0])
    with pytest.raises(HistoryError) as info:
        kl.History.load(journal_only)
    assert str(info.value).startswith(f"{journal_only} holds no complete history, only a window "
                                      "journal: the recording was interrupted")  # fmt: skip


def test_a_save_of_the_wrong_dimensions_is_refused_with_its_shapes(rng, tmp_path):
    make(rng).save(tmp_path)
    rewrite_save(tmp_path, array_le=np.zeros(20, np.float32))
    with pytest.raises(HistoryError) as info:
        kl.History.load(tmp_path)
    assert str(info.value) == (
        f"the history in {tmp_path} is unreadable or corrupt (LE array of shape (20,) and target "
        f"of shape ({K},), not (weights, windows) and (windows,)). Fix: record it again; a run "
        "that was interrupted keeps its last complete save."
    )


def test_every_recovery_note_is_in_one_warning(rng, tmp_path):
    make(rng, k=3, overlap=0.5).save(tmp_path)
    (tmp_path / ".history.npz.c3.tmp").write_bytes(b"partial")
    journal_of(tmp_path, rows=rng.normal(size=(4, 20)), target=[1, 2, 3, 4])  # integers
    with pytest.warns(LegcWarning) as caught:
        loaded = kl.History.load(tmp_path)
    assert [str(w.message) for w in caught] == [
        f"{tmp_path}: an interrupted save left .history.npz.c3.tmp; the recording was "
        "interrupted: 4 windows completed (the last full save had 3); using all 4."
    ]
    assert loaded.target.dtype == np.float64 and np.array_equal(loaded.target, [1, 2, 3, 4])


def test_a_journal_of_the_same_layers_with_other_shapes_is_refused(rng, tmp_path):
    make(rng, k=3).save(tmp_path)
    journal_of(tmp_path, shapes={"a": (4, 3), "b": (4, 2)}, rows=rng.normal(size=(5, 20)),
               target=[0.0] * 5)  # fmt: skip
    with pytest.raises(HistoryError) as info:
        kl.History.load(tmp_path)
    assert str(info.value).endswith("Fix: record again into an empty run_dir.")
    assert "belongs to another model than its history.npz" in str(info.value)


def test_a_one_layer_history_keeps_its_final_kernel(rng, tmp_path):
    h = History(layers=["only"], shapes={"only": (3, 2)}, le=rng.normal(size=(6, 4)),
                target=rng.normal(size=4), window=5, overlap=0.0, every=1, n_snapshots=20,
                final_kernels={"only": rng.normal(size=(3, 2))})  # fmt: skip
    h.save(tmp_path)
    loaded = kl.History.load(tmp_path)
    assert np.array_equal(loaded.final_kernels["only"], h.final_kernels["only"])


def test_a_store_saved_into_a_new_nested_run_dir(rng, tmp_path):
    h = make(rng)
    h.save(tmp_path / "a" / "b" / "run", le_store=True)
    loaded = kl.History.load(tmp_path / "a" / "b" / "run")
    assert loaded.stored and np.array_equal(np.asarray(loaded.le), h.le)
    assert "le_store_start" not in loaded.meta and "le_store" not in loaded.meta


def test_a_manifest_without_a_store_start_reads_from_window_0(rng, tmp_path):
    # the field is optional in the file format: a store referred to without it starts at 0
    h = make(rng)
    h.save(tmp_path, le_store=True)
    rewrite_save(tmp_path, le_store_start=None)
    loaded = kl.History.load(tmp_path)
    assert loaded.le.start == 0 and np.array_equal(np.asarray(loaded.le), h.le)


def test_a_stored_history_opens_its_store_read_only(rng, tmp_path):
    make(rng).save(tmp_path, le_store=True)
    array = kl.History.load(tmp_path).le._open()
    assert array.read_only  # scoring reads a store; it can never change one


# -- the last history survivors (issue 19, session 8): the journal's index checks, one by one ------
def journal_with_index(run, name="j", *, n_written=3, **changes):
    """A RowJournal of ``n_written`` rows of 20 weights in ``run``, then its index edited by hand with
    ``changes`` (a value of None: the field removed). Returns the index path."""
    journal = RowJournal(run, name, journal_index(JOURNAL_FORMAT, ["a", "b"], SHAPES))
    for i in range(n_written):
        journal.append(np.full(20, i, np.float32))
    journal.close()
    index_path = run / f"{name}.json"
    index = json.loads(index_path.read_text())
    for key, value in changes.items():
        if value is None:
            index.pop(key)
        else:
            index[key] = value
    index_path.write_text(json.dumps(index))
    return index_path


def refusal(run, name="j"):
    """The message of read_journal's HistoryError for the journal ``name`` in ``run``."""
    with pytest.raises(HistoryError) as info:
        read_journal(run, name, JOURNAL_FORMAT)
    return str(info.value)


def test_an_index_of_another_format_is_named_in_the_refusal(tmp_path):
    index_path = journal_with_index(tmp_path, format="keras_legc.other")
    assert refusal(tmp_path) == (
        f"{index_path} is not a keras_legc keras_legc.le_journal index (format 'keras_legc.other'). "
        "Fix: record again."
    )
    index_path.write_text("[1, 2]")  # not a JSON object at all: shown as it is (repr)
    assert refusal(tmp_path) == (
        f"{index_path} is not a keras_legc keras_legc.le_journal index (format [1, 2]). Fix: "
        "record again."
    )


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        # a float weight count would reach np.memmap's shape; a string target would be read as
        # characters: both are refused by their type, by name
        ({"n_weights": 20.0}, "field 'n_weights' is 20.0, not of type <class 'int'>"),
        ({"target": "abc"}, "field 'target' is 'abc', not of type <class 'list'>"),
        ({"layers": None, "shapes": None}, "no ['layers', 'shapes']"),
        ({"n_rows": -1}, "-1 rows of 20 weights do not fit its layers' shapes"),
        ({"n_weights": 21}, "3 rows of 21 weights do not fit its layers' shapes"),
        # 2**32 * 2**32 = 2**64 weights, which int64 arithmetic wraps to 0: counted exactly
        ({"layers": ["a"], "shapes": {"a": [2**32, 2**32]}, "n_weights": 0},
         "3 rows of 0 weights do not fit its layers' shapes"),
        ({"target": [0.5, 0.25]}, "its target series does not give a number for each of 3 rows"),
        ({"target": ["x", "y", "z"]},
         "its target series does not give a number for each of 3 rows"),
    ],
)  # fmt: skip
def test_a_journal_index_that_does_not_fit_is_refused_naming_why(tmp_path, changes, why):
    index_path = journal_with_index(tmp_path, **changes)
    assert refusal(tmp_path) == (
        f"{index_path} is not a keras_legc keras_legc.le_journal index ({why}). Fix: record again."
    )


def test_a_journal_index_of_exactly_the_size_limit_is_read(tmp_path, monkeypatch):
    import keras_legc.core.history as history_module

    index_path = journal_with_index(tmp_path, target=[0.0, 1.0, 2.0])
    size = index_path.stat().st_size
    monkeypatch.setattr(history_module, "MAX_INDEX_BYTES", size)
    index, rows = read_journal(tmp_path, "j", JOURNAL_FORMAT)
    assert index["n_rows"] == 3 and np.array_equal(rows[:, 0], [0, 1, 2])
    monkeypatch.setattr(history_module, "MAX_INDEX_BYTES", size - 1)
    assert f"({size} bytes, more than any index holds)" in refusal(tmp_path)


def test_read_journal_gives_a_read_only_view_of_the_file(tmp_path):
    journal_with_index(tmp_path)
    _, rows = read_journal(tmp_path, "j", JOURNAL_FORMAT)
    assert isinstance(rows, np.memmap) and not rows.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        rows[0, 0] = 7.0
    assert np.array_equal(np.fromfile(tmp_path / "j.f32", np.float32)[:20], np.zeros(20))


def test_an_index_without_its_rows_is_no_journal(tmp_path):
    # only snapshots.json (here not even valid): the pair is incomplete, so there are no snapshots
    (tmp_path / "snapshots.json").write_text("{not json")
    with pytest.raises(FileNotFoundError) as info:
        read_journal(tmp_path, "snapshots", SNAPSHOTS_FORMAT)
    assert str(info.value) == str(tmp_path / "snapshots.json")
    with pytest.raises(HistoryError, match="holds no raw snapshots"):
        load_snapshots(tmp_path)


def test_a_row_journal_creates_nested_folders_and_an_exact_index(tmp_path):
    run = tmp_path / "x" / "y" / "run"
    index = journal_index(SNAPSHOTS_FORMAT, ["a", "b"], SHAPES, every=1)
    journal = RowJournal(run, "snapshots", index)
    assert json.loads((run / "snapshots.json").read_text()) == {
        **index, "dtype": "float32", "n_rows": 0}  # fmt: skip
    journal.append(np.arange(20))
    journal.close()
    assert np.array_equal(load_snapshots(run), np.arange(20, dtype=np.float32)[None])


def test_a_history_converts_its_series_to_float(tmp_path):
    h = History(layers=["only"], shapes={"only": (2, 1)}, le=[[1, 2], [3, 4]], target=[1, 0],
                window=5, overlap=0.0, every=1, n_snapshots=10)  # fmt: skip
    assert h.target.dtype == np.float64 and h.le.dtype == np.float32
    assert np.array_equal(h.target, [1.0, 0.0])


def test_two_stale_saves_are_both_named(rng, tmp_path):
    make(rng, k=3).save(tmp_path)
    (tmp_path / ".history.npz.a1.tmp").write_bytes(b"partial")
    (tmp_path / ".history.npz.b2.tmp").write_bytes(b"partial")
    with pytest.warns(LegcWarning) as caught:
        kl.History.load(tmp_path)
    assert [str(w.message) for w in caught] == [
        f"{tmp_path}: an interrupted save left .history.npz.a1.tmp, .history.npz.b2.tmp."
    ]


def test_a_history_is_saved_uncompressed(rng, tmp_path):
    # LE series are noise-like floats that deflate barely at all: storing them saves the time
    import zipfile

    make(rng).save(tmp_path)
    with zipfile.ZipFile(tmp_path / "history.npz") as archive:
        members = archive.infolist()
    assert {m.filename for m in members} >= {"le.npy", "target.npy", "__meta__.npy"}
    assert all(m.compress_type == zipfile.ZIP_STORED for m in members)


def test_history_tail_keeps_the_last_windows(rng):
    h = make(rng, k=30)
    recent = h.tail(12)
    np.testing.assert_array_equal(recent.le, h.le[:, -12:])
    np.testing.assert_array_equal(recent.target, h.target[-12:])
    assert recent.n_windows == 12 and recent.meta["tail_windows"] == 12
    assert (recent.layers, recent.shapes, recent.window) == (h.layers, h.shapes, h.window)
    assert (recent.overlap, recent.every, recent.n_snapshots) == (h.overlap, h.every, h.n_snapshots)
    assert h.tail(30).n_windows == 30
    for bad in (0, 31):
        with pytest.raises(kl.HistoryError, match=f"n_windows must be in 1..30, got {bad}"):
            h.tail(bad)
