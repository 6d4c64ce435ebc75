"""``score()``: from a recorded :class:`History` to per-weight Granger p-values (``Scores``).

A *scorer* maps a history to per-weight scores (here: the minimum Granger p-value over lags of the
weight's LE series against the misclassification series); a *policy* maps scores to a
:class:`~keras_legc.masking.masks.Mask` (``Scores.mask``). Numpy only.
"""

from __future__ import annotations

import numbers
import os
import warnings
from pathlib import Path

import numpy as np

from keras_legc._io import read_npz, write_npz
from keras_legc._progress import Progress
from keras_legc._version import __version__
from keras_legc.core._layout import split_by_layer
from keras_legc.core.granger import (
    DEFAULT_CHUNK,
    DEGENERATE_REASONS,
    OK,
    benjamini_hochberg,
    granger_test,
)
from keras_legc.core.history import History
from keras_legc.errors import (
    HistoryError,
    InvalidArgumentError,
    LegcWarning,
    MaskMismatchError,
    NonFiniteError,
)
from keras_legc.masking.masks import Mask, block_reduce, check_block, mask_from_ranking

FORMAT = "keras_legc.scores"
FORMAT_VERSION = 1
MIN_WINDOWS = 5  # a Granger test at lag 1 needs K > 3 * 1 + 1


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
        n = sum(int(np.prod(self.shapes[name])) for name in self.layers)
        arrays = [("pvalues", self.pvalues), ("degenerate", self.degenerate)]
        if self.qvalues is not None:
            arrays.append(("qvalues", self.qvalues))
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
            + (f", {', '.join(extras)}" if extras else ""),
            f"  causal ({name} < {alpha}): {causal}   non-causal: {int(valid.sum()) - causal}   "
            f"degenerate (kept, no valid test): {self.n_degenerate}",
        ]
        lines += [f"    {reason}: {n}" for reason, n in self.degenerate_counts().items()]
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
        per_layer: bool = False,
        block: tuple[int, int] | None = None,
    ) -> Mask:
        """A mask from the scores.

        Args:
            alpha: paper mode: prune every weight whose p-value (q-value if scored with
                ``fdr=True``) is >= alpha (not Granger-causal); the sparsity is whatever comes
                out. Default 0.05 when ``sparsity`` is not given.
            sparsity: target mode: prune this fraction of weights, least causal (highest p) first,
                ties broken by smallest final magnitude; degenerate weights are pruned last.
            per_layer: in target mode, reach the sparsity in every layer instead of globally.
            block: in target mode, prune whole blocks: ``(1, 16)`` = 1 output unit x 16
                consecutive input weights (TFLite's (out, in) orientation; in the Keras kernel,
                16 consecutive rows of one column), the structure TFLite's sparse kernel runs
                faster. A block's evidence is the mean of ``-log10 p`` over its weights with a
                valid test (the least causal blocks, lowest mean, are pruned first; ties by the
                smallest block L2 norm); blocks whose weights are all degenerate are pruned last.
                A partial last block (layer size not a multiple) is a smaller block. The reached
                sparsity is in ``mask.info["reached_sparsity"]``, within half a block of the
                request.

        Degenerate weights (no valid test) are always kept in paper mode, and counted.

        Example:
            >>> mask = scores.mask(sparsity=0.9, block=(1, 16))
            >>> mask.info["reached_sparsity"]
            0.9
        """
        if alpha is not None and sparsity is not None:
            raise InvalidArgumentError(
                "give either alpha (paper mode) or sparsity (target mode), not both. Fix: drop "
                "one of them."
            )
        if block is not None and sparsity is None:
            raise InvalidArgumentError(
                "block= prunes whole blocks to a target sparsity; paper mode (alpha) decides "
                "weight by weight. Fix: pass sparsity=... together with block=."
            )
        if self.n_degenerate == self.n_weights:
            raise HistoryError(
                f"all {self.n_weights} weights are degenerate ({self.degenerate_counts()}), so "
                "there is no causal evidence to prune by. Fix: record more windows, a smaller "
                "window, or check that the weights actually move during training."
            )
        base = {
            "method": "legc",
            "test": self.test,
            "max_lag": self.max_lag,
            **{o: bool(self.info.get(o)) for o in ("fdr", "differenced")},
        }
        if len(self.lags) == 1:
            base["lag"] = self.lags[0]
        if sparsity is not None:
            fix = (
                "a lower sparsity"
                if per_layer
                else "per_layer=True (the same sparsity in every layer), or a lower sparsity"
            )
            kernels = self.kernels or {n: np.zeros(self.shapes[n]) for n in self.layers}
            if block is not None:
                m = self._block_mask(kernels, sparsity, block, per_layer, base)
                return _warn_empty_layers(m, fix)
            p = self._split(np.where(self.degenerate == OK, self.pvalues, 0.0))
            deg = self._split(self.degenerate != OK)
            keys = {n: [np.abs(kernels[n]), -p[n], deg[n]] for n in self.layers}
            m = mask_from_ranking(keys, sparsity, per_layer=per_layer, info=base)
            return _warn_empty_layers(m, fix)
        alpha = 0.05 if alpha is None else alpha
        if isinstance(alpha, bool) or not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
            raise InvalidArgumentError(
                f"alpha must be in (0, 1), got {alpha!r}. Fix: pass a significance level such as "
                "0.05."
            )
        keep = (self.degenerate != OK) | (self.evidence < alpha)
        m = Mask(self._split(keep), {**base, "alpha": float(alpha)})
        return _warn_empty_layers(m, "a higher alpha, or target mode: sparsity=..., per_layer=True")

    def _block_mask(self, kernels, sparsity, block, per_layer, base) -> Mask:
        b = check_block(block)
        valid = self.degenerate == OK
        # -log10 p of valid tests (p floored at 1e-300 so p = 0 stays finite); NaN = no test.
        evidence = np.where(valid, -np.log10(np.maximum(self.pvalues, 1e-300)), np.nan)
        evidence = self._split(evidence)
        keys = {}
        for n in self.layers:
            mean = block_reduce(evidence[n], b, "mean")
            all_degenerate = np.isnan(mean)
            norm = block_reduce(np.square(kernels[n]), b, "sum")
            keys[n] = [norm, np.where(all_degenerate, 0.0, mean), all_degenerate]
        info = {**base, "block_score": "mean -log10 p over valid weights"}
        return mask_from_ranking(
            keys, sparsity, per_layer=per_layer, info=info, block=b, shapes=self.shapes
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
        if self.kernels is not None:
            arrays.update({f"kernel_{i}": self.kernels[n] for i, n in enumerate(self.layers)})

        return write_npz(path, meta, arrays, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, model=None) -> Scores:
        """Read scores written by :meth:`save`; with ``model``, refuse scores of another model
        (different Dense layers or kernel shapes) with ``MaskMismatchError``."""
        try:
            meta, data = read_npz(path, FORMAT, FORMAT_VERSION)
            pvalues, degenerate = data["pvalues"], data["degenerate"]
            qvalues = data["qvalues"] if "qvalues" in data else None
            kernels = None
            if "kernel_0" in data:
                kernels = {n: data[f"kernel_{i}"] for i, n in enumerate(meta["layers"])}
        except (ValueError, KeyError) as exc:
            raise HistoryError(
                f"{path} is not a readable keras_legc scores file ({exc}). Fix: pass a file "
                "written by Scores.save, or score the history again."
            ) from exc
        if model is not None:
            from keras_legc.keras.layers import layer_signature

            have = {n: tuple(meta["shapes"][n]) for n in meta["layers"]}
            want = layer_signature(model)
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
        )


