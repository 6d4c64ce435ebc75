"""The weight-importance seam: a *scorer* says how much each kernel weight matters; a policy prunes
the least important first.

One direction everywhere, the same as the neuron scorers (:mod:`keras_legc.neurons`): **lower
importance = pruned first**. An :class:`Importance` holds, per Dense layer, one or more keys of the
kernel's shape compared lexicographically: the first key decides, the next breaks its ties, and so
on; weights still tied go in layer order, then row-major order. Each key says how it is aggregated
when whole blocks are pruned (``reduce``), so block masks come out of the same scorers.

A scorer is any callable ``scorer(kernels, block=None) -> Importance`` where ``kernels`` is
``{layer: kernel}`` (the model's, or the kernels saved with the scores). The built-in ones:

==========================  ===============================================================
``magnitude()``             ``|w|`` (block: L2 norm). What TF-MOT's magnitude pruning ranks by.
``random(seed)``            uniform at random (block: one draw per block).
``legc_pvalue(scores)``     the paper's target-mode ranking: highest Granger p first, degenerate
                            weights (no valid test) last, ties by ``|w|``.
``legc(scores)``            causal evidence alone, without the collapse: weights that never moved
                            first, then the least causal by effect size (partial R-squared of the
                            F-test at the lag BIC chose); weights with no valid test are placed by
                            their magnitude's rank (a fallback), not last.
``legc_protect(scores)``    magnitude order, with Granger-causal weights (F-test at the BIC lag,
                            Benjamini-Hochberg q < alpha) protected until every non-causal one is
                            gone; never-moved weights first.
``legc_rank_product(...)``  never-moved weights first, then the product of the magnitude rank and
                            the causal-evidence rank (each in (0, 1]).
``static_magnitude(s)``     never-moved weights first, then ``|w|`` (no Granger test: the
                            ablation for ``legc_protect``).
==========================  ===============================================================

Example: a user-written scorer (prune the weights that moved least since initialisation):

    >>> def movement(initial):
    ...     def scorer(kernels, block=None):
    ...         return Importance({n: [np.abs(k - initial[n])] for n, k in kernels.items()},
    ...                           reduce=("mean",), info={"method": "movement"})
    ...     return scorer
    >>> kernels = {"d": np.array([[0.1, 0.5], [0.3, 0.2]])}
    >>> mask = mask_from_importance(movement({"d": np.zeros((2, 2))}), kernels, 0.5)
    >>> mask["d"].astype(int).tolist()
    [[0, 1], [1, 0]]

(``mask_from_importance`` is :func:`keras_legc.masking.policy.mask_from_importance`.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from keras_legc.core._layout import split_by_layer
from keras_legc.errors import InvalidArgumentError
from keras_legc.masking.blocks import block_grid, check_block

REDUCTIONS = ("mean", "sum", "sumsq", "all", "any")


@dataclass
class Importance:
    """Per-weight (or per-block) importance of every Dense kernel; lower = pruned first.

    Args:
        keys: ``{layer: [key_1, key_2, ...]}``: arrays of the kernel's shape (or of the block grid
            when ``block`` is set), compared lexicographically, ``key_1`` first. NaN (no score)
            is allowed only in a ``"mean"`` key pruned in blocks, where the mean ignores it.
        reduce: for each key, how to aggregate it over a block when per-weight keys are pruned in
            blocks: ``"mean"`` (of the finite entries; a block with none gets 0), ``"sum"``,
            ``"sumsq"`` (sum of squares: ``|w|`` -> block L2 norm order), ``"all"`` or ``"any"``.
            Default: ``"mean"`` for every key.
        block: None when the keys are per weight; the block shape when the scorer already scored
            whole blocks (arrays of the block grid shape).
        info: provenance saved in the mask (method, parameters).
    """

    keys: Mapping[str, Sequence[np.ndarray]]
    reduce: Sequence[str] | None = None
    block: tuple[int, int] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.keys:
            raise InvalidArgumentError("an Importance needs at least one layer; got none.")
        self.keys = {str(n): [np.asarray(k) for k in ks] for n, ks in self.keys.items()}
        counts = {len(ks) for ks in self.keys.values()}
        if len(counts) != 1 or 0 in counts:
            raise InvalidArgumentError(
                "every layer of an Importance needs the same number (>= 1) of keys; got "
                f"{ {n: len(ks) for n, ks in self.keys.items()} }."
            )
        n_keys = counts.pop()
        self.reduce = tuple(self.reduce) if self.reduce is not None else ("mean",) * n_keys
        if len(self.reduce) != n_keys or any(r not in REDUCTIONS for r in self.reduce):
            raise InvalidArgumentError(
                f"reduce must name one of {REDUCTIONS} per key ({n_keys} keys), got "
                f"{self.reduce!r}."
            )
        if self.block is not None:
            self.block = check_block(self.block)
        for n, ks in self.keys.items():
            for k in ks:
                if k.shape != ks[0].shape:
                    raise InvalidArgumentError(
                        f"the importance keys of layer {n!r} have different shapes "
                        f"{[np.shape(x) for x in ks]}."
                    )

    @property
    def layers(self) -> list[str]:
        return list(self.keys)

    def only(self, keys) -> Importance:
        """The same importance for ``keys`` only (in that order): what a mask with some weights
        excluded ranks, the scorer having seen every weight."""
        return Importance({k: self.keys[k] for k in keys}, self.reduce, self.block, dict(self.info))


Scorer = Callable[..., Importance]


# ---- the built-in scorers ------------------------------------------------------------------------


def magnitude() -> Scorer:
    """``|w|``: the smallest weights are pruned first (block: smallest L2 norm first).

    Example:
        >>> magnitude()({"d": np.array([[-2.0, 1.0]])}).keys["d"][0].tolist()
        [[2.0, 1.0]]
    """

    def score(kernels, block=None) -> Importance:
        keys = {n: [np.abs(k)] for n, k in kernels.items()}
        return Importance(keys, reduce=("sumsq",), info={"method": "magnitude"})

    score.__name__ = "magnitude"
    return score


def random(seed: int = 0) -> Scorer:
    """Uniformly random importance, reproducible for a ``seed`` (block: one draw per block).

    Example:
        >>> imp = random(0)({"d": np.zeros((2, 3))})
        >>> imp.keys["d"][0].shape
        (2, 3)
    """

    def score(kernels, block=None) -> Importance:
        rng = np.random.default_rng(seed)
        info = {"method": "random", "seed": int(seed)}
        if block is None:
            return Importance({n: [rng.random(np.shape(k))] for n, k in kernels.items()}, info=info)
        b = check_block(block)
        keys = {n: [rng.random(block_grid(np.shape(k), b))] for n, k in kernels.items()}
        return Importance(keys, block=b, info=info)

    score.__name__ = "random"
    return score


def legc_pvalue(scores) -> Scorer:
    """The paper's target-mode ranking (what ``Scores.mask(sparsity=...)`` did up to 0.1):
    highest Granger p-value first, degenerate weights (no valid test) last, ties by ``|w|``.
    Blocks: the mean of ``-log10 p`` over the block's valid weights, all-degenerate blocks last,
    ties by the block's L2 norm.

    It collapses networks at high sparsity: weights that never moved have no valid test and so
    are all that is left. Kept for the paper's protocol (``legc reproduce``) and comparisons.
    """

    def score(kernels, block=None) -> Importance:
        valid = scores.degenerate == 0
        deg = _split(scores, ~valid)
        info = {"method": "legc", "ranking": "legc_pvalue"}
        if block is None:
            p = _split(scores, np.where(valid, scores.pvalues, 0.0))
            keys = {n: [deg[n], -p[n], np.abs(kernels[n])] for n in scores.layers}
            return Importance(keys, reduce=("all", "mean", "sumsq"), info=info)
        # -log10 p of valid tests (p floored at 1e-300 so p = 0 stays finite); NaN = no test.
        evidence = _split(
            scores, np.where(valid, -np.log10(np.maximum(scores.pvalues, 1e-300)), np.nan)
        )
        keys = {n: [deg[n], evidence[n], np.abs(kernels[n])] for n in scores.layers}
        info["block_score"] = "mean -log10 p over valid weights"
        return Importance(keys, reduce=("all", "mean", "sumsq"), info=info)

    score.__name__ = "legc_pvalue"
    return score


def legc(scores, *, evidence: str = "partial_r2") -> Scorer:
    """Causal evidence alone, without the collapse.

    1. Weights that never moved (their LE is 0 in every window: always-zero inputs, dead units)
       are pruned first: removing them changes nothing the data can see.
    2. The others by their causal evidence, least first: the partial R-squared of the weight's LE
       lags in the Granger F-test at the lag BIC chose (``evidence="partial_r2"``, an effect size
       that does not saturate like p-values do), or ``-log10`` of that F-test's p-value
       (``evidence="f_pvalue"``). Ranked as percentiles in (0, 1] among the tested weights.
    3. Weights that moved but have no valid test (collinear lags, exact fits) get their magnitude's
       percentile instead (a fallback rank), not "last".
    Ties by ``|w|``.

    Example:
        >>> mask = mask_from_importance(legc(scores), scores.kernels, 0.9)   # doctest: +SKIP
    """
    if evidence not in ("partial_r2", "f_pvalue"):
        raise InvalidArgumentError(
            f"evidence must be 'partial_r2' or 'f_pvalue', got {evidence!r}."
        )

    def score(kernels, block=None) -> Importance:
        moved, causal_rank, magnitude_rank = _legc_ranks(scores, kernels, evidence)
        rank = np.where(np.isnan(causal_rank), magnitude_rank, causal_rank)
        keys = _by_layer(scores, kernels, [moved, rank])
        info = {"method": "legc", "ranking": "legc", "evidence": evidence}
        return Importance(keys, reduce=("any", "mean", "sumsq"), info=info)

    score.__name__ = "legc"
    return score


def legc_protect(scores, *, alpha: float = 0.05) -> Scorer:
    """Magnitude order with the Granger-causal weights protected.

    Never-moved weights first; then every weight that is not causal (F-test at the BIC lag,
    Benjamini-Hochberg q >= ``alpha``, or no valid test) by magnitude; only then the causal ones,
    by magnitude. At low sparsity this is magnitude pruning that spares causal weights; once the
    non-causal weights are gone it is magnitude pruning among the causal ones.
    """
    if isinstance(alpha, bool) or not (isinstance(alpha, float | int) and 0.0 < alpha < 1.0):
        raise InvalidArgumentError(f"alpha must be in (0, 1), got {alpha!r}.")

    def score(kernels, block=None) -> Importance:
        moved = _moved(scores)
        keys = _by_layer(scores, kernels, [moved, causal_weights(scores, alpha)])
        info = {"method": "legc", "ranking": "legc_protect", "alpha": float(alpha)}
        return Importance(keys, reduce=("any", "mean", "sumsq"), info=info)

    score.__name__ = "legc_protect"
    return score


def causal_weights(scores, alpha: float = 0.05) -> np.ndarray:
    """Bool ``(n_weights,)``: Granger-causal under target mode's test (the F-test at the lag BIC
    chose, Benjamini-Hochberg q < ``alpha`` across the weights).

    Example:
        >>> int(causal_weights(scores).sum())  # doctest: +SKIP
        15
    """
    q = _bh(_require(scores, "f_pvalue"))
    return np.isfinite(q) & (q < alpha)


def legc_rank_product(scores, *, evidence: str = "partial_r2") -> Scorer:
    """Never-moved weights first, then the product of two percentile ranks in (0, 1]: magnitude
    and causal evidence (as in :func:`legc`; weights with no valid test use their magnitude rank
    for both). A weight survives when it is both large and causal.
    """

    def score(kernels, block=None) -> Importance:
        moved, causal_rank, magnitude_rank = _legc_ranks(scores, kernels, evidence)
        product = magnitude_rank * np.where(np.isnan(causal_rank), magnitude_rank, causal_rank)
        keys = _by_layer(scores, kernels, [moved, product])
        info = {"method": "legc", "ranking": "legc_rank_product", "evidence": evidence}
        return Importance(keys, reduce=("any", "mean", "sumsq"), info=info)

    score.__name__ = "legc_rank_product"
    return score


def static_magnitude(scores) -> Scorer:
    """Never-moved weights first, then ``|w|``: magnitude pruning plus the one thing the LE series
    alone tell (which weights did not move), without any Granger test. The ablation that shows
    what the causal test adds on top (compare with :func:`legc_protect`)."""

    def score(kernels, block=None) -> Importance:
        keys = _by_layer(scores, kernels, [_moved(scores)])
        return Importance(keys, reduce=("any", "sumsq"), info={"method": "static_magnitude"})

    score.__name__ = "static_magnitude"
    return score


SCORERS: dict[str, Callable[..., Scorer]] = {
    "magnitude": magnitude,
    "static_magnitude": static_magnitude,
    "random": random,
    "legc_pvalue": legc_pvalue,
    "legc": legc,
    "legc_protect": legc_protect,
    "legc_rank_product": legc_rank_product,
}
#: The built-in LEGC rankings; :func:`legc_rankings` also lists those registered since import.
LEGC_RANKINGS = tuple(n for n in SCORERS if n.startswith("legc"))


def legc_rankings() -> tuple[str, ...]:
    """The names ``Scores.mask(ranking=...)`` accepts: every scorer registered under ``legc*``,
    read at call time (so one registered after import is accepted).

    Example:
        >>> "legc_protect" in legc_rankings()
        True
    """
    return tuple(n for n in SCORERS if n.startswith("legc"))


def register(name: str, factory: Callable[..., Scorer], *, overwrite: bool = False) -> None:
    """Make a scorer factory available by name (``Scores.mask(ranking=name)`` for factories that
    take the scores, ``get_scorer(name, ...)`` for all).

    Example:
        >>> register("my_magnitude", magnitude, overwrite=True)
    """
    if name in SCORERS and not overwrite:
        raise InvalidArgumentError(
            f"a scorer named {name!r} is already registered. Fix: pick another name, or pass "
            "overwrite=True."
        )
    SCORERS[name] = factory


def get_scorer(name: str, *args, **kwargs) -> Scorer:
    """The scorer ``name`` built with ``args``/``kwargs`` (e.g. ``get_scorer("legc", scores)``)."""
    if name not in SCORERS:
        raise InvalidArgumentError(
            f"unknown scorer {name!r}. Fix: use one of {sorted(SCORERS)} or register your own "
            "with keras_legc.importance.register."
        )
    return SCORERS[name](*args, **kwargs)


# ---- helpers ---------------------------------------------------------------------------------


def _split(scores, flat: np.ndarray) -> dict[str, np.ndarray]:
    return split_by_layer(flat, scores.layers, scores.shapes)


def _require(scores, name: str) -> np.ndarray:
    value = getattr(scores, name, None)
    if value is None:
        raise InvalidArgumentError(
            f"these scores have no {name!r} (they were saved by an older keras-legc, or made "
            "without it). Fix: score the history again with keras_legc.score."
        )
    return value


def _moved(scores) -> np.ndarray:
    """True for weights that moved (False: LE 0 in every window, i.e. static throughout)."""
    return ~_require(scores, "static")


def _percentile(values: np.ndarray) -> np.ndarray:
    """Average-rank percentiles in (0, 1] (ties share their mean rank); deterministic."""
    from scipy.stats import rankdata

    if values.size == 0:
        return values.astype(np.float64)
    return rankdata(values, method="average") / values.size


def _legc_ranks(scores, kernels, evidence: str):
    """``moved``, the causal-evidence percentile (NaN where no valid test or never moved) and the
    magnitude percentile (among moved weights), all flat over the layers in order."""
    moved = _moved(scores)
    flat_w = np.concatenate([np.abs(np.ravel(kernels[n])) for n in scores.layers])
    if evidence == "partial_r2":
        strength = _require(scores, "partial_r2")
    else:
        strength = -np.log10(np.maximum(_require(scores, "f_pvalue"), 1e-300))
    tested = moved & np.isfinite(strength)
    causal_rank = np.full(flat_w.size, np.nan)
    causal_rank[tested] = _percentile(strength[tested])
    magnitude_rank = np.zeros(flat_w.size)
    magnitude_rank[moved] = _percentile(flat_w[moved])
    return moved, causal_rank, magnitude_rank


def _by_layer(scores, kernels, flat_keys) -> dict[str, list[np.ndarray]]:
    """Flat keys split per layer, plus ``|w|`` as the last tie-break key."""
    split = [_split(scores, np.asarray(k, dtype=np.float64)) for k in flat_keys]
    return {n: [s[n] for s in split] + [np.abs(kernels[n])] for n in scores.layers}


def _bh(pvalues: np.ndarray) -> np.ndarray:
    from keras_legc.core.granger import benjamini_hochberg

    return benjamini_hochberg(pvalues)


__all__ = [
    "Importance",
    "Scorer",
    "SCORERS",
    "LEGC_RANKINGS",
    "legc_rankings",
    "magnitude",
    "random",
    "legc_pvalue",
    "legc",
    "legc_protect",
    "legc_rank_product",
    "static_magnitude",
    "register",
    "get_scorer",
]
