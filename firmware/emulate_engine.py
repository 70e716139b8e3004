"""Vectorised fixed-point engine behind :mod:`hepfpga.firmware.emulate`.

An hls4ml ``ModelGraph`` is turned into a list of *steps*, plain numpy objects (picklable, no
hls4ml inside) that reproduce the C simulation's ``ap_fixed`` arithmetic for many events at
once. Each tensor travels as its **raw integer codes** (the value times ``2**fractional`` of its
type) in a float array, so every product and sum is an integer computation:

* float arithmetic on integers is exact while every intermediate magnitude stays below the
  significand (``2**24`` for float32, ``2**53`` for float64). The plan tracks an interval of
  raw codes for every tensor (from the input type's range and the weights) and picks float32
  only when every bound is below ``2**22``, float64 when below ``2**50``; otherwise the layer
  is refused and the emulator falls back to the C simulation.
* a conversion to a type (``res = (res_T) acc`` in hls4ml's C++) is a scaling by a power of
  two, the type's rounding mode on the exact scaled value, then its overflow mode on the raw
  range; steps whose interval proves them no-ops are skipped.
* a Dense or Conv layer is ``acc = (accum_t) bias + sum((accum_t) (x * w))``. With products
  exact in ``accum_t`` (its fractional bits cover input + weight) and either no possible
  overflow of ``accum_t`` or a wrapping ``accum_t`` (modular sums do not depend on the order),
  this is one matrix product; otherwise every product is converted on its own.
* the table-based softmax (``stable`` and ``latency``) is rebuilt with the same tables: entries
  are computed in float32 with the C library's own ``expf`` (through ctypes), as hls4ml's
  ``init_exp_table`` does, and addressed by the top bits of the same fixed-point values; the
  sum uses hls4ml's balanced adder tree in ``accum_t``.

``io_stream`` graphs (the layers hls4ml inserts: zero padding, ``Clone``, ``Repack``),
average pooling and depthwise/separable convolutions are reproduced by the steps of
:mod:`hepfpga.firmware.emulate_stream`. Anything else (table activations, io_stream's
``Broadcast``, binary/ternary/power-of-two products...) raises :class:`UnsupportedLayerError`
with the reason, which :class:`~hepfpga.firmware.emulate.Emulator` turns into a loud fallback
to the C simulation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError
from hepfpga.firmware.layers.graph import SPLIT_OUTPUT_SUFFIXES
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation

__all__ = ["Plan", "UnsupportedLayerError", "build_plan", "register_activation", "register_step"]

#: largest raw magnitude allowed anywhere, per float dtype (margin below the significand, so
#: that ``floor(s + 0.5)`` and the scalings of the rounding step stay exact too)
_DTYPE_LIMITS = ((np.float32, 2.0**22), (np.float64, 2.0**50))
#: convolutions whose dense-matrix form has at most this many entries run as one product
TOEPLITZ_MAX_ENTRIES = 1 << 20
#: hls4ml IOTypes reproduced (io_stream's own layers and kernels: emulate_stream)
IO_TYPES = ("io_parallel", "io_stream")


class UnsupportedLayerError(Exception):
    """The graph has something the engine cannot reproduce exactly; the message says what."""


# -- types and conversions ---------------------------------------------------------------------
def fixed_type(precision: Any, where: str) -> FixedType:
    """The :class:`FixedType` of an hls4ml precision object (``fixed<16,6,RND_CONV,SAT,0>``)."""
    try:
        return FixedType.parse(str(precision))
    except ConfigError as exc:
        raise UnsupportedLayerError(
            f"{where}: type {precision} is not an ap_fixed/ap_int type"
        ) from exc


def raw_range(t: FixedType) -> tuple[float, float]:
    if t.signed:
        return -(2.0 ** (t.width - 1)), 2.0 ** (t.width - 1) - 1
    return 0.0, 2.0**t.width - 1


@dataclass(frozen=True)
class Interval:
    """Bounds of the raw codes of a tensor (inclusive)."""

    lo: float
    hi: float

    @property
    def magnitude(self) -> float:
        return max(abs(self.lo), abs(self.hi))


def _round_scalar(value: float, mode: Rounding) -> float:
    return float(_round(np.array([value], dtype=np.float64), mode)[0])


def _round(s: np.ndarray, mode: Rounding) -> np.ndarray:
    """Round the exact scaled values ``s`` to integers with ``mode`` (``s`` may be modified)."""
    if mode is Rounding.TRN:
        return np.floor(s, out=s)
    if mode is Rounding.RND_CONV:
        return np.rint(s, out=s)
    if mode is Rounding.TRN_ZERO:
        return np.trunc(s, out=s)
    if mode is Rounding.RND:
        s += 0.5
        return np.floor(s, out=s)
    if mode is Rounding.RND_MIN_INF:
        s -= 0.5
        return np.ceil(s, out=s)
    sign = np.sign(s)
    a = np.abs(s)
    if mode is Rounding.RND_INF:
        return sign * np.floor(a + 0.5)
    return sign * np.ceil(a - 0.5)  # RND_ZERO


@dataclass
class Convert:
    """``(to_type) x`` for raw codes of fractional bits ``from_frac``, in place where possible."""

    scale: float
    rounding: Rounding | None  # None: the scaling is exact (no bits dropped)
    saturation: Saturation | None  # None: the interval proves the value always fits
    lo: float
    hi: float
    width: int

    def __call__(self, r: np.ndarray) -> np.ndarray:
        """Convert raw codes; ``r`` may be overwritten."""
        if self.scale != 1.0:
            r *= r.dtype.type(self.scale)
        if self.rounding is not None:
            r = _round(r, self.rounding)
        if self.saturation is None:
            return r
        if self.saturation is Saturation.WRAP:
            span = r.dtype.type(2.0**self.width)
            r = np.mod(r - self.lo, span) + r.dtype.type(self.lo)
        elif self.saturation is Saturation.SAT_ZERO:
            r = np.where((r < self.lo) | (r > self.hi), r.dtype.type(0), r)
        else:
            np.clip(r, self.lo, self.hi, out=r)
        return r

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.rounding is None and self.saturation is None


def plan_convert(
    from_frac: int, interval: Interval, to: FixedType
) -> tuple[Convert, Interval, float]:
    """The conversion to ``to``, the interval after it, and the largest magnitude met on the way."""
    shift = to.fractional - from_frac
    scale = 2.0**shift
    rounding = to.rounding if shift < 0 else None
    lo, hi = interval.lo * scale, interval.hi * scale
    if rounding is not None:
        lo, hi = _round_scalar(lo, rounding), _round_scalar(hi, rounding)
    biggest = max(abs(lo), abs(hi)) + 1.0
    tlo, thi = raw_range(to)
    saturation: Saturation | None = to.saturation
    if to.saturation is Saturation.SAT_SYM and to.signed:
        tlo = -thi
    if tlo <= lo and hi <= thi:
        saturation = None
    elif to.saturation is Saturation.WRAP:
        lo, hi = raw_range(to)
    elif to.saturation is Saturation.SAT_ZERO:
        lo, hi = min(max(lo, tlo), 0.0), max(min(hi, thi), 0.0)
    else:
        lo, hi = max(lo, tlo), min(hi, thi)
    convert = Convert(scale, rounding, saturation, tlo, thi, to.width)
    return convert, Interval(lo, hi), biggest


def quantize_to_raw(values: np.ndarray, to: FixedType) -> np.ndarray:
    """Raw codes of float values converted to ``to`` (``ap_fixed<...> y = (double) x``)."""
    return np.ldexp(to.quantize(values), to.fractional)


# -- steps -------------------------------------------------------------------------------------
class Step:
    """One layer: maps the raw codes of its input tensor(s) to those of its output."""

    name: str
    inputs: tuple[str, ...]
    output: str
    #: the output tensor's shape per event
    shape: tuple[int, ...]
    #: the output's type and the interval of its raw codes
    out_type: FixedType
    out_interval: Interval
    #: largest raw magnitude this step handles (decides the float dtype)
    max_magnitude: float
    #: the step's output holds raw codes times this power of two (folded into the next step)
    output_scale: float = 1.0
    #: float type of the step's arithmetic: float32 where every magnitude is below 2**22
    dtype: Any = np.float64

    #: raw codes of the output from those of the inputs, one array per name in ``inputs``
    #: (each step takes as many as it has inputs: ``step(x)``, ``step(a, b)``)
    __call__: Callable[..., np.ndarray]

    def prepare(self, dtype: Any) -> None:
        """Cast constant arrays to the plan's float dtype."""


