"""Options of the hls4ml firmware stage, validated on construction.

Every field has its default here and nowhere else. Invalid values raise
:class:`~hepfpga.errors.ConfigError` with the path ``firmware.<field>`` and the accepted values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from difflib import get_close_matches
from typing import Any

from hepfpga.errors import ConfigError
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation

__all__ = ["Backend", "BackendInfo", "FirmwareOptions", "IOType", "Strategy"]


@dataclass(frozen=True)
class BackendInfo:
    """What hepfpga needs to know about an hls4ml backend."""

    #: name hls4ml registers the backend under
    hls4ml_name: str
    #: vendor executables that can synthesize its projects, preferred first
    tools: tuple[str, ...]
    #: shell commands (run in the project folder) that build the project, one per tool
    build_commands: tuple[str, ...]


class Backend(enum.Enum):
    """hls4ml backends hepfpga writes projects for."""

    VITIS = "Vitis"
    VIVADO = "Vivado"

    @property
    def info(self) -> BackendInfo:
        return _BACKENDS[self]


# The registry behind :class:`Backend`. Vitis projects read their build switches from
# build_opt.tcl; Vivado HLS takes them on the command line.
_BACKENDS: dict[Backend, BackendInfo] = {
    Backend.VITIS: BackendInfo(
        hls4ml_name="Vitis",
        tools=("vitis-run", "vitis_hls"),
        build_commands=("vitis-run --mode hls --tcl build_prj.tcl", "vitis_hls -f build_prj.tcl"),
    ),
    Backend.VIVADO: BackendInfo(
        hls4ml_name="Vivado",
        tools=("vivado_hls",),
        build_commands=(
            'vivado_hls -f build_prj.tcl "reset=1 csim=0 synth=1 cosim=0 validation=0 '
            'export=0 vsynth=0 fifo_opt=0"',
        ),
    ),
}


class IOType(enum.Enum):
    """How layers exchange data: whole arrays (``io_parallel``) or FIFOs (``io_stream``)."""

    PARALLEL = "io_parallel"
    STREAM = "io_stream"


class Strategy(enum.Enum):
    """hls4ml's implementation strategy: fully unrolled ``Latency`` or DSP-sharing ``Resource``."""

    LATENCY = "Latency"
    RESOURCE = "Resource"


def _enum_value(enum_cls: type[enum.Enum], value: Any, name: str) -> Any:
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        for member in enum_cls:
            if value.lower() in (member.value.lower(), member.name.lower()):
                return member
    accepted = ", ".join(repr(m.value) for m in enum_cls)
    raise ConfigError(f"unknown value {value!r}; accepted: {accepted}", path=f"firmware.{name}")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"expected a positive integer. Received: {name}={value!r}", path=f"firmware.{name}"
        )
    return value


def _fixed_type(value: Any, name: str) -> FixedType:
    if isinstance(value, FixedType):
        return value
    try:
        return FixedType.parse(value)
    except ConfigError as exc:
        raise ConfigError(str(exc), path=f"firmware.{name}") from exc


def _default_table_type() -> FixedType:
    # exp(-d) for d >= 0 and 1/sum for sum >= 1 both lie in (0, 1]: one integer bit, 17
    # fractional bits, rounded to nearest and saturated.
    return FixedType(18, 1, signed=False, rounding=Rounding.RND, saturation=Saturation.SAT)


def _default_softmax_result() -> FixedType:
    return FixedType(16, 0, signed=False, rounding=Rounding.RND, saturation=Saturation.SAT)


@dataclass(frozen=True)
class FirmwareOptions:
    """How to turn a QKeras model into an hls4ml project.

    Strings are accepted for the enum and type fields (``backend="Vivado"``,
    ``softmax_exp_table="ap_ufixed<18,1,AP_RND,AP_SAT>"``) and converted on construction.

    The softmax is hls4ml's ``stable`` table implementation; its numeric settings are
    documented in :func:`hepfpga.firmware.hls_config.build_hls_config`.
    """

    backend: Backend = Backend.VITIS
    io_type: IOType = IOType.PARALLEL
    strategy: Strategy = Strategy.LATENCY
    part: str = "xcvu13p-flga2577-2-e"
    #: clock period in ns
    clock_period: float = 5.0
    reuse_factor: int = 1
    project_name: str = "myproject"
    #: hardware input type; None derives it from the QActivation quantizer after the input
    input_type: FixedType | None = None
    #: entries of both softmax tables (exp and 1/x); a power of two
    softmax_table_size: int = 1024
    #: integer bits of ``max(logits) - logit``: differences of ``2**bits`` or more saturate
    softmax_range_bits: int = 3
    softmax_exp_table: FixedType = field(default_factory=_default_table_type)
    softmax_inv_table: FixedType = field(default_factory=_default_table_type)
    softmax_result: FixedType = field(default_factory=_default_softmax_result)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "backend", _enum_value(Backend, self.backend, "backend"))
        set_(self, "io_type", _enum_value(IOType, self.io_type, "io_type"))
        set_(self, "strategy", _enum_value(Strategy, self.strategy, "strategy"))
        if not isinstance(self.part, str) or not self.part.strip():
            raise ConfigError(
                "expected an FPGA part name such as 'xcvu13p-flga2577-2-e'. "
                f"Received: {self.part!r}",
                path="firmware.part",
            )
        period = self.clock_period
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not period > 0:
            raise ConfigError(
                f"expected a positive clock period in ns. Received: clock_period={period!r}",
                path="firmware.clock_period",
            )
        set_(self, "clock_period", float(period))
        _positive_int(self.reuse_factor, "reuse_factor")
        if not isinstance(self.project_name, str) or not self.project_name.isidentifier():
            raise ConfigError(
                "expected a C identifier (letters, digits, underscores). "
                f"Received: project_name={self.project_name!r}",
                path="firmware.project_name",
            )
        if self.input_type is not None:
            set_(self, "input_type", _fixed_type(self.input_type, "input_type"))
        size = _positive_int(self.softmax_table_size, "softmax_table_size")
        if size & (size - 1) or size < 2:
            raise ConfigError(
                f"expected a power of two >= 2. Received: softmax_table_size={size}",
                path="firmware.softmax_table_size",
            )
        _positive_int(self.softmax_range_bits, "softmax_range_bits")
        if self.softmax_range_bits >= size.bit_length() - 1:
            raise ConfigError(
                f"softmax_range_bits={self.softmax_range_bits} leaves no fractional bits for a "
                f"table of {size} entries; use fewer than {size.bit_length() - 1}",
                path="firmware.softmax_range_bits",
            )
        for name in ("softmax_exp_table", "softmax_inv_table", "softmax_result"):
            set_(self, name, _fixed_type(getattr(self, name), name))

    @property
    def softmax_table_bits(self) -> int:
        """Address bits of the softmax tables (``log2(softmax_table_size)``)."""
        return self.softmax_table_size.bit_length() - 1

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FirmwareOptions:
        """Build from a mapping (e.g. the ``firmware:`` section of a YAML config).

        Unknown keys are errors that name the closest valid key.
        """
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                close = get_close_matches(str(key), known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(
                    f"unknown key '{key}'{hint} Accepted: {', '.join(known)}",
                    path=f"firmware.{key}",
                )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (strings for enums and types), the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, FixedType):
                value = value.to_hls()
            out[f.name] = value
        return out
