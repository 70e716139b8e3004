"""Throughput of the C++ trigger emulator library against hls4ml ``predict()`` and ``hepfpga
emulate``, in one run, and its load + unload time.

    python benchmarks/emulator_lib.py [--run runs/jet_tagging] [--events 200000]
                                      [--csim-events 20000] [--arithmetic generated|hls4ml]
                                      [--bdt-events 5000]

The model is the QKeras model of ``--run`` (a folder written by ``hepfpga run``), or else the
jet MLP of ``benchmarks/emulation.py`` with seeded random weights (speed does not depend on
training). On the same events it measures (best of three, one thread each):

* hls4ml ``ModelGraph.predict()`` (the C simulation through ctypes) on ``--csim-events``;
* :meth:`hepfpga.firmware.emulate.Emulator.predict` (numpy, one BLAS thread) on ``--events``;
* the package of :func:`hepfpga.firmware.emulator_lib.write_emulator_package` (``--arithmetic``:
  ``generated``, the integer C++ generated from the engine's plan, falling back to the hls4ml
  sources where not covered, reported; or ``hls4ml``, the C-simulation sources), built with
  CMake and g++ (flags: ``CXX_FLAGS``, printed), run by its test program ``run_events``: two
  libraries of the model
  (versions v1 and v2, two namespaces) loaded into one process, each event through
  ``prepare_input(double*)`` / ``predict()`` / ``read_result(double*)``, every output compared
  bit for bit with ``Emulator.predict``; the program reports events/s and the load
  (``dlopen`` + ``create_model``) and unload (``destroy_model`` + ``dlclose``) times.

Ratios are against hls4ml ``predict()`` measured in the same run.

With a ``--run`` that has a BDT (``bdt_firmware/``), a BDT row: the run's BDT packaged as
``hepfpga emulator-lib`` packages it (:mod:`hepfpga.firmware.emulator_lib_bdt`, conifer's C++
emulation behind the interface) on the first ``--bdt-events`` events, loaded into the same
process as the two network libraries, every score compared bit for bit with conifer's compiled
emulation; its events/s against conifer's Python-bridge ``decision_function`` (the pybind11
bridge hepfpga's BDT stage runs, one call per event, on the features already quantized by
``quantize_features``) measured in the same run, and its load time (``dlopen`` + parsing the
embedded trees in ``create_model``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
# the sibling benchmark's model and events
from emulation import REPEATS, events, jet_mlp


def best_rate(n: int, call: Any) -> float:
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return n / min(timings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="run folder (qkeras_model.h5, firmware/)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--csim-events", type=int, default=20_000)
    parser.add_argument("--arithmetic", default="generated", choices=("generated", "hls4ml"))
    parser.add_argument("--bdt-events", type=int, default=5_000)
    args = parser.parse_args(argv)

    import hls4ml

    from hepfpga.cli.emulator_lib import RUN_MODEL, RUN_OPTIONS, run_bdt
    from hepfpga.firmware import FirmwareOptions, compile_project, write_project
    from hepfpga.firmware.emulate import Emulator
    from hepfpga.firmware.emulator_lib import (
        CXX_FLAGS,
        EVENTS_FILE,
        build_package,
        run_package_test,
        write_emulator_package,
    )
    from hepfpga.firmware.emulator_lib_bdt import BDT_EVENTS_FILE
    from hepfpga.quantize.model_io import load_keras_model
    from hepfpga.train.bdt import load_emulation, quantize_features

    if args.run is not None:
        import json

        model = load_keras_model(args.run / RUN_MODEL)
        options = FirmwareOptions.from_dict(
            json.loads((args.run / RUN_OPTIONS).read_text())["options"]
        )
        label = f"{args.run.name} (trained)"
        bdt, no_bdt = run_bdt(args.run)
    else:
        model, options, label = jet_mlp(), FirmwareOptions(), "jet MLP (seeded weights)"
        bdt, no_bdt = None, "no --run"
    width = int(np.prod(model.inputs[0].shape[1:]))
    x = events(args.events, width, seed=2)
    x_csim = x[: args.csim_events]
    import subprocess

    gxx = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout
    print(f"hls4ml {hls4ml.__version__}, {os.cpu_count()} cores, model: {label}")
    print(f"library compiled by {gxx.splitlines()[0]} with {CXX_FLAGS} (CMake Release)")

    with tempfile.TemporaryDirectory(prefix="hepfpga-bench-emulib-") as tmp:
        project = compile_project(write_project(model, options, Path(tmp) / "project"))
        csim = best_rate(len(x_csim), lambda: project.hls_model.predict(x_csim.astype(np.float64)))
        emulator = Emulator.from_project(project, x[:10_000])
        emulate = best_rate(len(x), lambda: emulator.predict(x))  # one BLAS thread inside

        packages = []
        for version in ("v1", "v2"):
            start = time.perf_counter()
            package = write_emulator_package(
                model,
                x,
                Path(tmp) / version,
                name="bench",
                version=version,
                options=options,
                arithmetic=args.arithmetic,
            )
            written = time.perf_counter() - start
            start = time.perf_counter()
            build = build_package(package.path)
            packages.append((build / package.library_name, package.path / EVENTS_FILE))
            print(
                f"package {version}: written in {written:.1f} s (conversion, C simulation, "
                f"expected outputs), built in {time.perf_counter() - start:.1f} s; "
                f"arithmetic: {package.arithmetic}"
                + (f" (fallback: {package.fallback_reason})" if package.fallback_reason else "")
            )
            arithmetic = package.arithmetic
        bdt_part = None
        if bdt is not None:
            x_bdt = x[: args.bdt_events]
            emulation = load_emulation(bdt.emulation_dir)
            xq = quantize_features(x_bdt, bdt.config)
            bridge = best_rate(len(xq), lambda: emulation.scores(xq))
            start = time.perf_counter()
            package = write_emulator_package(
                model,
                x_bdt,
                Path(tmp) / "bdt",
                name="bench",
                version="vb",
                options=options,
                arithmetic=args.arithmetic,
                bdt=bdt,
            )
            bdt_part = package.bdt
            if bdt_part is None:
                print(f"the run's BDT was not packaged: {package.bdt_reason}", file=sys.stderr)
                return 1
            written = time.perf_counter() - start
            start = time.perf_counter()
            build = build_package(package.path)
            packages.append((build / bdt_part.library_name, package.path / BDT_EVENTS_FILE))
            print(
                f"package with the run's BDT: written in {written:.1f} s, built in "
                f"{time.perf_counter() - start:.1f} s"
            )
        else:
            print(f"no BDT row: {no_bdt}")
        runner = packages[0][0].parent / "run_events"
        bdt_rates: list[float] = []
        bdt_loads: list[float] = []
        rates: dict[str, list[float]] = {"v1": [], "v2": []}
        loads: list[float] = []
        unloads: list[float] = []
        for _ in range(REPEATS):
            run = run_package_test(runner, packages)
            if not run.passed:
                print(run.output, file=sys.stderr)
                return 1
            for version in rates:
                line = next(s for s in run.output.splitlines() if f"bench_{version}.so:" in s)
                if "events/s" in line:
                    rates[version].append(float(re.search(r"([\d.]+) events/s", line)[1]))
                    loads.append(float(re.search(r"load ([\d.]+) s", line)[1]))
            if bdt_part is not None:
                line = next(s for s in run.output.splitlines() if f"{bdt_part.library_name}:" in s)
                bdt_rates.append(float(re.search(r"([\d.]+) events/s", line)[1]))
                bdt_loads.append(float(re.search(r"load ([\d.]+) s", line)[1]))
                pattern = rf"{re.escape(bdt_part.library_name)}: unload"
                run_output = "\n".join(
                    s for s in run.output.splitlines() if not re.search(pattern, s)
                )
            else:
                run_output = run.output
            unloads += [float(v) for v in re.findall(r"unload ([\d.]+) s", run_output)]
        print(run.output.strip())

    cpp = max(max(rates["v1"]), max(rates["v2"]))
    print()
    print(
        "| model | arithmetic | hls4ml predict() ev/s | hepfpga emulate ev/s | ratio | C++ "
        "library v1 ev/s | C++ library v2 ev/s | ratio (best) | load (dlopen+create) | unload "
        "| identical |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {label} | {arithmetic} | {csim:,.0f} | {emulate:,.0f} | {emulate / csim:.0f}x | "
        f"{max(rates['v1']):,.0f} | {max(rates['v2']):,.0f} | {cpp / csim:.0f}x | "
        f"{1e3 * min(loads):.2f} ms | {1e3 * min(unloads):.2f} ms | "
        f"all {len(x):,} events, both libraries |"
    )
    if bdt_part is not None:
        print()
        print(
            "| BDT | conifer bridge decision_function() ev/s | C++ library ev/s | ratio | load "
            "(dlopen+create) | identical |"
        )
        print("|---|---|---|---|---|---|")
        types = bdt_part.types
        print(
            f"| {args.run.name} BDT ({bdt_part.n_outputs} scores, {types['threshold_t']} "
            f"thresholds, {types['score_t']} scores) | {bridge:,.0f} | {max(bdt_rates):,.0f} | "
            f"{max(bdt_rates) / bridge:.1f}x | {1e3 * min(bdt_loads):.1f} ms | "
            f"all {args.bdt_events:,} events |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
