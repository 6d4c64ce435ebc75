"""Structured (channel) pruning of Keras 3 models through their dependency graph.

``build_graph(model)`` finds the channel groups (what must be removed together, through
BatchNormalization, residual merges, Concatenate, depthwise/separable convolutions, Flatten);
``prune_channels`` scores them and rebuilds a smaller plain model (``prune_channels_to_latency``:
to a latency measured on LiteRT); ``count_macs`` counts multiply-accumulates. Layer behaviour is in per-type handlers (``register_handler``).
See docs/channels.md.
"""

from keras_legc.structure.graph import ChannelGraph, ChannelGroup, Entry, build_graph
from keras_legc.structure.handlers import Handler, PassThrough, register_handler, unregister_handler
from keras_legc.structure.importance import UnitLegc, random_importance, register_channel_scorer
from keras_legc.structure.latency import litert_p50_ms, prune_channels_to_latency
from keras_legc.structure.prune import (
    channel_groups,
    count_macs,
    prune_channels,
    prune_iteratively,
)
from keras_legc.structure.rebuild import remove_channels, zero_channels

__all__ = [
    "ChannelGraph",
    "ChannelGroup",
    "Entry",
    "build_graph",
    "Handler",
    "PassThrough",
    "register_handler",
    "unregister_handler",
    "random_importance",
    "UnitLegc",
    "register_channel_scorer",
    "channel_groups",
    "count_macs",
    "prune_channels",
    "prune_iteratively",
    "prune_channels_to_latency",
    "litert_p50_ms",
    "remove_channels",
    "zero_channels",
]
