"""``WeightHistory``: a Keras callback that records Dense-kernel trajectories for LEGC scoring.

Only the current LE window of snapshots is held (a ring buffer of ``window`` float32 snapshots);
each closed window becomes one Lyapunov exponent per weight at once. What accumulates over training
is the LE series (weights x windows), never the raw steps x weights history.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from keras_legc.core._parallel import check_threads
from keras_legc.core.history import (
    HISTORY_FILE,
    JOURNAL_FORMAT,
    JOURNAL_NAME,
    SNAPSHOTS_FORMAT,
    SNAPSHOTS_NAME,
    History,
    RowJournal,
    journal_index,
)
from keras_legc.core.lyapunov import WindowRing, lyapunov_of_windows, n_windows, window_stride
from keras_legc.errors import HistoryError, InvalidArgumentError, NonFiniteError, OutputExistsError
from keras_legc.keras.flavour import keras
from keras_legc.keras.layers import dense_layers


class WeightHistory(keras().callbacks.Callback):
    """Record every Dense kernel weight during ``model.fit`` and turn it into LE series on the fly.

    At every ``every``-th optimizer step the kernels of all Dense layers are copied (float32) into
    a ring buffer that holds one LE window. Each time a window closes (every ``stride`` snapshots,
    ``stride = round((1 - overlap) * window)``), the windowed Lyapunov exponent of every weight is
    computed and the validation misclassification rate ``1 - accuracy`` is evaluated once. Memory
    is ``window x n_weights`` floats plus the growing LE series.

    Args:
        window: LE window length in snapshots (paper: 200 for tabular data, 50 for MNIST).
        overlap: overlap of consecutive windows, in [0, 1) (paper: 0.1).
        every: record one snapshot every ``every`` optimizer steps.
        validation_data: ``(x, y)`` for the target series. If None, the ``validation_data`` (or
            ``validation_split``) given to ``fit`` is used.
        run_dir: if given, the history is saved there at the end of every epoch and of training.
        overwrite: allow replacing a history already in ``run_dir``.
        eval_batch_size: batch size of the validation forward passes.
        save_snapshots: also append every raw float32 snapshot to ``run_dir/snapshots.f32`` (for
            debugging or offline analysis; ``n_snapshots x n_weights x 4`` bytes on disk, nothing
            in memory). Read it with :func:`keras_legc.core.history.load_snapshots`. Never needed for
            scoring.
        threads: worker threads of the LE kernel (None: every usable core).
        background: compute each window's LEs on a background thread while training goes on
            (at most one window in flight, so memory is two windows of snapshots); False computes
            them inline. The values are identical either way.
        verbose: print one line per closed window when > 1, a summary at the end when 1.

    Labels may be integers or one-hot; with a single output unit, predictions above 0.5 (above 0
    for a linear output) count as class 1.

    After ``fit``, :attr:`history` holds a :class:`History`, and :attr:`timings` the seconds spent
    copying snapshots, computing LEs (on the background thread), waiting for them, evaluating the
    target and saving.

    Example:
        >>> recorder = keras_legc.WeightHistory(window=50)
        >>> model.fit(x, y, validation_data=(xv, yv), epochs=30, callbacks=[recorder])
        >>> scores = keras_legc.score(recorder.history)
    """

    def __init__(
        self,
        window: int = 50,
        overlap: float = 0.1,
        every: int = 1,
        validation_data=None,
        run_dir: str | os.PathLike | None = None,
        overwrite: bool = False,
        eval_batch_size: int = 1024,
        save_snapshots: bool = False,
        threads: int | None = None,
        background: bool = True,
        verbose: int = 0,
    ):
        super().__init__()
        self.stride = window_stride(window, overlap)
        for name, value in (("every", every), ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}.")
        self.window, self.overlap, self.every = int(window), float(overlap), int(every)
        self.validation_data = validation_data
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.overwrite = overwrite
        self.eval_batch_size = int(eval_batch_size)
        self.verbose = verbose
        self.save_snapshots = bool(save_snapshots)
        check_threads(threads)  # refuse a bad value now, not at the first window mid-fit
        self.threads = threads
        self.background = bool(background)
        if self.save_snapshots and self.run_dir is None:
            raise InvalidArgumentError(
                "save_snapshots=True writes the raw snapshots to disk and needs a run_dir. Fix: "
                "pass WeightHistory(run_dir=..., save_snapshots=True)."
            )
        self.history: History | None = None
        self.timings: dict[str, float] = {}
        if self.run_dir is not None and not overwrite:
            if (self.run_dir / HISTORY_FILE).exists():
                raise OutputExistsError(
                    f"{self.run_dir} already holds a recorded history. Fix: choose another "
                    "run_dir, or pass overwrite=True to replace it."
                )
            if (self.run_dir / f"{JOURNAL_NAME}.json").exists():
                raise OutputExistsError(
                    f"{self.run_dir} holds an interrupted recording (a window journal without a "
                    "complete history). Fix: score what it recorded with "
                    "keras_legc.score(run_dir), choose another run_dir, or pass overwrite=True."
                )

    # -- Keras hooks ----------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._layers = dense_layers(self.model)
        self._names = [layer.name for layer in self._layers]
        self._shapes = {layer.name: tuple(layer.kernel.shape) for layer in self._layers}
        self._n = sum(int(np.prod(s)) for s in self._shapes.values())
        self._ring = WindowRing(self._n, self.window, self.overlap)
        self._snapshots = 0
        self._steps = 0
        # LE series, window-major: appending a window writes (and touches) only its own row, and
        # History.le is a transposed view of it, never a copy.
        self._le_rows = np.empty((self._expected_windows(), self._n), dtype=np.float32)
        self._n_le = 0
        self._target: list[float] = []
        self._initial = [w.copy() for w in self.model.get_weights()]
        self._val = self._resolve_validation_data()
        self._t0 = time.perf_counter()
        self._saved_windows = -1
        self.timings = {
            "snapshot_s": 0.0,
            "lyapunov_s": 0.0,
            "lyapunov_wait_s": 0.0,
            "validation_s": 0.0,
            "save_s": 0.0,
        }
        self._pending = None
        self._pool = ThreadPoolExecutor(max_workers=1) if self.background else None
        self._snap_writer = self._journal = None
        if self.save_snapshots:
            index = journal_index(SNAPSHOTS_FORMAT, self._names, self._shapes, every=self.every)
            self._snap_writer = RowJournal(
                self.run_dir, SNAPSHOTS_NAME, index, overwrite=self.overwrite
            )
        if self.run_dir is not None:
            # A complete (empty) history first, so the initial weights survive any interruption;
            # then one journal row per closed window.
            self._build().save(self.run_dir, overwrite=self.overwrite)
            self._saved_windows = 0
            index = journal_index(
                JOURNAL_FORMAT, self._names, self._shapes, window=self.window,
                overlap=self.overlap, every=self.every, target=[],
            )  # fmt: skip
            self._journal = RowJournal(self.run_dir, JOURNAL_NAME, index, overwrite=True)

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if (self._steps - 1) % self.every:
            return
        t0 = time.perf_counter()
        row = self._ring.next_row()
        start = 0
        for layer in self._layers:
            kernel = layer.kernel.numpy()
            row[start : start + kernel.size] = kernel.ravel()
            start += kernel.size
        if self._snap_writer is not None:
            self._snap_writer.append(row)
        self._snapshots += 1
        self.timings["snapshot_s"] += time.perf_counter() - t0
        if self._ring.push():
            self._close_window()

    def on_epoch_end(self, epoch, logs=None):
        self._collect()
        t0 = time.perf_counter()
        if self._snap_writer is not None:
            self._snap_writer.commit()
        if self.run_dir is not None and self._n_le != self._saved_windows:
            self._build().save(self.run_dir, overwrite=True)
            self._saved_windows = self._n_le
        self.timings["save_s"] += time.perf_counter() - t0

    def on_train_end(self, logs=None):
        try:
            self._collect()
        finally:
            self._shutdown()
        t0 = time.perf_counter()
        self.history = self._build()
        if self._snap_writer is not None:
            self._snap_writer.close()
        if self.run_dir is not None:
            self.history.save(self.run_dir, overwrite=True)
            self._journal.close(remove=True)  # the complete history now holds every window
        self.timings["save_s"] += time.perf_counter() - t0
        if self.verbose:
            print(
                f"WeightHistory: {self._snapshots} snapshots of {self._n} weights -> "
                f"{self._n_le} LE windows ({time.perf_counter() - self._t0:.1f} s)",
                file=sys.stderr,
            )

    # -- internals ------------------------------------------------------------------------------
    def _close_window(self):
        window = self._ring.chronological()
        if not np.all(np.isfinite(window)):
            step = self._steps
            raise NonFiniteError(
                f"NaN or inf in the Dense kernels by optimizer step {step}: training diverged, "
                "so its trajectory has no Lyapunov exponent. Fix: lower the learning rate or "
                "clip gradients, then record again."
            )
        t0 = time.perf_counter()
        target = self._misclassification()  # needs the model as it is now: never deferred
        self.timings["validation_s"] += time.perf_counter() - t0
        self._target.append(target)
        self._collect()  # at most one window is ever in flight
        if self._pool is not None:
            self._pending = self._pool.submit(self._lyapunov, window)
        else:
            self._append_le(self._lyapunov(window))
        if self.verbose > 1:
            print(
                f"WeightHistory: window {len(self._target)} closed at step {self._steps}, "
                f"misclassification {target:.4f}",
                file=sys.stderr,
            )

    def _expected_windows(self) -> int:
        """Windows this fit will close, from Keras' params (a guess of 16 if it cannot tell)."""
        epochs, steps = (self.params or {}).get("epochs"), (self.params or {}).get("steps")
        if not epochs or not steps:
            return 16
        snapshots = -(-int(epochs) * int(steps) // self.every)
        return max(1, n_windows(snapshots, self.window, self.overlap))

    def _append_le(self, le: np.ndarray) -> None:
        if self._n_le == self._le_rows.shape[0]:  # more windows than expected: grow
            grown = np.empty((2 * self._n_le, self._n), dtype=np.float32)
            grown[: self._n_le] = self._le_rows
            self._le_rows = grown
        self._le_rows[self._n_le] = le
        self._n_le += 1
        if self._journal is not None:
            self._journal.append(le)
            self._journal.commit(target=self._target[: self._n_le])

    def _lyapunov(self, window: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        le = lyapunov_of_windows(window.T, threads=self.threads).astype(np.float32)
        self.timings["lyapunov_s"] += time.perf_counter() - t0
        return le

    def _collect(self) -> None:
        """Wait for the window in flight (if any) and append its LE values."""
        if self._pending is not None:
            t0 = time.perf_counter()
            future, self._pending = self._pending, None
            self._append_le(future.result())  # re-raises an error of the worker here
            self.timings["lyapunov_wait_s"] += time.perf_counter() - t0

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _build(self) -> History:
        le = self._le_rows[: self._n_le].T
        final = {layer.name: layer.kernel.numpy().copy() for layer in self._layers}
        return History(
            layers=self._names,
            shapes=self._shapes,
            le=le,
            target=np.asarray(self._target[: self._n_le]),
            window=self.window,
            overlap=self.overlap,
            every=self.every,
            n_snapshots=self._snapshots,
            initial_weights=self._initial,
            final_kernels=final,
            meta={"model": self.model.name, "optimizer_steps": self._steps},
        )

    def _resolve_validation_data(self):
        data = self.validation_data
        if data is None:
            data = _validation_data_from_fit()
        if data is None:
            raise HistoryError(
                "WeightHistory needs validation data for the misclassification series. Fix: pass "
                "validation_data=(x, y) (or validation_split) to fit, or "
                "WeightHistory(validation_data=(x, y))."
            )
        if not isinstance(data, (tuple, list)) or len(data) < 2:
            raise InvalidArgumentError(
                "validation_data must be a tuple (x, y) of arrays; tf.data datasets are not "
                "supported yet. Fix: pass numpy arrays."
            )
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if len(x) != len(y) or len(x) == 0:
            raise InvalidArgumentError(
                f"validation x and y must have the same non-zero length, got {len(x)} and {len(y)}."
            )
        labels = y.argmax(axis=-1) if (y.ndim == 2 and y.shape[1] > 1) else y.reshape(len(y))
        return x, labels.astype(np.int64)

    def _misclassification(self) -> float:
        x, labels = self._val
        correct = 0
        for start in range(0, len(x), self.eval_batch_size):
            out = self.model(x[start : start + self.eval_batch_size], training=False).numpy()
            correct += int(
                (_predicted_class(out, self._layers[-1]) == labels[start : start + len(out)]).sum()
            )
        return 1.0 - correct / len(x)


def _predicted_class(out: np.ndarray, last_layer) -> np.ndarray:
    if out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(axis=1)
    activation = getattr(getattr(last_layer, "activation", None), "__name__", "")
    threshold = 0.0 if activation == "linear" else 0.5
    return (out.reshape(len(out)) > threshold).astype(np.int64)


def _validation_data_from_fit():
    """The ``(val_x, val_y)`` that the enclosing ``Model.fit`` call unpacked, if any.

    Keras 2 does not hand fit's validation data to callbacks, so look one frame up the stack for
    the ``fit`` of tf_keras and read its locals (``val_x``/``val_y`` also cover validation_split).
    """
    frame = inspect.currentframe()
    try:
        while frame is not None:
            code = frame.f_code
            if code.co_name == "fit" and "tf_keras" in code.co_filename:
                loc = frame.f_locals
                if loc.get("val_x") is not None and loc.get("val_y") is not None:
                    return loc["val_x"], loc["val_y"]
                return None
            frame = frame.f_back
        return None
    finally:
        del frame
