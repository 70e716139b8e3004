"""``report.html``: the self-contained page a person reads about a run.

:func:`write_report_html` rebuilds it from a run folder alone: ``report.json`` (every
number), when present ``scores.npz`` (the test-set outputs of each model and the
training-set outputs used by the overtraining check), and the PNG files the run's task names
(:attr:`hepfpga.pipeline.figures.TaskFigures.plots`). Every other plot is drawn here with
matplotlib; every image is embedded as a base64 PNG, so the page loads nothing from the
network or disk. The figures follow the run's task (:mod:`hepfpga.pipeline.figures`):
classification, anomaly detection or generation.

Sections (their ``id``): ``summary`` (status, checks and the task's test figures), ``data``,
``learning-curves``, ``overtraining`` (Kolmogorov-Smirnov train vs test), ``roc`` (float /
QKeras / HLS / BDT overlay; background acceptance against signal efficiency for anomaly
detection), ``task-plots`` (the anomaly score distributions, the generated features),
``confusion``, ``bdt`` (DNN vs BDT and conifer's emulation), ``saliency``, ``layer-types``
(profiled ranges vs chosen types), ``firmware`` (exactness), ``hardware`` (when the run has
hardware figures), ``timings``, ``versions``. A section whose data the run does not have says
so in one line instead of disappearing."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.artifacts import check_destination, write_text_atomic
from hepfpga.errors import DataError
from hepfpga.pipeline.html import Raw, escape, figure, mark, note, number, table
from hepfpga.pipeline.run import MODELS, SCORES_FILE
from hepfpga.pipeline.run_report import RunReport, RunScores
from hepfpga.pipeline.tasks import RUN_TASKS, run_task_for
from hepfpga.train.curves import plot_learning_curves, plot_score_compatibility
from hepfpga.train.saliency import Saliency, plot_saliency

__all__ = ["SCORES_FILE", "SECTIONS", "render_report_html", "write_report_html"]

REPORT_FILE = "report.html"

#: display names of the models in ``scores.npz``, in plot order
MODEL_LABELS = {**MODELS, "bdt": "BDT"}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 1.5em 3em;
color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-top:.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.ok{color:#11772d;font-weight:600}.bad{color:#b00020;font-weight:600}
.note{color:#666;font-style:italic}img{max-width:100%}nav a{margin-right:.8em}
"""

