"""One mask holder per Keras flavour: hold, read, write and strip the masks of a model's prunable
weights (:mod:`keras_legc.keras.registry`). ``prune``, ``strip``, ``mask_of`` and ``GradualPruning``
all go through :func:`holder_for`; no other code reads or writes a held mask.

- Keras 3 (any backend): each weight's constraint attribute (``kernel_constraint``,
  ``depthwise_constraint``, ``pointwise_constraint``, ``embeddings_constraint``, an RNN cell's
  ``kernel_constraint``/``recurrent_constraint``) becomes a
  :class:`~keras_legc.keras.keras3.MaskConstraint` wrapping the constraint already there. Keras 3
  optimizers apply ``variable.constraint`` after every update, so masked weights stay exactly 0;
  ``get_config`` carries the constraint, so ``.keras`` files keep the mask.
- tf_keras: TF-MOT's ``PruneLowMagnitude`` wrappers with a schedule that never updates the mask.
  Where TF-MOT's own registry lists other weights than keras_legc's (it prunes no weight of
  DepthwiseConv2D, only the pointwise kernel of SeparableConv, nothing of EinsumDense or
  Conv1DTranspose), the layer is first rebuilt as a registered ``Prunable<Class>`` subclass with
  TF-MOT's ``get_prunable_weights`` protocol; :meth:`TfKerasHolder.strip` turns it back into the
  plain class.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_legc.errors import ModelStructureError
from keras_legc.keras.flavour import keras, keras3, model_flavour, tf, tfmot
from keras_legc.keras.layers import is_pruning_wrapper
from keras_legc.keras.registry import REGISTRY, prunable_entries, resolve
from keras_legc.masking import Mask


def holder_for(model):
    """The mask holder of ``model``'s Keras flavour."""
    return KERAS3 if model_flavour(model) == "keras3" else TF_KERAS


def _set(obj, path: str, value) -> None:
    owner, _, attr = path.rpartition(".")
    setattr(resolve(obj, owner) if owner else obj, attr, value)


def _not_held() -> ModelStructureError:
    return ModelStructureError(
        "the model holds no keras_legc mask. Fix: pass the model returned by keras_legc.prune "
        "(or wrapped for GradualPruning)."
    )


class _Holder:
    def read(self, model) -> Mask:
        """The mask ``model`` holds now (ModelStructureError when it holds none)."""
        keeps = self._keeps(model)
        if not keeps:
            raise _not_held()
        return Mask(keeps, {"method": "from_model"})


class Keras3Holder(_Holder):
    """Masks held by :class:`~keras_legc.keras.keras3.MaskConstraint` on each weight."""

    def held(self, model) -> dict:
        """``{key: (Entry, MaskConstraint)}`` for the weights of ``model`` that hold a mask."""
        from keras_legc.keras.keras3 import MaskConstraint

        out = {}
        for entry in prunable_entries(model, warn=False):
            constraint = getattr(entry.variable, "constraint", None)
            if isinstance(constraint, MaskConstraint):
                out[entry.key] = (entry, constraint)
        return out

    def is_held(self, model) -> bool:
        return bool(self.held(model))

    def hold(self, model, mask: Mask, weights: list):
        """A copy of ``model`` with ``weights``, every prunable weight held to ``mask``."""
        from keras_legc.keras.keras3 import MaskConstraint

        copy = _clone(model, keras3())
        copy.set_weights(weights)
        for entry in prunable_entries(copy, warn=False):
            variable = entry.variable
            path = entry.spec.constraint
            inner = resolve(entry.layer, path) if path else variable.constraint
            constraint = MaskConstraint(mask[entry.key], inner=inner)
            if path:
                _set(entry.layer, path, constraint)  # what get_config (.keras files) carries
            variable.constraint = constraint  # what the optimizer applies after each update
            variable.assign(constraint(variable))
        return copy

    def _keeps(self, model) -> dict:
        return {key: c.keep() for key, (_u, c) in self.held(model).items()}

    def write(self, model, masks: Mapping[str, np.ndarray]) -> None:
        """Replace held masks and zero the newly masked weights at once. On JAX the compiled
        train step read the old masks as constants, so it is rebuilt."""
        held = self.held(model)
        for key, keep in masks.items():
            entry, constraint = held[key]
            constraint.mask.assign(np.asarray(keep, dtype=np.float32))
            entry.variable.assign(constraint(entry.variable))
        k = keras3()
        if k.backend.backend() == "jax" and getattr(model, "train_function", None) is not None:
            model.make_train_function(force=True)

    def strip(self, model):
        """A plain copy: masked weights exactly 0, the constraints from before pruning kept."""
        held = self.held(model)
        if not held:
            return model
        for entry, constraint in held.values():
            # The last optimizer step applied the constraint already; this covers set_weights.
            entry.variable.assign(constraint(entry.variable))
        # The configs the copy is built from carry the constraints from before pruning.
        self._swap(held, lambda c: c.inner)
        try:
            stripped = keras3().models.clone_model(model)
        finally:
            self._swap(held, lambda c: c)
        stripped.set_weights(model.get_weights())
        return stripped

    @staticmethod
    def _swap(held, choose) -> None:
        for entry, constraint in held.values():
            if entry.spec.constraint:
                _set(entry.layer, entry.spec.constraint, choose(constraint))


