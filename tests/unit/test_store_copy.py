"""keras_legc.core.store: copy_store, LEStore.open, the chunk checks and the lazy view's edges
(issue 19: tests that bite). Every expected value is the in-memory numpy array the store holds."""

import numpy as np
import pytest

from keras_legc import HistoryError, InvalidArgumentError, OutputExistsError
from keras_legc.core.store import LEStore, StoredLE, copy_store, write_store

pytest.importorskip("zarr")

N, K = 23, 10  # weights, windows: chunks of 7 weights x 4 windows leave short last chunks


@pytest.fixture
def le(rng):
    return rng.normal(size=(N, K)).astype(np.float32)


@pytest.fixture
def source(le, tmp_path):
    return write_store(le, tmp_path / "a.zarr", chunk_rows=7, chunk_windows=4)


def chunks_of(view: StoredLE) -> tuple[int, int]:
    return tuple(int(c) for c in view._open().chunks)


# -- copy_store ------------------------------------------------------------------------------------
def test_copy_store_copies_every_value_and_the_chunk_shape(le, source, tmp_path):
    target = tmp_path / "b.zarr"
    copy = copy_store(source, target)
    assert isinstance(copy, StoredLE) and copy.path == target.resolve()
    assert copy.shape == (N, K) and copy.start == 0
    assert np.array_equal(np.asarray(copy), le)  # every weight, the first and the last chunk too
    assert chunks_of(copy) == chunks_of(source) == (7, 4)
    # a fresh view of the new store reads the same (the copy is on disk, not a view of the source)
    assert np.array_equal(np.asarray(StoredLE(target)), le)
    assert StoredLE(target).n_windows == K


def test_copy_store_reads_the_source_one_chunk_of_weights_at_a_time(le, source, tmp_path):
    reads = []

    class Counting(StoredLE):
        def rows(self, start, stop):
            block = super().rows(start, stop)
            reads.append((start, block.shape[0]))
            return block

    source.__class__ = Counting
    copy_store(source, tmp_path / "b.zarr")
    # 23 weights in chunks of 7: four reads, none longer than a chunk (memory stays bounded)
    assert reads == [(0, 7), (7, 7), (14, 7), (21, 2)]


def test_the_view_converts_to_the_dtype_asked_for(le, source):
    assert np.asarray(source).dtype == np.float32
    assert source.__array__().dtype == np.float32
    for dtype in (np.float64, np.float16):
        got = source.__array__(dtype)
        assert got.dtype == dtype and np.array_equal(got, le.astype(dtype))
    assert np.asarray(source, dtype=np.float64).dtype == np.float64


def test_copy_store_of_a_window_view_copies_those_windows(le, source, tmp_path):
    view = source[:, 3:9]  # windows 3..8: a lazy view that starts at window 3
    assert isinstance(view, StoredLE) and view.start == 3
    copy = copy_store(view, tmp_path / "b.zarr")
    assert copy.shape == (N, 6) and StoredLE(tmp_path / "b.zarr").n_windows == 6
    assert np.array_equal(np.asarray(copy), le[:, 3:9])


def test_copy_store_refuses_an_existing_path_unless_overwrite(le, source, tmp_path, rng):
    target = tmp_path / "b.zarr"
    other = rng.normal(size=(5, 3)).astype(np.float32)
    write_store(other, target)
    with pytest.raises(OutputExistsError) as info:
        copy_store(source, target)
    assert str(target) in str(info.value) and "overwrite=True" in str(info.value)
    assert "Fix: choose another run_dir" in str(info.value)
    assert np.array_equal(np.asarray(StoredLE(target)), other)  # left as it was
    copy = copy_store(source, target, overwrite=True)
    assert np.array_equal(np.asarray(copy), le)
    assert np.array_equal(np.asarray(StoredLE(target)), le)


def test_write_store_of_a_stored_view_copies_it(le, source, tmp_path):
    # same chunk rows: copied chunk by chunk; other chunk rows: rewritten in the new chunks
    same = write_store(source, tmp_path / "same.zarr", chunk_rows=7)
    other = write_store(source, tmp_path / "other.zarr", chunk_rows=5, chunk_windows=3)
    assert chunks_of(same) == (7, 4) and chunks_of(other) == (5, 3)
    assert np.array_equal(np.asarray(same), le) and np.array_equal(np.asarray(other), le)


