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

``scores.npz`` is read back the same way, by :meth:`RunScores.read` (through the safe reader,
:func:`hepfpga.datafiles.open_npz`), against its schema:

================== =========================================================================
array              what it must be
================== =========================================================================
``labels``         1-D integers, the class index of each test jet (``0 .. n_classes - 1``)
``class_names``    1-D strings (classification), equal to the report's classes if it names them
``float``,         the test-jet scores of each model, real and finite, one row per label:
``qkeras``,        ``(n_jets, n_classes)`` for classification, ``(n_jets,)`` (or
``hls``, ``bdt``   ``(n_jets, 1)``) for anomaly detection
``train_labels``,  the same for the training jets of the overtraining check
``train_<model>``
``<method>``,      a run of another quantization method than QKeras (``hgq``): the quantized
``train_<method>`` model's scores under the method's own name, the same arrays as
                   ``qkeras``/``train_qkeras``, which stay as their alias (every reader
                   reads the quantized model's slot as ``qkeras``)
================== =========================================================================

A corrupt, truncated or foreign file, an array of Python objects, or arrays that disagree
with each other or with the report are one :class:`~hepfpga.errors.DataError` naming the
file and the array.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.datafiles import open_npz
from hepfpga.errors import DataError
from hepfpga.pipeline.run import MODELS, SCORES_FILE, Check, model_label

__all__ = ["REPORT_FILE", "RunReport", "RunScores"]

REPORT_FILE = "report.json"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class RunReport:
    """The content of one ``report.json``."""

    #: the file's content, as written (with the ``qkeras`` aliases of a run of another
    #: quantization method's sections, :func:`_with_method_aliases`)
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
    #: the quantization method of the run's quantized model (``quantization.method``; runs
    #: written before HGQ existed are ``qkeras``)
    quantization_method: str = "qkeras"
    #: the run's peak resident memory in MiB (``resources.peak_rss_mib``: ``getrusage``'s
    #: ``ru_maxrss`` when the report was written; None for runs written before it was recorded)
    peak_rss_mib: float | None = None
    #: whether the run streamed its jets (``data.loading.streamed``; None: not recorded)
    streamed: bool | None = None

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
            content = _with_method_aliases(content)
            data = content["data"] if strict else content.get("data", {})
            if not isinstance(data, Mapping):
                raise TypeError(f"its 'data' is a JSON {type(data).__name__}, not an object")
            _check_types(content)
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
                quantization_method=str(
                    _mapping(_mapping(content.get("config")).get("quantization")).get("method")
                    or "qkeras"
                ),
                peak_rss_mib=_mapping(content.get("resources")).get("peak_rss_mib"),
                streamed=_streamed(_mapping(data.get("loading")).get("streamed")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{where}: not a hepfpga run report ({_reason(exc)})") from exc

    @classmethod
    def read(cls, path: Path) -> RunReport:
        """The report in the file ``path``; a :class:`DataError` naming it if it cannot be
        read, is not JSON or is not a run report."""
        try:
            content = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a hepfpga run report ({_reason(exc)})") from exc
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

    def model_label(self, model: str) -> str:
        """How to name ``model`` (``float``, ``qkeras``, ``hls``) in text: the quantized
        model's slot ``qkeras`` by the run's method (``QKeras``, ``HGQ``)."""
        return model_label(model, self.quantization_method)

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, check in self.checks.items() if check.passed is False]


_OBJECT, _LIST, _TEXT, _NUMBER = (Mapping,), (list,), (str,), (int, float)
_NONE = (type(None),)
#: the typed parts of report.json: dotted path -> the JSON types it may have (absent is fine)
_REPORT_TYPES: dict[str, tuple[type, ...]] = {
    "name": _TEXT,
    "status": _TEXT + _NONE,
    "architecture": _OBJECT,
    "architecture.name": _TEXT,
    "architecture.task": _TEXT + _NONE,
    "data.representation": _TEXT,
    "data.classes": _LIST,
    "checks": _OBJECT,
    "not_available": _LIST,
    "summary": _LIST + _NONE,
    "parameters": (int, *_NONE),
    "timings_s": _OBJECT,
    "timings_s.total": _NUMBER + _NONE,
    "resources": _OBJECT,
    "resources.peak_rss_mib": _NUMBER + _NONE,
    "data.loading": _OBJECT,
    "hls_vs_qkeras": _OBJECT,
    **{f"{model}": _OBJECT for model in MODELS},
    **{f"{model}.test": _OBJECT for model in MODELS},
    **{f"{model}.test.accuracy": _NUMBER + _NONE for model in MODELS},
    **{f"{model}.test.auc": _OBJECT for model in MODELS},
}
_JSON_NAMES = {
    Mapping: "an object",
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _check_types(content: Mapping[str, Any]) -> None:
    """Refuse a retyped section (TypeError naming its path, the type found and the types
    accepted); sections that are absent are left to their readers."""
    for path, types in _REPORT_TYPES.items():
        node: Any = content
        for key in path.split("."):
            node = node.get(key, _ABSENT) if isinstance(node, Mapping) else _ABSENT
        if node is _ABSENT:
            continue
        if isinstance(node, bool) or not isinstance(node, types):
            accepted = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in types))
            found = "a boolean" if isinstance(node, bool) else _json_name(node)
            raise TypeError(f"'{path}' is {found}; expected {accepted}")
    for name, check in _mapping(content.get("checks")).items():
        if not isinstance(check, Mapping) or not isinstance(check.get("passed"), (bool, *_NONE)):
            raise TypeError(f"'checks.{name}' is not a check (an object with 'passed')")
    for path in ("data.classes", "not_available", "summary"):
        items = (
            _mapping(content.get("data")).get("classes")
            if path == "data.classes"
            else (content.get(path))
        )
        if isinstance(items, list) and not all(isinstance(i, str) for i in items):
            raise TypeError(f"'{path}' must be a list of strings")
    for model in MODELS:
        auc = _mapping(_mapping(content.get(model)).get("test")).get("auc")
        for name, value in _mapping(auc).items():
            if isinstance(value, bool) or not isinstance(value, (*_NUMBER, *_NONE)):
                raise TypeError(
                    f"'{model}.test.auc.{name}' is {_json_name(value)}; expected a number"
                )


