"""The one policy: prune the least important weights to a target sparsity.

``mask_from_importance(scorer, kernels, sparsity)`` asks a scorer (:mod:`keras_legc.masking.importance`)
for the importance of every weight, aggregates it over blocks when ``block=`` is given, and prunes
the lowest first, globally or per layer. LEGC (``Scores.mask(sparsity=...)``), magnitude and random
masks are all this one policy with a different scorer, so they are comparable at exactly the same
number of pruned weights. Numpy only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from keras_legc.core._layout import split_by_layer
from keras_legc.errors import InvalidArgumentError, LegcWarning
from keras_legc.masking import importance as imp
from keras_legc.masking.blocks import (
    block_expand,
    block_grid,
    block_reduce,
    check_block,
    two_ints,
)
from keras_legc.masking.mask import Mask, kernels_of, layouts_of, shapes_of


def check_sparsity(sparsity: float) -> float:
    try:
        if isinstance(sparsity, (str, bytes, bool)):  # float("0.5") and float(True) would pass
            raise TypeError
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
    per_layer: bool | Mapping[str, float] = False,
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
        per_layer: prune that fraction in every layer instead of globally; or a mapping
            ``{layer: sparsity}`` (what :func:`lamp_sparsities` chooses): each layer's own.
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
    per_layer = check_per_layer(per_layer, mapping=True)
    if block is not None:
        return _block_mask(sort_keys, s, check_block(block), shapes, per_layer, info)
    names = list(sort_keys)
    shapes = {n: np.shape(sort_keys[n][0]) for n in names}
    if per_layer is not False:
        each = _layer_sparsities(per_layer, s, names)
        arrays = {
            n: _prune_first([np.ravel(k) for k in sort_keys[n]], each[n]).reshape(shapes[n])
            for n in names
        }
    else:
        n_keys = len(sort_keys[names[0]])
        flat = [np.concatenate([np.ravel(sort_keys[n][i]) for n in names]) for i in range(n_keys)]
        keep = _prune_first(flat, s)
        arrays = split_by_layer(keep, names, shapes)
    return Mask(
        arrays, {"sparsity": s, "per_layer": _info_per_layer(per_layer), **dict(info or {})}
    )


#: ``per_layer=LAMP``: per-layer sparsities chosen by LAMP's layer-adaptive score
LAMP = "lamp"


def check_per_layer(per_layer, *, mapping: bool = False):
    """``per_layer`` as ``False`` (one global ranking), ``True`` (the same sparsity in every
    layer) or ``"lamp"`` (per-layer sparsities from :func:`lamp_sparsities`); with ``mapping``,
    also a ``{layer: sparsity}`` mapping (what ``"lamp"`` resolves to)."""
    if isinstance(per_layer, (bool, np.bool_)):
        return bool(per_layer)
    if isinstance(per_layer, str) and per_layer == LAMP:
        return LAMP
    if mapping and isinstance(per_layer, Mapping):
        return {str(n): check_sparsity(v) for n, v in per_layer.items()}
    raise InvalidArgumentError(
        f"per_layer must be False (one global ranking), True (the same sparsity in every layer) "
        f"or {LAMP!r} (per-layer sparsities by LAMP's layer-adaptive score), got {per_layer!r}. "
        f"Fix: pass one of False, True, {LAMP!r}."
    )


def lamp_sparsities(kernels: Mapping[str, np.ndarray], sparsity: float) -> dict[str, float]:
    """Per-layer sparsities that prune ``round(sparsity * n)`` weights in all, chosen by LAMP
    (Lee et al., "Layer-adaptive sparsity for the magnitude-based pruning", ICLR 2021).

    A weight's LAMP score is its squared magnitude over the sum of the squares of the weights of
    its layer at least as large (``w_u^2 / sum_{v >= u} w_v^2``, ``u`` in ascending ``|w|``
    order); the lowest scores across all layers are pruned. Within a layer that is magnitude
    order, so only how many each layer loses is decided here. Each layer's largest weight scores
    1 and goes last, so no layer is emptied while the target leaves a weight per layer: a global
    ``|w|`` ranking empties layers whose weights are all small (depthwise kernels), uniform
    sparsity over-prunes small layers.

    Example:
        >>> k = {"big": np.arange(1.0, 9.0), "small": np.array([0.01, 0.02])}
        >>> lamp_sparsities(k, 0.5)
        {'big': 0.625, 'small': 0.0}
    """
    s = check_sparsity(sparsity)
    names = list(kernels)
    squares = [np.sort(np.square(np.ravel(kernels[n]).astype(np.float64))) for n in names]
    bad = [n for n, sq in zip(names, squares, strict=True) if not np.isfinite(sq).all()]
    if bad:
        raise InvalidArgumentError(
            f"per_layer={LAMP!r} allocates the sparsity by the weights' magnitudes, and the "
            f"weights of {bad} are not all finite. Fix: mask a model whose training did not "
            "diverge, or per_layer=True."
        )
    if not any(sq.any() for sq in squares):
        raise InvalidArgumentError(
            f"per_layer={LAMP!r} allocates the sparsity by the weights' magnitudes, and every "
            "kernel weight is zero. Fix: pass the trained weights (a model, or scores saved with "
            "their kernels), or per_layer=True."
        )
    check_lamp_room([sq.size for sq in squares], s)
    scores = []
    for sq in squares:
        suffix = np.cumsum(sq[::-1])[::-1]
        score = np.divide(sq, suffix, out=np.zeros_like(sq), where=suffix > 0)
        if sq.size:
            score[-1] = np.inf  # each layer's largest weight goes last of all
        scores.append(score)
    flat = np.concatenate(scores)
    layer = np.concatenate([np.full(sq.size, i) for i, sq in enumerate(squares)])
    k = int(round(s * flat.size))
    pruned = np.bincount(layer[np.lexsort((layer, flat))[:k]], minlength=len(names))
    return {n: float(pruned[i] / squares[i].size) if squares[i].size else 0.0
            for i, n in enumerate(names)}  # fmt: skip


def check_lamp_room(sizes: Sequence[int], sparsity: float) -> None:
    """Refuse a ``sparsity`` that ``per_layer="lamp"`` cannot reach without emptying a layer.

    LAMP keeps each layer's largest weight, so of ``n`` kernel weights in ``L`` non-empty layers
    at most ``n - L`` can go; past that the model would no longer depend on its input. Raises
    :class:`InvalidArgumentError` naming the highest sparsity that fits.

    Example:
        >>> check_lamp_room([12, 24], 0.9)   # 32 of 36 pruned: one weight per layer is left
        >>> check_lamp_room([12, 24], 0.98)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        keras_legc.errors.InvalidArgumentError: ... (sparsity <= 0.9444) ...
    """
    n, n_layers = int(sum(sizes)), sum(1 for size in sizes if size)
    k = int(round(check_sparsity(sparsity) * n))
    if k > n - n_layers:
        most = math.floor((n - n_layers) / n * 1e4) / 1e4
        raise InvalidArgumentError(
            f"sparsity={sparsity!r} prunes {k} of {n} kernel weights, but per_layer={LAMP!r} "
            f"keeps at least one weight in each of the {n_layers} layers, so at most "
            f"{n - n_layers} can go (sparsity <= {most:g}). Fix: pass a sparsity of at most "
            f"{most:g}, or per_layer=False (one global ranking, which may empty whole layers)."
        )


def _layer_sparsities(per_layer, sparsity: float, names) -> dict[str, float]:
    """``{layer: sparsity}``: the same for every layer (``per_layer=True``), or the mapping given."""
    if per_layer is True:
        return dict.fromkeys(names, sparsity)
    if sorted(per_layer) != sorted(names):
        raise InvalidArgumentError(
            f"per-layer sparsities are given for {sorted(per_layer)} but the layers are "
            f"{sorted(names)}. Fix: give one sparsity per layer of the ranking."
        )
    return {n: float(per_layer[n]) for n in names}


def _info_per_layer(per_layer) -> bool | str:
    """What a mask's ``info["per_layer"]`` says: a bool, or ``"lamp"`` for per-layer sparsities."""
    return per_layer if isinstance(per_layer, bool) else LAMP


