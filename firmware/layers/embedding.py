"""Embedding: a table lookup, indexed by the (integer) input values.

hls4ml 1.3 stores the embedding matrix as a weight of ``embeddings_t`` and writes
``res[j, :] = embeddings[data[j], :]``, so the output is the stored row itself: the result
type is the embeddings' type and nothing is rounded after the lookup.

* *QKeras model* (an Embedding among QKeras layers; QKeras has no quantized embedding): the
  embeddings are stored exactly, on their own grid (at most 24 fractional bits) or with
  float32's 24 significant bits: **bit-exact**.
* *Float model*: the embeddings in a ``float_width``-bit type covering their values:
  approximate (rounded to that type).

The inputs are indices: a model input read by an Embedding is a *count*
(``LayerHandler.counts``), typed as the exact unsigned integer ``ap_ufixed<B,B,AP_TRN,AP_SAT>``
holding ``0..input_dim-1`` (:func:`~hepfpga.firmware.layers._base.count_type`). Keras casts
the events to integers by truncation, as ``AP_TRN`` does for the non-negative values, so the
two read the same row. Events outside ``[0, input_dim)`` are refused naming the layer (the
firmware would read outside its table, Keras fails); ``hepfpga verify --random`` draws
integer indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.layers._base import (
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    covering_type,
    register,
    significant_type,
)
from hepfpga.firmware.layers.recurrent import grid_type
from hepfpga.quantize.fixed import FixedType

#: significant bits kept of embeddings that are on no short grid (float32's significand)
SIGNIFICANT_BITS = 24


def exact_embeddings_type(values: Any) -> FixedType:
    """A type holding every value of ``values`` exactly: their grid, or float32's 24
    significant bits of each."""
    exact = grid_type(values)
    return exact if exact is not None else significant_type(values, SIGNIFICANT_BITS)


def _feeding_layer(layer: Any) -> str | None:
    history = getattr(layer.input, "_keras_history", None)
    return None if history is None else str(history.layer.name)


def _check_indices(layer: Any, ctx: DeriveContext, x: FixedType) -> None:
    name = layer.name
    vocabulary = int(layer.get_config()["input_dim"])
    needed = max(vocabulary - 1, 1).bit_length()
    if x.integer - int(x.signed) < needed:
        raise ConversionError(
            f"layer '{name}' (Embedding) looks up indices 0..{vocabulary - 1}, which its input "
            f"type {x.to_hls()} cannot hold; give the input an integer range of at least "
            f"{needed} bits (feed the Embedding from a model input, which then gets an exact "
            "index type, or set the feeding layer's type with firmware.layer_types)"
        )
    _check_range(layer, ctx.ranges or {})


def _check_range(layer: Any, ranges: Mapping[str, tuple[float, float]]) -> None:
    """Refuse events outside ``[0, input_dim)`` on the layer's input (when it is profiled)."""
    name = layer.name
    vocabulary = int(layer.get_config()["input_dim"])
    feeding = _feeding_layer(layer)
    span = ranges.get(feeding) if feeding is not None else None
    if span is not None and (span[0] < 0 or span[1] > vocabulary - 1):
        raise ConversionError(
            f"layer '{name}' (Embedding) looks up indices 0..{vocabulary - 1}, but its input "
            f"'{feeding}' holds values in [{span[0]:.4g}, {span[1]:.4g}] on the events; the "
            "events must be integer indices in that range"
        )


def _embedding(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    _check_indices(layer, ctx, x)
    (values,) = layer.get_weights()
    if ctx.quantized:
        table = exact_embeddings_type(values)
        source = "embeddings stored exactly (bit-exact lookup)"
    else:
        table = covering_type(values, ctx.width, where=f"layer '{layer.name}' embeddings")
        source = "embeddings' range (lookup of rounded values)"
    return LayerPrecision(
        layer.name,
        "Embedding",
        table,
        source=source,
        profiled=ctx.profile(layer.name),
        extra=(("embeddings", table),),
    )


def _exact(layer: Any) -> bool:
    (values,) = layer.get_weights()
    table = exact_embeddings_type(values)
    return bool(np.array_equal(table.quantize(values), values))


register(
    LayerHandler(
        family="embedding",
        classes=("Embedding",),
        derive=_embedding,
        exactness="a lookup of the stored row: QKeras models store the embeddings exactly "
        "(bit-exact); float models in a float_width-bit type covering them (rounded). Inputs "
        "must be integer indices in [0, input_dim)",
        emulation=Emulation(
            "C simulation (the lookup is not in the engine)",
        ),
        qkeras=QKerasMapping(reason="no QAT counterpart yet"),
        exact=_exact,
        check_inputs=_check_range,
        # the indices: an exact unsigned integer input type, random events draw integers
        counts=lambda layer: {0: int(layer.get_config()["input_dim"]) - 1},
    )
)
