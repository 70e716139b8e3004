"""Classifier evaluation as physicists report it: accuracy, per-class ROC curves and AUC.

ROC curves are one-vs-rest: for class ``c`` the score is the predicted probability of ``c``,
signal efficiency (true positive rate) against background efficiency (false positive rate,
the mistag rate). Plots follow the field's convention: signal efficiency on x, background
mistag rate on a log y axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from hepfpga.errors import DataError
from hepfpga.train.roc_plot import ROC_LINE_STYLES, draw_roc, finish_roc_axes

__all__ = ["ClassifierMetrics", "evaluate_classifier", "plot_roc"]


@dataclass(frozen=True)
class ClassifierMetrics:
    """Accuracy (fraction of argmax equal to the label) and one-vs-rest AUC per class."""

    accuracy: float
    auc: dict[str, float]
    n_events: int

    def to_dict(self) -> dict[str, object]:
        return {"accuracy": self.accuracy, "auc": dict(self.auc), "n_events": self.n_events}


def _check(scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> None:
    if scores.ndim != 2 or scores.shape[1] != len(class_names):
        raise DataError(f"expected scores of shape (N, {len(class_names)}), got {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise DataError(f"expected {scores.shape[0]} labels, got shape {labels.shape}")


def evaluate_classifier(
    scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> ClassifierMetrics:
    """Accuracy and per-class AUC of class scores (probabilities or logits) against labels."""
    # deferred: scikit-learn loads slowly
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    _check(scores, labels, class_names)
    accuracy = float(np.mean(np.argmax(scores, axis=1) == labels))
    auc = {}
    for c, name in enumerate(class_names):
        positive = labels == c
        if positive.all() or not positive.any():
            auc[name] = float("nan")
        else:
            auc[name] = float(roc_auc_score(positive, scores[:, c]))
    return ClassifierMetrics(accuracy=accuracy, auc=auc, n_events=int(labels.size))


def plot_roc(
    scores_by_model: Mapping[str, np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path | IO[bytes],
    *,
    title: str = "",
) -> None:
    """Overlay the per-class ROC curves of several models (solid, dashed, dotted...) in one
    PNG: one colour per class, one line style per model, AUC in the legend."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(7, 6))
    for m, (model_name, scores) in enumerate(scores_by_model.items()):
        scores = np.asarray(scores, dtype=np.float64)
        _check(scores, labels, class_names)
        for c, name in enumerate(class_names):
            positive = labels == c
            if positive.all() or not positive.any():
                continue
            draw_roc(
                ax,
                positive,
                scores[:, c],
                f"{name} {model_name}",
                linestyle=ROC_LINE_STYLES[m % len(ROC_LINE_STYLES)],
                color=colours[c % len(colours)],
            )
    finish_roc_axes(ax, title=title, legend_columns=len(scores_by_model))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
