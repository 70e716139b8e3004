"""Corrupt and foreign run folders given to ``compare`` and ``report``: one line, exit 2.

A good classification run folder (report.json + scores.npz, as ``hepfpga run`` writes them)
is damaged one way per case; ``compare`` (with a good second run) and ``report`` must refuse it
through the typed readers (:class:`RunReport`, :class:`RunScores`) with one line naming the
file and what is wrong, exit status 2, no traceback, and nothing written or changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.pipeline.run_report import RunReport, RunScores

CLASSES = ["q", "g", "W"]
N = 120


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=N)
    scores = rng.uniform(size=(N, 3)) + 2.0 * np.eye(3)[labels]
    scores /= scores.sum(axis=1, keepdims=True)
    return {
        "labels": labels,
        "class_names": np.asarray(CLASSES),
        "float": scores.astype(np.float32),
        "qkeras": scores[:, ::-1].astype(np.float32),
    }


def _report(arrays: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    report: dict[str, Any] = {
        "name": name,
        "status": "incomplete",
        "architecture": {"name": "mlp", "task": "classification"},
        "data": {"representation": "features", "classes": CLASSES},
        "parameters": 1234,
        "checks": {"qkeras_accuracy_drop": {"value": 0.01, "limit": 0.02, "passed": True}},
        "timings_s": {"total": 61.0},
    }
    for model in ("float", "qkeras"):
        accuracy = float(np.mean(arrays[model].argmax(axis=1) == arrays["labels"]))
        report[model] = {"test": {"accuracy": accuracy, "auc": dict.fromkeys(CLASSES, 0.9)}}
    return report


def write_run(folder: Path, name: str, seed: int = 0) -> tuple[dict[str, Any], dict]:
    folder.mkdir(parents=True)
    arrays = _arrays(seed)
    report = _report(arrays, name)
    np.savez(folder / "scores.npz", **arrays)
    (folder / "report.json").write_text(json.dumps(report))
    return report, arrays


def _scores(change: Callable[[dict[str, np.ndarray]], None], **savez: Any) -> Callable:
    def damage(run: Path, report: dict, arrays: dict) -> None:
        change(arrays)
        np.savez(run / "scores.npz", **arrays, **savez)

    return damage


def _json(change: Callable[[dict[str, Any]], None]) -> Callable:
    def damage(run: Path, report: dict, arrays: dict) -> None:
        change(report)
        (run / "report.json").write_text(json.dumps(report))

    return damage


def _cut(name: str, keep: float) -> Callable:
    def damage(run: Path, report: dict, arrays: dict) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: int(len(data) * keep)])

    return damage


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(report: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = report
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _object_labels(arrays: dict[str, np.ndarray]) -> None:
    arrays["labels"] = np.array([{"label": int(v)} for v in arrays["labels"]], dtype=object)


def _scores_folder(run: Path, report: dict, arrays: dict) -> None:
    (run / "scores.npz").unlink()
    (run / "scores.npz").mkdir()


#: case -> (damage, words of the one error line); every case is run by compare and report
DAMAGE: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "scores-truncated": (_cut("scores.npz", 0.5), ("scores.npz", "cannot be read")),
    "scores-not-a-zip": (_cut("scores.npz", 0.01), ("scores.npz",)),
    "scores-folder": (_scores_folder, ("scores.npz", "not a file")),
    "scores-object-labels": (
        _scores(_object_labels),
        ("scores.npz 'labels'", "python objects"),
    ),
    "scores-1d": (
        _scores(lambda a: a.update(float=a["float"][:, 0])),
        ("scores.npz 'float'", "shape (120,)", "(120, 3)"),
    ),
    "scores-labels-shorter": (
        _scores(lambda a: a.update(labels=a["labels"][:50])),
        ("scores.npz 'float'", "does not match the 50 labels"),
    ),
    "scores-labels-out-of-range": (
        _scores(lambda a: a.update(labels=a["labels"] + 5)),
        ("scores.npz 'labels'", "outside 0..2"),
    ),
    "scores-labels-float": (
        _scores(lambda a: a.update(labels=a["labels"].astype(float))),
        ("scores.npz 'labels'", "1-d integers"),
    ),
    "scores-class-names-differ": (
        _scores(lambda a: a.update(class_names=np.asarray(["t", "W", "Z"]))),
        ("'class_names'", "differ from the report's classes"),
    ),
    "scores-nan": (
        _scores(lambda a: a["qkeras"].__setitem__((3, 1), np.nan)),
        ("scores.npz 'qkeras'", "1 nan"),
    ),
    "scores-no-labels": (_scores(lambda a: a.pop("labels")), ("no 'labels' array",)),
    "report-truncated": (_cut("report.json", 0.5), ("report.json", "not")),
    "report-a-list": (
        lambda run, report, arrays: (run / "report.json").write_text("[1, 2]"),
        ("report.json", "not a hepfpga run report"),
    ),
    "report-data-retyped": (_json(_set("data", ["q", "g"])), ("report.json", "'data'")),
    "report-classes-retyped": (_json(_set("data.classes", 3)), ("report.json",)),
    "report-checks-retyped": (_json(_set("checks", ["passed"])), ("report.json",)),
    "report-check-retyped": (
        _json(_set("checks.qkeras_accuracy_drop", "passed")),
        ("report.json",),
    ),
    "report-architecture-retyped": (_json(_set("architecture", "mlp")), ("report.json",)),
    "report-unknown-task": (
        _json(_set("architecture.task", "regression")),
        ("report.json", "regression"),
    ),
    "report-test-retyped": (_json(_set("float.test", "good")), ("report.json",)),
    "report-auc-retyped": (_json(_set("qkeras.test.auc", [0.9])), ("report.json",)),
    "report-accuracy-retyped": (_json(_set("float.test.accuracy", "high")), ("report.json",)),
    "report-parameters-retyped": (_json(_set("parameters", "many")), ("report.json",)),
    "report-timings-retyped": (_json(_set("timings_s", {"total": "long"})), ("report.json",)),
    "report-not-available-retyped": (_json(_set("not_available", 5)), ("report.json",)),
    "report-summary-retyped": (_json(_set("summary", 5)), ("report.json",)),
}


def _snapshot(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under ``folder``; files with size and modification time (a folder's own
    time changes when the writability probe of check_destination comes and goes)."""
    return {
        str(p.relative_to(folder)): (
            None if p.is_dir() else (p.lstat().st_size, p.lstat().st_mtime_ns)
        )
        for p in sorted(folder.rglob("*"))
    }