@dataclass
class Context:
    """What a step builder knows about the tensors built so far."""

    types: dict[str, FixedType]
    intervals: dict[str, Interval]
    shapes: dict[str, tuple[int, ...]]


def _input_of(layer: Any, ctx: Context) -> tuple[str, FixedType, Interval, tuple[int, ...]]:
    if len(layer.inputs) != 1:
        raise UnsupportedLayerError(f"layer '{layer.name}' ({layer.class_name}) has several inputs")
    name = layer.inputs[0]
    if name not in ctx.types:
        raise UnsupportedLayerError(
            f"layer '{layer.name}' reads '{name}', which no earlier layer writes"
        )
    return name, ctx.types[name], ctx.intervals[name], ctx.shapes[name]


def _out_shape(layer: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in layer.get_output_variable().shape)


def _result_type(layer: Any) -> FixedType:
    return fixed_type(layer.get_output_variable().type.precision, f"layer '{layer.name}' result")


def _layer_type(layer: Any, key: str) -> FixedType:
    if key not in layer.types:
        raise UnsupportedLayerError(f"layer '{layer.name}' has no {key}")
    return fixed_type(layer.types[key].precision, f"layer '{layer.name}' {key}")


class ConvertStep(Step):
    """Input conversion, linear activation, relu, reshape and flatten: ``(res_T) f(x)``."""

    def __init__(self, layer: Any, ctx: Context, relu: bool) -> None:
        self.name = layer.name
        source, in_type, interval, _ = _input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.relu = relu
        self.shape = _out_shape(layer)
        if relu:
            interval = Interval(max(interval.lo, 0.0), max(interval.hi, 0.0))
        self.out_type = _result_type(layer)
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


