"""``UnitHistory``: :class:`WeightHistory` at the unit level (issue 27).

Instead of one series per weight, one series per *unit*: each output channel of every prunable
weight (a convolution's filter, a depthwise channel, a Dense neuron), the L2 norm (or L1, mean
``|w|``) of the weights that feed it at each recorded step. The LE windows, the target series,
the run directory and every option are :class:`WeightHistory`'s; the history it makes has one
"layer" per prunable weight of shape ``(n_units,)`` and ``meta["units"]`` naming each one's layer,
weight and unit axes, so ``kl.score`` tests 10^2-10^3 units instead of 10^4-10^6 weights and
``kl.prune_channels(model, importance="legc", history=...)`` can map the units to channels.
"""

from __future__ import annotations

import numpy as np

from keras_legc.core.units import STATISTICS, UnitSpec, UnitView
from keras_legc.errors import InvalidArgumentError
from keras_legc.keras.callbacks import WeightHistory


class UnitHistory(WeightHistory):
    """Record one series per unit (output channel) of every prunable weight during ``fit``.

    Args:
        statistic: what a unit's value is at each step, from the weights feeding it: ``"l2"``
            (their L2 norm, default), ``"l1"`` or ``"mean_abs"``.
        *args, **kwargs: as :class:`WeightHistory` (``window``, ``validation_data``,
            ``target``, ``run_dir``, ``every``, ...).

    Example:
        >>> rec = kl.UnitHistory(window=20, validation_data=(x_val, y_val))  # doctest: +SKIP
        >>> model.fit(x, y, epochs=10, callbacks=[rec])                     # doctest: +SKIP
        >>> small = kl.prune_channels(model, macs=kl.count_macs(model) // 2,
        ...                           importance="legc", history=rec.history)  # doctest: +SKIP
    """

    def __init__(self, *args, statistic: str = "l2", **kwargs):
        if statistic not in STATISTICS:
            raise InvalidArgumentError(
                f"unknown unit statistic {statistic!r}. Fix: use one of {list(STATISTICS)}."
            )
        super().__init__(*args, **kwargs)
        self.statistic = statistic
        self._view: UnitView | None = None

    def on_train_begin(self, logs=None):
        self._view = None  # a new fit may see another model: build the view from its weights
        super().on_train_begin(logs)

    def _unit_view(self) -> UnitView:
        if self._view is None:  # once per fit, not on every step
            self._view = UnitView(
                [UnitSpec(u.key, u.shape, u.spec.out_axes, layer=u.layer.name,
                          weight=_variable_name(u.variable)) for u in self._prunables],
                self.statistic,
            )  # fmt: skip
        return self._view

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._unit_view().shapes)

    def _kernel_arrays(self):
        """The unit values of this step (read only on the steps the engine records)."""
        view, weights = self._unit_view(), super()._kernel_arrays()
        return _lazy(view, weights)

    def _final_kernels(self):
        final, source = super()._final_kernels()
        if final is not None:
            final = {k: v.astype(np.float32) for k, v in self._unit_view().of(final).items()}
        return final, source

    def _new_engine(self, every: int, meta: dict | None = None):
        meta = {k: v for k, v in (meta or {}).items() if k != "layouts"}  # weights', not units'
        meta.update(granularity="unit", units=self._unit_view().manifest())
        return super()._new_engine(every, meta)


def _variable_name(variable) -> str:
    """The variable's own name, as the channel graph names weights (Keras 3 keeps a
    DepthwiseConv2D's weight as ``kernel``; tf_keras names carry the layer and ``:0``)."""
    return str(getattr(variable, "name", "")).rsplit("/", 1)[-1].split(":", 1)[0]


def _lazy(view: UnitView, weights):
    yield from view(weights)


__all__ = ["UnitHistory"]