_ABSENT = object()


def _with_method_aliases(content: Any) -> Any:
    """``content`` with the quantized model's sections also under their ``qkeras`` names.

    A run names the quantized model's sections after its ``quantization.method``
    (``hgq``, ``onnx_vs_hgq``; checks ``hgq_accuracy_drop``...); every reader knows them as
    ``qkeras``, ``onnx_vs_qkeras``, ``hls_vs_qkeras``, which stay readable: each such
    section is added as an alias of the method's (a ``qkeras`` run's are the same)."""
    if not isinstance(content, Mapping):
        return content
    config = content.get("config")
    quantization = config.get("quantization") if isinstance(config, Mapping) else None
    method = quantization.get("method") if isinstance(quantization, Mapping) else None
    if not isinstance(method, str) or method == "qkeras":
        return content
    aliased = dict(content)
    for prefix in ("", "onnx_vs_", "hls_vs_"):
        if f"{prefix}{method}" in content and f"{prefix}qkeras" not in content:
            aliased[f"{prefix}qkeras"] = content[f"{prefix}{method}"]
    return aliased


def _streamed(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"'data.loading.streamed' is {_json_name(value)}; expected a boolean")


def _json_name(value: Any) -> str:
    return next((n for t, n in _JSON_NAMES.items() if isinstance(value, t)), type(value).__name__)