def written_weights(layer: Any, key: str) -> np.ndarray:
    """The values of the weights ``key`` as the C++ reads them: hls4ml writes each value as
    decimal text with as many decimals as its type has fractional bits (``'{:.Ff}'``) and the
    C simulation parses that text as a double. A float weight exactly on a rounding tie of its
    type can be printed just off the tie, so the text, not the float, decides the rounding."""
    weight = layer.weights.get(key) if hasattr(layer.weights, "get") else None
    if weight is None:
        raise UnsupportedLayerError(f"layer '{layer.name}' has no '{key}' weights")
    data = np.asarray(weight.data)
    fmt = getattr(weight, "precision_fmt", "")
    if not fmt:
        return data.astype(np.float64)
    text = [fmt.format(value) for value in data.reshape(-1)]
    return np.array([float(value) for value in text], dtype=np.float64).reshape(data.shape)


def _weights(layer: Any, key: str, t: FixedType) -> np.ndarray:
    # the C++ initialises the weight arrays from their decimal text with (weight_t) value
    return quantize_to_raw(written_weights(layer, key), t)


def _product_kind(layer: Any) -> str:
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
        source, in_type, interval, _ = _input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.patches = patches
        self.shape = _out_shape(layer)
        if _product_kind(layer) != "mult":
            raise UnsupportedLayerError(
                f"layer '{layer.name}': hls4ml uses its '{_product_kind(layer)}' product "
                "(binary, ternary or power-of-two weights), which the engine does not reproduce"
            )
        weight_t = _layer_type(layer, "weight_t")
        accum_t = _layer_type(layer, "accum_t")
        self.out_type = _result_type(layer)
        w = quantize_to_raw(kernel, weight_t)  # (n_in, n_out)
        if layer.get_attr("use_bias", True) and "bias" in layer.weights:
            bias_t = _layer_type(layer, "bias_t")
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