def _prune_first(keys: list[np.ndarray], sparsity: float) -> np.ndarray:
    n = keys[0].size
    k = int(round(sparsity * n))
    keep = np.ones(n, dtype=bool)
    if k:
        keep[np.lexsort(keys)[:k]] = False
    return keep


def mask_from_importance(
    scorer,
    model_or_kernels,
    sparsity: float | None = None,
    *,
    per_layer: bool | str = False,
    block: Sequence[int] | None = None,
    info: Mapping | None = None,
    sparsity_m_by_n: Sequence[int] | None = None,
    layouts: Mapping[str, Sequence] | None = None,
    exclude: Iterable[str] | str | None = None,
) -> Mask:
    """Prune the ``round(sparsity * n)`` least important kernel weights (or whole blocks).

    Args:
        scorer: a scorer ``(kernels, block=None) -> Importance`` (see
            :mod:`keras_legc.masking.importance`), or an :class:`Importance` already computed.
        model_or_kernels: a Keras model or ``{layer: kernel}``; what the scorer is given.
        sparsity: fraction of kernel weights to prune, in [0, 1).
        per_layer: ``False``: one global ranking; ``True``: the same sparsity in every layer;
            ``"lamp"``: per-layer sparsities by LAMP's layer-adaptive score (see
            :func:`lamp_sparsities`), which never empties a layer before the last weights.
        block: prune whole blocks: ``(1, 16)`` = 1 output unit x 16 consecutive input weights
            (TFLite's (out, in) orientation). Per-weight importance is aggregated over each block
            with the key's ``reduce`` rule; whole blocks are pruned in order until the pruned
            count is nearest the target (``mask.info["reached_sparsity"]``).
        info: extra provenance for ``mask.info``.
        sparsity_m_by_n: instead of ``sparsity``: TF-MOT's N:M pattern, ``(m, n)`` = at least
            ``m`` zeros in every ``n`` consecutive weights along each weight's input-channel axis
            (``(2, 4)``: at most 2 of every 4 kept), the least important pruned in each group.
            See :func:`m_by_n_mask`.
        layouts: ``{key: (input-channel axis, block layout)}`` for weights given as arrays (what
            a History records for non-Dense weights; see :func:`~keras_legc.masking.mask.layouts_of`);
            a model's come from its registry.
        exclude: weights kept whole, as TF-MOT leaves the layers it is not given: layer names
            (every prunable weight of the layer; a nested model's name: all of it) or weight keys
            (``"sep/pointwise_kernel"``). ``sparsity`` (or the N:M pattern) is then that of the
            other weights; see :func:`check_exclude`.

    Example:
        >>> kernels = {"d": np.arange(8.0).reshape(4, 2) - 3}
        >>> mask_from_importance(imp.magnitude(), kernels, 0.25)["d"].astype(int).tolist()
        [[1, 1], [0, 0], [1, 1], [1, 1]]
    """
    kernels = kernels_of(model_or_kernels)
    excluded = check_exclude(exclude, kernels)
    if excluded:
        return _excluding(excluded, scorer, model_or_kernels, kernels, sparsity, per_layer, block,
                          info, sparsity_m_by_n, layouts)  # fmt: skip
    if sparsity_m_by_n is not None:
        return _m_by_n_from_importance(scorer, model_or_kernels, kernels, sparsity, per_layer,
                                       block, info, sparsity_m_by_n, layouts)  # fmt: skip
    if sparsity is None:
        raise InvalidArgumentError(
            "give a sparsity (the fraction of weights to prune) or sparsity_m_by_n=(m, n). Fix: "
            "pass e.g. sparsity=0.8, or sparsity_m_by_n=(2, 4)."
        )
    b = None if block is None else check_block(block)
    if b is not None:
        _check_blockable(model_or_kernels, b, layouts)
    per_layer = check_per_layer(per_layer)
    importance = scorer if isinstance(scorer, imp.Importance) else scorer(kernels, block=b)
    keys = _ranking_keys(importance, b, {n: np.shape(k) for n, k in kernels.items()})
    if per_layer == LAMP:
        per_layer = lamp_sparsities(kernels, sparsity)
    return mask_from_ranking(
        keys, sparsity, per_layer=per_layer, info={**importance.info, **dict(info or {})},
        block=b, shapes={n: np.shape(k) for n, k in kernels.items()},
    )  # fmt: skip


