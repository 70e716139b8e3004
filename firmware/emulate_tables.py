"""Table-based and parametrised activations for the fixed-point engine, as hls4ml computes them.

hls4ml 1.3.0's ``nnet_activation.h`` (Vivado and Vitis backends, ``io_parallel``) computes

* ``sigmoid``, ``softplus``, ``softsign`` from a table of ``N = table_size`` entries of
  ``table_t``: entry ``i`` holds ``f(x_i)`` with ``x_i = (float)(16.0 * (i - N/2.0) / N)``,
  addressed by ``index = clip(trunc(x * N / 16) + N/2, 0, N - 1)``. ``x * N / 16`` is exact
  ``ap_fixed`` arithmetic (the division keeps ``x``'s fractional bits, truncating toward zero)
  and its conversion to ``int`` truncates toward zero too, so the index is the exact quotient
  truncated toward zero;
* ``tanh`` the same with ``8`` for ``16`` (inputs ``[-4, 4)``);
* ``elu`` (``ELU``, ``Activation('elu')``) and ``selu`` for ``x < 0`` from a table of
  ``f(-8.0 * i / N)`` addressed by ``min(trunc(x * N / -8), N - 1)``; ``elu`` multiplies the
  entry by ``alpha`` (in ``param_t``), ``selu`` returns ``x * (ap_ufixed<16,1>) 1.0507...``
  for ``x >= 0``;
* ``LeakyReLU``/``PReLU``: ``x > 0 ? x : alpha * x`` (``alpha`` in ``param_t``; PReLU one per
  input); ``ThresholdedReLU``: ``x > theta ? x : 0`` (``theta`` in ``param_t``);
* ``hard_sigmoid``/``hard_tanh``: ``clip(slope * x + shift, 0, 1)`` (``2 * . - 1``), exact.

Every result is ``(res_T)`` of an exact ``ap_fixed`` value. The tables are rebuilt as the C++
initialises them: the entry's argument in double then float, the function with the C
library's own ``expf``/``log``/``tanhf`` (through ctypes) and the same float/double steps as
the C++ expressions, then ``(table_t)`` of that float. ``(res_T)`` of every entry is computed
once, so a lookup is one gather.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import numpy as np

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
    quantize_to_raw,
    result_type,
)
from hepfpga.quantize.fixed import FixedType
from hepfpga.registry import Registry

__all__ = [
    "TABLE_KINDS",
    "TABLE_STEPS",
    "HardStep",
    "LookupTable",
    "SlopeStep",
    "TableActivationStep",
    "ThresholdStep",
    "lookup_table",
    "parametrised_step",
]

#: backends whose activations are ``nnet_activation.h`` (Quartus, Catapult have their own)
_BACKENDS = ("Vivado", "Vitis")


@cache
def _libm(name: str, ctype: Any) -> Callable[[float], float]:
    """The C math library's function ``name`` taking and returning ``ctype``."""
    path = ctypes.util.find_library("m")
    if path is None:
        raise UnsupportedLayerError("the C math library (libm) was not found; tables need it")
    function = getattr(ctypes.CDLL(path), name)
    function.argtypes = [ctype]
    function.restype = ctype
    return function  # type: ignore[no-any-return]


def _each(name: str, ctype: Any, values: np.ndarray) -> np.ndarray:
    function = _libm(name, ctype)
    return np.array([function(float(v)) for v in values], dtype=np.float64)


def _expf(x: np.ndarray) -> np.ndarray:
    return _each("expf", ctypes.c_float, x).astype(np.float32)


# the table functions, each as the C++ evaluates it (float/double steps and all), returning
# the float32 the C++ function returns
def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 1.0 / (1 + std::exp(-input)): float exp, float sum, double quotient, float result
    total = np.float32(1) + _expf(-x)
    return (1.0 / total.astype(np.float64)).astype(np.float32)


def _tanh(x: np.ndarray) -> np.ndarray:
    # tanh(in_val) of a float inside namespace nnet resolves to the float overload (the C
    # library's tanhf); checked entry by entry against hls4ml's init_tanh_table (65536 entries)
    return _each("tanhf", ctypes.c_float, x.astype(np.float32)).astype(np.float32)


def _softplus(x: np.ndarray) -> np.ndarray:
    # std::log(std::exp(input) + 1.): float exp, double sum and log
    total = _expf(x).astype(np.float64) + 1.0
    return _each("log", ctypes.c_double, total).astype(np.float32)


def _softsign(x: np.ndarray) -> np.ndarray:
    # input / (std::abs(input) + 1.): in double
    wide = x.astype(np.float64)
    return (wide / (np.abs(wide) + 1.0)).astype(np.float32)


