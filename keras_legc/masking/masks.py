"""``Mask``: per-layer 0/1 arrays over Dense kernels, and the policies that make them.

A *policy* turns per-weight priorities into a mask: the weights ranked first are pruned until the
target is reached. LEGC (``Scores.mask``), magnitude and random masks are all this one policy with a
different ranking, so they are comparable at exactly the same number of pruned weights.

Numpy only: a Keras model is accepted where kernels are needed and read lazily.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_legc._io import read_npz, write_npz
from keras_legc.core._layout import split_by_layer
from keras_legc.errors import InvalidArgumentError, MaskMismatchError

FORMAT = "keras_legc.mask"
FORMAT_VERSION = 1


class Mask:
    """Which kernel weights of each Dense layer are kept (1) or pruned (0).

    Args:
        arrays: ``{layer name: 0/1 array of the kernel's shape}``, in layer order.
        info: free-form provenance (method, alpha or sparsity, seed), saved with the mask.

    Example:
        >>> m = Mask({"dense": np.array([[1, 0], [1, 1]])}, info={"method": "manual"})
        >>> m.sparsity
        0.25
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], info: Mapping | None = None):
        if not arrays:
            raise MaskMismatchError("a mask needs at least one layer; got none.")
        self._arrays: dict[str, np.ndarray] = {}
        for name, arr in arrays.items():
            a = np.asarray(arr)
            if a.dtype != bool:
                if not np.issubdtype(a.dtype, np.number) or not np.all(np.isin(a, (0, 1))):
                    raise MaskMismatchError(
                        f"mask for layer {name!r} must hold only 0 and 1, got values such as "
                        f"{np.unique(a)[:5].tolist()}. Fix: threshold your scores into 0/1 first."
                    )
                a = a.astype(bool)
            self._arrays[str(name)] = a
        self.info = dict(info or {})

    # -- access ---------------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        return list(self._arrays)

    def __getitem__(self, layer: str) -> np.ndarray:
        return self._arrays[layer]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def items(self):
        return self._arrays.items()

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in self._arrays.items()}

    @property
    def n_weights(self) -> int:
        return int(sum(a.size for a in self._arrays.values()))

    @property
    def n_kept(self) -> int:
        return int(sum(int(a.sum()) for a in self._arrays.values()))

    @property
    def n_pruned(self) -> int:
        return self.n_weights - self.n_kept

    @property
    def sparsity(self) -> float:
        """Fraction of kernel weights pruned."""
        return self.n_pruned / self.n_weights

    def layer_sparsity(self) -> dict[str, float]:
        return {k: 1.0 - float(v.mean()) for k, v in self._arrays.items()}

    def summary(self) -> str:
        """A small table: weights, kept and % pruned per layer and in total."""
        rows = [f"{'layer':<24}{'shape':>14}{'weights':>10}{'kept':>10}{'pruned %':>10}"]
        for name, a in self._arrays.items():
            rows.append(
                f"{name:<24}{str(a.shape):>14}{a.size:>10}{int(a.sum()):>10}"
                f"{100 * (1 - a.mean()):>10.2f}"
            )
        rows.append(
            f"{'total':<24}{'':>14}{self.n_weights:>10}{self.n_kept:>10}{100 * self.sparsity:>10.2f}"
        )
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"Mask(layers={self.layers}, sparsity={self.sparsity:.4f}, info={self.info})"

    def check_shapes(self, shapes: Mapping[str, Sequence[int]], what: str = "the model") -> None:
        """Raise ``MaskMismatchError`` unless the mask has exactly these layers and shapes."""
        shapes = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
        if list(shapes) != self.layers or any(shapes[k] != self.shapes[k] for k in shapes):
            raise MaskMismatchError(
                f"the mask does not match {what}: mask layers/shapes {self.shapes}, "
                f"{what} has {shapes}. Fix: build the mask from this model (or its history), "
                "not from another one."
            )

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the mask to ``path`` (a ``.npz``) atomically; refuses to overwrite by default."""
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "layers": self.layers,
            "info": self.info,
        }
        payload = {f"layer_{i}": a.astype(np.uint8) for i, a in enumerate(self._arrays.values())}
        return write_npz(path, meta, payload, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, model=None) -> Mask:
        """Read a mask written by :meth:`save`.

        Args:
            path: the ``.npz``.
            model: if given, the mask must have exactly this model's Dense layers and kernel
                shapes (its layer signature), or ``MaskMismatchError`` says which differ.
        """
        try:
            meta, data = read_npz(path, FORMAT, FORMAT_VERSION)
            arrays = {name: data[f"layer_{i}"] for i, name in enumerate(meta["layers"])}
        except (ValueError, KeyError) as exc:
            raise MaskMismatchError(
                f"{path} is not a readable keras_legc mask ({exc}). Fix: pass a file written by "
                "Mask.save."
            ) from exc
        mask = cls(arrays, meta.get("info"))
        if model is not None:
            mask.check_shapes(_shapes(model), what=f"the model {getattr(model, 'name', '')!r}")
        return mask


# ---- the policy: prune the first-ranked weights ----------------------------------------------------


def check_sparsity(sparsity: float) -> float:
    try:
        s = float(sparsity)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"sparsity must be a number in [0, 1), got {sparsity!r}. Fix: pass e.g. 0.8 to prune "
            "80% of the kernel weights."
        ) from None
    if not (0.0 <= s < 1.0):
        raise InvalidArgumentError(
            f"sparsity must be in [0, 1) (the fraction of kernel weights to prune), got "
            f"{sparsity!r}. Fix: pass e.g. 0.8 to prune 80% of the kernel weights."
        )
    return s


def mask_from_ranking(
    sort_keys: Mapping[str, Sequence[np.ndarray]],
    sparsity: float,
    *,
    per_layer: bool = False,
    info: Mapping | None = None,
    block: Sequence[int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> Mask:
    """Prune the ``round(sparsity * n)`` weights that sort first.

    Args:
        sort_keys: ``{layer: [key_1, ..., key_primary]}``, arrays of the kernel's shape, as for
            ``np.lexsort`` (the last key is the primary one; ascending; ties keep layer then
            row-major order). With ``block``, arrays of the layer's block grid shape
            (:func:`block_grid`), one entry per block.
        sparsity: fraction to prune, in [0, 1).
        per_layer: prune that fraction in every layer instead of globally.
        block: prune whole blocks of this shape (see :func:`check_block`); whole blocks are
            pruned in rank order until the pruned weight count is nearest ``round(sparsity * n)``
            (so the reached sparsity is within half a block of the request, globally or per layer).
        shapes: ``{layer: kernel shape}``; required with ``block``.

    Example:
        >>> keys = {"d": [np.abs(np.arange(6.0).reshape(3, 2))]}
        >>> mask_from_ranking(keys, 0.5)["d"].tolist()
        [[False, False], [False, True], [True, True]]
    """
    s = check_sparsity(sparsity)
    if block is not None:
        return _block_mask(sort_keys, s, check_block(block), shapes, per_layer, info)
    names = list(sort_keys)
    shapes = {n: np.shape(sort_keys[n][0]) for n in names}
    if per_layer:
        arrays = {
            n: _prune_first([np.ravel(k) for k in sort_keys[n]], s).reshape(shapes[n])
            for n in names
        }
    else:
        n_keys = len(sort_keys[names[0]])
        flat = [np.concatenate([np.ravel(sort_keys[n][i]) for n in names]) for i in range(n_keys)]
        keep = _prune_first(flat, s)
        arrays = split_by_layer(keep, names, shapes)
    return Mask(arrays, {"sparsity": s, "per_layer": per_layer, **dict(info or {})})


def _prune_first(keys: list[np.ndarray], sparsity: float) -> np.ndarray:
    n = keys[0].size
    k = int(round(sparsity * n))
    keep = np.ones(n, dtype=bool)
    if k:
        keep[np.lexsort(keys)[:k]] = False
    return keep


def magnitude_mask(
    model_or_kernels,
    sparsity: float,
    *,
    per_layer: bool = False,
    block: Sequence[int] | None = None,
) -> Mask:
    """Prune the smallest ``|w|`` kernel weights (of a trained model, or a ``{layer: kernel}``).

    Args:
        model_or_kernels: a tf.keras model or ``{layer: kernel}``.
        sparsity: fraction of kernel weights to prune, in [0, 1).
        per_layer: reach the sparsity in every layer instead of globally.
        block: prune whole blocks instead, smallest L2 norm first; ``(1, 16)`` = 1 output unit x
            16 consecutive input weights (see :func:`check_block`), the structure TFLite's sparse
            FULLY_CONNECTED kernel runs faster.

    Example:
        >>> m = magnitude_mask({"d": np.random.default_rng(0).normal(size=(32, 4))}, 0.5,
        ...                    block=(1, 16))
        >>> m.sparsity
        0.5
    """
    kernels = _kernels(model_or_kernels)
    info = {"method": "magnitude"}
    if block is not None:
        b = check_block(block)
        keys = {n: [block_reduce(np.square(k), b, "sum")] for n, k in kernels.items()}
        info["block_score"] = "L2 norm"
        return mask_from_ranking(
            keys, sparsity, per_layer=per_layer, info=info, block=b,
            shapes={n: k.shape for n, k in kernels.items()},
        )  # fmt: skip
    keys = {n: [np.abs(k)] for n, k in kernels.items()}
    return mask_from_ranking(keys, sparsity, per_layer=per_layer, info=info)


def random_mask(
    model_or_shapes,
    sparsity: float,
    *,
    seed: int = 0,
    per_layer: bool = False,
    block: Sequence[int] | None = None,
) -> Mask:
    """Prune a uniformly random subset of kernel weights, reproducibly for a given ``seed``.

    Args:
        model_or_shapes: a tf.keras model, a Mask, or ``{layer: kernel shape}``.
        sparsity: fraction of kernel weights to prune, in [0, 1).
        seed: the random seed.
        per_layer: reach the sparsity in every layer instead of globally.
        block: prune whole blocks instead, chosen uniformly at random (see :func:`check_block`).

    Example:
        >>> random_mask({"d": (32, 4)}, 0.5, block=(1, 16)).layer_sparsity()
        {'d': 0.5}
    """
    shapes = _shapes(model_or_shapes)
    rng = np.random.default_rng(seed)
    info = {"method": "random", "seed": int(seed)}
    if block is not None:
        b = check_block(block)
        keys = {n: [rng.random(block_grid(shape, b))] for n, shape in shapes.items()}
        return mask_from_ranking(
            keys, sparsity, per_layer=per_layer, info=info, block=b, shapes=shapes
        )
    keys = {n: [rng.random(shape)] for n, shape in shapes.items()}
    return mask_from_ranking(keys, sparsity, per_layer=per_layer, info=info)


# ---- block structure ---------------------------------------------------------------------------
#
# A block shape ``(r, c)`` is given in the orientation TFLite and most papers use: FULLY_CONNECTED
# weights are (out, in), so ``(1, 16)`` is 1 output unit x 16 consecutive input weights. A Keras
# Dense kernel is (in, out): in kernel terms the block covers ``c`` consecutive rows of ``r``
# consecutive columns. Blocks are aligned to row/column 0. When a layer's size is not a multiple of
# the block, the last block along that axis is partial (smaller); it is a block like any other.


def check_block(block) -> tuple[int, int]:
    """Validate a block shape ``(outputs, inputs)`` and return it as a tuple of two ints.

    Args:
        block: ``(r, c)``: ``r`` output units x ``c`` consecutive input weights, both >= 1.

    Example:
        >>> check_block((1, 16))
        (1, 16)
    """
    try:
        r, c = (int(d) for d in block)
        ok = r >= 1 and c >= 1 and all(float(d) == int(d) for d in block)
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(block, (str, bytes)):
        raise InvalidArgumentError(
            f"block must be two positive integers (output units, consecutive input weights), got "
            f"{block!r}. Fix: pass e.g. block=(1, 16), the structure TFLite's sparse kernel uses."
        )
    return r, c


def block_grid(shape: Sequence[int], block: Sequence[int]) -> tuple[int, int]:
    """The number of blocks along a Dense kernel's (in, out) axes: ``(ceil(in/c), ceil(out/r))``.

    Example:
        >>> block_grid((300, 100), (1, 16))
        (19, 100)
    """
    r, c = check_block(block)
    if len(shape) != 2:
        raise InvalidArgumentError(
            f"block masks need 2-D Dense kernels (in, out), got shape {tuple(shape)}. Fix: use "
            "block=None for this model."
        )
    n_in, n_out = (int(d) for d in shape)
    return -(-n_in // c), -(-n_out // r)


def block_reduce(a: np.ndarray, block: Sequence[int], how: str) -> np.ndarray:
    """Aggregate a per-weight array of a kernel's shape (in, out) over blocks.

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
    n_in, n_out = (int(d) for d in shape)
    return np.repeat(np.repeat(grid, c, axis=0), r, axis=1)[:n_in, :n_out]


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


