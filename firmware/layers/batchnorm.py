"""Batch normalization, kept as a layer of its own.

hls4ml's fusion into the previous layer is switched off (``SkipOptimizers``) so every Keras
layer has a traced twin. ``scale = gamma / sqrt(var + eps)`` and
``bias = beta - mean * scale`` are stored with 24 significant bits (float32's), the product and
sum exactly. Keras computes them in float32, so the two agree exactly up to float32 rounding:
a following quantizer sees a different value only when the exact result lies within one
float32 ulp of a rounding tie. ``QBatchNormalization`` is accepted with its four parameter
quantizers set to None (hls4ml 1.3 ignores QKeras' default power-of-two ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_engine.steps import batchnorm_step
from hepfpga.firmware.layers._base import (
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    add_type,
    covering_type,
    register,
    significant_type,
)
from hepfpga.quantize.fixed import FixedType

#: significant bits of batch-norm scale/bias (float32's significand)
BN_SIGNIFICANT_BITS = 24


def bn_parameters(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """``scale`` and ``bias`` of a batch normalization, as hls4ml computes them (float64)."""
    config = layer.get_config()
    weights = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
    mean = weights["moving_mean"].astype(np.float64)
    variance = weights["moving_variance"].astype(np.float64)
    gamma = weights.get("gamma", np.ones_like(mean)).astype(np.float64)
    beta = weights.get("beta", np.zeros_like(mean)).astype(np.float64)
    scale = gamma / np.sqrt(variance + config["epsilon"])
    return scale, beta - mean * scale


def _batchnorm(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    kind = type(layer).__name__
    name = layer.name
    if kind == "QBatchNormalization":
        config = layer.get_config()
        keys = ("gamma_quantizer", "beta_quantizer", "mean_quantizer", "variance_quantizer")
        quantized_params = [key for key in keys if config.get(key) is not None]
        if quantized_params:
            raise ConversionError(
                f"layer '{name}' (QBatchNormalization) quantizes its parameters "
                f"({', '.join(quantized_params)}; QKeras' defaults are power-of-two "
                "quantizers), which hls4ml 1.3 does not reproduce; set them to None or use "
                "BatchNormalization"
            )
    scale_values, bias_values = bn_parameters(layer)
    if ctx.quantized:
        scale = significant_type(scale_values, BN_SIGNIFICANT_BITS)
        bias = significant_type(bias_values, BN_SIGNIFICANT_BITS)
        product = FixedType(
            x.width + scale.width, x.integer + scale.integer, x.signed or scale.signed
        )
        result = add_type(product, bias)
        return LayerPrecision(name, kind, result, bias=bias, scale=scale, source="exact product")
    return LayerPrecision(
        name,
        kind,
        ctx.profiled(name),
        bias=covering_type(bias_values, ctx.width, where=f"layer '{name}' bias"),
        scale=covering_type(scale_values, ctx.width, where=f"layer '{name}' scale"),
        source="profiled",
        profiled=ctx.profile(name),
    )


register(
    LayerHandler(
        family="batchnorm",
        classes=("BatchNormalization", "QBatchNormalization"),
        derive=_batchnorm,
        exactness="x * scale + bias computed exactly with float32's 24 significant bits of "
        "scale and bias; Keras rounds to float32: equal up to float32 rounding",
        emulation=Emulation(
            "scale-and-shift step",
            steps={"BatchNormalization": batchnorm_step},
        ),
        qkeras=QKerasMapping(
            reason="no QAT counterpart of BatchNormalization yet; QBatchNormalization is a "
            "QKeras layer itself"
        ),
        exact=lambda layer: False,
    )
)
