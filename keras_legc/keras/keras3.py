"""The Keras 3 mask constraint (any backend): a mask held by a weight's constraint, with Keras APIs
only. :class:`keras_legc.keras.holders.Keras3Holder` puts it on each prunable weight.

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

from keras_legc.keras.flavour import keras3

_k = keras3()


@_k.saving.register_keras_serializable(package="keras_legc")
class MaskConstraint(_k.constraints.Constraint):
    """A weight constraint that applies a fixed 0/1 mask after any constraint it wraps.

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