class TfKerasHolder(_Holder):
    """Masks held by TF-MOT's ``PruneLowMagnitude`` wrappers (tf_keras)."""

    def wrappers(self, model) -> list:
        return [layer for layer in model.layers if is_pruning_wrapper(layer)]

    def is_held(self, model) -> bool:
        return bool(self.wrappers(model))

    def _vars(self, model) -> dict:
        """``{key: (weight variable, mask variable)}`` of the wrapped weights, in layer order."""
        keys = {id(u.variable): u.key for u in prunable_entries(model, warn=False)}
        out = {}
        for wrapper in self.wrappers(model):
            for weight, mask_var, _threshold in wrapper.pruning_vars:
                out[keys[id(weight)]] = (weight, mask_var)
        return out

    def hold(self, model, mask: Mask, weights: list):
        copy = _clone(model, keras())
        copy.set_weights(weights)
        entries = prunable_entries(copy, warn=False)
        top = {id(layer) for layer in copy.layers}
        nested = sorted({u.layer.name for u in entries if id(u.layer) not in top})
        if nested:
            raise ModelStructureError(
                f"layers {nested} sit inside a nested model; on tf_keras TF-MOT wraps top-level "
                "layers only. Fix: build the model flat, or use Keras 3."
            )
        pruned_layers = {id(u.layer) for u in entries}
        schedule = FixedMaskSchedule()
        sparsity = tfmot().sparsity.keras

        def wrap(layer):
            if id(layer) not in pruned_layers:
                return layer
            return sparsity.prune_low_magnitude(_prunable_twin(layer), pruning_schedule=schedule)

        # clone_function gets the copy's layers; mask keys are the same names.
        pruned = keras().models.clone_model(copy, clone_function=wrap)
        self.write(pruned, {k: mask[k] for k in mask.layers})
        for wrapper in self.wrappers(pruned):
            # Mark the wrapper as stepped, so a fit without UpdatePruningStep does not fail.
            wrapper.pruning_step.assign(0)
        return pruned

    def _keeps(self, model) -> dict:
        return {k: m.numpy() for k, (_w, m) in self._vars(model).items()}

    def write(self, model, masks: Mapping[str, np.ndarray]) -> None:
        held = self._vars(model)
        for key, keep in masks.items():
            weight, mask_var = held[key]
            keep = np.asarray(keep, dtype=np.float32)
            mask_var.assign(keep)
            weight.assign(weight * keep)

    def strip(self, model):
        wrappers = self.wrappers(model)
        if not wrappers:
            return model
        for weight, mask_var in self._vars(model).values():
            # The last optimizer step may have moved masked weights; zero them before stripping.
            weight.assign(weight * mask_var)
        stripped = tfmot().sparsity.keras.strip_pruning(model)
        left = [type(la).__name__ for la in stripped.layers if is_pruning_wrapper(la)]
        if left:  # pragma: no cover - TF-MOT guarantees this
            raise ModelStructureError(f"strip left pruning wrappers in the model: {left}.")
        if not any(type(la) in _TWINS.values() for la in stripped.layers):
            return stripped
        plain = keras().models.clone_model(stripped, clone_function=_plain_layer)
        plain.set_weights(stripped.get_weights())
        return plain


