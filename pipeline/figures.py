"""The figures of a finished run, read from its ``report.json``, per task.

Each task writes its own test figures (see ``hepfpga/pipeline_*.py``); a :class:`TaskFigures`
registered here for the task name (``report["architecture"]["task"]``; runs written before
tasks existed are ``classification``) turns them into :class:`FigureTable` s that
``hepfpga compare`` prints (one group per task) and ``report.html`` shows:

* ``classification``: accuracy of the float, QKeras and HLS models (the headline), and the
  one-vs-rest AUC of every class;
* ``anomaly_detection``: the AUC of the background classes against each signal class (the
  headline: its mean over the signal classes), and the signal efficiency at each background
  acceptance the run measured (None where the acceptance is below one background jet);
* ``generation``: the fidelity of each sample against the real test jets of the class: mean
  Wasserstein-1 distance and mean Kolmogorov-Smirnov statistic over the (scaled) features and
  the AUC of a classifier telling generated from real jets (0.5: indistinguishable); the
  headline is that AUC. The real half-sample baseline is a row of its own.

Values are floats or None (not measured, e.g. a metric the run did not select).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hepfpga.errors import DataError

__all__ = [
    "MODELS",
    "TASK_FIGURES",
    "FigureTable",
    "TaskFigures",
    "figures_for",
    "register_task_figures",
    "task_of",
]

#: the models of a run, as report.json names them, with their display names
MODELS = {"float": "float", "qkeras": "QKeras", "hls": "HLS"}

Value = float | None


@dataclass(frozen=True)
class FigureTable:
    """One table of a run: ``rows[label][column]`` (rows: models or samples)."""

    title: str
    columns: tuple[str, ...]
    rows: dict[str, dict[str, Value]]


@dataclass(frozen=True)
class TaskFigures:
    """How the figures of one task's runs are read from ``report.json``."""

    task: str
    #: what :attr:`headline` gives per model, for the one-row-per-run table
    headline_name: str
    #: model ("float", "qkeras", "hls") -> the headline figure (absent: no such model)
    headline: Callable[[Mapping[str, Any]], dict[str, Value]]
    #: the detailed tables
    tables: Callable[[Mapping[str, Any]], list[FigureTable]]
    #: PNG files of the run folder the report names that ``report.html`` embeds (besides
    #: the ROC curves it draws itself), e.g. the anomaly score distributions
    plots: Callable[[Mapping[str, Any]], list[str]] = lambda report: []


#: registered readers by task name
TASK_FIGURES: dict[str, TaskFigures] = {}


def register_task_figures(figures: TaskFigures) -> TaskFigures:
    """Add ``figures`` to :data:`TASK_FIGURES` (one per task name)."""
    if figures.task in TASK_FIGURES:
        raise ValueError(f"task {figures.task!r} has two figure readers")
    TASK_FIGURES[figures.task] = figures
    return figures


def task_of(report: Mapping[str, Any]) -> str:
    """The task of the run whose ``report.json`` is ``report``."""
    architecture = report.get("architecture")
    task = architecture.get("task") if isinstance(architecture, Mapping) else None
    return str(task) if task is not None else "classification"


def figures_for(report: Mapping[str, Any], where: str = "report.json") -> TaskFigures:
    """The reader of ``report``'s task; a :class:`DataError` naming ``where`` and the tasks
    known when there is none."""
    task = task_of(report)
    if task not in TASK_FIGURES:
        raise DataError(
            f"{where}: a run of task '{task}', which hepfpga cannot summarise; known tasks: "
            f"{', '.join(sorted(TASK_FIGURES))}"
        )
    return TASK_FIGURES[task]


def _float(value: Any) -> Value:
    return None if value is None else float(value)


