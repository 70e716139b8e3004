"""Depthwise and separable convolutions (Keras and QKeras).

*What hls4ml 1.3 computes.* ``DepthwiseConv1D/2D`` (``QDepthwiseConv2D``) convolves each
channel with its own kernel: ``out[c] = (res_T)((accum_t) b[c] + sum_k (accum_t)(x[k, c] *
w[k, c]))``, a sum over the window only. ``SeparableConv1D/2D`` (``QSeparableConv1D/2D``) is
split by hls4ml's ``separable_to_depthwise_and_conv`` pass into ``<name>_depthwise`` (the
depthwise kernel, no bias) followed by ``<name>_pointwise`` (a 1x1 convolution holding the
pointwise kernel and the bias); the pointwise output is the layer's output (traced and
compared under the Keras layer's name). Only a depth multiplier of 1 exists in hls4ml 1.3's
C++ (others abort the C simulation on an ``assert``), dilation is not implemented, the
io_parallel depthwise kernel has no Resource strategy and the io_stream 2D one needs a square
kernel: each is refused here, naming the layer.

*QKeras*: kernels in the ``ap_fixed`` twins of ``depthwise_quantizer`` /
``pointwise_quantizer``, the bias in that of ``bias_quantizer``. The depthwise phase's
accumulator and result are its exact sum, ``input + depthwise + ceil(log2(window))`` bits; the
pointwise phase's are the exact sum of that over the channels, plus the bias, as for any
convolution (:mod:`~hepfpga.firmware.layers.dense`). QKeras computes ``depthwise`` then
``pointwise`` on the quantized kernels in float32 with no rounding in between, so the output
is **bit-exact** while the float32 sums are (as for QConv).

*Float*: kernels and bias get ``float_width``-bit types covering their values; the depthwise
phase's result (not a Keras layer output, so never profiled) gets ``float_width`` bits covering
``max|input type| * max_c sum_k |w[k, c]|``, a bound it cannot exceed; the layer's result is
the profiled range (approximate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_stream import depthwise_1d_step, depthwise_2d_step
from hepfpga.firmware.layers._base import (
    BackendSupport,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    covering_type,
    register,
    sum_type,
)
from hepfpga.firmware.layers.dense import weight_types
from hepfpga.firmware.options import IOType, Strategy
from hepfpga.quantize.fixed import FixedType

__all__ = ["DEPTHWISE_CLASSES", "SEPARABLE_CLASSES"]

DEPTHWISE_CLASSES = ("DepthwiseConv1D", "DepthwiseConv2D", "QDepthwiseConv2D")
SEPARABLE_CLASSES = ("SeparableConv1D", "SeparableConv2D", "QSeparableConv1D", "QSeparableConv2D")


def _check_supported(layer: Any, ctx: DeriveContext) -> None:
    """Refuse what hls4ml 1.3's depthwise C++ does not implement (it would abort or differ)."""
    config = layer.get_config()
    kind = type(layer).__name__
    where = f"layer '{layer.name}' ({kind})"
    if int(config.get("depth_multiplier", 1)) != 1:
        raise ConversionError(
            f"{where}: depth_multiplier={config['depth_multiplier']}; hls4ml 1.3 implements a "
            "depth multiplier of 1 only (its C++ aborts otherwise). Use depth_multiplier=1, "
            "followed by a 1x1 Conv for more channels"
        )
    if any(int(d) != 1 for d in np.ravel(config.get("dilation_rate", 1))):
        raise ConversionError(
            f"{where}: dilation_rate={config['dilation_rate']}; hls4ml 1.3 has no dilated "
            "depthwise convolution. Use dilation_rate=1"
        )
    if config.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"{where}: data_format='channels_first'; use channels_last")
    stream = ctx.options.io_type is IOType.STREAM
    if not stream and ctx.options.strategy is Strategy.RESOURCE:
        raise ConversionError(
            f"{where}: hls4ml 1.3's io_parallel depthwise convolution has no Resource strategy "
            "(its C++ aborts); use --strategy latency, or --io-type io_stream"
        )
    kernel = tuple(int(k) for k in np.ravel(config["kernel_size"]))
    if stream and len(kernel) == 2 and kernel[0] != kernel[1]:
        raise ConversionError(
            f"{where}: kernel_size={kernel}; hls4ml 1.3's io_stream depthwise convolution needs "
            "a square kernel. Use a square kernel, or --io-type io_parallel"
        )


def _window(kernel: np.ndarray) -> int:
    """Products summed per output of a depthwise kernel ``(*window, channels, 1)``."""
    return int(np.prod(kernel.shape[:-2]))


def _float_kernel(values: Any, ctx: DeriveContext, name: str, what: str) -> FixedType:
    return covering_type(values, ctx.width, where=f"layer '{name}' {what}")


