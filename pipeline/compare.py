"""Compare finished runs: a table per task and overlays of their ROC curves.

:func:`load_run` reads a run folder's ``report.json`` (and ``scores.npz`` for the curves);
its figures come from the run's task (:mod:`hepfpga.pipeline.figures`: classification, anomaly
detection, generation). :func:`format_table` groups the runs by task and prints, per group,
one row per run (architecture, inputs, parameter count, the task's headline figure for the
float, QKeras and HLS models, the firmware's exactness as the run measured it, the run time)
and then the task's detailed tables with one row per run and model (per-class AUC; AUC and
signal efficiency per signal class; the fidelity of each generated sample).
:func:`plot_roc_overlay` draws the classification runs' ROC curves, one panel per class, and
:func:`plot_anomaly_overlay` the anomaly runs' (background acceptance against signal
efficiency, one panel per signal class), one curve per run (the HLS scores when the run has
firmware, else QKeras), each run on its own test jets. Generation runs have no curves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import DataError
from hepfpga.pipeline.figures import MODELS, TASK_FIGURES, FigureTable, figures_for

__all__ = [
    "MODELS",
    "OVERLAYS",
    "RunSummary",
    "format_table",
    "load_run",
    "overlay_paths",
    "plot_anomaly_overlay",
    "plot_roc_overlay",
]


@dataclass(frozen=True)
class RunSummary:
    """What the comparison shows of one run (None: the run has no such number)."""

    folder: Path
    name: str
    #: the run's task (``classification``, ``anomaly_detection``, ``generation``)
    task: str
    architecture: str
    representation: str
    parameters: int | None
    status: str
    #: what :attr:`headline` holds (``accuracy``, ``mean signal AUC``, ``classifier AUC``)
    headline_name: str
    #: model ("float", "qkeras", "hls") -> the task's headline figure on the test set
    headline: dict[str, float | None]
    #: the task's detailed tables (see :mod:`hepfpga.pipeline.figures`)
    tables: tuple[FigureTable, ...]
    #: the firmware's exactness against QKeras, in words
    firmware: str
    seconds: float | None
    #: the classes of the run's sample, in label order
    classes: tuple[str, ...] = ()
    #: background and signal classes of an anomaly-detection run (empty otherwise)
    background_classes: tuple[str, ...] = ()
    signal_classes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from hepfpga._schema import to_plain

        out: dict[str, Any] = to_plain(self)
        return out


def _firmware_exactness(report: dict[str, Any]) -> str:
    firmware = report.get("firmware", {})
    if firmware.get("status") == "not available":
        return "not available"
    cmp = report.get("hls_vs_qkeras")
    if cmp is None:
        return "not run"
    if cmp["logits_fraction_bit_exact"] == 1.0:
        return "bit-exact logits"
    return (
        f"{cmp['logits_fraction_bit_exact']:.1%} exact, max |diff| "
        f"{cmp['logits_max_abs_diff']:.3g}, argmax {cmp['argmax_agreement']:.2%}"
    )


def load_run(folder: str | Path) -> RunSummary:
    """The summary of the run in ``folder``; a :class:`DataError` naming the folder if it is
    not a directory, holds no ``report.json``, or that file is not a hepfpga run report."""
    folder = Path(folder)
    path = folder / "report.json"
    if not folder.is_dir():
        raise DataError(
            f"{folder}: not a run folder ({'a file' if folder.exists() else 'no such folder'}); "
            "give the folders hepfpga run wrote, e.g. runs/*"
        )
    if not path.is_file():
        raise DataError(
            f"{folder}: not a run folder (no report.json; hepfpga run writes it when a run "
            "finishes, so a partial run has none)"
        )
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(report, dict):
            raise TypeError(f"a JSON {type(report).__name__}, not an object")
        data = report["data"]
        figures = figures_for(report, str(path))
        headline = figures.headline(report)
        tables = tuple(figures.tables(report))
        firmware = _firmware_exactness(report)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not a hepfpga run report ({exc!r})") from exc
    architecture = report.get("architecture", {}).get("name", "mlp")  # runs before plugins
    return RunSummary(
        folder=folder,
        name=str(report.get("name", folder.name)),
        task=figures.task,
        architecture=str(architecture),
        representation=str(data.get("representation", "features")),
        parameters=report.get("parameters"),
        status=str(report.get("status", "?")),
        headline_name=figures.headline_name,
        headline=headline,
        tables=tables,
        firmware=firmware,
        seconds=report.get("timings_s", {}).get("total"),
        classes=tuple(str(c) for c in data.get("classes", ())),
        background_classes=tuple(data.get("background_classes", ())),
        signal_classes=tuple(data.get("signal_classes", ())),
    )


def _number(value: float | None, fmt: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*header), line.format(*("-" * w for w in widths))] + [
        line.format(*r) for r in rows
    ]


def _group_tables(runs: Sequence[RunSummary]) -> list[str]:
    """The detailed tables of runs of one task: per title, one row per run and model."""
    lines: list[str] = []
    titles = list(dict.fromkeys(t.title for r in runs for t in r.tables))
    for title in titles:
        columns: list[str] = []
        rows: list[list[str]] = []
        for r in runs:
            for table in (t for t in r.tables if t.title == title):
                columns += [c for c in table.columns if c not in columns]
        for r in runs:
            for table in (t for t in r.tables if t.title == title):
                rows += [
                    [r.name, label, *(_number(values.get(c)) for c in columns)]
                    for label, values in table.rows.items()
                ]
        if all(cell == "-" for row in rows for cell in row[2:]):
            lines += ["", f"{title}: not measured (e.g. an acceptance below one test jet)"]
            continue
        lines += ["", f"{title}:", *_table(["run", "model", *columns], rows)]
    return lines


def format_table(runs: Sequence[RunSummary]) -> str:
    """The comparison as text: per task (in :data:`~hepfpga.pipeline.figures.TASK_FIGURES` order)
    the run table and the task's detailed tables (see the module docstring)."""
    order = list(TASK_FIGURES)
    groups: dict[str, list[RunSummary]] = {}
    for r in sorted(runs, key=lambda r: order.index(r.task)):
        groups.setdefault(r.task, []).append(r)
    lines: list[str] = []
    for task, group in groups.items():
        if len(groups) > 1:
            lines += [""] if lines else []
            lines.append(f"== {task}: {len(group)} run{'s' if len(group) > 1 else ''} ==")
        header = ["run", "architecture", "inputs", "params"]
        header += [f"{group[0].headline_name} {label}" for label in MODELS.values()]
        header += ["firmware vs QKeras", "time"]
        rows = [
            [
                r.name,
                r.architecture,
                r.representation,
                _number(r.parameters, "d"),
                *(_number(r.headline.get(m)) for m in MODELS),
                r.firmware,
                f"{r.seconds:.0f} s" if r.seconds is not None else "-",
            ]
            for r in group
        ]
        lines += _table(header, rows) + _group_tables(group)
    return "\n".join(lines)