def _warn_empty_layers(mask: Mask, fix: str) -> Mask:
    """Warn when a mask prunes every kernel weight of a layer (the net no longer sees its input)."""
    empty = [name for name, keep in mask.items() if not keep.any()]
    if empty:
        warnings.warn(
            f"the mask prunes every kernel weight of layer(s) {empty}: they pass only their bias, "
            "so the network's output no longer depends on its input and no fine-tuning can "
            "recover it (a global ranking does this when a layer's p-values are uniformly high). "
            f"Fix: {fix}.",
            LegcWarning,
            stacklevel=3,
        )
    mask.info["empty_layers"] = empty
    return mask


def score(
    history: History | str | os.PathLike,
    max_lag: int = 14,
    test: str = "ssr_chi2",
    *,
    lag: int | None = None,
    fdr: bool = False,
    difference: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    threads: int | None = None,
    progress: bool | None = None,
) -> Scores:
    """Granger-test every weight's LE series against the misclassification series.

    Args:
        history: a :class:`History` (``WeightHistory(...).history``) or its run directory.
        max_lag: largest lag L (paper: 14); capped to ``floor((K - 2) / 3)`` for K windows, with a
            warning.
        test: ``"ssr_chi2"`` (paper) or ``"ssr_ftest"``.
        lag: beyond the paper: test this one lag only, instead of the minimum p over lags
            1..max_lag (which is anti-conservative: the smallest of up to 14 p-values).
        fdr: beyond the paper: Benjamini-Hochberg across weights; ``Scores.qvalues`` is set and
            paper mode thresholds it, so ``alpha`` becomes a false discovery rate.
        difference: beyond the paper: difference the LE and target series jointly first (for
            trending series; one window fewer).
        chunk_size: weights per batch; bounds peak memory. Scores do not depend on it.
        threads: worker threads (None: every usable core). Scores do not depend on it.
        progress: show a progress bar with ETA on stderr (None: only on a terminal).

    Returns:
        :class:`Scores`.

    Example:
        >>> scores = keras_legc.score(recorder.history)
        >>> mask = scores.mask(alpha=0.05)            # the paper's mode
        >>> mask90 = scores.mask(sparsity=0.9)        # a target sparsity
    """
    if not isinstance(history, History):
        history = History.load(history)
    k = history.n_windows
    if k < MIN_WINDOWS:
        raise HistoryError(
            f"the history has {k} LE window(s) ({history.n_snapshots} snapshots, window "
            f"{history.window}); a Granger test needs at least {MIN_WINDOWS} even at lag 1. "
            "Fix: train for more steps, record every step (every=1), or use a smaller window."
        )
    if not np.all(np.isfinite(history.target)):
        raise NonFiniteError(
            "the target (misclassification) series contains NaN or inf; the history is corrupt. "
            "Fix: record it again."
        )
    bar = Progress(history.n_weights, "LEGC scoring", enabled=progress)
    try:
        result = granger_test(
            history.le,
            history.target,
            max_lag,
            test,
            lag=lag,
            difference=bool(difference),
            chunk_size=chunk_size,
            threads=threads,
            progress=bar.update,
        )
    except NonFiniteError as exc:
        raise NonFiniteError(
            "the LE series contain NaN or inf; the recorded weights diverged. Fix: lower the "
            "learning rate and record again."
        ) from exc
    qvalues = benjamini_hochberg(result.pvalues) if fdr else None
    return Scores(
        layers=history.layers,
        shapes=history.shapes,
        pvalues=result.pvalues,
        degenerate=result.degenerate,
        max_lag=result.max_lag,
        test=test,
        kernels=history.final_kernels,
        info={
            "n_windows": k,
            "window": history.window,
            "requested_max_lag": max_lag,
            "fdr": bool(fdr),
            "differenced": bool(difference),
        },
        qvalues=qvalues,
        lags=result.lags,
    )
