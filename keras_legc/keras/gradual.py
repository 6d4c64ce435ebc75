"""``GradualPruning``: causal pruning that follows the evidence while the network adapts.

TF-MOT's gradual magnitude pruning raises the sparsity step by step during fine-tuning; this does
the same with LEGC evidence. A :class:`~keras_legc.WeightHistory` keeps recording during the
fine-tuning; at each pruning step the surviving weights are re-scored on the most recent LE windows
and the least important of them join the mask. Masks only grow, and the final sparsity is exact.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable

import numpy as np

from keras_legc.core.history import History
from keras_legc.core.scoring import (
    DEFAULT_ALLOCATION,
    DEFAULT_RANKING,
    MIN_WINDOWS,
    Scores,
    score,
)
from keras_legc.errors import InvalidArgumentError, LegcWarning, ModelStructureError
from keras_legc.keras.callback import Callback
from keras_legc.keras.holders import holder_for
from keras_legc.keras.registry import entries_by_key
from keras_legc.masking import importance
from keras_legc.masking.mask import Mask
from keras_legc.masking.policy import LAMP, check_exclude, check_lamp_room, check_per_layer
from keras_legc.masking.schedule import PruningSchedule, check_schedule, grow_mask

GRADUAL_RANKINGS = (*importance.LEGC_RANKINGS, "static_magnitude", "magnitude")


def gradual_rankings() -> tuple[str, ...]:
    """The rankings GradualPruning accepts, ``legc*`` scorers registered since import included."""
    return (*importance.legc_rankings(), "static_magnitude", "magnitude")


class GradualPruning(Callback):
    """Grow a LEGC mask during ``fit`` on a :func:`~keras_legc.prune`-wrapped model.

    At each pruning step of ``schedule`` (TF-MOT's ``PruningSchedule`` protocol:
    ``schedule(step) -> (should_prune, sparsity)``) the callback:

    1. re-scores the weights that are still kept, on the last ``recent_windows`` LE windows the
       ``recorder`` (a :class:`~keras_legc.WeightHistory` in the same ``fit``) has closed, once it
       has at least ``min_windows`` of them; before that it uses ``scores`` (e.g. the dense
       training's), or magnitude if none are given;
    2. ranks them with ``ranking`` (a scorer of :mod:`keras_legc.masking.importance`; default
       target mode's);
    3. grows the mask to the schedule's sparsity (already pruned weights stay pruned) and writes
       it into the model, zeroing the newly pruned weights at once: into the TF-MOT wrappers
       (Keras 2) or the mask constraints (Keras 3, any backend; on JAX the compiled train step
       is rebuilt, as it holds the mask as a constant).

    Optimizer steps are counted from 0 at the start of this ``fit``. Put the recorder before this
    callback in ``callbacks`` (it must see the step first), and add
    :func:`~keras_legc.pruning_callbacks` (none are needed on Keras 3).

    Args:
        recorder: the :class:`~keras_legc.WeightHistory` recording this ``fit``.
        schedule: a :class:`~keras_legc.PolynomialDecay`, :class:`~keras_legc.ConstantSparsity`
            or any :class:`~keras_legc.PruningSchedule`.
        ranking: the name of a LEGC ranking (``Scores.mask(ranking=...)``), or
            ``"static_magnitude"`` / ``"magnitude"`` (the ablations: the same schedule without
            the Granger test, or without any evidence from the recording).
        scores: evidence to use until the recorder has ``min_windows`` windows.
        recent_windows: how many of the latest LE windows each re-scoring uses.
        min_windows: windows needed before re-scoring (at least 5, a Granger test's minimum).
        per_layer: how each step's sparsity is shared among layers: ``"lamp"`` (the default,
            as ``Scores.mask``: LAMP's per-layer sparsities from the weights' magnitudes),
            ``False`` (one global ranking) or ``True`` (the same sparsity in every layer); see
            :func:`keras_legc.magnitude_mask`.
        test: the Granger test of the re-scoring (paper mode's p-values are not used here).
        exclude: weights left whole (as TF-MOT leaves the layers it is not given, such as
            depthwise kernels): layer names or weight keys (``keras_legc.prunable_weights``); the
            schedule's sparsity is then that of the other weights, and :attr:`mask` covers those.
        verbose: print one line per pruning step when 1.

    After ``fit``, :attr:`mask` is the final mask and :attr:`log` one entry per pruning step
    (step, sparsity, evidence used, windows, seconds).

    Example:
        >>> rec = keras_legc.WeightHistory(window=50, validation_data=(xv, yv))
        >>> wrapped = keras_legc.prune(model, keras_legc.Mask.keep_all(model))
        >>> wrapped.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> gradual = keras_legc.GradualPruning(
        ...     rec, keras_legc.PolynomialDecay(0.95, begin_step=0, end_step=2000, frequency=250),
        ...     scores=dense_scores)
        >>> wrapped.fit(x, y, epochs=10, callbacks=[rec, gradual, *keras_legc.pruning_callbacks()])
        >>> small = keras_legc.strip(wrapped)
    """

    def __init__(
        self,
        recorder,
        schedule: PruningSchedule,
        *,
        ranking: str = DEFAULT_RANKING,
        scores: Scores | None = None,
        recent_windows: int = 20,
        min_windows: int = 8,
        per_layer: bool | str = DEFAULT_ALLOCATION,
        test: str = "ssr_ftest",
        exclude: Iterable[str] | str | None = None,
        verbose: int = 0,
    ):
        super().__init__()
        if not callable(getattr(recorder, "history_so_far", None)):
            raise InvalidArgumentError(
                f"recorder must be the keras_legc.WeightHistory of the same fit, got "
                f"{type(recorder).__name__}. Fix: rec = keras_legc.WeightHistory(...); pass rec "
                "here and in fit's callbacks, before this callback."
            )
        check_schedule(schedule)
        if ranking not in gradual_rankings():
            raise InvalidArgumentError(
                f"unknown ranking {ranking!r}. Fix: use one of {list(gradual_rankings())}."
            )
        if int(min_windows) < MIN_WINDOWS or int(recent_windows) < int(min_windows):
            raise InvalidArgumentError(
                f"need recent_windows >= min_windows >= {MIN_WINDOWS}, got recent_windows="
                f"{recent_windows}, min_windows={min_windows}."
            )
        self.recorder, self.schedule, self.ranking = recorder, schedule, ranking
        self.scores, self.per_layer, self.test = scores, check_per_layer(per_layer), test
        self.recent_windows, self.min_windows = int(recent_windows), int(min_windows)
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude or ())
        self.verbose = verbose
        self.mask: Mask | None = None
        self.log: list[dict] = []

    # -- Keras hooks ----------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        model = self.model
        self._holder = holder_for(model)
        held = self._holder.read(model) if self._holder.is_held(model) else None
        entries = entries_by_key(model, warn=False)
        held_keys = held.layers if held is not None else []
        if not held_keys:
            raise ModelStructureError(
                "GradualPruning needs a model wrapped for pruning. Fix: wrapped = "
                "keras_legc.prune(model, keras_legc.Mask.keep_all(model)), then fit wrapped."
            )
        left = set(check_exclude(self.exclude, held_keys)) if self.exclude else set()
        self._all = {key: entries[key] for key in held_keys}  # what the evidence covers
        self._layers = {key: entries[key] for key in held_keys if key not in left}  # pruned
        start = {key: held[key] for key in self._layers}
        if self.per_layer == LAMP:  # refused before training, not at the schedule's last step
            check_lamp_room([np.size(k) for k in start.values()], self.schedule.final_sparsity)
        self.mask = Mask(start)
        self._step = 0
        self._maybe_prune(0)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        self._maybe_prune(self._step)

    def on_train_end(self, logs=None):
        if self._step < self.schedule.end_step:  # -1: a schedule without an end
            warnings.warn(
                f"fit ended after {self._step} steps, before the schedule's end_step "
                f"{self.schedule.end_step}: the mask reached {self.mask.sparsity:.4f}, not "
                f"{self.schedule.final_sparsity}. Fix: end_step <= epochs x steps per epoch.",
                LegcWarning,
                stacklevel=2,
            )

    # -- one pruning step -----------------------------------------------------------------------
    def _maybe_prune(self, step: int) -> None:
        should, target = self.schedule(step)
        if should:
            self._prune(step, float(target))

    def _prune(self, step: int, target: float) -> None:
        t0 = time.perf_counter()
        model = self.model  # on JAX: the training state synced into the variables
        kernels = {key: unit.numpy() for key, unit in self._all.items()}
        evidence, source, windows = self._evidence(kernels)
        if len(self._layers) < len(self._all):  # excluded weights: scored, then left out
            got = evidence if isinstance(evidence, importance.Importance) else evidence(kernels)
            evidence = got.only(self._layers)
            kernels = {k: kernels[k] for k in self._layers}
        self.mask = grow_mask(self.mask, evidence, kernels, target, per_layer=self.per_layer)
        self._write_mask(model)
        entry = {"step": step, "sparsity": self.mask.sparsity, "target": target,
                 "evidence": source, "windows": windows,
                 "seconds": time.perf_counter() - t0}  # fmt: skip
        self.log.append(entry)
        if self.verbose:
            print(
                f"GradualPruning step {step}: sparsity {entry['sparsity']:.4f} "
                f"({source}, {windows} windows, {entry['seconds']:.1f} s)"
            )

    def _write_mask(self, model) -> None:
        """Hold the grown mask from now on, and zero the newly pruned weights."""
        self._holder.write(model, {key: self.mask[key] for key in self._layers})

    def _evidence(self, kernels):
        """The scorer for this step, what it rests on, and how many windows it used."""
        if self.ranking == "magnitude":  # the ablation uses no recorded evidence
            return importance.magnitude(), "magnitude", 0
        history = self._recent_history()
        if history is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LegcWarning)
                kept = np.concatenate([np.ravel(self.mask[n]) if n in self._layers
                                       else np.ones(np.size(kernels[n]), bool)
                                       for n in history.layers])  # fmt: skip
                scores = score(history, test=self.test, weights=kept, progress=False)
            return self._scorer(scores), "recent windows", history.n_windows
        if self.scores is not None:
            return self._scorer(self.scores), "given scores", 0
        return importance.magnitude(), "magnitude (no evidence yet)", 0

    def _scorer(self, scores):
        if self.ranking == "magnitude":
            return importance.magnitude()
        return importance.get_scorer(self.ranking, scores)

    def _recent_history(self) -> History | None:
        history = self.recorder.history_so_far()
        if history is None or history.n_windows < self.min_windows:
            return None
        k = min(self.recent_windows, history.n_windows)
        if np.ptp(history.target[-k:]) == 0.0:
            return None  # a flat target over the recent windows: nothing to test against
        return history.tail(k)
