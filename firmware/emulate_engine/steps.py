"""The engine's steps of io_parallel layers: conversions and relu, matrix products (Dense and
convolutions), batch normalization, max pooling, moves (padding, cropping, up-sampling) and
two-input merges. Each is exact ``ap_fixed`` arithmetic on raw codes (see
:mod:`hepfpga.firmware.emulate_engine`); a layer family names the builders it uses on its
handler (``LayerHandler.emulation``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from hepfpga.firmware.emulate_engine.types import (
    Context,
    Convert,
    Interval,
    Step,
    UnsupportedLayerError,
    _weights,
    input_of,
    layer_type,
    out_shape,
    plan_convert,
    quantize_to_raw,
    raw_range,
    result_type,
    written_weights,
)
from hepfpga.quantize.fixed import FixedType, Saturation

__all__ = [
    "BatchNormStep",
    "ConvertStep",
    "GlobalPoolStep",
    "MatmulStep",
    "MaxPoolStep",
    "MergeStep",
    "MoveStep",
    "SignStep",
    "TimeStepsStep",
    "activation_step",
    "batchnorm_step",
    "check_unpadded_pooling",
    "conv_matmul",
    "conv_step",
    "dense_step",
    "linear_step",
    "product_kind",
    "relu_step",
    "reshape_step",
    "shifted",
    "time_distributed_step",
]

#: convolutions whose dense-matrix form has at most this many entries run as one product
TOEPLITZ_MAX_ENTRIES = 1 << 20


class ConvertStep(Step):
    """Input conversion, linear activation, relu, reshape and flatten: ``(res_T) f(x)``."""

    def __init__(self, layer: Any, ctx: Context, relu: bool) -> None:
        self.name = layer.name
        source, in_type, interval, _ = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.relu = relu
        self.shape = out_shape(layer)
        if relu:
            interval = Interval(max(interval.lo, 0.0), max(interval.hi, 0.0))
        self.out_type = result_type(layer)
        self.convert, self.out_interval, big = plan_convert(
            in_type.fractional, interval, self.out_type
        )
        if (
            relu
            and not self.out_type.signed
            and self.out_type.saturation
            in (
                Saturation.SAT,
                Saturation.SAT_SYM,
            )
        ):
            self.convert.saturation = self.out_type.saturation
        self.max_magnitude = max(big, interval.magnitude)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # the input is this step's own (Plan.run hands each tensor to one consumer or copies)
        if self.relu and not self.relu_by_clip:
            x = np.maximum(x, 0, out=x)
        out = self.convert(x)
        return out.reshape(out.shape[0], *self.shape)

    @property
    def relu_by_clip(self) -> bool:
        """A saturating unsigned result clips negatives to 0: relu needs no pass of its own
        (rounding is monotone and maps 0 to 0, so it commutes with relu)."""
        return (
            self.relu
            and not self.out_type.signed
            and self.convert.saturation in (Saturation.SAT, Saturation.SAT_SYM)
        )


def product_kind(layer: Any) -> str:
    # deferred: hls4ml and TensorFlow load slowly
    from hls4ml.backends import get_backend

    backend = get_backend(layer.model.config.backend.name)
    data_t = layer.get_input_variable().type.precision
    weight_t = layer.get_weights("weight").type.precision if "weight" in layer.weights else None
    return str(backend.product_type(data_t, weight_t))


class MatmulStep(Step):
    """Dense and convolution (as im2col): ``(res_T)((accum_t) b + sum((accum_t)(x * w)))``."""

    def __init__(
        self,
        layer: Any,
        ctx: Context,
        kernel: np.ndarray,
        patches: Any,
        bias_repeat: int = 1,
    ) -> None:
        self.name = layer.name
        source, in_type, interval, _ = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.patches = patches
        self.shape = out_shape(layer)
        # weight_ternary returns 0, -x or x (decltype(-x): exact), i.e. x * w for w in -1/0/1
        if product_kind(layer) not in ("mult", "weight_ternary"):
            raise UnsupportedLayerError(
                f"layer '{layer.name}': hls4ml uses its '{product_kind(layer)}' product "
                "(binary or power-of-two weights), which the engine does not reproduce"
            )
        weight_t = layer_type(layer, "weight_t")
        accum_t = layer_type(layer, "accum_t")
        self.out_type = result_type(layer)
        w = quantize_to_raw(kernel, weight_t)  # (n_in, n_out)
        if layer.get_attr("use_bias", True) and "bias" in layer.weights:
            bias_t = layer_type(layer, "bias_t")
            b_raw = _weights(layer, "bias", bias_t).reshape(-1)
            bias_conv, _, _ = plan_convert(
                bias_t.fractional, Interval(float(b_raw.min()), float(b_raw.max())), accum_t
            )
            b = np.tile(bias_conv(b_raw.copy()), bias_repeat)
        else:
            b = np.zeros(w.shape[1])
        if b.shape != (w.shape[1],):
            raise UnsupportedLayerError(
                f"layer '{layer.name}': bias of shape {b.shape} for {w.shape}"
            )
        product_frac = in_type.fractional + weight_t.fractional
        lo_acc, hi_acc = raw_range(accum_t)
        x_lo, x_hi = interval.lo, interval.hi
        if accum_t.fractional >= product_frac:
            # products are exact in accum_t: fold the scaling into the weights
            w_acc = w * 2.0 ** (accum_t.fractional - product_frac)
            self.per_product = None
        else:
            w_acc = w
            self.per_product, _, _ = plan_convert(
                product_frac,
                Interval(
                    min(x_lo * w.min(), x_hi * w.min(), x_lo * w.max(), x_hi * w.max()),
                    max(x_lo * w.min(), x_hi * w.min(), x_lo * w.max(), x_hi * w.max()),
                ),
                accum_t,
            )
        term_lo = np.minimum(x_lo * w_acc, x_hi * w_acc)
        term_hi = np.maximum(x_lo * w_acc, x_hi * w_acc)
        if self.per_product is not None:
            term_lo = np.maximum(np.floor(term_lo * self.per_product.scale) - 1, lo_acc)
            term_hi = np.minimum(np.ceil(term_hi * self.per_product.scale) + 1, hi_acc)
        sum_lo = float((b + term_lo.sum(axis=0)).min())
        sum_hi = float((b + term_hi.sum(axis=0)).max())
        absolute = float((np.abs(b) + np.maximum(-term_lo, term_hi).sum(axis=0)).max())
        fits = lo_acc <= sum_lo and sum_hi <= hi_acc and absolute <= max(-lo_acc, hi_acc)
        if not fits and accum_t.saturation is not Saturation.WRAP:
            raise UnsupportedLayerError(
                f"layer '{layer.name}': accum_t {accum_t} may saturate part-way through the sum, "
                "so the result depends on hls4ml's summation order"
            )
        if self.per_product is not None and self.per_product.saturation not in (
            None,
            Saturation.WRAP,
        ):
            raise UnsupportedLayerError(
                f"layer '{layer.name}': single products saturate in {accum_t}"
            )
        acc_interval = Interval(sum_lo, sum_hi) if fits else Interval(lo_acc, hi_acc)
        self.accum_wrap = (
            None if fits else Convert(1.0, None, Saturation.WRAP, lo_acc, hi_acc, accum_t.width)
        )
        self.result, self.out_interval, big = plan_convert(
            accum_t.fractional, acc_interval, self.out_type
        )
        self.w, self.b = w_acc, b
        self.max_magnitude = max(absolute, big, interval.magnitude)
        if self.per_product is not None:
            self.max_magnitude = max(self.max_magnitude, interval.magnitude * np.abs(w).max())

    def prepare(self, dtype: Any) -> None:
        self.w = self.w.astype(dtype)
        self.b = self.b.astype(dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        cols = self.patches(x) if self.patches is not None else x.reshape(n, -1)
        if self.per_product is None:
            acc = cols @ self.w
        else:
            acc = self.per_product(cols[:, :, None] * self.w[None, :, :]).sum(axis=1)
        acc += self.b
        if self.accum_wrap is not None:
            acc = self.accum_wrap(acc)
        return self.result(acc).reshape(n, *self.shape)


class SignStep(Step):
    """hls4ml's ``binary_tanh``: ``(res_T)(x >= 0 ? 1 : -1)`` (+1 at 0, where QKeras'
    ``binary_tanh`` gives -1)."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        self.name = layer.name
        source, _, interval, _ = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        self.out_type = result_type(layer)
        if not self.out_type.signed or self.out_type.integer < 2:
            raise UnsupportedLayerError(
                f"layer '{layer.name}': binary_tanh into {self.out_type}, which cannot hold +-1"
            )
        self.one = 2.0**self.out_type.fractional
        self.out_interval = Interval(-self.one, self.one)
        self.max_magnitude = max(interval.magnitude, self.one)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out = np.where(x.reshape(n, -1) >= 0, self.one, -self.one).astype(x.dtype)
        return out.reshape(n, *self.shape)


