"""Gradual pruning, numpy side: when to prune and how much (TF-MOT's ``PruningSchedule`` shape:
``schedule(step) -> (should_prune, sparsity)``; :class:`PolynomialDecay` and
:class:`ConstantSparsity`), and a mask that only grows as the evidence is re-scored.

The Keras side (:class:`keras_legc.GradualPruning`) calls these at every optimizer step.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keras_legc.errors import InvalidArgumentError
from keras_legc.masking.importance import Importance
from keras_legc.masking.mask import Mask
from keras_legc.masking.policy import check_sparsity, mask_from_importance


class PruningSchedule(abc.ABC):
    """When to prune and to what sparsity: TF-MOT's ``PruningSchedule`` protocol.

    A schedule is called with the optimizer step (counted from 0 in the fit that prunes) and
    returns ``(should_prune, sparsity)``; ``end_step`` (the last step it prunes at, -1 for never
    ending) and ``final_sparsity`` say where it ends. :class:`keras_legc.GradualPruning` takes any
    object with these three; subclass this to write one.

    Example:
        >>> class Once(PruningSchedule):
        ...     end_step, final_sparsity = 10, 0.5
        ...     def __call__(self, step):
        ...         return step == 10, 0.5
        >>> Once()(10)
        (True, 0.5)
    """

    end_step: int
    final_sparsity: float

    @abc.abstractmethod
    def __call__(self, step: int) -> tuple[bool, float]:
        """``(should_prune, sparsity)`` at optimizer step ``step``."""

    def prunes_at(self, step: int) -> bool:
        return bool(self(step)[0])

    def sparsity_at(self, step: int) -> float:
        return float(self(step)[1])


def check_schedule(schedule) -> None:
    """Refuse an object without the :class:`PruningSchedule` protocol."""
    ok = callable(schedule) and all(hasattr(schedule, a) for a in ("end_step", "final_sparsity"))
    if not ok:
        raise InvalidArgumentError(
            f"schedule must be a pruning schedule (keras_legc.PolynomialDecay, ConstantSparsity or "
            f"a keras_legc.PruningSchedule: schedule(step) -> (should_prune, sparsity), with "
            f"end_step and final_sparsity), got {type(schedule).__name__}."
        )


@dataclass(frozen=True)
class PolynomialDecay(PruningSchedule):
    """Sparsity that rises from ``initial_sparsity`` to ``final_sparsity`` between two steps.

    ``s(step) = final + (initial - final) * (1 - t) ** power`` with ``t = (step - begin_step) /
    (end_step - begin_step)`` clipped to [0, 1]: TF-MOT's ``PolynomialDecay``. Pruning happens at
    ``begin_step`` and every ``frequency`` steps after it, and always exactly at ``end_step``, so
    the final sparsity is reached there.

    Args:
        final_sparsity: the sparsity at ``end_step``, in [0, 1).
        begin_step, end_step: optimizer steps (counted from 0 in the fit that prunes).
        frequency: steps between pruning events.
        initial_sparsity: the sparsity at ``begin_step`` (default 0).
        power: the exponent (3, as TF-MOT: most pruning early, while the net can still adapt).

    Example:
        >>> s = PolynomialDecay(0.9, begin_step=0, end_step=100, frequency=10)
        >>> [round(s.sparsity_at(t), 3) for t in (0, 50, 100)], s.prunes_at(100), s.prunes_at(55)
        ([0.0, 0.787, 0.9], True, False)
    """

    final_sparsity: float
    begin_step: int
    end_step: int
    frequency: int = 100
    initial_sparsity: float = 0.0
    power: float = 3.0

    def __post_init__(self):
        check_sparsity(self.final_sparsity)
        check_sparsity(self.initial_sparsity)
        ints = (self.begin_step, self.end_step, self.frequency)
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in ints):
            raise InvalidArgumentError(
                f"begin_step, end_step and frequency must be integers, got {ints}."
            )
        if not (0 <= self.begin_step < self.end_step) or self.frequency < 1:
            raise InvalidArgumentError(
                f"need 0 <= begin_step < end_step and frequency >= 1, got begin_step="
                f"{self.begin_step}, end_step={self.end_step}, frequency={self.frequency}. Fix: "
                "end_step is usually the number of fine-tuning steps (epochs x steps per epoch)."
            )
        if self.initial_sparsity > self.final_sparsity or self.power <= 0:
            raise InvalidArgumentError(
                "initial_sparsity must be <= final_sparsity and power > 0 (masks only grow)."
            )

    def __call__(self, step: int) -> tuple[bool, float]:
        return self.prunes_at(step), self.sparsity_at(step)

    def sparsity_at(self, step: int) -> float:
        t = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - t) ** (
            self.power
        )

    def prunes_at(self, step: int) -> bool:
        if step == self.end_step:
            return True
        return self.begin_step <= step < self.end_step and (
            (step - self.begin_step) % self.frequency == 0
        )


@dataclass(frozen=True)
class ConstantSparsity(PruningSchedule):
    """One sparsity from ``begin_step`` on, pruned again every ``frequency`` steps until
    ``end_step`` (-1: to the end of training): TF-MOT's ``ConstantSparsity``. With a mask that only
    grows, the first pruning step reaches the sparsity and later ones re-rank nothing already
    pruned.

    Example:
        >>> s = ConstantSparsity(0.5, begin_step=10, frequency=5)
        >>> s(10), s(12), s(15)
        ((True, 0.5), (False, 0.5), (True, 0.5))
    """

    target_sparsity: float
    begin_step: int
    end_step: int = -1
    frequency: int = 100

    def __post_init__(self):
        check_sparsity(self.target_sparsity)
        ints = (self.begin_step, self.end_step, self.frequency)
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in ints):
            raise InvalidArgumentError(
                f"begin_step, end_step and frequency must be integers, got {ints}."
            )
        if (
            self.begin_step < 0
            or self.frequency < 1
            or not (self.end_step == -1 or self.end_step >= self.begin_step)
        ):
            raise InvalidArgumentError(
                f"need begin_step >= 0, frequency >= 1 and end_step -1 or >= begin_step, got "
                f"begin_step={self.begin_step}, end_step={self.end_step}, "
                f"frequency={self.frequency}."
            )

    @property
    def final_sparsity(self) -> float:
        return float(self.target_sparsity)

    def __call__(self, step: int) -> tuple[bool, float]:
        within = step >= self.begin_step and (self.end_step == -1 or step <= self.end_step)
        due = within and (step == self.end_step or (step - self.begin_step) % self.frequency == 0)
        return bool(due), float(self.target_sparsity)


def grow_mask(
    previous: Mask | None,
    scorer,
    kernels,
    sparsity: float,
    *,
    per_layer: bool = False,
    block: Sequence[int] | None = None,
) -> Mask:
    """The next mask of a gradual schedule: everything ``previous`` pruned stays pruned, and the
    least important of the remaining weights are added until ``sparsity`` is reached exactly.

    Args:
        previous: the mask so far (None: nothing pruned yet).
        scorer: a scorer of :mod:`keras_legc.masking.importance` (or an :class:`Importance`).
        kernels: ``{layer: kernel}`` now (the scorer's input).
        sparsity: the sparsity to reach; at least ``previous.sparsity``.
        per_layer, block: as for :func:`~keras_legc.masking.mask_from_importance`.

    Example:
        >>> from keras_legc.masking.importance import magnitude
        >>> k = {"d": np.array([[1.0, 2.0], [3.0, 4.0]])}
        >>> m1 = grow_mask(None, magnitude(), k, 0.25)
        >>> k["d"][1, 1] = 0.5          # the net changed: the largest weight became the smallest
        >>> grow_mask(m1, magnitude(), k, 0.5)["d"].astype(int).tolist()   # 1.0 stays pruned
        [[0, 1], [1, 0]]
    """
    kernels = {n: np.asarray(k) for n, k in kernels.items()}
    importance = scorer if isinstance(scorer, Importance) else scorer(kernels, block=block)
    if previous is None:
        return mask_from_importance(importance, kernels, sparsity, per_layer=per_layer, block=block)
    previous.check_shapes({n: k.shape for n, k in kernels.items()}, what="the kernels")
    if round(check_sparsity(sparsity) * previous.n_weights) < previous.n_pruned:
        raise InvalidArgumentError(
            f"a gradual mask only grows: asked for sparsity {sparsity} below the current "
            f"{previous.sparsity:.4f}. Fix: use a non-decreasing schedule."
        )
    if importance.block is not None:
        raise InvalidArgumentError(
            "grow_mask needs per-weight importance (it ranks the already pruned weights first); "
            "this scorer scored whole blocks. Fix: use a per-weight scorer."
        )
    # Already pruned weights rank first (0 < 1), whatever the new evidence says.
    keys = {n: [previous[n].astype(np.int8), *importance.keys[n]] for n in importance.layers}
    grown = Importance(keys, reduce=("any", *importance.reduce), info=dict(importance.info))
    mask = mask_from_importance(grown, kernels, sparsity, per_layer=per_layer, block=block)
    regrown = [n for n in mask.layers if (mask[n] & ~previous[n]).any()]
    if regrown:  # a per-layer target below what an earlier (global) mask pruned in a layer
        raise InvalidArgumentError(
            f"the new mask would bring back weights already pruned in {regrown}. Fix: keep "
            "per_layer and block the same at every step of a schedule."
        )
    return mask
