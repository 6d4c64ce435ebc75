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

import os
from pathlib import Path

import numpy as np

from keras_legc.core.history import History
from keras_legc.errors import InvalidArgumentError, MaskMismatchError, ModelStructureError
from keras_legc.keras.flavour import keras, model_flavour, tf, tfmot
from keras_legc.keras.layers import dense_layers, is_pruning_wrapper, layer_signature
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


def save_model(model, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``model.save(path)`` (``.keras``), atomically, and never over an existing file unless
    ``overwrite``: Keras writes to a temp file beside ``path`` that is renamed once complete."""
    from keras_legc._io import check_writable, create_temp_file, remove_stale_temp_files

    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidArgumentError(
            f"save_model writes the Keras v3 format and needs a .keras path, got {path}. Fix: "
            "name it e.g. pruned.keras."
        )
    check_writable(path, overwrite)
    remove_stale_temp_files(path)
    fd, tmp = create_temp_file(path, ".tmp.keras")  # umask-respecting mode, kept by Keras
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(path: str | os.PathLike, *, compile: bool = True, unsafe: bool = False):
    """Load a tf.keras model saved by ``model.save`` (pruned or not, ``.keras``/``.h5``/SavedModel).

    A model file can carry Python code (a ``Lambda`` layer's bytecode) that runs when it is
    loaded or called, so by default this refuses it: ``.keras`` files load in Keras' safe mode,
    and a ``.h5`` file whose model config holds a ``Lambda`` layer is refused before Keras reads
    it (Keras itself has no safe mode for ``.h5``).

    Args:
        path: the saved model.
        compile: restore the optimizer and loss too.
        unsafe: allow Lambda layers, i.e. run the Python code stored in the file. Only for files
            you trust as you would trust a script (CLI: ``--unsafe-load``).

    Returns:
        The Keras model.

    Raises:
        ModelStructureError: unreadable, or code in the file and ``unsafe`` is False.

    Example:
        >>> model = load_model("pruned.keras", compile=False)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise InvalidArgumentError(f"no saved model at {path}. Fix: check the path.")
    if not unsafe and path.suffix.lower() in {".h5", ".hdf5"} and _h5_has_lambda(path):
        raise ModelStructureError(
            _UNSAFE.format(path=path, what="a Lambda layer (in its .h5 config)")
        )
    with _sparsity.prune_scope():
        try:
            return keras().models.load_model(
                path,
                compile=compile,
                custom_objects={"FixedMaskSchedule": FixedMaskSchedule},
                safe_mode=not unsafe,
            )
        except Exception as exc:
            if "arbitrary code execution" in str(exc):
                raise ModelStructureError(
                    _UNSAFE.format(path=path, what="a Lambda layer with Python code")
                ) from exc
            raise ModelStructureError(
                f"could not load a tf.keras (Keras 2) model from {path}: {exc}. Fix: save it with "
                "model.save('model.keras') from tf.keras/tf_keras."
            ) from exc


_UNSAFE = (
    "{path} holds {what}: loading or running it executes Python code stored in the file, so it "
    "is refused by default. Fix: if you trust the file as you would a script, load it with "
    "load_model(path, unsafe=True) (CLI: --unsafe-load); otherwise rebuild the layer without "
    "Lambda."
)


def _h5_has_lambda(path: Path) -> bool:
    """Whether the model config of a ``.h5`` file holds a Lambda layer (read without Keras)."""
    import json

    import h5py

    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
    except OSError:
        return False  # not HDF5 after all: Keras' own error says so
    if config is None:
        return False
    try:
        config = json.loads(config.decode() if isinstance(config, bytes) else config)
    except ValueError:
        return False  # a corrupt config: Keras' own error says so

    def walk(node) -> bool:
        if isinstance(node, dict):
            return node.get("class_name") == "Lambda" or any(walk(v) for v in node.values())
        return isinstance(node, list) and any(walk(v) for v in node)

    return walk(config)


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
