"""The typed hardware report: latency, resources, timing, where each figure comes from, and
how exactly the hardware reproduces the quantized model.

One :class:`HardwareReport` is filled either by the open-tool flow
(:func:`hepfpga.firmware.rtl.flow.build_hardware`: da4ml RTL, Verilator, yosys) or from a
vendor build's reports (:mod:`hepfpga.firmware.vendor`: Vivado HLS / Vitis HLS). Every group
of figures carries its ``source`` so nobody mistakes a yosys count for a Vivado
place-and-route figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hepfpga._schema import to_plain
from hepfpga.firmware.rtl.parts import PartCapacity, part_capacity

__all__ = ["HardwareReport", "Latency", "RTLCheck", "Resources", "Timing", "lut_equivalent"]

#: DSP -> LUT conversion of the HGQ paper's "LUT equivalent" (LUT + 55 x DSP)
LUTS_PER_DSP = 55


def lut_equivalent(lut: float, dsp: float) -> float:
    """``LUT + 55 x DSP``, the HGQ paper's single resource figure."""
    return lut + LUTS_PER_DSP * dsp


@dataclass(frozen=True)
class RTLCheck:
    """RTL simulation outputs compared bit for bit with reference outputs."""

    #: what the outputs were compared with (e.g. "QKeras logits")
    reference: str
    n_events: int
    #: events whose every output is identical to the reference, at the measured latency
    n_identical: int
    #: largest absolute difference of any output
    max_abs_diff: float

    @property
    def fraction_identical(self) -> float:
        return self.n_identical / self.n_events if self.n_events else 0.0

    @property
    def exact(self) -> bool:
        return self.n_events > 0 and self.n_identical == self.n_events


@dataclass(frozen=True)
class Latency:
    """Latency in clock cycles (min/max over the outputs' paths) and at the clock period."""

    min_cycles: int
    max_cycles: int
    #: initiation interval: cycles between two events
    initiation_interval: int
    clock_period_ns: float
    source: str
    min_ns: float = field(init=False)
    max_ns: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_ns", round(self.min_cycles * self.clock_period_ns, 3))
        object.__setattr__(self, "max_ns", round(self.max_cycles * self.clock_period_ns, 3))


@dataclass(frozen=True)
class Resources:
    """Resource counts, absolute and as a share (%) of ``part`` where its size is known."""

    lut: int
    ff: int
    dsp: int
    #: 36 Kb block RAMs (18 Kb blocks count one half)
    bram: float
    part: str
    source: str
    #: carry-chain cells (yosys only; Vivado folds them into the LUT/CLB counts)
    carry: int | None = None
    #: the device's resources; default: looked up from ``part`` (:data:`~.synth.PARTS`)
    capacity: PartCapacity | None = None
    percent: dict[str, float] = field(init=False)
    lut_equivalent: float = field(init=False)

    def __post_init__(self) -> None:
        capacity = self.capacity or part_capacity(self.part)
        shares: dict[str, float] = {}
        if capacity is not None:
            for name in ("lut", "ff", "dsp", "bram"):
                shares[name] = round(100.0 * getattr(self, name) / getattr(capacity, name), 4)
        object.__setattr__(self, "percent", shares)
        object.__setattr__(self, "lut_equivalent", lut_equivalent(self.lut, self.dsp))


@dataclass(frozen=True)
class Timing:
    """Clock target and, where a tool estimated it, the achieved period."""

    target_ns: float
    estimated_ns: float | None
    source: str


@dataclass(frozen=True)
class HardwareReport:
    """Latency, resources and timing of one hardware design of a model."""

    #: what was built: e.g. "da4ml RTL (Verilog, 8 stages)" or "Vitis HLS csynth"
    design: str
    latency: Latency | None
    resources: Resources | None
    timing: Timing | None
    #: RTL simulation vs references (QKeras logits, the ``hepfpga emulate`` engine)
    exactness: tuple[RTLCheck, ...] = ()
    #: HGQ models: HGQ's effective bit operations (its own resource estimate, which its
    #: training minimises), shown beside the counted LUTs; None for other models
    ebops: float | None = None
    #: wall time of each step, seconds
    seconds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def exact(self) -> bool | None:
        """All comparisons identical on every event (``None`` if nothing was compared)."""
        if not self.exactness:
            return None
        return all(check.exact for check in self.exactness)

    def to_dict(self) -> dict[str, Any]:
        plain = to_plain(self)
        plain["exact"] = self.exact
        for check, item in zip(self.exactness, plain["exactness"], strict=True):
            item["fraction_identical"] = check.fraction_identical
        return plain

    def summary(self) -> str:
        """A few lines for a terminal or a README."""
        lines = [f"design: {self.design}"]
        if self.latency is not None:
            lat = self.latency
            cycles = (
                f"{lat.min_cycles}"
                if lat.min_cycles == lat.max_cycles
                else f"{lat.min_cycles}-{lat.max_cycles}"
            )
            ns = f"{lat.min_ns:g}" if lat.min_ns == lat.max_ns else f"{lat.min_ns:g}-{lat.max_ns:g}"
            lines.append(
                f"latency: {cycles} cycles = {ns} ns at {lat.clock_period_ns:g} ns, "
                f"II = {lat.initiation_interval}  [{lat.source}]"
            )
        if self.resources is not None:
            res = self.resources
            pct = res.percent

            def share(name: str) -> str:
                return f" ({pct[name]:.3g}%)" if name in pct else ""

            carry = f", CARRY {res.carry:,}" if res.carry is not None else ""
            lines.append(
                f"resources on {res.part}: LUT {res.lut:,}{share('lut')}, FF {res.ff:,}"
                f"{share('ff')}, DSP {res.dsp:,}{share('dsp')}, BRAM36 {res.bram:g}"
                f"{share('bram')}{carry}; LUT + 55 x DSP = {res.lut_equivalent:,.0f}  "
                f"[{res.source}]"
            )
        if self.ebops is not None:
            beside = " (no resource count to set beside it: synthesis not run)"
            if self.resources is not None:
                ratio = self.resources.lut / self.ebops if self.ebops > 0 else float("nan")
                beside = f" vs {self.resources.lut:,} LUT counted ({ratio:.3g} LUT per EBOP)"
            lines.append(f"HGQ estimate: {self.ebops:,.0f} EBOPs{beside}")
        if self.timing is not None:
            est = (
                f", estimated {self.timing.estimated_ns:g} ns"
                if self.timing.estimated_ns is not None
                else ", not checked by a timing tool"
            )
            lines.append(f"clock: target {self.timing.target_ns:g} ns{est}  [{self.timing.source}]")
        for check in self.exactness:
            lines.append(
                f"RTL vs {check.reference}: {check.n_identical:,} of {check.n_events:,} events "
                f"identical ({check.fraction_identical:.2%}), max |diff| {check.max_abs_diff:g}"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)
