"""kill -9 in the middle of ``run`` and ``firmware --compile``: nothing half-written at the
destination, and the re-run succeeds (removing what the killed process left beside it).

Real subprocesses of the console entry point, killed as a batch system kills a job (SIGKILL
to the process group, so g++ dies too); tiny models and ``--max-jets`` keep them cheap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hepfpga.quantize.methods import QUANTIZATION_METHODS

pytestmark = pytest.mark.slow

TINY_RUN = """\
name: tiny
seed: 1
data:
  max_jets: 300
model:
  hidden_units: [4]
training: {epochs: 1, batch_size: 64}
quantization: {epochs: 1, batch_size: 64}
verification:
  # an impossible requirement: the run completes and must then exit with status 1
  max_accuracy_drop: -1.0
  testbench_events: 5
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "HEPFPGA_CACHE": str(tmp_path / "cache"),
        "PYTHONUNBUFFERED": "1",
    }


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hepfpga", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def _kill_at_log_line(process: subprocess.Popen[str], marker: str, delay_s: float) -> None:
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if marker in line:
            time.sleep(delay_s)
            _kill(process)
            return
    process.wait()
    pytest.fail(f"'{marker}' never logged; the command said:\n{''.join(seen)}")


def _leftovers(folder: Path, name: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(f".{name}."))


def test_run_killed_at_each_stage_leaves_no_run_folder_and_the_rerun_completes(
    tmp_path: Path,
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_RUN)
    runs = tmp_path / "runs"
    args = ["run", str(config), "--output-dir", str(runs)]
    for marker, delay in (
        # the tiny run is a QKeras one: the stage names its method
        (f"quantization-aware training ({QUANTIZATION_METHODS['qkeras'].display_name}) ...", 0.5),
        ("hls4ml conversion", 3.0),  # hls4ml writing or g++ compiling
    ):
        _kill_at_log_line(_start(args, tmp_path), marker, delay)
        assert not (runs / "tiny").exists(), f"killed at '{marker}': a run folder appeared"
        assert _leftovers(runs, "tiny"), "the killed run should have left its partial folder"

    result = subprocess.run(
        [sys.executable, "-m", "hepfpga", "-q", "run", *args[1:]],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 1, result.stderr  # the failed check, not 0
    assert "status: failed" in result.stdout and "Traceback" not in result.stderr
    assert _leftovers(runs, "tiny") == [], "the re-run removes what the killed runs left"
    report_text = (runs / "tiny" / "report.json").read_text()

    def refuse(token: str) -> None:
        raise AssertionError(f"report.json holds the non-JSON token {token}")

    report = json.loads(report_text, parse_constant=refuse)
    assert report["status"] == "failed"
    assert not report["checks"]["qkeras_accuracy_drop"]["passed"]
    assert (runs / "tiny" / "manifest.json").is_file()
    # the C simulation was compiled inside the partial folder, since renamed: it still works
    (library,) = (runs / "tiny" / "firmware" / "firmware").glob("myproject-*.so")
    assert len(_call_library(library, n_inputs=16, n_outputs=5)) == 5


@pytest.fixture(scope="module")
def qkeras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="input")
    h = QActivation(quantized_bits(10, 4, alpha=1), name="q_in")(x)
    h = QDense(
        3,
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="dense",
    )(h)
    path = tmp_path_factory.mktemp("kill-model") / "q.h5"
    keras.Model(x, h).save(path)
    return path


def _wait_for_compiler(folder: Path, name: str, process: subprocess.Popen[str]) -> None:
    """Until g++ runs in the partial folder (hepfpga's build script is there)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if any((p / ".hepfpga_build_lib.sh").exists() for p in _leftovers(folder, name)):
            return
        if process.poll() is not None:
            pytest.fail(f"firmware ended before compiling: {process.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.05)
    pytest.fail("the compilation never started")


def test_firmware_compile_killed_during_gcc_leaves_nothing_and_the_rerun_works(
    tmp_path: Path, qkeras_file: Path
) -> None:
    out = tmp_path / "fw" / "project"
    args = ["firmware", str(qkeras_file), "--out", str(out), "--compile"]
    process = _start(args, tmp_path)
    _wait_for_compiler(out.parent, "project", process)
    time.sleep(0.5)
    _kill(process)
    assert not out.exists(), "a killed compile must not leave a project at --out"
    assert _leftovers(out.parent, "project")

    result = subprocess.run(
        [sys.executable, "-m", "hepfpga", "-q", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr
    assert "compiled the C simulation" in result.stdout
    assert "g++" not in result.stderr, result.stderr  # -q: no build progress
    assert _leftovers(out.parent, "project") == []
    (library,) = (out / "firmware").glob("myproject-*.so")
    first = _call_library(library, n_inputs=4, n_outputs=3)
    moved = tmp_path / "moved"
    out.rename(moved)
    assert _call_library(moved / "firmware" / library.name, n_inputs=4, n_outputs=3) == first


CALL_LIBRARY = """
import ctypes, json, sys
import numpy as np
lib = ctypes.CDLL(sys.argv[1])
x = np.linspace(-1, 1, int(sys.argv[2]), dtype=np.float32)
y = np.zeros(int(sys.argv[3]), dtype=np.float32)
lib.myproject_float(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p))
print(json.dumps(y.tolist()))
"""


def _call_library(library: Path, *, n_inputs: int, n_outputs: int) -> list[float]:
    """Call a C-simulation library in a fresh process. It reads its weights on its first call
    and ends the process if they are not where it looks (hls4ml's build: the absolute path of
    the folder it was compiled in, here a partial folder that is gone)."""
    call = subprocess.run(
        [sys.executable, "-c", CALL_LIBRARY, str(library), str(n_inputs), str(n_outputs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert call.returncode == 0, call.stdout + call.stderr
    return json.loads(call.stdout)
