"""ROC curves as the field draws them: signal efficiency on x, background acceptance (mistag
rate) on a log scale on y, the AUC in the legend. One drawing helper for every ROC figure of
a run (classifier, anomaly detection) and of ``hepfpga compare``."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ROC_LINE_STYLES", "draw_roc", "finish_roc_axes"]


def draw_roc(ax: Any, truth: np.ndarray, scores: np.ndarray, label: str, **line: Any) -> float:
    """Draw one ROC curve on ``ax``: signal efficiency (true-positive rate of ``truth``, x)
    against background acceptance (false-positive rate, y); the AUC is appended to ``label``
    in the legend and returned."""
    # deferred: scikit-learn loads slowly
    from sklearn.metrics import auc as area
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(truth, scores)
    value = float(area(fpr, tpr))
    ax.plot(tpr, fpr, label=f"{label} (AUC {value:.3f})", **line)
    return value


def finish_roc_axes(
    ax: Any,
    *,
    ylabel: str = "background mistag rate",
    ymin: float = 1e-3,
    title: str = "",
    legend_columns: int = 1,
    legend_size: float = 7,
) -> None:
    """The common frame of every ROC panel: log-scale background axis from ``ymin`` to 1.05,
    signal efficiency 0..1, grid, legend in the upper left."""
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_ylim(ymin, 1.05)
    ax.set_xlabel("signal efficiency")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend_size, ncol=legend_columns, loc="upper left")
    if title:
        ax.set_title(title)


#: line style per model (float, QKeras, HLS, ...) in overlaid ROC plots
ROC_LINE_STYLES = ("-", "--", ":", "-.")
