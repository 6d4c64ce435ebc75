"""The channel dependency graph of a Keras 3 model: which channels must be removed together.

Every channel of every tensor's last axis is a *slot*. A layer that makes new channels (a
convolution's filters, a Dense layer's units) creates fresh slots; a layer that passes channels
through (BatchNormalization, activations, pooling, padding, ...) hands its input's slots on; a
residual ``Add`` *couples* the slots of its inputs position by position; ``Concatenate`` joins
its inputs' slot lists; ``Flatten`` repeats each channel's slot at every spatial position.
Weights are *bound* to slots: axis 3 of a conv kernel to its output slots, axis 2 to its input
slots. Coupled slots are one channel (a union-find class); the channels that were created
together, or coupled, form one :class:`ChannelGroup`: the (layer, weight, axis, indices) that go
together, as in Torch-Pruning's DepGraph.

Per-layer behaviour lives in handlers (:mod:`keras_legc.structure.handlers`). A layer without a
handler is a *boundary*: its input channels and its output channels are never pruned, so the
rebuilt model is never wrong, only less pruned. The model's inputs and outputs are boundaries too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from keras_legc.errors import InvalidArgumentError, ModelStructureError

LayerKey = tuple[str, ...]  # layer names from the top model down to the layer (nested models)


@dataclass
class Call:
    """One call of a layer (or Keras op) in the graph, as a handler sees it."""

    layer: object
    key: LayerKey
    inputs: list[np.ndarray]  # slot ids of each input tensor's last axis
    input_shapes: list[tuple]
    output_shapes: list[tuple]
    args: object = None  # the node's arguments (ops: constants among the tensors)

    @property
    def name(self) -> str:
        return "/".join(self.key)

    @property
    def kind(self) -> str:
        return type(self.layer).__name__


@dataclass
class Entry:
    """One weight axis of a group: ``positions`` along ``axis`` of ``layer``'s weight number
    ``weight_index``, and for each position the group channel it belongs to."""

    layer: LayerKey
    weight_index: int
    weight: str
    axis: int
    positions: np.ndarray
    channels: np.ndarray

    def indices(self, channels) -> np.ndarray:
        """The positions along ``axis`` that belong to the given group channels."""
        return self.positions[np.isin(self.channels, np.asarray(channels, dtype=np.int64))]


@dataclass
class ChannelGroup:
    """Channels that must be removed together: removing channel ``i`` of the group removes
    ``entry.indices([i])`` along ``entry.axis`` of every entry's weight."""

    id: int
    size: int
    entries: list[Entry]
    layers: list[str]  # the layers whose output channels these are (the group's producers)
    blocked: str | None = None  # why the group cannot be pruned; None = prunable

    @property
    def prunable(self) -> bool:
        return self.blocked is None and self.size > 1

    def __str__(self) -> str:
        state = "prunable" if self.blocked is None else f"not prunable: {self.blocked}"
        lines = [f"ChannelGroup {self.id}: {self.size} channels of {', '.join(self.layers)} "
                 f"({state})"]  # fmt: skip
        for e in self.entries:
            per = len(e.positions) // max(self.size, 1)
            span = f"{len(e.positions)} indices" + (f" ({per} per channel)" if per > 1 else "")
            lines.append(f"  {'/'.join(e.layer)}.{e.weight} axis {e.axis}: {span}")
        return "\n".join(lines)

    __repr__ = __str__


