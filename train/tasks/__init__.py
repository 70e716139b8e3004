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
calls :func:`register_task` and :func:`register_metric`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hepfpga import registry
from hepfpga.errors import ConfigError

if TYPE_CHECKING:
    from hepfpga.train.config import ModelConfig

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


@dataclass(frozen=True)
class Metric:
    """A named evaluation quantity computed by one task."""

    name: str
    task: str
    description: str


#: Metrics by name (the values of ``task.metrics``).
METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (its name must be new)."""
    return registry.add(METRICS, metric.name, metric, "metric")


@dataclass(frozen=True)
class TaskConfig:
    """The ``task`` section, a tagged section: ``name`` picks the registered task whose own
    dataclass holds its keys. ``metrics`` lists what the evaluation reports; each must be a
    metric of this task (:data:`METRICS`), else a :class:`ConfigError` at
    ``task.metrics[i]`` names the task it belongs to."""

    name: str = "classification"
    metrics: tuple[str, ...] = ()

    __schema_variant_key__: ClassVar[str] = "name"

    @classmethod
    def __schema_variants__(cls) -> dict[str, type[TaskConfig]]:
        return {name: task.config_class for name, task in TASKS.items()}

    @classmethod
    def parse(cls, value: str) -> TaskConfig:
        """``task: anomaly_detection`` is the task's section with its defaults."""
        from hepfpga._schema import build

        return build(TaskConfig, {"name": value})

    def __post_init__(self) -> None:
        own = [m.name for m in METRICS.values() if m.task == self.name]
        for i, name in enumerate(self.metrics):
            metric = METRICS.get(name)
            if metric is not None and metric.task == self.name:
                continue
            what = (
                f"'{name}' is a {metric.task} metric"
                if metric is not None
                else f"unknown metric '{name}'"
            )
            raise ConfigError(
                f"{what}; the {self.name} task computes: {', '.join(own)}", path=f"metrics[{i}]"
            )

    def selected_metrics(self) -> tuple[str, ...]:
        """``metrics``, or every metric of the task when the list is empty."""
        return self.metrics or tuple(m.name for m in METRICS.values() if m.task == self.name)


@dataclass(frozen=True)
class ClassificationConfig(TaskConfig):
    """``classification``: every class of the sample, cross-entropy, accuracy and
    one-vs-rest AUC per class (the checks are in the ``verification`` section)."""

    name: str = "classification"


@dataclass(frozen=True)
class Task:
    """One registered task."""

    name: str
    config_class: type[TaskConfig]
    description: str


#: Registered tasks by the name used in ``task.name``.
TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS` (its name must be new)."""
    return registry.add(TASKS, task.name, task, "task")


def get_task(name: str) -> Task:
    """The task registered as ``name``; a :class:`ConfigError` at ``task.name`` otherwise."""
    return registry.lookup(TASKS, name, "task", "task.name")


def check_task_fits(task: TaskConfig, model: ModelConfig) -> None:
    """A :class:`ConfigError` at ``model.architecture`` when the architecture is made for
    another task (an ``mlp`` classifier on ``anomaly_detection``, an ``ae`` on
    ``classification``), listing the architectures that fit."""
    from hepfpga.train.architectures import ARCHITECTURES, get_architecture

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


def _metric(name: str, task: str, description: str) -> Any:
    return register_metric(Metric(name, task, description))


register_task(
    Task(
        "classification",
        ClassificationConfig,
        "supervised tagging of every class of the sample (cross-entropy)",
    )
)
_metric("accuracy", "classification", "fraction of test jets whose argmax is their class")
_metric("auc", "classification", "one-vs-rest area under the ROC curve per class")

# The other built-in tasks register themselves on import.
from hepfpga.train.tasks import anomaly, generation  # noqa: E402, F401
