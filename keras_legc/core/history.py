"""``History``: the LE series of every Dense kernel weight plus the target series, on disk or not.

Written by :class:`keras_legc.WeightHistory`; read by :func:`keras_legc.score`. Numpy only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from keras_legc._io import (
    atomic_write_json,
    check_meta,
    check_writable,
    read_npz,
    stale_temp_files,
    write_npz,
)
from keras_legc._version import __version__
from keras_legc.core._layout import layer_slices, split_by_layer
from keras_legc.errors import HistoryError, InvalidArgumentError, LegcWarning, OutputExistsError

FORMAT = "keras_legc.history"
FORMAT_VERSION = 1
HISTORY_FILE = "history.npz"
MANIFEST_FILE = "manifest.json"


class History:
    """What :class:`WeightHistory` recorded: one LE series per kernel weight plus the target series.

    Attributes:
        layers: Dense layer names in order.
        shapes: kernel shape of each layer.
        le: float32 ``(n_weights, n_windows)``; rows are the layers' kernels ``ravel()``-ed in order.
            For a history recorded with ``le_store=True``, a lazily-read
            :class:`~keras_legc.core.store.StoredLE` (``np.asarray(history.le)`` reads it all).
        target: float64 ``(n_windows,)`` validation misclassification rate at each window's end.
        window, overlap, every: the recording parameters.
        n_snapshots: number of snapshots recorded (optimizer steps / every).
        initial_weights: ``model.get_weights()`` at the start of training (for rewinding), or None.
        final_kernels: ``{layer: kernel}`` at the end of recording (for tie-breaks by magnitude).
    """

    def __init__(
        self,
        *,
        layers,
        shapes,
        le,
        target,
        window,
        overlap,
        every,
        n_snapshots,
        initial_weights=None,
        final_kernels=None,
        meta=None,
    ):
        self.layers = list(layers)
        self.shapes = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
        # An on-disk LE store stays on disk (read a block at a time by score()); else in memory.
        self.le = le if _is_stored(le) else np.asarray(le, dtype=np.float32)
        self.target = np.asarray(target, dtype=np.float64)
        self.window, self.overlap, self.every = int(window), float(overlap), int(every)
        self.n_snapshots = int(n_snapshots)
        self.initial_weights = initial_weights
        self.final_kernels = final_kernels
        self.meta = dict(meta or {})
        n_weights = sum(int(np.prod(self.shapes[n])) for n in self.layers)
        if self.le.ndim != 2 or self.le.shape != (n_weights, self.target.size):
            raise HistoryError(
                f"inconsistent history: LE array {self.le.shape}, but layers {self.shapes} have "
                f"{n_weights} weights and the target series has {self.target.size} windows. "
                "Fix: record it again with WeightHistory."
            )

    @property
    def n_windows(self) -> int:
        return int(self.target.size)

    @property
    def target_flat_windows(self) -> int:
        """How many of the last windows share the final target value (1 when it just moved)."""
        return flat_tail(self.target)

    @property
    def n_weights(self) -> int:
        return int(self.le.shape[0])

    def offsets(self) -> dict[str, slice]:
        """Row range of each layer in :attr:`le`."""
        return layer_slices(self.layers, self.shapes)

    def le_of(self, layer: str) -> np.ndarray:
        """LE series of one layer's weights, shape ``kernel.shape + (n_windows,)``."""
        if _is_stored(self.le):  # read only this layer's rows
            rows = np.asarray(self.le[self.offsets()[layer]])
            return rows.reshape(self.shapes[layer] + (self.n_windows,))
        return split_by_layer(self.le, self.layers, self.shapes)[layer]

    @property
    def stored(self) -> bool:
        """True when the LE series are on disk (an LE store), not in memory."""
        return _is_stored(self.le)

    def tail(self, n_windows: int) -> History:
        """The same history restricted to its last ``n_windows`` windows (views, no copy).

        Example:
            >>> recent = history.tail(20)     # e.g. to re-score on recent evidence only
        """
        k = int(n_windows)
        if not 1 <= k <= self.n_windows:
            raise HistoryError(f"n_windows must be in 1..{self.n_windows}, got {n_windows!r}.")
        return History(
            layers=self.layers, shapes=self.shapes, le=self.le[:, -k:], target=self.target[-k:],
            window=self.window, overlap=self.overlap, every=self.every,
            n_snapshots=self.n_snapshots, initial_weights=self.initial_weights,
            final_kernels=self.final_kernels, meta={**self.meta, "tail_windows": k},
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"History(layers={self.layers}, weights={self.n_weights}, windows={self.n_windows}, "
            f"window={self.window}, snapshots={self.n_snapshots})"
        )

    # -- persistence ----------------------------------------------------------------------------
    def save(
        self,
        run_dir: str | os.PathLike,
        *,
        overwrite: bool = False,
        le_store: bool | None = None,
        store_chunks: tuple[int, int] | None = None,
    ) -> Path:
        """Write ``history.npz`` and ``manifest.json`` into ``run_dir``, each atomically.

        Args:
            run_dir: the run directory.
            overwrite: replace a history already there.
            le_store: True writes the LE series into an on-disk Zarr store ``run_dir/le.zarr``
                (chunked, read a block of weights at a time; needs zarr) and only refers to it
                from ``history.npz``; False writes them into ``history.npz``; None (default)
                keeps them where they are (a stored history stays stored).
            store_chunks: ``(weights, windows)`` per chunk of a store written now (default
                ``(65536, 32)``); a history already stored there keeps its store as it is.

        Example:
            >>> history.save("run", le_store=True)  # LE in run/le.zarr, scored out of core
        """
        run_dir = Path(run_dir)
        stored = self.stored if le_store is None else bool(le_store)
        if stored:  # refuse before the store is written, not after
            check_writable(run_dir / HISTORY_FILE, overwrite)
        le_ref = self._stored_le_ref(run_dir, overwrite, store_chunks) if stored else None
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "keras_legc": __version__,
            "layers": self.layers,
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "window": self.window,
            "overlap": self.overlap,
            "every": self.every,
            "n_snapshots": self.n_snapshots,
            "n_windows": self.n_windows,
            "has_initial_weights": self.initial_weights is not None,
            **{k: v for k, v in self.meta.items() if k not in {"format", "version"}},
        }
        if le_ref is not None:
            manifest.update(le_ref)
            arrays = {"target": self.target}
        else:
            arrays = {"le": np.asarray(self.le), "target": self.target}
        if self.initial_weights is not None:
            arrays.update({f"init_{i}": w for i, w in enumerate(self.initial_weights)})
            manifest["n_initial_weights"] = len(self.initial_weights)
        if self.final_kernels is not None:
            arrays.update({f"final_{i}": self.final_kernels[n] for i, n in enumerate(self.layers)})

        # The .npz is the single source of truth (manifest embedded), so one atomic rename makes a
        # save complete; manifest.json is a human-readable copy written after it.
        write_npz(run_dir / HISTORY_FILE, manifest, arrays, overwrite=overwrite, compress=False)
        atomic_write_json(run_dir / MANIFEST_FILE, manifest, overwrite=True)
        return run_dir

    def _stored_le_ref(self, run_dir: Path, overwrite: bool, chunks) -> dict:
        """The manifest fields that point at this history's LE store inside ``run_dir``, after
        writing (or copying) the store there unless it is already there."""
        from keras_legc.core.store import (
            DEFAULT_CHUNK_ROWS,
            DEFAULT_CHUNK_WINDOWS,
            STORE_NAME,
            write_store,
        )

        target = (run_dir / STORE_NAME).resolve()
        le = self.le
        if not (self.stored and le.path == target):
            if self.stored and target.exists() and not overwrite:
                raise OutputExistsError(
                    f"{target} already exists. Fix: choose another run_dir, or pass overwrite=True."
                )
            run_dir.mkdir(parents=True, exist_ok=True)
            rows, windows = chunks or (DEFAULT_CHUNK_ROWS, DEFAULT_CHUNK_WINDOWS)
            le = write_store(le, target, chunk_rows=rows, chunk_windows=windows,
                             overwrite=overwrite)  # fmt: skip
        return {"le_store": STORE_NAME, "le_store_start": le.start}

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> History:
        """Read a history written by :meth:`save` (or by ``WeightHistory(run_dir=...)``).

        If the recording was interrupted (killed, crashed), this returns every window completed
        before the interruption, from the per-window journal that ``WeightHistory`` keeps beside
        the last complete save, and warns with what it found.
        """
        run_dir = Path(run_dir)
        data_path = run_dir / HISTORY_FILE
        stale = stale_temp_files(data_path)
        journal = _read_le_journal(run_dir)
        if not data_path.exists():
            if not stale and journal is None:
                raise HistoryError(
                    f"{run_dir} holds no recorded history (no {HISTORY_FILE}). Fix: pass the "
                    "run_dir given to WeightHistory."
                )
            left = ", ".join(p.name for p in stale) or "a window journal"
            raise HistoryError(
                f"{run_dir} holds no complete history, only {left}: the recording was "
                "interrupted before its first save completed. Fix: record again."
            )
        try:
            manifest, data = read_npz(data_path, FORMAT, FORMAT_VERSION, MANIFEST_TYPES)
            target = data["target"]
            le = _load_le(run_dir, manifest, data)
            init = None
            if manifest.get("has_initial_weights"):
                init = [data[f"init_{i}"] for i in range(manifest["n_initial_weights"])]
            final = None
            if f"final_{len(manifest['layers']) - 1}" in data:
                final = {n: data[f"final_{i}"] for i, n in enumerate(manifest["layers"])}
            n_snapshots, stride = manifest["n_snapshots"], _stride(manifest)
            if np.ndim(le) != 2 or np.ndim(target) != 1:
                raise ValueError(
                    f"LE array of shape {np.shape(le)} and target of shape {np.shape(target)}, "
                    "not (weights, windows) and (windows,)"
                )
        except (ValueError, KeyError, InvalidArgumentError) as exc:
            raise HistoryError(
                f"the history in {run_dir} is unreadable or corrupt ({exc}). Fix: record it "
                "again; a run that was interrupted keeps its last complete save."
            ) from exc
        notes = []
        if stale:
            notes.append(f"an interrupted save left {', '.join(p.name for p in stale)}")
        if journal is not None:
            index, rows = journal
            if index["layers"] != manifest["layers"] or index["shapes"] != manifest["shapes"]:
                raise HistoryError(
                    f"the window journal in {run_dir} belongs to another model than its "
                    f"{HISTORY_FILE} (layers {index['layers']} vs {manifest['layers']}). Fix: "
                    "record again into an empty run_dir."
                )
            if rows.shape[0] > le.shape[1]:
                k = rows.shape[0]
                # a stored history stays out of core: the journal's memmap, transposed (a view)
                le = rows.T if _is_stored(le) else np.ascontiguousarray(rows.T)
                target = np.asarray(index["target"][:k], dtype=np.float64)
                n_snapshots = manifest["window"] + (k - 1) * stride
                notes.append(
                    f"the recording was interrupted: {k} windows completed (the last full save "
                    f"had {manifest['n_windows']}); using all {k}"
                )
        if notes:
            warnings.warn(f"{run_dir}: {'; '.join(notes)}.", LegcWarning, stacklevel=2)
        known = {
            "format", "version", "keras_legc", "layers", "shapes", "window", "overlap", "every",
            "n_snapshots", "n_windows", "has_initial_weights", "n_initial_weights", "le_store",
            "le_store_start",
        }  # fmt: skip
        return cls(
            layers=manifest["layers"],
            shapes=manifest["shapes"],
            le=le,
            target=target,
            window=manifest["window"],
            overlap=manifest["overlap"],
            every=manifest["every"],
            n_snapshots=n_snapshots,
            initial_weights=init,
            final_kernels=final,
            meta={k: v for k, v in manifest.items() if k not in known},
        )


