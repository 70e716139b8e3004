"""g++ time of the C-simulation build: hls4ml's ``build_lib.sh`` as written against the script
hepfpga runs (the same commands and flags, both translation units compiled at once), in one
run on the same project; or, with ``--project``, the build of existing projects at several
optimisation levels.

    python benchmarks/build_time.py [--steps 32] [--filters 16] [--repeat 2]
    python benchmarks/build_time.py --project RUN/firmware [--project ...] \
        [--levels O3 O2 O1 O0] [--events 2000]
    python benchmarks/build_time.py --levels O3 O1 [--steps 32] [--filters 16]

*Levels* (``--project``, or ``--levels`` alone for the Conv1D tagger below): each project (a
run folder's ``firmware/``) is copied once per ``-O`` level, its ``build_lib.sh`` flags
changed from hls4ml's ``-O3`` to that level, and built with hepfpga's script (units at once);
each library then runs the same ``--events`` random events (normal, sigma 2, as float64
through the bridge's ``<project>_double``) and its outputs are compared bit for bit with the
first level's. Identical outputs on the events mean ``hepfpga verify`` gives the same verdict
with either library. Seconds are wall time of one build (best of ``--repeat``) and of running
the events through the library (the C simulation's own speed, which ``verify`` and ``emulate
--engine csim`` pay per event), ratios against the first level from the same run.

The model is a representative io_parallel QKeras Conv1D tagger (input ``quantized_bits(12,3)``
over ``--steps`` constituents x 8 features, QConv1D ``--filters`` x 3 with
``quantized_relu(6)``, QConv1D ``--filters`` x 3, flatten, QDense 5; ``quantized_bits(6,0)``
weights; seeded random weights: build time does not depend on training). Its project is
written once, copied twice, and built with each script; each build is timed ``--repeat``
times and the best is reported (other processes on a shared machine slow single runs down).
The ratio is hepfpga's time over hls4ml's from the same run. Both scripts run the same g++
commands with the same flags (``-O3``, hls4ml's choice), so the library computes the same
thing; only the two compilations overlap in time (2 cores: at most 2x).
"""

from __future__ import annotations