def check_exclude(exclude: Iterable[str] | str | None, keys: Iterable[str]) -> list[str]:
    """The weight keys (of ``keys``, in their order) that ``exclude`` names: a key itself, or a
    layer (or nested model) name, which names every key under it (``"dw1"`` names
    ``"dw1/depthwise_kernel"``). Names that match no key, or that leave nothing to prune, are
    refused.

    Example:
        >>> check_exclude(["dw1", "out"], ["conv1", "dw1/depthwise_kernel", "pw1", "out"])
        ['dw1/depthwise_kernel', 'out']
    """
    if exclude is None:
        return []
    names = [exclude] if isinstance(exclude, str) else [str(n) for n in exclude]
    keys = list(keys)

    def named(key: str, name: str) -> bool:
        return key == name or key.startswith(name + "/")

    unknown = [n for n in names if not any(named(k, n) for k in keys)]
    if unknown:
        raise InvalidArgumentError(
            f"exclude names {unknown}, which are not prunable weights (or their layers) of the "
            f"model. Fix: use layer names or weight keys from {keys} "
            "(keras_legc.prunable_weights(model) lists them)."
        )
    chosen = [k for k in keys if any(named(k, n) for n in names)]
    if len(chosen) == len(keys):
        raise InvalidArgumentError(
            f"exclude={names} keeps every prunable weight whole, so there is nothing left to "
            "prune. Fix: exclude fewer layers."
        )
    return chosen


