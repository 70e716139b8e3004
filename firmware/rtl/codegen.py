"""Pipelined Verilog/VHDL of a traced network, written with da4ml.

:func:`write_rtl` cuts da4ml's combinational adder graph into register stages
(``da4ml.trace.to_pipeline``) and writes the project: ``src/<top>.v`` (the pipeline),
``src/<top>_stage<k>.v`` (one combinational block per stage), ``src/<top>_wrapper.v`` (the
same ports at a uniform width per element, used by the test bench), ``src/static/`` (da4ml's
primitives), timing constraints (``.xdc``/``.sdc``) and Vivado/Quartus project scripts.

Timing model: da4ml estimates the delay of every adder in units of one carry-chain adder
(``HWConfig(1, -1, -1)``: each addition costs 1) and starts a new stage whenever the delay
since the last register would exceed ``latency_cutoff``; da4ml's converter uses 5 units at a
5 ns clock. The clock is not checked by any tool here: it is the target at which the stage
count is meant to close timing (Vivado would confirm it).

Latency convention: ``n_stages`` register stages plus the input register; an event presented
at the input before clock edge ``t`` appears at the output after edge ``t + n_stages``. The
RTL simulation (:mod:`hepfpga.firmware.rtl.sim`) measures this shift instead of assuming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga._schema import to_plain
from hepfpga.artifacts import dumps_strict
from hepfpga.errors import ConfigError
from hepfpga.firmware.rtl.trace import TracedNetwork
from hepfpga.registry import Registry

__all__ = ["DEFAULT_LATENCY_CUTOFF", "FLAVORS", "HDLFlavor", "RTLProject", "write_rtl"]

#: da4ml delay units per pipeline stage (its converter's default at a 5 ns clock)
DEFAULT_LATENCY_CUTOFF = 5.0


@dataclass(frozen=True)
class HDLFlavor:
    """An HDL da4ml writes: the suffix of its files and da4ml's writer
    (a class of ``da4ml.codegen``)."""

    suffix: str
    writer: str


#: HDL flavours da4ml writes (``hardware.flavor``)
FLAVORS = Registry[HDLFlavor](
    "HDL flavor",
    {"verilog": HDLFlavor("v", "VerilogModel"), "vhdl": HDLFlavor("vhd", "VHDLModel")},
)


@dataclass(frozen=True)
class PortLayout:
    """How elements sit in a port of the uniform-width wrapper: ``count`` elements of
    ``width`` bits each, element ``j`` in bits ``[j*width, (j+1)*width)``, its lsb worth
    ``2**-fractional``, two's complement when ``signed``."""

    count: int
    width: int
    fractional: int
    signed: bool

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Unsigned ``width``-bit fields (as the test bench reads them) -> float64 values."""
        raw = np.asarray(raw, dtype=np.int64) & ((1 << self.width) - 1)
        if self.signed:
            raw = np.where(raw >= 1 << (self.width - 1), raw - (1 << self.width), raw)
        return np.ldexp(raw.astype(np.float64), -self.fractional)


@dataclass(frozen=True)
class RTLProject:
    """A written RTL project."""

    path: Path
    #: top module (the pipeline); the test bench drives ``<top>_wrapper``
    top: str
    flavor: str
    #: register stages of the pipeline (the latency in clock cycles, see the module notes)
    n_stages: int
    #: initiation interval in cycles (fully pipelined: a new event every clock)
    initiation_interval: int
    clock_period_ns: float
    latency_cutoff: float
    part: str
    inputs: PortLayout
    outputs: PortLayout
    #: da4ml's own estimates: LUTs of the adder graph, flip-flops of the pipeline registers
    estimated_luts: float
    estimated_ffs: int

    @property
    def sources(self) -> list[Path]:
        """HDL files of the design (without the wrapper), primitives first."""
        suffix = FLAVORS[self.flavor].suffix
        src = self.path / "src"
        files = sorted((src / "static").glob(f"*.{suffix}"))
        if not any((src / "memfiles").glob("*")):  # no tables: the table primitive is unused
            files = [p for p in files if p.stem != "lookup_table"]
        files += sorted(src.glob(f"{self.top}_stage*.{suffix}"))
        return [*files, src / f"{self.top}.{suffix}"]

    @property
    def wrapper(self) -> Path:
        return self.path / "src" / f"{self.top}_wrapper.{FLAVORS[self.flavor].suffix}"


def _layout(qints: list[Any]) -> PortLayout:
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.cmvm.types import _minimal_kif

    kifs = np.array([_minimal_kif(q) for q in qints], dtype=np.int64)
    k, i, f = (int(v) for v in kifs.max(axis=0))
    return PortLayout(count=len(qints), width=k + i + f, fractional=f, signed=bool(k))


def write_rtl(
    net: TracedNetwork,
    path: str | Path,
    *,
    top: str = "hepfpga_model",
    flavor: str = "verilog",
    latency_cutoff: float = DEFAULT_LATENCY_CUTOFF,
    clock_period_ns: float = 5.0,
    part: str = "xcvu13p-flga2577-2-e",
) -> RTLProject:
    """Pipeline ``net`` and write its RTL project into the folder ``path`` (created)."""
    # deferred, optional: da4ml (hepfpga[hardware])
    import da4ml.codegen
    from da4ml.trace import to_pipeline

    writer = getattr(da4ml.codegen, FLAVORS.lookup(flavor, "hardware.flavor").writer)
    if not latency_cutoff > 0:
        raise ConfigError(
            f"latency_cutoff must be > 0. Received: {latency_cutoff}",
            path="hardware.latency_cutoff",
        )
    if not top.isidentifier():
        raise ConfigError(f"top module name '{top}' is not an identifier", path="hardware.top")
    pipe = to_pipeline(net.comb, latency_cutoff, verbose=False)
    folder = Path(path)
    model = writer(
        pipe,
        top,
        folder,
        latency_cutoff=latency_cutoff,
        clock_period=clock_period_ns,
        part_name=part,
    )
    model.write()
    project = RTLProject(
        path=folder.resolve(),
        top=top,
        flavor=flavor,
        n_stages=len(pipe.solutions),
        initiation_interval=1,
        clock_period_ns=float(clock_period_ns),
        latency_cutoff=float(latency_cutoff),
        part=part,
        inputs=_layout(pipe.inp_qint),
        outputs=_layout(pipe.out_qint),
        estimated_luts=float(pipe.cost),
        estimated_ffs=int(pipe.reg_bits),
    )
    plain = to_plain(project)
    plain["path"] = "."  # the folder may move (written in a temporary folder, then renamed)
    (folder / "hepfpga_rtl.json").write_text(dumps_strict(plain, indent=2) + "\n")
    return project
