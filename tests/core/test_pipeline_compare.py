"""hepfpga compare: one table and a ROC overlay of run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.compare import format_table, load_run

CLASSES = ["q", "g", "W"]


def _write_run(folder: Path, name: str, architecture: str, *, hls: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=300)
    scores = rng.uniform(size=(300, 3)) + 2.0 * np.eye(3)[labels]
    scores /= scores.sum(axis=1, keepdims=True)
    folder.mkdir(parents=True)
    models = {"float": scores, "qkeras": scores[:, ::-1]} | ({"hls": scores} if hls else {})
    np.savez(folder / "scores.npz", labels=labels, class_names=np.asarray(CLASSES), **models)
    report = {
        "name": name,
        "status": "passed" if hls else "incomplete",
        "architecture": {"name": architecture},
        "data": {"representation": "jet_image" if architecture == "cnn" else "features"},
        "parameters": 1234,
        "firmware": {"status": "built"} if hls else {"status": "not available"},
        "timings_s": {"total": 61.0},
    }
    for model, s in models.items():
        report[model] = {
            "test": {
                "accuracy": float(np.mean(s.argmax(axis=1) == labels)),
                "auc": {c: 0.5 + i / 10 for i, c in enumerate(CLASSES)},
            }
        }
    if hls:
        report["hls_vs_qkeras"] = {
            "logits_fraction_bit_exact": 1.0,
            "logits_max_abs_diff": 0.0,
            "argmax_agreement": 1.0,
        }
    (folder / "report.json").write_text(json.dumps(report))


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    _write_run(tmp_path / "runs" / "a", "a", "cnn", hls=True, seed=1)
    _write_run(tmp_path / "runs" / "b", "b", "lstm", hls=False, seed=2)
    return [tmp_path / "runs" / "a", tmp_path / "runs" / "b"]


def test_table_has_one_row_per_run_and_auc_per_model(two_runs: list[Path]) -> None:
    runs = [load_run(p) for p in two_runs]
    assert runs[0].firmware == "bit-exact logits" and runs[1].firmware == "not available"
    text = format_table(runs)
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:4] == ["run", "architecture", "inputs", "params"]
    row_b = next(line for line in lines if line.startswith("b ") and "lstm" in line)
    assert "not available" in row_b and " - " in row_b  # no HLS accuracy for b
    auc_header = next(line for line in lines if line.startswith("run ") and "model" in line)
    assert auc_header.split()[2:] == CLASSES
    assert sum(1 for line in lines if line.startswith("a ") and "0.7000" in line) == 3


def test_cli_writes_the_overlay_and_json(two_runs: list[Path], tmp_path: Path, capsys) -> None:
    plot, table = tmp_path / "roc.png", tmp_path / "cmp.json"
    status = main(["compare", *map(str, two_runs), "--plot", str(plot), "--json", str(table)])
    assert status == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(table.read_text())
    assert [r["architecture"] for r in rows] == ["cnn", "lstm"]
    assert "ROC overlay" in capsys.readouterr().out
    # the plot exists now: refused without --overwrite, exit status 2
    assert main(["compare", *map(str, two_runs), "--plot", str(plot)]) == 2


def test_a_folder_without_report_is_named(tmp_path: Path, capsys) -> None:
    (tmp_path / "partial").mkdir()
    status = main(["compare", str(tmp_path / "partial"), "--plot", str(tmp_path / "r.png")])
    assert status == 2
    assert "partial: not a run folder" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()
