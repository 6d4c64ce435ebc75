"""The recording engine: kernel snapshots in, an LE series per weight and a target series out.

Framework-free (numpy only). A training loop hands the engine the current kernels after every
optimizer step (:meth:`Recorder.step`); the engine keeps one LE window of float32 snapshots in a
:class:`~keras_legc.core.lyapunov.WindowRing`, and each time a window closes (every ``stride``
snapshots) it samples the target (a callable, e.g. the validation misclassification rate) and
computes one Lyapunov exponent per weight, inline or on a background thread. What accumulates is
the LE series (windows x weights), never the raw steps x weights history. Optionally it keeps a
run directory crash-safe (a complete :class:`History` per epoch plus a per-window journal) and
appends the raw snapshots to disk.

Two adapters feed it: :class:`keras_legc.WeightHistory` (a Keras callback) and the reproduction's
numpy trainer (:class:`legc_research.reproduce.StreamingRecorder`).
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from keras_legc._io import TargetLock
from keras_legc.core._parallel import check_positive_int, check_threads
from keras_legc.core.history import (
    HISTORY_FILE,
    JOURNAL_FORMAT,
    JOURNAL_NAME,
    SNAPSHOTS_FORMAT,
    SNAPSHOTS_NAME,
    History,
    RowJournal,
    journal_index,
    target_is_flat,
)
from keras_legc.core.lyapunov import WindowRing, lyapunov_of_windows, window_stride
from keras_legc.core.store import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_CHUNK_WINDOWS,
    STORE_NAME,
    LEStore,
    StoredLE,
    require_zarr,
)
from keras_legc.errors import InvalidArgumentError, LegcWarning, NonFiniteError, OutputExistsError

#: Rows of the LE series allocated when the number of windows is not known in advance.
DEFAULT_EXPECTED_WINDOWS = 16
TIMINGS = ("snapshot_s", "lyapunov_s", "lyapunov_wait_s", "validation_s", "save_s")
#: The recording budget of ``WeightHistory`` when neither ``every`` nor ``max_overhead`` is given:
#: the recording may add at most this fraction of the training time (0.5: ``fit`` at most 1.5x).
DEFAULT_MAX_OVERHEAD = 0.5
#: The measured costs :func:`budget_every` needs, in seconds.
COSTS = ("train_s", "snapshot_s", "lyapunov_s", "target_s")
#: Optional: ``fit_steps``, the fit's training steps when known and the LEs run on the background
#: thread: the last window's LEs are then waited for at the end of the fit; ``snapshot_beside_s``,
#: a snapshot taken while the background LEs run (slower: on 2 cores a snapshot's mean went from
#: 0.59 ms alone to 2.46 ms over a whole fit, docs/recording-overhead/loaded-mlp-tf_keras.json).
OPTIONAL_COSTS = ("fit_steps", "snapshot_beside_s")


def budget_every(costs: Mapping[str, float], budget: float, stride: int, every: int = 1) -> dict:
    """The smallest ``every`` (at least ``every``) whose estimated recording cost fits ``budget``.

    A pure function of the measured costs, so the same costs always give the same choice, and a
    larger budget never gives a larger ``every``. The cost model (:func:`estimated_overhead`):
    per window of ``stride`` recorded snapshots, ``every`` training steps apart, the recording
    costs ``stride`` snapshot copies, one target, and the window's LEs. LE seconds count in full
    even on the background thread: on the 2-core machine the training steps beside them slowed
    by as many seconds as they took (``docs/performance.md``). With ``fit_steps``, the last
    window's LEs, waited for at the end of the fit, are added once.

    Args:
        costs: seconds per ``train_s`` (training step), ``snapshot_s`` (one snapshot copy),
            ``lyapunov_s`` (the LEs of one window of every weight, with its copy and check),
            ``target_s`` (one target); optionally ``fit_steps`` (see :data:`OPTIONAL_COSTS`).
        budget: the recording's cost as a fraction of the training time (0.5: at most 1.5x).
        stride: snapshots between window closings.
        every: the smallest spacing allowed.

    Returns:
        ``{"every", "estimated_overhead", "record_s_per_snapshot"}``; ``estimated_overhead`` is
        the recording's estimated seconds over the training seconds at the chosen ``every``,
        ``record_s_per_snapshot`` a snapshot with its share of a window's LEs and target.
        Where the wait for the last window takes more than half the budget, the other costs
        are held to half of it and the estimate is above the budget.

    Example:
        >>> c = {"train_s": 0.002, "snapshot_s": 0.0005, "lyapunov_s": 0.18, "target_s": 0.02}
        >>> budget_every(c, 0.5, stride=45)["every"]
        5
    """
    missing = [k for k in COSTS if k not in costs]
    if missing:
        raise InvalidArgumentError(f"costs lack {missing}. Fix: give seconds for each of {COSTS}.")
    if not (math.isfinite(budget) and budget > 0):
        raise InvalidArgumentError(f"budget must be a positive finite fraction, got {budget!r}.")
    check_positive_int("every", every)
    check_positive_int("stride", stride)
    # The last window's wait does not fall with every: the window costs get what it leaves of
    # the budget, but at least half (beyond that, the estimate says by how much it is missed).
    # Both terms grow with the budget, so a larger budget never gives a larger every.
    final = _final_wait(costs)
    allowed = max(budget - final, budget / 2)

    def fits(e: int) -> bool:
        return estimated_overhead(costs, e, stride) - final <= allowed

    chosen = int(every)
    if not fits(chosen):  # the estimate falls as every grows: double past the budget, bisect
        hi = chosen * 2
        while not fits(hi):
            hi *= 2
        lo = hi // 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        chosen = hi
    return {
        "every": chosen,
        "estimated_overhead": estimated_overhead(costs, chosen, stride),
        "record_s_per_snapshot": _window_cost(costs, stride, chosen) / stride,
    }


def _window_cost(costs: Mapping[str, float], stride: int, every: int) -> float:
    """Recording seconds per window: the snapshot copies, the target and the LEs."""
    return (
        stride * _snapshot_cost(costs, stride, every)
        + float(costs["target_s"])
        + float(costs["lyapunov_s"])
    )


def _snapshot_cost(costs: Mapping[str, float], stride: int, every: int) -> float:
    """Seconds per snapshot: alone, plus, for the share of the training time the background LEs
    run (one window's LEs over the window's training time), what running beside them adds. The
    share falls as ``every`` grows, so the estimate still falls with ``every``."""
    alone = float(costs["snapshot_s"])
    beside = costs.get("snapshot_beside_s")
    if beside is None:
        return alone
    train = max(float(costs["train_s"]), 1e-9)
    share = min(1.0, float(costs["lyapunov_s"]) / (stride * every * train))
    return alone + share * max(0.0, float(beside) - alone)


def estimated_overhead(costs: Mapping[str, float], every: int, stride: int) -> float:
    """The cost model of :func:`budget_every`: recording seconds over training seconds."""
    train = max(float(costs["train_s"]), 1e-9)
    return _window_cost(costs, stride, every) / (stride * every * train) + _final_wait(costs)


def _final_wait(costs: Mapping[str, float]) -> float:
    """The last window's background LEs, waited for at the end, over the fit's training time."""
    steps = costs.get("fit_steps")
    if not steps:
        return 0.0
    return float(costs["lyapunov_s"]) / (int(steps) * max(float(costs["train_s"]), 1e-9))


def check_recording(
    window: int,
    overlap: float,
    every: int,
    *,
    threads: int | None = None,
    run_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    save_snapshots: bool = False,
    le_store: bool = False,
) -> int:
    """Refuse bad recording settings before training starts; returns the window stride.

    Args:
        window, overlap, every, threads, run_dir, overwrite, save_snapshots, le_store: as for
            :class:`Recorder`.

    Raises:
        InvalidArgumentError: a bad window, overlap, ``every`` or ``threads``, or
            ``save_snapshots`` without a ``run_dir``.
        OutputExistsError: ``run_dir`` already holds a history or an interrupted recording and
            ``overwrite`` is False.

    Example:
        >>> check_recording(50, 0.1, 1)
        45
    """
    stride = window_stride(window, overlap)
    check_positive_int("every", every)
    check_threads(threads)  # refuse a bad value now, not at the first window mid-fit
    if save_snapshots and run_dir is None:
        raise InvalidArgumentError(
            "save_snapshots=True writes the raw snapshots to disk and needs a run_dir. Fix: "
            "pass run_dir=... together with save_snapshots=True."
        )
    if le_store and run_dir is None:
        raise InvalidArgumentError(
            "le_store=True writes the LE series into run_dir/le.zarr and needs a run_dir. Fix: "
            "pass run_dir=... together with le_store=True."
        )
    if le_store:
        require_zarr()  # refuse now, with how to install it, not at the first window
    if run_dir is not None and not overwrite:
        run_dir = Path(run_dir)
        if (run_dir / HISTORY_FILE).exists():
            raise OutputExistsError(
                f"{run_dir} already holds a recorded history. Fix: choose another "
                "run_dir, or pass overwrite=True to replace it."
            )
        if (run_dir / f"{JOURNAL_NAME}.json").exists():
            raise OutputExistsError(
                f"{run_dir} holds an interrupted recording (a window journal without a "
                "complete history). Fix: score what it recorded with "
                "keras_legc.score(run_dir), choose another run_dir, or pass overwrite=True."
            )
    return stride


class Recorder:
    """Turn a stream of kernel snapshots into a :class:`History`, one LE window at a time.

    Args:
        layers: layer names, in the order the kernels are given to :meth:`step`.
        shapes: ``{layer: kernel shape}``.
        window: LE window length in snapshots (paper: 200 for tabular data, 50 for MNIST).
        target: called when a window closes (with the network as it is then; never deferred),
            returns the target value of that window (e.g. ``1 - validation accuracy``).
        overlap: overlap of consecutive windows, in [0, 1) (paper: 0.1).
        every: record one snapshot every ``every`` calls of :meth:`step`.
        threads: worker threads of the LE kernel (None: every usable core).
        background: compute each window's LEs on a background thread while training goes on (at
            most one window in flight); False computes them inline. The values are identical.
        run_dir: if given, a complete history is saved there now, at every :meth:`end_epoch`
            that closed a window, and at :meth:`finish`; between saves, every closed window is
            appended to a journal, so a recording killed at any point keeps its windows.
        overwrite: allow replacing what ``run_dir`` holds.
        save_snapshots: also append every raw float32 snapshot to ``run_dir/snapshots.f32``.
        le_store: keep the LE series on disk, not in memory: windows are buffered
            ``store_chunks[1]`` at a time and appended to the Zarr store ``run_dir/le.zarr``
            (and at every save), and :meth:`history` returns a History backed by the store.
            Memory then holds one chunk of windows, whatever the length of training. Needs
            ``run_dir`` and zarr (the ``distributed`` extra).
        store_chunks: ``(weights, windows)`` per chunk of the store (default ``(65536, 32)``).
        expected_windows: rows of the LE series to allocate (it grows if more windows close).
        initial_weights: kept in the History (for rewinding), e.g. ``model.get_weights()``.
        kernels: returns the current ``{layer: kernel}`` (copies), the History's final kernels
            whenever one is built without them (the saves; :meth:`finish`).
        meta: extra fields of the History's manifest (``optimizer_steps`` is added).
        verbose: print one line per closed window when > 1, a summary at :meth:`finish` when 1.
        name, target_name: how those lines name the recorder and the target.

    After :meth:`finish`, :attr:`timings` holds the seconds spent copying snapshots, computing
    LEs, waiting for them, evaluating the target and saving.

    Example:
        >>> rec = Recorder(["dense"], {"dense": (2, 3)}, window=10, target=lambda: 0.5)
        >>> for step in range(40):
        ...     rec.step([np.full((2, 3), np.sin(step))])
        >>> rec.finish({"dense": np.zeros((2, 3))}).n_windows
        4
    """

    def __init__(
        self,
        layers: Sequence[str],
        shapes: Mapping[str, Sequence[int]],
        *,
        window: int,
        target: Callable[[], float],
        overlap: float = 0.1,
        every: int = 1,
        threads: int | None = None,
        background: bool = True,
        run_dir: str | os.PathLike | None = None,
        overwrite: bool = False,
        save_snapshots: bool = False,
        le_store: bool = False,
        store_chunks: tuple[int, int] | None = None,
        expected_windows: int = DEFAULT_EXPECTED_WINDOWS,
        initial_weights: list[np.ndarray] | None = None,
        kernels: Callable[[], dict[str, np.ndarray]] | None = None,
        meta: Mapping | None = None,
        verbose: int = 0,
        name: str = "Recorder",
        target_name: str = "target",
    ):
        # lock first: a second process recording into run_dir is refused, naming the first
        self._lock = TargetLock(run_dir, "recording into").acquire() if run_dir else None
        try:
            check_recording(window, overlap, every, threads=threads, run_dir=run_dir,
                            overwrite=overwrite, save_snapshots=save_snapshots,
                            le_store=le_store)  # fmt: skip
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self.layers = list(layers)
        self.shapes = {n: tuple(int(d) for d in shapes[n]) for n in self.layers}
        self.n = sum(int(np.prod(s)) for s in self.shapes.values())
        self.window, self.overlap, self.every = int(window), float(overlap), int(every)
        # A background worker copies each closed window from the ring itself (not the training
        # thread): the ring keeps a stride of spare rows so the window stays intact meanwhile.
        stride = window_stride(self.window, self.overlap)
        self.ring = WindowRing(self.n, self.window, self.overlap, spare=stride if background else 0)
        self.target_fn, self.threads, self.verbose = target, threads, verbose
        self.name, self.target_name = name, target_name
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.initial_weights, self.meta, self._kernels = initial_weights, dict(meta or {}), kernels
        self.steps = self.snapshots = self.calls = 0
        # LE series, window-major: appending a window writes (and touches) only its own row, and
        # History.le is a transposed view of it, never a copy. With an LE store, only the windows
        # not yet appended to the store (rows n_flushed.. of the series) are held here.
        self._store_chunks = store_chunks or (DEFAULT_CHUNK_ROWS, DEFAULT_CHUNK_WINDOWS)
        self._store: LEStore | None = None
        rows = self._store_chunks[1] if le_store else max(1, int(expected_windows))
        self._le_rows = np.empty((rows, self.n), dtype=np.float32)
        self.n_le = self.n_flushed = 0
        self.target: list[float] = []
        self.close_snapshot: list[int] = []  # snapshots recorded when each window closed
        self.close_step: list[int] = []  # steps taken when each window closed
        self.timings = dict.fromkeys(TIMINGS, 0.0)
        self._t0 = time.perf_counter()
        self._pending: Future | None = None
        self._pool = ThreadPoolExecutor(max_workers=1) if background else None
        self._snap_writer = self._journal = None
        self._saved_windows = -1
        #: the OSError that stopped writing into run_dir (disk full, ...), or None
        self.save_error: OSError | None = None
        self._open_run_dir(overwrite, save_snapshots, le_store)

    # -- the stream ---------------------------------------------------------------------------
    def step(self, kernels: Iterable[np.ndarray], steps: int = 1) -> bool:
        """Count one call (``steps`` optimizer steps); on every ``every``-th call, record
        ``kernels`` (in layer order).

        ``kernels`` is only iterated when this call is recorded, so a generator that reads them
        from a framework costs nothing on the other calls. ``steps`` > 1: the call stands for a
        block of optimizer steps (Keras' ``steps_per_execution``); ``every`` counts calls.
        Returns True when a window closed.
        """
        self.calls += 1
        self.steps += steps
        if (self.calls - 1) % self.every:
            return False
        t0 = time.perf_counter()
        row, start = self.ring.next_row(), 0
        for kernel in kernels:
            row[start : start + kernel.size] = kernel.ravel()
            start += kernel.size
        if self._snap_writer is not None:
            self._on_disk(self._snap_writer.append, row)
        self.snapshots += 1
        self.timings["snapshot_s"] += time.perf_counter() - t0
        if not self.ring.push():
            return False
        self._close_window()
        return True

    def end_epoch(self) -> None:
        """Wait for the window in flight; commit the snapshots and save if a window closed."""
        self._collect()
        t0 = time.perf_counter()
        if self._snap_writer is not None:
            self._on_disk(self._snap_writer.commit)
        if self.run_dir is not None and self.n_le != self._saved_windows:
            self._on_disk(lambda: self.history().save(self.run_dir, overwrite=True))
            self._saved_windows = self.n_le
        self.timings["save_s"] += time.perf_counter() - t0

    def finish(self, final_kernels: Mapping[str, np.ndarray] | None = None) -> History:
        """Wait for the last window, stop the worker, save (if a run_dir) and return the History."""
        try:
            self._collect()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        t0 = time.perf_counter()
        history = self.history(final_kernels)
        self._warn_flat_target(history)
        if self._snap_writer is not None:
            self._on_disk(self._snap_writer.close)
        if self.run_dir is not None:
            self._on_disk(history.save, self.run_dir, overwrite=True)
            # the complete history now holds every window (after a failed save, keep the journal)
            self._on_disk(self._journal.close, remove=True)
        for writer in (self._snap_writer, self._journal):
            if writer is not None and not writer._file.closed:
                writer._file.close()
        self.timings["save_s"] += time.perf_counter() - t0
        if self._lock is not None:
            self._lock.release()
        if self.verbose:
            print(
                f"{self.name}: {self.snapshots} snapshots of {self.n} weights -> "
                f"{self.n_le} LE windows ({time.perf_counter() - self._t0:.1f} s)",
                file=sys.stderr,
            )
        return history

    def history(
        self, final_kernels: Mapping[str, np.ndarray] | None = None, *, n_windows: int | None = None
    ) -> History:
        """The :class:`History` recorded so far (windows still in flight are not included).

        Args:
            final_kernels: ``{layer: kernel}`` for tie-breaks by magnitude (default: the
                ``kernels`` callable's, else none).
            n_windows: only the first ``n_windows`` windows, as the recording stood when the
                last of them closed (its snapshot and step counts); None: everything so far.

        Example:
            >>> pt = rec.history(kernels_at_epoch_5, n_windows=rec.windows_closed_by(5 * steps))
        """
        if n_windows is None:
            k, snapshots, steps = self.n_le, self.snapshots, self.steps
        else:
            k = int(n_windows)
            if not 0 <= k <= self.n_le:
                raise InvalidArgumentError(
                    f"n_windows must be in 0..{self.n_le} (the windows recorded), got {n_windows!r}."
                )
            snapshots = self.close_snapshot[k - 1] if k else 0
            steps = self.close_step[k - 1] if k else 0
        if final_kernels is None and self._kernels is not None:
            final_kernels = self._kernels()
        if self._store is not None:
            self._flush()  # (falls back to memory, with a warning, if the disk refuses)
        if self._store is not None:
            le = StoredLE(self._store.path, k)
        else:
            le = self._le_rows[:k].T
        return History(
            layers=self.layers,
            shapes=self.shapes,
            le=le,
            target=np.asarray(self.target[:k]),
            window=self.window,
            overlap=self.overlap,
            every=self.every,
            n_snapshots=snapshots,
            initial_weights=self.initial_weights,
            final_kernels=final_kernels,
            meta={**self.meta, "optimizer_steps": steps},
        )

    def windows_closed_by(self, snapshot: int) -> int:
        """How many windows had closed once ``snapshot`` snapshots were recorded."""
        return sum(1 for s in self.close_snapshot if s <= snapshot)

    # -- internals ------------------------------------------------------------------------------
    def _open_run_dir(self, overwrite: bool, save_snapshots: bool, le_store: bool) -> None:
        """Start the snapshot file, the LE store, the first (empty) complete history and the
        window journal."""
        if save_snapshots:
            index = journal_index(SNAPSHOTS_FORMAT, self.layers, self.shapes, every=self.every)
            self._snap_writer = RowJournal(self.run_dir, SNAPSHOTS_NAME, index, overwrite=overwrite)
        if le_store:
            rows, windows = self._store_chunks
            self._store = LEStore(self.run_dir / STORE_NAME, self.n, chunk_rows=rows,
                                  chunk_windows=windows, overwrite=overwrite)  # fmt: skip
        if self.run_dir is not None:
            # A complete (empty) history first, so the initial weights survive any interruption;
            # then one journal row per closed window.
            self.history().save(self.run_dir, overwrite=overwrite)
            self._saved_windows = 0
            index = journal_index(
                JOURNAL_FORMAT, self.layers, self.shapes, window=self.window,
                overlap=self.overlap, every=self.every, target=[],
            )  # fmt: skip
            self._journal = RowJournal(self.run_dir, JOURNAL_NAME, index, overwrite=True)

    def _close_window(self) -> None:
        count, steps = self.ring.count, self.steps
        if self._pool is None:
            window = self._window(count, steps)
        t0 = time.perf_counter()
        target = float(self.target_fn())  # needs the network as it is now: never deferred
        self.timings["validation_s"] += time.perf_counter() - t0
        self.target.append(target)
        self.close_snapshot.append(self.snapshots)
        self.close_step.append(self.steps)
        self._collect()  # at most one window is ever in flight
        if self._pool is not None:  # the copy, the check and the LEs off the training thread
            self._pending = self._pool.submit(
                lambda: self._lyapunov(self._window(count, steps))
            )  # fmt: skip
        else:
            self._append_le(self._lyapunov(window))
        if self.verbose > 1:
            print(
                f"{self.name}: window {len(self.target)} closed at step {self.steps}, "
                f"{self.target_name} {target:.4f}",
                file=sys.stderr,
            )

    def _warn_flat_target(self, history: History) -> None:
        """Warn once when the target stood still for most windows (e.g. a validation error that
        reached 0): scoring finds no causal evidence in those windows."""
        flat, k = history.target_flat_windows, history.n_windows
        if not target_is_flat(flat, k):
            return
        fix = (
            "a larger or harder validation set, or fewer epochs"
            if self.target_name == "loss"
            else 'WeightHistory(target="loss"): the validation loss keeps moving after the '
            "error stops"
        )
        what = "target" if self.target_name == "target" else f"{self.target_name} target"
        warnings.warn(
            f"{self.name}: the {what} stayed at {history.target[-1]:.4g} for "
            f"the last {flat} of {k} windows: over those windows the Granger tests see a series "
            "that does not move, so they carry little or no causal evidence (when no test is "
            "valid, scores.mask(sparsity=...) falls back to the weights' order). "
            f"Fix: {fix}.",
            LegcWarning,
            stacklevel=3,
        )

    def _window(self, count: int, steps: int) -> np.ndarray:
        """The window that closed at snapshot ``count``, checked finite."""
        window = self.ring.chronological(count)
        if not np.all(np.isfinite(window)):
            raise NonFiniteError(
                f"NaN or inf in the recorded weights by optimizer step {steps}: training "
                "diverged, so its trajectory has no Lyapunov exponent. Fix: lower the learning "
                "rate or clip gradients, then record again."
            )
        return window

    def _lyapunov(self, window: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        le = lyapunov_of_windows(window.T, threads=self.threads).astype(np.float32)
        self.timings["lyapunov_s"] += time.perf_counter() - t0
        return le

    def _append_le(self, le: np.ndarray) -> None:
        if self._store is not None and self.n_le - self.n_flushed == self._le_rows.shape[0]:
            self._flush()  # a full chunk of windows: to the store
        held = self.n_le - self.n_flushed
        if held == self._le_rows.shape[0]:  # more windows than expected: grow
            grown = np.empty((2 * held, self.n), dtype=np.float32)
            grown[:held] = self._le_rows
            self._le_rows = grown
        self._le_rows[held] = le
        self.n_le += 1
        if self._journal is not None:
            self._on_disk(self._journal.append, le)
            self._on_disk(self._journal.commit, target=self.target[: self.n_le])

    def _flush(self) -> None:
        """Append the windows held in memory to the LE store. If the disk refuses, keep the
        whole series in memory from then on (read back what the store holds)."""
        held = self.n_le - self.n_flushed
        if held:
            self._on_disk(self._store.append, self._le_rows[:held])
        if self.save_error is None:
            self.n_flushed = self.n_le
            return
        stored = np.asarray(StoredLE(self._store.path, self.n_flushed)).T
        self._le_rows = np.concatenate([stored, self._le_rows[:held]])
        self._store, self.n_flushed = None, 0

    def _on_disk(self, write: Callable, *args, **kwargs) -> None:
        """Run one write into the run directory; on the first OSError (disk full, quota, file
        size limit, run_dir removed) warn once and stop writing: training goes on, the History
        stays in memory and :meth:`finish` still returns it."""
        if self.save_error is not None:
            return
        try:
            write(*args, **kwargs)
        except OSError as exc:
            self.save_error = exc
            warnings.warn(
                f"{self.name}: could not write the recording into {self.run_dir} ({exc}); "
                "training goes on and the history is kept in memory only (the run_dir keeps its "
                "last complete save). Fix: free disk space, then save the History that fit() "
                "returns with history.save(run_dir, overwrite=True).",
                LegcWarning,
                stacklevel=3,
            )

    def _collect(self) -> None:
        """Wait for the window in flight (if any) and append its LE values."""
        if self._pending is not None:
            t0 = time.perf_counter()
            future, self._pending = self._pending, None
            self._append_le(future.result())  # re-raises an error of the worker here
            self.timings["lyapunov_wait_s"] += time.perf_counter() - t0


__all__ = [
    "Recorder", "check_recording", "check_positive_int", "TIMINGS", "DEFAULT_MAX_OVERHEAD",
    "budget_every", "estimated_overhead",
]  # fmt: skip
