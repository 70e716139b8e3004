"""``generation``: fast simulation of the 16 substructure features of one class of jets.

A generator maps latent Gaussian noise ``z`` to the (scaled) features of a jet of
``task.target_class``; it is trained on that class's training jets. Quality is measured on
the held-out real test jets of the class, split in two halves A and B:

* ``wasserstein``: per feature, the Wasserstein-1 distance between generated and real (B)
  values (:func:`scipy.stats.wasserstein_distance`), in units of the scaled features (the
  background-free standardisation fitted on the class's training jets: 1 = one standard
  deviation), and its mean over the features;
* ``ks``: per feature, the two-sample Kolmogorov-Smirnov statistic (:func:`scipy.stats.
  ks_2samp`), the largest difference of the two empirical CDFs (0: identical), and the mean;
* ``classifier_auc``: the ROC AUC of a classifier trained to tell generated from real jets
  (scikit-learn's ``HistGradientBoostingClassifier`` on the 16 features, two-fold
  cross-validated predictions; 0.5: indistinguishable, 1: always told apart);
* ``histograms``: overlay histograms per feature of real, float, QKeras and HLS generated.

Every row of the table has the same number of jets compared, and the first row is the
baseline *real vs real* (A vs B): the distances two finite samples of the same distribution
have, to read the generators' rows against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError, DataError
from hepfpga.train.tasks._base import Metric, Task, TaskConfig, register_metric, register_task

__all__ = [
    "GenerationConfig",
    "GenerationQuality",
    "compare_samples",
    "plot_feature_overlays",
    "target_index",
]


@dataclass(frozen=True)
class GenerationConfig(TaskConfig):
    """The ``task`` section of a generation run: ``target_class`` is the class whose jets are
    learned; ``max_classifier_auc``: required generated-vs-real AUC of the QKeras generator
    (None: only reported); ``max_mean_ks_increase``: QKeras mean KS minus float mean KS
    allowed (the cost of quantization)."""

    name: str = "generation"
    target_class: str = "t"
    max_classifier_auc: float | None = None
    max_mean_ks_increase: float = 0.1

    def __post_init__(self) -> None:
        TaskConfig.__post_init__(self)
        if self.max_classifier_auc is not None and not 0.5 <= self.max_classifier_auc <= 1.0:
            raise ConfigError(
                f"expected an AUC in [0.5, 1], got {self.max_classifier_auc!r}",
                path="max_classifier_auc",
            )
        if not 0.0 <= self.max_mean_ks_increase <= 1.0:
            raise ConfigError(
                f"expected a KS statistic difference in [0, 1], got {self.max_mean_ks_increase!r}",
                path="max_mean_ks_increase",
            )


def target_index(config: GenerationConfig, class_names: Sequence[str]) -> int:
    """The label of ``target_class``; a ConfigError at ``task.target_class`` otherwise."""
    names = list(class_names)
    if config.target_class not in names:
        raise ConfigError(
            f"the sample has no class '{config.target_class}'; its classes: {', '.join(names)}",
            path="task.target_class",
        )
    return names.index(config.target_class)


@dataclass(frozen=True)
class GenerationQuality:
    """One row of the quality table (module docstring)."""

    wasserstein: dict[str, float]
    ks: dict[str, float]
    classifier_auc: float
    n_jets: int

    @property
    def mean_wasserstein(self) -> float:
        return float(np.mean(list(self.wasserstein.values())))

    @property
    def mean_ks(self) -> float:
        return float(np.mean(list(self.ks.values())))

    def to_dict(
        self, metrics: Sequence[str] = ("wasserstein", "ks", "classifier_auc")
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"n_jets": self.n_jets}
        if "wasserstein" in metrics:
            out["mean_wasserstein"] = self.mean_wasserstein
            out["wasserstein"] = dict(self.wasserstein)
        if "ks" in metrics:
            out["mean_ks"] = self.mean_ks
            out["ks"] = dict(self.ks)
        if "classifier_auc" in metrics:
            out["classifier_auc"] = self.classifier_auc
        return out


def _classifier_auc(a: np.ndarray, b: np.ndarray, seed: int) -> float:
    # deferred: scikit-learn loads slowly; optional: threadpoolctl
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    x = np.concatenate([a, b]).astype(np.float64)
    y = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    classifier = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    # one thread: OpenMP threads fighting over a busy machine make this 100x slower
    with threadpool_limits(1):
        p = cross_val_predict(classifier, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def compare_samples(
    generated: np.ndarray, real: np.ndarray, feature_names: Sequence[str], *, seed: int = 0
) -> GenerationQuality:
    """Per-feature Wasserstein-1 and KS statistic, and the generated-vs-real classifier AUC,
    of two samples of jets ``(n, n_features)`` (module docstring)."""
    # deferred: SciPy loads slowly
    from scipy.stats import ks_2samp, wasserstein_distance

    g = np.asarray(generated, dtype=np.float64).reshape(len(generated), -1)
    r = np.asarray(real, dtype=np.float64)
    if g.shape[1] != r.shape[1] or r.shape[1] != len(feature_names):
        raise DataError(
            f"expected samples of {len(feature_names)} features, got {g.shape} and {r.shape}"
        )
    if not np.isfinite(g).all():
        raise DataError("the generated sample has non-finite values")
    w = {f: float(wasserstein_distance(g[:, i], r[:, i])) for i, f in enumerate(feature_names)}
    ks = {f: float(ks_2samp(g[:, i], r[:, i]).statistic) for i, f in enumerate(feature_names)}
    return GenerationQuality(w, ks, _classifier_auc(g, r, seed), len(g))


def plot_feature_overlays(
    samples: Mapping[str, np.ndarray],
    feature_names: Sequence[str],
    path: Path,
    *,
    title: str = "",
) -> None:
    """A grid of one panel per feature: normalised histograms of every sample (the first one,
    real jets, filled; the generated ones as lines) on common bins."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in samples.items()}
    n = len(feature_names)
    cols = 4
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    reference = next(iter(arrays.values()))
    for i, name in enumerate(feature_names):
        ax = axes[i // cols][i % cols]
        lo, hi = np.quantile(reference[:, i], [0.001, 0.999])
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 40)
        for k, (label, values) in enumerate(arrays.items()):
            clipped = np.clip(values[:, i], bins[0], bins[-1])
            if k == 0:
                ax.hist(clipped, bins=bins, density=True, alpha=0.3, label=label)
            else:
                ax.hist(clipped, bins=bins, density=True, histtype="step", label=label)
        ax.set_title(name, fontsize=9)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


register_task(
    Task(
        "generation",
        GenerationConfig,
        "fast simulation: a generator of one class's features from Gaussian noise",
    )
)
for _name, _text in (
    ("wasserstein", "per-feature Wasserstein-1 distance to real test jets (scaled units)"),
    ("ks", "per-feature Kolmogorov-Smirnov statistic against real test jets"),
    ("classifier_auc", "AUC of a classifier telling generated from real jets (0.5: perfect)"),
    ("histograms", "overlay histograms of real and generated features"),
):
    register_metric(Metric(_name, "generation", _text))