class BatchNormStep(Step):
    """``res = (res_T)(x * scale + bias)``, computed exactly then converted once."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        self.name = layer.name
        source, in_type, interval, _ = _input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = _out_shape(layer)
        if _product_kind_bn(layer) != "mult":
            raise UnsupportedLayerError(f"layer '{layer.name}': non-multiplying batch-norm product")
        scale_t = _layer_type(layer, "scale_t")
        bias_t = _layer_type(layer, "bias_t")
        self.out_type = _result_type(layer)
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
        source, in_type, interval, in_shape = _input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = _out_shape(layer)
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
        accum_t = _layer_type(layer, "accum_t") if "accum_t" in layer.types else in_type
        self.to_accum: Convert | None
        self.to_accum, acc_interval, big1 = plan_convert(in_type.fractional, interval, accum_t)
        self.out_type = _result_type(layer)
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
            view = x[_shifted(offset, self.stride, out_spatial)]
            best = view.copy() if best is None else np.maximum(best, view, out=best)
        assert best is not None
        if self.to_accum is not None:
            best = self.to_accum(best)
        out = self.result(best)
        return out.reshape(n, *self.shape)


def _shifted(
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


def _dense_step(layer: Any, ctx: Context) -> Step:
    if layer.get_attr("activation", "linear") not in ("linear", None):
        raise UnsupportedLayerError(f"layer '{layer.name}': fused activation")
    kernel = written_weights(layer, "weight")
    kernel = kernel.reshape(-1, kernel.shape[-1])
    return MatmulStep(layer, ctx, kernel, None)


def conv_matmul(layer: Any, ctx: Context, kernel: np.ndarray, dims: int) -> Step:
    """The convolution ``layer`` with ``kernel`` (``(*filt, channels, filters)``) as a
    :class:`MatmulStep` (also used for depthwise kernels spread over all channels)."""
    _, _, _, in_shape = _input_of(layer, ctx)
    n_filt = layer.get_attr("n_filt")
    if kernel.ndim != dims + 2 or kernel.shape[-1] != n_filt:
        raise UnsupportedLayerError(f"layer '{layer.name}': kernel of shape {kernel.shape}")
    patches = _conv_patches(layer, in_shape, dims)
    kernel = kernel.reshape(-1, n_filt)
    n_in = math.prod(in_shape)
    n_positions = math.prod(_out_shape(layer)[:-1])
    if n_in * n_positions * n_filt <= TOEPLITZ_MAX_ENTRIES:
        # the convolution as one dense matrix: column (position, filter) holds the kernel
        # at the inputs that position sees, zeros elsewhere; one larger matrix product
        # beats im2col's copies for small inputs. Same products, same sums: same result.
        basis = np.eye(n_in)
        dense = (patches(basis) @ kernel).reshape(n_in, n_positions * n_filt)
        return MatmulStep(layer, ctx, dense, None, bias_repeat=n_positions)
    return MatmulStep(layer, ctx, kernel, patches)


def _conv_step(dims: int) -> Callable[[Any, Context], Step]:
    def build(layer: Any, ctx: Context) -> Step:
        kernel = written_weights(layer, "weight")
        return conv_matmul(layer, ctx, kernel, dims)

    return build


def _activation_step(layer: Any, ctx: Context) -> Step:
    activation = str(layer.get_attr("activation", "")).lower()
    builder = ACTIVATION_BUILDERS.get(activation)
    if builder is None:
        raise UnsupportedLayerError(
            f"layer '{layer.name}': activation '{activation}' is not reproduced; "
            f"reproduced: {', '.join(sorted(ACTIVATION_BUILDERS))}, softmax"
        )
    return builder(layer, ctx)


#: activation name (lower case) of an hls4ml ``Activation`` layer -> step builder
ACTIVATION_BUILDERS: dict[str, Callable[[Any, Context], Step]] = {
    "relu": lambda layer, ctx: ConvertStep(layer, ctx, relu=True),
    "linear": lambda layer, ctx: ConvertStep(layer, ctx, relu=False),
}


def _reshape_step(layer: Any, ctx: Context) -> Step:
    return ConvertStep(layer, ctx, relu=False)


# -- softmax -----------------------------------------------------------------------------------
def _libm_expf() -> Callable[[float], float]:
    name = ctypes.util.find_library("m")
    if name is None:
        raise UnsupportedLayerError(
            "the C math library (libm) was not found; the exp table needs its expf"
        )
    expf = ctypes.CDLL(name).expf
    expf.argtypes = [ctypes.c_float]
    expf.restype = ctypes.c_float
    return expf


def _config_value(config_cpp: str, key: str) -> str:
    match = re.search(rf"\b{key}\s*=\s*([^;]+);", config_cpp)
    if match is None:
        raise UnsupportedLayerError(f"'{key}' not found in the generated softmax config")
    return match.group(1).strip()


def _top_bits(raw: np.ndarray, t: FixedType, n_bits: int) -> np.ndarray:
    """hls4ml's ``softmax_idx_from_real_val``: the top ``n_bits`` of the two's complement code."""
    if t.signed:
        raw = np.mod(raw, 2.0**t.width)
    if t.width > n_bits:
        raw = np.floor(raw * 2.0 ** (n_bits - t.width))
    return raw.astype(np.intp)


def _table_inputs(t: FixedType, n_bits: int) -> np.ndarray:
    """hls4ml's ``softmax_real_val_from_idx`` for every index, as float32."""
    if t.width > 24:
        raise UnsupportedLayerError(
            f"softmax table address type {t} is wider than a float significand"
        )
    codes = np.arange(2**n_bits, dtype=np.float64) * 2.0 ** (t.width - n_bits)
    if t.signed:
        codes = np.where(codes >= 2.0 ** (t.width - 1), codes - 2.0**t.width, codes)
    return np.ldexp(codes, -t.fractional).astype(np.float32)


def _balanced_sum(columns: list[np.ndarray], add: Callable[..., np.ndarray]) -> np.ndarray:
    """hls4ml's ``reduce``: a balanced tree, left part the largest power of two below n."""
    n = len(columns)
    if n == 1:
        return columns[0]
    if n == 2:
        return add(columns[0], columns[1])
    left = 2 ** math.floor(math.log2(n - 1))
    return add(_balanced_sum(columns[:left], add), _balanced_sum(columns[left:], add))