def _elu(x: np.ndarray) -> np.ndarray:
    return (_expf(x).astype(np.float64) - 1.0).astype(np.float32)


_SELU_LAMBDA = float("1.0507009873554804934193349852946")
_SELU_ALPHA = float("1.6732632423543772848170429916717")


def _selu(x: np.ndarray) -> np.ndarray:
    return (_SELU_LAMBDA * (_SELU_ALPHA * (_expf(x).astype(np.float64) - 1.0))).astype(np.float32)


@dataclass(frozen=True)
class _Kind:
    """How one table activation addresses its table and what it holds."""

    function: Callable[[np.ndarray], np.ndarray]
    #: ``x * N / divisor`` gives the offset from the table's centre (negative: ELU's tables)
    divisor: int
    #: whether the function's values are bounded (then its result type need not grow with
    #: the input's: :mod:`hepfpga.firmware.layers.activation`)
    bounded: bool


#: the table activations hls4ml's ``nnet_activation.h`` computes, by name: the one list of them
TABLE_KINDS: Registry[_Kind] = Registry(
    "table activation",
    {
        "sigmoid": _Kind(_sigmoid, 16, bounded=True),
        "tanh": _Kind(_tanh, 8, bounded=True),
        "softsign": _Kind(_softsign, 16, bounded=True),
        "softplus": _Kind(_softplus, 16, bounded=False),
        "elu": _Kind(_elu, -8, bounded=False),
        "selu": _Kind(_selu, -8, bounded=False),
    },
)


