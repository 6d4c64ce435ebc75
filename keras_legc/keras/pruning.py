"""``prune``/``strip``: hold a :class:`~keras_legc.masking.Mask` fixed during training.

Each function serves both Kerases, chosen from the model object: a Keras 3 model (any backend) is
pruned with a mask constraint (:mod:`keras_legc.keras.keras3`); a Keras 2 (tf_keras) model with
TF-MOT, as follows.

``prune`` copies the model (the user's model is never modified), optionally rewinds it to its
initial weights (the paper's lottery-ticket protocol) or keeps the trained weights (fine-tuning),
wraps every Dense layer in a TF-MOT ``PruneLowMagnitude`` wrapper whose schedule never updates the
mask, and loads the mask. The wrapper multiplies the kernel by the mask before every forward pass,
so masked weights have no effect and are exactly 0 after ``fit`` (with ``pruning_callbacks()``) and
after ``strip``.
"""

from __future__ import annotations

import numpy as np

from keras_legc.core.history import History
from keras_legc.errors import InvalidArgumentError, MaskMismatchError, ModelStructureError
from keras_legc.keras.flavour import keras, model_flavour, tf, tfmot
from keras_legc.keras.layers import dense_layers, is_pruning_wrapper, layer_signature
from keras_legc.keras.saving import load_model, save_model  # noqa: F401
from keras_legc.masking import Mask

_sparsity = tfmot().sparsity.keras


@keras().utils.register_keras_serializable(package="keras_legc")
class FixedMaskSchedule(_sparsity.PruningSchedule):
    """A TF-MOT pruning schedule that never recomputes the mask (the mask is set by ``prune``)."""

    def __call__(self, step):
        return tf().constant(False), tf().constant(0.0)

    def get_config(self):
        return {"class_name": type(self).__name__, "config": {}}


def prune(model, mask: Mask, *, rewind_to=None):
    """A copy of ``model`` whose Dense kernels are held to ``mask`` during training.

    Args:
        model: a built Sequential or functional model: Keras 3 (``keras.Model``, any backend) or
            Keras 2 (``tf_keras.Model``).
        mask: a :class:`Mask` with one array per Dense layer of ``model``.
        rewind_to: None to fine-tune from the model's current weights; a :class:`History` (its
            ``initial_weights``) or a ``model.get_weights()``-style list to rewind to them first.

    Returns:
        A new, uncompiled model of the same Keras. Keras 3: the same layers, each Dense kernel
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
    layers = dense_layers(model)
    keras3 = model_flavour(model) == "keras3"
    if keras3:
        from keras_legc.keras import keras3 as k3

        already = bool(k3.constraints(model))
    else:
        already = any(is_pruning_wrapper(layer) for layer in model.layers)
    if already:
        raise ModelStructureError(
            "the model is already wrapped for pruning. Fix: call keras_legc.strip(model) first, "
            "or prune the original model."
        )
    mask.check_shapes(layer_signature(model))
    weights = _initial_weights(model, rewind_to)
    if keras3:
        return k3.prune(model, mask, weights)
    copy = _clone(model)
    copy.set_weights(weights)

    dense_names = {layer.name for layer in layers}
    schedule = FixedMaskSchedule()

    def wrap(layer):
        if layer.name in dense_names:
            return _sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned = keras().models.clone_model(copy, clone_function=wrap)
    for wrapper in pruned.layers:
        if is_pruning_wrapper(wrapper):
            m = mask[wrapper.layer.name].astype(np.float32)
            for weight, mask_var, _threshold in wrapper.pruning_vars:
                mask_var.assign(m)
                weight.assign(weight * m)
            # Mark the wrapper as stepped, so a fit without UpdatePruningStep does not fail.
            wrapper.pruning_step.assign(0)
    return pruned


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
    """The pruned model with plain Dense layers and the masked weights exactly 0.

    Works on a model from :func:`prune` (or any TF-MOT pruned model); a model without wrappers
    (or, Keras 3, without mask constraints) is returned unchanged.

    Example:
        >>> small = keras_legc.strip(pruned)
    """
    dense_layers(model)
    if model_flavour(model) == "keras3":
        from keras_legc.keras import keras3 as k3

        return k3.strip(model)
    wrappers = [layer for layer in model.layers if is_pruning_wrapper(layer)]
    if not wrappers:
        return model
    for wrapper in wrappers:
        # The last optimizer step may have moved masked weights; zero them before stripping.
        for weight, mask_var, _threshold in wrapper.pruning_vars:
            weight.assign(weight * mask_var)
    stripped = _sparsity.strip_pruning(model)
    left = [type(layer).__name__ for layer in stripped.layers if is_pruning_wrapper(layer)]
    if left:  # pragma: no cover - TF-MOT guarantees this
        raise ModelStructureError(f"strip left pruning wrappers in the model: {left}.")
    return stripped


def mask_of(model) -> Mask:
    """The mask currently held by a pruned model (its TF-MOT wrappers or, Keras 3, its mask
    constraints).

    Example:
        >>> keras_legc.keras.pruning.mask_of(pruned).sparsity
    """
    if model_flavour(model) == "keras3":
        from keras_legc.keras import keras3 as k3

        return k3.mask_of(model)
    arrays = {}
    for layer in model.layers:
        if is_pruning_wrapper(layer):
            arrays[layer.layer.name] = layer.pruning_vars[0][1].numpy()
    if not arrays:
        raise ModelStructureError("the model has no pruning wrappers, so it holds no mask.")
    return Mask(arrays, {"method": "from_model"})


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


def _clone(model):
    try:
        return keras().models.clone_model(model)
    except Exception as exc:
        raise ModelStructureError(
            f"cannot copy model {model.name!r} ({type(model).__name__}): {exc}. Subclassed models "
            "are not supported. Fix: build it as a Sequential or functional model."
        ) from exc
