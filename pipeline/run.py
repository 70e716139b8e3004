"""What every stage of a run shares: the :class:`Run` in progress, the :class:`StageResult`
base its results extend, and the :class:`Check` s that decide the exit status.

A stage is a function ``stage(run) -> result``: it reads what it needs from the :class:`Run`
(the config, the run folder and the results of earlier stages, by type) and returns its own
typed result. A result serialises itself into ``report.json`` once, in
:meth:`StageResult.report_items`, and states its requirements in :meth:`StageResult.checks`;
the runner collects both from every result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import PipelineConfig
from hepfpga.quantize.methods import QUANTIZATION_METHODS

__all__ = [
    "MODELS",
    "SCORES_FILE",
    "Check",
    "Run",
    "StageResult",
    "model_label",
    "scores_with_method_key",
    "section_as",
]

R = TypeVar("R")
S = TypeVar("S")

#: the models of a run as ``report.json`` and ``scores.npz`` name them, with their display
#: names, in plot order
MODELS = {"float": "float", "qkeras": "QKeras", "hls": "HLS"}


def model_label(model: str, method: str = "qkeras") -> str:
    """How to name ``model`` (a key of :data:`MODELS`) in text and plots: the quantized
    model's slot ``qkeras`` by the run's quantization ``method`` (``QKeras``, ``HGQ``; an
    unknown method's name in capitals), the others by :data:`MODELS`."""
    if model == "qkeras" and method != "qkeras":
        entry = QUANTIZATION_METHODS.get(method)
        return entry.display_name if entry else method.upper()
    return MODELS.get(model, model)


#: test-set labels and class scores of every model (``float``, ``qkeras``, ``hls``), for
#: ``hepfpga compare``'s ROC overlay and ``report.html``
SCORES_FILE = "scores.npz"


def scores_with_method_key(arrays: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The arrays of ``scores.npz`` with the quantized model's scores also under its
    quantization method's own name (``hgq``, ``train_hgq``) when the method is not QKeras.

    The ``qkeras`` (and ``train_qkeras``) arrays are kept as an alias: every reader (the
    report page, ``hepfpga compare`` and its ROC overlays, :class:`RunScores`) reads the
    quantized model's slot under that name, whatever the method."""
    out = dict(arrays)
    if method != "qkeras":
        for prefix in ("", "train_"):
            if f"{prefix}qkeras" in arrays:
                out[f"{prefix}{method}"] = arrays[f"{prefix}qkeras"]
    return out


def section_as(section: object, kind: type[S], path: str) -> S:
    """The config ``section`` as the registered class ``kind`` a task's stages work with (the
    ``task`` or ``model`` section of that task); a :class:`ConfigError` at ``path`` otherwise."""
    if not isinstance(section, kind):
        raise ConfigError(
            f"these stages need a {kind.__name__} section, not a {type(section).__name__}",
            path=path,
        )
    return section


@dataclass(frozen=True)
class Check:
    """One requirement of the run: the measured ``value``, what was ``required`` (None: only
    reported) and whether it held (None: could not be measured, e.g. no firmware)."""

    value: Any
    required: Any
    passed: bool | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"value": self.value, "required": self.required, "passed": self.passed}
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        """The check :meth:`to_dict` wrote (``passed`` is required)."""
        return cls(data.get("value"), data.get("required"), data["passed"], data.get("reason"))


class StageResult:
    """Base of stage results: what a result adds to ``report.json`` and to the checks."""

    def report_items(self, run: Run) -> dict[str, Any]:
        return {}

    def checks(self, run: Run) -> dict[str, Check]:
        return {}


@dataclass
class Run:
    """A run in progress: its config, its (temporary) folder and the stage results so far."""

    config: PipelineConfig
    run_dir: Path
    config_path: Path | None = None
    results: dict[str, StageResult] = field(default_factory=dict)

    def get(self, kind: type[R]) -> R:
        """The result of type ``kind`` of an earlier stage."""
        for result in self.results.values():
            if isinstance(result, kind):
                return result
        raise LookupError(f"no {kind.__name__} yet; stages run: {', '.join(self.results)}")

    def find(self, kind: type[R]) -> R | None:
        """Like :meth:`get`, or None when no stage produced one."""
        try:
            return self.get(kind)
        except LookupError:
            return None
