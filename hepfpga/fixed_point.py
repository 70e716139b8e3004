"""Fixed-point types in the ``ap_fixed`` convention (core: every stage reads them).

A :class:`FixedType` is the Python twin of Xilinx' ``ap_fixed<W,I,Q,O>`` /
``ap_ufixed<W,I,Q,O>``:

* ``width`` (W) is the total number of bits, ``integer`` (I) the number of bits left of the
  binary point *including the sign bit* for signed types. The least significant bit is worth
  ``2**(I - W)``; ``I`` may be larger than ``W`` or negative, exactly as in ``ap_fixed``.
* a signed type holds ``[-2**(I-1), 2**(I-1) - lsb]``, an unsigned one ``[0, 2**I - lsb]``.
* ``rounding`` (Q) says how a value between two representable numbers is rounded and
  ``saturation`` (O) what happens to a value outside the range; the defaults are
  ``ap_fixed``'s own: truncation towards minus infinity (``AP_TRN``) and two's-complement
  wrap-around (``AP_WRAP``).

:meth:`FixedType.quantize` emulates the conversion ``ap_fixed<...> y = (double)x`` exactly
(float64 arithmetic: scaling by powers of two, ``floor`` and ``fmod`` are exact), so it can be
used to predict bit for bit what the C simulation of a firmware will do.

How QKeras quantizers map onto these types: :func:`hepfpga.quantize.fixed.from_quantizer`.
The types live in the core package so that a stage that only needs the arithmetic (the BDT's
input grid in ``hepfpga.train.bdt``) does not load the quantization stage.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError, DataError

__all__ = ["MAX_WIDTH", "FixedType", "Rounding", "Saturation"]


class Rounding(enum.Enum):
    """Quantization (rounding) modes of ``ap_fixed``, applied to the bits below the lsb."""

    #: floor: towards minus infinity (the ``ap_fixed`` default)
    TRN = "AP_TRN"
    #: towards zero
    TRN_ZERO = "AP_TRN_ZERO"
    #: to nearest, ties towards plus infinity
    RND = "AP_RND"
    #: to nearest, ties towards zero
    RND_ZERO = "AP_RND_ZERO"
    #: to nearest, ties towards minus infinity
    RND_MIN_INF = "AP_RND_MIN_INF"
    #: to nearest, ties away from zero
    RND_INF = "AP_RND_INF"
    #: to nearest, ties to even (convergent rounding; what ``tf.round`` and QKeras do)
    RND_CONV = "AP_RND_CONV"


class Saturation(enum.Enum):
    """Overflow modes of ``ap_fixed``, applied after rounding."""

    #: two's-complement wrap-around: keep the low ``width`` bits (the ``ap_fixed`` default)
    WRAP = "AP_WRAP"
    #: clip to ``[min_value, max_value]``
    SAT = "AP_SAT"
    #: an overflowing value becomes zero
    SAT_ZERO = "AP_SAT_ZERO"
    #: clip to ``[-max_value, max_value]`` for signed types (like ``SAT`` for unsigned ones)
    SAT_SYM = "AP_SAT_SYM"


def _mode_from_text(enum_cls: type[enum.Enum], text: str, what: str, source: str) -> Any:
    token = text.strip().upper()
    if not token.startswith("AP_"):
        token = "AP_" + token
    for member in enum_cls:
        if member.value == token:
            return member
    accepted = ", ".join(m.value for m in enum_cls)
    raise ConfigError(f"unknown {what} mode '{text.strip()}' in '{source}'; accepted: {accepted}")


#: widest type :meth:`FixedType.parse` reads: ``AP_INT_MAX_W``, the largest width the
#: ap_types headers (hls4ml's and the vendors') accept unless recompiled with another value
MAX_WIDTH = 1024

_TYPE_PATTERN = re.compile(r"^\s*(?:ap_)?(u?)(fixed|int)\s*<([^<>]*)>\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class FixedType:
    """An ``ap_fixed<width, integer, rounding, saturation>`` (``ap_ufixed`` if not signed)."""

    width: int
    integer: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    saturation: Saturation = Saturation.WRAP

    def __post_init__(self) -> None:
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise ConfigError(f"expected a positive integer width. Received: width={self.width!r}")
        if isinstance(self.integer, bool) or not isinstance(self.integer, int):
            raise ConfigError(f"expected an integer. Received: integer={self.integer!r}")
        if not isinstance(self.rounding, Rounding):
            raise ConfigError(f"expected a Rounding. Received: rounding={self.rounding!r}")
        if not isinstance(self.saturation, Saturation):
            raise ConfigError(f"expected a Saturation. Received: saturation={self.saturation!r}")

    # -- properties --------------------------------------------------------------------------
    @property
    def fractional(self) -> int:
        """Number of bits right of the binary point (``width - integer``, may be negative)."""
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        """Value of the least significant bit, ``2**(integer - width)``."""
        return float(np.ldexp(1.0, -self.fractional))

    @property
    def min_value(self) -> float:
        """Smallest representable value (``-2**(integer-1)`` signed, ``0`` unsigned)."""
        return -float(np.ldexp(1.0, self.integer - 1)) if self.signed else 0.0

    @property
    def max_value(self) -> float:
        """Largest representable value (``2**(integer-1) - lsb`` signed, ``2**integer - lsb``)."""
        top = self.integer - 1 if self.signed else self.integer
        return float(np.ldexp(1.0, top)) - self.lsb

    # -- text --------------------------------------------------------------------------------
    def to_hls(self) -> str:
        """The C++ type, e.g. ``ap_fixed<6,1,AP_RND_CONV,AP_SAT>``.

        The modes are written only when one differs from the ``AP_TRN``/``AP_WRAP`` default.
        """
        name = "ap_fixed" if self.signed else "ap_ufixed"
        args = [str(self.width), str(self.integer)]
        if self.rounding is not Rounding.TRN or self.saturation is not Saturation.WRAP:
            args += [self.rounding.value, self.saturation.value]
        return f"{name}<{','.join(args)}>"

    def __str__(self) -> str:
        return self.to_hls()

    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Read ``ap_fixed<W,I[,Q[,O[,0]]]>``, ``ap_ufixed<...>``, ``ap_int<W>``, ``ap_uint<W>``.

        hls4ml's spellings without the ``ap_`` prefix (``fixed<16,6,RND_CONV,SAT>``,
        ``uint<8>``) are accepted too. Saturation bits other than 0 are not supported.
        """
        match = _TYPE_PATTERN.match(text) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(
                f"cannot read a fixed-point type from {text!r}; expected e.g. "
                "'ap_fixed<16,6>', 'ap_fixed<6,1,AP_RND_CONV,AP_SAT>', 'ap_ufixed<6,0>', "
                "'ap_int<8>' or 'ap_uint<8>'"
            )
        unsigned, kind, body = match.groups()
        args = [a.strip() for a in body.split(",")]
        if kind.lower() == "int" and len(args) != 1:
            raise ConfigError(f"'{text}': an ap_int type takes exactly one width")
        if kind.lower() == "fixed" and not 2 <= len(args) <= 5:
            raise ConfigError(f"'{text}': expected 2 to 5 template arguments")
        try:
            numbers = [int(a) for a in args[:2]]
        except ValueError as exc:
            raise ConfigError(f"'{text}': width and integer bits must be integers") from exc
        if not 1 <= numbers[0] <= MAX_WIDTH:
            raise ConfigError(
                f"'{text}': width {numbers[0]} is outside 1..{MAX_WIDTH} (AP_INT_MAX_W, the "
                "widest ap_fixed the HLS headers compile by default)"
            )
        if kind.lower() == "int":
            return cls(numbers[0], numbers[0], signed=not unsigned)
        width, integer = numbers
        if abs(integer) > MAX_WIDTH:
            raise ConfigError(
                f"'{text}': integer bits {integer} are outside -{MAX_WIDTH}..{MAX_WIDTH}"
            )
        rounding = Rounding.TRN
        saturation = Saturation.WRAP
        if len(args) >= 3:
            rounding = _mode_from_text(Rounding, args[2], "rounding", text)
        if len(args) >= 4:
            saturation = _mode_from_text(Saturation, args[3], "saturation", text)
        if len(args) == 5 and args[4] != "0":
            raise ConfigError(f"'{text}': saturation bits other than 0 are not supported")
        return cls(width, integer, signed=not unsigned, rounding=rounding, saturation=saturation)

    # -- arithmetic --------------------------------------------------------------------------
    def quantize(self, x: Any) -> np.ndarray:
        """Return ``x`` converted to this type, as float64, exactly like ``ap_fixed`` would.

        The value is scaled to units of the lsb, rounded with ``rounding``, then brought into
        range with ``saturation`` (rounding first, so a value that rounds up past the maximum
        saturates or wraps as in hardware). Inputs are converted to float64 first; NaN and
        infinities are refused because ``ap_fixed`` leaves them undefined. Widths up to 53 bits
        are exact (the raw integer must fit a float64 mantissa).
        """
        values = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError("cannot quantize NaN or infinite values to a fixed-point type")
        if self.width > 53:
            raise ConfigError(
                f"quantize() emulates widths up to 53 bits exactly; {self.to_hls()} is wider"
            )
        raw = self._round(np.ldexp(values, self.fractional))
        lo, hi = self._raw_range()
        if self.saturation is Saturation.WRAP:
            span = float(2**self.width)
            raw = np.mod(raw - lo, span) + lo
        else:
            if self.saturation is Saturation.SAT_SYM and self.signed:
                lo = -hi
            if self.saturation is Saturation.SAT_ZERO:
                raw = np.where((raw < lo) | (raw > hi), 0.0, raw)
            else:
                raw = np.clip(raw, lo, hi)
        return np.ldexp(raw, -self.fractional) + 0.0  # + 0.0 turns -0.0 into 0.0

    def _raw_range(self) -> tuple[float, float]:
        if self.signed:
            return -float(2 ** (self.width - 1)), float(2 ** (self.width - 1) - 1)
        return 0.0, float(2**self.width - 1)

    def _round(self, scaled: np.ndarray) -> np.ndarray:
        mode = self.rounding
        if mode is Rounding.TRN:
            return np.floor(scaled)
        if mode is Rounding.TRN_ZERO:
            return np.trunc(scaled)
        if mode is Rounding.RND_CONV:
            return np.rint(scaled)  # IEEE round-half-to-even, exact
        floor = np.floor(scaled)
        frac = scaled - floor  # exact: both are float64 with the same exponent range
        tie = frac == 0.5
        nearest = np.where(frac > 0.5, floor + 1.0, floor)
        if mode is Rounding.RND:
            tie_value = floor + 1.0
        elif mode is Rounding.RND_MIN_INF:
            tie_value = floor
        elif mode is Rounding.RND_ZERO:
            tie_value = np.where(scaled > 0, floor, floor + 1.0)
        else:  # RND_INF: away from zero
            tie_value = np.where(scaled > 0, floor + 1.0, floor)
        return np.where(tie, tie_value, nearest)

    def can_represent(self, x: Any) -> bool:
        """Whether every value of ``x`` is exactly representable in this type."""
        values = np.asarray(x, dtype=np.float64)
        exact = FixedType(self.width, self.integer, self.signed, Rounding.TRN, Saturation.WRAP)
        return bool(np.all(np.isfinite(values)) and np.array_equal(exact.quantize(values), values))