class SoftmaxStep(Step):
    """hls4ml's table-based softmax (``stable`` or ``latency``), reproduced table for table."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        self.name = layer.name
        source, in_type, interval, in_shape = _input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = _out_shape(layer)
        config = layer.get_attr("config_cpp")
        if not config:
            raise UnsupportedLayerError(
                f"layer '{layer.name}': the softmax config was not generated"
            )
        self.implementation = _config_value(config, "implementation").rsplit("::", 1)[-1]
        if self.implementation not in ("stable", "latency", "argmax"):
            raise UnsupportedLayerError(
                f"layer '{layer.name}': softmax implementation '{self.implementation}'; "
                "reproduced: stable, latency, argmax"
            )
        if int(_config_value(config, "n_outer")) != 1 or int(_config_value(config, "n_inner")) != 1:
            raise UnsupportedLayerError(f"layer '{layer.name}': multi-dimensional softmax")
        self.in_type = in_type
        self.out_type = _result_type(layer)
        self.max_magnitude = interval.magnitude
        self.out_interval = Interval(*raw_range(self.out_type))
        if self.implementation == "argmax":
            # res[i] = (res_T) 0, then res[idx] = (res_T) 1 at the first strict maximum
            self.one = float(quantize_to_raw(np.array([1.0]), self.out_type)[0])
            self.zero = float(quantize_to_raw(np.array([0.0]), self.out_type)[0])
            return
        exp_size = int(_config_value(config, "exp_table_size"))
        inv_size = int(_config_value(config, "inv_table_size"))
        exp_scale = np.float32(float(_config_value(config, "exp_scale")))
        exp_table_t = _layer_type(layer, "exp_table_t")
        inv_table_t = _layer_type(layer, "inv_table_t")
        # hls4ml's SoftmaxConfigTemplate fills types left at model_default_t like this
        if layer.types["accum_t"].name == "model_default_t":
            scale = math.ceil(math.log2(int(_config_value(config, "n_slice"))))
            self.accum_t = FixedType(
                exp_table_t.width + scale, exp_table_t.integer + scale, exp_table_t.signed
            )
        else:
            self.accum_t = _layer_type(layer, "accum_t")
        if layer.types["inv_inp_t"].name == "model_default_t":
            self.inv_inp_t = exp_table_t
        else:
            self.inv_inp_t = _layer_type(layer, "inv_inp_t")
        if self.implementation != "stable":
            norm_t = in_type
        elif "inp_norm_t" in layer.types:
            norm_t = _layer_type(layer, "inp_norm_t")
        else:
            signed = int(in_type.signed)
            norm_t = FixedType(in_type.width - signed, in_type.integer - signed, signed=False)
        self.address_t = norm_t
        self.exp_bits = exp_size.bit_length() - 1
        self.inv_bits = inv_size.bit_length() - 1
        for size in (exp_size, inv_size):
            if size & (size - 1):
                raise UnsupportedLayerError(
                    f"layer '{layer.name}': table size {size} not a power of two"
                )
        if self.address_t.width < self.exp_bits or self.inv_inp_t.width < self.inv_bits:
            raise UnsupportedLayerError(f"layer '{layer.name}': table address wider than its type")

        expf = _libm_expf()
        x = _table_inputs(self.address_t, self.exp_bits) * exp_scale
        if self.implementation == "stable":
            x = -x
        exp_values = np.array([expf(float(v)) for v in x], dtype=np.float32)
        # an overflowing exp (inf) has no defined ap_fixed value: looked up, it is reported
        self.exp_table = np.full(len(exp_values), np.nan)
        finite = np.isfinite(exp_values)
        self.exp_table[finite] = quantize_to_raw(exp_values[finite].astype(np.float64), exp_table_t)
        self.exp_frac = exp_table_t.fractional
        with np.errstate(divide="ignore"):
            inv_values = np.float32(1) / _table_inputs(self.inv_inp_t, self.inv_bits)
        finite = np.isfinite(inv_values)
        # 1/0 has no defined ap_fixed value; a lookup of such an entry is reported, not guessed
        self.inv_table = np.full(inv_size, np.nan)
        self.inv_table[finite] = quantize_to_raw(inv_values[finite].astype(np.float64), inv_table_t)
        self.inv_frac = inv_table_t.fractional
        self._plan_conversions(interval, in_shape)

    def _plan_conversions(self, interval: Interval, in_shape: tuple[int, ...]) -> None:
        f_in = self.in_type.fractional
        n = int(math.prod(in_shape))
        if self.implementation == "stable":
            diff = Interval(0.0, interval.hi - interval.lo)  # x_max - data[i] >= 0
            self.norm, _, _ = plan_convert(f_in, diff, self.address_t)
        exp_interval = Interval(float(np.nanmin(self.exp_table)), float(np.nanmax(self.exp_table)))
        self.to_accum, acc, _ = plan_convert(self.exp_frac, exp_interval, self.accum_t)
        # every partial sum of the tree lies within n times the entries' range
        total = Interval(min(acc.lo, n * acc.lo), max(acc.hi, n * acc.hi))
        self.add, _, _ = plan_convert(self.accum_t.fractional, total, self.accum_t)
        self.to_inv_inp, _, _ = plan_convert(
            self.accum_t.fractional, Interval(*raw_range(self.accum_t)), self.inv_inp_t
        )
        self.to_result, _, _ = plan_convert(
            self.accum_t.fractional + self.inv_frac,
            Interval(0.0, float(np.nanmax(np.abs(self.inv_table))) * acc.magnitude),
            self.out_type,
        )
        if float(np.nanmax(np.abs(self.inv_table))) * acc.magnitude >= 2.0**50:
            raise UnsupportedLayerError(f"layer '{self.name}': exp * 1/sum exceeds 50 bits")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        data = x.reshape(x.shape[0], -1).astype(np.float64)
        if self.implementation == "argmax":
            out = np.full(data.shape, self.zero, dtype=x.dtype)
            out[np.arange(len(data)), np.argmax(data, axis=1)] = self.one  # first max wins
            return out.reshape(x.shape[0], *self.shape)
        if self.implementation == "stable":
            diff = data.max(axis=1, keepdims=True) - data  # exact: x_max - data[i]
            address = _top_bits(self.norm(diff), self.address_t, self.exp_bits)
        else:
            address = _top_bits(data, self.in_type, self.exp_bits)
        exp_res = self.to_accum(self.exp_table[address])
        if np.isnan(exp_res).any():
            raise UnsupportedLayerError(f"layer '{self.name}': exp overflowed in the table")
        total = _balanced_sum(
            [exp_res[:, i] for i in range(exp_res.shape[1])], lambda a, b: self.add(a + b)
        )
        # a single class leaves ``total`` a view of exp_res: convert a copy
        inv_address = _top_bits(self.to_inv_inp(total.copy()), self.inv_inp_t, self.inv_bits)
        inv = self.inv_table[inv_address]
        if np.isnan(inv).any():
            raise UnsupportedLayerError(
                f"layer '{self.name}': the sum addressed the undefined entry 1/0"
            )
        exp_res *= inv[:, None]  # exact: below 2**50, checked when built
        out = self.to_result(exp_res).reshape(x.shape[0], *self.shape)
        return out.astype(x.dtype, copy=False)


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
        source, in_type, interval, in_shape = _input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = _out_shape(layer)
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
        self.out_type = _result_type(layer)
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
        self.out_type = _result_type(layer)
        accum_t = _layer_type(layer, "accum_t") if "accum_t" in layer.types else in_type
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
        self.shape = _out_shape(layer)
        self.out_type = _result_type(layer)
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
            accum_t = _layer_type(layer, "accum_t")
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


# -- the plan ----------------------------------------------------------------------------------
#: hls4ml layer class -> step builder (one step, or one per output of the layer); the
#: registry the graph walk dispatches on. Sibling modules add their steps on import (below).
STEP_BUILDERS: dict[str, Callable[[Any, Context], Step | list[Step]]] = {
    "Dense": _dense_step,
    "Conv1D": _conv_step(1),
    "Conv2D": _conv_step(2),
    "Activation": _activation_step,
    "ReLU": _activation_step,
    "Softmax": lambda layer, ctx: SoftmaxStep(layer, ctx),
    "BatchNormalization": lambda layer, ctx: BatchNormStep(layer, ctx),
    "Reshape": _reshape_step,
    "ZeroPadding1D": MoveStep,
    "ZeroPadding2D": MoveStep,
    "Cropping1D": MoveStep,
    "Cropping2D": MoveStep,
    "Resize": MoveStep,
    "Merge": MergeStep,
    "Concatenate": MergeStep,
    "Dot": MergeStep,
}


#: modules that add their builders to STEP_BUILDERS / ACTIVATION_BUILDERS when imported
#: (imported by :func:`build_plan`, not here: they import this module)
STEP_MODULES = (
    "hepfpga.firmware.emulate_stream",  # pooling, pointwise/depthwise convolutions, io_stream
    "hepfpga.firmware.emulate_tables",
    "hepfpga.firmware.emulate_recurrent",
)


def register_step(class_name: str, builder: Callable[[Any, Context], Step | list[Step]]) -> None:
    """Make ``builder`` the step of hls4ml layers of class ``class_name`` (one per class)."""
    if STEP_BUILDERS.get(class_name, builder) is not builder:
        raise ValueError(f"hls4ml layer class {class_name} has two emulator steps")
    STEP_BUILDERS[class_name] = builder


def register_activation(name: str, builder: Callable[[Any, Context], Step]) -> None:
    """Make ``builder`` the step of hls4ml ``Activation`` layers computing ``name``."""
    if ACTIVATION_BUILDERS.get(name, builder) is not builder:
        raise ValueError(f"activation {name} has two emulator steps")
    ACTIVATION_BUILDERS[name] = builder


@dataclass(frozen=True)
class PlanInput:
    """One input of the model: the tensor the steps read, its type and shape per event."""

    tensor: str
    type: FixedType
    shape: tuple[int, ...]
    #: the model's name for it (the hls4ml input layer)
    name: str = "input"


@dataclass
class Plan:
    """The steps of one model, runnable on raw codes without hls4ml."""

    #: the type and shape of the first input (``inputs`` has every one)
    input_type: FixedType
    input_shape: tuple[int, ...]
    steps: list[Step]
    #: the first output tensor (``outputs`` has every one)
    output: str
    dtype: Any
    #: layer name -> output tensor name, for reading intermediate results (the logits)
    layer_outputs: dict[str, str]
    inputs: tuple[PlanInput, ...] = ()
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.inputs:
            self.inputs = (PlanInput("__input__", self.input_type, self.input_shape),)
        if not self.outputs:
            self.outputs = (self.output,)

    def run(self, x: Any, keep: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Raw outputs of the model (keys ``outputs``) and of the layers named in ``keep``.

        ``x``: one array, or a list of one array per input (``inputs``' order); float32 (as
        the C simulation sees it) and finite.
        """
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(arrays) != len(self.inputs):
            raise ValueError(f"the plan has {len(self.inputs)} inputs, got {len(arrays)} arrays")
        tensors: dict[str, np.ndarray] = {}
        for spec, array in zip(self.inputs, arrays, strict=True):
            t = spec.type
            raw = np.asarray(array, dtype=np.float64) * 2.0**t.fractional
            lo, hi = raw_range(t)
            raw = Convert(1.0, t.rounding, t.saturation, lo, hi, t.width)(raw)
            tensors[spec.tensor] = raw.astype(self.dtype).reshape(len(raw), *spec.shape)
        wanted = {self.layer_outputs[name]: name for name in keep}
        kept: dict[str, np.ndarray] = {}
        users = dict(self.users)
        for step in self.steps:
            args = []
            for name in step.inputs:
                users[name] -= 1
                # steps overwrite their input: hand over the tensor on its last use only
                args.append(tensors[name] if users[name] == 0 else tensors[name].copy())
                if users[name] == 0:
                    del tensors[name]
            result = step(*(a if a.dtype == step.dtype else a.astype(step.dtype) for a in args))
            tensors[step.output] = result
            if step.output in wanted:
                kept[step.output] = (
                    result / step.output_scale if step.output_scale != 1.0 else (result.copy())
                )
        for output in self.outputs:
            kept[output] = tensors[output]
        return kept

    @property
    def users(self) -> dict[str, int]:
        count: dict[str, int] = {}
        for output in self.outputs:
            count[output] = count.get(output, 0) + 1
        for step in self.steps:
            for name in step.inputs:
                count[name] = count.get(name, 0) + 1
        return count

    def width_of(self, tensor: str) -> int:
        """Numbers per event of a tensor."""
        for step in self.steps:
            if step.output == tensor:
                return int(math.prod(step.shape))
        raise KeyError(tensor)

    def type_of(self, tensor: str) -> FixedType:
        for step in self.steps:
            if step.output == tensor:
                return step.out_type
        raise KeyError(tensor)