def _depthwise(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    _check_supported(layer, ctx)
    kind, name = type(layer).__name__, layer.name
    values = layer.get_weights()
    n = _window(values[0])
    if kind.startswith("Q"):
        weight, bias = weight_types(layer, ("depthwise_quantizer", "bias_quantizer"))
        result = sum_type(x, weight, bias, n)
        return LayerPrecision(
            name, kind, result, accum=result, weight=weight, bias=bias, source="exact sum"
        )
    _refuse_float_in_qkeras(layer, ctx)
    weight = _float_kernel(values[0], ctx, name, "depthwise kernel")
    bias = _float_kernel(values[1], ctx, name, "bias") if len(values) > 1 else None
    return LayerPrecision(
        name,
        kind,
        ctx.profiled(name),
        accum=sum_type(x, weight, bias, n),
        weight=weight,
        bias=bias,
        source="profiled",
        profiled=ctx.profile(name),
    )


def _refuse_float_in_qkeras(layer: Any, ctx: DeriveContext) -> None:
    if ctx.quantized:
        kind = type(layer).__name__
        twin = {
            "DepthwiseConv2D": "QDepthwiseConv2D",
            "SeparableConv1D": "QSeparableConv1D",
            "SeparableConv2D": "QSeparableConv2D",
        }.get(kind)
        instead = f"use {twin} with quantizers" if twin else "QKeras 0.9 has no quantized twin"
        raise ConversionError(
            f"layer '{layer.name}' ({kind}) is a float layer in a QKeras model; {instead} so "
            "its firmware is exact (or give no QKeras layer at all: a float model gets "
            "profiled types)"
        )


def _separable(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    _check_supported(layer, ctx)
    kind, name = type(layer).__name__, layer.name
    values = layer.get_weights()
    depthwise_kernel, pointwise_kernel = values[0], values[1]
    n_window = _window(depthwise_kernel)
    n_channels = int(depthwise_kernel.shape[-2])
    if kind.startswith("Q"):
        depthwise, _ = weight_types(layer, ("depthwise_quantizer", "bias_quantizer"))
        pointwise, bias = weight_types(layer, ("pointwise_quantizer", "bias_quantizer"))
        middle = sum_type(x, depthwise, None, n_window)
        middle_accum = middle
        source = "exact sums"
    else:
        _refuse_float_in_qkeras(layer, ctx)
        depthwise = _float_kernel(depthwise_kernel, ctx, name, "depthwise kernel")
        pointwise = _float_kernel(pointwise_kernel, ctx, name, "pointwise kernel")
        bias = _float_kernel(values[2], ctx, name, "bias") if len(values) > 2 else None
        middle_accum = sum_type(x, depthwise, None, n_window)
        reach = max(abs(x.min_value), abs(x.max_value))
        per_channel = np.abs(depthwise_kernel).reshape(-1, n_channels).sum(axis=0)
        middle = covering_type(
            [reach * float(per_channel.max())], ctx.width, where=f"layer '{name}' depthwise"
        )
        source = "profiled"
    accum = sum_type(middle, pointwise, bias, n_channels)
    result = accum if kind.startswith("Q") else ctx.profiled(name)
    return LayerPrecision(
        name,
        kind,
        result,
        accum=accum,
        bias=bias,
        source=source,
        profiled=None if kind.startswith("Q") else ctx.profile(name),
        # hls4ml's split gives '<name>_depthwise' these as weight/accum/result and
        # '<name>_pointwise' the pointwise kernel as its weight
        extra=(
            ("depthwise", depthwise),
            ("depthwise_accum", middle_accum),
            ("depthwise_result", middle),
            ("pointwise", pointwise),
        ),
    )


def _multiplications(layer: Any) -> int:
    """Products per event: every kernel's size times the output positions."""
    positions = int(np.prod(layer.output_shape[1:-1]))
    return sum(int(w.size) for w in layer.get_weights()[:2] if w.ndim > 1) * positions


def _is_1d(layer: Any) -> bool:
    return type(layer).__name__.endswith("1D")


#: hls4ml 1.3 has no Quartus template of depthwise or separable convolutions (it writes no
#: call: the next layer reads an unwritten array), and Catapult's io_parallel one-dimensional
#: ones include a header it does not ship (nnet_sepconv1d.h: only the io_stream one exists).
#: Catapult's io_parallel depthwise_conv_2d_cl ignores padding and strides as written:
#: corrected by hepfpga (catapult_templates)
_BACKENDS = (
    BackendSupport(
        ("Vitis", "Vivado", "Catapult"),
        "a QConv2D (every backend)",
        applies=lambda layer: not _is_1d(layer),
    ),
    BackendSupport(
        ("Vitis", "Vivado", "Catapult"),
        "--io-type io_stream with Catapult, or a QConv1D (every backend)",
        applies=_is_1d,
        io_types={"Catapult": ("io_stream",)},
    ),
)


register(
    LayerHandler(
        family="depthwise conv",
        classes=DEPTHWISE_CLASSES,
        derive=_depthwise,
        exactness="QKeras: depthwise kernel and bias in their quantizers' types, exact sums "
        "over the window: bit-exact. Float: profiled result, approximate. depth_multiplier 1 "
        "only (hls4ml 1.3)",
        emulation=Emulation(
            "the per-channel kernel spread over all channels, run as a convolution "
            "(emulate_stream; io_parallel and io_stream)",
            steps={"DepthwiseConv1D": depthwise_1d_step, "DepthwiseConv2D": depthwise_2d_step},
        ),
        qkeras=QKerasMapping(reason="no QAT counterpart yet"),
        multiplications=_multiplications,
        backends=_BACKENDS,
    )
)
register(
    LayerHandler(
        family="separable conv",
        classes=SEPARABLE_CLASSES,
        derive=_separable,
        exactness="hls4ml splits it into '<name>_depthwise' and '<name>_pointwise' (1x1 conv). "
        "QKeras: both phases exact sums: bit-exact. Float: depthwise phase bounded from the "
        "input type, result profiled: approximate",
        emulation=Emulation(
            "depthwise step then pointwise (1x1 convolution) step (emulate_stream)",
        ),
        qkeras=QKerasMapping(reason="no QAT counterpart yet"),
        multiplications=_multiplications,
        backends=_BACKENDS,
    )
)