def _excluding(excluded, scorer, source, kernels, sparsity, per_layer, block, info, m_by_n,
               layouts) -> Mask:  # fmt: skip
    """The mask of the weights not ``excluded`` (the scorer sees every weight, as without
    ``exclude``), with the excluded weights kept whole."""
    importance = scorer if isinstance(scorer, imp.Importance) else scorer(
        kernels, block=None if block is None else check_block(block))  # fmt: skip
    rest = [k for k in kernels if k not in excluded]
    known = layouts_of(source, layouts)
    sub = mask_from_importance(
        importance.only(rest), {k: kernels[k] for k in rest}, sparsity, per_layer=per_layer,
        block=block, info=info,
        sparsity_m_by_n=m_by_n, layouts={k: known[k] for k in rest if k in known},
    )  # fmt: skip
    arrays = {
        k: sub[k] if k in sub.layers else np.ones(np.shape(kernels[k]), bool) for k in kernels
    }
    return Mask(arrays, {**sub.info, "exclude": excluded,
                         "sparsity_of_the_rest": sub.sparsity})  # fmt: skip


def _ranking_keys(importance, block, shapes) -> dict[str, list[np.ndarray]]:
    """``np.lexsort`` keys (primary last) of an Importance, aggregated over ``block`` if needed."""
    if list(importance.keys) != list(shapes):
        raise InvalidArgumentError(
            f"the importance covers layers {importance.layers} but the kernels are "
            f"{list(shapes)}. Fix: score the same model the mask is for."
        )
    if importance.block is not None and importance.block != block:
        raise InvalidArgumentError(
            f"the scorer scored blocks of {importance.block} but block={block} was asked for. "
            "Fix: ask the scorer for the same block."
        )
    out = {}
    for name, keys in importance.keys.items():
        if block is not None and importance.block is None:
            keys = [_reduce(k, block, how) for k, how in zip(keys, importance.reduce, strict=True)]
        for k in keys:
            if np.issubdtype(k.dtype, np.floating) and np.isnan(k).any():
                raise InvalidArgumentError(
                    f"the importance of layer {name!r} contains NaN. Fix: give weights without a "
                    "score a definite rank (e.g. 0 to prune them first)."
                )
        out[name] = list(reversed(keys))  # np.lexsort: the last key is the primary one
    return out


def _reduce(key: np.ndarray, block, how: str) -> np.ndarray:
    if how == "sumsq":
        return block_reduce(np.square(key), block, "sum")
    if how == "mean":
        mean = block_reduce(key, block, "mean")
        return np.where(np.isnan(mean), 0.0, mean)  # a block with no finite entry
    return block_reduce(key, block, how)


