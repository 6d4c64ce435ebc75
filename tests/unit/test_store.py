"""Issue 17: the on-disk LE store (Zarr), histories backed by it, the recorder writing into it,
and score() streaming it with memory bounded by chunk_size, bit-identical to in-memory scoring."""

import sys
import tracemalloc
import warnings

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import HistoryError, InvalidArgumentError, LegcWarning, OutputExistsError
from keras_legc.core.recorder import Recorder
from keras_legc.core.store import STORE_NAME, LEStore, StoredLE, write_store
from keras_legc.errors import MissingDependencyError

ARRAYS = ("pvalues", "degenerate", "static", "f_pvalue", "partial_r2", "selected_lag")


def make_history(rng, n_rows=300, k=24, le=None):
    """A hand-made History: random LE series (one constant), a target two of them drive."""
    shapes = {"a": (n_rows // 3, 2), "b": (n_rows // 3, 1)}
    n = sum(int(np.prod(s)) for s in shapes.values())
    if le is None:
        le = rng.normal(size=(n, k)).astype(np.float32)
        le[5] = 0.5
        le[9] = 0.0  # a weight that never moved
    target = rng.normal(size=le.shape[1])
    target[1:] += 1.5 * le[3, :-1] + 0.5 * le[11, :-1]
    return kl.History(
        layers=["a", "b"], shapes=shapes, le=le, target=target, window=20, overlap=0.1,
        every=1, n_snapshots=20 + 18 * (le.shape[1] - 1),
        final_kernels={name: rng.normal(size=s) for name, s in shapes.items()},
    )  # fmt: skip


def stored_copy(history, run_dir, **chunks):
    """``history`` saved into ``run_dir`` with its LE in a store of the given chunks, loaded."""
    chunks = (chunks.get("chunk_rows", 65536), chunks.get("chunk_windows", 32))
    history.save(run_dir, le_store=True, store_chunks=chunks)
    return kl.History.load(run_dir)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        return fn(*args, **kwargs)


def assert_same_masks(got, want):
    """Paper mode and (with the criterion's arrays) target mode give the same masks."""
    pairs = [(quiet(got.mask, a), quiet(want.mask, a)) for a in (0.05, 0.2)]
    if want.f_pvalue is not None:
        pairs.append((quiet(got.mask, sparsity=0.7), quiet(want.mask, sparsity=0.7)))
    for a, b in pairs:
        assert all(np.array_equal(a[name], b[name]) for name in want.layers)


def assert_same_scores(got, want):
    for name in ARRAYS:
        a, b = getattr(got, name), getattr(want, name)
        if b is None:  # criterion=None: no lag selection
            assert a is None, name
            continue
        assert a.dtype == b.dtype, name
        assert np.array_equal(a, b, equal_nan=True), name
    assert got.lags == want.lags and got.max_lag == want.max_lag


# -- the store and its lazy view ------------------------------------------------------------------
def test_stored_view_indexes_like_the_array(rng, tmp_path):
    le = rng.normal(size=(50, 13)).astype(np.float32)
    view = write_store(le, tmp_path / "le.zarr", chunk_rows=8, chunk_windows=4)
    assert view.shape == le.shape and view.dtype == np.float32 and len(view) == 50
    assert np.array_equal(np.asarray(view), le)
    for key in [np.s_[3:17], np.s_[7], np.s_[:, 4], np.s_[5:9, -3:], np.s_[[1, 30, 2]],
                np.s_[10:20, 2:11], np.s_[:, ::2]]:  # fmt: skip
        assert np.array_equal(np.asarray(view[key]), le[key]), key
    tail = view[:, -5:]  # a lazy window view, itself indexable
    assert isinstance(tail, StoredLE) and tail.shape == (50, 5)
    assert np.array_equal(np.asarray(tail), le[:, -5:])
    assert np.array_equal(tail[:, 1:3][4:6], le[:, -5:][:, 1:3][4:6])
    with pytest.raises(IndexError):
        view[:, 13]


def test_appending_windows_equals_one_write(rng, tmp_path):
    le = rng.normal(size=(40, 11)).astype(np.float32)
    store = LEStore(tmp_path / "le.zarr", 40, chunk_rows=16, chunk_windows=3)
    for a, b in [(0, 2), (2, 3), (3, 9), (9, 11)]:  # partial chunks, then across chunk edges
        store.append(le[:, a:b].T)
    assert store.n_windows == 11
    assert np.array_equal(np.asarray(StoredLE(store.path)), le)
    with pytest.raises(OutputExistsError, match=r"or pass overwrite=True\.$"):
        LEStore(tmp_path / "le.zarr", 40)
    with pytest.raises(InvalidArgumentError, match="chunk_rows"):
        LEStore(tmp_path / "other.zarr", 40, chunk_rows=0)


# -- History backed by the store ------------------------------------------------------------------
def test_history_saved_to_a_store_loads_lazily_and_equal(rng, tmp_path):
    history = make_history(rng)
    history.save(tmp_path / "run", le_store=True)
    loaded = kl.History.load(tmp_path / "run")
    assert loaded.stored and isinstance(loaded.le, StoredLE)
    assert not (tmp_path / "run" / "le.zarr").is_file()
    assert np.array_equal(np.asarray(loaded.le), history.le)
    assert np.array_equal(loaded.target, history.target)
    assert np.array_equal(loaded.le_of("b"), history.le_of("b"))
    tail = loaded.tail(7)
    assert tail.stored and np.array_equal(np.asarray(tail.le), history.le[:, -7:])
    # saved elsewhere, the store is copied (still stored); le_store=False puts it in the .npz
    tail.save(tmp_path / "tail")
    again = kl.History.load(tmp_path / "tail")
    assert again.stored and np.array_equal(np.asarray(again.le), history.le[:, -7:])
    loaded.save(tmp_path / "flat", le_store=False)
    flat = kl.History.load(tmp_path / "flat")
    assert not flat.stored and np.array_equal(flat.le, history.le)
    assert not (tmp_path / "flat" / "le.zarr").exists()


def test_in_memory_history_format_is_unchanged(rng, tmp_path):
    history = make_history(rng)
    history.save(tmp_path)
    assert not (tmp_path / "le.zarr").exists()
    with np.load(tmp_path / "history.npz") as data:
        assert np.array_equal(data["le"], history.le)
    assert not kl.History.load(tmp_path).stored


def test_saving_over_a_history_needs_overwrite(rng, tmp_path):
    history = make_history(rng)
    history.save(tmp_path, le_store=True)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        make_history(rng).save(tmp_path, le_store=True)
    make_history(rng).save(tmp_path, le_store=True, overwrite=True)


def test_a_truncated_or_foreign_store_is_refused(rng, tmp_path):
    history = make_history(rng)
    history.save(tmp_path / "run", le_store=True)
    write_store(history.le[:, :5], tmp_path / "run" / "le.zarr", overwrite=True)
    with pytest.raises(
        HistoryError,
        match=r"holds 5 windows.*truncated or\s*replaced\. Fix: record again\.\)\. Fix: record it again",
    ):
        kl.History.load(tmp_path / "run")
    import shutil

    shutil.rmtree(tmp_path / "run" / "le.zarr")
    with pytest.raises(HistoryError, match="not a readable LE store"):
        kl.History.load(tmp_path / "run")


def test_a_store_path_outside_the_run_dir_is_refused(rng, tmp_path):
    from keras_legc._io import read_npz, write_npz
    from keras_legc.core.history import FORMAT, FORMAT_VERSION

    make_history(rng).save(tmp_path, le_store=True)
    manifest, data = read_npz(tmp_path / "history.npz", FORMAT, FORMAT_VERSION)
    write_npz(tmp_path / "history.npz", {**manifest, "le_store": "../elsewhere.zarr"},
              dict(data), overwrite=True, compress=False)  # fmt: skip
    with pytest.raises(HistoryError, match="not a store name inside the run directory"):
        kl.History.load(tmp_path)


def test_missing_zarr_is_a_clear_error(rng, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zarr", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'keras-legc\[distributed\]'"):
        make_history(rng).save(tmp_path, le_store=True)
    with pytest.raises(MissingDependencyError, match="zarr"):
        Recorder(["a"], {"a": (2, 2)}, window=5, target=lambda: 0.0, run_dir=tmp_path,
                 le_store=True)  # fmt: skip


# -- the recorder writing into the store ----------------------------------------------------------
def record(rng_seed, steps=230, epoch=31, **kwargs):
    """A numpy 'training' of two layers through the recorder; returns (recorder, history)."""
    rng = np.random.default_rng(rng_seed)
    targets = iter(rng.random(10_000))
    rec = Recorder(["a", "b"], {"a": (12, 7), "b": (7, 3)}, window=8, overlap=0.25,
                   target=lambda: next(targets), background=False, **kwargs)  # fmt: skip
    w = [rng.normal(size=(12, 7)), rng.normal(size=(7, 3))]
    for step in range(steps):
        w = [x + 0.05 * rng.normal(size=x.shape) for x in w]
        rec.step(w)
        if step % epoch == epoch - 1:
            rec.end_epoch()
    return rec, rec.finish({"a": w[0], "b": w[1]})


def test_recorder_with_a_store_records_the_same_history(tmp_path):
    _, memory = record(0)
    rec, stored = record(0, run_dir=tmp_path, le_store=True, store_chunks=(16, 5))
    assert stored.stored and memory.n_windows == stored.n_windows > 10
    assert np.array_equal(np.asarray(stored.le), memory.le)
    assert np.array_equal(stored.target, memory.target)
    assert rec._le_rows.shape[0] == 5  # memory holds one chunk of windows, not the series
    loaded = kl.History.load(tmp_path)
    assert loaded.stored and np.array_equal(np.asarray(loaded.le), memory.le)
    assert not (tmp_path / "le_journal.f32").exists()  # the complete history holds every window
    assert_same_scores(quiet(kl.score, loaded), quiet(kl.score, memory))


def test_interrupted_recording_with_a_store_keeps_its_windows(tmp_path):
    _, memory = record(0)
    rec = Recorder(["a", "b"], {"a": (12, 7), "b": (7, 3)}, window=8, overlap=0.25,
                   target=lambda: 0.0, background=False, run_dir=tmp_path, le_store=True,
                   store_chunks=(16, 5))  # fmt: skip
    rng = np.random.default_rng(1)
    w = [rng.normal(size=(12, 7)), rng.normal(size=(7, 3))]
    for step in range(100):
        w = [x + 0.05 * rng.normal(size=x.shape) for x in w]
        rec.step(w)
        if step == 60:
            rec.end_epoch()  # a complete save, then windows only in the journal
    saved = rec._saved_windows
    assert 0 < saved < rec.n_le
    # no finish(): as if killed. The journal has every closed window.
    with pytest.warns(LegcWarning, match="interrupted"):
        loaded = kl.History.load(tmp_path)
    assert loaded.n_windows == rec.n_le
    full = rec.history()
    assert np.array_equal(np.asarray(loaded.le), np.asarray(full.le))


def test_le_store_needs_a_run_dir():
    with pytest.raises(InvalidArgumentError, match="needs a run_dir"):
        Recorder(["a"], {"a": (2, 2)}, window=5, target=lambda: 0.0, le_store=True)


# -- streaming scoring ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [{}, {"lag": 2}, {"difference": True, "max_lag": 3}, {"criterion": None, "fdr": True},
     {"max_lag": 40}],  # too large: capped, with a single warning
)  # fmt: skip
def test_streaming_a_store_is_bit_identical_to_memory(rng, tmp_path, options):
    history = make_history(rng, n_rows=600, k=30)
    stored = stored_copy(history, tmp_path, chunk_rows=64)
    assert stored.le.chunk_rows == 64
    want = quiet(kl.score, history, **options)
    for chunk_size, threads in [(1, 1), (37, 2), (4096, 1)]:
        # the store's chunks (64 rows) do not divide the blocks: blocks round up to whole chunks
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = kl.score(stored, chunk_size=chunk_size, threads=threads, **options)
        assert_same_scores(got, want)
        assert len([w for w in caught if "max_lag" in str(w.message)]) == (
            1 if "max_lag" in options and options["max_lag"] == 40 else 0
        )
        if options.get("fdr"):
            assert np.array_equal(got.qvalues, want.qvalues, equal_nan=True)
    assert_same_masks(got, want)


