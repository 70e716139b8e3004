"""Engine steps for hls4ml's ``io_stream`` graphs and for depthwise/separable convolutions.

The layer families name these builders on their handlers (``LayerHandler.emulation``), from
which :mod:`hepfpga.firmware.emulate_engine.plan` derives its tables; numbers travel as raw
integer codes there, and every step below is an exact rewrite of what hls4ml 1.3's C++
computes (the emulator still proves each model against the C simulation before it is used).

**What io_stream changes** (``hls4ml/backends/{fpga,vivado}/passes``,
``templates/vivado/nnet_utils/*_stream.h``), and how the engine follows it:

* ``padding='same'`` convolutions get a ``ZeroPadding1D/2D`` layer (``zp1d_<name>``,
  ``zp2d_<name>``) in front, holding the input's type, and become ``valid``: the padding step
  inserts exact zeros, the convolution step sees the padded tensor.
* A tensor read by several layers (or read and also a model output) is copied by a ``Clone``
  layer into ``<name>_cpy1``, ``<name>_cpy2``...: one :class:`CopyStep` per copy,
  ``(res_T) x`` in the producer's own type (a no-op).
* A ``Reshape`` to more than one dimension becomes ``Repack`` (the values keep their
  channels-last order; only the stream's packing changes): a reshape. A flatten stays a
  ``Reshape`` (hls4ml reads the stream in place): channels-last order, as in io_parallel.
* Convolutions (line buffer or encoded) run the same ``dense`` kernel on every window in
  ``accum_t`` as io_parallel does; with exact sums (checked by the matrix-product step) the
  result does not depend on the order. Dense, batch normalization, activations, softmax
  (``reduce`` over one pack = the whole vector) and merges compute as in io_parallel (hls4ml
  1.3 has no io_stream ``Dot``: the merge handler refuses it).
* Pooling converts each value of the window to ``accum_t`` and reduces the window with a
  balanced tree of ``accum_t`` additions or maxima (io_parallel: a running sum or maximum);
  the maximum of converted values is the converted maximum (conversions are monotone), and an
  average is exact when ``accum_t`` holds every value and every partial sum: then both
  compute ``trunc(sum / n)`` on ``accum_t``'s raw codes (``ap_fixed`` division by an int
  truncates toward zero at the dividend's fractional bits), converted to ``res_T``
  (:class:`AvgPoolStep`; io_parallel too, and global average pooling over any number of
  positions).
* ``Broadcast`` (Vivado merges of tensors of different shapes) is not reproduced.

**Depthwise and separable convolutions.** hls4ml splits ``SeparableConv1D/2D`` into
``<name>_depthwise`` (``DepthwiseConv1D/2D``, no bias) and ``<name>_pointwise`` (a 1x1
convolution, ``PointwiseConv1D/2D`` on Vivado/Vitis). A depthwise convolution multiplies each
channel by its own kernel and sums over the window in ``accum_t``, as a convolution whose
kernel is zero between different channels: the engine spreads the kernel over all channels
(zero products change no sum) and runs it as any convolution. A pointwise convolution is a
convolution with a 1x1 kernel. hls4ml 1.3 supports a depth multiplier of 1 only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hepfpga.firmware.emulate_engine.steps import (
    GlobalPoolStep,
    MaxPoolStep,
    check_unpadded_pooling,
    conv_matmul,
    shifted,
)
from hepfpga.firmware.emulate_engine.types import (
    Context,
    Interval,
    Step,
    UnsupportedLayerError,
    fixed_type,
    input_of,
    layer_type,
    out_shape,
    plan_convert,
    raw_range,
    result_type,
    written_weights,
)

__all__ = [
    "AvgPoolStep",
    "CopyStep",
    "clone_steps",
    "depthwise_1d_step",
    "depthwise_2d_step",
    "global_pooling_step",
    "pointwise_1d_step",
    "pointwise_2d_step",
    "pooling_1d_step",
    "pooling_2d_step",
]


class CopyStep(Step):
    """One output of io_stream's ``Clone``: ``res = (res_T) x``, ``res_T`` the producer's type."""

    def __init__(self, layer: Any, ctx: Context, output: str) -> None:
        self.name = layer.name
        source, in_type, interval, in_shape = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = output
        self.shape = in_shape
        precision = layer.get_output_variable(output).type.precision
        self.out_type = fixed_type(precision, f"layer '{layer.name}' output '{output}'")
        self.convert, self.out_interval, big = plan_convert(
            in_type.fractional, interval, self.out_type
        )
        self.max_magnitude = max(big, interval.magnitude)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.convert(x)
        return out.reshape(out.shape[0], *self.shape)


def clone_steps(layer: Any, ctx: Context) -> list[Step]:
    return [CopyStep(layer, ctx, output) for output in layer.outputs]


class AvgPoolStep(Step):
    """Average pooling without padding: ``res = (res_T) trunc(sum_accum(window) / n)``; global
    average pooling (``whole=True``) is the one window over every position.

    Exact when ``accum_t`` has at least the input's fractional bits and holds every partial
    sum of a window (io_parallel's running sum and io_stream's tree then agree); otherwise the
    layer is refused (the result would depend on the order of the sums).
    """

    def __init__(self, layer: Any, ctx: Context, dims: int, whole: bool = False) -> None:
        self.name = layer.name
        source, in_type, interval, in_shape = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        self.in_shape = in_shape
        self.out_spatial = self.shape[:-1]
        check_unpadded_pooling(layer, "padded average pooling")
        self.pool: tuple[int, ...]
        self.stride: tuple[int, ...]
        if whole:
            self.pool = tuple(int(d) for d in in_shape[:-1])
            self.stride = (1,) * len(self.pool)
            self.out_spatial = (1,) * len(self.pool)
        elif dims == 1:
            self.pool = (int(layer.get_attr("pool_width")),)
            self.stride = (int(layer.get_attr("stride_width")),)
        else:
            self.pool = (int(layer.get_attr("pool_height")), int(layer.get_attr("pool_width")))
            self.stride = (
                int(layer.get_attr("stride_height")),
                int(layer.get_attr("stride_width")),
            )
        accum_t = layer_type(layer, "accum_t")
        if accum_t.fractional < in_type.fractional:
            raise UnsupportedLayerError(
                f"layer '{layer.name}': accum_t {accum_t} has fewer fractional bits than the "
                f"input {in_type}: every value is rounded, differently in io_parallel and "
                "io_stream"
            )
        self.n = math.prod(self.pool)
        self.scale = 2.0 ** (accum_t.fractional - in_type.fractional)
        lo, hi = interval.lo * self.scale, interval.hi * self.scale
        partial = Interval(min(lo, self.n * lo), max(hi, self.n * hi))
        acc_lo, acc_hi = raw_range(accum_t)
        if partial.lo < acc_lo or partial.hi > acc_hi:
            raise UnsupportedLayerError(
                f"layer '{layer.name}': accum_t {accum_t} may overflow within a window sum"
            )
        # trunc(sum / n) of sums in [n lo, n hi] lies in [trunc(lo), trunc(hi)] = [lo, hi]
        self.out_type = result_type(layer)
        self.result, self.out_interval, big = plan_convert(
            accum_t.fractional, Interval(lo, hi), self.out_type
        )
        self.max_magnitude = max(partial.magnitude, big, interval.magnitude)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = x.reshape(n, *self.in_shape)
        total: np.ndarray | None = None
        for offset in itertools.product(*(range(p) for p in self.pool)):
            view = x[shifted(offset, self.stride, self.out_spatial)]
            total = view.copy() if total is None else np.add(total, view, out=total)
        if total is None:  # pragma: no cover - a pool has at least one position
            raise UnsupportedLayerError(f"layer '{self.name}': empty pool")
        if self.scale != 1.0:
            total *= total.dtype.type(self.scale)
        # exact: a quotient of integers below 2**22 (float32) / 2**50 (float64) by a small n
        # is at least 1/n away from the next integer unless it is one
        total /= total.dtype.type(self.n)
        np.trunc(total, out=total)
        return self.result(total).reshape(n, *self.shape)


def _pooling_step(dims: int) -> Callable[[Any, Context], Step]:
    def build(layer: Any, ctx: Context) -> Step:
        if str(layer.get_attr("pool_op", "Max")) == "Average":
            return AvgPoolStep(layer, ctx, dims)
        return MaxPoolStep(layer, ctx, dims)

    return build


def global_pooling_step(layer: Any, ctx: Context) -> Step:
    if str(layer.get_attr("pool_op", "Max")) == "Average":
        return AvgPoolStep(layer, ctx, len(input_of(layer, ctx)[3]) - 1, whole=True)
    return GlobalPoolStep(layer, ctx)


def _depthwise_step(dims: int) -> Callable[[Any, Context], Step]:
    def build(layer: Any, ctx: Context) -> Step:
        kernel = written_weights(layer, "weight")
        n_chan = int(layer.get_attr("n_chan"))
        if (
            kernel.ndim != dims + 2
            or kernel.shape[-2:] != (n_chan, 1)
            or int(layer.get_attr("n_filt")) != n_chan
        ):
            raise UnsupportedLayerError(
                f"layer '{layer.name}': depthwise kernel of shape {kernel.shape} for {n_chan} "
                "channels (hls4ml 1.3 supports a depth multiplier of 1)"
            )
        # channel c's kernel in column c, zeros elsewhere: the same products and sums
        spread = np.zeros((*kernel.shape[:-1], n_chan))
        channels = np.arange(n_chan)
        spread[..., channels, channels] = kernel[..., 0]
        return conv_matmul(layer, ctx, spread, dims)

    return build


def _pointwise_step(dims: int) -> Callable[[Any, Context], Step]:
    def build(layer: Any, ctx: Context) -> Step:
        kernel = written_weights(layer, "weight")
        n_chan, n_filt = int(layer.get_attr("n_chan")), int(layer.get_attr("n_filt"))
        # hls4ml may store the 1x1 kernel without its unit window axes
        return conv_matmul(layer, ctx, kernel.reshape((1,) * dims + (n_chan, n_filt)), dims)

    return build


#: the builders the layer families name on their handlers (``LayerHandler.emulation``)
pooling_1d_step = _pooling_step(1)
pooling_2d_step = _pooling_step(2)
depthwise_1d_step = _depthwise_step(1)
depthwise_2d_step = _depthwise_step(2)
#: pointwise convolutions: also hls4ml's Dense on a sequence or image
pointwise_1d_step = _pointwise_step(1)
pointwise_2d_step = _pointwise_step(2)
