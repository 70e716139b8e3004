"""Dense and convolution layers (Keras and QKeras), and their depthwise/separable variants.

*QKeras*: weights and biases are stored in the ``ap_fixed`` twin of their quantizers
(:func:`hepfpga.quantize.fixed.from_quantizer`; ``binary``/``ternary`` as ``ap_int<2>``
holding -1, 0, +1). Accumulator and result are wide enough that no sum is rounded or
overflows (hls4ml's own rule): ``input + weight + ceil(log2(n_ops))`` bits, one more for the
bias and as many fractional bits as the finer of product and bias; ``n_ops`` is the fan-in
(``n_in``, ``kernel * channels``). So the layer's output (the pre-activation output when the
layer had a built-in activation, which :mod:`~hepfpga.firmware.layers.graph` splits off) is
exact. ``padding='same'`` adds zeros, which changes no sum.

*Float*: weights and biases get ``float_width``-bit types covering their values, the
accumulator the exact sum of those, the result the profiled range (approximate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_engine.steps import conv_step, dense_step
from hepfpga.firmware.emulate_stream import pointwise_1d_step, pointwise_2d_step
from hepfpga.firmware.layers._base import (
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    covering_type,
    register,
    sum_type,
)
from hepfpga.firmware.layers.tracers import trace_conv, trace_dense
from hepfpga.quantize.fixed import FixedType, from_quantizer


def weight_types(
    layer: Any, keys: tuple[str, str] = ("kernel_quantizer", "bias_quantizer")
) -> tuple[FixedType, FixedType | None]:
    """The types of a QKeras layer's weights and bias, from its quantizers."""
    config = layer.get_config()
    types: list[FixedType | None] = []
    for key in keys:
        quantizer = config.get(key)
        if quantizer is None:
            if key == keys[1] and not config.get("use_bias", True):
                types.append(None)
                continue
            raise ConversionError(
                f"layer '{layer.name}' has no {key}; in a QKeras model every weight must be "
                "quantized for bit-exact firmware"
            )
        fixed = from_quantizer(quantizer)
        if not fixed.signed and fixed.width > 1:
            # hls4ml 1.3 stores weights in the quantizer's own hls_type, which ignores
            # keep_negative=False and so drops the least significant bit
            raise ConversionError(
                f"layer '{layer.name}': {key} with keep_negative=False is stored with one bit "
                "too few by hls4ml 1.3; use a signed quantizer"
            )
        if fixed.width <= 2 and fixed.integer == fixed.width:  # binary/ternary: -1, 0, +1
            fixed = FixedType(2, 2, True)
        types.append(fixed)
    weight, bias = types
    if weight is None:  # pragma: no cover - the loop raises first
        raise ConversionError(f"layer '{layer.name}' has no weight quantizer")
    return weight, bias


def n_ops(layer: Any) -> int:
    """The fan-in of one output: ``n_in`` (Dense) or ``kernel size * channels`` (Conv)."""
    weights = layer.get_weights()
    if not weights:
        raise ConversionError(f"layer '{layer.name}' ({type(layer).__name__}) has no weights")
    kernel = weights[0]
    if type(layer).__name__.lstrip("Q").startswith("Depthwise"):
        return int(np.prod(kernel.shape[:-2]))  # each channel on its own
    return int(np.prod(kernel.shape[:-1]))


def _dense(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    kind = type(layer).__name__
    name = layer.name
    config = layer.get_config()
    if config.get("activation") not in ("linear", None):
        # ready_model splits built-in activations; this is a model given unprepared
        raise ConversionError(
            f"layer '{name}' still has its built-in activation {config['activation']!r}; "
            "convert hepfpga.firmware.hls_config.hls4ml_ready_model(model)"
        )
    if kind.startswith("Q"):
        weight, bias = weight_types(layer)
        result = sum_type(x, weight, bias, n_ops(layer))
        return LayerPrecision(
            name, kind, result, accum=result, weight=weight, bias=bias, source="exact sum"
        )
    if ctx.quantized:
        raise ConversionError(
            f"layer '{name}' ({kind}) is a float layer in a QKeras model; use Q{kind} with "
            "quantizers so its firmware is exact (or give no QKeras layer at all: a float "
            "model gets profiled types)"
        )
    values = layer.get_weights()
    width = ctx.width
    weight = covering_type(values[0], width, where=f"layer '{name}' weights")
    bias = (
        covering_type(values[1], width, where=f"layer '{name}' bias") if len(values) > 1 else None
    )
    accum = sum_type(x, weight, bias, n_ops(layer))
    return LayerPrecision(
        name,
        kind,
        ctx.profiled(name),
        accum=accum,
        weight=weight,
        bias=bias,
        source="profiled",
        profiled=ctx.profile(name),
    )


def multiplications(layer: Any) -> int:
    """Products per event: kernel size times the number of output positions."""
    kernel = layer.get_weights()[0]
    positions = int(np.prod(layer.output_shape[1:-1])) if len(layer.output_shape) > 2 else 1
    return int(kernel.size) * positions


register(
    LayerHandler(
        family="dense/conv",
        classes=("Dense", "QDense", "Conv1D", "Conv2D", "QConv1D", "QConv2D"),
        derive=_dense,
        exactness="QKeras: weights in their quantizers' types, exact sums (any padding): "
        "bit-exact. Float: profiled result, approximate. A built-in activation is split into "
        "'<name>_<activation>' (judged as that activation)",
        emulation=Emulation(
            "matrix product (im2col for convolutions; io_parallel)",
            steps={
                "Dense": dense_step,
                "Conv1D": conv_step(1),
                "Conv2D": conv_step(2),
                "PointwiseConv1D": pointwise_1d_step,
                "PointwiseConv2D": pointwise_2d_step,
            },
        ),
        qkeras=QKerasMapping(
            ("Dense", "Conv1D", "Conv2D"), "QDense, QConv1D, QConv2D are QKeras layers themselves"
        ),
        rtl={"QDense": trace_dense, "QConv1D": trace_conv, "QConv2D": trace_conv},
        multiplications=multiplications,
    )
)
