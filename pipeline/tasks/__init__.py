"""The tasks of a run, one module each: :mod:`.classification`, :mod:`.anomaly`
(``anomaly_detection``) and :mod:`.generation`, each registering one
:class:`~hepfpga.pipeline.task.RunTask` (its stage list, figures, ROC section, compare overlay)
in :data:`~hepfpga.pipeline.task.RUN_TASKS` under its :data:`hepfpga.train.tasks.TASKS` name.

Importing this package registers them; read the tasks through :data:`RUN_TASKS` from here.
"""

from hepfpga.pipeline.task import RUN_TASKS, RunTask, register_run_task, run_task_for
from hepfpga.pipeline.tasks import anomaly, classification, generation

__all__ = [
    "RUN_TASKS",
    "RunTask",
    "anomaly",
    "classification",
    "generation",
    "register_run_task",
    "run_task_for",
]
