"""``prune``/``strip``: hold a :class:`~keras_legc.masking.Mask` fixed during training.

Each function serves both Kerases, through the mask holder of the model's flavour
(:mod:`keras_legc.keras.holders`): a Keras 3 model (any backend) holds its masks in weight
constraints; a Keras 2 (tf_keras) model in TF-MOT wrappers.

``prune`` copies the model (the user's model is never modified), optionally rewinds it to its
initial weights (the paper's lottery-ticket protocol) or keeps the trained weights (fine-tuning),
and holds every prunable weight (:func:`keras_legc.prunable_weights`) to the mask. Masked weights
have no effect and are exactly 0 after ``fit`` (with ``pruning_callbacks()`` on tf_keras) and after
``strip``.
"""

from __future__ import annotations

import numpy as np

from keras_legc.core.history import History
from keras_legc.errors import InvalidArgumentError, MaskMismatchError, ModelStructureError
from keras_legc.keras.flavour import model_flavour
from keras_legc.keras.holders import FixedMaskSchedule, _sparsity, holder_for  # noqa: F401
from keras_legc.keras.registry import prunable_entries, signature
from keras_legc.keras.saving import load_model, save_model  # noqa: F401
from keras_legc.masking import Mask


def prune(model, mask: Mask, *, rewind_to=None):
    """A copy of ``model`` whose prunable weights are held to ``mask`` during training.

    Args:
        model: a built Sequential or functional model: Keras 3 (``keras.Model``, any backend) or
            Keras 2 (``tf_keras.Model``).
        mask: a :class:`Mask` with one array per prunable weight of ``model``
            (:func:`keras_legc.prunable_weights`).
        rewind_to: None to fine-tune from the model's current weights; a :class:`History` (its
            ``initial_weights``) or a ``model.get_weights()``-style list to rewind to them first.

    Returns:
        A new, uncompiled model of the same Keras. Keras 3: the same layers, each prunable weight
        holding a :class:`~keras_legc.keras.keras3.MaskConstraint` that the optimizer applies
        after every update. Keras 2: TF-MOT pruning wrappers; fit it with
        ``callbacks=keras_legc.pruning_callbacks()``.

    Example:
        >>> pruned = keras_legc.prune(model, mask, rewind_to=recorder.history)
        >>> pruned.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> pruned.fit(x, y, epochs=10, callbacks=keras_legc.pruning_callbacks())
        >>> small = keras_legc.strip(pruned)
    """
    if not isinstance(mask, Mask):
        raise MaskMismatchError(
            f"mask must be a keras_legc.Mask, got {type(mask).__name__}. Fix: build one with "
            "Scores.mask(...), magnitude_mask(...), random_mask(...) or Mask({layer: array})."
        )
    holder = holder_for(model)
    prunable_entries(model)  # the checks, and the warning about weights it does not prune
    if holder.is_held(model):
        raise ModelStructureError(
            "the model is already wrapped for pruning. Fix: call keras_legc.strip(model) first, "
            "or prune the original model."
        )
    mask.check_shapes(signature(model))
    return holder.hold(model, mask, _initial_weights(model, rewind_to))


def pruning_callbacks(model=None) -> list:
    """Callbacks to pass to ``fit`` of a pruned model.

    Args:
        model: the pruned model. A Keras 3 model needs none (its kernel constraints act inside
            the optimizer step), so ``[]``; a Keras 2 model, or None, gets TF-MOT's
            ``UpdatePruningStep``.

    Returns:
        A list of callbacks.

    Example:
        >>> pruned.fit(x, y, epochs=5, callbacks=keras_legc.pruning_callbacks(pruned))
    """
    if model is not None and model_flavour(model) == "keras3":
        return []
    return [_sparsity.UpdatePruningStep()]


def strip(model):
    """The pruned model with plain layers and the masked weights exactly 0.

    Works on a model from :func:`prune` (or any TF-MOT pruned model); a model without wrappers
    (or, Keras 3, without mask constraints) is returned unchanged.

    Example:
        >>> small = keras_legc.strip(pruned)
    """
    prunable_entries(model, warn=False)
    return holder_for(model).strip(model)


def mask_of(model) -> Mask:
    """The mask currently held by a pruned model (its TF-MOT wrappers or, Keras 3, its mask
    constraints).

    Example:
        >>> keras_legc.keras.pruning.mask_of(pruned).sparsity
    """
    return holder_for(model).read(model)


def _initial_weights(model, rewind_to) -> list:
    current = model.get_weights()
    if rewind_to is None:
        return current
    weights = rewind_to.initial_weights if isinstance(rewind_to, History) else rewind_to
    if weights is None:
        raise InvalidArgumentError(
            "rewind_to is a History without initial weights. Fix: record with WeightHistory "
            "(it saves them) or pass model.get_weights() taken before training."
        )
    weights = [np.asarray(w) for w in weights]
    shapes = [w.shape for w in current]
    if [w.shape for w in weights] != shapes:
        raise MaskMismatchError(
            f"rewind_to holds weights of shapes {[w.shape for w in weights]}, but the model has "
            f"{shapes}. Fix: rewind to the initial weights of this same model."
        )
    return weights
