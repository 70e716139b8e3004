"""Vendor builds of an hls4ml project (Vitis HLS / Vivado HLS): their steps and their reports,
read into the same :class:`~hepfpga.firmware.rtl.report.HardwareReport` as the open-tool flow.

:class:`BuildSteps` says which steps a build runs (C simulation, C synthesis, co-simulation,
IP export, Vivado logic synthesis); the backend's tool runs them
(:func:`hepfpga.firmware.backends.build_project`, or
:meth:`~hepfpga.firmware.backends.HLSBackend.build`) when it is on PATH, and otherwise
raises :class:`~hepfpga.errors.MissingDependencyError` naming the tool and the settings
script to source. :func:`read_reports` parses what a build left (our own parser of the files
hls4ml's ``parse_vivado_report`` reads, so the figures are typed):

* ``<project>_prj/<solution>/syn/report/<top>_csynth.xml`` (the C synthesis estimate):
  latency best/worst case in cycles, interval, target and estimated clock, LUT/FF/DSP/
  BRAM_18K and the part's available resources (Vivado HLS names the DSPs ``DSP48E``, Vitis
  HLS ``DSP``);
* ``<project>_prj/<solution>/sim/report/<top>_cosim.rpt`` (co-simulation): the measured
  latency and interval replace the estimate;
* ``vivado_synth.rpt`` (Vivado logic synthesis): its LUT/FF/DSP/BRAM replace the HLS
  estimate, which is known to overestimate LUTs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from hepfpga.errors import ConfigError, ConversionError
from hepfpga.firmware.rtl.parts import PartCapacity
from hepfpga.firmware.rtl.report import HardwareReport, Latency, Resources, Timing

__all__ = ["BuildSteps", "read_reports"]


@dataclass(frozen=True)
class BuildSteps:
    """Which steps of hls4ml's ``build_prj.tcl`` run (its ``csim``, ``synth``, ``cosim``,
    ``export`` and ``vsynth`` switches)."""

    csim: bool = False
    synth: bool = True
    cosim: bool = False
    export: bool = False
    vsynth: bool = False

    def tcl_options(self) -> dict[str, int]:
        return {
            "reset": 1,
            "csim": int(self.csim),
            "synth": int(self.synth or self.cosim or self.export or self.vsynth),
            "cosim": int(self.cosim),
            "validation": 0,
            "export": int(self.export or self.vsynth),
            "vsynth": int(self.vsynth),
            "fifo_opt": 0,
        }


# -- reports -----------------------------------------------------------------------------------
def _project_and_top(folder: Path) -> tuple[Path, str]:
    script = folder / "project.tcl"
    if not script.is_file():
        raise ConfigError(f"{folder} is not an hls4ml project (no project.tcl)")
    match = re.search(r'set project_name\s+"([^"]+)"', script.read_text())
    if match is None:
        raise ConfigError(f"{script} does not set project_name")
    top = match.group(1)
    return folder / f"{top}_prj", top


def _solution(prj: Path) -> Path:
    for app in ("hls.app", "vivado_hls.app"):
        if (prj / app).is_file():
            text = re.sub(r' xmlns="[^"]+"', "", (prj / app).read_text(), count=1)
            names = [s.get("name") for s in ET.fromstring(text).findall("solutions/solution")]
            if names and names[0]:
                return prj / names[0]
    return prj / "solution1"


def _text(node: ET.Element, path: str) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise ConversionError(f"the C synthesis report has no {path}")
    return found.text.strip()


def _resources(node: ET.Element | None) -> dict[str, int]:
    if node is None:
        return {}
    names = {"DSP48E": "DSP"}
    return {names.get(child.tag, child.tag): int(child.text or 0) for child in node}


def _vivado_synth(path: Path) -> dict[str, float]:
    """LUT/FF/BRAM/DSP of a Vivado utilization report (sections 1-3)."""
    found: dict[str, float] = {}
    section = 0
    for line in path.read_text().splitlines():
        heading = re.match(r"^(\d)\.", line)
        if heading:
            section = int(heading.group(1))
        if "|" not in line:
            continue
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 3:
            continue
        name, value = cells[1], cells[2]
        if section == 1 and name in ("CLB LUTs", "Slice LUTs", "CLB LUTs*", "Slice LUTs*"):
            found["LUT"] = float(value)
        elif section == 1 and name in ("CLB Registers", "Slice Registers"):
            found["FF"] = float(value)
        elif section == 2 and name == "Block RAM Tile":
            found["BRAM36"] = float(value)
        elif section == 3 and name in ("DSPs", "DSP48E2", "DSP48E1"):
            found["DSP"] = float(value)
    return found


def _cosim(path: Path) -> tuple[int, int, int] | None:
    """(latency min, latency max, interval min) of a passing co-simulation."""
    for line in path.read_text().splitlines():
        if re.search(r"\b(Verilog|VHDL)\b", line) and "|" in line:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 8 and cells[1].lower() == "pass":
                return int(cells[2]), int(cells[4]), int(cells[5])
    return None


def read_reports(project: str | Path) -> HardwareReport:
    """The :class:`HardwareReport` of a built hls4ml project (see the module notes)."""
    folder = Path(project)
    prj, top = _project_and_top(folder)
    solution = _solution(prj)
    csynth = solution / "syn" / "report" / f"{top}_csynth.xml"
    if not csynth.is_file():
        raise ConfigError(
            f"no C synthesis report at {csynth}; build the project first (`hepfpga "
            "hardware PROJECT --vendor csim,synth` runs the vendor tool, which must be "
            "installed)"
        )
    root = ET.parse(csynth).getroot()
    version = root.findtext("ReportVersion/Version", default="?").strip()
    tool = "Vitis HLS" if root.find("AreaEstimates/Resources/DSP") is not None else "Vivado HLS"
    part = _text(root, "UserAssignments/Part")
    target = float(_text(root, "UserAssignments/TargetClockPeriod"))
    perf = root.find("PerformanceEstimates")
    if perf is None:
        raise ConversionError(f"{csynth} has no PerformanceEstimates")
    estimated = float(_text(perf, "SummaryOfTimingAnalysis/EstimatedClockPeriod"))
    best = int(_text(perf, "SummaryOfOverallLatency/Best-caseLatency"))
    worst = int(_text(perf, "SummaryOfOverallLatency/Worst-caseLatency"))
    interval = int(_text(perf, "SummaryOfOverallLatency/Interval-min"))
    latency_source = f"{tool} {version} C synthesis estimate"
    cosim_file = solution / "sim" / "report" / f"{top}_cosim.rpt"
    cosim = _cosim(cosim_file) if cosim_file.is_file() else None
    if cosim is not None:
        best, worst, interval = cosim
        latency_source = f"{tool} {version} C/RTL co-simulation"
    used = _resources(root.find("AreaEstimates/Resources"))
    available = _resources(root.find("AreaEstimates/AvailableResources"))
    capacity = None
    if available:
        capacity = PartCapacity(
            family=root.findtext("UserAssignments/ProductFamily", default="").strip(),
            lut=available.get("LUT", 0) or 1,
            ff=available.get("FF", 0) or 1,
            dsp=available.get("DSP", 0) or 1,
            bram=max(available.get("BRAM_18K", 0) // 2, 1),
        )
    figures = {
        "LUT": float(used.get("LUT", 0)),
        "FF": float(used.get("FF", 0)),
        "DSP": float(used.get("DSP", 0)),
        "BRAM36": used.get("BRAM_18K", 0) / 2,
    }
    resource_source = f"{tool} {version} C synthesis estimate"
    synth_file = folder / "vivado_synth.rpt"
    if synth_file.is_file():
        figures.update(_vivado_synth(synth_file))
        resource_source = "Vivado logic synthesis (vivado_synth.rpt, before place-and-route)"
    return HardwareReport(
        design=f"hls4ml project {folder.name} ({tool} {version}, top {top})",
        latency=Latency(best, worst, interval, target, latency_source),
        resources=Resources(
            lut=int(figures["LUT"]),
            ff=int(figures["FF"]),
            dsp=int(figures["DSP"]),
            bram=figures["BRAM36"],
            part=part,
            source=resource_source,
            capacity=capacity,
        ),
        timing=Timing(target, estimated, f"{tool} {version} C synthesis estimate"),
    )
