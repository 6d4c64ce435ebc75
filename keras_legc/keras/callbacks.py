"""``WeightHistory``: a Keras callback that records the trajectories of every prunable weight
(:func:`keras_legc.prunable_weights`) for LEGC scoring.

Only the current LE window of snapshots is held (a ring buffer of ``window`` float32 snapshots);
each closed window becomes one Lyapunov exponent per weight at once. What accumulates over training
is the LE series (weights x windows), never the raw steps x weights history.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from keras_legc.core.dense import predicted_class
from keras_legc.core.history import History
from keras_legc.core.lyapunov import lyapunov_of_windows, n_windows
from keras_legc.core.recorder import (
    DEFAULT_EXPECTED_WINDOWS,
    DEFAULT_MAX_OVERHEAD,
    Recorder,
    budget_every,
    check_positive_int,
    check_recording,
    estimated_overhead,
)
from keras_legc.core.scoring import MIN_WINDOWS
from keras_legc.errors import HistoryError, InvalidArgumentError, LegcWarning
from keras_legc.keras.callback import Callback
from keras_legc.keras.flavour import keras, keras3, keras_of, model_flavour, tf, to_numpy
from keras_legc.keras.registry import prunable_entries
from keras_legc.masking.mask import inferred_layout

TARGETS = ("misclassification", "loss")
DEFAULT_VALIDATION_ROWS = 10_000
#: Training steps the budget calibration times before it times the LEs (at most window - 1 in
#: all: the calibration's snapshots must not close a window).
CALIBRATION_HOOKS = 20
#: Weights whose LEs the calibration times on a window of the real length (scaled to all). On the
#: background thread the timing runs (three times, the median kept) beside the training steps it
#: slows, so it must end within the window's first steps: 16,384 weights took 11-18 ms beside
#: LeNet-300-100's training on 2 cores (docs/recording-overhead/budget-*.json).
CALIBRATION_LE_WEIGHTS = 1 << 14


class WeightHistory(Callback):
    """Record every prunable weight during ``model.fit`` and turn it into LE series on the fly.

    At every ``every``-th optimizer step every prunable weight (Dense and convolution kernels,
    depthwise and pointwise kernels, embeddings, RNN kernels: :func:`keras_legc.prunable_weights`,
    flattened per (layer, weight) key) is copied (float32) into
    a ring buffer that holds one LE window. Each time a window closes (every ``stride`` snapshots,
    ``stride = round((1 - overlap) * window)``), the windowed Lyapunov exponent of every weight is
    computed and the validation misclassification rate ``1 - accuracy`` is evaluated once. Memory
    is ``window x n_weights`` floats plus the growing LE series.

    Args:
        window: LE window length in snapshots (paper: 200 for tabular data, 50 for MNIST).
        overlap: overlap of consecutive windows, in [0, 1) (paper: 0.1).
        every: record one snapshot every ``every`` optimizer steps, as given (``every=1``: every
            step). None (the default): chosen by the ``max_overhead`` budget.
        validation_data: ``(x, y)`` arrays (any backend) or a ``tf.data.Dataset`` of
            ``(x, y[, weight])`` batches for the target series; required (a HistoryError at the
            start of ``fit`` names the fix): Keras hands callbacks neither fit's
            ``validation_data`` nor its ``validation_split``, so give the recorder its own (and
            ``fit`` the same, for Keras' ``val_`` metrics). A dataset is read once, at the start
            of training, so every window is evaluated on the same rows.
        validation_batches: read at most this many batches of a validation dataset (default:
            every batch). Required for an infinite (repeated) dataset.
        validation_rows: keep at most this many rows of a validation dataset (the first ones);
            bounds the memory and the cost of each window's evaluation.
        log_dir: if given, a TensorBoard event file is written there with, per closed window (at
            its optimizer step): the target (``legc/target_<target>``), each layer's LE
            distribution (histogram ``legc/le/<layer>``) and the share of static weights (LE 0 in
            that window; ``legc/static_share`` and ``legc/static_share/<layer>``). Use a
            subfolder of the Keras TensorBoard callback's log_dir to see both side by side.
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
        target: the series the LE series are tested against: ``"misclassification"``
            (``1 - accuracy`` on the validation data, the paper's) or ``"loss"`` (the model's
            compiled loss on the validation data: continuous, and the only one for regression;
            the misclassification target with continuous labels is refused).
        le_store: keep the LE series on disk in the Zarr store ``run_dir/le.zarr`` (appended
            one chunk of windows at a time), not in memory; the History is backed by the store.
            Needs ``run_dir`` and zarr (the ``distributed`` extra). See
            :class:`keras_legc.core.recorder.Recorder`.
        store_chunks: ``(weights, windows)`` per chunk of that store (default ``(65536, 32)``).
        max_overhead: a budget for the recording's cost, as a fraction of the training time
            (0.5: ``fit`` at most about 1.5x as long), or None (record at ``every`` whatever it
            costs). ``"auto"`` (the default): :data:`~keras_legc.core.recorder.DEFAULT_MAX_OVERHEAD`
            (0.5) when ``every`` is not given, else None. Calibration: the first training steps
            (at most ``window - 1``) are recorded at ``every`` (or 1) and timed (medians of the
            training step and the snapshot copy; the copy, check and LEs of one window of the
            real length, on a thread beside the next training steps as in ``fit``, the median of
            three samples; the target, the median of three timings); then
            :func:`~keras_legc.core.recorder.budget_every`, a pure function of those costs,
            chooses the smallest ``every`` (at least the one given) whose estimated cost fits
            the budget, and the calibration's snapshots are kept at that spacing: the History is
            the one a recording at the chosen ``every`` from the first step gives. One line on
            stderr says what was chosen; a LegcWarning names the budget that would give enough
            windows when the chosen spacing leaves fewer than scoring needs (5). The History's
            ``every`` is the one chosen; its meta holds ``every_requested``, ``max_overhead``,
            ``estimated_overhead`` and the measured costs (``calibration``).
        early_stopping: the ``EarlyStopping`` callback given to ``fit``, if any; with
            ``restore_best_weights`` its best epoch's kernels are the History's final kernels.

    After ``fit``, :attr:`overhead` is the measured cost of this callback: its seconds in the
    hooks (including the final wait and save) over the training seconds between them. LEs
    computed on the background thread are not in the callback's seconds: on a machine with few
    cores they show up as slower training steps instead.

    Making the first recorder of a process imports numba and loads the compiled LE kernel
    (0.3-0.6 s on a 2-core machine, once), so that cost is not in ``fit``.

    ``steps_per_execution`` > 1: Keras calls ``on_train_batch_end`` once per executed block of
    steps, not per step, so one snapshot is recorded per executed block and ``every`` counts
    blocks: a snapshot every ``every x steps_per_execution`` optimizer steps (the last block of
    an epoch may be shorter). A LegcWarning at the start of training says so, and the History's
    meta records ``steps_per_execution`` and ``steps_per_snapshot``; ``optimizer_steps`` counts
    real optimizer steps (from the optimizer's ``iterations``).

    ``tf.distribute``: under a strategy, only the chief records and writes (decided by
    ``model.distribute_strategy.extended.should_checkpoint``). On the other workers of a
    ``MultiWorkerMirroredStrategy`` the callback is inactive: :attr:`history` stays None, it
    reads no kernels, opens no ``run_dir`` (so every worker may be given the same ``run_dir``)
    and says so once when ``verbose >= 1``. Tested with ``MirroredStrategy`` (tf_keras and Keras 3,
    TensorFlow backend) and with two local ``MultiWorkerMirroredStrategy`` workers on tf_keras.
    Keras 3 under ``MultiWorkerMirroredStrategy`` is not supported here: on this stack (Keras
    3.15.1, TensorFlow 2.21.0) Keras 3's own ``fit`` fails there, with no callback at all
    (``ValueError: Attempt to convert a value (PerReplica...)``).

    One class serves Keras 3 ``fit`` (TensorFlow, JAX backends) and tf_keras ``fit``: kernels are
    read with ``variable.numpy()`` (through ``self.model``, which syncs the JAX training state
    first) and predictions with ``numpy.asarray``.

    Labels may be integers or one-hot; with a single output unit, predictions above 0.5 (above 0
    for a linear output, read as a logit) count as class 1.

    A thin Keras adapter: it reads the kernels and evaluates the target, and the framework-free
    :class:`keras_legc.core.recorder.Recorder` does the rest (ring buffer, LE per window,
    run-directory saves, the History).

    The History's ``final_kernels`` are the kernels the model holds after ``fit``. With an
    ``EarlyStopping(restore_best_weights=True)`` in ``fit``'s callbacks, pass it as
    ``early_stopping=`` too: its best epoch's kernels are then the final ones, wherever it stands
    in the callback list, and the manifest says so (``final_kernels: "early_stopping_best"``,
    ``final_kernels_epoch``). Callbacks do not see each other in Keras, so without the argument
    the final kernels are the model's at this recorder's ``on_train_end``: right when the
    EarlyStopping comes before the recorder in the list, those before the restore when after.
    The LE and target series cover the whole training either way.

    After ``fit``, :attr:`history` holds a :class:`History`, and :attr:`timings` the seconds spent
    copying snapshots, computing LEs (on the background thread), waiting for them, evaluating the
    target and saving.

    Example:
        >>> recorder = keras_legc.WeightHistory(window=50, validation_data=(xv, yv))
        >>> model.fit(x, y, validation_data=(xv, yv), epochs=30, callbacks=[recorder])
        >>> scores = keras_legc.score(recorder.history)
    """

    def __init__(
        self,
        window: int = 50,
        overlap: float = 0.1,
        every: int | None = None,
        validation_data=None,
        run_dir: str | os.PathLike | None = None,
        overwrite: bool = False,
        eval_batch_size: int = 1024,
        save_snapshots: bool = False,
        threads: int | None = None,
        background: bool = True,
        verbose: int = 0,
        target: str = "misclassification",
        validation_batches: int | None = None,
        validation_rows: int = DEFAULT_VALIDATION_ROWS,
        log_dir: str | os.PathLike | None = None,
        le_store: bool = False,
        store_chunks: tuple[int, int] | None = None,
        max_overhead: float | str | None = "auto",
        early_stopping=None,
    ):
        super().__init__()
        # It reads no logs: tf_keras then hands the step's logs over as tensors instead of
        # converting them to numpy after every step (a median 2.85 s against 2.72 s for a
        # LeNet-300-100 fit, docs/performance.md: a cost of batch hooks, not of the recording)
        self._supports_tf_logs = True
        if target not in TARGETS:
            raise InvalidArgumentError(
                f"target must be one of {TARGETS}, got {target!r}. Fix: 'misclassification' "
                "(1 - validation accuracy, the paper's) for classifiers, 'loss' (the compiled "
                "validation loss) for regression or when accuracy moves in coarse steps."
            )
        self.target = target
        self.stride = check_recording(
            window, overlap, 1 if every is None else every, threads=threads, run_dir=run_dir, overwrite=overwrite,
            save_snapshots=save_snapshots, le_store=le_store,
        )  # fmt: skip
        if max_overhead == "auto":  # a budget by default; an explicit every is recorded as given
            max_overhead = DEFAULT_MAX_OVERHEAD if every is None else None
        self.max_overhead = _check_budget(max_overhead)
        # numba's import and the LE kernel's cache load, once per process (0.3-0.6 s on the
        # 2-core machine), here rather than in fit: on a thread beside fit's first steps they cost
        # a 3 s LeNet-300-100 fit about 0.5x (docs/performance.md)
        load_kernel_once()
        self.le_store, self.store_chunks = bool(le_store), store_chunks
        check_positive_int("eval_batch_size", eval_batch_size)
        check_positive_int("validation_rows", validation_rows)
        if validation_batches is not None:
            check_positive_int("validation_batches", validation_batches)
        self.validation_batches = validation_batches
        self.validation_rows = int(validation_rows)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.window, self.overlap = int(window), float(overlap)
        self.every = 1 if every is None else int(every)
        self.validation_data = validation_data
        self.early_stopping = _check_early_stopping(early_stopping)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.overwrite = overwrite
        self.eval_batch_size = int(eval_batch_size)
        self.verbose = verbose
        self.save_snapshots = bool(save_snapshots)
        self.threads = threads
        self.background = bool(background)
        self.history: History | None = None
        self.timings: dict[str, float] = {}
        self.overhead: float | None = None
        self._engine: Recorder | None = None
        self._active = False

    # -- Keras hooks ----------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.history, self.overhead, self._engine = None, None, None
        self._active = _is_chief(self.model)
        if not self._active:
            if self.verbose:
                print(
                    "WeightHistory: this worker is not the chief of the distribution strategy; "
                    "it records nothing (history stays None): the chief records and writes.",
                    file=sys.stderr,
                )
            return
        self._prunables = prunable_entries(self.model)
        self._keras = keras_of(self.model)
        # Keras 3: the model's compiled predict function (the eager call cost DS-CNN 0.53-0.67 s
        # per target of 2,000 images, the compiled one 0.20-0.22 s); tf_keras: the eager
        # call (the paper's path, whose targets `legc reproduce` keeps bit-identical).
        # (``self.model`` on each call: it syncs the JAX backend's training state.)
        if model_flavour(self.model) == "keras3":
            self._forward = lambda x: self.model.predict_on_batch(x)
        else:
            self._forward = lambda x: self.model(x, training=False)
        self._val = self._resolve_validation_data()
        # One linear output unit is read as a logit (class 1 above 0), any other as a probability.
        activation = getattr(getattr(self._prunables[-1].layer, "activation", None), "__name__", "")
        self._logits = activation == "linear"
        self._initial = [w.copy() for w in self.model.get_weights()]
        self._spe, self._hooks = steps_per_execution(self.model), 0
        if self._spe > 1:
            warnings.warn(
                f"WeightHistory: steps_per_execution={self._spe}, so Keras calls the callback "
                f"once per executed block of {self._spe} optimizer steps: one snapshot is "
                f"recorded per block, every={self.every} counts blocks, and snapshots are "
                f"{self.every * self._spe} optimizer steps apart (fewer across a shorter last "
                "block of an epoch). Fix: compile with steps_per_execution=1 for per-step "
                "snapshots; nothing to do if this spacing is what you want.",
                LegcWarning,
                stacklevel=2,
            )
            self._iterations = self._optimizer_steps()
        self._writer = None
        self._logged = 0  # windows written to TensorBoard
        if self.log_dir is not None:
            self._writer = tf().summary.create_file_writer(str(self.log_dir))
        self._clock = {"callback_s": 0.0, "train_s": 0.0, "last": time.perf_counter()}
        if self.max_overhead is None:
            self._start_engine(self.every, {})
        else:
            self._calibration = _Calibration(self.window - 1, self.background)

    def on_train_batch_end(self, batch, logs=None):
        if not self._active:
            return
        t0 = self._enter()
        steps = self._block_steps()
        self._hooks += 1
        if self._engine is None:
            self._calibrate(steps)
        # A generator: the engine reads the kernels only on the steps it records.
        elif self._engine.step(self._kernel_arrays(), steps):
            self._write_summaries()
        self._leave(t0)

    def on_epoch_end(self, epoch, logs=None):
        if not self._active or self._engine is None:
            return
        t0 = self._enter()
        self._engine.end_epoch()
        self._write_summaries(flush=True)
        self._leave(t0)

    def on_train_end(self, logs=None):
        if not self._active:
            return
        t0 = self._enter()
        if self._engine is None:  # ended during the calibration: every as requested, no window
            cal = self._calibration
            cal.finish_job()
            warnings.warn(
                f"WeightHistory: training ended after {sum(cal.steps)} optimizer steps, during "
                f"the max_overhead calibration and before a window of {self.window} snapshots "
                f"closed, so the history has no window (scoring needs {MIN_WINDOWS}). Fix: train "
                "longer or use a smaller window.",
                LegcWarning,
                stacklevel=2,
            )
            self._start_engine(self.every, {"calibration": {"steps": sum(cal.steps)}})
            self._replay(cal)
        final, source = self._final_kernels()
        self._engine.meta.update(source)
        if self.max_overhead is not None:
            self._engine.meta["overhead"] = self._overhead_now(t0)
        try:
            self.history = self._engine.finish(final)
            self._write_summaries(flush=True)
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._leave(t0)
            self.overhead = self._overhead_now(time.perf_counter())

    # -- recording, calibration and the clock --------------------------------------------------
    def _new_engine(self, every: int, meta: dict | None = None):
        """The Recorder of this fit (sized for the windows of the whole fit)."""
        return Recorder(
            self._names(), self._shapes(),
            window=self.window, target=self._target_fn(), overlap=self.overlap, every=every,
            threads=self.threads, background=self.background, run_dir=self.run_dir,
            overwrite=self.overwrite, save_snapshots=self.save_snapshots,
            le_store=self.le_store, store_chunks=self.store_chunks,
            expected_windows=max(1, self._expected_windows(every, hooks_done=0)),
            initial_weights=self._initial, kernels=self._kernels, meta=meta,
            verbose=self.verbose, name="WeightHistory", target_name=self.target,
        )  # fmt: skip

    def _start_engine(self, every: int, extra: dict) -> None:
        meta = {"model": self.model.name, "target": self.target}
        # Layouts an array's rank does not tell (a transposed or depthwise convolution, an RNN
        # kernel), so masks built later from the scores alone use the right axes.
        layouts = {
            u.key: [u.spec.in_axis, u.spec.blocks] for u in self._prunables
            if (u.spec.in_axis, u.spec.blocks) != inferred_layout(u.shape)
        }  # fmt: skip
        if layouts:
            meta["layouts"] = layouts
        if self._spe > 1:
            meta.update(steps_per_execution=self._spe, steps_per_snapshot=every * self._spe)
        if self.max_overhead is not None:
            meta.update(every_requested=self.every, max_overhead=self.max_overhead)
        self._engine = self._new_engine(every, {**meta, **extra})
        self.timings = self._engine.timings

    def _calibrate(self, steps: int) -> None:
        """One hook of the budget calibration: time the training step and a snapshot, keep the
        snapshot; once the costs are measured, choose ``every`` and start recording."""
        cal = self._calibration
        t0 = time.perf_counter()
        row = np.concatenate([k.ravel() for k in self._kernel_arrays()])
        if cal.hook(self._between, row, time.perf_counter() - t0, steps, self.window, self.threads):
            self._choose_every(cal)

    def _choose_every(self, cal: _Calibration) -> None:
        """Measure the costs, choose ``every`` by :func:`budget_every`, say so in one line (and
        warn when too few windows will close), start the recorder and replay the calibration's
        snapshots into it at the chosen spacing: the History is then exactly the one a recording
        at that ``every`` from the first step would give."""
        costs = cal.costs(self._target_fn(), self.window, self.threads)
        hooks = self._expected_hooks()
        if hooks and self.background:
            costs["fit_steps"] = hooks  # the last window's LEs, waited for at the end
        choice = budget_every(costs, self.max_overhead, self.stride, self.every)
        every = choice["every"]
        windows = self._expected_windows(every, guess=None, hooks_done=0)
        self._start_engine(every, {
            "estimated_overhead": choice["estimated_overhead"],
            "calibration": {"steps": sum(cal.steps), "hooks": len(cal.rows), **costs,
                            "record_s_per_snapshot": choice["record_s_per_snapshot"]},
        })  # fmt: skip
        self._replay(cal)
        expect = "" if windows is None else f", {windows} windows expected"
        print(
            f"WeightHistory: every={every} (max_overhead={self.max_overhead:g}, estimated "
            f"overhead {choice['estimated_overhead']:.2f}: a training step "
            f"{costs['train_s'] * 1e3:.2f} ms, a recorded snapshot "
            f"{choice['record_s_per_snapshot'] * 1e3:.2f} ms with its share of a window's LE and "
            f"target{expect}; every=1 records every step)",
            file=sys.stderr,
        )
        if windows is not None and windows < MIN_WINDOWS:
            warnings.warn(self._few_windows(every, windows, costs), LegcWarning, stacklevel=3)

    def _few_windows(self, every: int, windows: int, costs: dict) -> str:
        """The warning for a budget whose ``every`` leaves fewer windows than scoring needs,
        naming the budget (and ``every``) that would give enough."""
        fit = [e for e in range(every - 1, self.every - 1, -1)
               if self._expected_windows(e, hooks_done=0) >= MIN_WINDOWS]  # fmt: skip
        if fit:
            needed = math.ceil(estimated_overhead(costs, fit[0], self.stride) * 100) / 100
            fix = (f"max_overhead={needed:g} (every={fit[0]}, {MIN_WINDOWS} windows or more), "
                   "a smaller window, more epochs, or every=1 for every step")  # fmt: skip
        else:
            fix = "a smaller window or more epochs"
        return (
            f"WeightHistory: max_overhead={self.max_overhead:g} chose every={every}, and at that "
            f"spacing this fit closes {windows} window(s) of {self.window} snapshots, fewer than "
            f"the {MIN_WINDOWS} that scoring needs. Fix: {fix}."
        )

    def _replay(self, cal: _Calibration) -> None:
        """Feed the calibration's snapshots to the recorder, one call per hook as recorded."""
        for row, steps in zip(cal.rows, cal.steps, strict=True):
            self._engine.step([row], steps)
        self._calibration = None

    def _enter(self) -> float:
        """Start timing a hook: the time since the previous hook left was training."""
        t0 = time.perf_counter()
        self._between = t0 - self._clock["last"]
        self._clock["train_s"] += self._between
        return t0

    def _leave(self, t0: float) -> None:
        t1 = time.perf_counter()
        self._clock["callback_s"] += t1 - t0
        self._clock["last"] = t1

    def _overhead_now(self, now: float) -> float:
        """This callback's seconds (up to ``now``) over the training seconds between its hooks."""
        spent = self._clock["callback_s"] + now - self._clock["last"]
        return spent / max(self._clock["train_s"], 1e-9)

    def _block_steps(self) -> int:
        """Optimizer steps since the previous hook: 1, or the executed block's length."""
        if self._spe == 1:
            return 1
        now = self._optimizer_steps()
        steps, self._iterations = now - self._iterations, now
        return max(1, steps)

    def _optimizer_steps(self) -> int:
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        if iterations is None:  # no optimizer to ask: count whole blocks
            return self._hooks * self._spe
        return int(np.asarray(iterations.numpy()))

    # -- internals ------------------------------------------------------------------------------
    def history_so_far(self) -> History | None:
        """The windows closed so far in the running ``fit`` (None before it starts or when no
        window has closed yet); the window in flight on the background thread is not included.

        Example:
            >>> recent = recorder.history_so_far().tail(12)   # e.g. in another callback
        """
        if self._engine is None or self._engine.n_le == 0:
            return None
        return self._engine.history()

    @property
    def _ring(self):
        """The engine's one-window ring buffer (None before ``fit``)."""
        return self._engine.ring if self._engine is not None else None

    def _kernel_arrays(self):
        """The kernels as numpy arrays, read lazily (the engine reads them only on the steps it
        records); ``self.model`` syncs the JAX backend's training state into the variables."""
        self.model  # noqa: B018 - the JAX state sync
        return (entry.numpy() for entry in self._prunables)

    def _kernels(self) -> dict[str, np.ndarray]:
        return {
            name: k.copy() for name, k in zip(self._names(), self._kernel_arrays(), strict=True)
        }

    def _names(self) -> list[str]:
        return [entry.key for entry in self._prunables]

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of what is recorded per name (the weights'; units override it)."""
        return {entry.key: entry.shape for entry in self._prunables}

    def _write_summaries(self, flush: bool = False) -> None:
        """Write the windows whose LEs have arrived since the last call to TensorBoard."""
        engine = self._engine
        if self._writer is None or self._logged == engine.n_le:
            return
        history = engine.history(final_kernels={})  # views of the LE series, no kernel copies
        offsets = history.offsets()
        with self._writer.as_default():
            for i in range(self._logged, engine.n_le):
                step, le = engine.close_step[i], history.le[:, i]
                _scalar(f"legc/target_{self.target}", engine.target[i], step)
                _scalar("legc/static_share", np.mean(le == 0), step)
                for name, rows in offsets.items():
                    _histogram(f"legc/le/{name}", le[rows], step)
                    _scalar(f"legc/static_share/{name}", np.mean(le[rows] == 0), step)
        self._logged = engine.n_le
        if flush:
            self._writer.flush()

    def _final_kernels(self) -> tuple[dict[str, np.ndarray] | None, dict]:
        """The kernels the model holds once ``fit`` returns, and a manifest note if restored.

        The ``early_stopping`` callback given to the constructor, with ``restore_best_weights``,
        sets its best epoch's weights in its own ``on_train_end`` (both Keras do so whenever it
        holds best weights), before or after this recorder's: either way its ``best_weights``
        are the kernels ``fit`` returns with (None: the model's kernels now).
        """
        stop = self.early_stopping
        if stop is None or not stop.restore_best_weights or stop.best_weights is None:
            return None, {}  # the kernels at the end of training: nothing to note
        source = {
            "final_kernels": "early_stopping_best",
            "final_kernels_epoch": stop.best_epoch + 1,
        }
        index = {id(w): i for i, w in enumerate(self.model.weights)}
        final = {
            entry.key: np.array(stop.best_weights[index[id(entry.variable)]], dtype=np.float32)
            for entry in self._prunables
        }
        return final, source

    def _expected_hooks(self) -> int | None:
        """Hooks (executed blocks of ``steps_per_execution`` steps) of the whole fit, from Keras'
        params (None if it cannot tell)."""
        epochs, steps = (self.params or {}).get("epochs"), (self.params or {}).get("steps")
        if not epochs or not steps:
            return None
        return int(epochs) * -(-int(steps) // self._spe)

    def _expected_windows(
        self,
        every: int,
        guess: int | None = DEFAULT_EXPECTED_WINDOWS,
        hooks_done: int | None = None,
    ) -> int | None:
        """Windows the rest of this fit will close, from Keras' params (``guess`` if it cannot
        tell): one hook per executed block of ``steps_per_execution`` steps, less the
        ``hooks_done`` (default: those gone)."""
        total = self._expected_hooks()
        if total is None:
            return guess
        hooks = total - (self._hooks if hooks_done is None else hooks_done)
        snapshots = -(-max(hooks, 0) // every)
        return n_windows(snapshots, self.window, self.overlap)

    def _resolve_validation_data(self):
        data, batches = self.validation_data, self.validation_batches
        if data is None:
            raise HistoryError(
                f"WeightHistory needs validation data for the {self.target} series, and Keras "
                "does not hand fit's validation_data or validation_split to callbacks. Fix: "
                "WeightHistory(validation_data=(x_val, y_val)) or a batched tf.data.Dataset "
                "(with validation_batches=N if it repeats); give fit the same data too if you "
                "want Keras' val_ metrics."
            )
        if isinstance(data, tf().data.Dataset):
            data = materialise_dataset(data, batches, self.validation_rows)
        if not isinstance(data, (tuple, list)) or len(data) < 2:
            raise InvalidArgumentError(
                f"validation_data must be a tuple (x, y) of arrays or a tf.data.Dataset of (x, y) "
                f"batches, got {type(data).__name__}. Fix: pass one of those."
            )
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if len(x) != len(y) or len(x) == 0:
            raise InvalidArgumentError(
                f"validation x and y must have the same non-zero length, got {len(x)} and {len(y)}."
            )
        if self.target == "loss":
            return x, y
        labels = y.argmax(axis=-1) if (y.ndim == 2 and y.shape[1] > 1) else y.reshape(len(y))
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise InvalidArgumentError(
                "the validation labels are continuous (not class indices or one-hot), so a "
                "misclassification rate means nothing (casting them to int would silently count "
                "the wrong thing). Fix: WeightHistory(target='loss'), the validation loss."
            )
        return x, labels.astype(np.int64)

    def _target_fn(self):
        if self.target == "misclassification":
            return self._misclassification
        loss = self.model.loss
        if not (isinstance(loss, str) or callable(loss)):
            raise InvalidArgumentError(
                f"target='loss' needs a model compiled with one loss, got {loss!r}. Fix: compile "
                "with a single loss, or use target='misclassification'."
            )
        self._loss_fn = self._keras.losses.get(loss)
        return self._validation_loss

    def _validation_loss(self) -> float:
        x, y = self._val
        total = 0.0
        for start in range(0, len(x), self.eval_batch_size):
            out = self._forward(x[start : start + self.eval_batch_size])
            labels = y[start : start + len(out)]
            if labels.ndim == len(out.shape) - 1:  # (n,) labels vs (n, k) outputs, as fit does
                labels = labels[..., None]
            batch = to_numpy(self._loss_fn(labels, out))
            total += float(np.sum(batch))
        return total / len(x)

    def _misclassification(self) -> float:
        x, labels = self._val
        correct = 0
        for start in range(0, len(x), self.eval_batch_size):
            out = to_numpy(self._forward(x[start : start + self.eval_batch_size]))
            pred = predicted_class(out, logits=self._logits)
            correct += int((pred == labels[start : start + len(out)]).sum())
        return 1.0 - correct / len(x)


# TensorBoard summaries through tf.summary.write (core TensorFlow) in the scalars/histograms
# plugins' formats: tf.summary.scalar/histogram need the tensorboard package, which TF no longer
# installs; TensorBoard, wherever it runs, reads these files the same way.
HISTOGRAM_BUCKETS = 30


def _plugin(name: str) -> bytes:
    from tensorflow.core.framework import summary_pb2

    data = summary_pb2.SummaryMetadata.PluginData(plugin_name=name)
    return summary_pb2.SummaryMetadata(plugin_data=data).SerializeToString()


def _scalar(tag: str, value: float, step: int) -> None:
    tf().summary.write(tag, np.float32(value), step=step, metadata=_plugin("scalars"))


def _histogram(tag: str, values: np.ndarray, step: int) -> None:
    """TensorBoard's histogram format: rows ``[left edge, right edge, count]``."""
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        buckets = np.array([[lo, hi, values.size]], dtype=np.float64)
    else:
        counts, edges = np.histogram(values, bins=HISTOGRAM_BUCKETS, range=(lo, hi))
        buckets = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
    tf().summary.write(tag, buckets, step=step, metadata=_plugin("histograms"))


def materialise_dataset(dataset, batches: int | None, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``batches`` batches (at most ``rows`` rows) of a ``tf.data`` validation set.

    Read once, so every LE window is evaluated on the same rows even if the dataset shuffles or
    augments on each pass.

    Args:
        dataset: a ``tf.data.Dataset`` of ``(x, y)`` or ``(x, y, sample_weight)`` batches.
        batches: read at most this many batches (None: until the end or ``rows``).
        rows: keep at most this many rows.

    Returns:
        ``(x, y)`` numpy arrays.

    Example:
        >>> ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(64)
        >>> x, y = materialise_dataset(ds, None, 10_000)
    """
    if batches is None and int(dataset.cardinality()) == int(tf().data.INFINITE_CARDINALITY):
        raise InvalidArgumentError(
            "the validation dataset is infinite (repeated), so WeightHistory cannot tell which "
            "batches make the validation set. Fix: pass validation_steps to fit, or "
            "WeightHistory(validation_batches=N), or drop .repeat() from the validation dataset."
        )
    xs, ys, n = [], [], 0
    for i, element in enumerate(dataset):
        if (batches is not None and i >= batches) or n >= rows:
            break
        if not isinstance(element, (tuple, list)) or len(element) < 2:
            raise InvalidArgumentError(
                "the validation dataset must yield (x, y) or (x, y, sample_weight) batches, got "
                f"{type(element).__name__}. Fix: map it to (x, y) tuples."
            )
        x, y = np.asarray(element[0]), np.asarray(element[1])
        if x.ndim < 2 or y.ndim == 0 or len(x) != len(y):
            raise InvalidArgumentError(
                f"the validation dataset must be batched, with as many labels as inputs per "
                f"batch; got x {x.shape}, y {y.shape}. Fix: dataset.batch(n) after pairing x, y."
            )
        xs.append(x[: rows - n])
        ys.append(y[: rows - n])
        n += len(xs[-1])
    if n == 0:
        raise InvalidArgumentError(
            "the validation dataset yielded no rows. Fix: pass a non-empty one."
        )
    return np.concatenate(xs), np.concatenate(ys)


def _check_early_stopping(callback):
    """``early_stopping``: None or an ``EarlyStopping`` callback of tf_keras or Keras 3."""
    if callback is None:
        return None
    kinds = (keras().callbacks.EarlyStopping, keras3().callbacks.EarlyStopping)
    if not isinstance(callback, kinds):
        raise InvalidArgumentError(
            f"early_stopping must be the EarlyStopping callback given to fit, got "
            f"{type(callback).__name__}. Fix: stop = keras.callbacks.EarlyStopping(..., "
            "restore_best_weights=True); fit(..., callbacks=[stop, recorder]) with "
            "WeightHistory(early_stopping=stop)."
        )
    return callback


class _Calibration:
    """The budget calibration: the first hooks' training seconds, snapshots and their copy times,
    and one window's LEs timed the way the recorder will run them.

    The snapshots are kept (fewer than ``window`` of them, so no window closes) and replayed into
    the recorder once ``every`` is chosen, so nothing is discarded. With a background recorder the
    LEs are timed on a thread beside the next training steps, as they will run: timed alone, they
    took half as long as beside training on the 2-core machine, and the choice overshot its
    budget twice over (``docs/performance.md``).
    """

    def __init__(self, most: int, background: bool):
        self.most = most  # hooks at most (window - 1)
        # hooks timed before the LEs (inline) or before the LEs start (background: the rest of
        # the hooks, up to window - 1, run beside them); at least 2, as the first step, which
        # traces the train function, is not a sample
        self.plain = min(CALIBRATION_HOOKS, max(2, most // 4) if background else most, most)
        self.background = background
        self.rows: list[np.ndarray] = []
        self.train_s: list[float] = []
        self.snapshot_s: list[float] = []  # alone
        self.beside_s: list[float] = []  # beside the background LE timing
        self.steps: list[int] = []
        self._job = None  # the background LE timing: a thread and its result
        load_kernel_once()  # done when the recorder was made: its first call is not timed

    def hook(self, train_s: float, row, snapshot_s: float, steps: int, window, threads) -> bool:
        """Record one hook; True when the calibration is done."""
        if self._job is None:  # the steps beside the LE timing are slowed by it
            self.train_s.append(train_s)
            self.snapshot_s.append(snapshot_s)
        elif self._job[0].is_alive():  # a snapshot while LEs run, as some will while recording
            self.beside_s.append(snapshot_s)
        self.rows.append(row)
        self.steps.append(steps)
        if not self.background:
            return len(self.rows) == self.plain
        if self._job is None and len(self.rows) == self.plain:
            self._start_job(window, threads)
        elif self._job is not None and not self._job[0].is_alive():
            return True
        if len(self.rows) == self.most:  # no more hooks before a window closes: wait
            self.finish_job()
            return True
        return False

    def finish_job(self) -> None:
        """Wait for the background timing."""
        if self._job is not None:
            self._job[0].join()

    def _start_job(self, window: int, threads) -> None:
        rows = list(self.rows)
        result: dict = {}

        def job():
            # three samples of different weights, each read cold as in fit, the median kept
            times = []
            try:
                for part in range(3):
                    t0 = time.perf_counter()
                    _close_a_sample_window(rows, window, threads, part)
                    times.append(time.perf_counter() - t0)
            except BaseException as exc:  # raised on the training thread by costs()
                result["error"] = exc
                return
            result["s"] = float(np.median(times))

        thread = threading.Thread(target=job, daemon=True, name="WeightHistory calibration")
        self._job = (thread, result)
        thread.start()

    def costs(self, target, window: int, threads: int | None) -> dict[str, float]:
        """Seconds per training step (the median; the first step, which traces the train
        function, left out), per snapshot (means: a snapshot's cost adds up, and its tail is
        most of it; alone, and with a background recorder beside the LE timing), per window's
        LEs with the window's copy and check (at most :data:`CALIBRATION_LE_WEIGHTS` weights,
        scaled to all; beside training with a background recorder, else alone, the median of
        three) and per target (the median of three evaluations)."""
        n = self.rows[0].size
        scale = n / min(n, CALIBRATION_LE_WEIGHTS)
        train = float(np.median(self.train_s[1:] or self.train_s))
        out = {
            "train_s": train,
            "snapshot_s": float(np.mean(self.snapshot_s[1:] or self.snapshot_s)),
        }
        if self.beside_s:
            out["snapshot_beside_s"] = float(np.mean(self.beside_s))
        if self.background:
            self.finish_job()
            if "error" in self._job[1]:
                raise self._job[1]["error"]
            out["lyapunov_s"] = self._job[1]["s"] * scale
        else:
            out["lyapunov_s"] = _median_seconds(
                lambda: _close_a_sample_window(self.rows, window, threads)
            )
            out["lyapunov_s"] *= scale
        out["target_s"] = _median_seconds(target)
        return out


def _close_a_sample_window(rows: list[np.ndarray], window: int, threads, part: int = 0) -> None:
    """What the recorder does when a window closes, on a sample of the weights (the ``part``-th
    block of :data:`CALIBRATION_LE_WEIGHTS`, or the last whole block of a smaller net): copy a
    window of the real length (the calibration's snapshots, repeated), check it finite (the
    result is unused: it is the cost being timed), compute its LEs."""
    n = rows[0].size
    cols = min(n, CALIBRATION_LE_WEIGHTS)
    start = min(part * cols, n - cols)
    sample = np.stack([row[start : start + cols] for row in rows])[np.arange(window) % len(rows)]
    np.all(np.isfinite(sample))
    lyapunov_of_windows(sample.T, threads=threads)


@functools.cache
def load_kernel_once() -> None:
    """Import numba and load (or compile) the LE kernel, once per process."""
    lyapunov_of_windows(np.zeros((1, 4), dtype=np.float32), threads=1)


def _median_seconds(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _check_budget(value) -> float | None:
    """``max_overhead``: None or a finite number > 0 (``"auto"`` is resolved before)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or (not math.isfinite(value) or value <= 0)
    ):
        raise InvalidArgumentError(
            f"max_overhead must be a positive finite fraction of the training time (0.1: at "
            f"most about 10% slower), or None for no budget; got {value!r}. Fix: pass e.g. "
            "max_overhead=0.1."
        )
    return float(value)


def steps_per_execution(model) -> int:
    """The ``steps_per_execution`` a model was compiled with (1 if it does not say).

    tf_keras keeps it in the ``model._steps_per_execution`` variable, Keras 3 in
    ``model.steps_per_execution``.

    Args:
        model: a compiled tf_keras or Keras 3 model.

    Returns:
        The number of optimizer steps per executed block (``on_train_batch_end`` call).

    Example:
        >>> model.compile("sgd", "mse", steps_per_execution=4)
        >>> steps_per_execution(model)
        4
    """
    if model_flavour(model) == "keras3":
        value = getattr(model, "steps_per_execution", 1)
    else:
        value = getattr(model, "_steps_per_execution", None)
    if value is None:
        return 1
    return max(1, int(np.asarray(value.numpy() if hasattr(value, "numpy") else value)))


def _is_chief(model) -> bool:
    """Whether this process records: True unless a ``tf.distribute`` strategy says another
    worker is the chief (the one that checkpoints)."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None:
        return True
    return bool(getattr(strategy.extended, "should_checkpoint", True))
