"""Neuron scorers: one score per hidden unit, lower = remove first (Wolfe et al.).

A **neuron scorer** is a callable ``(model, x, y) -> NeuronScores`` giving one score per hidden
unit of every hidden Dense layer (the output layer's units are never candidates). ``model`` is a
Keras model or a :class:`~keras_legc.neurons.view.DenseNet` (the numpy view that the removal loop
passes, with the units removed so far masked). Built in: :func:`brute_force` (exact change of the
loss, batched through a rank-1 update of the next pre-activations), :func:`taylor1`,
:func:`taylor2` (the paper's diagonal second-order back-propagation), :func:`legc` (per-weight
LEGC p-values aggregated to neurons) and :func:`random`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from keras_legc.core.dense import activate, activation_derivatives
from keras_legc.errors import InvalidArgumentError, MaskMismatchError
from keras_legc.neurons.losses import _check_xy, _loss_from_z, _resolve_loss
from keras_legc.neurons.view import DenseNet

DEFAULT_CHUNK_ELEMENTS = 1 << 23  # floats per batched block (64 MiB in float64)

NeuronScorer = Callable[[Any, np.ndarray, np.ndarray], "NeuronScores"]


class NeuronScores:
    """One score per hidden unit of every hidden Dense layer; lower = remove first.

    Units already removed (masked) carry NaN and never rank.

    Args:
        scores: ``{hidden layer name: float array (units,)}``, in layer order.
        method: the scorer's name.
        info: free-form details (loss, timings).

    Example:
        >>> s = keras_legc.neurons.brute_force()(model, x, y)
        >>> s.ranking()[:3]            # [("dense", 17), ("dense_1", 4), ...]
    """

    def __init__(self, scores: Mapping[str, np.ndarray], method: str, info: Mapping | None = None):
        self.scores = {
            str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()
        }
        self.method = str(method)
        self.info = dict(info or {})

    @property
    def layers(self) -> list[str]:
        return list(self.scores)

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.scores[layer]

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(layer index, unit index, score)`` of every unit, layers in order."""
        li = np.concatenate([np.full(len(v), i) for i, v in enumerate(self.scores.values())])
        ui = np.concatenate([np.arange(len(v)) for v in self.scores.values()])
        sv = np.concatenate(list(self.scores.values()))
        return li, ui, sv

    def ranking(self) -> list[tuple[str, int]]:
        """The global ranking ``[(layer name, unit), ...]``, lowest score first.

        Ties keep layer order, then unit order; NaN (removed) units are left out.
        """
        li, ui, sv = self.flat()
        ok = ~np.isnan(sv)
        order = np.lexsort((ui[ok], li[ok], sv[ok]))
        names = self.layers
        return [(names[int(li[ok][i])], int(ui[ok][i])) for i in order]

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "info": self.info,
            "scores": {
                k: [None if np.isnan(x) else float(x) for x in v] for k, v in self.scores.items()
            },
        }

    def __repr__(self) -> str:
        sizes = {k: len(v) for k, v in self.scores.items()}
        return f"NeuronScores(method={self.method!r}, layers={sizes})"


