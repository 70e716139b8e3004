"""Recurrent layers: LSTM and GRU of float models (approximate, measured).

hls4ml 1.3 computes the gates with its own sigmoid/tanh tables (1024 entries) and keeps the
cell state in its default types, so the firmware approximates Keras even with wide types:
the result and accumulator are the input's type (hls4ml's templates need input, state, result
and accumulator in one type; the output lies in (-1, 1)), the weights, recurrent weights and
biases ``float_width``-bit types covering their values. ``hepfpga verify`` measures the
difference.

QLSTM/QGRU are refused for now: hls4ml 1.3 ignores their weight quantizers (it would store
the float weights) and its Vivado/Vitis templates reject the ``quantized_tanh`` /
``hard_sigmoid`` recurrent activations; SimpleRNN has no Vivado/Vitis implementation.
"""

from __future__ import annotations

from typing import Any

from hepfpga.errors import ConversionError
from hepfpga.firmware.layers._base import (
    DeriveContext,
    LayerHandler,
    LayerPrecision,
    covering_type,
    refuse,
    register,
)
from hepfpga.quantize.fixed import FixedType


def _recurrent(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    kind = type(layer).__name__
    name = layer.name
    config = layer.get_config()
    if ctx.quantized:
        raise ConversionError(
            f"layer '{name}' ({kind}) is a float recurrent layer in a QKeras model; hepfpga "
            "converts float LSTM/GRU models (approximate types) but not QKeras recurrent ones "
            "yet"
        )
    if config.get("return_state") or config.get("go_backwards") or config.get("stateful"):
        raise ConversionError(
            f"layer '{name}' ({kind}) uses return_state/go_backwards/stateful, which hls4ml "
            "1.3 does not convert; use a plain forward layer"
        )
    if kind == "GRU" and not config.get("reset_after", True):
        raise ConversionError(
            f"layer '{name}' (GRU) has reset_after=False; hls4ml 1.3's Vitis/Vivado GRU "
            "implements reset_after=True (the Keras default) only"
        )
    kernel, recurrent, bias = layer.get_weights()
    width = ctx.width
    # hls4ml's nnet_recurrent.h feeds the input and the state (res_T) through the same dense
    # template and writes the gate sums into accum_t: input, result and accumulator must be
    # one type. The output (tanh of the state, times a gate) lies in (-1, 1).
    (x,) = inputs
    if not x.signed or x.integer < 1:
        raise ConversionError(
            f"layer '{name}' ({kind}): hls4ml 1.3 computes input, state and output in one "
            f"type, and the input type {x.to_hls()} cannot hold the output range (-1, 1); "
            "give the layer a signed input with at least one integer bit"
        )
    result = accum = x
    extra = (
        ("recurrent_weight", covering_type(recurrent, width, where=f"layer '{name}' weights")),
        ("recurrent_bias", covering_type(bias, width, where=f"layer '{name}' bias")),
    )
    return LayerPrecision(
        name,
        kind,
        result,
        accum=accum,
        weight=covering_type(kernel, width, where=f"layer '{name}' weights"),
        bias=covering_type(bias, width, where=f"layer '{name}' bias"),
        source="input type (recurrent, approximate)",
        profiled=ctx.profile(name),
        extra=extra,
    )


def _multiplications(layer: Any) -> int:
    kernel, recurrent, _ = layer.get_weights()
    steps = int(layer.input_shape[1])
    return steps * int(kernel.size + recurrent.size)


register(
    LayerHandler(
        family="recurrent",
        classes=("LSTM", "GRU"),
        derive=_recurrent,
        exactness="float models: profiled result, covering weight types; gates from hls4ml's "
        "sigmoid/tanh tables: approximate (measured)",
        emulator="C simulation (recurrent layers are not in the engine)",
        exact=lambda layer: False,
        multiplications=_multiplications,
    )
)

for _name in ("QLSTM", "QGRU"):
    refuse(
        _name,
        "QKeras recurrent layers are not converted yet: hls4ml 1.3 ignores their weight "
        "quantizers (the firmware would hold float weights) and rejects quantized_tanh / "
        "hard_sigmoid recurrent activations; use a float LSTM/GRU (approximate types)",
    )
