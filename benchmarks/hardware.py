"""Time of the open-tool hardware flow, and RTL-simulation speed against ``hepfpga emulate``.

    python benchmarks/hardware.py [--events 4000] [--no-synth]

For the pipeline's jet MLP (16-64-32-32-5, ``quantized_bits(6,0)`` weights, ``quantized_relu(6)``)
and a small CNN (Conv2D 4x3x3 'same', ``quantized_relu(6)``, 2x2 max pooling, dense), both
with seeded random weights (time and exactness do not depend on training), it measures:

* time to RTL: tracing the QKeras model into da4ml's adder graph, pipelining, writing Verilog
  (the first trace in a process also JIT-compiles da4ml's solver: reported separately by
  tracing twice);
* time to simulation: the Verilator build of the test bench and the simulation of
  ``--events`` events (one per clock);
* time to synthesis: yosys ``synth_xilinx -family xcup``;
* RTL-simulation events/s against the ``hepfpga emulate`` engine's events/s (the baseline,
  measured in the same run on the same events), and the fraction of events whose RTL outputs
  equal the emulator's logits bit for bit.

Wall times on a shared machine vary; the CPU time of the child processes (Verilator's g++,
yosys) is printed next to them.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from emulation import cnn, events, jet_mlp


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, model, n_events: int, synth: bool, folder: Path) -> dict:
    from hepfpga.firmware import FirmwareOptions, compile_project, write_project
    from hepfpga.firmware.emulate import Emulator
    from hepfpga.firmware.rtl.codegen import write_rtl
    from hepfpga.firmware.rtl.sim import build_simulator, check_rtl
    from hepfpga.firmware.rtl.synth import synthesize
    from hepfpga.firmware.rtl.trace import trace_model

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    x = events(n_events, int(np.prod(shape)), seed=2).reshape(n_events, *shape)
    row: dict = {"model": name}
    slug = name.lower().replace(" ", "_")

    start = time.perf_counter()
    trace_model(model)
    first_trace = time.perf_counter() - start
    start = time.perf_counter()
    net = trace_model(model)
    row["trace_s"] = time.perf_counter() - start
    row["jit_s"] = max(first_trace - row["trace_s"], 0.0)
    start = time.perf_counter()
    project = write_rtl(net, folder / slug / "rtl")
    row["rtl_s"] = row["trace_s"] + time.perf_counter() - start
    row["stages"] = project.n_stages

    cpu = _children_cpu()
    start = time.perf_counter()
    simulator = build_simulator(project)
    row["sim_build_s"] = time.perf_counter() - start
    row["sim_build_cpu_s"] = _children_cpu() - cpu
    codes = np.ldexp(net.input_type.quantize(x), project.inputs.fractional).astype(np.int64)
    timings = []
    for _ in range(3):
        trace, seconds = simulator.run(codes.reshape(n_events, -1))
        timings.append(seconds)
    row["rtl_events_per_s"] = n_events / min(timings)
    outputs = trace[project.n_stages : project.n_stages + n_events]

    emu_project = compile_project(write_project(model, FirmwareOptions(), folder / slug / "hls"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emulator = Emulator.from_project(emu_project, x[:2000])
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        logits = emulator.predict_logits(x)
        timings.append(time.perf_counter() - start)
    row["emulate_events_per_s"] = n_events / min(timings)
    row["identical"] = check_rtl(outputs, logits, "emulate").fraction_identical

    if synth:
        cpu = _children_cpu()
        result = synthesize(project)
        row["synth_s"] = result.seconds
        row["synth_cpu_s"] = _children_cpu() - cpu
        row["lut"], row["ff"], row["carry"] = result.lut, result.ff, result.carry
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--no-synth", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hepfpga-bench-hw-") as folder:
        for name, build in (("jet MLP", jet_mlp), ("CNN", cnn)):
            rows.append(measure(name, build(), args.events, not args.no_synth, Path(folder)))
            print(rows[-1], flush=True)
    print()
    print(
        "| model | stages | JIT (1st trace) s | to RTL s | Verilator build s (CPU) | "
        "RTL sim ev/s | emulate ev/s | RTL / emulate | identical | yosys s (CPU) | LUT | FF |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        synth = (
            f"{r['synth_s']:.0f} ({r['synth_cpu_s']:.0f}) | {r['lut']:,} | {r['ff']:,}"
            if "synth_s" in r
            else "- | - | -"
        )
        print(
            f"| {r['model']} | {r['stages']} | {r['jit_s']:.1f} | {r['rtl_s']:.1f} | "
            f"{r['sim_build_s']:.0f} ({r['sim_build_cpu_s']:.0f}) | "
            f"{r['rtl_events_per_s']:,.0f} | {r['emulate_events_per_s']:,.0f} | "
            f"{r['rtl_events_per_s'] / r['emulate_events_per_s']:.3f} | "
            f"{r['identical']:.2%} | {synth} |"
        )


if __name__ == "__main__":
    main()