@dataclass
class ChannelGraph:
    """The groups of a model plus what the rebuild and the MAC counter need."""

    model: object
    groups: list[ChannelGroup]
    layers: dict[LayerKey, object]
    handlers: dict[LayerKey, object]
    resize_slots: dict[LayerKey, np.ndarray]  # output (or input-layer) slots whose width is config
    mac_terms: list[tuple[LayerKey, int, int]]  # (layer, weight index, MACs per weight element)
    channel_of: dict[tuple[LayerKey, int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )  # (layer, weight, axis) -> (group id per position, group channel per position)
    _slot_group: np.ndarray | None = None
    _slot_channel: np.ndarray | None = None

    def group(self, gid: int) -> ChannelGroup:
        return self.groups[gid]

    # ---- what a removal plan does to sizes --------------------------------------------------

    @cached_property
    def offsets(self) -> np.ndarray:
        """Where each group's channels start in one flat array over all groups."""
        return np.concatenate([[0], np.cumsum([g.size for g in self.groups])]).astype(np.int64)

    def removed_flat(self, removed: dict[int, np.ndarray]) -> np.ndarray:
        """One boolean per channel of every group: removed under ``removed``."""
        offsets = self.offsets
        flat = np.zeros(offsets[-1], dtype=bool)
        for gid, ch in removed.items():
            flat[offsets[gid] + np.asarray(ch, dtype=np.int64)] = True
        return flat

    def kept_positions(self, removed, gids: np.ndarray, chans: np.ndarray) -> np.ndarray:
        """A boolean per position: kept under ``removed`` (group id -> channel indices, or the
        array of :meth:`removed_flat`)."""
        flat = removed if isinstance(removed, np.ndarray) else self.removed_flat(removed)
        return ~flat[self.offsets[gids] + chans]

    def new_shapes(self, removed) -> dict[tuple[LayerKey, int], list]:
        """The shape of every bound weight after removing ``removed``."""
        flat = removed if isinstance(removed, np.ndarray) else self.removed_flat(removed)
        shapes: dict[tuple[LayerKey, int], list] = {}
        for (key, wi, axis), (gids, chans) in self.channel_of.items():
            shape = shapes.setdefault((key, wi), list(self.layers[key].weights[wi].shape))
            shape[axis] = int(self.kept_positions(flat, gids, chans).sum())
        return shapes

    def count_params(self, removed=None) -> int:
        """Parameters of the model after removing ``removed`` (default: nothing)."""
        shapes = self.new_shapes({} if removed is None else removed)
        total = 0
        for key, layer in self.layers.items():
            for wi, w in enumerate(getattr(layer, "weights", ())):
                total += int(np.prod(shapes.get((key, wi), w.shape)))
        return total

    def count_macs(self, removed=None) -> int:
        """Multiply-accumulates per sample after removing ``removed`` (default: nothing)."""
        shapes = self.new_shapes({} if removed is None else removed)
        total = 0
        for key, wi, per_element in self.mac_terms:
            shape = shapes.get((key, wi), self.layers[key].weights[wi].shape)
            total += int(np.prod(shape)) * per_element
        return total

    def new_width(self, key: LayerKey, removed: dict[int, np.ndarray]) -> int:
        slots = self.resize_slots[key]
        gids, chans = self._slot_group[slots], self._slot_channel[slots]
        return int(self.kept_positions(removed, gids, chans).sum())


class Builder:
    """Builds the slot graph; the handlers call its methods (``fresh``, ``bind``, ``couple``,
    ``block``, ``boundary``)."""

    def __init__(self):
        self.parent: list[int] = []
        self.slot_dim: list[int] = []
        self.dim_parent: list[int] = []
        self.blocked: dict[int, str] = {}  # slot -> reason
        self.owner: list[str] = []  # per dim: the layer that created it
        self.fresh_cache: dict[tuple[LayerKey, str], np.ndarray] = {}
        self.bindings: dict[tuple[LayerKey, int, int], np.ndarray] = {}
        self.resize_slots: dict[LayerKey, np.ndarray] = {}
        self.mac_terms: dict[tuple[LayerKey, int], int] = {}

    # ---- union-find ---------------------------------------------------------------------------

    @staticmethod
    def _find(parent: list[int], i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(self.parent, a), self._find(self.parent, b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
        da = self._find(self.dim_parent, self.slot_dim[a])
        db = self._find(self.dim_parent, self.slot_dim[b])
        if da != db:
            self.dim_parent[max(da, db)] = min(da, db)

    # ---- what handlers call -------------------------------------------------------------------

    def fresh(self, call: Call, n: int, tag: str = "out") -> np.ndarray:
        """``n`` new channels made by this layer (the same ones on every call of a shared layer)."""
        cache_key = (call.key, tag)
        if cache_key in self.fresh_cache:
            slots = self.fresh_cache[cache_key]
            if len(slots) != n:
                raise ModelStructureError(
                    f"layer {call.name!r} is called with different channel counts ({len(slots)} "
                    f"and {n}). Fix: exclude it, or register a handler that knows it."
                )
            return slots
        dim = len(self.dim_parent)
        self.dim_parent.append(dim)
        self.owner.append(call.name)
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.slot_dim.extend([dim] * n)
        slots = np.arange(start, start + n, dtype=np.int64)
        self.fresh_cache[cache_key] = slots
        return slots

    def couple(self, a: np.ndarray, b: np.ndarray, call: Call) -> None:
        """Channel ``i`` of ``a`` and channel ``i`` of ``b`` are one channel."""
        if len(a) != len(b):
            raise ModelStructureError(
                f"layer {call.name!r} ({call.kind}) joins tensors of {len(a)} and {len(b)} "
                "channels. Fix: exclude it, or register a handler for it."
            )
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            self._union(x, y)

    def bind(self, call: Call, weight, axis: int, slots: np.ndarray) -> None:
        """Positions along ``axis`` of ``weight`` (a variable of the layer, or None: no-op) are
        the channels ``slots``; a shared layer's calls couple their slots."""
        if weight is None:
            return
        wi = _weight_index(call.layer, weight)
        axis = axis % len(weight.shape)
        if weight.shape[axis] != len(slots):
            raise ModelStructureError(
                f"weight {weight.path!r} of layer {call.name!r} has {weight.shape[axis]} "
                f"entries on axis {axis}, but {len(slots)} channels reach it. Fix: exclude the "
                "layer, or register a handler that knows its weights."
            )
        bkey = (call.key, wi, axis)
        if bkey in self.bindings:
            self.couple(self.bindings[bkey], slots, call)
        else:
            self.bindings[bkey] = np.asarray(slots, dtype=np.int64)

    def macs(self, call: Call, weight, per_element: int) -> None:
        """``weight``'s elements each cost ``per_element`` multiply-accumulates per sample."""
        if weight is None:
            return
        k = (call.key, _weight_index(call.layer, weight))
        self.mac_terms[k] = self.mac_terms.get(k, 0) + int(per_element)

    def resize_by(self, call: Call, slots: np.ndarray) -> None:
        """The layer's config width (filters, units, a shape's last entry) is ``len(slots)``."""
        self.resize_slots.setdefault(call.key, slots)

    def block(self, slots: Iterable[int], reason: str) -> None:
        for s in np.asarray(slots, dtype=np.int64).tolist():
            self.blocked.setdefault(s, reason)

    def boundary(self, call: Call, reason: str | None = None) -> list[np.ndarray]:
        """Neither the inputs' nor the outputs' channels of this layer are pruned."""
        why = reason or f"reaches {call.kind} layer {call.name!r}, which keeps its channels"
        for slots in call.inputs:
            self.block(slots, why)
        outs = []
        for i, shape in enumerate(call.output_shapes):
            n = _last_dim(shape)
            slots = self.fresh(call, n, tag=f"boundary{i}")
            self.block(slots, reason or f"made by {call.kind} layer {call.name!r} (a boundary)")
            outs.append(slots)
        return outs

    # ---- the result ---------------------------------------------------------------------------

    def finish(self, model, layers, handlers) -> ChannelGraph:
        n = len(self.parent)
        root = np.array([self._find(self.parent, i) for i in range(n)], dtype=np.int64)
        dim = np.array(
            [self._find(self.dim_parent, self.slot_dim[i]) for i in range(n)], dtype=np.int64
        )
        dims = sorted(set(dim.tolist()))
        group_of_dim = {d: g for g, d in enumerate(dims)}
        slot_group = np.array([group_of_dim[d] for d in dim.tolist()], dtype=np.int64)
        slot_channel = np.zeros(n, dtype=np.int64)
        blocked_roots = {int(root[s]): why for s, why in self.blocked.items()}
        groups = []
        for g, d in enumerate(dims):
            members = np.flatnonzero(dim == d)
            roots = np.unique(root[members])  # sorted: creation order
            slot_channel[members] = np.searchsorted(roots, root[members])
            reasons = [blocked_roots[r] for r in roots.tolist() if r in blocked_roots]
            owners = sorted({self.owner[self.slot_dim[int(m)]] for m in members.tolist()})
            groups.append(ChannelGroup(g, len(roots), [], owners, reasons[0] if reasons else None))
        channel_of = {}
        for (key, wi, axis), slots in self.bindings.items():
            gids, chans = slot_group[slots], slot_channel[slots]
            channel_of[(key, wi, axis)] = (gids, chans)
            weight = layers[key].weights[wi]
            for g in np.unique(gids).tolist():
                at = np.flatnonzero(gids == g)
                groups[g].entries.append(Entry(key, wi, _weight_name(weight), axis, at, chans[at]))
        return ChannelGraph(
            model=model,
            groups=groups,
            layers=layers,
            handlers=handlers,
            resize_slots=self.resize_slots,
            mac_terms=[(k, wi, m) for (k, wi), m in self.mac_terms.items()],
            channel_of=channel_of,
            _slot_group=slot_group,
            _slot_channel=slot_channel,
        )


def _weight_index(layer, weight) -> int:
    for i, w in enumerate(layer.weights):
        if w is weight:
            return i
    raise ModelStructureError(f"{weight!r} is not a weight of layer {layer.name!r}.")


def _weight_name(weight) -> str:
    return str(getattr(weight, "name", "") or weight.path.rsplit("/", 1)[-1])


def _last_dim(shape) -> int:
    if not shape or shape[-1] is None:
        return 0
    return int(shape[-1])


# ---- walking the model ---------------------------------------------------------------------------


def build_graph(model, *, exclude: Iterable[str] = ()) -> ChannelGraph:
    """The :class:`ChannelGraph` of a built Keras 3 Functional or Sequential model.

    Layers named in ``exclude`` (a name, or a ``outer/inner`` path into nested models) keep
    their output channels.
    """
    from keras_legc.structure import handlers as h

    keras = _keras3_of(model)
    builder = Builder()
    layers: dict[LayerKey, object] = {}
    handlers: dict[LayerKey, object] = {}
    exclude = set(exclude)
    seen_names: set[str] = set()
    inputs = _model_io(model, "inputs")
    env: dict[int, np.ndarray] = {}
    top = Call(model, ("input",), [], [], [tuple(t.shape) for t in inputs])
    for i, t in enumerate(inputs):
        slots = builder.fresh(top, _last_dim(t.shape), tag=f"input{i}")
        builder.block(slots, "the model's input channels")
        env[id(t)] = slots

    def run_model(m, prefix: LayerKey, in_slots: list[np.ndarray]) -> list[np.ndarray]:
        m_inputs, m_outputs = _model_io(m, "inputs"), _model_io(m, "outputs")
        if len(m_inputs) != len(in_slots):
            raise ModelStructureError(
                f"nested model {'/'.join(prefix)!r} is called with {len(in_slots)} inputs but "
                f"has {len(m_inputs)}. Fix: call it on one tensor per input."
            )
        for t, slots in zip(m_inputs, in_slots, strict=True):
            env[id(t)] = slots
            if prefix:  # a nested model's input layer carries the width of its input
                input_layer = t._keras_history[0]
                builder.resize_slots[prefix + (input_layer.name,)] = slots
                layers.setdefault(prefix + (input_layer.name,), input_layer)
        for node in _nodes_in_order(m_inputs, m_outputs):
            layer = node.operation
            key = prefix + (layer.name,)
            seen_names.add(layer.name)
            seen_names.add("/".join(key))
            in_tensors = list(node.input_tensors)
            call_in = [env[id(t)] for t in in_tensors]
            if _is_plain_model(layer, keras):
                outs = run_model(layer, key, call_in)
            else:
                layers.setdefault(key, layer)
                call = Call(
                    layer, key, call_in,
                    [tuple(t.shape) for t in in_tensors],
                    [tuple(t.shape) for t in node.outputs],
                    node.arguments,
                )  # fmt: skip
                handler = h.handler_for(layer)
                handlers.setdefault(key, handler)
                if handler is None:
                    outs = builder.boundary(call)
                else:
                    outs = handler.propagate(builder, call)
            if layer.name in exclude or "/".join(key) in exclude:
                for slots in outs:
                    builder.block(slots, f"output of excluded layer {'/'.join(key)!r}")
            for t, slots in zip(node.outputs, outs, strict=True):
                env[id(t)] = slots
        return [env[id(t)] for t in m_outputs]

    out_slots = run_model(model, (), [env[id(t)] for t in inputs])
    for slots in out_slots:
        builder.block(slots, "the model's output channels")
    unknown = sorted(exclude - seen_names)
    if unknown:
        raise InvalidArgumentError(
            f"exclude names layers that are not in model {model.name!r}: {unknown}. Fix: use "
            "layer names from model.summary() (nested: 'outer/inner')."
        )
    return builder.finish(model, layers, handlers)


def _keras3_of(model):
    from keras_legc.keras.flavour import keras3, model_flavour

    try:
        flavour = model_flavour(model)
    except Exception:  # noqa: BLE001 - anything that is not a model is refused below
        flavour = None
    if flavour != "keras3":
        raise ModelStructureError(
            f"channel pruning needs a Keras 3 model (keras.Model), got {type(model).__name__}"
            + (" from tf_keras (Keras 2)" if flavour == "keras2" else "")
            + ". Fix: build the model with `import keras` (Keras 3)."
        )
    keras = keras3()
    if not _is_plain_model(model, keras):
        raise ModelStructureError(
            f"model {model.name!r} is a subclassed {type(model).__name__}: its graph is Python "
            "code, which the channel graph cannot read. Fix: build it as a Functional or "
            "Sequential model (keras.Model(inputs, outputs))."
        )
    return keras


def _is_plain_model(layer, keras) -> bool:
    from keras.src.models.functional import Functional

    return type(layer) is Functional or type(layer) is keras.Sequential


def _model_io(model, which: str) -> list:
    try:
        tensors = getattr(model, which)
    except (AttributeError, ValueError):
        tensors = None
    if not tensors:
        raise ModelStructureError(
            f"model {model.name!r} has no symbolic {which}: it was never built on an Input. Fix: "
            "start it with keras.Input(shape) (or call model.build) before pruning channels."
        )
    return list(tensors)


def _nodes_in_order(inputs, outputs) -> list:
    """The graph's nodes from ``inputs`` to ``outputs``, each after the nodes it reads from."""
    stop = {id(t) for t in inputs}
    order, done, on_stack = [], set(), set()
    stack = [(t, False) for t in reversed(outputs)]
    while stack:
        tensor, expanded = stack.pop()
        if id(tensor) in stop:
            continue
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            raise ModelStructureError(
                f"tensor {tensor!r} has no layer that made it. Fix: build the model from "
                "keras.Input through layers only."
            )
        node = history.operation._inbound_nodes[history.node_index]
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        if id(node) in on_stack:
            continue
        on_stack.add(id(node))
        stack.append((tensor, True))
        for t in reversed(list(node.input_tensors)):
            if id(t) not in stop:
                stack.append((t, False))
    return order


__all__ = ["ChannelGraph", "ChannelGroup", "Entry", "Call", "Builder", "build_graph"]