def test_streaming_selected_weights(rng, tmp_path):
    history = make_history(rng, n_rows=600, k=30)
    stored = stored_copy(history, tmp_path, chunk_rows=50)
    selected = rng.random(history.n_weights) < 0.2
    selected[100:250] = False  # whole blocks with nothing selected
    want = quiet(kl.score, history, weights=selected)
    got = quiet(kl.score, stored, weights=selected, chunk_size=50, threads=1)
    assert_same_scores(got, want)
    assert got.static[~selected].all()


def test_nan_in_a_stored_history_is_named(rng, tmp_path):
    history = make_history(rng)
    history.le[200, 3] = np.nan
    history.save(tmp_path, le_store=True)
    with pytest.raises(kl.NonFiniteError, match="diverged"):
        quiet(kl.score, tmp_path, chunk_size=16)


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_memory_is_bounded_by_the_chunk_size(rng, tmp_path):
    n, k = 60_000, 30  # 7.2 MB of float32 LE: many times one chunk of 500 weights
    le = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, 10_000):
        le[start : start + 10_000] = rng.normal(size=(10_000, k))
    history = make_history(rng, n_rows=n, le=le)
    stored = stored_copy(history, tmp_path, chunk_rows=500, chunk_windows=k)
    del le, history
    # scores of n weights are ~30 bytes each whatever the chunking; the rest must follow chunk_size
    out = n * 30

    def run(chunk):
        return _peak_bytes(lambda: kl.score(stored, chunk_size=chunk, threads=1)) - out

    # first use (compiling the kernels, lazy imports) outside the measurement: run alone or after
    # other tests, the peak is then the streaming's own
    quiet(kl.score, make_history(rng), threads=1)
    small, large = run(500), run(5000)
    le_bytes = n * k * 4
    assert small < le_bytes / 3, (small, le_bytes)  # measured: ~1/5
    assert large > 3 * small, (small, large)  # the bound moves with chunk_size