def _dtype_for(magnitude: float, where: str) -> Any:
    for dtype, limit in _DTYPE_LIMITS:
        if magnitude < limit:
            return dtype
    raise UnsupportedLayerError(
        f"layer '{where}': intermediate values need {math.log2(magnitude):.0f} bits, more "
        "than a float64 significand holds exactly"
    )


def _fold_scales(steps: list[Step], outputs: tuple[str, ...]) -> None:
    """Fold the power-of-two scaling of a conversion into the matrix product before it.

    ``(res_T) acc`` scales ``acc``'s raw codes by ``2**(f_res - f_acc)`` before rounding; when
    the product's own result conversion is a no-op and the conversion is its only consumer,
    the weights and bias can carry that factor (exact: powers of two), saving a pass.
    """
    consumers: dict[str, list[Step]] = {}
    for step in steps:
        for name in step.inputs:
            consumers.setdefault(name, []).append(step)
    for step in steps:
        if not isinstance(step, MatmulStep) or step.output in outputs:
            continue
        after = consumers.get(step.output, [])
        if step.accum_wrap is not None or not step.result.is_identity or len(after) != 1:
            continue
        (convert_step,) = after
        if not isinstance(convert_step, ConvertStep) or convert_step.convert.scale == 1.0:
            continue
        factor = convert_step.convert.scale
        step.w = step.w * factor
        step.b = step.b * factor
        step.output_scale = factor
        convert_step.convert.scale = 1.0


