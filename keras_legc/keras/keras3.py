"""Pruning Keras 3 models (any backend) with Keras APIs only: a mask held by a kernel constraint.

Keras 3 optimizers apply ``variable.constraint`` right after every update (SGD, momentum, Adam,
AdamW's decoupled weight decay included), so a constraint that multiplies the kernel by the mask
holds the masked weights at exactly 0 after every step, on the TensorFlow, JAX and PyTorch
backends, without wrappers. :class:`MaskConstraint` is registered with Keras, so a pruned model
saved as ``.keras`` mid fine-tuning loads back with ``keras.saving.load_model`` (no
``custom_objects``) and keeps holding its mask.
"""

from __future__ import annotations

import base64

import numpy as np

from keras_legc.errors import ModelStructureError
from keras_legc.keras.flavour import keras3
from keras_legc.keras.layers import dense_layers
from keras_legc.masking import Mask

_k = keras3()


@_k.saving.register_keras_serializable(package="keras_legc")
class MaskConstraint(_k.constraints.Constraint):
    """A kernel constraint that applies a fixed 0/1 mask after any constraint it wraps.

    Args:
        mask: the 0/1 array of the kernel's shape (or its encoded form from :meth:`get_config`).
        inner: a constraint the kernel already had (applied first), or None.

    Example:
        >>> layer.kernel_constraint = layer.kernel.constraint = MaskConstraint(keep)
    """

    def __init__(self, mask, inner=None):
        if isinstance(mask, dict):
            mask = _decode(mask)
        self.inner = _k.constraints.get(inner)
        self.mask = _k.Variable(
            np.asarray(mask, dtype=np.float32), trainable=False, name="legc_mask"
        )

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return _k.ops.multiply(w, _k.ops.cast(self.mask, w.dtype))

    def keep(self) -> np.ndarray:
        """The mask as a numpy bool array (True = kept)."""
        return _k.ops.convert_to_numpy(self.mask) > 0

    def get_config(self) -> dict:
        inner = _k.constraints.serialize(self.inner) if self.inner is not None else None
        return {"mask": _encode(self.keep()), "inner": inner}


def _encode(keep: np.ndarray) -> dict:
    """A compact JSON form of a bool mask: its shape and its bits, base64."""
    bits = np.packbits(np.ravel(keep).astype(bool))
    return {"shape": list(keep.shape), "bits": base64.b64encode(bits.tobytes()).decode("ascii")}


def _decode(config: dict) -> np.ndarray:
    shape = tuple(int(d) for d in config["shape"])
    bits = np.frombuffer(base64.b64decode(config["bits"]), dtype=np.uint8)
    return np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(np.float32)


def constraints(model) -> dict[str, MaskConstraint]:
    """``{Dense layer name: its MaskConstraint}`` for the masked Dense layers of ``model``."""
    return {
        layer.name: layer.kernel.constraint
        for layer in dense_layers(model)
        if isinstance(layer.kernel.constraint, MaskConstraint)
    }


def prune(model, mask: Mask, weights: list):
    """A copy of the Keras 3 ``model`` with ``weights``, every Dense kernel held to ``mask``."""
    try:
        copy = _k.models.clone_model(model)
    except Exception as exc:
        raise ModelStructureError(
            f"cannot copy model {model.name!r} ({type(model).__name__}): {exc}. Fix: build it as "
            "a Sequential or functional model."
        ) from exc
    copy.set_weights(weights)
    for layer in dense_layers(copy):
        constraint = MaskConstraint(mask[layer.name], inner=layer.kernel_constraint)
        layer.kernel_constraint = constraint  # what get_config (and so .keras files) carry
        layer.kernel.constraint = constraint  # what the optimizer applies after each update
        layer.kernel.assign(constraint(layer.kernel))
    return copy


def set_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Replace the masks of Dense layers of a pruned model (``{layer name: 0/1 array}``) and zero
    the newly masked weights at once.

    On the JAX backend the compiled train step read the old masks as constants, so it is rebuilt.

    Example:
        >>> set_masks(pruned, {"hidden": keep})
    """
    held = constraints(model)
    for layer in dense_layers(model):
        if layer.name in masks:
            constraint = held[layer.name]
            constraint.mask.assign(np.asarray(masks[layer.name], dtype=np.float32))
            layer.kernel.assign(constraint(layer.kernel))
    if _k.backend.backend() == "jax" and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def strip(model):
    """A plain copy of a pruned Keras 3 model: masked weights exactly 0, no mask constraint
    (the constraints the kernels had before pruning are kept). Unpruned: returned as is."""
    held = constraints(model)
    if not held:
        return model
    for layer in dense_layers(model):
        if layer.name in held:
            # The last optimizer step applied the constraint already; this covers set_weights.
            layer.kernel.assign(held[layer.name](layer.kernel))

    def plain(layer):
        config = layer.get_config()
        if layer.name in held:
            inner = held[layer.name].inner
            config["kernel_constraint"] = (
                _k.constraints.serialize(inner) if inner is not None else None
            )
        return type(layer).from_config(config)

    stripped = _k.models.clone_model(model, clone_function=plain)
    stripped.set_weights(model.get_weights())
    return stripped


def mask_of(model) -> Mask:
    """The mask held by a pruned Keras 3 model's constraints."""
    held = constraints(model)
    if not held:
        raise ModelStructureError(
            "the model holds no keras_legc mask (no Dense kernel has a MaskConstraint). Fix: "
            "pass the model returned by keras_legc.prune."
        )
    return Mask({name: c.keep() for name, c in held.items()}, {"method": "from_model"})