# -- the last mutation survivors (issue 19): a stored history saved elsewhere, write_store's
# defaults, the fill and chunking of a new store, and the view's indexing and length checks
def _chunks(view: StoredLE) -> tuple[int, int]:
    return tuple(int(c) for c in view._open().chunks)


@pytest.fixture
def stored(rng, tmp_path):
    """A history whose LE series live in a store (saved, then loaded lazily)."""
    make_history(rng).save(tmp_path / "first", le_store=True, store_chunks=(40, 8))
    return kl.History.load(tmp_path / "first")


def test_a_stored_history_saved_elsewhere_copies_its_store_into_a_new_nested_run_dir(
    stored, tmp_path
):
    target = tmp_path / "a" / "b" / "second"  # parents that do not exist yet
    stored.save(target, store_chunks=(40, 8))
    again = kl.History.load(target)
    assert again.le.path == (target / STORE_NAME).resolve()
    assert np.array_equal(np.asarray(again.le), np.asarray(stored.le))


def test_the_windows_chunking_reaches_the_copy(stored, tmp_path):
    # other row chunks than the source's: the store is rewritten with both chunk sizes asked for
    stored.save(tmp_path / "second", store_chunks=(25, 5))
    assert _chunks(kl.History.load(tmp_path / "second").le) == (25, 5)