#: Types of the manifest fields that History.load reads (checked before use: the file is untrusted).
MANIFEST_TYPES = {
    "window": int, "overlap": float, "every": int, "n_snapshots": int, "n_windows": int,
    "has_initial_weights": bool, "n_initial_weights": int, "le_store": str,
    "le_store_start": int,
}  # fmt: skip


def flat_tail(values) -> int:
    """The length of the run of identical values that ends ``values`` (0 when empty).

    Example:
        >>> flat_tail([0.2, 0.1, 0.0, 0.0, 0.0])
        3
    """
    v = np.asarray(values)
    if v.size == 0:
        return 0
    moved = np.flatnonzero(v != v[-1])
    return int(v.size - (moved[-1] + 1 if moved.size else 0))


def target_is_flat(n_flat: int, n_windows: int) -> bool:
    """Whether the target stood still for most windows (more than half, at least 5): the Granger
    tests over those windows are exact fits that carry no evidence."""
    return n_flat >= 5 and 2 * n_flat > n_windows


def _is_stored(le) -> bool:
    from keras_legc.core.store import StoredLE

    return isinstance(le, StoredLE)


def _load_le(run_dir: Path, manifest: dict, data):
    """The LE series of a saved history: from ``history.npz``, or a lazy view of its LE store."""
    if "le_store" not in manifest:
        return data["le"]
    from keras_legc.core.store import StoredLE

    name = manifest["le_store"]
    if Path(name).name != name or not name:  # the manifest is untrusted: only a child of run_dir
        raise ValueError(f"le_store {name!r} is not a store name inside the run directory")
    return StoredLE(run_dir / name, manifest["n_windows"], manifest.get("le_store_start", 0))