class BatchNormStep(Step):
    """``res = (res_T)(x * scale + bias)``, computed exactly then converted once."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        self.name = layer.name
        source, in_type, interval, _ = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        if _product_kind_bn(layer) != "mult":
            raise UnsupportedLayerError(f"layer '{layer.name}': non-multiplying batch-norm product")
        scale_t = layer_type(layer, "scale_t")
        bias_t = layer_type(layer, "bias_t")
        self.out_type = result_type(layer)
        scale = _weights(layer, "scale", scale_t).reshape(-1)
        bias = _weights(layer, "bias", bias_t).reshape(-1)
        frac = in_type.fractional + scale_t.fractional
        # a common fractional position for x * scale and bias (the C++ adds them exactly)
        top = max(frac, bias_t.fractional)
        self.scale = scale * 2.0 ** (top - frac)
        self.bias = bias * 2.0 ** (top - bias_t.fractional)
        terms = np.stack([interval.lo * self.scale, interval.hi * self.scale])
        lo = float((terms.min(axis=0) + self.bias).min())
        hi = float((terms.max(axis=0) + self.bias).max())
        self.result, self.out_interval, big = plan_convert(top, Interval(lo, hi), self.out_type)
        self.max_magnitude = max(abs(lo), abs(hi), big, interval.magnitude)

    def prepare(self, dtype: Any) -> None:
        self.scale = self.scale.astype(dtype)
        self.bias = self.bias.astype(dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        flat = x.reshape(n, -1, self.scale.shape[0]) * self.scale + self.bias
        return self.result(flat).reshape(n, *self.shape)


def _product_kind_bn(layer: Any) -> str:
    # deferred: hls4ml and TensorFlow load slowly
    from hls4ml.backends import get_backend

    backend = get_backend(layer.model.config.backend.name)
    data_t = layer.get_input_variable().type.precision
    return str(backend.product_type(data_t, layer.get_weights("scale").type.precision))


def check_unpadded_pooling(layer: Any, what: str) -> None:
    """Refuse a pooling layer the engine does not reproduce: channels-first data, or padding
    (``what`` names it in the message)."""
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(f"layer '{layer.name}': channels_first data")
    pads = [layer.get_attr(k, 0) for k in ("pad_left", "pad_right", "pad_top", "pad_bottom")]
    if any(pads):
        raise UnsupportedLayerError(f"layer '{layer.name}': {what}")


class MaxPoolStep(Step):
    """Max pooling without padding: ``res = (res_T)(accum_t) max(window)``."""

    def __init__(self, layer: Any, ctx: Context, dims: int) -> None:
        self.name = layer.name
        source, in_type, interval, in_shape = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        if layer.get_attr("pool_op", "Max") != "Max":
            raise UnsupportedLayerError(
                f"layer '{layer.name}': {layer.get_attr('pool_op')} pooling"
            )
        check_unpadded_pooling(layer, "padded pooling")
        self.pool: tuple[int, ...]
        self.stride: tuple[int, ...]
        if dims == 1:
            self.pool = (layer.get_attr("pool_width"),)
            self.stride = (layer.get_attr("stride_width"),)
        else:
            self.pool = (layer.get_attr("pool_height"), layer.get_attr("pool_width"))
            self.stride = (layer.get_attr("stride_height"), layer.get_attr("stride_width"))
        self.in_shape = in_shape
        accum_t = layer_type(layer, "accum_t") if "accum_t" in layer.types else in_type
        self.to_accum: Convert | None
        self.to_accum, acc_interval, big1 = plan_convert(in_type.fractional, interval, accum_t)
        self.out_type = result_type(layer)
        if self.to_accum.rounding is None and self.to_accum.saturation is None:
            # an exact widening into accum_t: convert the input straight to res_T
            self.to_accum, acc_interval, accum_t = None, interval, in_type
        self.result, self.out_interval, big2 = plan_convert(
            accum_t.fractional, acc_interval, self.out_type
        )
        self.max_magnitude = max(big1, big2, interval.magnitude)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = x.reshape(n, *self.in_shape)
        out_spatial = self.shape[:-1]
        best = None
        # the maximum over the window, one window offset at a time (strided views, no copies)
        for offset in itertools.product(*(range(p) for p in self.pool)):
            view = x[shifted(offset, self.stride, out_spatial)]
            best = view.copy() if best is None else np.maximum(best, view, out=best)
        assert best is not None
        if self.to_accum is not None:
            best = self.to_accum(best)
        out = self.result(best)
        return out.reshape(n, *self.shape)


def shifted(
    offset: tuple[int, ...], stride: tuple[int, ...], out_spatial: tuple[int, ...]
) -> tuple[slice, ...]:
    """Index of the input elements at ``offset`` inside every window (batch and channels kept)."""
    spatial = tuple(
        slice(o, o + s * (d - 1) + 1, s)
        for o, s, d in zip(offset, stride, out_spatial, strict=True)
    )
    return (slice(None), *spatial, slice(None))


def _conv_patches(layer: Any, in_shape: tuple[int, ...], dims: int) -> Callable[..., Any]:
    """im2col for hls4ml's channels-last Conv1D/Conv2D with zero padding."""
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(f"layer '{layer.name}': channels_first data")
    filt: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    out_spatial: tuple[int, ...]
    if dims == 1:
        filt = (layer.get_attr("filt_width"),)
        stride = (layer.get_attr("stride_width"),)
        pads = ((layer.get_attr("pad_left", 0), layer.get_attr("pad_right", 0)),)
        out_spatial = (layer.get_attr("out_width"),)
    else:
        filt = (layer.get_attr("filt_height"), layer.get_attr("filt_width"))
        stride = (layer.get_attr("stride_height"), layer.get_attr("stride_width"))
        pads = (
            (layer.get_attr("pad_top", 0), layer.get_attr("pad_bottom", 0)),
            (layer.get_attr("pad_left", 0), layer.get_attr("pad_right", 0)),
        )
        out_spatial = (layer.get_attr("out_height"), layer.get_attr("out_width"))
    for attr in ("dilation", "dilation_width", "dilation_height"):
        if layer.get_attr(attr, 1) not in (1, (1,), (1, 1), [1], [1, 1]):
            raise UnsupportedLayerError(f"layer '{layer.name}': dilated convolution")
    axes = tuple(range(1, 1 + dims))

    def patches(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = x.reshape(n, *in_shape)
        if any(p for pair in pads for p in pair):
            x = np.pad(x, ((0, 0), *pads, (0, 0)))
        # numpy's stubs type ``axis`` as one index; it takes a tuple (one per window dim)
        windows = np.lib.stride_tricks.sliding_window_view(
            x,
            filt,
            axis=axes,  # type: ignore[call-overload]
        )
        windows = windows[(slice(None), *(slice(None, None, s) for s in stride))]
        windows = windows[(slice(None), *(slice(0, d) for d in out_spatial))]
        # (n, *out, channels, *filt) -> (n, *out, *filt, channels): the kernel's row order
        order = (0, *axes, *range(2 + dims, 2 + 2 * dims), 1 + dims)
        return windows.transpose(order).reshape(n * math.prod(out_spatial), -1)

    return patches


def dense_step(layer: Any, ctx: Context) -> Step:
    if layer.get_attr("activation", "linear") not in ("linear", None):
        raise UnsupportedLayerError(f"layer '{layer.name}': fused activation")
    kernel = written_weights(layer, "weight")
    kernel = kernel.reshape(-1, kernel.shape[-1])
    return MatmulStep(layer, ctx, kernel, None)


def conv_matmul(layer: Any, ctx: Context, kernel: np.ndarray, dims: int) -> Step:
    """The convolution ``layer`` with ``kernel`` (``(*filt, channels, filters)``) as a
    :class:`MatmulStep` (also used for depthwise kernels spread over all channels)."""
    _, _, _, in_shape = input_of(layer, ctx)
    n_filt = layer.get_attr("n_filt")
    if kernel.ndim != dims + 2 or kernel.shape[-1] != n_filt:
        raise UnsupportedLayerError(f"layer '{layer.name}': kernel of shape {kernel.shape}")
    patches = _conv_patches(layer, in_shape, dims)
    kernel = kernel.reshape(-1, n_filt)
    n_in = math.prod(in_shape)
    n_positions = math.prod(out_shape(layer)[:-1])
    if n_in * n_positions * n_filt <= TOEPLITZ_MAX_ENTRIES:
        # the convolution as one dense matrix: column (position, filter) holds the kernel
        # at the inputs that position sees, zeros elsewhere; one larger matrix product
        # beats im2col's copies for small inputs. Same products, same sums: same result.
        basis = np.eye(n_in)
        dense = (patches(basis) @ kernel).reshape(n_in, n_positions * n_filt)
        return MatmulStep(layer, ctx, dense, None, bias_repeat=n_positions)
    return MatmulStep(layer, ctx, kernel, patches)


def conv_step(dims: int) -> Callable[[Any, Context], Step]:
    def build(layer: Any, ctx: Context) -> Step:
        kernel = written_weights(layer, "weight")
        return conv_matmul(layer, ctx, kernel, dims)

    return build


def activation_step(layer: Any, ctx: Context) -> Step:
    """The step of an hls4ml ``Activation`` layer, by its activation (``Context.activations``)."""
    activation = str(layer.get_attr("activation", "")).lower()
    builder = ctx.activations.get(activation)
    if builder is None:
        raise UnsupportedLayerError(
            f"layer '{layer.name}': activation '{activation}' is not reproduced; "
            f"reproduced: {', '.join(sorted(ctx.activations))}, softmax"
        )
    return cast(Step, builder(layer, ctx))


def relu_step(layer: Any, ctx: Context) -> Step:
    return ConvertStep(layer, ctx, relu=True)


def linear_step(layer: Any, ctx: Context) -> Step:
    return ConvertStep(layer, ctx, relu=False)


def reshape_step(layer: Any, ctx: Context) -> Step:
    return ConvertStep(layer, ctx, relu=False)


def batchnorm_step(layer: Any, ctx: Context) -> Step:
    return BatchNormStep(layer, ctx)


# -- moving values: padding, cropping, nearest up-sampling -------------------------------------
class _SpatialStep(Step):
    """A one-input step on channels-last tensors."""

    in_shape: tuple[int, ...]
    shape: tuple[int, ...]

    def _bind_channels_last(
        self, layer: Any, ctx: Context
    ) -> tuple[FixedType, Interval, tuple[int, ...]]:
        """Name, input, output and shapes of the step; its input's type, interval, shape."""
        self.name = layer.name
        source, in_type, interval, in_shape = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        self.in_shape = in_shape
        if layer.get_attr("data_format", "channels_last") != "channels_last":
            raise UnsupportedLayerError(f"layer '{layer.name}': channels_first data")
        return in_type, interval, in_shape


class MoveStep(_SpatialStep):
    """ZeroPadding, Cropping and nearest-neighbour Resize (UpSampling): every output is an
    input value or an exact zero, then ``(res_T)`` of it (usually the same type: a no-op)."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        in_type, interval, in_shape = self._bind_channels_last(layer, ctx)
        spatial = len(in_shape) - 1
        kind = layer.class_name
        self.index: list[np.ndarray] = []  # per spatial axis: source index, -1 for a zero
        for axis in range(spatial):
            n_in, n_out = in_shape[axis], self.shape[axis]
            side = ("top", "bottom") if spatial == 2 and axis == 0 else ("left", "right")
            if kind.startswith("ZeroPadding"):
                before = int(layer.get_attr(f"pad_{side[0]}", 0))
                index = np.full(n_out, -1)
                index[before : before + n_in] = np.arange(n_in)
            elif kind.startswith("Cropping"):
                before = int(layer.get_attr(f"crop_{side[0]}", 0))
                index = np.arange(before, before + n_out)
            elif kind == "Resize":
                if layer.get_attr("algorithm", "nearest") != "nearest":
                    raise UnsupportedLayerError(f"layer '{layer.name}': bilinear resize")
                # hls4ml's resize_nearest: source = (i * ((n_in << 16) / n_out + 1)) >> 16
                ratio = ((n_in << 16) // n_out) + 1
                index = (np.arange(n_out) * ratio) >> 16
            else:
                raise UnsupportedLayerError(f"layer '{layer.name}' ({kind})")
            self.index.append(index)
        with_zero = Interval(min(interval.lo, 0.0), max(interval.hi, 0.0))
        self.out_type = result_type(layer)
        self.convert, self.out_interval, big = plan_convert(
            in_type.fractional, with_zero, self.out_type
        )
        self.max_magnitude = max(big, interval.magnitude)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = x.reshape(n, *self.in_shape)
        for axis, index in enumerate(self.index, start=1):
            padded = np.concatenate(
                [x, np.zeros((*x.shape[:axis], 1, *x.shape[axis + 1 :]), dtype=x.dtype)],
                axis=axis,
            )  # index -1 picks the appended zero
            x = np.take(padded, index, axis=axis)
        return self.convert(np.ascontiguousarray(x)).reshape(n, *self.shape)


class GlobalPoolStep(_SpatialStep):
    """Global max pooling: the largest value, ``(accum_t)`` then ``(res_T)`` (global average
    pooling is :class:`~hepfpga.firmware.emulate_stream.AvgPoolStep` over every position)."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        in_type, interval, _ = self._bind_channels_last(layer, ctx)
        if str(layer.get_attr("pool_op", "Max")) != "Max":
            raise UnsupportedLayerError(f"layer '{layer.name}': not a global max pooling")
        self.out_type = result_type(layer)
        accum_t = layer_type(layer, "accum_t") if "accum_t" in layer.types else in_type
        self.to_accum, acc, big1 = plan_convert(in_type.fractional, interval, accum_t)
        self.result, self.out_interval, big2 = plan_convert(accum_t.fractional, acc, self.out_type)
        self.max_magnitude = max(big1, big2, interval.magnitude, acc.magnitude)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        out = self.to_accum(x.reshape(n, -1, self.in_shape[-1]).max(axis=1))
        return self.result(out).reshape(n, *self.shape)


# -- merging two tensors -----------------------------------------------------------------------
class MergeStep(Step):
    """hls4ml's two-input merges: ``res = (res_T)(a op b)`` with ``a op b`` exact in
    ``ap_fixed`` arithmetic (add, subtract, multiply, average, maximum, minimum), the
    concatenation (each value converted), and the dot product of two vectors (exact products
    summed in ``accum_t``, reproduced when ``accum_t`` holds every partial sum exactly)."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        self.name = layer.name
        if len(layer.inputs) != 2:
            raise UnsupportedLayerError(f"layer '{layer.name}' merges {len(layer.inputs)} inputs")
        self.inputs = tuple(layer.inputs)
        for name in self.inputs:
            if name not in ctx.types:
                raise UnsupportedLayerError(f"layer '{layer.name}' reads unknown '{name}'")
        ta, tb = (ctx.types[n] for n in self.inputs)
        ia, ib = (ctx.intervals[n] for n in self.inputs)
        self.shapes = tuple(ctx.shapes[n] for n in self.inputs)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        self.out_type = result_type(layer)
        op = str(layer.get_attr("op", layer.class_name)).lower()
        self.op = re.sub(r"\d+d$", "", op)
        if self.op not in _MERGE_OPS:
            raise UnsupportedLayerError(f"layer '{layer.name}': merge '{op}'")
        if self.op == "concatenate":
            axis = int(layer.get_attr("axis", -1))
            self.axis = axis  # Keras counts the batch axis too, as the (n, ...) arrays here
        frac = max(ta.fractional, tb.fractional)
        self.scale_a, self.scale_b = 2.0 ** (frac - ta.fractional), 2.0 ** (frac - tb.fractional)
        a = Interval(ia.lo * self.scale_a, ia.hi * self.scale_a)
        b = Interval(ib.lo * self.scale_b, ib.hi * self.scale_b)
        corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        exact_frac = frac
        if self.op in ("add", "average"):
            lo, hi = a.lo + b.lo, a.hi + b.hi
            exact_frac = frac + (1 if self.op == "average" else 0)
        elif self.op == "subtract":
            lo, hi = a.lo - b.hi, a.hi - b.lo
        elif self.op == "multiply":
            lo, hi = min(corners), max(corners)
            exact_frac = 2 * frac
            self.scale_a, self.scale_b = (
                2.0 ** (frac - ta.fractional),
                2.0 ** (frac - tb.fractional),
            )
        elif self.op == "dot":
            n = int(math.prod(self.shapes[0]))
            lo, hi = n * min(corners), n * max(corners)
            exact_frac = 2 * frac
            accum_t = layer_type(layer, "accum_t")
            acc_lo, acc_hi = raw_range(accum_t)
            scale = 2.0 ** (accum_t.fractional - exact_frac)
            if scale < 1 or lo * scale < acc_lo or hi * scale > acc_hi:
                raise UnsupportedLayerError(
                    f"layer '{layer.name}': accum_t {accum_t} does not hold every partial "
                    "sum of the dot product exactly"
                )
        else:  # maximum, minimum, concatenate
            lo, hi = min(a.lo, b.lo), max(a.hi, b.hi)
        self.result, self.out_interval, big = plan_convert(
            exact_frac, Interval(lo, hi), self.out_type
        )
        self.max_magnitude = max(abs(lo), abs(hi), big, a.magnitude, b.magnitude)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        n = a.shape[0]
        if self.scale_a != 1.0:
            a = a * a.dtype.type(self.scale_a)
        if self.scale_b != 1.0:
            b = b * b.dtype.type(self.scale_b)
        a = a.reshape(n, *self.shapes[0])
        b = b.reshape(n, *self.shapes[1])
        if self.op in ("add", "average"):
            out = a + b
        elif self.op == "subtract":
            out = a - b
        elif self.op == "multiply":
            out = a * b
        elif self.op == "maximum":
            out = np.maximum(a, b)
        elif self.op == "minimum":
            out = np.minimum(a, b)
        elif self.op == "dot":
            out = np.sum(a.reshape(n, -1) * b.reshape(n, -1), axis=1, keepdims=True)
        else:
            out = np.concatenate([a, b], axis=self.axis)
        return self.result(np.ascontiguousarray(out)).reshape(n, *self.shape)


_MERGE_OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot")


class TimeStepsStep(Step):
    """hls4ml's ``TimeDistributed`` block: its start ``<name>`` runs the wrapped layers once
    per time step (``read_time_step_Nd`` copies step ``ts`` of the input, a pure copy), its
    end marker ``<name>_end`` writes each step's result back (``write_time_step_Nd``, in the
    wrapped layer's own type: the template takes one type for both arrays). The engine runs
    every time step of every event as one row: the start reshapes ``(events, T, *step)`` to
    ``(events * T, *step)``, the wrapped layers' steps run on those rows unchanged, the end
    reshapes back. Raw codes are not touched, so the block is exact by construction."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        self.name = layer.name
        source, in_type, interval, in_shape = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        self.steps_n = int(layer.get_attr("n_time_steps"))
        wrapped = layer.get_attr("wrapped_layer")
        self.end = (
            type(wrapped).__name__.endswith("TimeDistributed")
            and layer.name == f"{wrapped.name}_end"
        )
        step_shape = self.shape[1:] if self.end else self.shape
        if self.end:
            if self.shape[0] != self.steps_n or tuple(in_shape) != tuple(step_shape):
                raise UnsupportedLayerError(
                    f"layer '{layer.name}' (TimeDistributed end): {self.steps_n} steps of "
                    f"{tuple(in_shape)} do not make its output {self.shape}"
                )
            out_type = result_type(layer)
            if out_type != in_type:
                raise UnsupportedLayerError(
                    f"layer '{layer.name}' (TimeDistributed end) writes {in_type} values into "
                    f"{out_type}; hls4ml's write_time_step takes one type for both"
                )
        elif tuple(in_shape) != (self.steps_n, *step_shape):
            raise UnsupportedLayerError(
                f"layer '{layer.name}' (TimeDistributed): input {tuple(in_shape)} is not "
                f"{self.steps_n} steps of {tuple(step_shape)}"
            )
        self.out_type = in_type
        self.out_interval = interval
        self.max_magnitude = interval.magnitude

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.end:
            return x.reshape(x.shape[0] // self.steps_n, *self.shape)
        return x.reshape(x.shape[0] * self.steps_n, *self.shape)


def time_distributed_step(layer: Any, ctx: Context) -> Step:
    return TimeStepsStep(layer, ctx)
