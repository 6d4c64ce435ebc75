"""Block patterns: which weights of a kernel form one prunable block, and aggregation over them.

A block shape ``(r, c)`` is given in the orientation TFLite and most papers use: FULLY_CONNECTED
weights are (out, in), so ``(1, 16)`` is 1 output unit x 16 consecutive input weights. A Keras
Dense kernel is (in, out): in kernel terms the block covers ``c`` consecutive rows of ``r``
consecutive columns. Blocks are aligned to row/column 0. When a layer's size is not a multiple of
the block, the last block along that axis is partial (smaller); it is a block like any other.

A convolution kernel ``(..., in, out)`` is read as the matrix ``(prod(...) * in, out)``: LiteRT
stores CONV_2D weights as (out, h, w, in), so a block's ``c`` consecutive inputs run along the
input channels first (a 1x1 convolution is exactly a Dense kernel). Which weights have this
layout is the Keras registry's business (:mod:`keras_legc.keras.registry`); here an N-D array is
read that way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_legc.errors import InvalidArgumentError


def check_block(block) -> tuple[int, int]:
    """Validate a block shape ``(outputs, inputs)`` and return it as a tuple of two ints.

    Args:
        block: ``(r, c)``: ``r`` output units x ``c`` consecutive input weights, both >= 1.

    Example:
        >>> check_block((1, 16))
        (1, 16)
    """
    pair = two_ints(block)
    if pair is None or min(pair) < 1:
        raise InvalidArgumentError(
            f"block must be two positive integers (output units, consecutive input weights), got "
            f"{block!r}. Fix: pass e.g. block=(1, 16), the structure TFLite's sparse kernel uses."
        )
    return pair


def two_ints(value) -> tuple[int, int] | None:
    """``value`` as a pair of integers (``2.0`` counts, ``2.5`` and strings do not), else None."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        a, b = (int(d) for d in value)
        whole = all(float(d) == int(d) for d in value)
    except (TypeError, ValueError):
        return None
    return (a, b) if whole else None


def matrix_shape(shape: Sequence[int]) -> tuple[int, int]:
    """The (inputs, outputs) matrix a kernel is read as for blocks: a 2-D kernel as it is, an
    N-D ``(..., in, out)`` one as ``(prod(...) * in, out)``.

    Example:
        >>> matrix_shape((3, 3, 8, 16))
        (72, 16)
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise InvalidArgumentError(
            f"block masks need kernels of 2 or more dimensions (inputs, outputs), got shape "
            f"{shape}. Fix: use block=None for this model."
        )
    return int(np.prod(shape[:-1])), shape[-1]


def block_grid(shape: Sequence[int], block: Sequence[int]) -> tuple[int, int]:
    """The number of blocks along a kernel's (in, out) axes: ``(ceil(in/c), ceil(out/r))``
    (an N-D kernel read as :func:`matrix_shape`).

    Example:
        >>> block_grid((300, 100), (1, 16))
        (19, 100)
    """
    r, c = check_block(block)
    n_in, n_out = matrix_shape(shape)
    return -(-n_in // c), -(-n_out // r)


def block_reduce(a: np.ndarray, block: Sequence[int], how: str) -> np.ndarray:
    """Aggregate a per-weight array of a kernel's shape (in, out) (or ``(..., in, out)``) over
    blocks.

    Args:
        a: array of the kernel's shape; NaN entries are ignored (``how="sum"``/``"mean"``).
        block: ``(r, c)`` in (out, in) orientation (see :func:`check_block`).
        how: ``"sum"``, ``"mean"`` (NaN where a block has no finite entry), ``"any"``, ``"all"``
            or ``"size"`` (the number of weights in each block; partial blocks are smaller).

    Returns:
        An array of shape :func:`block_grid`.

    Example:
        >>> block_reduce(np.ones((20, 2)), (1, 16), "size").tolist()
        [[16.0, 16.0], [4.0, 4.0]]
    """
    r, c = check_block(block)
    a = np.asarray(a)
    gi, go = block_grid(a.shape, (r, c))
    a = a.reshape(matrix_shape(a.shape))
    pad = ((0, gi * c - a.shape[0]), (0, go * r - a.shape[1]))
    if how == "size":
        x = np.pad(np.ones(a.shape), pad).reshape(gi, c, go, r)
        return x.sum(axis=(1, 3))
    if how in ("any", "all"):
        fill = how == "all"
        x = np.pad(a.astype(bool), pad, constant_values=fill).reshape(gi, c, go, r)
        return x.any(axis=(1, 3)) if how == "any" else x.all(axis=(1, 3))
    if how not in ("sum", "mean"):
        raise InvalidArgumentError(f"unknown block aggregation {how!r}; use sum, mean, any, all.")
    x = np.pad(a.astype(np.float64), pad, constant_values=np.nan).reshape(gi, c, go, r)
    finite = np.isfinite(x)
    total = np.where(finite, x, 0.0).sum(axis=(1, 3))
    if how == "sum":
        return total
    count = finite.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def block_expand(grid: np.ndarray, shape: Sequence[int], block: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`block_reduce` for a per-block array: each block's value on its weights.

    Example:
        >>> block_expand(np.array([[1], [0]]), (20, 1), (1, 16)).ravel().tolist()[14:18]
        [1, 1, 0, 0]
    """
    r, c = check_block(block)
    n_in, n_out = matrix_shape(shape)
    full = np.repeat(np.repeat(grid, c, axis=0), r, axis=1)[:n_in, :n_out]
    return full.reshape(tuple(int(d) for d in shape))


def block_structure(kernel: np.ndarray, block: Sequence[int] = (1, 16)) -> float:
    """Fraction of a kernel's zeros that lie in all-zero blocks (1.0: the zeros are block-sparse).

    Export uses it to warn when sparse storage would get no speed-up (zeros not in blocks).

    Example:
        >>> k = np.zeros((32, 2)); k[:16, 0] = 1.0
        >>> block_structure(k, (1, 16))
        1.0
    """
    kernel = np.asarray(kernel)
    zeros = kernel == 0
    n_zero = int(zeros.sum())
    if n_zero == 0:
        return 1.0
    b = check_block(block)
    full = block_reduce(zeros, b, "all")
    sizes = block_reduce(zeros, b, "size")
    return float((sizes * full).sum() / n_zero)
