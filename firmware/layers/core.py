"""Layers that only move values: input, dropout, flatten, reshape, permute, padding, cropping,
up-sampling. Their result type is their input type, so they are exact in every model.

Zero padding inserts zeros (representable in every type); up-sampling repeats values
(nearest neighbour; hls4ml has no bilinear up-sampling and refuses it); cropping and permute
select and reorder. hls4ml removes Dropout, and Flatten/Reshape are free in io_parallel.
"""

from __future__ import annotations

from typing import Any

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_engine.steps import MoveStep, reshape_step
from hepfpga.firmware.layers._base import (
    BackendSupport,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    register,
)
from hepfpga.firmware.layers.tracers import trace_flatten, trace_identity, trace_reshape
from hepfpga.quantize.fixed import FixedType


def _input(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    # the input layer's type is decided by hepfpga.firmware.precision (input quantizer, option
    # or profile) and handed in as the only "input"
    (result,) = inputs
    return LayerPrecision(layer.name, type(layer).__name__, result, source="input")


register(
    LayerHandler(
        family="input",
        classes=("InputLayer",),
        derive=_input,
        exactness="the input type: from the QActivation(quantized_bits) after the input, from "
        "firmware.input_type, or (float models) profiled; QKeras models without an input "
        "quantizer get the documented default (see docs/firmware.md)",
        emulation=Emulation(
            "input conversion",
        ),
        qkeras=QKerasMapping(reason="quantize_model adds the input quantizer itself"),
    )
)


def _same_type(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    kind = type(layer).__name__
    if kind == "UpSampling2D" and layer.get_config().get("interpolation", "nearest") != "nearest":
        raise ConversionError(
            f"layer '{layer.name}' (UpSampling2D) uses interpolation "
            f"'{layer.get_config()['interpolation']}'; hls4ml implements 'nearest' only"
        )
    return LayerPrecision(layer.name, kind, x, source="input type (exact)")


register(
    LayerHandler(
        family="reshaping",
        classes=(
            "Dropout",
            "Flatten",
            "Reshape",
            "Permute",
            "ZeroPadding1D",
            "ZeroPadding2D",
            "Cropping1D",
            "Cropping2D",
            "UpSampling1D",
            "UpSampling2D",
        ),
        derive=_same_type,
        exactness="moves values only (padding inserts exact zeros, up-sampling repeats): the "
        "input type, exact",
        emulation=Emulation(
            "Reshape/Flatten in io_parallel; the others fall back to the C simulation",
            steps={
                "Reshape": reshape_step,
                "ZeroPadding1D": MoveStep,
                "ZeroPadding2D": MoveStep,
                "Cropping1D": MoveStep,
                "Cropping2D": MoveStep,
                "Resize": MoveStep,
            },
            stream_steps={"Repack": reshape_step},
        ),
        qkeras=QKerasMapping(
            ("Dropout", "Flatten", "Reshape", "UpSampling1D", "UpSampling2D", "Cropping1D"),
            "Permute, padding and 2D cropping have no QAT counterpart yet",
        ),
        rtl={"Dropout": trace_identity, "Flatten": trace_flatten, "Reshape": trace_reshape},
        # hls4ml 1.3 has no Quartus or Catapult template of Cropping1D/2D: it writes no call,
        # and the next layer read an unwritten array (a Quartus QConv2D model: every event
        # wrong)
        backends=BackendSupport(
            ("Vitis", "Vivado"),
            "crop the events before the model",
            applies=lambda layer: type(layer).__name__ in ("Cropping1D", "Cropping2D"),
        ),
    )
)
