"""Compare finished runs: one table of architectures and an overlay of their ROC curves.

:func:`load_run` reads a run folder's ``report.json`` (and ``scores.npz`` for the curves);
:func:`format_table` prints, per run, the architecture, its inputs, the parameter count, the
accuracy of the float, QKeras and HLS models, and the firmware's exactness as the run measured
it; a second table gives the one-vs-rest AUC per class for each of the three models.
:func:`plot_roc_overlay` draws one panel per class with one curve per run (the HLS scores when
the run has firmware, else QKeras), each run on its own test jets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import DataError

__all__ = ["MODELS", "RunSummary", "format_table", "load_run", "plot_roc_overlay"]

#: the models of a run, as report.json names them, with their display names
MODELS = {"float": "float", "qkeras": "QKeras", "hls": "HLS"}


@dataclass(frozen=True)
class RunSummary:
    """What the comparison shows of one run (None: the run has no such number)."""

    folder: Path
    name: str
    architecture: str
    representation: str
    parameters: int | None
    status: str
    #: model ("float", "qkeras", "hls") -> test accuracy
    accuracy: dict[str, float]
    #: model -> class -> one-vs-rest AUC
    auc: dict[str, dict[str, float]]
    #: the firmware's exactness against QKeras, in words
    firmware: str
    seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "name": self.name,
            "architecture": self.architecture,
            "representation": self.representation,
            "parameters": self.parameters,
            "status": self.status,
            "accuracy": self.accuracy,
            "auc": self.auc,
            "firmware": self.firmware,
            "seconds": self.seconds,
        }


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
    """The summary of the run in ``folder``; a :class:`DataError` if it holds no readable
    hepfpga report."""
    folder = Path(folder)
    path = folder / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        data = report["data"]
        accuracy = {m: float(report[m]["test"]["accuracy"]) for m in MODELS if m in report}
        auc = {m: dict(report[m]["test"]["auc"]) for m in MODELS if m in report}
    except FileNotFoundError:
        raise DataError(f"{folder}: not a run folder (no report.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a hepfpga run report ({exc!r})") from exc
    architecture = report.get("architecture", {}).get("name", "mlp")  # runs before plugins
    return RunSummary(
        folder=folder,
        name=str(report.get("name", folder.name)),
        architecture=str(architecture),
        representation=str(data.get("representation", "features")),
        parameters=report.get("parameters"),
        status=str(report.get("status", "?")),
        accuracy=accuracy,
        auc=auc,
        firmware=_firmware_exactness(report),
        seconds=report.get("timings_s", {}).get("total"),
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


def format_table(runs: Sequence[RunSummary]) -> str:
    """The comparison as text: the run table, then the AUC table (see the module docstring)."""
    header = ["run", "architecture", "inputs", "params"]
    header += [f"acc {label}" for label in MODELS.values()] + ["firmware vs QKeras", "time"]
    rows = [
        [
            r.name,
            r.architecture,
            r.representation,
            _number(r.parameters, "d"),
            *(_number(r.accuracy.get(m)) for m in MODELS),
            r.firmware,
            f"{r.seconds:.0f} s" if r.seconds is not None else "-",
        ]
        for r in runs
    ]
    classes: list[str] = []
    for r in runs:
        for per_class in r.auc.values():
            classes += [c for c in per_class if c not in classes]
    auc_rows = [
        [r.name, label, *(_number(r.auc[m].get(c)) for c in classes)]
        for r in runs
        for m, label in MODELS.items()
        if m in r.auc
    ]
    lines = _table(header, rows)
    lines += ["", "AUC (one class vs the rest, test jets):"]
    lines += _table(["run", "model", *classes], auc_rows)
    return "\n".join(lines)


def _scores(folder: Path) -> tuple[str, np.ndarray, np.ndarray, list[str]] | None:
    from hepfpga.pipeline_stages import SCORES_FILE

    path = folder / SCORES_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        model = next((m for m in ("hls", "qkeras", "float") if m in data.files), None)
        if model is None:
            return None
        return model, data[model], data["labels"], [str(c) for c in data["class_names"]]


def plot_roc_overlay(runs: Sequence[RunSummary], path: Path) -> list[str]:
    """One ROC panel per class with a curve per run; returns the names of the runs drawn
    (runs without ``scores.npz`` are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import auc as area
    from sklearn.metrics import roc_curve

    loaded = [(r, s) for r in runs if (s := _scores(r.folder)) is not None]
    if not loaded:
        raise DataError("no run has scores.npz (written by hepfpga run); nothing to plot")
    classes = loaded[0][1][3]
    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 4.2), squeeze=False)
    for c, name in enumerate(classes):
        ax = axes[0, c]
        for run, (model, scores, labels, run_classes) in loaded:
            if name not in run_classes:
                continue
            index = run_classes.index(name)
            positive = labels == index
            if positive.all() or not positive.any():
                continue
            fpr, tpr, _ = roc_curve(positive, scores[:, index])
            label = f"{run.name} {run.architecture} {MODELS[model]} ({area(fpr, tpr):.3f})"
            ax.plot(tpr, fpr, label=label)
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_ylim(1e-3, 1.05)
        ax.set_title(f"{name} vs rest")
        ax.set_xlabel("signal efficiency")
        if c == 0:
            ax.set_ylabel("background mistag rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return [run.name for run, _ in loaded]
