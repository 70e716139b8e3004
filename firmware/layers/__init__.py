"""Layer handlers: one module per layer family, one registry.

Each module registers a :class:`~hepfpga.firmware.layers._base.LayerHandler` per family
(derive types, say how exact the firmware is, name the emulator step); adding a layer is one
handler plus its test. :func:`handler_for` is the lookup every stage uses, and
:mod:`~hepfpga.firmware.layers.graph` turns any Keras model into the functional graph that
is walked.
"""

from hepfpga.firmware.layers import (
    activation,
    batchnorm,
    core,
    dense,
    depthwise,
    embedding,
    garnet,
    merge,
    normalization,
    pooling,
    recurrent,
    refused,
    simple_rnn,
    wrappers,
)
from hepfpga.firmware.layers._base import (
    MAX_INTEGER_BITS,
    MAX_WIDTH,
    DeriveContext,
    LayerHandler,
    LayerPrecision,
    covering_type,
    handler_for,
    refused_classes,
    register,
    registered_handlers,
)
from hepfpga.firmware.layers.graph import GraphNode, model_graph, ready_model

__all__ = [
    "MAX_INTEGER_BITS",
    "MAX_WIDTH",
    "DeriveContext",
    "GraphNode",
    "LayerHandler",
    "LayerPrecision",
    "activation",
    "batchnorm",
    "core",
    "covering_type",
    "dense",
    "depthwise",
    "embedding",
    "garnet",
    "handler_for",
    "merge",
    "model_graph",
    "normalization",
    "pooling",
    "ready_model",
    "recurrent",
    "refused",
    "refused_classes",
    "register",
    "registered_handlers",
    "simple_rnn",
    "wrappers",
]