def _block_mask(sort_keys, sparsity, block, shapes, per_layer, info) -> Mask:
    if shapes is None:
        raise InvalidArgumentError("mask_from_ranking(block=...) needs the kernel shapes.")
    names = list(sort_keys)
    shapes = {n: tuple(int(d) for d in shapes[n]) for n in names}
    grids = {n: block_grid(shapes[n], block) for n in names}
    sizes = {n: block_reduce(np.empty(shapes[n]), block, "size") for n in names}
    for n in names:
        for key in sort_keys[n]:
            if np.shape(key) != grids[n]:
                raise InvalidArgumentError(
                    f"block sort key for layer {n!r} has shape {np.shape(key)}, expected the block "
                    f"grid {grids[n]}. Fix: aggregate per-weight scores with block_reduce first."
                )

    def prune(keys, block_sizes):
        order = np.lexsort(keys)
        target = sparsity * block_sizes.sum()
        cum = np.concatenate([[0.0], np.cumsum(block_sizes[order])])
        n_blocks = int(np.argmin(np.abs(cum - target)))  # first prefix nearest the target
        keep = np.ones(block_sizes.size, dtype=bool)
        keep[order[:n_blocks]] = False
        return keep

    if per_layer:
        keep_grid = {
            n: prune([np.ravel(k) for k in sort_keys[n]], sizes[n].ravel()).reshape(grids[n])
            for n in names
        }
    else:
        n_keys = len(sort_keys[names[0]])
        flat = [np.concatenate([np.ravel(sort_keys[n][i]) for n in names]) for i in range(n_keys)]
        keep = prune(flat, np.concatenate([sizes[n].ravel() for n in names]))
        keep_grid = split_by_layer(keep, names, grids)
    arrays = {n: block_expand(keep_grid[n], shapes[n], block) for n in names}
    mask = Mask(arrays, {"sparsity": sparsity, "per_layer": per_layer, **dict(info or {})})
    mask.info.update(
        block=list(block), reached_sparsity=mask.sparsity, layout="(out, in): r outputs x c inputs"
    )
    return mask


def _kernels(obj) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping):
        return {str(k): np.asarray(v) for k, v in obj.items()}
    from keras_legc.keras.layers import dense_kernels

    return dense_kernels(obj)


def _shapes(obj) -> dict[str, tuple[int, ...]]:
    """Shapes from ``{layer: shape tuple/list or array}``, a Mask, or a Keras model."""
    if isinstance(obj, Mapping):
        return {
            str(k): tuple(int(d) for d in v) if isinstance(v, (tuple, list)) else np.shape(v)
            for k, v in obj.items()
        }
    if isinstance(obj, Mask):
        return obj.shapes
    from keras_legc.keras.layers import layer_signature

    return layer_signature(obj)


__all__ = [
    "Mask",
    "mask_from_ranking",
    "magnitude_mask",
    "random_mask",
    "check_sparsity",
    "check_block",
    "block_grid",
    "block_reduce",
    "block_expand",
    "block_structure",
]