def test_saving_a_stored_history_over_another_store_needs_overwrite(rng, stored, tmp_path):
    make_history(rng).save(tmp_path / "second", le_store=True)
    with pytest.raises(OutputExistsError, match="already exists.*overwrite=True"):
        stored.save(tmp_path / "second", overwrite=False)
    stored.save(tmp_path / "second", overwrite=True)
    got = kl.History.load(tmp_path / "second").le
    assert np.array_equal(np.asarray(got), np.asarray(stored.le))


def test_write_store_refuses_an_existing_path_unless_told(rng, tmp_path):
    le = rng.normal(size=(6, 4)).astype(np.float32)
    write_store(le, tmp_path / "s.zarr")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_store(le, tmp_path / "s.zarr")
    view = write_store(le * 2, tmp_path / "s.zarr", overwrite=True)
    assert np.array_equal(np.asarray(view), le * 2)


def test_write_store_of_a_store_copies_it_over_an_existing_path_when_told(rng, tmp_path):
    le = rng.normal(size=(6, 4)).astype(np.float32)
    source = write_store(le, tmp_path / "a.zarr", chunk_rows=3)
    write_store(le + 1, tmp_path / "b.zarr", chunk_rows=3)
    copy = write_store(source, tmp_path / "b.zarr", chunk_rows=3, overwrite=True)  # the copy path
    assert np.array_equal(np.asarray(copy), le)