def _one_line(err: str, needles: tuple[str, ...]) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    assert len(lines[0]) < 600
    return lines[0]


@pytest.mark.parametrize("command", ["compare", "report"])
@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_run_folder_is_one_line_and_exit_2(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage, needles = DAMAGE[case]
    good, bad = tmp_path / "runs" / "good", tmp_path / "runs" / "bad"
    write_run(good, "good", seed=1)
    report, arrays = write_run(bad, "bad")
    damage(bad, report, arrays)
    if command == "report" and case == "report-unknown-task":
        pytest.skip("the page of a task hepfpga does not know says so in its sections")
    before = _snapshot(tmp_path)
    plot = tmp_path / "roc.png"
    argv = (
        ["compare", str(good), str(bad), "--plot", str(plot), "--json", str(tmp_path / "c.json")]
        if command == "compare"
        else ["report", str(bad)]
    )

    code = main(["-q", *argv])

    _out, err = capsys.readouterr()
    _one_line(err, needles)
    assert code == 2, err
    assert _snapshot(tmp_path) == before, "the command left or changed files"


@pytest.mark.parametrize("task", ["classification", "anomaly"])
def test_good_scores_read_as_written(task: str, tmp_path: Path) -> None:
    """What a run writes passes the schema (the CLI's good paths: tests/pipeline)."""
    report, arrays = write_run(tmp_path / "run", "run")
    if task == "anomaly":
        report["architecture"]["task"] = "anomaly"
        arrays = {"labels": arrays["labels"], "float": arrays["float"][:, 0].astype(np.float64)}
        np.savez(tmp_path / "run" / "scores.npz", **arrays)
    scores = RunScores.read(tmp_path / "run", RunReport.from_content(report))
    assert scores is not None and scores.classes == tuple(CLASSES)
    assert sorted(scores.arrays) == sorted(arrays)
    for key, values in arrays.items():
        np.testing.assert_array_equal(scores.arrays[key], values)
    (tmp_path / "run" / "scores.npz").unlink()
    assert RunScores.read(tmp_path / "run", RunReport.from_content(report)) is None


@pytest.mark.parametrize("where", ["folder", "unwritable"])
def test_report_checks_its_destination_before_reading(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    write_run(run, "run")
    if where == "folder":
        (run / "report.html").mkdir()
        needles: tuple[str, ...] = ("report.html", "is a folder")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        run.chmod(0o555)
        needles = ("report.html", "not writable")
    before = _snapshot(tmp_path)
    try:
        code = main(["report", str(run)])
    finally:
        run.chmod(0o755)
    _one_line(capsys.readouterr().err, needles)
    assert code == 2
    assert _snapshot(tmp_path) == before
