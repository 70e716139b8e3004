"""Faults from outside: a full disk under every writer the CLI has, and Ctrl-C.

A full disk is a file-size limit (``ulimit -f``, ``RLIMIT_FSIZE``) on a real process of the
console entry point, with ``SIGXFSZ`` ignored so that a write past the limit fails with
``EFBIG`` as a write to a full disk fails with ``ENOSPC``. Each case asserts: status 2, one
``error`` line saying the disk is full and naming the destination, no traceback, and nothing
at the destination (neither the output nor a temporary twin). The writers run one after the
other in one process (one start-up of TensorFlow for all of them), each under its own limit.

Ctrl-C is SIGINT to the process group, as a terminal sends it: while the commands load, and
while ``export onnx`` holds its temporary file (onnxruntime checking the model): status 130,
``interrupted``, no traceback, nothing left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from hepfpga.train.io import save_sample

#: runs ``hepfpga.cli.main`` on each (limit in bytes, argv) of argv[1] under that file-size
#: limit; prints one JSON line per case: status and what the command wrote to stderr
CHILD = """
import contextlib, io, json, resource, sys
from hepfpga.cli import main
for limit, argv in json.loads(sys.argv[1]):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print(json.dumps({"argv": argv, "code": code, "stderr": err.getvalue()}), flush=True)
"""


def _ignore_sigxfsz() -> None:
    # an ignored signal stays ignored across exec: writes past the limit fail with EFBIG
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@dataclass(frozen=True)
class Writer:
    id: str
    #: the file-size limit: above what the command reads and writes before its output, below
    #: its output
    limit: int
    argv: Callable[[Path], list[str]]
    #: the destination, relative to the case's folder (its parent exists beforehand)
    destination: str
    needles: tuple[str, ...]

    def __str__(self) -> str:
        return self.id


WRITERS = [
    Writer(
        "run",
        8 << 10,  # the first model file (HDF5) is larger
        lambda d: ["run", str(d / "run.yaml"), "--output-dir", str(d / "out")],
        "out/tiny",
        ("writing the run folder", "tiny"),
    ),
    Writer(
        "export-onnx",
        1 << 10,  # the ONNX file holds ~3 KB of weights
        lambda d: ["export", "onnx", str(d / "tagger.h5"), "--out", str(d / "out" / "m.onnx")],
        "out/m.onnx",
        ("writing the onnx model", "m.onnx"),
    ),
    Writer(
        "firmware",
        8 << 10,  # hls4ml's nnet_utils headers are larger
        lambda d: ["firmware", str(d / "tagger.h5"), "--out", str(d / "out" / "fw")],
        "out/fw",
        ("writing the firmware project", "fw"),
    ),
    Writer(
        "emulate-outputs",
        600 << 10,  # the C simulation compiles (< 600 KB a file); 20,000 x 5 float64 do not fit
        lambda d: [
            "emulate",
            str(d / "tagger.h5"),
            str(d / "events.npz"),
            "--out",
            str(d / "out" / "e.npz"),
            "--workers",
            "1",
        ],
        "out/e.npz",
        ("writing the emulated outputs", "e.npz"),
    ),
    Writer(
        "tune",
        8 << 10,  # SQLite's new study database is larger
        lambda d: ["tune", str(d / "tune.yaml"), "--output-dir", str(d / "out")],
        "out/search",
        ("study database", "search", "disk is full"),
    ),
]


def _tagger(path: Path) -> None:
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    x = keras.Input((16,), name="input")
    h = QActivation(quantized_bits(12, 4, alpha=1), name="q_in")(x)
    h = QDense(32, kernel_quantizer=quantized_bits(6, 0, alpha=1),
               bias_quantizer=quantized_bits(6, 0, alpha=1), name="dense")(h)  # fmt: skip
    h = QActivation(quantized_relu(6), name="relu")(h)
    h = QDense(5, kernel_quantizer=quantized_bits(6, 0, alpha=1),
               bias_quantizer=quantized_bits(6, 0, alpha=1), name="logits")(h)  # fmt: skip
    keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h)).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, make_jets_module: Callable) -> Path:
    root = tmp_path_factory.mktemp("fault-inputs")
    _tagger(root / "tagger.h5")
    events = np.random.default_rng(0).normal(size=(20_000, 16)).astype(np.float32)
    np.savez(root / "events.npz", x=events)
    save_sample(make_jets_module(300, seed=3), root / "jets.npz")
    run = {
        "name": "tiny",
        "data": {"path": str(root / "jets.npz")},
        "model": {"hidden_units": [4]},
        "training": {"epochs": 1},
        "quantization": {"epochs": 1},
    }
    (root / "run.yaml").write_text(yaml.safe_dump(run))
    tune = {
        "config": "run.yaml",
        "objective": "float_accuracy",
        "strategy": "random",
        "trials": 1,
        "workers": 1,
        "study": "search",
        "space": {"training.learning_rate": {"low": 1.0e-3, "high": 1.0e-2}},
    }
    (root / "tune.yaml").write_text(yaml.safe_dump(tune))
    return root


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HEPFPGA_CACHE": str(tmp / "cache")}


@pytest.fixture(scope="module")
def disk_full_results(
    inputs: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, dict]]:
    """Every writer of :data:`WRITERS` run once under its limit, in one process."""
    folders = {}
    cases = []
    for writer in WRITERS:
        folder = tmp_path_factory.mktemp(f"disk-full-{writer.id}")
        for name in ("tagger.h5", "events.npz", "jets.npz", "run.yaml", "tune.yaml"):
            (folder / name).symlink_to(inputs / name)
        (folder / "out").mkdir()
        folders[writer.id] = folder
        cases.append([writer.limit, ["-q", *writer.argv(folder)]])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases)],
        capture_output=True,
        text=True,
        env=_env(tmp_path_factory.mktemp("disk-full-cache")),
        preexec_fn=_ignore_sigxfsz,
        timeout=900,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and len(lines) == len(WRITERS), done.stderr[-3000:]
    return {w.id: (folders[w.id], line) for w, line in zip(WRITERS, lines, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize("writer", WRITERS, ids=str)
def test_a_full_disk_is_one_line_and_leaves_nothing(
    writer: Writer, disk_full_results: dict[str, tuple[Path, dict]]
) -> None:
    folder, result = disk_full_results[writer.id]
    err = result["stderr"]
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    line = errors[0].lower()
    assert "the disk is full" in line, errors[0]
    for needle in writer.needles:
        assert needle.lower() in line, f"{needle!r} not in {errors[0]!r}"
    assert result["code"] == 2, err
    destination = folder / writer.destination
    assert not destination.exists()
    assert list((folder / "out").iterdir()) == [], "a temporary twin was left behind"


# --- Ctrl-C ------------------------------------------------------------------------------------


def _interrupt(
    argv: list[str], tmp: Path, when: Callable[[subprocess.Popen], bool]
) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "hepfpga", *argv],
        cwd=tmp,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a shell that starts pytest in the background (`pytest &`) ignores SIGINT, and an
        # ignored signal stays ignored across exec: give the command Ctrl-C's default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while process.poll() is None and not when(process):
        time.sleep(0.02)
    assert process.poll() is None, "the command ended before the moment of the interrupt"
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _loading_numpy(process: subprocess.Popen) -> bool:
    """True once the command has NumPy's extension mapped: it is loading the commands (NumPy
    comes with them), past the interpreter's own start-up, whatever the machine's load."""
    try:
        return "_multiarray_umath" in Path(f"/proc/{process.pid}/maps").read_text()
    except OSError:
        return False


def _twin_of(folder: Path, name: str) -> Callable[[subprocess.Popen], bool]:
    return lambda _process: any(p.name.startswith(f".{name}.") for p in folder.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while-the-commands-load", "while-onnxruntime-checks"])
def test_ctrl_c_exits_130_and_leaves_nothing(moment: str, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    when = _loading_numpy if moment == "while-the-commands-load" else _twin_of(out, "m.onnx")
    argv = ["export", "onnx", str(inputs / "tagger.h5"), "--out", str(out / "m.onnx")]

    result = _interrupt(argv, tmp_path, when)

    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "interrupted", result.stderr
    assert result.returncode == 130, result.stderr
    assert list(out.iterdir()) == []
