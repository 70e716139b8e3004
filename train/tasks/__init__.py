"""Tasks: what a run learns and how it is judged.

A :class:`Task` bundles the ``task`` config section (a subclass of :class:`TaskConfig`,
selected by ``task.name``, or by ``task: <name>`` alone for the defaults), the metrics it
computes (:data:`METRICS`, each owned by one task), and which architectures fit it (an
architecture plugin names its task, :attr:`hepfpga.train.architectures.Architecture.task`).

===================== ===================================== ==================================
task                  trained on / loss                     evaluated by
===================== ===================================== ==================================
``classification``    all classes, cross-entropy            accuracy, one-vs-rest AUC per class
``anomaly_detection`` background classes only (default q,   AUC of background vs each signal
                      g), reconstruction (+ KL) loss        class, signal efficiency at fixed
                                                            background acceptances, score
                                                            distributions
===================== ===================================== ==================================

The pipeline's stage list for a task lives at the top (:mod:`hepfpga.pipeline.runner`); this stage
package only holds the configs, losses, metrics and plots. Adding a task is one module that
imports :mod:`._base` and calls :func:`register_task` and :func:`register_metric`, plus its
name in the imports below.
"""

from __future__ import annotations

from hepfpga.errors import ConfigError
from hepfpga.train.architectures._base import ARCHITECTURES, get_architecture
from hepfpga.train.config import ModelConfig

# The built-in tasks register themselves on import.
from hepfpga.train.tasks import anomaly, generation  # noqa: F401  (registered on import)
from hepfpga.train.tasks._base import (
    METRICS,
    TASKS,
    ClassificationConfig,
    Metric,
    Task,
    TaskConfig,
    get_task,
    register_metric,
    register_task,
)

__all__ = [
    "METRICS",
    "TASKS",
    "ClassificationConfig",
    "Metric",
    "Task",
    "TaskConfig",
    "check_task_fits",
    "get_task",
    "register_metric",
    "register_task",
]


def check_task_fits(task: TaskConfig, model: ModelConfig) -> None:
    """A :class:`ConfigError` at ``model.architecture`` when the architecture is made for
    another task (an ``mlp`` classifier on ``anomaly_detection``, an ``ae`` on
    ``classification``), listing the architectures that fit."""
    architecture = get_architecture(model.architecture)
    if architecture.task == task.name:
        return
    fitting = sorted(n for n, a in ARCHITECTURES.items() if a.task == task.name)
    raise ConfigError(
        f"architecture '{architecture.name}' is a {architecture.task} model and does not fit "
        f"task '{task.name}' (task.name); architectures for {task.name}: "
        f"{', '.join(fitting) or '(none registered)'}",
        path="model.architecture",
    )