def _stride(manifest: dict) -> int:
    from keras_legc.core.lyapunov import window_stride

    return window_stride(int(manifest["window"]), float(manifest["overlap"]))


def _read_le_journal(run_dir: Path):
    """``(index, rows)`` of the per-window LE journal in ``run_dir``; None if there is none or it
    is unreadable (then with a warning: the last complete save is still good)."""
    try:
        index, rows = read_journal(run_dir, JOURNAL_NAME, JOURNAL_FORMAT)
        if "target" not in index:  # found by the fuzz campaign: load() needs it (issue 19)
            raise HistoryError("its index records no target series. Fix: record again.")
        return index, rows
    except FileNotFoundError:
        return None
    except HistoryError as exc:
        warnings.warn(
            f"ignoring the window journal in {run_dir}: {exc} Using the last complete save.",
            LegcWarning,
            stacklevel=3,
        )
        return None


# -- raw snapshots (optional, for debugging) -------------------------------------------------------
SNAPSHOTS_NAME = "snapshots"
SNAPSHOTS_FILE = f"{SNAPSHOTS_NAME}.f32"  # written by RowJournal(run_dir, SNAPSHOTS_NAME, ...)
SNAPSHOTS_INDEX = f"{SNAPSHOTS_NAME}.json"
SNAPSHOTS_FORMAT = "keras_legc.snapshots"
# The LE of every closed window, appended as it closes, so that a recording killed at any point
# can be scored up to its last complete window (the .npz is only rewritten once per epoch).
JOURNAL_NAME = "le_journal"
JOURNAL_FORMAT = "keras_legc.le_journal"


