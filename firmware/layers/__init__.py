"""Layer handlers: one module per layer family, one registry.

Each module registers a :class:`~hepfpga.firmware.layers._base.LayerHandler` per family
(derive types, say how exact the firmware is, name its emulator steps and its QKeras
mapping); the emulator's dispatch tables are derived from the registered handlers. Adding a
layer family is one module plus its test (``tests/firmware/test_layer_family.py`` registers
one from the test module). :func:`handler_for` is the lookup every stage uses, and
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
    BackendSupport,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    Rewrite,
    covering_type,
    handler_for,
    refused_classes,
    register,
    registered_handlers,
    unregister,
)
from hepfpga.firmware.layers.graph import GraphNode, model_graph, ready_model

__all__ = [
    "MAX_INTEGER_BITS",
    "MAX_WIDTH",
    "BackendSupport",
    "DeriveContext",
    "Emulation",
    "GraphNode",
    "LayerHandler",
    "LayerPrecision",
    "QKerasMapping",
    "Rewrite",
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
    "unregister",
    "wrappers",
]