def _scores(folder: Path) -> tuple[str, np.ndarray, np.ndarray, list[str]] | None:
    """(model, scores, labels, class names) of a classification run's ``scores.npz``."""
    from hepfpga.pipeline.stages import SCORES_FILE

    path = folder / SCORES_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        model = next((m for m in ("hls", "qkeras", "float") if m in data.files), None)
        if model is None or "class_names" not in data.files:
            return None
        return model, data[model], data["labels"], [str(c) for c in data["class_names"]]


def _anomaly_scores(run: RunSummary) -> tuple[str, np.ndarray, np.ndarray, list[str]] | None:
    """(model, one score per jet, labels, class names) of an anomaly run's ``scores.npz``."""
    from hepfpga.pipeline.stages import SCORES_FILE

    path = run.folder / SCORES_FILE
    classes = list(run.classes)
    if not path.is_file() or not classes:
        return None
    with np.load(path, allow_pickle=False) as data:
        model = next((m for m in ("hls", "qkeras", "float") if m in data.files), None)
        if model is None:
            return None
        return model, np.asarray(data[model]).reshape(-1), data["labels"], classes


def _draw_panels(panels: list[str]) -> tuple[Any, Any]:
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    return fig, axes


def _save(fig: Any, axes: Any, panels: list[str], path: Path, ylabel: str) -> None:
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    from hepfpga.train.roc_plot import finish_roc_axes

    for c, (ax, title) in enumerate(zip(axes[0], panels, strict=True)):
        finish_roc_axes(ax, ylabel=ylabel if c == 0 else "", title=title, legend_size=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_roc_overlay(runs: Sequence[RunSummary], path: Path) -> list[str]:
    """One ROC panel per class with a curve per classification run; returns the names of the
    runs drawn (runs without ``scores.npz`` are left out)."""
    from hepfpga.train.roc_plot import draw_roc

    loaded = [
        (r, s) for r in runs if r.task == "classification" and (s := _scores(r.folder)) is not None
    ]
    if not loaded:
        raise DataError("no classification run has scores.npz (written by hepfpga run)")
    classes = loaded[0][1][3]
    panels = [f"{name} vs rest" for name in classes]
    fig, axes = _draw_panels(panels)
    for c, name in enumerate(classes):
        for run, (model, scores, labels, run_classes) in loaded:
            if name not in run_classes:
                continue
            index = run_classes.index(name)
            positive = labels == index
            if positive.all() or not positive.any():
                continue
            label = f"{run.name} {run.architecture} {MODELS[model]}"
            draw_roc(axes[0, c], positive, scores[:, index], label)
    _save(fig, axes, panels, path, "background mistag rate")
    return [run.name for run, _ in loaded]


def plot_anomaly_overlay(runs: Sequence[RunSummary], path: Path) -> list[str]:
    """One panel per signal class of the anomaly-detection runs: background acceptance (log)
    against signal efficiency, a curve per run (its background classes against the signal
    class), AUC in the legend; returns the names of the runs drawn."""
    from hepfpga.train.roc_plot import draw_roc

    loaded = [
        (r, s)
        for r in runs
        if r.task == "anomaly_detection" and (s := _anomaly_scores(r)) is not None
    ]
    if not loaded:
        raise DataError("no anomaly-detection run has scores.npz (written by hepfpga run)")
    signals = list(dict.fromkeys(s for r, _ in loaded for s in r.signal_classes))
    panels = [f"{s} vs background" for s in signals]
    fig, axes = _draw_panels(panels)
    for c, signal in enumerate(signals):
        for run, (model, scores, labels, classes) in loaded:
            if signal not in run.signal_classes or signal not in classes:
                continue
            background = np.isin(labels, [classes.index(b) for b in run.background_classes])
            positive = labels == classes.index(signal)
            if not positive.any() or not background.any():
                continue
            truth = np.concatenate([np.zeros(int(background.sum())), np.ones(int(positive.sum()))])
            label = f"{run.name} {run.architecture} {MODELS[model]}"
            draw_roc(
                axes[0, c], truth, np.concatenate([scores[background], scores[positive]]), label
            )
    _save(fig, axes, panels, path, "background acceptance")
    return [run.name for run, _ in loaded]


#: the overlay of each task that has curves, in the order they claim ``--plot``
OVERLAYS: dict[str, Callable[[Sequence[RunSummary], Path], list[str]]] = {
    "classification": plot_roc_overlay,
    "anomaly_detection": plot_anomaly_overlay,
}


def overlay_paths(runs: Sequence[RunSummary], plot: Path) -> dict[str, Path]:
    """Task -> the PNG its overlay goes to: the first task of :data:`OVERLAYS` among ``runs``
    gets ``plot``, the others ``<plot stem>_<task>.png`` beside it; tasks without curves
    (generation) none."""
    tasks = [t for t in OVERLAYS if any(r.task == t for r in runs)]
    return {
        t: plot if i == 0 else plot.with_name(f"{plot.stem}_{t}{plot.suffix or '.png'}")
        for i, t in enumerate(tasks)
    }