def _reason(exc: BaseException) -> str:
    """An exception as a short clause on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


#: scores of the models a run evaluates (and the BDT), each also as ``train_<model>``
SCORED = (*MODELS, "bdt")
#: how many numbers per jet each task's scores hold: one per class, or one
_PER_JET = {"classification": "classes", "anomaly": "one"}


@dataclass(frozen=True)
class RunScores:
    """The content of one ``scores.npz``, checked against its schema (module docstring)."""

    path: Path
    #: every array of the file, by name
    arrays: Mapping[str, np.ndarray]
    labels: np.ndarray
    #: the class names the file or the report gives (empty when neither does)
    classes: tuple[str, ...]

    @classmethod
    def read(cls, run_dir: Path, report: RunReport) -> RunScores | None:
        """The scores of the run in ``run_dir`` whose report is ``report``; None if the run
        wrote none. A :class:`DataError` naming the file and the array otherwise."""
        path = Path(run_dir) / SCORES_FILE
        if not path.exists():
            return None
        if not path.is_file():
            raise DataError(f"{path}: not a file; a run writes its test scores there")
        with open_npz(path) as archive:
            arrays = {key: archive.read(key) for key in archive.keys}
        return cls.check(path, arrays, report)

    @classmethod
    def check(cls, path: Path, arrays: Mapping[str, np.ndarray], report: RunReport) -> RunScores:
        """``arrays`` (read from ``path``) checked against the schema and ``report``."""

        def bad(key: str, problem: str) -> DataError:
            return DataError(f"{path} '{key}': {problem}; {_SCHEMA_HINT}")

        if "labels" not in arrays:
            raise DataError(
                f"{path}: no 'labels' array (found: {', '.join(arrays) or 'none'}); {_SCHEMA_HINT}"
            )
        classes = report.classes
        if "class_names" in arrays:
            names = arrays["class_names"]
            if names.ndim != 1 or names.dtype.kind not in "US":
                raise bad("class_names", f"expected 1-D strings, got {names.dtype} {names.shape}")
            from_file = tuple(str(c) for c in names.tolist())
            if classes and from_file != classes:
                raise bad(
                    "class_names",
                    f"{list(from_file)} differ from the report's classes {list(classes)}",
                )
            classes = from_file
        per_jet = _PER_JET.get(report.task)
        for prefix in ("", "train_"):
            labels_key = f"{prefix}labels"
            models = [m for m in SCORED if f"{prefix}{m}" in arrays]
            if labels_key not in arrays:
                if prefix and models:
                    raise bad(f"{prefix}{models[0]}", "present without 'train_labels'")
                continue
            labels = arrays[labels_key]
            if labels.ndim != 1 or labels.dtype.kind not in "iu":
                raise bad(labels_key, f"expected 1-D integers, got {labels.dtype} {labels.shape}")
            if classes and len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
                raise bad(
                    labels_key,
                    f"labels outside 0..{len(classes) - 1} (the {len(classes)} classes "
                    f"{', '.join(classes)}): {int(labels.min())}..{int(labels.max())}",
                )
            for model in models:
                key = f"{prefix}{model}"
                values = arrays[key]
                if values.dtype.kind not in "iuf":
                    raise bad(key, f"expected real numbers, got {values.dtype}")
                if values.ndim == 0 or len(values) != len(labels):
                    raise bad(
                        key,
                        f"shape {values.shape} does not match the {len(labels)} {labels_key}",
                    )
                if per_jet == "classes":
                    if values.ndim != 2 or (classes and values.shape[1] != len(classes)):
                        width = len(classes) if classes else "n_classes"
                        raise bad(
                            key,
                            f"shape {values.shape}; a classification run scores each jet "
                            f"for every class: ({len(labels)}, {width})",
                        )
                elif per_jet == "one" and not (
                    values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)
                ):
                    raise bad(
                        key,
                        f"shape {values.shape}; an anomaly-detection run gives one score per "
                        f"jet: ({len(labels)},)",
                    )
                if values.dtype.kind == "f" and not np.isfinite(values).all():
                    count = int((~np.isfinite(values)).sum())
                    raise bad(key, f"{count} NaN or infinite score(s)")
        return cls(path, dict(arrays), arrays["labels"], classes)


_SCHEMA_HINT = (
    "a run's scores.npz holds 'labels', 'class_names' and one score array per model; "
    "rerun the run (hepfpga run) to write it again"
)
