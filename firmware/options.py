"""Options of the hls4ml firmware stage, validated on construction.

Every field has its default here and nowhere else. Invalid values raise
:class:`~hepfpga.errors.ConfigError` with the path ``firmware.<field>`` and the accepted values.
A ``firmware:`` mapping (YAML, command line) is read by the config schema
(:func:`hepfpga._schema.build`, as in a run config); the checks of values across fields are
:meth:`FirmwareOptions.__post_init__`'s.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from hepfpga._schema import build
from hepfpga.errors import ConfigError
from hepfpga.firmware.backends import BACKENDS, HLSBackend
from hepfpga.firmware.softmax import SoftmaxInfo, SoftmaxMode
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation

__all__ = [
    "Backend",
    "FirmwareOptions",
    "IOType",
    "LayerTypes",
    "SoftmaxInfo",
    "SoftmaxMode",
    "Strategy",
]


class _RegisteredBackend(enum.Enum):
    """A backend of :data:`~hepfpga.firmware.backends.BACKENDS` as a choice: its value is the
    hls4ml name, ``info`` the registered object (with the behaviour)."""

    @property
    def info(self) -> HLSBackend:
        """The registered backend (:data:`hepfpga.firmware.backends.BACKENDS`)."""
        return BACKENDS[self.value]


if TYPE_CHECKING:
    Backend = _RegisteredBackend
else:
    # one member per registered backend (``Backend.VITIS``: "Vitis"), derived from the registry
    Backend = _RegisteredBackend(
        "Backend",
        [(name.upper(), name) for name in BACKENDS.names()],
        module=__name__,
        qualname="Backend",
    )
    Backend.__doc__ = """hls4ml backends hepfpga writes projects for (``firmware.backend``):
    one member per backend of :data:`~hepfpga.firmware.backends.BACKENDS`."""


#: the backend of ``FirmwareOptions()``
_DEFAULT_BACKEND = Backend("Vitis")


class IOType(enum.Enum):
    """How layers exchange data: whole arrays (``io_parallel``) or FIFOs (``io_stream``)."""

    PARALLEL = "io_parallel"
    STREAM = "io_stream"


class Strategy(enum.Enum):
    """hls4ml's implementation strategy: fully unrolled ``Latency`` or DSP-sharing ``Resource``."""

    LATENCY = "Latency"
    RESOURCE = "Resource"


@dataclass(frozen=True)
class LayerTypes:
    """Hand-chosen types of one layer, overriding the derived ones (``None``: derived)."""

    result: FixedType | None = None
    accum: FixedType | None = None
    weight: FixedType | None = None
    bias: FixedType | None = None
    scale: FixedType | None = None

    def items(self) -> list[tuple[str, FixedType]]:
        return [(k, getattr(self, k)) for k in _TYPE_KEYS if getattr(self, k) is not None]


#: keys of a per-layer type override (``firmware.layer_types``): the fields of LayerTypes
_TYPE_KEYS = tuple(f.name for f in fields(LayerTypes))