# -- LEStore.open ----------------------------------------------------------------------------------
def test_reopened_store_appends_after_its_windows(le, tmp_path):
    path = tmp_path / "s.zarr"
    store = LEStore(path, N, chunk_rows=7, chunk_windows=4)
    store.append(le[:, :6].T)
    again = LEStore.open(path)
    assert again.path == path and again.n_weights == N and again.n_windows == 6
    assert type(again.n_weights) is int and type(again.n_windows) is int
    again.append(le[:, 6:].T)
    assert again.n_windows == K
    assert np.array_equal(np.asarray(StoredLE(path)), le)


def test_reopened_store_can_be_filled_by_rows(le, tmp_path):
    path = tmp_path / "s.zarr"
    store = LEStore(path, N, chunk_rows=7, chunk_windows=4)
    store.resize(K)
    store.write_rows(0, le[:7])
    again = LEStore.open(str(path))  # a path given as a string
    again.write_rows(7, le[7:])
    assert np.array_equal(np.asarray(StoredLE(path)), le)


def test_reopening_what_is_not_a_store_is_a_clear_error(tmp_path):
    import zarr

    missing, plain = tmp_path / "missing.zarr", tmp_path / "file"
    plain.write_text("not a store")
    zarr.create_array(str(tmp_path / "ints.zarr"), shape=(4, 3), dtype="int16")
    zarr.create_array(str(tmp_path / "flat.zarr"), shape=(4,), dtype="float32")
    for path, kind in ((missing, "FileNotFoundError"), (plain, "FileExistsError")):
        with pytest.raises(HistoryError) as info:
            LEStore.open(path)
        message = str(info.value)
        assert message.startswith(f"{path} is not a readable LE store ({kind}: ")
        assert (
            "). Fix: pass the run_dir the history was recorded into, with its le.zarr." in message
        )
        assert not missing.exists()  # opening never creates a store
    for name, what in (("ints.zarr", "int16 array of 2"), ("flat.zarr", "float32 array of 1")):
        with pytest.raises(HistoryError) as info:
            LEStore.open(tmp_path / name)
        assert f"{what} dimensions, not float32 (weights, windows). Fix: record again" in str(
            info.value
        )


# -- chunk checks and the writer's own checks ------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -3, True, 2.0, "8", None])
@pytest.mark.parametrize("name", ["chunk_rows", "chunk_windows"])
def test_chunk_sizes_must_be_positive_integers(tmp_path, name, bad):
    with pytest.raises(InvalidArgumentError) as info:
        LEStore(tmp_path / "s.zarr", N, **{name: bad})
    assert f"{name} must be a positive integer, got {bad!r}" in str(info.value)
    assert not (tmp_path / "s.zarr").exists()


def test_chunk_sizes_accept_numpy_integers_and_cap_rows_at_the_weights(tmp_path):
    store = LEStore(tmp_path / "s.zarr", N, chunk_rows=np.int64(1000), chunk_windows=np.int32(1))
    assert tuple(store._array.chunks) == (N, 1)  # never a chunk taller than the array


def test_a_store_appends_only_rows_of_its_width(tmp_path, le):
    store = LEStore(tmp_path / "s.zarr", N, chunk_rows=7, chunk_windows=4)
    with pytest.raises(InvalidArgumentError, match=rf"\(windows, {N}\), got \(3, {N + 1}\)"):
        store.append(np.zeros((3, N + 1)))
    with pytest.raises(InvalidArgumentError, match=rf"\(windows, {N}\), got \({N},\)"):
        store.append(np.zeros(N))
    store.append(np.zeros((0, N)))  # nothing to add
    assert store.n_windows == 0 and store._array.shape == (N, 0)


def test_the_view_repr_names_its_path_and_shape(source, tmp_path):
    text = repr(source)
    assert text == f"StoredLE({str((tmp_path / 'a.zarr').resolve())!r}, weights={N}, windows={K})"