def magnitude_mask(
    model_or_kernels,
    sparsity: float | None = None,
    *,
    per_layer: bool | str = False,
    block: Sequence[int] | None = None,
    sparsity_m_by_n: Sequence[int] | None = None,
    exclude: Iterable[str] | str | None = None,
) -> Mask:
    """Prune the smallest ``|w|`` kernel weights (of a trained model, or a ``{layer: kernel}``).

    Args:
        model_or_kernels: a Keras model or ``{layer: kernel}``.
        sparsity: fraction of kernel weights to prune, in [0, 1).
        per_layer: ``False``: one global ranking; ``True``: the same sparsity in every layer;
            ``"lamp"``: per-layer sparsities by LAMP's layer-adaptive score (see
            :func:`lamp_sparsities`), which never empties a layer before the last weights.
        block: prune whole blocks instead, smallest L2 norm first; ``(1, 16)`` = 1 output unit x
            16 consecutive input weights (see :func:`check_block`), the structure TFLite's sparse
            FULLY_CONNECTED kernel runs faster.
        sparsity_m_by_n: instead of ``sparsity``, TF-MOT's N:M pattern: ``(2, 4)`` keeps the 2
            largest ``|w|`` of every 4 consecutive weights along the input-channel axis.
        exclude: weights kept whole (layer names or weight keys), as TF-MOT leaves the layers it
            is not given; ``sparsity`` is then that of the other weights (see
            :func:`check_exclude`).

    Example:
        >>> m = magnitude_mask({"d": np.random.default_rng(0).normal(size=(32, 4))}, 0.5,
        ...                    block=(1, 16))
        >>> m.sparsity
        0.5
    """
    info = {"block_score": "L2 norm"} if block is not None else None
    mask = mask_from_importance(
        imp.magnitude(), model_or_kernels, sparsity, per_layer=per_layer, block=block, info=info,
        sparsity_m_by_n=sparsity_m_by_n, exclude=exclude,
    )  # fmt: skip
    return warn_empty_layers(mask, target_fix(per_layer), record=False)


def target_fix(per_layer) -> str:
    """The fix for a layer emptied by a mask made to a target sparsity."""
    if per_layer is not False:
        return "a lower sparsity"
    return (
        f"per_layer={LAMP!r} (per-layer sparsities that keep every layer's largest weights), "
        "per_layer=True (the same sparsity in every layer), or a lower sparsity"
    )


#: why a global ranking empties a layer: every ranking (LEGC p-values, the default's magnitudes,
#: |w|) can rank one layer's weights all lowest (measured: DS-CNN's depthwise kernels at 75%,
#: docs/against-tfmot-convnets.md)
EMPTY_CAUSE = (
    "a global ranking does this when a layer's p-values are uniformly high or its weights are all "
    "smaller than the rest's, such as depthwise kernels"
)


def warn_empty_layers(
    mask: Mask, fix: str, cause: str = EMPTY_CAUSE, *, record: bool = True
) -> Mask:
    """Warn when ``mask`` prunes every kernel weight of a layer (the net no longer sees its
    input), naming the layers, the ``cause`` and the ``fix``; with ``record``, the layers go to
    ``mask.info["empty_layers"]``. The warning points at the caller of the mask's maker."""
    empty = [name for name, keep in mask.items() if not keep.any()]
    if empty:
        warnings.warn(
            f"the mask prunes every kernel weight of layer(s) {empty}: they pass only their bias, "
            "so the network's output no longer depends on its input and no fine-tuning can "
            f"recover it ({cause}). Fix: {fix}.",
            LegcWarning,
            stacklevel=3,
        )
    if record:
        mask.info["empty_layers"] = empty
    return mask


