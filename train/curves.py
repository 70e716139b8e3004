"""Learning curves and the overtraining check, as HEP analyses show them.

* Learning curves: loss and accuracy per epoch, training (solid) and validation (dashed), for
  each fit (float, QAT...), with the restored best epoch marked. A validation loss that rises
  while the training loss falls is the picture of overtraining.
* Train-vs-test score compatibility: for each class ``c`` the distribution of the score
  ``p_c`` of the jets *of* class ``c`` (signal) and of the other jets (background) on the
  training set is compared with the same on the test set by the two-sample
  Kolmogorov-Smirnov test (TMVA's overtraining check). A small p-value (< 0.01 by convention
  here) says the classifier scores the jets it was trained on differently from unseen ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from hepfpga.errors import DataError

__all__ = [
    "KS_THRESHOLD",
    "ClassCompatibility",
    "ScoreCompatibility",
    "plot_learning_curves",
    "plot_score_compatibility",
    "score_compatibility",
]

#: p-value below which a class's train and test score distributions count as incompatible
KS_THRESHOLD = 0.01


@dataclass(frozen=True)
class ClassCompatibility:
    """KS statistic (largest distance of the two cumulative distributions) and p-value of the
    train-vs-test score of one class, for its own jets (signal) and the others (background)."""

    signal_statistic: float
    signal_p_value: float
    background_statistic: float
    background_p_value: float

    @property
    def compatible(self) -> bool:
        return min(self.signal_p_value, self.background_p_value) >= KS_THRESHOLD


@dataclass(frozen=True)
class ScoreCompatibility:
    """Per-class KS results of one classifier (training set vs test set)."""

    classes: dict[str, ClassCompatibility]
    n_train: int
    n_test: int
    threshold: float = KS_THRESHOLD

    @property
    def compatible(self) -> bool:
        """True when no class has a p-value below :data:`KS_THRESHOLD`."""
        return all(c.compatible for c in self.classes.values())

    @property
    def min_p_value(self) -> float:
        return min(min(c.signal_p_value, c.background_p_value) for c in self.classes.values())


def _check(scores: np.ndarray, labels: np.ndarray, n_classes: int, what: str) -> None:
    if scores.ndim != 2 or scores.shape[1] != n_classes:
        raise DataError(f"{what}: expected scores of shape (N, {n_classes}), got {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise DataError(f"{what}: expected {scores.shape[0]} labels, got shape {labels.shape}")


def score_compatibility(
    train_scores: np.ndarray,
    train_labels: np.ndarray,
    test_scores: np.ndarray,
    test_labels: np.ndarray,
    class_names: Sequence[str],
) -> ScoreCompatibility:
    """Two-sample KS test of every class's score between the training and the test jets.

    Scores are per-class outputs (probabilities); for class ``c`` the compared values are
    ``scores[:, c]`` of the jets labelled ``c`` (signal) and of the others (background).
    A class without jets in one of the sets gets NaN.
    """
    # deferred: SciPy loads slowly
    from scipy.stats import ks_2samp

    train_scores, test_scores = np.asarray(train_scores), np.asarray(test_scores)
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    _check(train_scores, train_labels, len(class_names), "training set")
    _check(test_scores, test_labels, len(class_names), "test set")

    def ks(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        if a.size == 0 or b.size == 0:
            return float("nan"), float("nan")
        result = ks_2samp(a, b)
        return float(result.statistic), float(result.pvalue)

    classes = {}
    for c, name in enumerate(class_names):
        sig = ks(train_scores[train_labels == c, c], test_scores[test_labels == c, c])
        bkg = ks(train_scores[train_labels != c, c], test_scores[test_labels != c, c])
        classes[name] = ClassCompatibility(sig[0], sig[1], bkg[0], bkg[1])
    return ScoreCompatibility(classes, n_train=len(train_labels), n_test=len(test_labels))


def _pyplot() -> Any:
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, target: Path | IO[bytes], fmt: str | None) -> None:
    fig.tight_layout()
    fig.savefig(target, format=fmt, dpi=110)
    _pyplot().close(fig)


def plot_learning_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    target: Path | IO[bytes],
    *,
    best_epochs: Mapping[str, int] | None = None,
    fmt: str | None = None,
) -> None:
    """Loss and accuracy per epoch of each fit in ``histories`` (Keras history dicts with
    ``loss``, ``val_loss`` and, if present, ``accuracy``, ``val_accuracy``, ``lr``).

    Training: solid lines; validation: dashed; one colour per fit; the best epoch (1-based,
    the one whose weights were restored) marked by a dotted vertical line. A third panel shows
    the learning rate when a history records one (``lr``)."""
    plt = _pyplot()
    has_lr = any("lr" in h for h in histories.values())
    panels = ["loss", "accuracy"] + (["lr"] if has_lr else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, history) in enumerate(histories.items()):
        colour = colours[i % len(colours)]
        for ax, key in zip(axes, panels, strict=True):
            if key not in history:
                continue
            epochs = np.arange(1, len(history[key]) + 1)
            label = "training" if key != "lr" else "learning rate"
            ax.plot(epochs, history[key], color=colour, label=f"{name} {label}")
            if f"val_{key}" in history:
                ax.plot(
                    epochs,
                    history[f"val_{key}"],
                    color=colour,
                    linestyle="--",
                    label=f"{name} validation",
                )
            if best_epochs and name in best_epochs:
                ax.axvline(best_epochs[name], color=colour, linestyle=":", alpha=0.7)
    for ax, key in zip(axes, panels, strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel({"lr": "learning rate"}.get(key, key))
        if key == "lr":
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        # a panel no fit recorded (an autoencoder's accuracy) stays without a legend:
        # matplotlib warns on an empty one
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    _save(fig, target, fmt)


def plot_score_compatibility(
    train_scores: np.ndarray,
    train_labels: np.ndarray,
    test_scores: np.ndarray,
    test_labels: np.ndarray,
    class_names: Sequence[str],
    target: Path | IO[bytes],
    *,
    result: ScoreCompatibility | None = None,
    fmt: str | None = None,
) -> None:
    """TMVA's overtraining plot, one panel per class: normalised histograms of the class
    score for signal (its own jets) and background, training as filled areas and test as
    points, with the KS p-values in the title."""
    plt = _pyplot()
    result = result or score_compatibility(
        train_scores, train_labels, test_scores, test_labels, class_names
    )
    n = len(class_names)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    bins = np.linspace(0.0, 1.0, 26)
    centres = 0.5 * (bins[1:] + bins[:-1])
    for c, (ax, name) in enumerate(zip(axes[0], class_names, strict=True)):
        for selector, colour, label in (
            (np.equal, "tab:blue", "signal"),
            (np.not_equal, "tab:red", "background"),
        ):
            train = train_scores[selector(train_labels, c), c]
            test = test_scores[selector(test_labels, c), c]
            ax.hist(
                train, bins=bins, density=True, alpha=0.35, color=colour, label=f"{label} train"
            )
            counts, _ = np.histogram(test, bins=bins, density=True)
            ax.plot(centres, counts, "o", markersize=3, color=colour, label=f"{label} test")
        ks = result.classes[name]
        ax.set_title(
            f"{name}: KS p sig {ks.signal_p_value:.2g}, bkg {ks.background_p_value:.2g}",
            fontsize=8,
        )
        ax.set_xlabel(f"score {name}")
        ax.set_yscale("log")
        if c == 0:
            ax.legend(fontsize=6)
    _save(fig, target, fmt)
