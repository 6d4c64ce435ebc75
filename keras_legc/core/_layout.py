"""Where each Dense layer's kernel sits in a flat per-weight vector (layers in order, ravel()-ed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def layer_slices(layers: Sequence[str], shapes: Mapping[str, Sequence[int]]) -> dict[str, slice]:
    """``{layer: slice}`` of each layer's kernel in the concatenated flat vector."""
    out, start = {}, 0
    for name in layers:
        size = int(np.prod(shapes[name]))
        out[name] = slice(start, start + size)
        start += size
    return out


def split_by_layer(
    flat: np.ndarray, layers: Sequence[str], shapes: Mapping[str, Sequence[int]]
) -> dict[str, np.ndarray]:
    """Views of ``flat`` (leading axis = weights) reshaped to each layer's kernel shape."""
    return {
        name: flat[sl].reshape(tuple(shapes[name]) + flat.shape[1:])
        for name, sl in layer_slices(layers, shapes).items()
    }
