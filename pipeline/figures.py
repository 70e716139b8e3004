"""The figures of a finished run, read from its ``report.json`` by the run's task.

Each task (:mod:`hepfpga.pipeline.tasks`) states how its figures are read, as a
:class:`TaskFigures`: the headline figure per model and the detailed :class:`FigureTable` s
that ``hepfpga compare`` prints (one group per task) and ``report.html`` shows, and the plots
of the run folder it names. Values are floats or None (not measured, e.g. a metric the run
did not select).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hepfpga.pipeline.run_report import RunReport

__all__ = ["FigureTable", "TaskFigures", "Value", "columns", "mean", "value"]

Value = float | None


@dataclass(frozen=True)
class FigureTable:
    """One table of a run: ``rows[label][column]`` (rows: models or samples)."""

    title: str
    columns: tuple[str, ...]
    rows: dict[str, dict[str, Value]]


def _no_plots(report: RunReport) -> list[str]:
    return []


@dataclass(frozen=True)
class TaskFigures:
    """How the figures of one task's runs are read from ``report.json``."""

    #: what :attr:`headline` gives per model, for the one-row-per-run table
    headline_name: str
    #: model ("float", "qkeras", "hls") -> the headline figure (absent: no such model)
    headline: Callable[[RunReport], dict[str, Value]]
    #: the detailed tables
    tables: Callable[[RunReport], list[FigureTable]]
    #: PNG files of the run folder the report names that ``report.html`` embeds (besides
    #: the ROC curves it draws itself), e.g. the anomaly score distributions
    plots: Callable[[RunReport], list[str]] = _no_plots


def value(item: Any) -> Value:
    """A figure of report.json as a float (None stays None)."""
    return None if item is None else float(item)


def mean(values: list[Value]) -> Value:
    """The mean of the measured values (None and NaN, e.g. no jet of a signal class, left out)."""
    known = [v for v in values if v is not None and v == v]
    return sum(known) / len(known) if known else None


def columns(mappings: Iterable[Mapping[Any, Any]]) -> tuple[str, ...]:
    """The keys of ``mappings``, in first-seen order."""
    out: list[str] = []
    for mapping in mappings:
        out += [str(k) for k in mapping if str(k) not in out]
    return tuple(out)