def _layer_types(value: Any) -> dict[str, LayerTypes]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            "expected a mapping of layer name to types, e.g. "
            "{dense_1: {result: 'ap_fixed<16,6>'}}. Received: " + repr(value),
            path="firmware.layer_types",
        )
    out: dict[str, LayerTypes] = {}
    for layer, types in value.items():
        if isinstance(types, LayerTypes):
            out[str(layer)] = types
            continue
        if not isinstance(types, Mapping):
            raise ConfigError(
                f"expected a mapping of type keys ({', '.join(_TYPE_KEYS)}) to types. "
                f"Received: {types!r}",
                path=f"firmware.layer_types.{layer}",
            )
        parsed = {}
        for key, text in types.items():
            if key not in _TYPE_KEYS:
                raise ConfigError(
                    f"unknown type key '{key}'; accepted: {', '.join(_TYPE_KEYS)}",
                    path=f"firmware.layer_types.{layer}.{key}",
                )
            parsed[key] = _fixed_type(text, f"layer_types.{layer}.{key}")
        out[str(layer)] = LayerTypes(**parsed)
    return out


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

    The softmax is chosen by ``softmax`` (:class:`SoftmaxMode`); the numeric settings of the
    table implementations are documented in :mod:`hepfpga.firmware.hls_config`. Types of
    every other layer are derived (:mod:`hepfpga.firmware.precision`); ``layer_types``
    overrides them per layer (e.g. ``{"dense_1": {"result": "ap_fixed<16,6>"}}``).
    """

    backend: Backend = _DEFAULT_BACKEND
    io_type: IOType = IOType.PARALLEL
    strategy: Strategy = Strategy.LATENCY
    #: FPGA part; None takes the backend's default (``xcvu13p-flga2577-2-e`` for AMD/Xilinx)
    part: str | None = None
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
    softmax: SoftmaxMode = SoftmaxMode.STABLE
    #: address bits of the 1/sum table of the ``tuned`` softmax: its error is about
    #: 2**-(bits-2) relative (16: ~6e-5, 20: ~4e-6 on the jet tagger)
    softmax_tuned_inv_bits: int = 16
    #: total width of the types proposed for float (non-QKeras) models from profiled ranges
    float_width: int = 18
    #: per-layer overrides of the derived types (layer name -> {result|accum|weight|bias|scale})
    layer_types: dict[str, LayerTypes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "backend", _enum_value(Backend, self.backend, "backend"))
        set_(self, "io_type", _enum_value(IOType, self.io_type, "io_type"))
        set_(self, "strategy", _enum_value(Strategy, self.strategy, "strategy"))
        if self.part is not None and (not isinstance(self.part, str) or not self.part.strip()):
            raise ConfigError(
                "expected an FPGA part name such as 'xcvu13p-flga2577-2-e'. "
                f"Received: {self.part!r}",
                path="firmware.part",
            )
        period = self.clock_period
        if (
            isinstance(period, bool)
            or not isinstance(period, (int, float))
            or not 0 < period < float("inf")
        ):
            raise ConfigError(
                "expected a positive clock period in ns (finite). "
                f"Received: clock_period={period!r}",
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
        if size & (size - 1) or not 2 <= size <= 2**16:
            raise ConfigError(
                "expected a power of two from 2 to 65536 (each table is a ROM of this many "
                f"entries). Received: softmax_table_size={size}",
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
        set_(self, "softmax", _enum_value(SoftmaxMode, self.softmax, "softmax"))
        inv_bits = _positive_int(self.softmax_tuned_inv_bits, "softmax_tuned_inv_bits")
        if not 8 <= inv_bits <= 24:
            raise ConfigError(
                f"expected 8 to 24 address bits. Received: softmax_tuned_inv_bits={inv_bits}",
                path="firmware.softmax_tuned_inv_bits",
            )
        width = _positive_int(self.float_width, "float_width")
        if not 4 <= width <= 48:
            raise ConfigError(
                f"expected a width from 4 to 48 bits. Received: float_width={width}",
                path="firmware.float_width",
            )
        set_(self, "layer_types", _layer_types(self.layer_types))

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    @property
    def effective_part(self) -> str:
        """``part``, or the backend's default part when it is not set."""
        return self.part if self.part is not None else self.backend.info.default_part

    @property
    def softmax_table_bits(self) -> int:
        """Address bits of the softmax tables (``log2(softmax_table_size)``)."""
        return self.softmax_table_size.bit_length() - 1

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FirmwareOptions:
        """Build from a mapping (e.g. the ``firmware:`` section of a YAML config).

        Read by the config schema, as the ``firmware:`` section of a run config: unknown keys
        are errors that name the closest valid key.
        """
        return build(cls, dict(values), "firmware")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (strings for enums and types), the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, FixedType):
                value = value.to_hls()
            elif f.name == "layer_types":
                value = {
                    layer: {k: t.to_hls() for k, t in types.items()}
                    for layer, types in value.items()
                }
            out[f.name] = value
        return out