@dataclass
class LookupTable:
    """One of hls4ml's activation tables: entries as raw codes of ``table_t``, and its address.

    ``address(raw, frac)`` is the index hls4ml computes from an ``ap_fixed`` value with raw
    codes ``raw`` and ``frac`` fractional bits (see the module docstring).
    """

    kind: str
    size: int
    table_t: FixedType
    entries: np.ndarray

    def address(self, raw: np.ndarray, frac: int) -> np.ndarray:
        divisor = TABLE_KINDS[self.kind].divisor
        # raw * size is exact in float64 (check_input), the division by 2**frac * |divisor|
        # is a power-of-two scaling for hls4ml's divisors 16 and 8, then truncation to zero
        quotient = np.trunc(raw.astype(np.float64) * float(self.size) * (2.0**-frac / abs(divisor)))
        if divisor < 0:
            # ELU/SELU tables: used for x < 0 only, where -quotient >= 0
            return np.clip(-quotient, 0, self.size - 1).astype(np.intp)
        # 8 * N / 16 (or 4 * N / 8) in unsigned arithmetic: N // 2
        return np.clip(quotient + self.size // 2, 0, self.size - 1).astype(np.intp)

    def check_input(self, t: FixedType, where: str) -> None:
        """Refuse inputs whose ``raw * size`` is not exact in float64."""
        if t.width + self.size.bit_length() > 52:
            raise UnsupportedLayerError(
                f"{where}: table address of {t} times {self.size} entries exceeds float64"
            )


def lookup_table(kind: str, size: int, table_t: FixedType, where: str) -> LookupTable:
    """hls4ml's ``init_<kind>_table`` for ``size`` entries of ``table_t``."""
    if kind not in TABLE_KINDS:
        raise UnsupportedLayerError(f"{where}: table activation '{kind}' is not reproduced")
    if size < 1:
        raise UnsupportedLayerError(f"{where}: table of {size} entries")
    if table_t.width > 53:
        raise UnsupportedLayerError(f"{where}: table type {table_t} is wider than float64")
    return LookupTable(kind, size, table_t, _table_entries(kind, size, table_t))


@cache
def _table_entries(kind: str, size: int, table_t: FixedType) -> np.ndarray:
    i = np.arange(size, dtype=np.float64)
    if TABLE_KINDS[kind].divisor > 0:
        half_span = TABLE_KINDS[kind].divisor / 2.0
        # 2 * 8.0 * (ii - float(N_TABLE) / 2.0) / float(N_TABLE), in double, then float
        x = ((2.0 * half_span) * (i - size / 2.0) / float(size)).astype(np.float32)
    else:
        x = (-8.0 * i / float(size)).astype(np.float32)  # -8.0 * ii / float(N_TABLE)
    values = TABLE_KINDS[kind].function(x)
    if not np.all(np.isfinite(values)):
        raise UnsupportedLayerError(f"the {kind} table holds values ap_fixed cannot take")
    entries = quantize_to_raw(values.astype(np.float64), table_t)
    entries.flags.writeable = False
    return entries


def _check_backend(layer: Any) -> None:
    backend = str(layer.model.config.backend.name)
    if backend not in _BACKENDS:
        raise UnsupportedLayerError(
            f"layer '{layer.name}': {backend}'s activations are not reproduced "
            f"(reproduced: {', '.join(_BACKENDS)})"
        )


def _param(layer: Any, value: Any) -> tuple[float, FixedType]:
    """``(param_t) value``: the raw code of a parameter passed as a C++ literal, and its type."""
    param_t = layer_type(layer, "param_t")
    raw = float(quantize_to_raw(np.array([float(value)]), param_t)[0])
    return raw, param_t


class _OneInputStep(Step):
    """Shared set-up: name, input, output and shape of a one-input activation."""

    def _bind(self, layer: Any, ctx: Context) -> tuple[FixedType, Interval]:
        _check_backend(layer)
        self.name = layer.name
        source, in_type, interval, _ = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        self.out_type = result_type(layer)
        self.in_type = in_type
        return in_type, interval


class TableActivationStep(_OneInputStep):
    """sigmoid, tanh, softplus, softsign, elu (with ``alpha``) and selu: one gather from the
    table converted to ``res_T``; the non-negative branch of elu/selu computed exactly."""

    def __init__(self, layer: Any, ctx: Context, kind: str) -> None:
        in_type, interval = self._bind(layer, ctx)
        where = f"layer '{layer.name}'"
        size = int(layer.get_attr("table_size", 1024))
        self.table = lookup_table(kind, size, layer_type(layer, "table_t"), where)
        self.table.check_input(in_type, where)
        entries = self.table.entries
        frac = self.table.table_t.fractional
        if kind == "elu":
            alpha, param_t = _param(layer, layer.get_attr("activ_param", 1.0))
            entries = entries * alpha  # exact product: table_t times param_t
            frac += param_t.fractional
        convert, _, big = plan_convert(
            frac, Interval(float(entries.min()), float(entries.max())), self.out_type
        )
        self.lookup = convert(entries.astype(np.float64, copy=True))
        self.kind = kind
        self.max_magnitude = max(big, interval.magnitude, float(np.abs(self.lookup).max()))
        self.out_interval = Interval(float(self.lookup.min()), float(self.lookup.max()))
        self.positive: Any = None
        if kind in ("elu", "selu"):
            # x >= 0: (res_T) x, or (res_T)(x * (ap_ufixed<16,1>) lambda) for selu
            positive = Interval(max(interval.lo, 0.0), max(interval.hi, 0.0))
            self.factor = 1.0
            pos_frac = in_type.fractional
            if kind == "selu":
                lam_t = FixedType(16, 1, signed=False)  # AP_TRN, AP_WRAP
                self.factor = float(quantize_to_raw(np.array([_SELU_LAMBDA]), lam_t)[0])
                pos_frac += lam_t.fractional
                positive = Interval(positive.lo * self.factor, positive.hi * self.factor)
            self.positive, pos_interval, big2 = plan_convert(pos_frac, positive, self.out_type)
            self.max_magnitude = max(self.max_magnitude, big2, positive.magnitude)
            self.out_interval = Interval(
                min(self.out_interval.lo, pos_interval.lo),
                max(self.out_interval.hi, pos_interval.hi),
            )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = x.reshape(n, -1)
        out = self.lookup[self.table.address(x, self.in_type.fractional)]
        if self.positive is not None:
            nonneg = x >= 0
            pos = self.positive(x.astype(np.float64) * self.factor)
            out = np.where(nonneg, pos, out)
        return out.astype(x.dtype, copy=False).reshape(n, *self.shape)


class SlopeStep(_OneInputStep):
    """LeakyReLU and PReLU: ``(res_T)(x > 0 ? x : alpha * x)``, exact before the conversion."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        in_type, interval = self._bind(layer, ctx)
        n_in = int(math.prod(ctx.shapes[self.inputs[0]]))
        if str(layer.get_attr("activation", "")).lower() == "prelu":
            weight = layer.weights.get("param")
            if weight is None:
                raise UnsupportedLayerError(f"layer '{layer.name}' has no alpha weights")
            param_t = fixed_type(weight.type.precision, f"layer '{layer.name}' alpha")
            alphas = quantize_to_raw(np.asarray(weight.data, np.float64).reshape(-1), param_t)
            if alphas.size != n_in:
                raise UnsupportedLayerError(f"layer '{layer.name}': {alphas.size} alphas")
        else:
            alpha, param_t = _param(layer, layer.get_attr("activ_param", 0.3))
            alphas = np.full(n_in, alpha)
        frac = in_type.fractional + param_t.fractional
        self.scale = 2.0**param_t.fractional  # x at the product's fractional bits
        self.alphas = alphas
        corners = [interval.lo * alphas, interval.hi * alphas, np.zeros(1)]
        lo = min(float(np.min(c)) for c in corners)
        hi = max(float(np.max(c)) for c in corners)
        lo = min(lo, max(interval.lo, 0.0) * self.scale)
        hi = max(hi, max(interval.hi, 0.0) * self.scale)
        self.result, self.out_interval, big = plan_convert(frac, Interval(lo, hi), self.out_type)
        self.max_magnitude = max(big, abs(lo), abs(hi), interval.magnitude)

    def prepare(self, dtype: Any) -> None:
        self.alphas = self.alphas.astype(dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = x.reshape(n, -1)
        out = np.where(x > 0, x * x.dtype.type(self.scale), x * self.alphas)
        return self.result(out).reshape(n, *self.shape)


class ThresholdStep(_OneInputStep):
    """ThresholdedReLU: ``(res_T)(x > theta ? x : 0)`` with ``theta`` in ``param_t``."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        in_type, interval = self._bind(layer, ctx)
        theta, param_t = _param(layer, layer.get_attr("activ_param", 1.0))
        # x > theta, both exact: compare at the finer of the two grids
        self.theta = theta * 2.0 ** (in_type.fractional - param_t.fractional)
        wide = Interval(min(interval.lo, 0.0), max(interval.hi, 0.0))
        self.result, self.out_interval, big = plan_convert(in_type.fractional, wide, self.out_type)
        self.max_magnitude = max(big, interval.magnitude, abs(self.theta))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        x = x.reshape(n, -1)
        out = np.where(x > self.theta, x, x.dtype.type(0))
        return self.result(out).reshape(n, *self.shape)


class HardStep(_OneInputStep):
    """hard_sigmoid / hard_tanh: ``clip(slope * x + shift, 0, 1)`` (exact, ``auto`` type),
    then ``(res_T)``; hard_tanh ``(res_T)(2 * that - 1)``."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        in_type, interval = self._bind(layer, ctx)
        slope_t = layer_type(layer, "slope_t")
        shift_t = layer_type(layer, "shift_t")
        slope = float(quantize_to_raw(np.array([layer.get_attr("slope", 0.2)]), slope_t)[0])
        shift = float(quantize_to_raw(np.array([layer.get_attr("shift", 0.5)]), shift_t)[0])
        self.frac = max(in_type.fractional + slope_t.fractional, shift_t.fractional)
        self.slope = slope * 2.0 ** (self.frac - in_type.fractional - slope_t.fractional)
        self.shift = shift * 2.0 ** (self.frac - shift_t.fractional)
        self.one = 2.0**self.frac
        self.tanh = str(layer.get_attr("activation")).lower() == "hard_tanh"
        lo, hi = (-self.one, self.one) if self.tanh else (0.0, self.one)
        self.result, self.out_interval, big = plan_convert(
            self.frac, Interval(lo, hi), self.out_type
        )
        ends = [interval.lo * self.slope + self.shift, interval.hi * self.slope + self.shift]
        self.max_magnitude = max(big, interval.magnitude, *(abs(e) for e in ends), 2 * self.one)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        value = x.reshape(n, -1) * x.dtype.type(self.slope) + x.dtype.type(self.shift)
        value = np.clip(value, 0, self.one)
        if self.tanh:
            value = 2 * value - self.one
        return self.result(value).reshape(n, *self.shape)


def _table_builder(kind: str) -> Callable[[Any, Context], Step]:
    def build(layer: Any, ctx: Context) -> Step:
        return TableActivationStep(layer, ctx, kind)

    return build


def parametrised_step(layer: Any, ctx: Context) -> Step:
    """The step of an hls4ml parametrised activation, by its ``activation``
    (``Context.parametrised``)."""
    activation = str(layer.get_attr("activation", "")).lower()
    builder = ctx.parametrised.get(activation)
    if builder is None:
        raise UnsupportedLayerError(
            f"layer '{layer.name}': parametrised activation '{activation}'; reproduced: "
            f"{', '.join(sorted(ctx.parametrised))}"
        )
    return cast(Step, builder(layer, ctx))


#: the step of each table activation (``Activation(kind)``), by name
TABLE_STEPS: Registry[Callable[[Any, Context], Step]] = Registry(
    "table activation step", {kind: _table_builder(kind) for kind in TABLE_KINDS}
)
