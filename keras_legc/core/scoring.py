"""``score()``: from a recorded :class:`History` to per-weight Granger evidence (``Scores``).

``Scores`` holds, per weight, the paper's evidence (the minimum Granger p-value over lags of the
weight's LE series against the target series) and the evidence target mode ranks by (the F-test at
the lag BIC chose, its effect size, and whether the weight moved at all). ``Scores.mask`` is the
policy: paper mode thresholds p-values; target mode hands a scorer of
:mod:`keras_legc.masking.importance` to :func:`keras_legc.masking.mask_from_importance`. Numpy only.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from keras_legc._io import IntIn, read_npz, write_npz
from keras_legc._progress import Progress
from keras_legc._version import __version__
from keras_legc.core._layout import split_by_layer
from keras_legc.core._parallel import check_threads
from keras_legc.core.granger import (
    CONSTANT_CAUSE,
    DEFAULT_CHUNK,
    DEGENERATE_REASONS,
    OK,
    benjamini_hochberg,
    granger_test,
)
from keras_legc.core.history import History, target_is_flat
from keras_legc.errors import (
    HistoryError,
    InvalidArgumentError,
    LegcWarning,
    MaskMismatchError,
    NonFiniteError,
)
from keras_legc.masking import importance
from keras_legc.masking.mask import Mask
from keras_legc.masking.policy import (
    LAMP,
    check_exclude,
    check_per_layer,
    check_sparsity,
    mask_from_importance,
    target_fix,
    warn_empty_layers,
)

FORMAT = "keras_legc.scores"
FORMAT_VERSION = 1
MIN_WINDOWS = 5  # a Granger test at lag 1 needs K > 3 * 1 + 1
# Target mode's scorer (issue 27): never-moved weights first, then |w|. On every net of
# docs/against-tfmot.md it is within 0.07 pp of global magnitude, while every causal ranking loses
# to magnitude somewhere (legc_protect: -4.3 pp on Vowel at 50%, -9.6 pp on a held-out digits MLP
# at 90%); the causal rankings stay as named options.
DEFAULT_RANKING = "static_magnitude"
# Target mode shares the sparsity among layers by LAMP's layer-adaptive score by default (chosen
# on development nets, tools/allocation_study.py, docs/allocation.md): one global ranking emptied
# DS-CNN's depthwise kernels at 75% and lost to LAMP by 9.5 pp on average on the convnets; the
# same sparsity in every layer lost by 12.6 pp.
DEFAULT_ALLOCATION = LAMP
# Per-weight arrays beyond the paper's, optional in a scores file (older files lack them).
TARGET_MODE_ARRAYS = ("static", "f_pvalue", "partial_r2", "selected_lag")


class Scores:
    """Per-weight LEGC evidence: the Granger p-value of each weight's LE series.

    Attributes:
        layers, shapes: the Dense layers and their kernel shapes.
        pvalues: float64 ``(n_weights,)``, minimum p-value over the tested lags (or the p-value at
            the single fixed lag); NaN if degenerate.
        qvalues: Benjamini-Hochberg adjusted p-values across weights when scored with
            ``fdr=True``, else None. Paper mode (``mask(alpha=...)``) then thresholds these.
        degenerate: int8 ``(n_weights,)`` reason code (0 = valid test; see ``degenerate_counts``).
        max_lag: the largest lag tested (after capping); test: the statistic used.
        lags: the lags tested (``1..max_lag``, or the one fixed lag).
        kernels: ``{layer: kernel}`` at the end of recording (tie-breaks by magnitude), or None.
        info: how the scores were made (windows, options).
        static: bool ``(n_weights,)``: the weight's LE is 0 in every window (it did not move:
            an always-zero input or a dead unit). None for scores saved by keras-legc < 0.2.
        f_pvalue, partial_r2, selected_lag: the Granger F-test at the lag BIC chose for each
            weight (its p-value, its effect size ``(SSR_r - SSR_u) / SSR_r`` and the lag; NaN / 0
            where degenerate): the evidence target mode ranks by. None for older scores.
    """

    def __init__(
        self,
        *,
        layers,
        shapes,
        pvalues,
        degenerate,
        max_lag,
        test,
        kernels=None,
        info=None,
        qvalues=None,
        lags=None,
        static=None,
        f_pvalue=None,
        partial_r2=None,
        selected_lag=None,
    ):
        self.layers = list(layers)
        self.shapes = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
        self.pvalues = np.asarray(pvalues, dtype=np.float64)
        self.qvalues = None if qvalues is None else np.asarray(qvalues, dtype=np.float64)
        self.degenerate = np.asarray(degenerate, dtype=np.int8)
        self.max_lag, self.test = int(max_lag), str(test)
        self.lags = tuple(int(p) for p in lags) if lags else tuple(range(1, self.max_lag + 1))
        self.kernels = kernels
        self.info = dict(info or {})
        self.static = None if static is None else np.asarray(static, dtype=bool)
        self.f_pvalue = None if f_pvalue is None else np.asarray(f_pvalue, dtype=np.float64)
        self.partial_r2 = None if partial_r2 is None else np.asarray(partial_r2, dtype=np.float64)
        self.selected_lag = None if selected_lag is None else np.asarray(selected_lag, np.int16)
        n = sum(int(np.prod(self.shapes[name])) for name in self.layers)
        arrays = [("pvalues", self.pvalues), ("degenerate", self.degenerate)]
        if self.qvalues is not None:
            arrays.append(("qvalues", self.qvalues))
        arrays += [
            (a, getattr(self, a)) for a in TARGET_MODE_ARRAYS if getattr(self, a) is not None
        ]
        for name, arr in arrays:
            if arr.shape != (n,):
                raise HistoryError(
                    f"inconsistent scores: {name} has shape {arr.shape} but the layers "
                    f"{self.shapes} have {n} weights. Fix: score the history again."
                )

    # -- per-layer views ------------------------------------------------------------------------
    def _split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return split_by_layer(flat, self.layers, self.shapes)

    def pvalues_by_layer(self) -> dict[str, np.ndarray]:
        """``{layer: p-values of the kernel's shape}``."""
        return self._split(self.pvalues)

    @property
    def n_weights(self) -> int:
        return int(self.pvalues.size)

    @property
    def n_degenerate(self) -> int:
        return int((self.degenerate != OK).sum())

    @property
    def n_static(self) -> int:
        """Weights whose LE is 0 in every window (they did not move); 0 if unknown."""
        return 0 if self.static is None else int(self.static.sum())

    def degenerate_counts(self) -> dict[str, int]:
        """How many weights had no valid test, by reason."""
        codes, counts = np.unique(self.degenerate[self.degenerate != OK], return_counts=True)
        return {DEGENERATE_REASONS[int(c)]: int(n) for c, n in zip(codes, counts, strict=True)}

    @property
    def evidence(self) -> np.ndarray:
        """What paper mode thresholds: the q-values with ``fdr=True``, else the p-values."""
        return self.pvalues if self.qvalues is None else self.qvalues

    def summary(self, alpha: float = 0.05) -> str:
        valid = self.degenerate == OK
        causal = int((self.evidence[valid] < alpha).sum())
        name = "q" if self.qvalues is not None else "p"
        lags = (
            f"lag {self.lags[0]} only" if len(self.lags) == 1 else f"lags 1..{self.max_lag} (min p)"
        )
        extras = [o for o in ("differenced", "fdr") if self.info.get(o)]
        lines = [
            f"Scores: {self.n_weights} weights, Granger {self.test}, {lags}"
            + (f", {', '.join(extras)}" if extras else "")
        ]
        if self.f_pvalue is not None:  # what legc_protect protects
            tested = int(np.isfinite(self.f_pvalue).sum())
            lines.append(
                f"  causal by target mode's test (F-test at the BIC lag, Benjamini-Hochberg "
                f"q < 0.05): {int(importance.causal_weights(self).sum())} of {tested} tested"
            )
        lines.append(
            f"  the paper's test ({lags}): causal ({name} < {alpha}): {causal}   "
            f"non-causal: {int(valid.sum()) - causal}   degenerate (kept, no valid test): "
            f"{self.n_degenerate}"
        )
        lines += [f"    {reason}: {n}" for reason, n in self.degenerate_counts().items()]
        if self.static is not None:
            lines.append(
                f"  static (LE 0 in every window, did not move; pruned first in target mode): "
                f"{self.n_static}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Scores(weights={self.n_weights}, max_lag={self.max_lag}, test={self.test!r}, "
            f"degenerate={self.n_degenerate})"
        )

    # -- the policies ---------------------------------------------------------------------------
    def mask(
        self,
        alpha: float | None = None,
        *,
        sparsity: float | None = None,
        per_layer: bool | str | None = None,
        block: tuple[int, int] | None = None,
        ranking: str | None = None,
        sparsity_m_by_n: tuple[int, int] | None = None,
        exclude: Iterable[str] | str | None = None,
    ) -> Mask:
        """A mask from the scores.

        Args:
            alpha: paper mode: prune every weight whose p-value (q-value if scored with
                ``fdr=True``) is >= alpha (not Granger-causal); the sparsity is whatever comes
                out. Default 0.05 when ``sparsity`` is not given. Degenerate weights (no valid
                test) are always kept in paper mode, and counted.
            sparsity: target mode: prune this fraction of the kernel weights, least important
                first by ``ranking``.
            per_layer: in target mode, how the sparsity is shared among layers: ``"lamp"`` (the
                default: LAMP's per-layer sparsities from the kernels' magnitudes, the ranking
                deciding within each layer; it keeps every layer's largest weights, where one
                global ranking empties depthwise kernels), ``False`` (one global ranking) or
                ``True`` (the same sparsity in every layer); see
                :func:`keras_legc.magnitude_mask`. Scores saved without their kernels have no
                magnitudes: the default is then one global ranking
                (``mask.info["per_layer"]`` says which was used).
            block: in target mode, prune whole blocks: ``(1, 16)`` = 1 output unit x 16
                consecutive input weights (TFLite's (out, in) orientation; in the Keras kernel,
                16 consecutive rows of one column), the structure TFLite's sparse kernel runs
                faster. Each weight's importance is aggregated over its block. The reached
                sparsity is in ``mask.info["reached_sparsity"]``, within half a block of the
                request.
            ranking: target mode's scorer, a name from :func:`target_rankings` (``legc*``
                scorers registered with ``importance.register`` included). Default
                ``"static_magnitude"``: weights that never moved (LE 0 in every window) first,
                then the smallest ``|w|``; it never loses to global magnitude (README, "Target
                mode"). ``"legc_protect"``: never-moved first, then the non-causal ones (F-test
                at the BIC lag, Benjamini-Hochberg q >= 0.05, or no valid test) by magnitude,
                then the causal ones by magnitude. ``"legc"`` ranks by causal effect size alone,
                ``"legc_rank_product"`` by effect size x magnitude, and ``"legc_pvalue"`` is the
                paper-era ranking (highest p first, degenerate weights last), which collapses
                networks at high sparsity. See :mod:`keras_legc.masking.importance` and
                docs/against-tfmot.md for how they compare.
            sparsity_m_by_n: target mode with TF-MOT's N:M pattern instead of a sparsity:
                ``(2, 4)`` keeps at most 2 of every 4 consecutive weights along each weight's
                input-channel axis (the 2 ``ranking`` puts last in each group). N-D weights are
                read as convolution kernels ``(..., in, out)``.
            exclude: weights kept whole (what TF-MOT does with the layers it is not given, such
                as depthwise kernels): layer names or weight keys (``self.layers``); in target
                mode ``sparsity`` is then that of the other weights. See
                :func:`keras_legc.masking.policy.check_exclude`.

        In target mode the mask records ``info["kept_untestable"]``, the share of kept weights
        with no valid test, and warns when it is above one half: the mask then rests on
        fallback ranks, not on causal evidence.

        Example:
            >>> mask = scores.mask(sparsity=0.9, block=(1, 16))
            >>> mask.info["reached_sparsity"]
            0.9
        """
        self._check_mode(alpha, sparsity, block, ranking, sparsity_m_by_n)
        base = self._provenance()
        excluded = check_exclude(exclude, self.layers)
        if sparsity is not None or sparsity_m_by_n is not None:
            return self._target_mask(sparsity, self._allocation(per_layer, sparsity_m_by_n), block,
                                     ranking or DEFAULT_RANKING, base, sparsity_m_by_n,
                                     excluded)  # fmt: skip
        alpha = _check_alpha(0.05 if alpha is None else alpha)
        keep = (self.degenerate != OK) | (self.evidence < alpha)
        arrays = self._split(keep)
        arrays.update({k: np.ones_like(arrays[k]) for k in excluded})
        m = Mask(
            arrays, {**base, "alpha": float(alpha), **({"exclude": excluded} if excluded else {})}
        )
        return warn_empty_layers(
            m, "a higher alpha, or target mode: sparsity=..., per_layer='lamp'"
        )

    def _allocation(self, per_layer, m_by_n) -> bool | str:
        """``per_layer`` as given, or the default: LAMP where the kernels' magnitudes are known
        (N:M sets every layer's sparsity by itself; scores without kernels rank globally)."""
        if per_layer is not None:
            return check_per_layer(per_layer)
        if m_by_n is not None or self.kernels is None:
            return False
        return DEFAULT_ALLOCATION

    def _check_mode(self, alpha, sparsity, block, ranking, m_by_n=None) -> None:
        check_mask_options(alpha, sparsity, block, ranking, m_by_n)
        if self.n_degenerate == self.n_weights:
            flat, k = self.info.get("target_flat_windows", 0), self.info.get("n_windows", 0)
            if target_is_flat(flat, k):
                self._flat_target(flat, k, sparsity)
                return
            raise HistoryError(
                f"all {self.n_weights} weights are degenerate ({self.degenerate_counts()}), so "
                "there is no causal evidence to prune by. Fix: record more windows, a smaller "
                "window, or check that the weights actually move during training."
            )

    def _flat_target(self, flat: int, k: int, sparsity) -> None:
        """No weight has a valid test because the target stood still for most windows: target
        mode falls back to the weights' order (with a warning); paper mode, which keeps every
        untested weight, would prune nothing, so it says why."""
        why = (
            f"the target did not change over the last {flat} of the {k} windows, so every "
            f"weight's Granger test is an exact fit with no evidence (all {self.n_weights} "
            "weights untested)"
        )
        fix = (
            'Fix: record WeightHistory(target="loss") (the validation loss keeps moving after the '
            "error stops), or a larger validation set"
        )
        if sparsity is None:
            raise HistoryError(f"{why}; paper mode would keep every weight. {fix}; or target "
                               "mode, scores.mask(sparsity=...), which falls back to the "
                               "weights' order.")  # fmt: skip
        warnings.warn(
            f"{why}: the mask falls back to the weights' order (never-moved weights first, then "
            f"smallest |w|), as a magnitude mask would. {fix}.",
            LegcWarning,
            stacklevel=4,
        )

    def _provenance(self) -> dict:
        base = {
            "method": "legc",
            "test": self.test,
            "max_lag": self.max_lag,
            **{o: bool(self.info.get(o)) for o in ("fdr", "differenced")},
        }
        if len(self.lags) == 1:
            base["lag"] = self.lags[0]
        return base

    def _target_mask(self, sparsity, per_layer, block, ranking, base, m_by_n=None,
                     exclude=()) -> Mask:  # fmt: skip
        kernels = self.kernels or {n: np.zeros(self.shapes[n]) for n in self.layers}
        scorer = importance.get_scorer(ranking, self)
        m = mask_from_importance(scorer, kernels, sparsity, per_layer=per_layer, block=block,
                                 info=base, sparsity_m_by_n=m_by_n,
                                 layouts=self.info.get("layouts"), exclude=exclude)  # fmt: skip
        m.info["ranking"] = ranking
        self._count_protected(m, kernels, sparsity, per_layer, block, ranking, m_by_n, exclude)
        self._warn_untestable(m, exclude)
        return warn_empty_layers(m, target_fix(per_layer))

    def _count_protected(self, mask, kernels, sparsity, per_layer, block, ranking, m_by_n,
                         exclude=()) -> None:  # fmt: skip
        """Record how many kept weights are causal (target mode's test) and, for the default and
        ``legc_protect``, how many of them the causal evidence kept: those the same ranking
        without the Granger test (``static_magnitude``, the default, which uses none) would have
        pruned; the rest were kept by magnitude alone."""
        kept = self._kept(mask, exclude)
        if self.f_pvalue is not None:
            mask.info["kept_causal"] = int((kept & importance.causal_weights(self)).sum())
        if ranking == DEFAULT_RANKING:
            mask.info["kept_by_evidence"] = 0
            mask.info["kept_by_magnitude"] = int(kept.sum())
            return
        if ranking != "legc_protect":
            return
        without = mask_from_importance(importance.static_magnitude(self), kernels, sparsity,
                                       per_layer=per_layer, block=block, sparsity_m_by_n=m_by_n,
                                       layouts=self.info.get("layouts"),
                                       exclude=exclude)  # fmt: skip
        plain = np.concatenate([np.ravel(without[n]) for n in self.layers])
        protected = int((kept & ~plain).sum())
        mask.info["kept_by_evidence"] = protected
        mask.info["kept_by_magnitude"] = int(kept.sum()) - protected

    def _kept(self, mask: Mask, exclude=()) -> np.ndarray:
        """The weights ``mask`` keeps, flat in score order; the ``exclude``d ones (kept whole, by
        no evidence) count as not kept."""
        return np.concatenate([np.ravel(mask[n]) & (n not in exclude) for n in self.layers])

    def _warn_untestable(self, mask: Mask, exclude=()) -> None:
        """Record (and warn above one half) the share of kept weights with no valid test (the
        ``exclude``d weights left out)."""
        kept = self._kept(mask, exclude)
        n_kept = int(kept.sum())
        untestable = int((kept & (self.degenerate != OK)).sum())
        share = untestable / n_kept if n_kept else 0.0
        mask.info["kept_untestable"] = share
        if share > 0.5 and not target_is_flat(self.info.get("target_flat_windows", 0),
                                              self.info.get("n_windows", 0)):  # fmt: skip
            warnings.warn(
                f"{100 * share:.0f}% of the weights this mask keeps ({untestable} of {n_kept}) "
                "have no valid Granger test (never moved, collinear or exact fits): the mask rests "
                "on fallback ranks, not causal evidence. Fix: record more windows (train longer, "
                "a smaller window, every=1), or a lower sparsity.",
                LegcWarning,
                stacklevel=4,
            )

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the scores to a ``.npz`` atomically."""
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "keras_legc": __version__,
            "layers": self.layers,
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "max_lag": self.max_lag,
            "test": self.test,
            "lags": list(self.lags),
            "info": self.info,
        }
        arrays = {"pvalues": self.pvalues, "degenerate": self.degenerate}
        if self.qvalues is not None:
            arrays["qvalues"] = self.qvalues
        arrays.update(
            {a: getattr(self, a) for a in TARGET_MODE_ARRAYS if getattr(self, a) is not None}
        )
        if self.kernels is not None:
            arrays.update({f"kernel_{i}": self.kernels[n] for i, n in enumerate(self.layers)})

        return write_npz(path, meta, arrays, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, model=None) -> Scores:
        """Read scores written by :meth:`save`; with ``model``, refuse scores of another model
        (different Dense layers or kernel shapes) with ``MaskMismatchError``."""
        try:
            meta, data = read_npz(path, FORMAT, FORMAT_VERSION, META_TYPES)
            pvalues, degenerate = data["pvalues"], data["degenerate"]
            qvalues = data["qvalues"] if "qvalues" in data else None
            extra = {a: data[a] for a in TARGET_MODE_ARRAYS if a in data}
            kernels = None
            if "kernel_0" in data:
                kernels = {n: data[f"kernel_{i}"] for i, n in enumerate(meta["layers"])}
        except (ValueError, KeyError) as exc:
            raise HistoryError(
                f"{path} is not a readable keras_legc scores file ({exc}). Fix: pass a file "
                "written by Scores.save, or score the history again."
            ) from exc
        if model is not None:
            from keras_legc.keras.registry import signature

            have = {n: tuple(meta["shapes"][n]) for n in meta["layers"]}
            want = signature(model)
            if have != want:
                raise MaskMismatchError(
                    f"the scores in {path} belong to another model: layers/shapes {have}, the "
                    f"model has {want}. Fix: score this model's own history."
                )
        return cls(
            layers=meta["layers"],
            shapes=meta["shapes"],
            pvalues=pvalues,
            degenerate=degenerate,
            max_lag=meta["max_lag"],
            test=meta["test"],
            kernels=kernels,
            info=meta.get("info"),
            qvalues=qvalues,
            lags=meta.get("lags"),
            **extra,
        )


def target_rankings() -> tuple[str, ...]:
    """The names ``Scores.mask(ranking=...)`` takes: the default and the LEGC rankings."""
    return (DEFAULT_RANKING, *importance.legc_rankings())


#: Types of the meta fields that Scores.load reads (the file is untrusted).
META_TYPES = {"max_lag": IntIn(1, 10**6), "test": str, "lags": [IntIn(1, 10**6)]}


def check_mask_options(alpha=None, sparsity=None, block=None, ranking=None, m_by_n=None) -> None:
    """Check :meth:`Scores.mask`'s options without any scores (the CLI checks them before
    scoring): one mode, target mode's options only with a sparsity (or an N:M pattern), a
    sparsity in [0, 1), an alpha in (0, 1), a known ranking.

    Example:
        >>> check_mask_options(sparsity=0.8, ranking="legc_protect")
    """
    if alpha is not None and (sparsity is not None or m_by_n is not None):
        raise InvalidArgumentError(
            "give either alpha (paper mode) or sparsity (target mode), not both. Fix: drop "
            "one of them."
        )
    if sparsity is None and m_by_n is None and (block is not None or ranking is not None):
        what = "block=" if block is not None else "ranking="
        raise InvalidArgumentError(
            f"{what} applies to target mode (a sparsity to reach); paper mode (alpha) decides "
            f"weight by weight. Fix: pass sparsity=... together with {what}."
        )
    if ranking is not None and ranking not in target_rankings():
        raise InvalidArgumentError(
            f"unknown ranking {ranking!r}. Fix: use one of {list(target_rankings())}, "
            "or build a mask from any scorer with keras_legc.mask_from_importance."
        )
    if sparsity is not None:
        check_sparsity(sparsity)
    if alpha is not None:
        _check_alpha(alpha)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
        raise InvalidArgumentError(
            f"alpha must be in (0, 1), got {alpha!r}. Fix: pass a significance level such as 0.05."
        )
    return alpha


def score(
    history: History | str | os.PathLike,
    max_lag: int | str = "auto",
    test: str = "ssr_chi2",
    *,
    lag: int | None = None,
    fdr: bool = False,
    difference: bool = False,
    weights: np.ndarray | None = None,
    criterion: str | None = "bic",
    chunk_size: int = DEFAULT_CHUNK,
    threads: int | None = None,
    progress: bool | None = None,
    client: Any = None,
) -> Scores:
    """Granger-test every weight's LE series against the target series.

    Args:
        history: a :class:`History` (``WeightHistory(...).history``) or its run directory.
        max_lag: largest lag L. ``"auto"`` (default): the paper's 14, or the largest the K
            windows allow, ``floor((K - 2) / 3)``, if smaller. An explicit value that is too large
            for K is capped the same way, with a warning.
        test: ``"ssr_chi2"`` (paper) or ``"ssr_ftest"``.
        lag: beyond the paper: test this one lag only, instead of the minimum p over lags
            1..max_lag (which is anti-conservative: the smallest of up to 14 p-values).
        fdr: beyond the paper: Benjamini-Hochberg across weights; ``Scores.qvalues`` is set and
            paper mode thresholds it, so ``alpha`` becomes a false discovery rate.
        difference: beyond the paper: difference the LE and target series jointly first (for
            trending series; one window fewer).
        weights: a boolean array ``(n_weights,)``: test only these weights (e.g. the survivors of
            a gradual mask); the others get no test (NaN, reason "constant cause") and count as
            static. None: every weight.
        criterion: how target mode's evidence chooses each weight's lag: ``"bic"`` (default) or
            ``"aic"``; the F-test and partial R-squared at that lag are what target mode ranks
            by. None skips it (about 40% faster; paper mode only: target mode's rankings then
            refuse the scores).
        chunk_size: weights per batch; bounds peak memory. Scores do not depend on it. A history
            whose LE series are on disk (``le_store=True``) is read ``chunk_size * threads``
            weights at a time (at least one chunk of its store), so memory stays bounded
            however large the history is.
        threads: worker threads (None: every usable core). Scores do not depend on it.
        progress: show a progress bar with ETA on stderr (None: only on a terminal).
        client: a Dask ``distributed.Client``, or a scheduler address (``"tcp://host:8786"``):
            score blocks of weights as tasks on its workers (they read a stored history from its
            store path, which they must see; an in-memory one is scattered to them). Scores are
            bit-identical to scoring in-process. Each task runs on one worker thread
            (``threads`` is for in-process scoring). Needs the ``distributed`` extra.

    Returns:
        :class:`Scores`.

    Example:
        >>> scores = keras_legc.score(recorder.history)
        >>> mask = scores.mask(alpha=0.05)            # the paper's mode
        >>> mask90 = scores.mask(sparsity=0.9)        # a target sparsity
        >>> scores = keras_legc.score("run", client="tcp://10.0.0.5:8786")  # on a Dask cluster
    """
    if not isinstance(fdr, (bool, np.bool_)):
        raise InvalidArgumentError(
            f"fdr must be True or False, got {fdr!r}. Fix: fdr=True adds Benjamini-Hochberg "
            "q-values across weights; the paper's mode is fdr=False."
        )
    if not isinstance(history, History):
        history = History.load(history)
    _check_history(history)
    rows = _selected_rows(weights, history.n_weights)
    spec = ScoreSpec.resolve(history, max_lag, test, lag, difference, criterion, chunk_size)
    n = history.n_weights if rows is None else rows.size
    bar = Progress(n, "LEGC scoring", enabled=progress)
    selected = None
    if rows is not None:
        selected = np.zeros(history.n_weights, dtype=bool)
        selected[rows] = True
    if client is not None:
        from keras_legc.core.distributed import score_on_cluster

        arrays = score_on_cluster(client, history, spec, selected, progress=bar.update)
    else:
        arrays = _score_here(history, spec, selected, check_threads(threads), bar.update)
    bar.close()
    pvalues = arrays["pvalues"]
    return Scores(
        layers=history.layers,
        shapes=history.shapes,
        pvalues=pvalues,
        degenerate=arrays["degenerate"],
        max_lag=spec.max_lag,
        test=test,
        kernels=history.final_kernels,
        info={
            "n_windows": history.n_windows,
            "window": history.window,
            "requested_max_lag": max_lag,
            "fdr": bool(fdr),
            "differenced": bool(difference),
            "criterion": criterion,
            "target_flat_windows": history.target_flat_windows,
            # the non-Dense weights' layouts the recording saw (N:M axis, block layout)
            **({"layouts": history.meta["layouts"]} if "layouts" in history.meta else {}),
        },
        qvalues=benjamini_hochberg(pvalues) if fdr else None,
        lags=spec.lags,
        static=arrays["static"],
        f_pvalue=arrays.get("f_pvalue"),
        partial_r2=arrays.get("partial_r2"),
        selected_lag=arrays.get("selected_lag"),
    )


#: The per-weight arrays a block of weights is scored into (the last three only with a criterion).
BLOCK_ARRAYS = ("pvalues", "degenerate", "static", "selected_lag", "f_pvalue", "partial_r2")


@dataclass(frozen=True)
class ScoreSpec:
    """The arguments every block of weights is scored with, checked and resolved once.

    Resolving runs the Granger test on one weight, so bad arguments, a constant target and the
    max-lag cap (warned about once) surface before any block is scored, and every block (on this
    machine or on a Dask worker) tests exactly the same lags.

    Example:
        >>> spec = ScoreSpec.resolve(history, "auto", "ssr_chi2", None, False, "bic", 4096)
        >>> spec.lags
        (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
    """

    target: np.ndarray
    max_lag: int
    test: str
    lag: int | None
    difference: bool
    criterion: str | None
    chunk_size: int
    lags: tuple[int, ...]

    @classmethod
    def resolve(cls, history, max_lag, test, lag, difference, criterion, chunk_size) -> ScoreSpec:
        """Check the arguments against ``history`` (its first weight) and fix the lags."""
        probe = _granger(np.asarray(history.le[:1]), history.target, max_lag, test, lag,
                         difference, criterion, chunk_size, 1, None)  # fmt: skip
        return cls(history.target, probe.max_lag, test, lag, bool(difference), criterion,
                   int(chunk_size), tuple(probe.lags))  # fmt: skip


def score_block(
    le: np.ndarray,
    spec: ScoreSpec,
    selected: np.ndarray | None = None,
    threads: int = 1,
    progress=None,
) -> dict[str, np.ndarray]:
    """Score one block of weights: ``{name: per-weight array}`` for the names in BLOCK_ARRAYS.

    Every weight's result depends on its own LE series only, so blocks scored anywhere (threads,
    processes, Dask workers) and put together are bit-identical to one in-memory run.

    Args:
        le: float ``(m, K)`` LE series of the block's weights.
        spec: from :meth:`ScoreSpec.resolve`.
        selected: bool ``(m,)``: test only these (the rest: untested, static); None: all.
        threads: worker threads over the block's chunks.
        progress: called with the number of weights finished after each chunk.

    Example:
        >>> arrays = score_block(history.le[:4096], spec)
        >>> arrays["pvalues"].shape
        (4096,)
    """
    static = _static_weights(le)
    rows = None if selected is None else np.flatnonzero(selected)
    cause = le if rows is None else le[rows]
    # max_lag is already resolved (capped): no block warns about it again
    max_lag = spec.max_lag if spec.lag is None else spec.lags[0]
    if cause.shape[0]:
        result = _granger(cause, spec.target, max_lag, spec.test, spec.lag, spec.difference,
                          spec.criterion, spec.chunk_size, threads, progress)  # fmt: skip
    else:  # nothing selected in this block: an empty result, spread below
        result = _granger(le[:1], spec.target, max_lag, spec.test, spec.lag, spec.difference,
                          spec.criterion, spec.chunk_size, 1, None)  # fmt: skip
        result = _scatter(result, np.zeros(1, dtype=np.int64), 1, keep=0)
    if rows is not None:
        result = _scatter(result, rows, le.shape[0])
        static[~selected] = True
    arrays = {"pvalues": result.pvalues, "degenerate": result.degenerate, "static": static}
    for name in BLOCK_ARRAYS[3:]:
        if getattr(result, name) is not None:
            arrays[name] = getattr(result, name)
    return arrays


class BlockCollector:
    """The per-weight arrays of all ``n`` weights, filled block by block (in any order).

    Example:
        >>> out = BlockCollector(history.n_weights)
        >>> out.put(0, score_block(history.le[:4096], spec))
    """

    def __init__(self, n: int):
        self.n, self.arrays = int(n), {}

    def put(self, start: int, block: dict[str, np.ndarray]) -> None:
        """Store a block's arrays (from :func:`score_block`) at weights ``start`` onwards."""
        for name, values in block.items():
            if name not in self.arrays:
                self.arrays[name] = np.empty(self.n, dtype=values.dtype)
            self.arrays[name][start : start + values.size] = values


