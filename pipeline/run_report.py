"""``report.json`` read back: the one typed reader the CLI summary, ``report.html``,
``hepfpga compare`` and the task figures use.

A run writes its report once, from its typed stage results (each result's
:meth:`~hepfpga.pipeline.run.StageResult.report_items` and
:meth:`~hepfpga.pipeline.run.Check.to_dict`); :meth:`RunReport.read` reads the file back into
a :class:`RunReport` whose fields are the parts every reader needs (name, status, task,
architecture, classes, checks, timings) and whose :meth:`RunReport.section` gives a stage's
own section. A file that is not a run report is a :class:`~hepfpga.errors.DataError` naming
it. Runs written before tasks and architecture plugins existed read as ``classification``
runs of an ``mlp``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepfpga.errors import DataError
from hepfpga.pipeline.run import MODELS, Check

__all__ = ["REPORT_FILE", "RunReport"]

REPORT_FILE = "report.json"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class RunReport:
    """The content of one ``report.json``."""

    #: the file's content, as written
    content: Mapping[str, Any]
    name: str
    #: ``passed``, ``failed``, ``incomplete`` (None when the file does not say)
    status: str | None
    #: the run's task (a name of :data:`hepfpga.train.tasks.TASKS`)
    task: str
    architecture: str
    representation: str
    #: the classes of the run's sample, in label order
    classes: tuple[str, ...]
    checks: dict[str, Check] = field(default_factory=dict)
    #: ``stage: reason`` of each stage that could not produce its result
    not_available: tuple[str, ...] = ()
    #: the task's summary lines (None: the classification summary is built from the figures)
    summary: tuple[str, ...] | None = None
    parameters: int | None = None
    #: the run's wall time in seconds
    seconds: float | None = None

    @classmethod
    def from_content(
        cls, content: Any, where: str = REPORT_FILE, *, strict: bool = True
    ) -> RunReport:
        """The report of ``content`` (report.json parsed); a :class:`DataError` naming
        ``where`` if it is not a hepfpga run report (``strict``: one without a ``data``
        section is not; else it reads as a run with no data description)."""
        try:
            if not isinstance(content, Mapping):
                raise TypeError(f"a JSON {type(content).__name__}, not an object")
            data = content["data"] if strict else content.get("data", {})
            if not isinstance(data, Mapping):
                raise TypeError(f"its 'data' is a JSON {type(data).__name__}, not an object")
            architecture = _mapping(content.get("architecture"))
            summary = content.get("summary")
            return cls(
                content=content,
                name=str(content.get("name", "")),
                status=None if content.get("status") is None else str(content["status"]),
                task=str(architecture.get("task") or "classification"),
                architecture=str(architecture.get("name", "mlp")),
                representation=str(data.get("representation", "features")),
                classes=tuple(str(c) for c in data.get("classes", ())),
                checks={
                    name: Check.from_dict(check)
                    for name, check in _mapping(content.get("checks")).items()
                },
                not_available=tuple(str(i) for i in content.get("not_available", ())),
                summary=None if summary is None else tuple(str(line) for line in summary),
                parameters=content.get("parameters"),
                seconds=_mapping(content.get("timings_s")).get("total"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{where}: not a hepfpga run report ({exc!r})") from exc

    @classmethod
    def read(cls, path: Path) -> RunReport:
        """The report in the file ``path``; a :class:`DataError` naming it if it cannot be
        read, is not JSON or is not a run report."""
        try:
            content = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a hepfpga run report ({exc!r})") from exc
        return cls.from_content(content, str(path))

    def section(self, key: str) -> Mapping[str, Any]:
        """The section ``key`` of the report (empty when the run has none)."""
        return _mapping(self.content.get(key))

    @property
    def data(self) -> Mapping[str, Any]:
        """The ``data`` section: the jets, their split and the task's own entries."""
        return self.section("data")

    def test_figures(self) -> dict[str, Mapping[str, Any]]:
        """Model (``float``, ``qkeras``, ``hls``) -> its ``test`` figures, for the models the
        run has."""
        return {
            m: self.section(m)["test"]
            for m in MODELS
            if isinstance(self.section(m).get("test"), Mapping)
        }

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, check in self.checks.items() if check.passed is False]