def _tests(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """model -> its ``test`` figures, for the models the run has."""
    return {
        m: report[m]["test"]
        for m in MODELS
        if isinstance(report.get(m), Mapping) and isinstance(report[m].get("test"), Mapping)
    }


# -- classification ---------------------------------------------------------------------------


def _classification_headline(report: Mapping[str, Any]) -> dict[str, Value]:
    return {m: _float(test["accuracy"]) for m, test in _tests(report).items()}


def _classification_tables(report: Mapping[str, Any]) -> list[FigureTable]:
    tests = _tests(report)
    classes = _columns(test["auc"] for test in tests.values())
    rows = {
        MODELS[m]: {c: _float(test["auc"].get(c)) for c in classes} for m, test in tests.items()
    }
    return [FigureTable("AUC (one class vs the rest, test jets)", classes, rows)]


# -- anomaly detection ------------------------------------------------------------------------


def _mean(values: list[Value]) -> Value:
    """The mean of the measured values (None and NaN, e.g. no jet of a signal class, left out)."""
    known = [v for v in values if v is not None and v == v]
    return sum(known) / len(known) if known else None


def _anomaly_headline(report: Mapping[str, Any]) -> dict[str, Value]:
    return {
        m: _mean([_float(v) for v in test.get("auc", {}).values()])
        for m, test in _tests(report).items()
    }


def _anomaly_tables(report: Mapping[str, Any]) -> list[FigureTable]:
    tests = _tests(report)
    tables = []
    signals = _columns(test.get("auc", {}) for test in tests.values())
    if signals:
        rows = {
            MODELS[m]: {s: _float(test["auc"].get(s)) for s in signals}
            for m, test in tests.items()
            if "auc" in test
        }
        tables.append(FigureTable("AUC (background vs each signal class)", signals, rows))
    efficiencies = {m: test["signal_efficiency"] for m, test in tests.items()}
    efficiencies = {m: e for m, e in efficiencies.items() if isinstance(e, Mapping)}
    signals = _columns(efficiencies.values())
    acceptances = _columns(per_signal for e in efficiencies.values() for per_signal in e.values())
    for acceptance in sorted(acceptances, key=float, reverse=True):
        rows = {
            MODELS[m]: {s: _float(e.get(s, {}).get(acceptance)) for s in signals}
            for m, e in efficiencies.items()
        }
        tables.append(
            FigureTable(f"signal efficiency at background acceptance {acceptance}", signals, rows)
        )
    return tables


# -- generation -------------------------------------------------------------------------------

#: the rows of a generation run's quality table that are the models' samples
_GENERATED = {"float": "float generated", "qkeras": "QKeras generated", "hls": "HLS generated"}
#: the columns of the fidelity table: report key -> display name
_FIDELITY = {
    "mean_wasserstein": "mean W1",
    "mean_ks": "mean KS",
    "classifier_auc": "classifier AUC",
}


def _quality(report: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    generation = report.get("generation")
    quality = generation.get("quality") if isinstance(generation, Mapping) else None
    if not isinstance(quality, Mapping):
        raise KeyError("generation.quality")
    return quality


def _generation_headline(report: Mapping[str, Any]) -> dict[str, Value]:
    quality = _quality(report)
    return {
        m: _float(quality[row].get("classifier_auc"))
        for m, row in _GENERATED.items()
        if row in quality
    }


def _generation_tables(report: Mapping[str, Any]) -> list[FigureTable]:
    quality = _quality(report)
    columns = tuple(
        label for key, label in _FIDELITY.items() if any(key in q for q in quality.values())
    )
    rows = {
        sample: {label: _float(q.get(key)) for key, label in _FIDELITY.items() if label in columns}
        for sample, q in quality.items()
    }
    return [FigureTable("fidelity against the real test jets of the class", columns, rows)]


def _columns(mappings: Any) -> tuple[str, ...]:
    """The keys of ``mappings``, in first-seen order."""
    out: list[str] = []
    for mapping in mappings:
        out += [str(k) for k in mapping if str(k) not in out]
    return tuple(out)


def _anomaly_plots(report: Mapping[str, Any]) -> list[str]:
    plots = report.get("anomaly", {}).get("plots", [])
    return [str(p) for p in plots if p != "roc.png"]


def _generation_plots(report: Mapping[str, Any]) -> list[str]:
    plot = report.get("generation", {}).get("plot")
    return [str(plot)] if plot else []


register_task_figures(
    TaskFigures("classification", "accuracy", _classification_headline, _classification_tables)
)
register_task_figures(
    TaskFigures(
        "anomaly_detection", "mean signal AUC", _anomaly_headline, _anomaly_tables, _anomaly_plots
    )
)
register_task_figures(
    TaskFigures(
        "generation", "classifier AUC", _generation_headline, _generation_tables, _generation_plots
    )
)
