"""The compiled LE neighbour search (numba), imported by :mod:`keras_legc.core.lyapunov` on first use.

Same semantics, same floating-point operations in the same order as the plain loop reference
(``keras_legc.testing.reference.lyapunov_window_reference``), so the values are identical to it,
not just close: no fastmath, no fused multiply-add (numba does not contract without fastmath).
Only the logarithm is left to numpy (the reference uses numpy's log, and libm's differs in the last
bit for a few inputs in 10,000), so the work is split in two compiled passes around one
``np.log``: :func:`squared_distances`, then ``np.log`` in place, then :func:`mean_log_ratio`.

Why it is fast, beyond being compiled:

- A run of identical consecutive points ``v_t = (x_t, x_{t+1})`` (a weight that stood still for a
  few steps; real windows have a median of 5 distinct values in 50 steps) is one point: every
  member has the same distance to every other point, bit for bit, so the search runs over the
  first point of each run only, and every member takes its run's answer.
- The search runs over all reference points at once (one SIMD lane per reference point), one
  candidate ``u`` at a time in increasing order, keeping a strictly smaller distance: the earliest
  candidate wins ties, as in the reference, without a branch.

The signatures are explicit (float32 or float64 windows, any layout), so the first call compiles
exactly two variants (about 2-4 s) and ``cache=_compiled.CACHE`` stores them next to this file; later
processes load them in well under a second.
"""

from __future__ import annotations

import numpy as np
from numba import float64, int64, njit, types, void

from keras_legc.core import _compiled

# SIMD width the reference-point lanes are padded to (8 float64 in an AVX-512 register).
LANES = 8

# Windows typed read-only, any layout: writable arrays of any layout convert to it, so two
# variants cover every input (a sliding-window view is read-only, a recorder window transposed).
_SIGNATURES = [
    void(types.Array(dtype, 2, "A", readonly=True), float64[:, :, ::1], int64[::1], float64)
    for dtype in (types.float32, types.float64)
]


@njit(_SIGNATURES, cache=_compiled.CACHE, nogil=True)
def squared_distances(
    x, d, count, static_range
):  # pragma: no cover - compiled, tested via lyapunov
    """For every window ``x[i]``: ``d[i, 0, t]`` = squared distance of ``v_t`` to its nearest
    distinct neighbour, ``d[i, 1, t]`` = that of their successors, 1.0 (log 0) where the pair is
    not valid; ``count[i]`` = number of valid pairs (0 for a static window)."""
    rows, w = x.shape
    m = w - 2  # reference points and candidates t = 0 .. m-1
    padded = (m + LANES - 1) // LANES * LANES
    buf = np.empty(w)
    px = np.zeros(padded)
    py = np.zeros(padded)
    first = np.empty(padded, np.int64)
    run = np.empty(m, np.int64)
    best = np.empty(padded)
    best_u = np.empty(padded, np.int64)
    for i in range(rows):
        lo = np.inf
        hi = -np.inf
        for k in range(w):
            v = np.float64(x[i, k])
            buf[k] = v
            lo = min(lo, v)
            hi = max(hi, v)
        if hi - lo < static_range:
            d[i, :, :] = 1.0
            count[i] = 0
            continue
        # Runs of identical consecutive points: keep the first point of each run.
        # Branch-free (a branch mispredicts on windows where half the steps repeat a value): the
        # point goes to the next free slot and is kept by advancing n. Point t is in the run of
        # point t - 1 exactly when x_{t-1} == x_t == x_{t+1}.
        n = 0
        for t in range(m):
            a = buf[t]
            b = buf[t + 1]
            new = (t == 0) | (a != buf[t - 1]) | (b != a)  # buf[-1] when t == 0: unused
            px[n] = a
            py[n] = b
            first[n] = t
            n += np.int64(new)
            run[t] = n - 1
        lanes = (n + LANES - 1) // LANES * LANES
        for k in range(n, lanes):  # padding lanes: computed, never read
            px[k] = 0.0
            py[k] = 0.0
        for k in range(lanes):
            best[k] = np.inf
            best_u[k] = 0
        for j in range(n):  # candidates in increasing index order: strict < keeps the earliest
            xu = px[j]
            yu = py[j]
            u = first[j]
            for k in range(lanes):
                da = px[k] - xu
                db = py[k] - yu
                dd = da * da + db * db
                # Distance 0 is an exact duplicate (or the point itself): never a neighbour.
                closer = (dd < best[k]) & (dd != 0.0)
                best[k] = dd if closer else best[k]
                best_u[k] = u if closer else best_u[k]
        valid = 0
        for t in range(m):
            k = run[t]
            d0 = best[k]
            d1 = 0.0
            if d0 != np.inf:  # inf: no distinct neighbour (or only overflowing distances)
                u = best_u[k]
                da = buf[t + 1] - buf[u + 1]
                db = buf[t + 2] - buf[u + 2]
                d1 = da * da + db * db
            if d1 == 0.0:
                d[i, 0, t] = 1.0
                d[i, 1, t] = 1.0
            else:
                d[i, 0, t] = d0
                d[i, 1, t] = d1
                valid += 1
        count[i] = valid


@njit(void(float64[:, :, ::1], int64[::1], float64[:]), cache=_compiled.CACHE, nogil=True)
def mean_log_ratio(log_d, count, out):  # pragma: no cover - compiled, tested via lyapunov
    """``out[i] = mean(ln d1) - mean(ln d0)`` from ``log_d = ln d^2``, summed left to right like the
    reference (invalid pairs hold ln 1 = 0, an exact no-op in the sums); 0 without valid pairs."""
    rows = log_d.shape[0]
    m = log_d.shape[2]
    for i in range(rows):
        c = count[i]
        if c == 0:
            out[i] = 0.0
            continue
        sum0 = 0.0
        sum1 = 0.0
        for t in range(m):
            sum0 += 0.5 * log_d[i, 0, t]
            sum1 += 0.5 * log_d[i, 1, t]
        out[i] = sum1 / c - sum0 / c