def test_a_new_store_reads_nan_where_nothing_was_written_and_chunks_one_weight(tmp_path):
    store = LEStore(tmp_path / "s.zarr", 1, chunk_rows=8, chunk_windows=4)
    store.resize(3)
    assert store.n_windows == 3
    assert np.isnan(np.asarray(StoredLE(tmp_path / "s.zarr"))).all()  # unwritten: NaN, not 0
    assert _chunks(StoredLE(tmp_path / "s.zarr")) == (1, 4)  # never more rows than weights


@pytest.mark.parametrize(
    "key",
    [
        (slice(1, 4), np.array([0, 2])),
        (2, np.array([1, 3])),
        (np.array([0, 4]), slice(1, 3)),
        (np.array([True, False, True, False, True, False]), 2),
        (slice(None), slice(None, None, 2)),
        (3, 1),
    ],
)
def test_indexing_the_view_is_numpys_indexing(rng, tmp_path, key):
    le = rng.normal(size=(6, 5)).astype(np.float32)
    view = write_store(le, tmp_path / "s.zarr", chunk_rows=4, chunk_windows=2)
    assert np.array_equal(np.asarray(view[key]), le[key])


def test_a_three_dimensional_index_names_the_two_dimensions(rng, tmp_path):
    view = write_store(rng.normal(size=(6, 5)).astype(np.float32), tmp_path / "s.zarr")
    with pytest.raises(IndexError, match="an LE store has 2 dimensions"):
        view[0, 0, 0]


def test_a_view_from_a_later_window_has_the_windows_left(rng, tmp_path):
    le = rng.normal(size=(6, 5)).astype(np.float32)
    write_store(le, tmp_path / "s.zarr")
    view = StoredLE(tmp_path / "s.zarr", start=2)
    assert view.n_windows == 3 and np.array_equal(np.asarray(view), le[:, 2:])


def test_a_view_longer_than_the_store_says_how_many_windows_it_needs(rng, tmp_path):
    write_store(rng.normal(size=(6, 5)).astype(np.float32), tmp_path / "s.zarr")
    with pytest.raises(HistoryError) as info:
        StoredLE(tmp_path / "s.zarr", n_windows=4, start=3)
    message = str(info.value)
    assert "7" in message and "replaced. Fix: record again." in message