import argparse
import ctypes
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def conv1d_tagger(steps: int, filters: int) -> Any:
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((steps, 8), name="constituents")
    h = QActivation(quantized_bits(12, 3, alpha=1), name="input_quant")(x)
    for i in (1, 2):
        h = QConv1D(filters, 3, kernel_quantizer=q, bias_quantizer=q, name=f"conv_{i}")(h)
        h = QActivation(quantized_relu(6), name=f"relu_{i}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    out = QDense(5, kernel_quantizer=q, bias_quantizer=q, name="logits")(h)
    return keras.Model(x, out, name="conv1d_tagger")


def _time(command: list[str], folder: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        for built in (folder / "firmware").glob("*.so"):
            built.unlink()
        start = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        best = min(best, time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"build failed in {folder}: {done.stdout[-2000:]}")
    return best


def _sizes(folder: Path, project: str) -> tuple[list[int], list[int]]:
    """Input and output sizes of the bridge's ``<project>_double`` (hls4ml's convert_data
    calls, in argument order)."""
    bridge = (folder / f"{project}_bridge.cpp").read_text()
    body = bridge[bridge.index(f"void {project}_double(") :]
    size = r"([0-9*]+)"
    inputs = re.findall(rf"convert_data<double,\s*\w+,\s*{size}>", body)
    outputs = re.findall(rf"convert_data<\w+,\s*double,\s*{size}>", body)
    return [math.prod(int(v) for v in n.split("*")) for n in inputs], [
        math.prod(int(v) for v in n.split("*")) for n in outputs
    ]


def _run_library(folder: Path, events: int) -> np.ndarray:
    """Every output of the built library on ``events`` seeded random events, concatenated."""
    project = "myproject"
    (library,) = (folder / "firmware").glob(f"{project}-*.so")
    lib = ctypes.CDLL(str(library.resolve()), mode=ctypes.RTLD_LOCAL)
    top = getattr(lib, f"{project}_double")
    ins, outs = _sizes(folder, project)
    pointer = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
    top.argtypes = [pointer] * (len(ins) + len(outs))
    top.restype = None
    rng = np.random.default_rng(0)
    x = [rng.normal(0, 2, size=(events, n)) for n in ins]
    y = [np.zeros((events, n)) for n in outs]
    for i in range(events):
        top(*(a[i] for a in x), *(b[i] for b in y))
    return np.concatenate(y, axis=1)


def levels(projects: list[Path], levels_: list[str], events: int, repeat: int) -> None:
    """Build each project at each ``-O`` level; time it, compare the outputs."""
    from hepfpga.firmware.project import (
        _WEIGHTS_DIR_CODE,
        WEIGHTS_DIR_HEADER,
        _relocatable_script,
    )

    print(
        f"{'project':<28} {'level':>5} {'build s':>8} {'ratio':>6} {'run s':>7} {'ratio':>6}  "
        f"outputs vs -{levels_[0]}"
    )
    for project in projects:
        with tempfile.TemporaryDirectory(prefix="hepfpga-levels-") as tmp:
            first: tuple[float, np.ndarray, float] | None = None
            for level in levels_:
                folder = Path(tmp) / level
                shutil.copytree(project, folder)
                for built in (folder / "firmware").glob("*.so"):
                    built.unlink()
                script = _relocatable_script(folder, level)
                if script is None or f'CFLAGS="-{level} -fPIC"' not in script:
                    raise SystemExit(f"{project}: not hls4ml's Vivado/Vitis build_lib.sh")
                (folder / "firmware" / WEIGHTS_DIR_HEADER).write_text(_WEIGHTS_DIR_CODE)
                (folder / "hepfpga_build_lib.sh").write_text(script)
                seconds = _time(["bash", "hepfpga_build_lib.sh"], folder, repeat)
                start = time.perf_counter()
                out = _run_library(folder, events)
                run = time.perf_counter() - start
                if first is None:
                    first = (seconds, out, run)
                same = "identical" if np.array_equal(out, first[1]) else "DIFFERENT"
                name = project.resolve().parent.name if project.name == "firmware" else project.name
                print(
                    f"{name:<28} {level:>5} {seconds:>8.1f} {seconds / first[0]:>6.2f} "
                    f"{run:>7.2f} {run / first[2]:>6.2f}  {same} ({events} events, "
                    f"{out.shape[1]} outputs)",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--project", type=Path, action="append", default=[])
    parser.add_argument("--levels", nargs="+", default=None)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args(argv)

    from hepfpga.firmware import FirmwareOptions
    from hepfpga.firmware.project import (
        _WEIGHTS_DIR_CODE,
        WEIGHTS_DIR_HEADER,
        _relocatable_script,
        write_project,
    )

    if args.project or args.levels:
        chosen = args.levels or ["O3", "O2", "O1", "O0"]
        if args.project:
            levels(args.project, chosen, args.events, args.repeat)
            return 0
        # the Conv1D tagger's project at each level
        with tempfile.TemporaryDirectory(prefix="hepfpga-build-") as tmp:
            model = conv1d_tagger(args.steps, args.filters)
            written = write_project(model, FirmwareOptions(), Path(tmp) / "conv1d_tagger")
            levels([written.path], chosen, args.events, args.repeat)
        return 0

    model = conv1d_tagger(args.steps, args.filters)
    with tempfile.TemporaryDirectory(prefix="hepfpga-build-") as tmp:
        base = write_project(model, FirmwareOptions(), Path(tmp) / "project").path
        hls4ml_dir = Path(tmp) / "hls4ml"
        hepfpga_dir = Path(tmp) / "hepfpga"
        shutil.copytree(base, hls4ml_dir)
        shutil.copytree(base, hepfpga_dir)
        # hls4ml's -O3 on both sides: this comparison is of the units compiled at once
        script = _relocatable_script(hepfpga_dir, "O3")
        if script is None:
            raise SystemExit("the project's build_lib.sh is not hls4ml's Vivado/Vitis template")
        (hepfpga_dir / "firmware" / WEIGHTS_DIR_HEADER).write_text(_WEIGHTS_DIR_CODE)
        (hepfpga_dir / "hepfpga_build_lib.sh").write_text(script)
        old = _time(["bash", "build_lib.sh"], hls4ml_dir, args.repeat)
        new = _time(["bash", "hepfpga_build_lib.sh"], hepfpga_dir, args.repeat)
    print(
        f"Conv1D tagger ({args.steps} x 8 inputs, {args.filters} filters, io_parallel, "
        "Latency, Vitis)"
    )
    print(f"hls4ml build_lib.sh (units one after the other): {old:8.1f} s")
    print(f"hepfpga build (units compiled at once):          {new:8.1f} s")
    print(f"ratio hepfpga / hls4ml: {new / old:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
