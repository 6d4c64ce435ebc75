"""The one mean ± sd helper of the research reports (sample sd over seeds)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def mean_sd(values: Iterable[float], *, single: float = 0.0) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) of ``values``.

    Args:
        values: numbers (e.g. one accuracy per seed).
        single: the sd reported when there are fewer than two values (0.0, or NaN where a
            missing spread should show as such).

    Returns:
        ``(mean, sd)``; the mean is NaN for no values.

    Example:
        >>> mean_sd([0.9, 0.8, 0.7])
        (0.8000000000000002, 0.10000000000000003)
    """
    a = np.asarray(list(values), dtype=np.float64)
    mean = float(a.mean()) if a.size else float("nan")
    return mean, float(a.std(ddof=1)) if a.size > 1 else single


def format_mean_sd(values: Iterable[float], digits: int = 4, scale: float = 1.0) -> str:
    """``"mean ± sd"`` of ``values * scale`` with ``digits`` decimals, ``"-"`` for none.

    Example:
        >>> format_mean_sd([0.5, 0.7], digits=2)
        '0.60 ± 0.14'
    """
    a = np.asarray(list(values), dtype=np.float64) * scale
    if a.size == 0:
        return "-"
    mean, sd = mean_sd(a)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"
