"""Channel importance per group: one score per channel of a :class:`ChannelGroup`.

The direction is the project's (:mod:`keras_legc.masking.importance`): **lower = pruned first**.
A channel's score pools every weight of its group (the producer's filter, the BatchNorm entries,
the consumers' input slices), as Torch-Pruning's group importance does.

=============  ======================================================================
``"l1"``       sum of ``|w|`` over the channel's trainable weights in the group
``"l2"``       square root of the sum of ``w**2`` over the same weights
``"bn_scale"`` sum of ``|gamma|`` of the group's BatchNormalization layers (network slimming);
               groups without BatchNormalization are not pruned
``"taylor"``   first-order Taylor (Molchanov et al. 2019): ``(sum of grad * w)**2`` over the
               channel's weights, gradients of the loss summed over ``data=(x, y)``: the
               compiled loss, else cross-entropy for integer or one-hot labels (from logits
               unless the last layer is a softmax), else mean squared error
``"random"``   uniform, seeded (``random_importance(seed)``; ``"random"`` is seed 0)
callable       ``scorer(graph, group) -> array of group.size`` (None: do not prune the group);
               ``register_channel_scorer(name, scorer)`` makes it available by name
=============  ======================================================================
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from keras_legc.errors import InvalidArgumentError, LegcWarning
from keras_legc.structure.graph import ChannelGraph, ChannelGroup

ChannelScorer = Callable[[ChannelGraph, ChannelGroup], "np.ndarray | None"]


def _values(graph: ChannelGraph, group: ChannelGroup, trainable_only: bool = True):
    """``(entry, weight value)`` for the group's entries (trainable weights only by default)."""
    for e in group.entries:
        w = graph.layers[e.layer].weights[e.weight_index]
        if trainable_only and not w.trainable:
            continue
        yield e, np.asarray(w.numpy() if hasattr(w, "numpy") else w, dtype=np.float64)


def _per_channel(group: ChannelGroup, pairs, reduce) -> np.ndarray:
    """Sum ``reduce(value)`` over each channel's slices of every entry."""
    total = np.zeros(group.size)
    for e, value in pairs:
        moved = np.moveaxis(reduce(value), e.axis, 0)[e.positions]
        per_position = moved.reshape(len(e.positions), -1).sum(axis=1)
        total += np.bincount(e.channels, weights=per_position, minlength=group.size)
    return total


def l1(graph, group):
    return _per_channel(group, _values(graph, group), np.abs)


def l2(graph, group):
    return np.sqrt(_per_channel(group, _values(graph, group), np.square))


def bn_scale(graph, group):
    from keras_legc.keras.flavour import keras3

    bn = keras3().layers.BatchNormalization
    pairs = [
        (e, v) for e, v in _values(graph, group)
        if isinstance(graph.layers[e.layer], bn) and e.weight == "gamma"
    ]  # fmt: skip
    if not pairs:
        return None
    return _per_channel(group, pairs, np.abs)


def random_importance(seed: int = 0) -> ChannelScorer:
    """Uniform random channel scores; the same for the same ``seed`` and group."""

    def score(graph, group):
        return np.random.default_rng([int(seed), group.id]).random(group.size)

    score.__name__ = "random"
    return score


class Taylor:
    """First-order Taylor importance from gradients of the loss over calibration data."""

    def __init__(self, model, data, loss=None, batch_size: int = 64):
        self.grads = _gradients(model, data, loss, batch_size)

    def __call__(self, graph, group):
        total = np.zeros(group.size)
        for e in group.entries:
            w = graph.layers[e.layer].weights[e.weight_index]
            g = self.grads.get(id(w))
            if g is None:
                continue
            gw = np.moveaxis(g * np.asarray(w.numpy(), dtype=np.float64), e.axis, 0)
            per_position = gw[e.positions].reshape(len(e.positions), -1).sum(axis=1)
            total += np.bincount(e.channels, weights=per_position, minlength=group.size)
        return total**2


def _loss_fn(model, y, loss):
    from keras_legc.keras.flavour import keras3

    keras = keras3()
    if loss is None and getattr(model, "compiled", False) and getattr(model, "loss", None):
        loss = model.loss
    if loss is not None:
        per_sample = keras.losses.get(loss)  # a name gives a function of per-sample losses
        return lambda y_true, y_pred: keras.ops.mean(per_sample(y_true, y_pred))
    y = np.asarray(y)
    width = model.outputs[0].shape[-1]
    last = model.layers[-1]
    logits = getattr(getattr(last, "activation", None), "__name__", "") != "softmax"
    if np.issubdtype(y.dtype, np.integer) and width and width > 1 and y.ndim == 1:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    one_hot = y.ndim == 2 and y.shape[1] == width and np.all((y == 0) | (y == 1))
    if width and width > 1 and one_hot and np.all(y.sum(axis=1) == 1):
        return keras.losses.CategoricalCrossentropy(from_logits=logits)
    return keras.losses.MeanSquaredError()


def _gradients(model, data, loss, batch_size) -> dict[int, np.ndarray]:
    """Gradients of the loss summed over ``data`` batches, by ``id`` of each trainable weight."""
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise InvalidArgumentError(
            "importance='taylor' needs data=(x, y): calibration inputs and their labels. Fix: "
            "pass a few hundred training samples as data=(x, y)."
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) == 0 or len(x) != len(y):
        raise InvalidArgumentError(
            f"data=(x, y) needs as many labels as inputs (>= 1), got {len(x)} and {len(y)}."
        )
    loss_fn = _loss_fn(model, y, loss)
    from keras_legc.keras.flavour import keras3

    backend = keras3().backend.backend()
    weights = list(model.trainable_weights)
    sums = [np.zeros(tuple(w.shape)) for w in weights]
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        grads = (_grads_jax if backend == "jax" else _grads_tf)(model, loss_fn, xb, yb)
        for s, g in zip(sums, grads, strict=True):
            s += np.asarray(g, dtype=np.float64)
    return {id(w): s for w, s in zip(weights, sums, strict=True)}


