"""hls4ml's table-based softmax (``stable``, ``latency``) and ``argmax``, reproduced table for
table: entries computed in float32 with the C library's own ``expf`` (through ctypes), as
hls4ml's ``init_exp_table`` does, addressed by the top bits of the same fixed-point values;
the sum uses hls4ml's balanced adder tree in ``accum_t``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from hepfpga.firmware.emulate_engine.types import (
    Context,
    Interval,
    Step,
    UnsupportedLayerError,
    input_of,
    layer_type,
    out_shape,
    plan_convert,
    quantize_to_raw,
    raw_range,
    result_type,
)
from hepfpga.quantize.fixed import FixedType

__all__ = ["SoftmaxStep", "exp_table", "inv_table", "softmax_step"]


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


def exp_table(
    address_t: FixedType,
    n_bits: int,
    table_t: FixedType,
    scale: float = 1.0,
    *,
    negative: bool = True,
) -> np.ndarray:
    """hls4ml's ``init_exp_table``: entry ``i`` is ``(table_t) expf(-x)`` (``expf(x)`` unless
    ``negative``) for ``x`` the float32 value of ``address_t`` with ``i`` in its top
    ``n_bits``, times ``scale``; as raw codes of ``table_t`` (NaN: an exp that overflows to
    inf, which has no defined ``ap_fixed`` value: looked up, it is reported)."""
    expf = _libm_expf()
    x = _table_inputs(address_t, n_bits) * np.float32(scale)
    if negative:
        x = -x
    values = np.array([expf(float(v)) for v in x], dtype=np.float32)
    table = np.full(len(values), np.nan)
    finite = np.isfinite(values)
    table[finite] = quantize_to_raw(values[finite].astype(np.float64), table_t)
    return table


def inv_table(address_t: FixedType, n_bits: int, table_t: FixedType) -> np.ndarray:
    """hls4ml's ``init_invert_table``: entry ``i`` is ``(table_t)(1 / x)`` (float32) for ``x``
    the value of ``address_t`` with ``i`` in its top ``n_bits``; raw codes of ``table_t``
    (NaN: ``1/0``, which has no defined ``ap_fixed`` value)."""
    with np.errstate(divide="ignore"):
        values = np.float32(1) / _table_inputs(address_t, n_bits)
    finite = np.isfinite(values)
    table = np.full(2**n_bits, np.nan)
    table[finite] = quantize_to_raw(values[finite].astype(np.float64), table_t)
    return table


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
        source, in_type, interval, in_shape = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
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
        self.out_type = result_type(layer)
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
        exp_table_t = layer_type(layer, "exp_table_t")
        inv_table_t = layer_type(layer, "inv_table_t")
        # hls4ml's SoftmaxConfigTemplate fills types left at model_default_t like this
        if layer.types["accum_t"].name == "model_default_t":
            scale = math.ceil(math.log2(int(_config_value(config, "n_slice"))))
            self.accum_t = FixedType(
                exp_table_t.width + scale, exp_table_t.integer + scale, exp_table_t.signed
            )
        else:
            self.accum_t = layer_type(layer, "accum_t")
        if layer.types["inv_inp_t"].name == "model_default_t":
            self.inv_inp_t = exp_table_t
        else:
            self.inv_inp_t = layer_type(layer, "inv_inp_t")
        if self.implementation != "stable":
            norm_t = in_type
        elif "inp_norm_t" in layer.types:
            norm_t = layer_type(layer, "inp_norm_t")
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

        self.exp_table = exp_table(
            self.address_t,
            self.exp_bits,
            exp_table_t,
            float(exp_scale),
            negative=self.implementation == "stable",
        )
        self.exp_frac = exp_table_t.fractional
        self.inv_table = inv_table(self.inv_inp_t, self.inv_bits, inv_table_t)
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


def softmax_step(layer: Any, ctx: Context) -> Step:
    return SoftmaxStep(layer, ctx)
