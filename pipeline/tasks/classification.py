"""The ``classification`` task of a run: the base stage list as it is
(:data:`hepfpga.pipeline.stage_list.STAGES`), its figures (accuracy of the float, QKeras and
HLS models, the headline; one-vs-rest AUC of every class; the firmware's efficiency of each
class at fixed acceptances of the others, the ``trigger_rates`` stage of
:mod:`hepfpga.pipeline.emulation`), its ROC section in
``report.html`` and its ROC overlay in ``hepfpga compare`` (one panel per class, one curve per
run: the HLS scores when the run has firmware, else QKeras)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hepfpga.errors import DataError
from hepfpga.pipeline.emulation import trigger_rate_tables
from hepfpga.pipeline.figures import FigureTable, TaskFigures, Value, columns, value
from hepfpga.pipeline.html import figure
from hepfpga.pipeline.run import SCORES_FILE
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.summary import RunSummary, curve_model, draw_panels, save_panels
from hepfpga.pipeline.task import RunTask, register_run_task
from hepfpga.train.evaluate import plot_roc
from hepfpga.train.roc_plot import draw_roc
from hepfpga.train.tasks import ClassificationConfig

__all__ = ["CLASSIFICATION", "plot_roc_overlay"]


def _headline(report: RunReport) -> dict[str, Value]:
    return {m: value(test["accuracy"]) for m, test in report.test_figures().items()}


def _tables(report: RunReport) -> list[FigureTable]:
    tests = report.test_figures()
    classes = columns(test["auc"] for test in tests.values())
    rows = {
        report.model_label(m): {c: value(test["auc"].get(c)) for c in classes}
        for m, test in tests.items()
    }
    return [
        FigureTable("AUC (one class vs the rest, test jets)", classes, rows),
        *trigger_rate_tables(report),
    ]


def _roc_section(report: RunReport, models: Mapping[str, np.ndarray], labels: np.ndarray) -> str:
    classes = list(report.classes)
    return figure(lambda b: plot_roc(models, labels, classes, b), "ROC curves")


def _scores(folder: Path) -> tuple[str, np.ndarray, np.ndarray, list[str]] | None:
    """(model, scores, labels, class names) of a classification run's ``scores.npz``."""
    path = folder / SCORES_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        model = curve_model(data.files)
        if model is None or "class_names" not in data.files:
            return None
        return model, data[model], data["labels"], [str(c) for c in data["class_names"]]


def plot_roc_overlay(runs: Sequence[RunSummary], path: Path) -> list[str]:
    """One ROC panel per class with a curve per classification run; returns the names of the
    runs drawn (runs without ``scores.npz`` are left out)."""
    loaded = [(r, s) for r in runs if (s := _scores(r.folder)) is not None]
    if not loaded:
        raise DataError("no classification run has scores.npz (written by hepfpga run)")
    classes = loaded[0][1][3]
    panels = [f"{name} vs rest" for name in classes]
    fig, axes = draw_panels(panels)
    for c, name in enumerate(classes):
        for run, (model, scores, labels, run_classes) in loaded:
            if name not in run_classes:
                continue
            index = run_classes.index(name)
            positive = labels == index
            if positive.all() or not positive.any():
                continue
            label = f"{run.name} {run.architecture} {run.model_label(model)}"
            draw_roc(axes[0, c], positive, scores[:, index], label)
    save_panels(fig, axes, panels, path, "background mistag rate")
    return [run.name for run, _ in loaded]


CLASSIFICATION = register_run_task(
    RunTask(
        ClassificationConfig,
        TaskFigures("accuracy", _headline, _tables),
        roc=_roc_section,
        overlay=plot_roc_overlay,
    )
)
