"""A task of the run layer is one object: :class:`RunTask`.

The task's config section and metrics are :data:`hepfpga.train.tasks.TASKS`'; a
:class:`RunTask` registered under the same name in :data:`RUN_TASKS` says how a run of it goes
and how it is read back:

- its stage list: the base list (:data:`hepfpga.pipeline.stage_list.STAGES`) with its own
  stages replacing base stages *by name* and base stages it leaves out *with the reason*
  (``report.json`` lists them under ``stages_left_out``), so a stage added to the base list
  reaches every task unless the task opts out;
- its typed report section: the ``report_items`` of the results its stages return, read back
  by its :class:`~hepfpga.pipeline.figures.TaskFigures` (headline, tables, plots) and the
  labels of its entries in the ``data`` section;
- its ROC section of ``report.html`` and its overlay in ``hepfpga compare`` (None: the task
  has no curves).

The built-in tasks are the modules of :mod:`hepfpga.pipeline.tasks`; another task is one
module that calls :func:`register_run_task` (see ``docs/extending.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hepfpga.errors import DataError
from hepfpga.pipeline import stage_list
from hepfpga.pipeline.figures import TaskFigures
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.stage_list import Stage, derive_stages
from hepfpga.pipeline.summary import RunSummary
from hepfpga.registry import Registry
from hepfpga.train.tasks import TASKS, TaskConfig

__all__ = ["RUN_TASKS", "Overlay", "RocSection", "RunTask", "register_run_task", "run_task_for"]

#: ``report.html``'s ROC section of a run: (report, model display name -> test scores,
#: test labels) -> HTML
RocSection = Callable[[RunReport, Mapping[str, np.ndarray], np.ndarray], str]
#: ``hepfpga compare``'s overlay of a task's runs into one PNG; returns the runs drawn
Overlay = Callable[[Sequence[RunSummary], Path], list[str]]


@dataclass(frozen=True)
class RunTask:
    """How a run of the task whose config section is ``config`` (a registered
    :data:`hepfpga.train.tasks.TASKS` entry's class, which names the task) goes and is read
    back."""

    config: type[TaskConfig]
    figures: TaskFigures
    #: base stage name -> the task's stage of that name
    replace: Mapping[str, Stage] = field(default_factory=dict)
    #: base stage name -> why the task leaves it out (``report.json``'s ``stages_left_out``)
    remove: Mapping[str, str] = field(default_factory=dict)
    #: the ROC section of ``report.html`` (None: the task has no curves)
    roc: RocSection | None = None
    #: the ROC overlay of ``hepfpga compare`` (None: the task has no curves)
    overlay: Overlay | None = None
    #: the task's own entries of report.json's ``data`` section, with their labels
    data_rows: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The task's name: that of the :data:`~hepfpga.train.tasks.TASKS` entry whose config
        class is :attr:`config` (a ``ValueError`` when none is registered)."""
        for task in TASKS.values():
            if task.config_class is self.config:
                return task.name
        raise ValueError(
            f"no task has the config {self.config.__name__}: register it with "
            f"hepfpga.train.tasks.register_task first (tasks: {', '.join(TASKS)})"
        )

    def stages(self) -> list[Stage]:
        """The stage list of a run of this task."""
        return derive_stages(stage_list.STAGES, self.replace, self.remove)


#: The run-layer tasks, by the name of their :data:`hepfpga.train.tasks.TASKS` entry.
RUN_TASKS: Registry[RunTask] = Registry("task")


def register_run_task(task: RunTask) -> RunTask:
    """Add ``task`` to :data:`RUN_TASKS` under the name of its config's task (registered with
    :func:`hepfpga.train.tasks.register_task`), which must be new here."""
    derive_stages(stage_list.STAGES, task.replace, task.remove)  # names every stage it changes
    return RUN_TASKS.register(task.name, task)


def run_task_for(report: RunReport, where: str = "report.json") -> RunTask:
    """The task of the run whose report is ``report``; a :class:`DataError` naming ``where``
    and the tasks known when there is none."""
    if report.task not in RUN_TASKS:
        raise DataError(
            f"{where}: a run of task '{report.task}', which hepfpga cannot summarise; known "
            f"tasks: {', '.join(sorted(RUN_TASKS))}"
        )
    return RUN_TASKS[report.task]
