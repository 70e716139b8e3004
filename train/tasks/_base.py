"""The base of the task plugins: :class:`Task`, :class:`TaskConfig` (the ``task`` section),
:class:`Metric` and the registries :data:`TASKS` and :data:`METRICS` (see
:mod:`hepfpga.train.tasks`). A task module imports this one and registers its task and
metrics; the package imports the built-in tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hepfpga._schema import build
from hepfpga.errors import ConfigError
from hepfpga.registry import Registry
from hepfpga.train.trigger_rates import TriggerRateConfig

__all__ = [
    "METRICS",
    "TASKS",
    "ClassificationConfig",
    "Metric",
    "Task",
    "TaskConfig",
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
METRICS: Registry[Metric] = Registry("metric")


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (its name must be new)."""
    return METRICS.register(metric.name, metric)


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
    one-vs-rest AUC per class (the checks are in the ``verification`` section);
    ``trigger_rates``: each class's efficiency at fixed acceptances of the others
    (:mod:`hepfpga.train.trigger_rates`)."""

    name: str = "classification"
    trigger_rates: TriggerRateConfig = field(default_factory=TriggerRateConfig)


@dataclass(frozen=True)
class Task:
    """One registered task."""

    name: str
    config_class: type[TaskConfig]
    description: str


#: Registered tasks by the name used in ``task.name``.
TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS` (its name must be new)."""
    return TASKS.register(task.name, task)


def get_task(name: str) -> Task:
    """The task registered as ``name``; a :class:`ConfigError` at ``task.name`` otherwise."""
    return TASKS.lookup(name, "task.name")


# The default task, registered here so that it is the first of the registries.
def _metric(name: str, task: str, description: str) -> Metric:
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
