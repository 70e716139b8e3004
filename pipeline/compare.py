"""Compare finished runs: a table per task and overlays of their ROC curves.

:func:`load_run` reads a run folder's ``report.json`` (and ``scores.npz`` for the curves);
its figures come from the run's task (:data:`hepfpga.pipeline.tasks.RUN_TASKS`:
classification, anomaly detection, generation). :func:`format_table` groups the runs by task
and prints, per group, one row per run (architecture, inputs, parameter count, the task's
headline figure for the float, QKeras and HLS models, the firmware's exactness as the run
measured it, the run time)
and then the task's detailed tables with one row per run and model (per-class AUC; AUC and
signal efficiency per signal class; the fidelity of each generated sample).
:func:`draw_overlay` draws a task's overlay of its runs' ROC curves (the task's
:attr:`~hepfpga.pipeline.task.RunTask.overlay`: one panel per class for classification, per
signal class for anomaly detection), one curve per run (the HLS scores when the run has
firmware, else QKeras), each run on its own test jets. Generation runs have no curves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from hepfpga.errors import DataError
from hepfpga.pipeline.run import MODELS
from hepfpga.pipeline.run_report import REPORT_FILE, RunReport, RunScores
from hepfpga.pipeline.summary import RunSummary
from hepfpga.pipeline.tasks import RUN_TASKS, run_task_for
from hepfpga.train.tasks import TASKS

__all__ = ["RunSummary", "draw_overlay", "format_table", "load_run", "overlay_paths"]


def _firmware_exactness(report: RunReport) -> str:
    if report.section("firmware").get("status") == "not available":
        return "not available"
    cmp = report.section("hls_vs_qkeras")
    if not cmp:
        return "not run"
    if cmp["logits_fraction_bit_exact"] == 1.0:
        return "bit-exact logits"
    return (
        f"{cmp['logits_fraction_bit_exact']:.1%} exact, max |diff| "
        f"{cmp['logits_max_abs_diff']:.3g}, argmax {cmp['argmax_agreement']:.2%}"
    )


def load_run(folder: str | Path) -> RunSummary:
    """The summary of the run in ``folder``; a :class:`DataError` naming the folder if it is
    not a directory, holds no ``report.json``, or that file is not a hepfpga run report, or
    its ``scores.npz`` does not follow the schema (:class:`RunScores`)."""
    folder = Path(folder)
    path = folder / REPORT_FILE
    if not folder.is_dir():
        raise DataError(
            f"{folder}: not a run folder ({'a file' if folder.exists() else 'no such folder'}); "
            "give the folders hepfpga run wrote, e.g. runs/*"
        )
    if not path.is_file():
        raise DataError(
            f"{folder}: not a run folder (no report.json; hepfpga run writes it when a run "
            "finishes, so a partial run has none)"
        )
    report = RunReport.read(path)
    task = run_task_for(report, str(path))
    RunScores.read(folder, report)  # the overlays read it again: checked here, first
    try:
        headline = task.figures.headline(report)
        tables = tuple(task.figures.tables(report))
        firmware = _firmware_exactness(report)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not a hepfpga run report ({exc!r})") from exc
    data = report.data
    return RunSummary(
        folder=folder,
        name=report.name or folder.name,
        task=task.name,
        architecture=report.architecture,
        representation=report.representation,
        parameters=report.parameters,
        status=report.status or "?",
        headline_name=task.figures.headline_name,
        headline=headline,
        tables=tables,
        firmware=firmware,
        seconds=report.seconds,
        classes=report.classes,
        background_classes=tuple(data.get("background_classes", ())),
        signal_classes=tuple(data.get("signal_classes", ())),
        quantization_method=report.quantization_method,
    )


def _number(value: float | None, fmt: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*header), line.format(*("-" * w for w in widths))] + [
        line.format(*r) for r in rows
    ]


def _group_tables(runs: Sequence[RunSummary]) -> list[str]:
    """The detailed tables of runs of one task: per title, one row per run and model."""
    lines: list[str] = []
    titles = list(dict.fromkeys(t.title for r in runs for t in r.tables))
    for title in titles:
        columns: list[str] = []
        rows: list[list[str]] = []
        for r in runs:
            for table in (t for t in r.tables if t.title == title):
                columns += [c for c in table.columns if c not in columns]
        for r in runs:
            for table in (t for t in r.tables if t.title == title):
                rows += [
                    [r.name, label, *(_number(values.get(c)) for c in columns)]
                    for label, values in table.rows.items()
                ]
        if all(cell == "-" for row in rows for cell in row[2:]):
            lines += ["", f"{title}: not measured (e.g. an acceptance below one test jet)"]
            continue
        lines += ["", f"{title}:", *_table(["run", "model", *columns], rows)]
    return lines


def _group_label(runs: Sequence[RunSummary], model: str) -> str:
    """``model``'s name in a column over ``runs``: the quantized model by the runs'
    quantization methods (``QKeras``, ``HGQ``, ``HGQ/QKeras`` for a mixed group)."""
    return "/".join(sorted({r.model_label(model) for r in runs}))


def format_table(runs: Sequence[RunSummary]) -> str:
    """The comparison as text: per task (in :data:`hepfpga.train.tasks.TASKS` order) the run
    table and the task's detailed tables (see the module docstring)."""
    order = list(TASKS)
    groups: dict[str, list[RunSummary]] = {}
    for r in sorted(runs, key=lambda r: order.index(r.task)):
        groups.setdefault(r.task, []).append(r)
    lines: list[str] = []
    for task, group in groups.items():
        if len(groups) > 1:
            lines += [""] if lines else []
            lines.append(f"== {task}: {len(group)} run{'s' if len(group) > 1 else ''} ==")
        header = ["run", "architecture", "inputs", "params"]
        header += [f"{group[0].headline_name} {_group_label(group, m)}" for m in MODELS]
        header += [f"firmware vs {_group_label(group, 'qkeras')}", "time"]
        rows = [
            [
                r.name,
                r.architecture,
                r.representation,
                _number(r.parameters, "d"),
                *(_number(r.headline.get(m)) for m in MODELS),
                r.firmware,
                f"{r.seconds:.0f} s" if r.seconds is not None else "-",
            ]
            for r in group
        ]
        lines += _table(header, rows) + _group_tables(group)
    return "\n".join(lines)


def overlay_paths(runs: Sequence[RunSummary], plot: Path) -> dict[str, Path]:
    """Task -> the PNG its overlay goes to: the first task (in :data:`hepfpga.train.tasks.TASKS`
    order) with an overlay among ``runs`` gets ``plot``, the others ``<plot stem>_<task>.png``
    beside it; tasks without curves (generation) none."""
    tasks = [
        t
        for t in TASKS
        if t in RUN_TASKS and RUN_TASKS[t].overlay is not None and any(r.task == t for r in runs)
    ]
    return {
        t: plot if i == 0 else plot.with_name(f"{plot.stem}_{t}{plot.suffix or '.png'}")
        for i, t in enumerate(tasks)
    }


def draw_overlay(task: str, runs: Sequence[RunSummary], path: Path) -> list[str]:
    """Draw the ROC overlay of the runs of ``task`` (a task of :func:`overlay_paths`) into the
    PNG ``path``; returns the names of the runs drawn (runs without ``scores.npz`` are left
    out)."""
    overlay = RUN_TASKS.lookup(task, "task").overlay
    if overlay is None:
        raise DataError(f"a {task} run has no ROC curves to overlay")
    return overlay([r for r in runs if r.task == task], path)
