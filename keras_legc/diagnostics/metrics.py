"""Rank agreement between two importance vectors (numpy/scipy only): Spearman's rho and top-k
overlap, NaN (with a note) when either vector is constant."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_legc.errors import InvalidArgumentError


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise InvalidArgumentError(
            f"importance vectors must be 1-D and of equal length, got shapes {a.shape} and "
            f"{b.shape}. Fix: pass one value per feature for both models."
        )
    if a.size < 2:
        raise InvalidArgumentError(
            f"agreement needs at least 2 features, got {a.size}. Fix: pass longer vectors."
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InvalidArgumentError(
            "importance vectors contain NaN or inf. Fix: check the model outputs are finite."
        )
    return a, b


def _constant(v: np.ndarray) -> bool:
    return bool(np.ptp(v) == 0.0)


def spearman_agreement(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation between two importance vectors (ties get average ranks).

    Args:
        a: importance per feature of one model (e.g. dense mean |SHAP|).
        b: importance per feature of the other model, same features in the same order.

    Returns:
        rho in [-1, 1]; 1 means the same ranking. NaN when either vector is constant (every
        feature equally important, e.g. a model whose output ignores its input): a rank
        correlation is undefined then, and reports say so instead of inventing a number.

    Raises:
        InvalidArgumentError: shapes differ, fewer than 2 features, or non-finite values.

    Example:
        >>> spearman_agreement([0.1, 0.5, 0.3], [1.0, 3.0, 2.0])
        1.0
    """
    a, b = _check_pair(a, b)
    if _constant(a) or _constant(b):
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def topk_overlap(a: Sequence[float], b: Sequence[float], k: int) -> float:
    """Share of the k most important features of ``a`` that are also among the k of ``b``.

    ``|top_k(a) & top_k(b)| / k``. Ties are broken by feature index (the earlier feature counts as
    more important), so the result is deterministic; NaN when either vector is constant (its
    top-k would be decided by the tie-break alone).

    Args:
        a: importance per feature of one model.
        b: importance per feature of the other model.
        k: how many top features to compare, 1 <= k <= number of features (k = n gives 1.0).

    Raises:
        InvalidArgumentError: k out of range, shapes differ, fewer than 2 features, non-finite.

    Example:
        >>> topk_overlap([5, 4, 3, 2, 1], [4, 5, 0, 3, 1], k=2)
        1.0
    """
    a, b = _check_pair(a, b)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= a.size:
        raise InvalidArgumentError(
            f"k must be an integer in [1, {a.size}] (the number of features), got {k!r}. Fix: "
            "pass a smaller k."
        )
    if _constant(a) or _constant(b):
        return float("nan")
    top_a = np.argsort(-a, kind="stable")[:k]
    top_b = np.argsort(-b, kind="stable")[:k]
    return float(np.intersect1d(top_a, top_b).size / k)


def _agreement(dense: np.ndarray, other: np.ndarray, k: int, name: str, ref: str) -> dict:
    rho = spearman_agreement(dense, other)
    overlap = topk_overlap(dense, other, k)
    note = ""
    constant = [n for n, v in ((ref, dense), (name, other)) if _constant(v)]
    if constant:
        note = (
            f"undefined: the importances of {' and '.join(constant)} are constant (every feature "
            "equally important, e.g. all-zero SHAP values because the output ignores the input)"
        )
    return {"spearman": rho, "topk_overlap": overlap, "k": k, "note": note}