# Marks the page once every embedded image has decoded, so a headless browser test can see it.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-images', ok ? 'ok' : 'broken');
});
"""


# -- sections -----------------------------------------------------------------------------------


def _summary(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    status = report.status or "unknown"
    rows = [
        [name, number(check.value), escape(check.required), mark(bool(check.passed))]
        for name, check in report.checks.items()
    ]
    parts = [
        f"<p>Status: {mark(status == 'passed')} ({escape(status)})</p>",
        table(["check", "value", "required", "result"], rows),
    ]
    left_out = report.section("stages_left_out")
    if left_out:
        parts.append(
            table(["stage left out", "why"], [[k, escape(v)] for k, v in left_out.items()])
        )
    try:
        task = run_task_for(report)
        headline = task.figures.headline(report)
        tables = task.figures.tables(report)
    except (DataError, KeyError, TypeError, AttributeError) as exc:
        return "".join(parts) + note(f"no test figures in report.json ({exc})")
    parts.append(f"<p>Task: {escape(task.name)}.</p>")
    parts.append(
        table(
            ["model", task.figures.headline_name],
            [[report.model_label(m), v] for m, v in headline.items()],
        )
    )
    for figure_table in tables:
        if all(v is None for row in figure_table.rows.values() for v in row.values()):
            parts.append(note(f"{figure_table.title}: not measured (e.g. below one test jet)"))
            continue
        parts.append(f"<h3>{escape(figure_table.title)}</h3>")
        parts.append(
            table(
                ["", *figure_table.columns],
                [
                    [label, *(row.get(c) for c in figure_table.columns)]
                    for label, row in figure_table.rows.items()
                ],
            )
        )
    return "".join(parts)


def _data(report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]) -> str:
    data = report.data
    if not data:
        return note("no data description in report.json")
    split = data.get("split", {})
    rows: list[list[Any]] = [
        ["file", escape(data.get("path"))],
        ["jets", data.get("n_jets")],
        ["train / validation / test", escape(" / ".join(str(split.get(k)) for k in split))],
        ["scaling", escape(data.get("scaling"))],
        ["features", escape(", ".join(data.get("features", [])))],
    ]
    task = RUN_TASKS.get(report.task)
    for key, label in (task.data_rows if task is not None else {}).items():
        if key in data:
            value = data[key]
            rows.append(
                [label, escape(", ".join(map(str, value)) if isinstance(value, list) else value)]
            )
    per_class = data.get("test_jets_per_class", {})
    return table(["", "value"], rows) + (
        table(["class", "test jets"], list(per_class.items())) if per_class else ""
    )


def _learning_curves(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    histories, best = {}, {}
    for key in ("float", "qkeras"):
        fit = report.section(key).get("fit", {})
        if fit.get("history"):
            histories[_label(report, key)] = fit["history"]
            best[_label(report, key)] = fit.get("best_epoch")
    if not histories:
        return note("this run recorded no per-epoch history")
    img = figure(
        lambda b: plot_learning_curves(histories, b, best_epochs=best, fmt="png"),
        "learning curves",
    )
    return (
        "<p>Training (solid) and validation (dashed) loss and accuracy per epoch; the dotted "
        "line marks the restored best epoch.</p>" + img
    )


def _overtraining(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    results = report.section("overtraining")
    if not results:
        return note("no train-vs-test comparison in this run")
    parts = [
        "<p>Two-sample Kolmogorov-Smirnov test of each class's score, training vs test jets "
        f"(signal: jets of the class; background: the others); p &lt; "
        f"{number(next(iter(results.values())).get('threshold', 0.01), 2)} flags overtraining.</p>"
    ]
    classes = list(report.classes)
    for model, result in results.items():
        rows = [
            [c, v["signal_statistic"], v["signal_p_value"], v["background_statistic"],
             v["background_p_value"], mark(min(v["signal_p_value"], v["background_p_value"])
                                            >= result.get("threshold", 0.01))]
            for c, v in result["classes"].items()
        ]  # fmt: skip
        parts.append(f"<h3>{escape(_label(report, model))}</h3>")
        parts.append(table(["class", "KS sig", "p sig", "KS bkg", "p bkg", "compatible"], rows))
        train = scores.get(f"train_{model}")
        if train is not None and model in scores and classes:

            def draw(b: io.BytesIO, m: str = model, t: np.ndarray = train) -> None:
                plot_score_compatibility(
                    t, scores["train_labels"], scores[m], scores["labels"], classes, b, fmt="png"
                )

            parts.append(figure(draw, f"score distributions {model}"))
    return "".join(parts)


def _label(report: RunReport, model: str) -> str:
    """The display name of a model of ``scores.npz`` in ``report``'s run (``qkeras``: the
    run's quantization method)."""
    return report.model_label(model) if model in MODELS else MODEL_LABELS.get(model, model)


def _roc(report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]) -> str:
    task = RUN_TASKS.get(report.task)
    if task is None or task.roc is None:
        return note(f"a {report.task} run has no ROC curves")
    models = {_label(report, m): scores[m] for m in MODEL_LABELS if m in scores}
    if not models or "labels" not in scores:
        return note(f"no {SCORES_FILE} in the run folder: no curves to draw")
    return task.roc(report, models, scores["labels"])


def _confusion(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    classes = list(report.classes)
    models = [m for m in MODEL_LABELS if m in scores]
    if not models or "labels" not in scores:
        return note(f"no {SCORES_FILE} in the run folder")
    if any(np.ndim(scores[m]) != 2 for m in models):
        return note("the models give one score per jet, not a class: no confusion matrix")
    parts = ["<p>Rows: true class; columns: predicted class (argmax); fraction of the row.</p>"]
    labels = scores["labels"]
    for model in models:
        predicted = np.argmax(scores[model], axis=1)
        matrix = np.zeros((len(classes), len(classes)))
        np.add.at(matrix, (labels, predicted), 1)
        matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        parts.append(f"<h3>{escape(_label(report, model))}</h3>")
        parts.append(
            table(
                ["true \\ predicted", *classes],
                [[c, *row] for c, row in zip(classes, matrix.tolist(), strict=True)],
            )
        )
    return "".join(parts)


def _bdt(report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]) -> str:
    bdt = report.section("bdt")
    if not bdt:
        return note("no BDT in this run (bdt.enabled: false)")
    if bdt.get("status") == "not available":
        return note(f"no BDT: {bdt.get('reason')}")
    classes = list(report.classes)
    rows = [
        [
            _label(report, m),
            report.section(m)["test"]["accuracy"],
            *[report.section(m)["test"]["auc"][c] for c in classes],
        ]
        for m in ("float", "qkeras", "bdt")
        if "test" in report.section(m)
    ]
    settings = bdt.get("config", {})
    return (
        table(["model", "accuracy", *[f"AUC {c}" for c in classes]], rows)
        + "<p>Gradient-boosted trees (scikit-learn): "
        + escape(", ".join(f"{k} {v}" for k, v in settings.items() if k != "enabled"))
        + f"; fitted in {number(bdt.get('fit_seconds'), 1)} s.</p>"
        + _bdt_firmware(bdt)
    )