def _masked_nan(net: DenseNet, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {n: np.where(net.keep[n], np.asarray(values[n], np.float64), np.nan) for n in net.hidden}


# ---- brute force --------------------------------------------------------------------------------


class BruteForce:
    """Exact Delta E of forcing each remaining hidden unit's output to 0 (see :func:`brute_force`)."""

    static = False

    def __init__(
        self,
        loss: str = "auto",
        *,
        batched: bool = True,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ):
        if not isinstance(chunk_elements, (int, np.integer)) or chunk_elements < 1:
            raise InvalidArgumentError(
                f"chunk_elements must be a positive integer, got {chunk_elements!r}."
            )
        self.loss, self.batched, self.chunk_elements = loss, bool(batched), int(chunk_elements)
        self.name = "brute_force" if batched else "brute_force_naive"

    def __call__(self, model, x, y) -> NeuronScores:
        net = DenseNet.from_model(model)
        xs, t, loss = _check_xy(net, x, y, self.loss)
        t0 = time.perf_counter()
        zs, acts = net.forward(xs)
        base = float(_loss_from_z(net, zs[-1], t, loss))
        if self.batched:
            delta = self._batched(net, zs, acts, t, loss, base)
        else:
            delta = self._naive(net, xs, t, loss, base)
        info = {"loss": loss, "base_loss": base, "seconds": time.perf_counter() - t0}
        return NeuronScores(_masked_nan(net, delta), self.name, info)

    def _batched(self, net, zs, acts, t, loss, base) -> dict[str, np.ndarray]:
        n = len(t)
        out = {}
        widest = max(w.shape[1] for w in net.kernels)
        for li, name in enumerate(net.hidden):
            a, w_next = acts[li], net.kernels[li + 1]
            cand = np.flatnonzero(net.keep[name])
            delta = np.full(len(net.keep[name]), np.nan)
            step = max(1, self.chunk_elements // max(1, n * widest))
            for s in range(0, len(cand), step):
                c = cand[s : s + step]
                # rank-1 update of the next pre-activations: z' = z - a_j * W_next[j, :]
                z = zs[li + 1][None] - a[:, c].T[:, :, None] * w_next[c][:, None, :]
                for m in range(li + 1, len(net.names) - 1):
                    h = activate(net.activations[m], z) * net.keep[net.names[m]]
                    z = h @ net.kernels[m + 1] + net.biases[m + 1]
                delta[c] = _loss_from_z(net, z, t, loss) - base
            out[name] = delta
        return out

    def _naive(self, net, xs, t, loss, base) -> dict[str, np.ndarray]:
        """Reference: one full forward pass per candidate (what batching replaces)."""
        out = {}
        for name in net.hidden:
            delta = np.full(len(net.keep[name]), np.nan)
            for j in np.flatnonzero(net.keep[name]):
                z = net.with_removed({name: [j]}).forward(xs)[0][-1]
                delta[j] = _loss_from_z(net, z, t, loss) - base
            out[name] = delta
        return out


def brute_force(
    loss: str = "auto", *, batched: bool = True, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> BruteForce:
    """The exact scorer: Delta E_k = E(net with unit k's output forced to 0) - E(net).

    Batched (default): for hidden layer l with activations ``A`` and next pre-activations
    ``Z = A W + b``, removing unit j gives ``Z - A[:, j] W[j, :]``; every candidate of a layer is
    scored from the cached activations in one batched pass (in chunks of ``chunk_elements``
    floats), through the remaining layers. ``batched=False`` is the naive reference, one forward
    pass per candidate (same values to float rounding).

    Args:
        loss: ``"sse"`` (0.5 * sum of squared errors, the paper), ``"crossentropy"`` (softmax or
            sigmoid outputs) or ``"auto"`` (cross-entropy for softmax outputs, else SSE).
        batched: use the rank-1 batched computation.
        chunk_elements: bound on the floats of one batched block (memory).

    Returns:
        A scorer ``(model, x, y) -> NeuronScores``; a negative score means removal lowers E.

    Example:
        >>> scores = keras_legc.neurons.brute_force(loss="sse")(model, x, y)
        >>> scores.ranking()[0]                  # the unit whose removal hurts least
    """
    return BruteForce(loss, batched=batched, chunk_elements=chunk_elements)


# ---- Taylor ---------------------------------------------------------------------------------------


class Taylor:
    """First- or second-order Taylor estimate of Delta E (see :func:`taylor1`, :func:`taylor2`)."""

    static = False

    def __init__(self, order: int, loss: str = "auto"):
        if order not in (1, 2):
            raise InvalidArgumentError(f"order must be 1 or 2, got {order!r}.")
        self.order, self.loss = order, loss
        self.name = f"taylor{order}"

    def terms(self, model, x, y) -> tuple[dict, dict]:
        """``({layer: sum_n -O dE/dO}, {layer: sum_n 0.5 O^2 d2E/dO2})`` per hidden unit.

        d2E/dO2 is the paper's diagonal back-propagation (off-diagonal terms dropped).
        """
        net = DenseNet.from_model(model)
        xs, t, loss = _check_xy(net, x, y, self.loss)
        zs, acts = net.forward(xs)
        f_out, out = net.activations[-1], acts[-1]
        if loss == "crossentropy":  # softmax-CE or sigmoid-BCE, wrt logits; diag of the Hessian
            g = out - t
            h = out * (1.0 - out)
        elif f_out == "softmax":
            raise InvalidArgumentError(
                "Taylor scores with loss='sse' need an elementwise output activation, but the "
                "output layer is softmax (its Jacobian is not diagonal). Fix: use "
                "loss='crossentropy' (or 'auto') for softmax outputs."
            )
        else:
            d1, d2 = activation_derivatives(f_out, zs[-1], out)
            g_o = out - t
            g = g_o * d1
            h = d1 * d1 + g_o * d2
        first, second = {}, {}
        for li in range(len(net.hidden) - 1, -1, -1):
            name, w = net.hidden[li], net.kernels[li + 1]
            g_a = g @ w.T
            h_a = h @ (w * w).T
            a = acts[li]
            first[name] = -np.sum(a * g_a, axis=0)
            second[name] = 0.5 * np.sum(a * a * h_a, axis=0)
            d1, d2 = activation_derivatives(
                net.activations[li], zs[li], activate(net.activations[li], zs[li])
            )
            keep = net.keep[name]
            g = g_a * d1 * keep
            h = (h_a * d1 * d1 + g_a * d2) * keep
        order = net.hidden
        return {n: first[n] for n in order}, {n: second[n] for n in order}

    def __call__(self, model, x, y) -> NeuronScores:
        net = DenseNet.from_model(model)
        t0 = time.perf_counter()
        first, second = self.terms(net, x, y)
        est = first if self.order == 1 else {n: first[n] + second[n] for n in first}
        info = {"loss": _resolve_loss(net, self.loss), "seconds": time.perf_counter() - t0}
        return NeuronScores(_masked_nan(net, est), self.name, info)


def taylor1(loss: str = "auto") -> Taylor:
    """First-order Taylor (Skeletonization): Delta E_k ~ sum over patterns of -O_k dE/dO_k.

    Works for sigmoid, tanh, ReLU and linear hidden layers with SSE on elementwise outputs, and
    cross-entropy on softmax (or sigmoid) outputs.

    Example:
        >>> scores = keras_legc.neurons.taylor1()(model, x, y)
    """
    return Taylor(1, loss)


def taylor2(loss: str = "auto") -> Taylor:
    """Second-order Taylor (the paper): first order + sum of 0.5 O_k^2 d2E/dO_k^2.

    The diagonal second derivatives are back-propagated as in the paper: at the output
    ``d2E/dz2 = f'(z)^2 + (o - t) f''(z)`` for SSE (``p(1 - p)`` for softmax/sigmoid with
    cross-entropy, the diagonal of the Hessian wrt the logits); down a layer
    ``d2E/do_j2 = sum_i d2E/dz_i2 w_ji^2``; through an activation
    ``d2E/dz2 = d2E/do2 f'(z)^2 + dE/do f''(z)`` (ReLU: f'' = 0). No clipping of large estimates.

    Example:
        >>> scores = keras_legc.neurons.taylor2(loss="sse")(model, x, y)
    """
    return Taylor(2, loss)


# ---- LEGC and random --------------------------------------------------------------------------------


class LegcNeurons:
    """Per-weight LEGC p-values aggregated to neurons (see :func:`legc`)."""

    static = True

    def __init__(self, scores, how: str = "mean_p", alpha: float = 0.05):
        from keras_legc.core.scoring import Scores

        if not isinstance(scores, Scores):
            raise InvalidArgumentError(
                f"legc() needs a keras_legc.Scores (from keras_legc.score), got "
                f"{type(scores).__name__}. Fix: score the recorded history first."
            )
        if how not in ("mean_p", "fraction_noncausal"):
            raise InvalidArgumentError(
                f"how must be 'mean_p' or 'fraction_noncausal', got {how!r}."
            )
        self.weight_scores, self.how, self.alpha = scores, how, float(alpha)
        self.name = f"legc_{how}"

    def __call__(self, model, x=None, y=None) -> NeuronScores:
        net = DenseNet.from_model(model)
        sig = {n: tuple(w.shape) for n, w in zip(net.names, net.kernels, strict=True)}
        s = self.weight_scores
        if s.layers != net.names or any(tuple(s.shapes[n]) != sig[n] for n in net.names):
            raise MaskMismatchError(
                f"the LEGC scores are for layers {s.shapes}, but the model has {sig}. Fix: score "
                "the history recorded while training this model."
            )
        evidence = s.evidence
        from keras_legc.core._layout import split_by_layer

        p = split_by_layer(evidence, s.layers, s.shapes)
        out = {}
        for li, name in enumerate(net.hidden):
            # incoming weights: column j of this kernel; outgoing: row j of the next kernel
            inc, outg = p[name], p[net.names[li + 1]]
            vals = np.concatenate([inc, outg.T], axis=0)  # (fan_in + fan_out, units)
            valid = ~np.isnan(vals)
            n_valid = valid.sum(axis=0)
            if self.how == "mean_p":
                total = np.where(valid, vals, 0.0).sum(axis=0)
                stat = np.divide(total, n_valid, out=np.zeros(len(n_valid)), where=n_valid > 0)
            else:
                nonc = (np.where(valid, vals, 0.0) >= self.alpha) & valid
                stat = np.divide(
                    nonc.sum(axis=0), n_valid, out=np.zeros(len(n_valid)), where=n_valid > 0
                )
            out[name] = -stat  # more non-causal = lower score = removed first
        info = {"how": self.how, "alpha": self.alpha}
        return NeuronScores(_masked_nan(net, out), self.name, info)


def legc(scores, *, how: str = "mean_p", alpha: float = 0.05) -> LegcNeurons:
    """Aggregate per-weight LEGC evidence (a :class:`keras_legc.Scores`) to hidden neurons.

    A neuron's weights are its incoming kernel column and its outgoing row of the next kernel.

    Args:
        scores: ``keras_legc.score(history)`` for this model (same layers and kernel shapes).
        how: ``"mean_p"`` (default): score = -(mean p-value, q-value with ``fdr=True``, of the
            neuron's weights), so the least causal neuron goes first; ``"fraction_noncausal"``:
            score = -(fraction of its weights with p >= alpha). Degenerate weights (no valid test,
            NaN) are left out of the mean; a neuron with none valid scores 0 (kept longest).
        alpha: the threshold of ``"fraction_noncausal"``.

    Example:
        >>> scorer = keras_legc.neurons.legc(keras_legc.score(recorder.history))
        >>> record = keras_legc.prune_neurons(model, scorer, x, y, fraction=0.5)
    """
    return LegcNeurons(scores, how, alpha)


class LegcUnitNeurons:
    """Unit-level chaos-causality for hidden neurons (see :func:`legc_units`)."""

    static = True

    def __init__(self, history):
        from keras_legc.structure.importance import UnitLegc

        self._units = UnitLegc(history)  # the same scoring as prune_channels(importance="legc")
        self.name = "legc_units"

    def __call__(self, model, x=None, y=None) -> NeuronScores:
        net = DenseNet.from_model(model)
        out = {}
        for name in net.hidden:
            hit = self._units.by_weight.get((name, "kernel"))
            if hit is None or len(hit[2]) != len(net.keep[name]):
                raise MaskMismatchError(
                    f"the unit-level history has no series of {len(net.keep[name])} units for "
                    f"Dense layer {name!r}. Fix: pass the UnitHistory recorded while training "
                    "this model."
                )
            out[name] = np.asarray(hit[2], np.float64)
        return NeuronScores(_masked_nan(net, out), self.name, {"granularity": "unit"})


def legc_units(history) -> LegcUnitNeurons:
    """Score hidden neurons by unit-level chaos-causality: a neuron's own series (the norm of its
    incoming weights, recorded by ``keras_legc.UnitHistory``) scored with the LE and Granger
    machinery, never-moved neurons first, then the least causal by effect size: the ranking
    ``prune_channels(importance="legc", history=...)`` uses for channels (issue 27).

    Args:
        history: the unit-level History (``recorder.history``) or its run directory.

    Example:
        >>> rec = keras_legc.UnitHistory(window=20, validation_data=(x_val, y_val))
        >>> model.fit(x, y, epochs=10, callbacks=[rec])
        >>> record = keras_legc.prune_neurons(model, legc_units(rec.history), x, y, fraction=0.3)
    """
    return LegcUnitNeurons(history)


class RandomNeurons:
    """Uniform random scores (a baseline; see :func:`random`)."""

    static = True

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = "random"

    def __call__(self, model, x=None, y=None) -> NeuronScores:
        net = DenseNet.from_model(model)
        rng = np.random.default_rng(self.seed)
        vals = {n: rng.random(len(net.keep[n])) for n in net.hidden}
        return NeuronScores(_masked_nan(net, vals), self.name, {"seed": self.seed})


def random(seed: int = 0) -> RandomNeurons:
    """A random global ranking of the hidden units (the baseline), fixed by ``seed``.

    Example:
        >>> record = keras_legc.prune_neurons(model, keras_legc.neurons.random(0), x, y, n=10)
    """
    return RandomNeurons(seed)


SCORERS = {
    "brute_force": brute_force,
    "taylor1": taylor1,
    "taylor2": taylor2,
    "random": random,
}


def get_scorer(scorer, loss: str = "auto") -> NeuronScorer:
    """A scorer from a name (``brute_force``, ``taylor1``, ``taylor2``, ``random``) or itself."""
    if isinstance(scorer, str):
        if scorer not in SCORERS:
            raise InvalidArgumentError(
                f"unknown neuron scorer {scorer!r}. Fix: use one of {sorted(SCORERS)}, or pass a "
                "callable (model, x, y) -> NeuronScores (LEGC: keras_legc.neurons.legc(scores))."
            )
        return random(0) if scorer == "random" else SCORERS[scorer](loss)
    if not callable(scorer):
        raise InvalidArgumentError(
            f"scorer must be a callable (model, x, y) -> NeuronScores or a name, got "
            f"{type(scorer).__name__}."
        )
    return scorer
