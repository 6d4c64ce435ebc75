"""Rebuild: a plain Keras model with the chosen channels gone.

The model's ``get_config()`` is edited (each resized layer's ``filters`` / ``units`` / shape),
rebuilt with ``from_config`` (so Sequential, Functional and nested models come back as what they
were, with the same layer names), and every weight is copied, sliced along its bound axes. No
wrapper, no mask: the result saves, loads and exports like any model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_legc.errors import InvalidArgumentError, ModelStructureError
from keras_legc.structure.graph import ChannelGraph, LayerKey
from keras_legc.structure.handlers import InputLayerHandler


def check_removal(graph: ChannelGraph, removed: Mapping) -> dict[int, np.ndarray]:
    """``{group id: channel indices}`` checked: prunable groups, valid indices, >= 1 kept."""
    out = {}
    for gid, channels in removed.items():
        gid = int(getattr(gid, "id", gid))
        if not 0 <= gid < len(graph.groups):
            raise InvalidArgumentError(
                f"no channel group {gid} (the model has {len(graph.groups)}). Fix: use the ids "
                "of keras_legc.channel_groups(model)."
            )
        group = graph.groups[gid]
        idx = np.unique(np.asarray(list(channels), dtype=np.int64))
        if not idx.size:
            continue
        if group.blocked is not None:
            raise InvalidArgumentError(
                f"channel group {gid} ({', '.join(group.layers)}) cannot be pruned: "
                f"{group.blocked}. Fix: remove channels of prunable groups only."
            )
        if idx.min() < 0 or idx.max() >= group.size:
            raise InvalidArgumentError(
                f"channel indices of group {gid} must be in 0..{group.size - 1}, got "
                f"{idx.tolist()[:10]}."
            )
        if idx.size >= group.size:
            raise InvalidArgumentError(
                f"removing all {group.size} channels of group {gid} ({', '.join(group.layers)}) "
                "would disconnect the model. Fix: keep at least one channel."
            )
        out[gid] = idx
    return out


def remove_channels(graph: ChannelGraph, removed: Mapping):
    """A new model: ``graph.model`` without the channels ``removed`` (``{group id: channel
    indices}``); kept weights copied exactly."""
    from keras_legc.keras.flavour import keras3

    keras = keras3()
    model = graph.model
    removed = check_removal(graph, removed)
    config = model.get_config()
    entries = _config_entries(config, ())
    for key, slots in graph.resize_slots.items():
        width = graph.new_width(key, removed)
        if width == len(slots):
            continue
        if width == 0:
            raise InvalidArgumentError(
                f"the removal leaves layer {'/'.join(key)!r} with no channels. Fix: keep at least "
                "one of its channels (keras_legc.structure.prune.keep_every_layer does)."
            )
        handler = graph.handlers.get(key) or InputLayerHandler()
        if key not in entries:
            raise ModelStructureError(
                f"layer {'/'.join(key)!r} is not in the model's config; it cannot be resized. "
                "Fix: exclude it (exclude=...)."
            )
        handler.resize(entries[key], width)
        if len(key) > 1 and isinstance(graph.layers.get(key), keras.layers.InputLayer):
            _resize_build_shape(entries.get(key[:-1]), width)
    custom = {}
    for layer in graph.layers.values():  # users' layers, even unregistered ones
        cls = type(layer)
        if cls.__module__.split(".")[0] == "keras":
            continue  # Keras resolves its own; by bare name, an op and a layer could clash
        custom[cls.__name__] = cls
        custom[keras.saving.get_registered_name(cls)] = cls
    try:
        with keras.saving.custom_object_scope(custom):
            new = type(model).from_config(config)
    except Exception as exc:  # noqa: BLE001 - whatever from_config raises, say which model
        raise ModelStructureError(
            f"model {model.name!r} could not be rebuilt from its config after removing channels "
            f"({type(exc).__name__}: {exc}). Fix: make its custom layers serializable "
            "(get_config/from_config), or exclude them."
        ) from exc
    _copy_weights(graph, removed, model, new)
    _check_outputs(model, new)
    if getattr(model, "compiled", False):
        new.compile_from_config(model.get_compile_config())
    return new


def _config_entries(config: dict, prefix: LayerKey) -> dict[LayerKey, dict]:
    out = {}
    for entry in config.get("layers", []):
        entry.pop("build_config", None)  # shapes before the removal; from_config rebuilds them
        cfg = entry.get("config", {})
        key = prefix + (cfg.get("name", entry.get("name")),)
        out[key] = cfg
        if "layers" in cfg:
            out.update(_config_entries(cfg, key))
    return out


def _resize_build_shape(model_config: dict | None, width: int) -> None:
    if model_config and model_config.get("build_input_shape"):
        shape = list(model_config["build_input_shape"])
        shape[-1] = width
        model_config["build_input_shape"] = shape


def _leaves(model, prefix: LayerKey = ()):
    for layer in model.layers:
        key = prefix + (layer.name,)
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Sequential"):
            yield from _leaves(layer, key)
        else:
            yield key, layer


def _copy_weights(graph: ChannelGraph, removed, old, new) -> None:
    new_layers = dict(_leaves(new))
    for key, layer in _leaves(old):
        target = new_layers.get(key)
        if target is None or len(target.weights) != len(layer.weights):
            raise ModelStructureError(
                f"the rebuilt model's layer {'/'.join(key)!r} does not match the original's. "
                "Fix: report this model; exclude the layer meanwhile."
            )
        for wi, w in enumerate(layer.weights):
            value = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
            for axis in range(value.ndim):
                bound = graph.channel_of.get((key, wi, axis))
                if bound is not None:
                    value = np.compress(graph.kept_positions(removed, *bound), value, axis=axis)
            if tuple(target.weights[wi].shape) != value.shape:
                raise ModelStructureError(
                    f"weight {w.path!r}: the rebuilt layer wants {tuple(target.weights[wi].shape)}"
                    f" but the kept channels give {value.shape}. Fix: exclude layer "
                    f"{'/'.join(key)!r} (its handler resizes it wrongly)."
                )
            target.weights[wi].assign(value)


def _check_outputs(old, new) -> None:
    before = [tuple(t.shape) for t in old.outputs]
    after = [tuple(t.shape) for t in new.outputs]
    if before != after:
        raise ModelStructureError(
            f"removing channels changed the model's output shapes {before} -> {after}. Fix: "
            "exclude the layers that make the outputs."
        )


__all__ = ["remove_channels", "check_removal", "zero_channels"]


def zero_channels(graph: ChannelGraph, removed: Mapping):
    """A copy of ``graph.model`` (same size) whose weights at the ``removed`` channels are 0 in
    every entry of their groups: those channels then contribute nothing (except through
    LayerNormalization statistics), so :func:`remove_channels` must give the same outputs."""
    from keras_legc.keras.flavour import keras3

    removed = check_removal(graph, removed)
    copy = keras3().models.clone_model(graph.model)
    copy.set_weights(graph.model.get_weights())
    layers = dict(_leaves(copy))
    for gid, channels in removed.items():
        for e in graph.groups[gid].entries:
            w = layers[e.layer].weights[e.weight_index]
            value = np.array(w.numpy())
            index = [slice(None)] * value.ndim
            index[e.axis] = e.indices(channels)
            value[tuple(index)] = 0
            w.assign(value)
    return copy