def _bdt_firmware(bdt: Mapping[str, Any]) -> str:
    emulation = bdt.get("emulation", {})
    if emulation.get("status") == "not available":
        return note(f"no conifer firmware: {emulation.get('reason')}")
    v = bdt["verification"]
    return f"<p>HLS project: <code>{escape(bdt.get('hls_project'))}</code>.</p>" + table(
        ["conifer C++ emulation vs scikit-learn", "value"],
        [
            ["test jets", v["n_events"]],
            ["identical decisions", v["fraction_identical_decisions"]],
            ["max |score difference|", v["max_abs_score_diff"]],
            ["bound from the score type", v["score_diff_bound"]],
            ["verified", mark(bool(v.get("passed")))],
        ],
    )


def _saliency(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    data = report.section("saliency")
    if not data:
        return note("no saliency in this run")
    parts = ["<p>Mean |d score<sub>c</sub> / d input| over the test jets of class c.</p>"]
    for model, per_class in data.items():
        classes = tuple(per_class)
        first = per_class[classes[0]]
        if isinstance(first, dict):
            names = tuple(first)
            values = np.array([[per_class[c][n] for n in names] for c in classes])
        else:
            names, values = None, np.array([per_class[c] for c in classes])
        saliency = Saliency(values, classes, tuple(0 for _ in classes), names)
        parts.append(f"<h3>{escape(_label(report, model))}</h3>")

        def draw(b: io.BytesIO, s: Saliency = saliency) -> None:
            plot_saliency(s, b, fmt="png")

        parts.append(figure(draw, "saliency"))
        if names is not None:
            top = [[c, escape(", ".join(n for n, _ in saliency.ranking(c)[:4]))] for c in classes]
            parts.append(table(["class", "most important features"], top, left=2))
    return "".join(parts)


def _layer_types(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    layers = report.section("firmware").get("layer_types")
    if not layers:
        return note("no per-layer types recorded")
    rows = []
    for item in layers:
        lo, hi = item.get("profiled_min"), item.get("profiled_max")
        fits = lo is None or (item["type_min"] <= lo and hi <= item["type_max"])
        rows.append(
            [item["layer"], escape(item.get("class", "")), escape(item.get("result", "")),
             escape(item.get("accum", "")), item.get("type_min"), item.get("type_max"), lo, hi,
             mark(fits)]
        )  # fmt: skip
    return (
        "<p>The type of each layer's output (and accumulator) in the firmware, the range "
        "it can hold, and the range the layer's output took on the test jets.</p>"
        + table(
            ["layer", "class", "result type", "accumulator", "type min", "type max",
             "profiled min", "profiled max", "covers"],
            rows, left=4,
        )
    )  # fmt: skip


def _firmware(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    cmp = report.section("hls_vs_qkeras")
    if not cmp:
        return note("no HLS comparison in this run")
    rows = [[k.replace("_", " "), v] for k, v in cmp.items() if not isinstance(v, dict | list)]
    onnx = report.section("onnx_vs_qkeras")
    rows += [[f"ONNX vs QKeras {k.replace('_', ' ')}", v] for k, v in onnx.items()
             if not isinstance(v, dict | list)]  # fmt: skip
    # the bulk emulator (hepfpga emulate) of this firmware: its engine and its proof
    emulation = report.section("emulation")
    rows += [[f"emulator {k.replace('_', ' ')}", v] for k, v in emulation.items() if v is not None]
    options = report.section("firmware").get("options", {})
    return table(["HLS C simulation vs QKeras", "value"], rows) + (
        table(
            ["firmware option", "value"],
            [[k, escape(v)] for k, v in options.items() if not isinstance(v, dict | list)],
        )
        if options
        else ""
    )


def _flat(prefix: str, value: Any) -> list[list[Any]]:
    if isinstance(value, Mapping):
        rows = []
        for k, v in value.items():
            rows += _flat(f"{prefix}.{k}" if prefix else str(k), v)
        return rows
    return [[prefix, value if isinstance(value, int | float) else Raw(escape(value))]]


def _hardware(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    hardware = report.section("hardware")
    if not hardware:
        return note("no hardware figures in this run")
    return table(["figure", "value"], _flat("", hardware))


def _task_plots(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    names = _plot_names(report)
    if not names:
        return note("this run's task names no further plots")
    parts = []
    for name in names:
        content = plots.get(name)
        if content is None:
            parts.append(note(f"{name}: not in the run folder"))
            continue
        data = base64.b64encode(content).decode("ascii")
        parts.append(
            f'<h3>{escape(name)}</h3><img alt="{escape(name)}" src="data:image/png;base64,{data}">'
        )
    return "".join(parts)


def _plot_names(report: RunReport) -> list[str]:
    task = RUN_TASKS.get(report.task)
    return task.figures.plots(report) if task is not None else []


def _timings(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    return table(["stage", "seconds"], list(report.section("timings_s").items()))


def _versions(
    report: RunReport, scores: Mapping[str, np.ndarray], plots: Mapping[str, bytes]
) -> str:
    return table(
        ["tool", "version"], [[k, Raw(escape(v))] for k, v in report.section("versions").items()]
    )


#: a section of the page: (report, scores.npz's arrays, the task's PNG files) -> HTML
Renderer = Callable[[RunReport, Mapping[str, np.ndarray], Mapping[str, bytes]], str]

#: every section of the page, in page order: (id, title, renderer)
_PAGE: tuple[tuple[str, str, Renderer], ...] = (
    ("summary", "Summary and checks", _summary),
    ("data", "Data", _data),
    ("learning-curves", "Learning curves", _learning_curves),
    ("overtraining", "Overtraining: train vs test scores", _overtraining),
    ("roc", "ROC curves", _roc),
    ("task-plots", "Task plots", _task_plots),
    ("confusion", "Confusion matrices", _confusion),
    ("bdt", "DNN vs BDT", _bdt),
    ("saliency", "Saliency", _saliency),
    ("layer-types", "Per-layer types", _layer_types),
    ("firmware", "Firmware exactness", _firmware),
    ("hardware", "Hardware figures", _hardware),
    ("timings", "Timings", _timings),
    ("versions", "Versions", _versions),
)

#: (id, title) of every section, in page order
SECTIONS: tuple[tuple[str, str], ...] = tuple((sid, title) for sid, title, _ in _PAGE)


def render_report_html(
    report: RunReport | Mapping[str, Any],
    scores: Mapping[str, np.ndarray],
    plots: Mapping[str, bytes] | None = None,
) -> str:
    """The page for ``report`` (report.json's content or read), ``scores`` (scores.npz's arrays;
    may be empty) and ``plots`` (PNG file name -> content: the run folder's plots its task
    names, see :attr:`~hepfpga.pipeline.figures.TaskFigures.plots`)."""
    if not isinstance(report, RunReport):
        report = RunReport.from_content(report, strict=False)
    name = report.name or "run"
    nav = "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title in SECTIONS)
    body = "".join(
        f'<section id="{sid}"><h2>{escape(title)}</h2>'
        f"{render(report, scores, plots or {})}</section>"
        for sid, title, render in _PAGE
    )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>hepfpga run {escape(name)}</title>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>"
        f"<h1>hepfpga run <code>{escape(name)}</code></h1><nav>{nav}</nav>{body}</body></html>\n"
    )


def write_report_html(run_dir: Path) -> Path:
    """(Re)build ``run_dir/report.html`` from ``report.json`` and ``scores.npz`` there (both
    read by their typed readers, :class:`RunReport` and :class:`RunScores`); the page's
    destination is checked before anything is read and the page written atomically. Returns
    its path."""
    run_dir = Path(run_dir)
    report_path = run_dir / "report.json"
    if not report_path.is_file():
        raise DataError(f"{run_dir} is not a run folder: it has no report.json")
    out = run_dir / REPORT_FILE
    check_destination(out, kind="file", overwrite=True)
    try:
        content = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{report_path} is not valid JSON: {exc}") from exc
    report = RunReport.from_content(content, str(report_path), strict=False)
    loaded = RunScores.read(run_dir, report)
    scores = dict(loaded.arrays) if loaded is not None else {}
    plots = {
        name: (run_dir / name).read_bytes()
        for name in _plot_names(report)
        if Path(name).name == name and (run_dir / name).is_file()
    }
    write_text_atomic(out, render_report_html(report, scores, plots))
    return out