def random_mask(
    model_or_shapes,
    sparsity: float,
    *,
    seed: int = 0,
    per_layer: bool = False,
    block: Sequence[int] | None = None,
    exclude: Iterable[str] | str | None = None,
) -> Mask:
    """Prune a uniformly random subset of kernel weights, reproducibly for a given ``seed``.

    Args:
        model_or_shapes: a Keras model, a Mask, or ``{layer: kernel shape}``.
        sparsity: fraction of kernel weights to prune, in [0, 1).
        seed: the random seed.
        per_layer: reach the sparsity in every layer instead of globally (``"lamp"``, which
            allocates by magnitude, has no meaning for random weights and is refused).
        block: prune whole blocks instead, chosen uniformly at random (see :func:`check_block`).
        exclude: weights kept whole (see :func:`check_exclude`).

    Example:
        >>> random_mask({"d": (32, 4)}, 0.5, block=(1, 16)).layer_sparsity()
        {'d': 0.5}
    """
    if check_per_layer(per_layer) == LAMP:
        raise InvalidArgumentError(
            f"random_mask has no weights' magnitudes to share the sparsity by, so per_layer="
            f"{LAMP!r} does not apply. Fix: per_layer=False (one random draw over all weights) or "
            "True (the same sparsity in every layer)."
        )
    placeholders = {n: np.zeros(s, dtype=np.int8) for n, s in shapes_of(model_or_shapes).items()}
    # a model's own layouts, so block= refuses depthwise kernels here as in the other makers
    return mask_from_importance(
        imp.random(seed),
        placeholders,
        sparsity,
        per_layer=per_layer,
        block=block,
        exclude=exclude,
        layouts=layouts_of(model_or_shapes),
    )


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

    def prune(keys, block_sizes, sparsity=sparsity):
        order = np.lexsort(keys)
        target = sparsity * block_sizes.sum()
        cum = np.concatenate([[0.0], np.cumsum(block_sizes[order])])
        n_blocks = int(np.argmin(np.abs(cum - target)))  # first prefix nearest the target
        keep = np.ones(block_sizes.size, dtype=bool)
        keep[order[:n_blocks]] = False
        return keep

    if per_layer is not False:
        each = _layer_sparsities(per_layer, sparsity, names)
        keep_grid = {
            n: prune([np.ravel(k) for k in sort_keys[n]], sizes[n].ravel(), each[n]).reshape(
                grids[n]
            )
            for n in names
        }
    else:
        n_keys = len(sort_keys[names[0]])
        flat = [np.concatenate([np.ravel(sort_keys[n][i]) for n in names]) for i in range(n_keys)]
        keep = prune(flat, np.concatenate([sizes[n].ravel() for n in names]))
        keep_grid = split_by_layer(keep, names, grids)
    arrays = {n: block_expand(keep_grid[n], shapes[n], block) for n in names}
    mask = Mask(
        arrays, {"sparsity": sparsity, "per_layer": _info_per_layer(per_layer), **dict(info or {})}
    )
    mask.info.update(
        block=list(block), reached_sparsity=mask.sparsity, layout="(out, in): r outputs x c inputs"
    )
    _warn_outputs_without_weights(mask, names, shapes)
    return mask


def _warn_outputs_without_weights(mask: Mask, names, shapes) -> None:
    """Count the outputs (filters, units) a block mask leaves with no weight, and warn where a
    layer loses more than a quarter of them: they are removed in effect and no fine-tuning brings
    them back (a (1, 16) block is a quarter of a 64-input row)."""
    dead = {}
    for n in names:
        n_out = shapes[n][-1]
        kept = np.asarray(mask[n]).reshape(-1, n_out).any(axis=0)
        if not kept.all():
            dead[n] = int(n_out - kept.sum())
    mask.info["outputs_without_weights"] = dead
    heavy = [f"{n}: {d} of {shapes[n][-1]}" for n, d in dead.items() if d > shapes[n][-1] / 4]
    if heavy:
        warnings.warn(
            f"the block mask leaves outputs (filters, units) without any weight ({'; '.join(heavy)}"
            f"): they are removed in effect, and fine-tuning cannot bring them back (DS-CNN's "
            f"64-wide layers at 75% in (1, 16) blocks fine-tuned to 14% accuracy against 84% "
            f"unstructured: docs/layers.md). Fix: a lower sparsity, a block with fewer inputs "
            f"(block=(1, 4)) or block=None, or remove channels on purpose with kl.prune_channels.",
            LegcWarning,
            stacklevel=3,
        )


