"""The chunked on-disk LE store: a history's LE series in Zarr, read a block of weights at a time.

A recording of millions of weights over hundreds of windows does not fit in memory (20M weights x
100 windows is 8 GB of float32). With ``Recorder(..., le_store=True)`` (or
``History.save(run_dir, le_store=True)``) the LE series live in ``run_dir/le.zarr``, a Zarr v3
array of shape ``(n_weights, n_windows)`` in chunks of ``chunk_rows`` weights x ``chunk_windows``
windows; :class:`StoredLE` is a read-only, lazily-read view of it that :class:`History` holds in
place of the in-memory array, and :func:`keras_legc.score` reads it one block of weights at a time
(on this machine, or on Dask workers that open the store themselves). Zarr is imported lazily: the
rest of the core never needs it. Numpy only otherwise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from keras_legc.errors import HistoryError, InvalidArgumentError, MissingDependencyError

STORE_NAME = "le.zarr"
#: weights per chunk: 65536 x 32 windows x 4 bytes = 8 MiB per chunk before compression
DEFAULT_CHUNK_ROWS = 1 << 16
DEFAULT_CHUNK_WINDOWS = 32
INSTALL_HINT = (
    "Fix: pip install 'keras-legc[distributed]' (or pip install zarr==3.1.6), or keep the LE "
    "series in memory (le_store=False)."
)


def require_zarr():
    """The ``zarr`` module, or a :class:`MissingDependencyError` that says how to install it.

    Example:
        >>> zarr = require_zarr()
    """
    try:
        import zarr
    except ImportError as exc:
        raise MissingDependencyError(
            f"out-of-core LE histories need the zarr package, which is not installed ({exc}). "
            + INSTALL_HINT
        ) from exc
    return zarr


def _open_array(path: Path, mode: str):
    """The float32 (weights, windows) Zarr array of the store at ``path``, opened with ``mode``
    (``"r"`` to read, ``"r+"`` to write), or a :class:`HistoryError` naming what is wrong."""
    zarr = require_zarr()
    try:
        array = zarr.open_array(str(path), mode=mode)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, TypeError) as exc:
        # (a plain file at path: FileExistsError when opened for writing)
        raise HistoryError(
            f"{path} is not a readable LE store ({type(exc).__name__}: {exc}). "
            "Fix: pass the run_dir the history was recorded into, with its le.zarr."
        ) from exc
    if array.ndim != 2 or array.dtype != np.float32:
        raise HistoryError(
            f"{path} holds a {array.dtype} array of {array.ndim} "
            "dimensions, not float32 (weights, windows). Fix: record again."
        )
    return array


def _check_chunks(chunk_rows: int, chunk_windows: int) -> None:
    for name, value in (("chunk_rows", chunk_rows), ("chunk_windows", chunk_windows)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}.")


class LEStore:
    """Append-only writer of an LE store: windows arrive one block at a time, window-major.

    Args:
        path: the store directory (conventionally ``run_dir/le.zarr``).
        n_weights: rows of the array (every kernel weight, layers ``ravel()``-ed in order).
        chunk_rows, chunk_windows: the Zarr chunk shape.
        overwrite: replace a store already at ``path``.

    The array's own shape may run ahead of what a crash-safe reader should trust: the number of
    complete windows is recorded by the :class:`History` that refers to the store (its manifest
    is written atomically after the data), never inferred from the store.

    Example:
        >>> store = LEStore(run_dir / "le.zarr", n_weights=266_200)
        >>> store.append(le_rows)             # (windows, n_weights) float32, window-major
        >>> StoredLE(store.path, store.n_windows).shape
        (266200, 8)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_weights: int,
        *,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        chunk_windows: int = DEFAULT_CHUNK_WINDOWS,
        overwrite: bool = False,
    ):
        from keras_legc.errors import OutputExistsError

        zarr = require_zarr()
        _check_chunks(chunk_rows, chunk_windows)
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise OutputExistsError(
                    f"{self.path} already exists. Fix: choose another run_dir, or pass "
                    "overwrite=True."
                )
            shutil.rmtree(self.path)
        self.n_weights = int(n_weights)
        self._array = zarr.create_array(
            str(self.path), shape=(self.n_weights, 0), dtype="float32", fill_value=np.nan,
            chunks=(max(1, min(int(chunk_rows), self.n_weights)), int(chunk_windows)),
        )  # fmt: skip
        self.n_windows = 0

    @classmethod
    def open(cls, path: str | os.PathLike) -> LEStore:
        """Reopen an existing store for writing (e.g. to finish filling it after a restart).

        Raises:
            HistoryError: ``path`` holds no LE store (missing, a plain file, another array).

        Example:
            >>> store = LEStore.open(run_dir / "le.zarr")
        """
        store = cls.__new__(cls)
        store.path = Path(path)
        store._array = _open_array(store.path, "r+")
        store.n_weights, store.n_windows = (int(d) for d in store._array.shape)
        return store

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` ``(k, n_weights)``: k more windows, each the LE of every weight."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_weights:
            raise InvalidArgumentError(
                f"LE rows must be (windows, {self.n_weights}), got {rows.shape}."
            )
        k = rows.shape[0]
        if k == 0:
            return
        self._array.resize((self.n_weights, self.n_windows + k))
        self._array[:, self.n_windows : self.n_windows + k] = rows.T
        self.n_windows += k

    def write_rows(self, start: int, block: np.ndarray) -> None:
        """Write weights ``start:start+len(block)`` of every window (a store sized in advance by
        :meth:`resize`): how a synthetic or converted history is filled a block at a time."""
        self._array[start : start + block.shape[0], :] = block

    def resize(self, n_windows: int) -> None:
        """Give the store ``n_windows`` windows (unwritten values read as NaN)."""
        self._array.resize((self.n_weights, int(n_windows)))
        self.n_windows = int(n_windows)


class StoredLE:
    """A read-only ``(n_weights, n_windows)`` float32 view of an LE store, read lazily.

    Indexing reads only what it selects (``le[a:b]``: weights a..b over every window); a column
    slice ``le[:, -k:]`` is another lazy view. ``np.asarray(le)`` reads everything (what an
    in-memory caller that needs the whole array gets). Pickles as its path, so Dask workers open
    the store themselves.

    Args:
        path: the store directory.
        n_windows: the complete windows (None: the store's own shape).
        start: the first window of the view.

    Example:
        >>> le = StoredLE("run/le.zarr", n_windows=40)
        >>> block = le.rows(0, 65_536)        # float32 (65536, 40), read from disk
    """

    def __init__(self, path: str | os.PathLike, n_windows: int | None = None, start: int = 0):
        self.path = Path(path).resolve()
        self._array = None
        array = self._open()
        total = array.shape[1]
        self.start = int(start)
        self.n_windows = total - self.start if n_windows is None else int(n_windows)
        if not (0 <= self.start and self.start + self.n_windows <= total):
            raise HistoryError(
                f"the LE store {self.path} holds {total} windows, fewer than the "
                f"{self.start + self.n_windows} its history records: it was truncated or "
                "replaced. Fix: record again."
            )
        self.n_weights = int(array.shape[0])

    def _open(self):
        if self._array is None:
            self._array = _open_array(self.path, "r")
        return self._array

    def __getstate__(self) -> dict:
        return {"path": self.path, "start": self.start, "n_windows": self.n_windows,
                "n_weights": self.n_weights, "_array": None}  # fmt: skip

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # -- the array interface History and score() use -------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_weights, self.n_windows)

    ndim = 2
    dtype = np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        return self.n_weights * self.n_windows * 4

    @property
    def chunk_rows(self) -> int:
        """Weights per chunk of the store (reads aligned to it decompress each chunk once)."""
        return int(self._open().chunks[0])

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Weights ``start:stop`` over the view's windows, read from disk: float32 ``(m, K)``."""
        return self[start:stop]

    def window_view(self, start: int, n_windows: int) -> StoredLE:
        """Windows ``start .. start + n_windows`` of this view, still lazy."""
        view = StoredLE.__new__(StoredLE)
        view.__setstate__({**self.__getstate__(), "start": self.start + int(start),
                           "n_windows": int(n_windows)})  # fmt: skip
        return view

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) != 2:  # before unpacking: a ValueError otherwise
            raise IndexError(f"an LE store has 2 dimensions, got index {key!r}")
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(cols, slice) and isinstance(rows, slice) and rows == slice(None):
            picked = range(self.n_windows)[cols]
            if picked.step == 1:
                return self.window_view(picked.start, len(picked))
        if isinstance(cols, (int, np.integer)):
            picked = range(self.n_windows)[cols]  # IndexError when out of range, as numpy
            col_key = self.start + picked
        elif isinstance(cols, slice) and (cols.step in (None, 1)):
            picked = range(self.n_windows)[cols]
            col_key = slice(self.start + picked.start, self.start + picked.start + len(picked))
        else:
            col_key = self.start + np.arange(self.n_windows)[cols]
        array = self._open()
        if isinstance(rows, (slice, int, np.integer)) and not isinstance(col_key, np.ndarray):
            return np.asarray(array[rows, col_key])
        return np.asarray(array.get_orthogonal_selection((rows, col_key)))

    def __array__(self, dtype=None, copy=None):
        out = self[: self.n_weights]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.n_weights

    def __repr__(self) -> str:
        return f"StoredLE({str(self.path)!r}, weights={self.n_weights}, windows={self.n_windows})"


def copy_store(source: StoredLE, path: str | os.PathLike, *, overwrite: bool = False) -> StoredLE:
    """Copy a stored LE view into a new store at ``path``, one chunk of weights at a time.

    Example:
        >>> copy_store(history.le, other_run / "le.zarr")
    """
    rows = source.chunk_rows
    out = LEStore(path, source.n_weights, chunk_rows=rows,
                  chunk_windows=int(source._open().chunks[1]), overwrite=overwrite)  # fmt: skip
    out.resize(source.n_windows)
    for start in range(0, source.n_weights, rows):
        out.write_rows(start, source.rows(start, min(start + rows, source.n_weights)))
    return StoredLE(path, source.n_windows)


def write_store(
    le: np.ndarray,
    path: str | os.PathLike,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    chunk_windows: int = DEFAULT_CHUNK_WINDOWS,
    overwrite: bool = False,
) -> StoredLE:
    """Write an in-memory LE array ``(n_weights, n_windows)`` into a new store.

    Example:
        >>> le = write_store(history.le, run_dir / "le.zarr")
    """
    if isinstance(le, StoredLE) and chunk_rows == le.chunk_rows:
        return copy_store(le, path, overwrite=overwrite)
    out = LEStore(path, le.shape[0], chunk_rows=chunk_rows, chunk_windows=chunk_windows,
                  overwrite=overwrite)  # fmt: skip
    out.resize(le.shape[1])
    for start in range(0, le.shape[0], chunk_rows):
        out.write_rows(start, le[start : start + chunk_rows])
    return StoredLE(path, le.shape[1])


__all__ = ["LEStore", "StoredLE", "copy_store", "write_store", "require_zarr", "STORE_NAME"]
