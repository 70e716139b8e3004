"""``anomaly_detection``: learn the background, flag what does not look like it.

The network is trained on background jets only (``task.background``, default the q and g jets
of the built-in sample) and outputs one number per jet, the *anomaly score* (larger: less
background-like). The remaining classes (``task.signals``, default all others: W, Z, t) play
the "new physics" never seen in training. Everything is measured on the held-out test jets:

* ``signal_auc``: area under the ROC curve of test background vs each signal class.
* ``signal_efficiency``: the fraction of each signal class above the threshold that keeps a
  fraction ``a`` of the test background, for each ``a`` in ``task.background_acceptances``
  (1e-2, 1e-3, 1e-4 as trigger people quote them). The threshold is the background score's
  ``1 - a`` quantile (``numpy.quantile``, linear interpolation); with ``n`` background jets an
  acceptance below ``1/n`` cannot be resolved, and is reported as ``null`` with the reason.
* ``score_distribution``: histograms of the score per class (``score_distributions.png``).

The trigger threshold used to compare QKeras with the firmware is the QKeras score's
``1 - task.trigger_acceptance`` quantile on the *validation* background; a jet is accepted
when its score is strictly above it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga.errors import ConfigError, DataError
from hepfpga.registry import Registry
from hepfpga.train.roc_plot import ROC_LINE_STYLES, draw_roc, finish_roc_axes
from hepfpga.train.tasks._base import Metric, Task, TaskConfig, register_metric, register_task
from hepfpga.train.trigger_rates import TriggerRateConfig

if TYPE_CHECKING:
    from tensorflow import keras

    from hepfpga.train.config import ModelConfig
    from hepfpga.train.fit import FitResult

__all__ = [
    "ANOMALY_MODELS",
    "AnomalyDetectionConfig",
    "AnomalyMetrics",
    "AnomalyModel",
    "class_indices",
    "evaluate_anomaly",
    "plot_anomaly_roc",
    "plot_score_distributions",
    "register_anomaly_model",
    "trigger_threshold",
]


@dataclass(frozen=True)
class AnomalyDetectionConfig(TaskConfig):
    """The ``task`` section of an anomaly-detection run (see the module docstring).

    ``background``: classes trained on; ``signals``: classes scored as new physics (empty:
    every class not in ``background``); ``background_acceptances``: fractions of the test
    background kept, at which the signal efficiencies are reported; ``trigger_acceptance``:
    the background fraction the trigger threshold keeps (set on the validation background);
    ``min_identical_decisions``: required fraction of test jets whose trigger decision is the
    same in QKeras and in the firmware (None: only reported); ``max_auc_drop``: float minus
    QKeras AUC allowed for every signal class; ``trigger_rates``: the signal efficiencies at
    fixed acceptances of a (large) background sample through the firmware's bulk emulator
    (:mod:`hepfpga.train.trigger_rates`).
    """

    name: str = "anomaly_detection"
    background: tuple[str, ...] = ("q", "g")
    signals: tuple[str, ...] = ()
    background_acceptances: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    trigger_acceptance: float = 1e-2
    min_identical_decisions: float | None = 1.0
    max_auc_drop: float = 0.05
    trigger_rates: TriggerRateConfig = field(default_factory=TriggerRateConfig)

    def __post_init__(self) -> None:
        TaskConfig.__post_init__(self)
        if not self.background:
            raise ConfigError("expected at least one background class", path="background")
        for i, name in enumerate(self.signals):
            if name in self.background:
                raise ConfigError(
                    f"class '{name}' is both background and signal", path=f"signals[{i}]"
                )
        for i, a in enumerate(self.background_acceptances):
            if not 0.0 < a < 1.0:
                raise ConfigError(
                    f"expected a fraction in (0, 1), got {a!r}", path=f"background_acceptances[{i}]"
                )
        if not 0.0 < self.trigger_acceptance < 1.0:
            raise ConfigError(
                f"expected a fraction in (0, 1), got {self.trigger_acceptance!r}",
                path="trigger_acceptance",
            )
        if self.min_identical_decisions is not None and not (
            0.0 <= self.min_identical_decisions <= 1.0
        ):
            raise ConfigError(
                f"expected a fraction in [0, 1], got {self.min_identical_decisions!r}",
                path="min_identical_decisions",
            )
        if not -1.0 <= self.max_auc_drop <= 1.0:
            raise ConfigError(
                f"expected an AUC difference in [-1, 1], got {self.max_auc_drop!r}",
                path="max_auc_drop",
            )


def class_indices(
    config: AnomalyDetectionConfig, class_names: Sequence[str]
) -> tuple[list[int], list[int]]:
    """Label indices of the background and signal classes; a :class:`ConfigError` at
    ``task.background[i]`` / ``task.signals[i]`` for a class the sample does not have."""
    names = list(class_names)

    def index(name: str, path: str) -> int:
        if name not in names:
            raise ConfigError(
                f"the sample has no class '{name}'; its classes: {', '.join(names)}", path=path
            )
        return names.index(name)

    background = [index(n, f"task.background[{i}]") for i, n in enumerate(config.background)]
    if config.signals:
        signals = [index(n, f"task.signals[{i}]") for i, n in enumerate(config.signals)]
    else:
        signals = [i for i in range(len(names)) if i not in background]
    if not signals:
        raise ConfigError(
            "every class of the sample is background: nothing is left to find",
            path="task.background",
        )
    return background, signals


# --- the anomaly architectures' extra hooks ----------------------------------------------


@dataclass(frozen=True)
class AnomalyModel:
    """What an anomaly-detection architecture adds to its
    :class:`~hepfpga.train.architectures.Architecture`.

    A model is a dict of named *parts*, each a single-chain Keras model (so
    :func:`hepfpga.quantize.quantize_model` maps each to QKeras through its layer mapping):

    * ``build_parts(config, input_shape, seed) -> parts`` (float, untrained);
    * ``fit(parts, x_train, x_val, settings, config, seed) -> FitResult``: trains the parts
      together (the same function fine-tunes the QKeras parts);
    * ``score_model(parts, config, quantized) -> keras.Model``: the *deployed* model, one
      input (the scaled features) and one output of shape ``(1,)``, the anomaly score,
      computed with layers the firmware converts (Dense, Subtract, Multiply, activations);
      with ``quantized`` the values that are squared are first quantized
      (``model.square_bits``) so that QKeras' float32 arithmetic is exact.
    """

    build_parts: Callable[[Any, tuple[int, ...], int], dict[str, keras.Model]]
    fit: Callable[..., FitResult]
    score_model: Callable[[dict[str, keras.Model], Any, bool], keras.Model]
    #: the score, in words (for the report)
    score: str


#: Anomaly hooks by architecture name.
ANOMALY_MODELS: Registry[AnomalyModel] = Registry("anomaly model")


def register_anomaly_model(name: str, model: AnomalyModel) -> AnomalyModel:
    """Register the anomaly hooks of architecture ``name``."""
    return ANOMALY_MODELS.register(name, model)


def anomaly_model(config: ModelConfig) -> AnomalyModel:
    """The hooks of ``config.architecture`` (a ConfigError if it is not an anomaly model)."""
    try:
        return ANOMALY_MODELS[config.architecture]
    except KeyError:
        raise ConfigError(
            f"architecture '{config.architecture}' is not an anomaly-detection model; "
            f"accepted: {', '.join(sorted(ANOMALY_MODELS))}",
            path="model.architecture",
        ) from None


# --- metrics ------------------------------------------------------------------------------


def _scores(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1:
        raise DataError(f"expected one anomaly score per jet, got an array of shape {s.shape}")
    return s


def trigger_threshold(background_scores: np.ndarray, acceptance: float) -> float:
    """The score above which a fraction ``acceptance`` of ``background_scores`` lies: their
    ``1 - acceptance`` quantile (linear interpolation)."""
    s = _scores(background_scores)
    if s.size == 0:
        raise DataError("no background scores to set a threshold on")
    return float(np.quantile(s, 1.0 - acceptance))


@dataclass(frozen=True)
class AnomalyMetrics:
    """Anomaly-detection figures of one model on the test jets (module docstring).

    ``efficiency[signal][str(a)]`` is None when acceptance ``a`` is below
    ``1 / n_background``."""

    auc: dict[str, float]
    efficiency: dict[str, dict[str, float | None]]
    thresholds: dict[str, float | None]
    n_background: int
    n_signal: dict[str, int]

    def to_dict(
        self, metrics: Sequence[str] = ("signal_auc", "signal_efficiency")
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"n_background": self.n_background, "n_signal": dict(self.n_signal)}
        if "signal_auc" in metrics:
            out["auc"] = dict(self.auc)
        if "signal_efficiency" in metrics:
            out["signal_efficiency"] = {k: dict(v) for k, v in self.efficiency.items()}
            out["thresholds"] = dict(self.thresholds)
            unresolved = [a for a, t in self.thresholds.items() if t is None]
            if unresolved:
                out["unresolved_acceptances"] = (
                    f"{', '.join(unresolved)}: below 1/{self.n_background} (one background "
                    "jet of the test set); a larger sample is needed"
                )
        return out


def evaluate_anomaly(
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    background: Sequence[int],
    signals: Sequence[int],
    acceptances: Sequence[float],
) -> AnomalyMetrics:
    """AUC of background vs each signal class and signal efficiencies at fixed background
    acceptances, from one anomaly score per jet (larger: more anomalous)."""
    # deferred: scikit-learn loads slowly
    from sklearn.metrics import roc_auc_score

    s = _scores(scores)
    labels = np.asarray(labels)
    if labels.shape != s.shape:
        raise DataError(f"expected {s.size} labels, got shape {labels.shape}")
    is_bg = np.isin(labels, list(background))
    bg = s[is_bg]
    if bg.size == 0:
        raise DataError("no background jets among the test jets")
    thresholds: dict[str, float | None] = {}
    for a in acceptances:
        thresholds[str(a)] = trigger_threshold(bg, a) if a * bg.size >= 1.0 else None
    auc: dict[str, float] = {}
    efficiency: dict[str, dict[str, float | None]] = {}
    n_signal: dict[str, int] = {}
    for c in signals:
        name = class_names[c]
        sig = s[labels == c]
        n_signal[name] = int(sig.size)
        if sig.size == 0:
            auc[name] = float("nan")
            efficiency[name] = {k: None for k in thresholds}
            continue
        truth = np.concatenate([np.zeros(bg.size), np.ones(sig.size)])
        auc[name] = float(roc_auc_score(truth, np.concatenate([bg, sig])))
        efficiency[name] = {
            k: (None if t is None else float(np.mean(sig > t))) for k, t in thresholds.items()
        }
    return AnomalyMetrics(auc, efficiency, thresholds, int(bg.size), n_signal)


def plot_anomaly_roc(
    scores_by_model: Mapping[str, np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    background: Sequence[int],
    signals: Sequence[int],
    path: Path,
    *,
    title: str = "",
) -> None:
    """Background acceptance (log) against signal efficiency, one colour per signal class,
    one line style per model (float, QKeras, HLS), AUC in the legend."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    is_bg = np.isin(labels, list(background))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(7, 6))
    for m, (model_name, scores) in enumerate(scores_by_model.items()):
        s = _scores(scores)
        for k, c in enumerate(signals):
            sig = s[labels == c]
            if sig.size == 0:
                continue
            draw_roc(
                ax,
                np.concatenate([np.zeros(int(is_bg.sum())), np.ones(sig.size)]),
                np.concatenate([s[is_bg], sig]),
                f"{class_names[c]} {model_name}",
                linestyle=ROC_LINE_STYLES[m % len(ROC_LINE_STYLES)],
                color=colours[k % len(colours)],
            )
    finish_roc_axes(
        ax,
        ylabel="background acceptance",
        ymin=max(1e-4, 0.5 / max(int(is_bg.sum()), 1)),
        title=title,
        legend_columns=len(scores_by_model),
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_score_distributions(
    scores_by_model: Mapping[str, np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    *,
    threshold: float | None = None,
    title: str = "",
) -> None:
    """One panel per model: normalised histograms of the score per class (log y), the
    trigger threshold as a vertical line."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    n = len(scores_by_model)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    for ax, (model_name, scores) in zip(axes[0], scores_by_model.items(), strict=True):
        s = _scores(scores)
        hi = float(np.quantile(s, 0.999)) if s.size else 1.0
        bins = np.linspace(float(s.min()) if s.size else 0.0, max(hi, 1e-9), 50)
        for c, name in enumerate(class_names):
            values = s[labels == c]
            if values.size:
                ax.hist(
                    np.clip(values, bins[0], bins[-1]),
                    bins=bins,
                    histtype="step",
                    density=True,
                    label=name,
                )
        if threshold is not None:
            ax.axvline(threshold, color="k", linestyle="--", label="trigger threshold")
        ax.set_yscale("log")
        ax.set_xlabel(f"anomaly score ({model_name})")
        ax.set_ylabel("jets (normalised)")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


register_task(
    Task(
        "anomaly_detection",
        AnomalyDetectionConfig,
        "unsupervised: trained on background jets only, one anomaly score per jet",
    )
)
for _name, _text in (
    ("signal_auc", "area under the ROC curve of the test background vs each signal class"),
    ("signal_efficiency", "signal efficiency at each of task.background_acceptances"),
    ("score_distribution", "histograms of the anomaly score per class"),
):
    register_metric(Metric(_name, "anomaly_detection", _text))