class RowJournal:
    """Append float32 rows to ``<name>.f32`` in a run directory, crash-safely.

    Rows are written straight to the file; ``<name>.json`` (written atomically on every
    :meth:`commit`) records how many rows are complete plus any metadata, so a process killed at
    any point leaves a file whose index never claims a half-written row.
    """

    def __init__(self, run_dir, name: str, index: dict, *, overwrite: bool = False):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_path = self.run_dir / f"{name}.f32"
        self.index_path = self.run_dir / f"{name}.json"
        if self.data_path.exists() and not overwrite:
            raise OutputExistsError(
                f"{self.data_path} already exists. Fix: choose another run_dir, or pass "
                "overwrite=True."
            )
        self.index = {**index, "dtype": "float32", "n_rows": 0}
        self._file = open(self.data_path, "wb")  # noqa: SIM115 - open across fit callbacks
        self._rows = 0
        self.commit()

    def append(self, row: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(row, dtype=np.float32).data)
        self._rows += 1

    def commit(self, **updates) -> None:
        """Flush the rows written so far and record their count (and ``updates``)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self.index.update(updates, n_rows=self._rows)
        atomic_write_json(self.index_path, self.index, overwrite=True)

    def close(self, *, remove: bool = False) -> None:
        if not self._file.closed:
            if not remove:
                self.commit()
            self._file.close()
        if remove:
            self.index_path.unlink(missing_ok=True)
            self.data_path.unlink(missing_ok=True)


#: A journal index records a few numbers per window; anything this big is not one.
MAX_INDEX_BYTES = 64 * 2**20


def read_journal(run_dir, name: str, fmt: str) -> tuple[dict, np.ndarray]:
    """The index and the complete rows (a read-only memmap) of a :class:`RowJournal`."""
    import json

    run_dir = Path(run_dir)
    index_path, data_path = run_dir / f"{name}.json", run_dir / f"{name}.f32"
    if not index_path.exists() or not data_path.exists():
        raise FileNotFoundError(index_path)
    try:
        if index_path.stat().st_size > MAX_INDEX_BYTES:
            raise ValueError(f"{index_path.stat().st_size} bytes, more than any index holds")
        index = json.loads(index_path.read_text())
        if not isinstance(index, dict) or index.get("format") != fmt:
            raise ValueError(
                f"format {index.get('format') if isinstance(index, dict) else index!r}"
            )
        check_meta(index, {"n_rows": int, "n_weights": int, "target": list})
        missing = {"layers", "shapes", "n_rows", "n_weights"} - set(index)
        if missing:
            raise ValueError(f"no {sorted(missing)}")
        rows, cols = index["n_rows"], index["n_weights"]
        if rows < 0 or cols != sum(int(np.prod(s, dtype=object)) for s in index["shapes"].values()):
            raise ValueError(f"{rows} rows of {cols} weights do not fit its layers' shapes")
        if "target" in index and not (
            len(index["target"]) >= rows
            and all(isinstance(t, (int, float)) for t in index["target"])
        ):
            raise ValueError(f"its target series does not give a number for each of {rows} rows")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise HistoryError(
            f"{index_path} is not a keras_legc {fmt} index ({exc}). Fix: record again."
        ) from exc
    if data_path.stat().st_size < rows * cols * 4:
        raise HistoryError(
            f"{data_path} is shorter than the {rows} rows its index records: the file was "
            "truncated. Fix: record again."
        )
    if rows == 0:
        return index, np.zeros((0, cols), dtype=np.float32)
    return index, np.memmap(data_path, dtype=np.float32, mode="r", shape=(rows, cols))


def journal_index(fmt: str, layers, shapes, **extra) -> dict:
    return {
        "format": fmt,
        "version": FORMAT_VERSION,
        "layers": list(layers),
        "shapes": {k: list(v) for k, v in shapes.items()},
        "n_weights": int(sum(int(np.prod(v)) for v in shapes.values())),
        **extra,
    }


def load_snapshots(run_dir: str | os.PathLike) -> np.ndarray:
    """The raw snapshots saved with ``WeightHistory(save_snapshots=True)``, memory-mapped.

    Returns a read-only ``np.memmap`` of shape ``(n_snapshots, n_weights)`` (float32); rows are
    the layers' kernels ``ravel()``-ed in order, as in :attr:`History.le`. Only rows recorded as
    complete in ``snapshots.json`` are included, so this also works on an interrupted run.
    """
    try:
        return read_journal(run_dir, SNAPSHOTS_NAME, SNAPSHOTS_FORMAT)[1]
    except FileNotFoundError:
        raise HistoryError(
            f"{run_dir} holds no raw snapshots. Fix: record with "
            "WeightHistory(run_dir=..., save_snapshots=True)."
        ) from None