def block_rows(history: History, chunk_size: int, threads: int = 1) -> int:
    """Weights per block when a history is read (or shipped) in blocks: ``chunk_size x threads``,
    rounded up to whole chunks of the history's LE store (each chunk is decompressed once).

    Example:
        >>> block_rows(stored_history, 4096, threads=2)   # store chunks of 65536 weights
        65536
    """
    rows = int(chunk_size) * int(threads)
    if history.stored:
        chunk = history.le.chunk_rows
        rows = chunk * -(-rows // chunk)
    return rows


def _score_here(history, spec, selected, threads, progress) -> dict[str, np.ndarray]:
    """Score in this process: in memory, one block (the chunks on ``threads`` threads); on disk,
    one block of rows at a time, so only a block is ever in memory."""
    if not history.stored:
        return score_block(history.le, spec, selected, threads, progress)
    n, step = history.n_weights, block_rows(history, spec.chunk_size, threads)
    out = BlockCollector(n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        sel = None if selected is None else selected[start:stop]
        out.put(start, score_block(history.le.rows(start, stop), spec, sel, threads, progress))
    return out.arrays


def _check_history(history: History) -> None:
    k = history.n_windows
    if k < MIN_WINDOWS:
        raise HistoryError(
            f"the history has {k} LE window(s) ({history.n_snapshots} snapshots, window "
            f"{history.window}); a Granger test needs at least {MIN_WINDOWS} even at lag 1. "
            "Fix: train for more steps, record every step (every=1), or use a smaller window."
        )
    if not np.all(np.isfinite(history.target)):
        raise NonFiniteError(
            "the target series contains NaN or inf; the history is corrupt. Fix: record it again."
        )


def _granger(le, target, max_lag, test, lag, difference, criterion, chunk_size, threads,
             progress):  # fmt: skip
    """The batched Granger tests of the rows of ``le``, with score()'s message on NaN."""
    try:
        return granger_test(
            le, target, max_lag, test, lag=lag, difference=bool(difference), criterion=criterion,
            chunk_size=chunk_size, threads=threads, progress=progress,
        )  # fmt: skip
    except NonFiniteError as exc:
        raise NonFiniteError(
            "the LE series contain NaN or inf; the recorded weights diverged. Fix: lower the "
            "learning rate and record again."
        ) from exc


def _selected_rows(weights, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.dtype != bool or w.shape != (n,):
        raise InvalidArgumentError(
            f"weights must be a boolean array of shape ({n},) (one entry per kernel weight), got "
            f"{w.dtype} {w.shape}. Fix: pass e.g. the flattened kept entries of a Mask."
        )
    if not w.any():
        raise InvalidArgumentError("weights selects no weight to test. Fix: select at least one.")
    return np.flatnonzero(w)


def _scatter(result, rows: np.ndarray, n: int, keep: int | None = None):
    """A GrangerResult of the selected rows spread over all ``n`` weights (the rest untested);
    ``keep=0`` spreads none of them (an all-untested result of ``result``'s dtypes)."""

    def spread(values, fill, dtype=None):
        if values is None:
            return None
        out = np.full((n, *values.shape[1:]), fill, dtype=dtype or values.dtype)
        out[rows[:keep]] = values[:keep]
        return out

    return replace(
        result,
        pvalues=spread(result.pvalues, np.nan),
        per_lag=spread(result.per_lag, np.nan),
        degenerate=spread(result.degenerate, CONSTANT_CAUSE),
        selected_lag=spread(result.selected_lag, 0),
        f_pvalue=spread(result.f_pvalue, np.nan),
        partial_r2=spread(result.partial_r2, np.nan),
    )


def _static_weights(le: np.ndarray, rows: int = 1 << 16) -> np.ndarray:
    """True where a weight's LE is 0 in every window (the LE of a window that did not move is 0),
    computed in blocks of rows so no full-size temporary is made."""
    static = np.empty(le.shape[0], dtype=bool)
    for start in range(0, le.shape[0], rows):
        static[start : start + rows] = ~np.any(le[start : start + rows] != 0, axis=1)
    return static
