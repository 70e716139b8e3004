"""g++ time of the C-simulation build: hls4ml's ``build_lib.sh`` as written against the script
hepfpga runs (the same commands and flags, both translation units compiled at once), in one
run on the same project.

    python benchmarks/build_time.py [--steps 32] [--filters 16] [--repeat 2]

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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)

    from hepfpga.firmware import FirmwareOptions
    from hepfpga.firmware.project import (
        _WEIGHTS_DIR_CODE,
        WEIGHTS_DIR_HEADER,
        _relocatable_script,
        write_project,
    )

    model = conv1d_tagger(args.steps, args.filters)
    with tempfile.TemporaryDirectory(prefix="hepfpga-build-") as tmp:
        base = write_project(model, FirmwareOptions(), Path(tmp) / "project").path
        hls4ml_dir = Path(tmp) / "hls4ml"
        hepfpga_dir = Path(tmp) / "hepfpga"
        shutil.copytree(base, hls4ml_dir)
        shutil.copytree(base, hepfpga_dir)
        script = _relocatable_script(hepfpga_dir)
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
