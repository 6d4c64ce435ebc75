"""Masks and the policies that make them (numpy only).

- :mod:`~keras_legc.masking.mask`: :class:`Mask`, per-layer 0/1 arrays, saved as ``.npz``.
- :mod:`~keras_legc.masking.blocks`: block patterns (TFLite's 1x16) and aggregation over blocks.
- :mod:`~keras_legc.masking.importance`: the weight-importance seam (scorers; lower = pruned first).
- :mod:`~keras_legc.masking.policy`: the one policy, :func:`mask_from_importance`, and the
  magnitude and random baselines built on it.
"""

from keras_legc.masking import importance
from keras_legc.masking.blocks import (
    block_expand,
    block_grid,
    block_reduce,
    block_structure,
    check_block,
)
from keras_legc.masking.importance import Importance
from keras_legc.masking.mask import Mask
from keras_legc.masking.policy import (
    check_sparsity,
    magnitude_mask,
    mask_from_importance,
    mask_from_ranking,
    random_mask,
)

__all__ = [
    "Mask",
    "Importance",
    "importance",
    "mask_from_importance",
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