def build_plan(hls_model: Any) -> Plan:
    """Walk an hls4ml ``ModelGraph`` (after conversion) into a :class:`Plan`.

    Raises :class:`UnsupportedLayerError` naming the first layer or type that cannot be reproduced.
    """
    for module in STEP_MODULES:
        importlib.import_module(module)
    io_type = hls_model.config.get_config_value("IOType")
    if io_type not in IO_TYPES:
        raise UnsupportedLayerError(f"{io_type} (reproduced: {', '.join(IO_TYPES)})")
    layers = list(hls_model.get_layers())
    if not layers or layers[0].class_name != "Input":
        first = layers[0] if layers else None
        raise UnsupportedLayerError(
            f"the first layer '{getattr(first, 'name', None)}' is "
            f"{getattr(first, 'class_name', None)}, not Input"
        )
    ctx = Context(types={}, intervals={}, shapes={})
    steps: list[Step] = []
    layer_outputs: dict[str, str] = {}
    inputs: list[PlanInput] = []
    for layer in layers:
        if layer.class_name == "Input":
            # the graph's input tensors: the first is "__input__", the others "__input<k>__"
            input_type = _result_type(layer)
            if input_type.width > 50:
                raise UnsupportedLayerError(f"input type {input_type} is wider than 50 bits")
            tensor = layer.outputs[0]
            ctx.types[tensor] = input_type
            ctx.intervals[tensor] = Interval(*raw_range(input_type))
            ctx.shapes[tensor] = _out_shape(layer)
            layer_outputs[layer.name] = tensor
            name = "__input__" if not inputs else f"__input{len(inputs)}__"
            inputs.append(PlanInput(name, input_type, _out_shape(layer), layer.name))
            continue
        builder = STEP_BUILDERS.get(layer.class_name)
        if builder is None:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' ({layer.class_name}); reproduced: "
                f"{', '.join(sorted(STEP_BUILDERS))}"
            )
        built = builder(layer, ctx)
        # a builder returns one step per output of the layer (io_stream's Clone has several)
        layer_steps = built if isinstance(built, list) else [built]
        if len(layer_steps) != len(layer.outputs):
            raise UnsupportedLayerError(f"layer '{layer.name}' has {len(layer.outputs)} outputs")
        for step in layer_steps:
            steps.append(step)
            ctx.types[step.output] = step.out_type
            ctx.intervals[step.output] = step.out_interval
            ctx.shapes[step.output] = step.shape
        layer_outputs[layer.name] = layer_steps[0].output
        # a layer hls4ml split is read under its Keras name from the part writing its output
        for suffix in SPLIT_OUTPUT_SUFFIXES:
            if layer.name.endswith(suffix):
                layer_outputs.setdefault(layer.name[: -len(suffix)], layer_steps[0].output)
    tensor_of = {layer_outputs[spec.name]: spec.tensor for spec in inputs}
    # in the model's input order (the C simulation's argument order)
    order = [str(name) for name in getattr(hls_model, "inputs", [])]
    if sorted(order) == sorted(tensor_of):
        rank = {name: k for k, name in enumerate(order)}
        inputs.sort(key=lambda spec: rank[layer_outputs[spec.name]])
        # the first input keeps the name "__input__"
        renamed = {
            layer_outputs[spec.name]: "__input__" if k == 0 else f"__input{k}__"
            for k, spec in enumerate(inputs)
        }
        inputs = [
            PlanInput(renamed[layer_outputs[spec.name]], spec.type, spec.shape, spec.name)
            for spec in inputs
        ]
        tensor_of = renamed
    input_magnitude = max(Interval(*raw_range(spec.type)).magnitude for spec in inputs)
    for step in steps:
        step.dtype = _dtype_for(step.max_magnitude, step.name)
    dtype = steps[0].dtype if steps else _dtype_for(input_magnitude, layers[0].name)
    outputs = tuple(str(name) for name in hls_model.outputs)
    _fold_scales(steps, outputs)
    for step in steps:
        step.prepare(step.dtype)
        step.inputs = tuple(tensor_of.get(n, n) for n in step.inputs)
    written = {step.output for step in steps}
    for output in outputs:
        if output in tensor_of:
            raise UnsupportedLayerError(f"the model output '{output}' is an input")
        if output not in written:
            raise UnsupportedLayerError(f"the model output '{output}' is not written by any layer")
    return Plan(
        inputs[0].type,
        inputs[0].shape,
        steps,
        outputs[0],
        dtype,
        layer_outputs,
        inputs=tuple(inputs),
        outputs=outputs,
    )
