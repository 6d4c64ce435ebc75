"""``Mask``: per-layer 0/1 arrays over Dense kernels; saved and loaded as ``.npz``.

Numpy only: a Keras model is accepted where kernels or shapes are needed and read lazily.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_legc._io import read_npz, write_npz
from keras_legc.errors import MaskMismatchError

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

    @classmethod
    def keep_all(cls, model_or_shapes) -> Mask:
        """A mask that keeps every weight (the start of a gradual schedule).

        Args:
            model_or_shapes: a Keras model, a Mask, or ``{layer: kernel shape}``.

        Example:
            >>> Mask.keep_all({"d": (2, 3)}).sparsity
            0.0
        """
        shapes = shapes_of(model_or_shapes)
        return cls({n: np.ones(s, dtype=bool) for n, s in shapes.items()}, {"method": "keep_all"})

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
        if "kept_by_evidence" in self.info:  # Scores.mask's default or legc_protect
            rows.append(
                f"kept by causal evidence: {self.info['kept_by_evidence']} (the same ranking "
                "without the Granger test would prune them); by magnitude alone: "
                f"{self.info['kept_by_magnitude']}"
            )
        if "kept_causal" in self.info:
            rows.append(
                f"kept and causal (F-test at the BIC lag, q < 0.05): {self.info['kept_causal']}"
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
            mask.check_shapes(shapes_of(model), what=f"the model {getattr(model, 'name', '')!r}")
        return mask


def kernels_of(obj) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping):
        return {str(k): np.asarray(v) for k, v in obj.items()}
    from keras_legc.keras.layers import dense_kernels

    return dense_kernels(obj)


def shapes_of(obj) -> dict[str, tuple[int, ...]]:
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