def _check_blockable(model_or_kernels, block, layouts=None) -> None:
    """Refuse block masks for weights no LiteRT sparse kernel runs in blocks."""
    known = layouts_of(model_or_kernels, layouts)
    refused = [k for k, (_axis, layout) in known.items() if layout is None]
    if refused:
        raise InvalidArgumentError(
            f"block={tuple(block)} applies to Dense kernels and to Conv/pointwise kernels (read as "
            f"(out, h, w, in), as LiteRT stores them); these weights have no block layout a "
            f"LiteRT sparse kernel uses: {refused}. Fix: leave them dense with "
            f"exclude={refused}, or use block=None (unstructured) or sparsity_m_by_n."
        )


def check_m_by_n(m_by_n) -> tuple[int, int]:
    """Validate TF-MOT's ``sparsity_m_by_n``: two integers ``0 < m < n``."""
    pair = two_ints(m_by_n)
    if pair is None or not 0 < pair[0] < pair[1]:
        raise InvalidArgumentError(
            f"sparsity_m_by_n must be two integers 0 < m < n (m zeros in every n consecutive "
            f"weights), got {m_by_n!r}. Fix: pass e.g. sparsity_m_by_n=(2, 4)."
        )
    return pair


def m_by_n_mask(sort_keys: Sequence[np.ndarray], m_by_n, in_axis: int) -> np.ndarray:
    """Keep pattern of one weight: in every ``n`` consecutive weights along ``in_axis``, the ``m``
    that sort first (``np.lexsort`` keys, primary last) are pruned, as TF-MOT's
    ``generate_m_by_n_mask`` does with ``|w|``. A last, partial group of ``r < n`` weights keeps
    at most ``min(r, n - m)`` (TF-MOT pads it with zeros, which it prunes first).

    Example:
        >>> w = np.array([[4.0, 1.0], [3.0, 2.0], [2.0, 3.0], [1.0, 4.0]])
        >>> m_by_n_mask([np.abs(w)], (2, 4), in_axis=0).astype(int).tolist()
        [[1, 0], [1, 0], [0, 1], [0, 1]]
    """
    m, n = check_m_by_n(m_by_n)
    shape = np.shape(sort_keys[0])
    rank = np.empty(int(np.prod(shape)), dtype=np.int64)
    rank[np.lexsort([np.ravel(k) for k in sort_keys])] = np.arange(rank.size)
    ranks = np.moveaxis(rank.reshape(shape), in_axis, -1)
    moved = ranks.shape
    rows = ranks.reshape(-1, moved[-1])
    groups = -(-moved[-1] // n)
    padded = np.full((rows.shape[0], groups * n), -1, dtype=np.int64)  # padding is pruned first
    padded[:, : moved[-1]] = rows
    order = np.argsort(padded.reshape(rows.shape[0], groups, n), axis=-1, kind="stable")
    keep = np.ones((rows.shape[0], groups, n), dtype=bool)
    np.put_along_axis(keep, order[..., :m], False, axis=-1)
    keep = keep.reshape(rows.shape[0], groups * n)[:, : moved[-1]].reshape(moved)
    return np.moveaxis(keep, -1, in_axis)


def _m_by_n_from_importance(scorer, source, kernels, sparsity, per_layer, block, info, m_by_n,
                            layouts=None):  # fmt: skip
    if sparsity is not None or block is not None or per_layer:
        raise InvalidArgumentError(
            "sparsity_m_by_n sets the pattern (and so the sparsity) of every weight by itself. "
            "Fix: drop sparsity=, block= and per_layer= when you pass sparsity_m_by_n."
        )
    m, n = check_m_by_n(m_by_n)
    importance = scorer if isinstance(scorer, imp.Importance) else scorer(kernels, block=None)
    keys = _ranking_keys(importance, None, {k: np.shape(w) for k, w in kernels.items()})
    axes = layouts_of(source, layouts)
    arrays = {k: m_by_n_mask(keys[k], (m, n), axes[k][0]) for k in kernels}
    mask = Mask(arrays, {**importance.info, **dict(info or {})})
    mask.info.update(sparsity_m_by_n=[m, n], sparsity=mask.sparsity,
                     layout="m zeros in every n consecutive weights along the input channels")  # fmt: skip
    return mask
