"""Unit-level series: one value per unit (a convolution's filter, a Dense neuron) per step.

Per weight, a network has 10^4-10^6 Granger tests on a few tens of LE windows, and after
false-discovery control almost none has power. Per unit there are 10^2-10^3 tests, and each unit's
series pools all of its incoming weights. A :class:`UnitView` turns the weight snapshots a
recorder sees into one statistic per unit (the L2 norm of its incoming weights by default), so the
same engine (:class:`keras_legc.core.recorder.Recorder`), LE kernel, Granger tests and
:class:`~keras_legc.core.scoring.Scores` run on units unchanged: a unit is a "weight" of a layer
whose shape is ``(n_units,)``.

Numpy only. Which axes of a weight index its units is the Keras side's knowledge (the layer
registry); here it is data: a :class:`UnitSpec` per weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from keras_legc.errors import InvalidArgumentError

#: What one unit's value per step is, from the weights that feed it.
STATISTICS = ("l2", "l1", "mean_abs")


@dataclass(frozen=True)
class UnitSpec:
    """Where the units of one weight are.

    Args:
        name: the key the unit series are recorded under (a layer name, or ``layer/weight``).
        shape: the weight's shape.
        unit_axes: the axes whose (C-order flattened) index is the unit, e.g. ``(-1,)`` for a
            Dense or Conv2D kernel (its output channels), ``(2, 3)`` for a DepthwiseConv2D
            kernel ``(kh, kw, channels, multiplier)`` (output channel ``c * multiplier + m``).
        layer, weight: the model's layer and weight names (default: ``name`` and ``"kernel"``),
            which channel pruning matches its groups against.
    """

    name: str
    shape: tuple[int, ...]
    unit_axes: tuple[int, ...] = (-1,)
    layer: str | None = None
    weight: str = "kernel"

    def __post_init__(self):
        shape = tuple(int(d) for d in self.shape)
        rank = len(shape)
        if rank == 0:
            raise InvalidArgumentError(f"{self.name}: a scalar weight has no units.")
        axes = tuple(int(a) for a in np.atleast_1d(self.unit_axes))
        if not axes or any(not -rank <= a < rank for a in axes):
            raise InvalidArgumentError(
                f"{self.name}: unit_axes {self.unit_axes} do not fit a weight of shape {shape}. "
                f"Fix: give axes in -{rank}..{rank - 1}."
            )
        norm = tuple(sorted(a % rank for a in axes))
        if len(set(norm)) != len(norm) or norm != tuple(range(norm[0], norm[0] + len(norm))):
            raise InvalidArgumentError(
                f"{self.name}: unit_axes {self.unit_axes} must be distinct and adjacent. Fix: "
                "name the output-channel axes of the weight, in order."
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "unit_axes", norm)
        if self.layer is None:
            object.__setattr__(self, "layer", self.name)

    @property
    def n_units(self) -> int:
        return int(np.prod([self.shape[a] for a in self.unit_axes]))


def unit_statistic(
    weight: np.ndarray, unit_axes: Sequence[int], statistic: str = "l2"
) -> np.ndarray:
    """One value per unit of ``weight``: a statistic of the entries that feed it.

    Args:
        weight: the weight array.
        unit_axes: adjacent axes whose flattened (C-order) index is the unit.
        statistic: ``"l2"`` (norm of the unit's incoming weights), ``"l1"`` or ``"mean_abs"``.

    Returns:
        float64 ``(n_units,)``.

    Example:
        >>> unit_statistic(np.array([[3.0, 0.0], [4.0, 1.0]]), (-1,))
        array([5., 1.])
    """
    if statistic not in STATISTICS:
        raise InvalidArgumentError(
            f"unknown unit statistic {statistic!r}. Fix: use one of {list(STATISTICS)}."
        )
    w = np.asarray(weight, dtype=np.float64)
    spec = UnitSpec("weight", w.shape, tuple(unit_axes))
    # move the unit axes last (in order) and flatten them: rows = incoming entries, cols = units
    moved = np.moveaxis(w, spec.unit_axes, range(w.ndim - len(spec.unit_axes), w.ndim))
    cols = moved.reshape(-1, spec.n_units) if w.size else np.zeros((0, spec.n_units))
    if statistic == "l2":
        return np.sqrt(np.einsum("ij,ij->j", cols, cols))
    if statistic == "l1":
        return np.abs(cols).sum(axis=0)
    return np.abs(cols).mean(axis=0) if cols.shape[0] else np.zeros(spec.n_units)


class UnitView:
    """Weight snapshots in, unit values out: what a recorder records at the unit level.

    Args:
        specs: one :class:`UnitSpec` per weight, in the order the weights are given.
        statistic: see :func:`unit_statistic`.

    Attributes:
        layers: the specs' names (the recorded "layers").
        shapes: ``{name: (n_units,)}``.

    Example:
        >>> view = UnitView([UnitSpec("d", (3, 2))])
        >>> view([np.ones((3, 2))])[0].round(3).tolist()
        [1.732, 1.732]
    """

    def __init__(self, specs: Sequence[UnitSpec], statistic: str = "l2"):
        if statistic not in STATISTICS:
            raise InvalidArgumentError(
                f"unknown unit statistic {statistic!r}. Fix: use one of {list(STATISTICS)}."
            )
        self.specs = list(specs)
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"unit spec names must be distinct, got {names}.")
        self.statistic = statistic
        self.layers = names
        self.shapes = {s.name: (s.n_units,) for s in self.specs}

    def __call__(self, weights: Iterable[np.ndarray]) -> list[np.ndarray]:
        out = []
        for spec, w in zip(self.specs, weights, strict=True):
            if tuple(np.shape(w)) != spec.shape:
                raise InvalidArgumentError(
                    f"{spec.name}: a weight of shape {tuple(np.shape(w))} where {spec.shape} was "
                    "declared. Fix: build the UnitView from the model being recorded."
                )
            out.append(unit_statistic(w, spec.unit_axes, self.statistic).astype(np.float32))
        return out

    def manifest(self) -> dict[str, dict]:
        """What a unit-level History keeps in ``meta["units"]``: per name, the layer, the
        weight, its unit axes and the statistic (JSON-ready)."""
        return {
            s.name: {"layer": s.layer, "weight": s.weight, "unit_axes": list(s.unit_axes),
                     "shape": list(s.shape), "statistic": self.statistic}
            for s in self.specs
        }  # fmt: skip

    def of(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{name: unit values}`` of a ``{name: weight}`` mapping (e.g. final kernels)."""
        return dict(zip(self.layers, self([weights[n] for n in self.layers]), strict=True))


def unit_max_lag(n_windows: int) -> int:
    """The largest Granger lag unit scoring tests: ``(K - 2) // 10`` windows, 1 to 14.

    The paper's cap (``(K - 2) // 3``, at most 14) leaves about 1.3 observations per regressor
    at the top lag; on planted unit data with 50 windows the BIC then picked lag 14 for
    independent units and fitted them with partial R-squared 0.95-0.98 (Benjamini-Hochberg q <
    0.05), ranking noise above the planted drivers. A tenth of the windows keeps about 7
    observations per regressor.
    """
    return max(1, min(14, (int(n_windows) - 2) // 10))


def unit_importance(scores, unit_values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One number per unit from unit-level :class:`~keras_legc.core.scoring.Scores` (lower =
    pruned first): 0 for a unit that never moved (LE 0 in every window), else the percentile in
    (0, 1] of its causal effect size (partial R-squared of the Granger F-test at the BIC lag)
    among the tested units, or of its ``unit_values`` (e.g. the final norms) where it has no valid
    test. This is :func:`keras_legc.masking.importance.legc` on units, as one number.

    Example:
        >>> unit_importance(scores, {"conv": norms})["conv"].shape   # doctest: +SKIP
        (16,)
    """
    from keras_legc.masking.importance import legc

    keys = legc(scores)({n: np.asarray(unit_values[n]) for n in scores.layers}).keys
    return {n: np.where(k[0], k[1], 0.0).astype(np.float64) for n, k in keys.items()}


__all__ = [
    "STATISTICS",
    "UnitSpec",
    "UnitView",
    "unit_importance",
    "unit_max_lag",
    "unit_statistic",
]
