"""Pooling: max (exact: selects an input value) and average (exact for a power-of-two window).

*Average pooling* of ``n`` values sums them in ``accum_t`` with ``2 * log2(n)`` more bits and
divides into a result with ``log2(n)`` more fractional bits: exact when ``n`` is a power of
two (a shift), rounded otherwise. *Global pooling* is the same over the whole spatial extent.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hepfpga.firmware.emulate_stream import (
    global_pooling_step,
    pooling_1d_step,
    pooling_2d_step,
)
from hepfpga.firmware.layers._base import (
    BackendSupport,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    register,
)
from hepfpga.firmware.layers.tracers import trace_maxpool
from hepfpga.quantize.fixed import FixedType


def _max_pool(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    return LayerPrecision(layer.name, type(layer).__name__, x, source="input type (exact)")


register(
    LayerHandler(
        family="max pooling",
        classes=(
            "MaxPooling1D",
            "MaxPooling2D",
            "GlobalMaxPooling1D",
            "GlobalMaxPooling2D",
        ),
        derive=_max_pool,
        exactness="the largest input value, in the input type: exact",
        emulation=Emulation(
            "max-pool step (unpadded windows) and global max step; io_parallel and io_stream",
            steps={
                "Pooling1D": pooling_1d_step,
                "Pooling2D": pooling_2d_step,
                "MaxPooling1D": pooling_1d_step,
                "MaxPooling2D": pooling_2d_step,
                "GlobalPooling1D": global_pooling_step,
                "GlobalPooling2D": global_pooling_step,
            },
        ),
        qkeras=QKerasMapping(
            ("MaxPooling1D", "MaxPooling2D", "GlobalMaxPooling1D"),
            "2-d global max pooling has no QAT counterpart yet",
        ),
        rtl={"MaxPooling1D": trace_maxpool, "MaxPooling2D": trace_maxpool},
    )
)


def _window(layer: Any) -> int:
    kind = type(layer).__name__
    if kind.startswith("Global"):
        shape = layer.input_shape
        return int(np.prod(shape[1:-1]))
    return int(np.prod(layer.get_config()["pool_size"]))


def _average_pool(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    n = _window(layer)
    extra = math.ceil(math.log2(n)) if n > 1 else 0
    accum = FixedType(x.width + 2 * extra, x.integer + extra, x.signed)
    result = FixedType(x.width + extra, x.integer, x.signed)
    source = "average (exact)" if n & (n - 1) == 0 else "average (rounded: pool size not 2**k)"
    return LayerPrecision(layer.name, type(layer).__name__, result, accum=accum, source=source)


def _average_exact(layer: Any) -> bool:
    n = _window(layer)
    return n & (n - 1) == 0


register(
    LayerHandler(
        family="average pooling",
        classes=(
            "AveragePooling1D",
            "AveragePooling2D",
            "GlobalAveragePooling1D",
            "GlobalAveragePooling2D",
        ),
        derive=_average_pool,
        exactness="sum in a wider accumulator, divided into log2(n) more fractional bits: "
        "exact for power-of-two windows, else rounded (measured)",
        emulation=Emulation(
            "average step, (result_t) trunc(sum / n) as hls4ml divides, when accum_t "
            "holds every partial sum exactly (emulate_stream; windows and global, io_parallel and "
            "io_stream); otherwise C simulation",
            steps={
                "Pooling1D": pooling_1d_step,
                "Pooling2D": pooling_2d_step,
                "AveragePooling1D": pooling_1d_step,
                "AveragePooling2D": pooling_2d_step,
                "GlobalPooling1D": global_pooling_step,
                "GlobalPooling2D": global_pooling_step,
            },
        ),
        # kept as it is: the average of 2**k values on the previous quantizer's grid is exact
        # in float32 (Deep Sets, train/architectures/deepsets.py, requires 2**k)
        qkeras=QKerasMapping(
            ("GlobalAveragePooling1D",), "windowed and 2-d average pooling: no QAT counterpart yet"
        ),
        exact=_average_exact,
        # measured (test_byo_ac_backends' 1D model): hls4ml 1.3's Quartus and Catapult global
        # average over 16 positions of ap_ufixed<6,2> differed from QKeras on every event, by
        # up to 396 LSB of ap_ufixed<10,2>, in io_parallel and io_stream
        backends=BackendSupport(
            ("Vitis", "Vivado"),
            "a 2**k-position AveragePooling1D, or GlobalMaxPooling1D",
            applies=lambda layer: type(layer).__name__ == "GlobalAveragePooling1D",
            reason="hls4ml 1.3's Quartus and Catapult global average pooling is not the "
            "average QKeras computes (up to 396 LSB off over 16 positions)",
        ),
    )
)
