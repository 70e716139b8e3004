"""Raw codes, their intervals and conversions, and what every engine step shares.

Numbers travel as raw integer codes in float arrays (see :mod:`hepfpga.firmware.emulate_engine`);
a :class:`Step` maps the codes of its inputs to those of its output, built by a
:data:`StepBuilder` from an hls4ml layer and the :class:`Context` of the tensors built so far.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation

__all__ = [
    "Context",
    "Convert",
    "Interval",
    "Step",
    "StepBuilder",
    "UnsupportedLayerError",
    "fixed_type",
    "input_of",
    "layer_type",
    "out_shape",
    "plan_convert",
    "quantize_to_raw",
    "raw_range",
    "result_type",
    "saturation_range",
    "written_weights",
]


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
    """Every raw code of ``t``: ``[-2**(W-1), 2**(W-1) - 1]`` signed, ``[0, 2**W - 1]``
    unsigned."""
    if t.signed:
        return -(2.0 ** (t.width - 1)), 2.0 ** (t.width - 1) - 1
    return 0.0, 2.0**t.width - 1


def saturation_range(t: FixedType) -> tuple[float, float]:
    """The raw codes a conversion to ``t`` saturates into: :func:`raw_range`, except for a
    signed ``AP_SAT_SYM`` type, whose minimum is minus its maximum (``[-(2**(W-1) - 1),
    2**(W-1) - 1]``). ``ap_fixed_base``'s conversions (from ``double`` and from another
    ``ap_fixed``) flag an underflow for a negative result whose low ``W-1`` bits are all zero,
    so the most negative code is never produced, not even for a value exactly equal to it
    (``ap_fixed<8,3,AP_TRN,AP_SAT_SYM>(-4.0)`` is ``-4 + 2**-5``)."""
    lo, hi = raw_range(t)
    if t.saturation is Saturation.SAT_SYM and t.signed:
        return -hi, hi
    return lo, hi


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
            # the low ``width`` bits: np.mod by a power of two is exact at any magnitude
            # (subtracting ``lo`` first is not once |r| passes 2**53, e.g. an input of 1e30)
            span = r.dtype.type(2.0**self.width)
            r = np.mod(r, span, out=r)
            if self.lo < 0:
                np.subtract(r, span, out=r, where=r > self.hi)
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
    tlo, thi = saturation_range(to)
    saturation: Saturation | None = to.saturation
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
    """What a step builder knows about the tensors built so far, and the engine's tables of
    activation steps (derived from the registered layer handlers by the plan)."""

    types: dict[str, FixedType]
    intervals: dict[str, Interval]
    shapes: dict[str, tuple[int, ...]]
    #: activation name (lower case) of an hls4ml ``Activation`` layer -> step builder
    activations: Mapping[str, StepBuilder] = field(default_factory=dict)
    #: activation name of an hls4ml ``ParametrizedActivation`` layer -> step builder
    parametrised: Mapping[str, StepBuilder] = field(default_factory=dict)


#: ``(hls4ml layer, context) -> step``, or one step per output of the layer (io_stream's
#: ``Clone``)
StepBuilder = Callable[[Any, Context], "Step | list[Step]"]


def input_of(layer: Any, ctx: Context) -> tuple[str, FixedType, Interval, tuple[int, ...]]:
    if len(layer.inputs) != 1:
        raise UnsupportedLayerError(f"layer '{layer.name}' ({layer.class_name}) has several inputs")
    name = layer.inputs[0]
    if name not in ctx.types:
        raise UnsupportedLayerError(
            f"layer '{layer.name}' reads '{name}', which no earlier layer writes"
        )
    return name, ctx.types[name], ctx.intervals[name], ctx.shapes[name]


def out_shape(layer: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in layer.get_output_variable().shape)


def result_type(layer: Any) -> FixedType:
    return fixed_type(layer.get_output_variable().type.precision, f"layer '{layer.name}' result")


def layer_type(layer: Any, key: str) -> FixedType:
    if key not in layer.types:
        raise UnsupportedLayerError(f"layer '{layer.name}' has no {key}")
    return fixed_type(layer.types[key].precision, f"layer '{layer.name}' {key}")


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
