from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hepfpga.cli import main

COMMANDS = [
    [],
    ["run"],
    ["data"],
    ["data", "generate"],
    ["data", "info"],
    ["config", "check"],
    ["export", "onnx"],
]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_is_useful(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0
    assert "Usage: hepfpga" in out
    assert len(out.splitlines()) >= 5


def test_misspelt_key_exits_2_naming_path_and_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: t\nquantization:\n  weight_bit: 6\n")
    code, _, err = run_cli(["run", str(config), "--output-dir", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert "at 'quantization.weight_bit'" in err and "did you mean 'weight_bits'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_config_check_prints_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: small\n")
    code, out, _ = run_cli(["config", "check", str(config)], capsys)
    assert code == 0
    assert "name: small" in out and "weight_bits: 6" in out and "backend: Vitis" in out


def test_missing_data_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: t\ndata:\n  path: no_such_jets.h5\n")
    code, _, err = run_cli(["run", str(config), "--output-dir", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert "no_such_jets.h5" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "t").exists()


@pytest.mark.parametrize("content", [b"this is not a model", b""])
def test_export_of_a_non_model_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    model = tmp_path / "model.h5"
    model.write_bytes(content)
    code, _, err = run_cli(
        ["export", "onnx", str(model), "--out", str(tmp_path / "m.onnx")], capsys
    )
    assert code == 2
    assert "model.h5" in err and "not an HDF5 file" in err
    assert not (tmp_path / "m.onnx").exists()


def test_console_script_reports_errors_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("trainig: {}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hepfpga", "run", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "did you mean 'training'" in proc.stderr
    assert "Traceback" not in proc.stderr