def _grads_tf(model, loss_fn, x, y):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = loss_fn(y, model(x, training=False))
    grads = tape.gradient(value, model.trainable_weights)
    return [np.zeros(w.shape) if g is None else g.numpy() for w, g in zip(
        model.trainable_weights, grads, strict=True)]  # fmt: skip


def _grads_jax(model, loss_fn, x, y):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def value(tv):
        out, _ = model.stateless_call(tv, frozen, x, training=False)
        return loss_fn(y, out)

    return [np.asarray(g) for g in jax.grad(value)(trainable)]


class UnitLegc:
    """``importance="legc"``: chaos-causality per unit (issue 27). A unit-level history (recorded
    with ``kl.UnitHistory``: one series per output channel of each prunable weight) is
    scored with the same LE and Granger machinery as weights; a channel's score is the
    :func:`keras_legc.core.units.unit_importance` of the units that produce it (summed when a
    residual group has several producers): never-moved units first, then the least causal by
    effect size. Groups with no recorded producer are not pruned."""

    def __init__(self, history):
        from keras_legc.core.history import History
        from keras_legc.core.scoring import score
        from keras_legc.core.units import unit_importance, unit_max_lag

        if history is None:
            raise InvalidArgumentError(
                "importance='legc' needs history=: a unit-level history. Fix: record one with "
                "kl.UnitHistory(...) during fit and pass history=recorder.history."
            )
        if not isinstance(history, History):
            history = History.load(history)
        units = history.meta.get("units")
        if not units:
            raise InvalidArgumentError(
                "importance='legc' needs a unit-level history (one series per channel), got a "
                "weight-level one. Fix: record with kl.UnitHistory(...) (same arguments as WeightHistory)."
            )
        with warnings.catch_warnings():  # a capped lag is the point here, not news
            warnings.simplefilter("ignore", LegcWarning)
            scores = score(history, max_lag=unit_max_lag(history.n_windows), progress=False)
        values = history.final_kernels or {n: np.ones(history.shapes[n]) for n in history.layers}
        ranks = unit_importance(scores, values)
        self.scores = scores
        self.by_weight = {
            (u["layer"], u["weight"]): (tuple(u["unit_axes"]), len(u["shape"]), ranks[name])
            for name, u in units.items()
        }

    def __call__(self, graph, group):
        total, found = np.zeros(group.size), False
        for e in group.entries:
            hit = self.by_weight.get((e.layer[-1], e.weight))  # the layer's own name
            if hit is None:
                continue
            axes, rank, unit = hit
            if e.axis % rank != axes[0] or int(np.max(e.positions, initial=-1)) >= unit.size:
                continue  # the weight's input side, or a multiplier the unit series folds in
            total += np.bincount(e.channels, weights=unit[e.positions], minlength=group.size)
            found = True
        return total if found else None


BUILTIN = {"l1": l1, "l2": l2, "bn_scale": bn_scale}


def register_channel_scorer(name: str, scorer: ChannelScorer, *, overwrite: bool = False) -> None:
    """Make ``scorer(graph, group)`` available as ``prune_channels(importance=name)`` (the
    channel counterpart of :func:`keras_legc.masking.importance.register`)."""
    reserved = ("taylor", "random", "legc")
    if name in reserved or (name in BUILTIN and not overwrite):
        raise InvalidArgumentError(
            f"a channel scorer named {name!r} already exists. Fix: pick another name"
            + ("." if name in reserved else ", or pass overwrite=True.")
        )
    if not callable(scorer):
        raise InvalidArgumentError(
            f"scorer must be a callable scorer(graph, group) -> scores, got {scorer!r}."
        )
    BUILTIN[name] = scorer


def get_channel_scorer(importance, model, data=None, history=None) -> ChannelScorer:
    """The scorer for ``importance`` (a name above or a callable)."""
    if importance == "legc":
        return UnitLegc(history)
    if history is not None:
        raise InvalidArgumentError(
            "history= is read only by importance='legc'. Fix: pass importance='legc', or leave "
            "history out."
        )
    if callable(importance):
        return importance
    if importance == "random":
        return random_importance(0)
    if importance == "taylor":
        return Taylor(model, data)
    if importance in BUILTIN:
        return BUILTIN[importance]
    raise InvalidArgumentError(
        f"unknown importance {importance!r}. Fix: use one of "
        f"{sorted([*BUILTIN, 'taylor', 'random', 'legc'])} or a callable "
        "scorer(graph, group) -> one score per channel (lower = pruned first)."
    )


def score_groups(graph: ChannelGraph, scorer: ChannelScorer) -> dict[int, np.ndarray]:
    """``{group id: channel scores}`` of the prunable groups the scorer scores."""
    out = {}
    for group in graph.groups:
        if not group.prunable:
            continue
        scores = scorer(graph, group)
        if scores is None:
            continue
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (group.size,) or not np.all(np.isfinite(scores)):
            raise InvalidArgumentError(
                f"the importance of group {group.id} must be {group.size} finite numbers, got "
                f"shape {scores.shape}. Fix: return one finite score per channel."
            )
        out[group.id] = scores
    return out


__all__ = [
    "l1",
    "l2",
    "bn_scale",
    "random_importance",
    "Taylor",
    "UnitLegc",
    "get_channel_scorer",
    "register_channel_scorer",
    "score_groups",
]
