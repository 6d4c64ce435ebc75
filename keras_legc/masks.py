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
from keras_legc._layout import split_by_layer
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
) -> Mask:
    """Prune the ``round(sparsity * n)`` weights that sort first.

    Args:
        sort_keys: ``{layer: [key_1, ..., key_primary]}``, arrays of the kernel's shape, as for
            ``np.lexsort`` (the last key is the primary one; ascending; ties keep layer then
            row-major order).
        sparsity: fraction to prune, in [0, 1).
        per_layer: prune that fraction in every layer instead of globally.
    """
    s = check_sparsity(sparsity)
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


def magnitude_mask(model_or_kernels, sparsity: float, *, per_layer: bool = False) -> Mask:
    """Prune the smallest ``|w|`` kernel weights (of a trained model, or a ``{layer: kernel}``)."""
    kernels = _kernels(model_or_kernels)
    keys = {n: [np.abs(k)] for n, k in kernels.items()}
    return mask_from_ranking(keys, sparsity, per_layer=per_layer, info={"method": "magnitude"})


def random_mask(
    model_or_shapes, sparsity: float, *, seed: int = 0, per_layer: bool = False
) -> Mask:
    """Prune a uniformly random subset of kernel weights, reproducibly for a given ``seed``."""
    shapes = _shapes(model_or_shapes)
    rng = np.random.default_rng(seed)
    keys = {n: [rng.random(shape)] for n, shape in shapes.items()}
    return mask_from_ranking(
        keys, sparsity, per_layer=per_layer, info={"method": "random", "seed": int(seed)}
    )


def _kernels(obj) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping):
        return {str(k): np.asarray(v) for k, v in obj.items()}
    from keras_legc.layers import dense_kernels

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
    from keras_legc.layers import layer_signature

    return layer_signature(obj)


__all__ = [
    "Mask",
    "mask_from_ranking",
    "magnitude_mask",
    "random_mask",
    "check_sparsity",
]
