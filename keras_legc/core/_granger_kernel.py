"""The compiled Granger lag fit (numba), imported by :mod:`keras_legc.core.granger` on first use.

The numpy path of ``_RestrictedFit.test`` makes about ``3 L^2`` passes over ``(K, chunk)`` arrays,
each allocating a temporary, so it is bound by memory traffic. This kernel does exactly the same
floating-point operations in the same order (products, then sums over the rows in row order,
as ``np.add.reduce(a * b, axis=0)`` does on a C-contiguous block; no fastmath, no fused
multiply-add), so its sums of squares are identical bit for bit, but on tiles of :data:`TILE`
series that stay in the L1/L2 cache, one SIMD lane per series.
"""

from __future__ import annotations

import numpy as np
from numba import float64, int64, njit, void

from keras_legc.core import _compiled

# Series per tile (passed at run time: with a compile-time trip count LLVM unrolls the lane loops
# fully and then fails to vectorise them, as it cannot rule out aliasing without a runtime check).
TILE = 32


@njit(cache=_compiled.CACHE, nogil=True, inline="always")
def _dot(a, b, out, n, tile):  # pragma: no cover - compiled
    """``out[s] = sum_i a[i, s] * b[i, s]``, summed from row 0 up (numpy's axis-0 reduce)."""
    for s in range(tile):
        out[s] = a[0, s] * b[0, s]
    for i in range(1, n):
        for s in range(tile):
            out[s] = out[s] + a[i, s] * b[i, s]


@njit(cache=_compiled.CACHE, nogil=True, inline="always")
def _dot_shared(q, col, b, out, n, tile):  # pragma: no cover - compiled
    """``out[s] = sum_i q[i, col] * b[i, s]`` (one column shared by every series)."""
    for s in range(tile):
        out[s] = q[0, col] * b[0, s]
    for i in range(1, n):
        qi = q[i, col]
        for s in range(tile):
            out[s] = out[s] + qi * b[i, s]


@njit(cache=_compiled.CACHE, nogil=True, inline="always")
def _project_out(u, b, dot, n, tile):  # pragma: no cover - compiled
    """``b -= u * (u . b)`` per series: numpy's ``b -= qk * _coldot(qk, b)``, same order."""
    _dot(u, b, dot, n, tile)
    for i in range(n):
        for s in range(tile):
            b[i, s] = b[i, s] - u[i, s] * dot[s]


@njit(
    void(float64[:, ::1], int64, float64[:, ::1], float64[::1], float64[::1], float64[::1],
         float64[::1], int64),
    cache=_compiled.CACHE,
    nogil=True,
)  # fmt: skip
def lag_fit(
    xt, lag, q, resid_r, ssr_u, smallest, scale2, tile_width
):  # pragma: no cover - compiled
    """One lag's unrestricted fit of every column of ``xt`` (``(K, m)``, one series per column).

    ``q``: the restricted design's orthonormal basis ``(K - lag, lag + 1)``; ``resid_r``: the
    target's restricted residual. Writes, per series, ``ssr_u`` (unrestricted residual sum of
    squares), ``smallest`` (the smallest residualised lag-column norm) and ``scale2`` (the lag
    block's sum of squares), as ``keras_legc.core.granger._RestrictedFit.test`` computes them.
    """
    k, m = xt.shape
    n = k - lag
    tile = tile_width
    nq = q.shape[1]
    b = np.zeros((n, tile))
    basis = np.zeros((lag, n, tile))
    resid = np.empty((n, tile))
    dot = np.empty(tile)
    norm = np.empty(tile)
    small = np.empty(tile)
    scale = np.empty(tile)
    for c0 in range(0, m, tile):
        width = min(tile, m - c0)  # a last, partial tile computes zeros in its spare lanes
        for s in range(tile):
            small[s] = np.inf
            scale[s] = 0.0
        for j in range(1, lag + 1):
            for i in range(n):  # b = x_{t-j} for t = lag .. K-1
                for s in range(width):
                    b[i, s] = xt[lag - j + i, c0 + s]
            _dot(b, b, dot, n, tile)
            for s in range(tile):
                scale[s] = scale[s] + dot[s]
            for a in range(nq):  # one Gram-Schmidt pass against the restricted basis
                _dot_shared(q, a, b, dot, n, tile)
                for i in range(n):
                    qi = q[i, a]
                    for s in range(tile):
                        b[i, s] = b[i, s] - qi * dot[s]
            for h in range(j - 1):  # then against this series' earlier lag columns
                _project_out(basis[h], b, dot, n, tile)
            _dot(b, b, dot, n, tile)
            for s in range(tile):
                norm[s] = np.sqrt(dot[s])
                v = norm[s]
                # np.minimum: NaN wins, else the smaller.
                small[s] = v if (v < small[s] or v != v) else small[s]
                if not norm[s] > 0.0:
                    norm[s] = 1.0
            for i in range(n):
                for s in range(tile):
                    basis[j - 1, i, s] = b[i, s] / norm[s]
        for i in range(n):
            r = resid_r[i]
            for s in range(tile):
                resid[i, s] = r
        for h in range(lag):
            _project_out(basis[h], resid, dot, n, tile)
        _dot(resid, resid, dot, n, tile)
        for s in range(width):
            ssr_u[c0 + s] = dot[s]
            smallest[c0 + s] = small[s]
            scale2[c0 + s] = scale[s]