def _clone(model, k):
    """A copy of ``model`` by ``k.models.clone_model`` (a clear error for subclassed models)."""
    try:
        return k.models.clone_model(model)
    except Exception as exc:
        raise ModelStructureError(
            f"cannot copy model {model.name!r} ({type(model).__name__}): {exc}. Subclassed models "
            "are not supported. Fix: build it as a Sequential or functional model."
        ) from exc


# ---- tf_keras: TF-MOT's schedule and the layers its registry leaves out ----------------------

_sparsity = tfmot().sparsity.keras


@keras().utils.register_keras_serializable(package="keras_legc")
class FixedMaskSchedule(_sparsity.PruningSchedule):
    """A TF-MOT pruning schedule that never recomputes the mask (the mask is set by ``prune``)."""

    def __call__(self, step):
        return tf().constant(False), tf().constant(0.0)

    def get_config(self):
        return {"class_name": type(self).__name__, "config": {}}


def _tfmot_covers(cls) -> bool:
    """Whether TF-MOT's own registry prunes exactly keras_legc's weights of a tf_keras class."""
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
        PruneRegistry,
    )

    table = PruneRegistry._LAYERS_WEIGHTS_MAP  # noqa: SLF001 - TF-MOT's table, read only
    if cls in PruneRegistry._RNN_LAYERS:  # noqa: SLF001 - kernel and recurrent kernel, as ours
        return True
    return cls in table and list(table[cls]) == [s.attr for s in REGISTRY[cls.__name__]]


def _make_twin(base):
    """``Prunable<Base>``: ``base`` with TF-MOT's ``get_prunable_weights`` for keras_legc's table."""
    prunable_layer = tfmot().sparsity.keras.PrunableLayer
    specs = REGISTRY[base.__name__]

    def get_prunable_weights(self):
        return [resolve(self, s.attr) for s in specs]

    twin = type(f"Prunable{base.__name__}", (base, prunable_layer),
                {"get_prunable_weights": get_prunable_weights, "__module__": __name__})  # fmt: skip
    return keras().utils.register_keras_serializable(package="keras_legc")(twin)


def _registered_twins() -> dict:
    layers = keras().layers
    twins = {}
    for name in REGISTRY:
        base = getattr(layers, name, None)
        if base is not None and not _tfmot_covers(base):
            twins[base] = _make_twin(base)
    return twins


#: ``{tf_keras class: its Prunable subclass}``, registered at import so saved files load.
_TWINS = _registered_twins()


def _prunable_twin(layer):
    """The layer, or a copy of it as its ``Prunable`` subclass (same config and weights)."""
    if isinstance(layer, tfmot().sparsity.keras.PrunableLayer) or hasattr(
        layer, "get_prunable_weights"
    ):
        return layer
    twin = _TWINS.get(type(layer))
    if twin is None:
        return layer
    copy = twin.from_config(layer.get_config())
    copy.build(layer.input_shape)  # its variables must exist before set_weights
    copy.set_weights(layer.get_weights())
    return copy


def _plain_layer(layer):
    base = next((b for b, t in _TWINS.items() if type(layer) is t), None)
    return layer if base is None else base.from_config(layer.get_config())


KERAS3 = Keras3Holder()
TF_KERAS = TfKerasHolder()
