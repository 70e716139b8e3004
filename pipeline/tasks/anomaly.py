"""The ``anomaly_detection`` task of a run (:mod:`hepfpga.train.tasks.anomaly`): its stages,
figures, ROC section and compare overlay.

The data stage keeps only background jets for training and validation (the feature scaling
is fitted on them) and the background and signal classes for the test; the float and QAT
stages fit the architecture's parts through its :class:`~hepfpga.train.tasks.anomaly.
AnomalyModel` hooks and keep the *score model* as the run's model, so the ONNX, firmware and
C-simulation stages of the classification run (:mod:`hepfpga.pipeline.stages`) export,
convert and verify the score itself; the evaluation stage reports AUC per signal class,
signal efficiencies at fixed background acceptances and the trigger decisions of QKeras and
the firmware at one threshold.

Run folder, besides the classification run's files: ``float_<part>.h5`` and
``qkeras_<part>.h5`` (the trained parts, e.g. the VAE's decoder), ``float_model.h5`` and
``qkeras_model.h5`` (the score models, what ``model.onnx`` and ``firmware/`` hold),
``roc.png`` (background acceptance vs signal efficiency), ``score_distributions.png``,
``scores.npz`` (test labels and the scores of every model).

Stage list: the base list with the task's data, float training, QAT and evaluation stages; the
shared ONNX, firmware, C-simulation, emulation and hardware stages act on the score model. It
leaves out the BDT and the analysis stages (see :data:`ANOMALY_DETECTION`).

Figures: the AUC of the background classes against each signal class (the headline: its mean
over the signal classes), and the signal efficiency at each background acceptance the run
measured on the test jets (None where the acceptance is below one background jet), then the
firmware's signal efficiencies at ``task.trigger_rates.acceptances`` of a large background
sample with their uncertainties (the ``trigger_rates`` stage of
:mod:`hepfpga.pipeline.emulation`; None with the reason where the sample cannot resolve the
acceptance). ``hepfpga compare`` overlays
background acceptance (log) against signal efficiency, one panel per signal class.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import DataError
from hepfpga.pipeline.emulation import trigger_rate_tables
from hepfpga.pipeline.figures import FigureTable, TaskFigures, Value, columns, mean, value
from hepfpga.pipeline.html import figure, note
from hepfpga.pipeline.run import MODELS, SCORES_FILE, Check, Run, StageResult, section_as
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.stage_list import Stage
from hepfpga.pipeline.stages import (
    DataResult,
    FloatModelResult,
    QuantizedModelResult,
    VerificationResult,
    build_data_result,
    load_run_sample,
    split_run_sample,
)
from hepfpga.pipeline.summary import RunSummary, curve_model, draw_panels, save_panels
from hepfpga.pipeline.task import RunTask, register_run_task
from hepfpga.quantize.model_io import save_keras_model
from hepfpga.quantize.qat import quantize_model
from hepfpga.train.dataset import Split, stratified_subsample
from hepfpga.train.roc_plot import draw_roc
from hepfpga.train.tasks.anomaly import (
    AnomalyDetectionConfig,
    anomaly_model,
    class_indices,
    evaluate_anomaly,
    plot_anomaly_roc,
    plot_score_distributions,
    trigger_threshold,
)

__all__ = [
    "ANOMALY_DETECTION",
    "AnomalyDataResult",
    "AnomalyEvaluationResult",
    "anomaly_data_stage",
    "anomaly_evaluation_stage",
    "anomaly_float_stage",
    "anomaly_qat_stage",
    "plot_anomaly_overlay",
]


@dataclass
class AnomalyDataResult(DataResult):
    """:class:`DataResult` of an anomaly run: training/validation hold background only."""

    background: list[int] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)

    def report_items(self, run: Run) -> dict[str, Any]:
        items = super().report_items(run)
        items["data"]["background_classes"] = [self.classes[i] for i in self.background]
        items["data"]["signal_classes"] = [self.classes[i] for i in self.signals]
        items["data"]["trained_on"] = "background jets only"
        return items

    def onnx_metadata(self, run: Run) -> dict[str, Any]:
        """The model gives one anomaly score per jet, not a probability per class: the
        metadata names the score and the background and signal classes instead of
        ``class_names``."""
        metadata = super().onnx_metadata(run)
        del metadata["class_names"]
        metadata["task"] = run.config.task.name
        metadata["outputs"] = f"anomaly score, larger is more anomalous: {_score_text(run)}"
        metadata["background_classes"] = [self.classes[i] for i in self.background]
        metadata["signal_classes"] = [self.classes[i] for i in self.signals]
        return metadata


def _anomaly_task(run: Run) -> AnomalyDetectionConfig:
    return section_as(run.config.task, AnomalyDetectionConfig, "task")


def anomaly_data_stage(run: Run) -> AnomalyDataResult:
    """Load and split the jets (stratified, as for classification), keep background jets in
    training and validation, background and signal jets in the test, and build the inputs
    (scaling fitted on the background training jets)."""
    config = run.config
    path, sample = load_run_sample(run)
    background, signals = class_indices(_anomaly_task(run), sample.class_names)
    split = split_run_sample(run, sample)

    def keep(part: Any, classes: list[int]) -> Any:
        return part.subset(np.flatnonzero(np.isin(part.labels, classes)))

    test = keep(split.test, background + signals)
    if config.verification.max_events is not None:
        # the jets are stored class by class: a plain head of the test set would miss classes
        test = stratified_subsample(test, config.verification.max_events, config.seed)
    split = Split(keep(split.train, background), keep(split.validation, background), test)
    return build_data_result(
        run, path, sample, split, AnomalyDataResult, background=background, signals=signals
    )


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=4096, verbose=0), dtype=np.float64)


def _save_parts(run: Run, parts: dict[str, Any], prefix: str) -> None:

    for name, model in parts.items():
        save_keras_model(model, run.run_dir / f"{prefix}_{name}.h5")


@dataclass
class AnomalyFloatResult(FloatModelResult):
    """The float parts and score model; ``probs`` holds the test scores ``(N, 1)``."""

    parts: dict[str, Any] = field(default_factory=dict)
    validation_scores: np.ndarray | None = None


@dataclass
class AnomalyQuantizedResult(QuantizedModelResult):
    """The QKeras parts (fine-tuned) and score model; ``probs`` and ``logits`` hold the test
    scores (the score model's output is what the firmware is compared on)."""

    parts: dict[str, Any] = field(default_factory=dict)
    validation_scores: np.ndarray | None = None


def anomaly_float_stage(run: Run) -> AnomalyFloatResult:
    """Build and fit the architecture's float parts on background jets; the float score
    model gives the test and validation scores."""
    config = run.config
    data = run.get(DataResult)
    hooks = anomaly_model(config.model)
    parts = hooks.build_parts(config.model, data.inputs.input_shape, config.seed)
    fit = hooks.fit(
        parts,
        data.inputs.train,
        data.inputs.validation,
        config.training,
        config.model,
        seed=config.seed,
    )
    _save_parts(run, parts, "float")
    model = hooks.score_model(parts, config.model, False)
    save_keras_model(model, run.run_dir / "float_model.h5")
    return AnomalyFloatResult(
        "float",
        model,
        fit,
        _predict(model, data.x_test),
        parts=parts,
        validation_scores=_predict(model, data.inputs.validation),
    )


def anomaly_qat_stage(run: Run) -> AnomalyQuantizedResult:
    """Map every float part to QKeras (:func:`~hepfpga.quantize.quantize_model`), fine-tune
    them together, and build the QKeras score model (the deployed model)."""
    config = run.config
    data = run.get(DataResult)
    hooks = anomaly_model(config.model)
    parts = run.get(AnomalyFloatResult).parts
    qparts = {name: quantize_model(part, config.quantization) for name, part in parts.items()}
    fit = hooks.fit(
        qparts,
        data.inputs.train,
        data.inputs.validation,
        config.quantization,
        config.model,
        seed=config.seed,
    )
    _save_parts(run, qparts, "qkeras")
    model = hooks.score_model(qparts, config.model, True)
    save_keras_model(model, run.run_dir / "qkeras_model.h5")
    scores = _predict(model, data.x_test)
    return AnomalyQuantizedResult(
        "qkeras",
        model,
        fit,
        scores,
        scores,
        parts=qparts,
        validation_scores=_predict(model, data.inputs.validation),
    )


@dataclass
class AnomalyEvaluationResult(StageResult):
    """Anomaly metrics of every model, the trigger threshold and decisions, the plots."""

    metrics: dict[str, Any]
    threshold: float
    accepted: dict[str, float]
    identical_decisions: float | None
    plots: list[Path]

    def report_items(self, run: Run) -> dict[str, Any]:
        task = _anomaly_task(run)
        selected = task.selected_metrics()
        items: dict[str, Any] = {
            name: {"test": m.to_dict(selected)} for name, m in self.metrics.items()
        }
        data = run.get(DataResult)
        hooks_score = _score_text(run)
        items["anomaly"] = {
            "score": hooks_score,
            "trigger": {
                "acceptance": task.trigger_acceptance,
                "threshold": self.threshold,
                "threshold_from": "QKeras scores of the validation background",
                "accepted_test_fraction": self.accepted,
                "identical_decisions_qkeras_hls": self.identical_decisions,
            },
            "plots": [p.name for p in self.plots],
        }
        items["summary"] = _summary(self, [data.classes[i] for i in getattr(data, "signals", [])])
        return items

    def checks(self, run: Run) -> dict[str, Check]:
        task = _anomaly_task(run)
        drop = max(
            self.metrics["float"].auc[k] - self.metrics["qkeras"].auc[k]
            for k in self.metrics["float"].auc
        )
        limit = task.max_auc_drop
        required = task.min_identical_decisions
        checks = {"qkeras_signal_auc_drop": Check(drop, f"<= {limit}", bool(drop <= limit))}
        if self.identical_decisions is None:
            checks["identical_trigger_decisions"] = Check(
                None, required, None, reason="no firmware for this run"
            )
        else:
            checks["identical_trigger_decisions"] = Check(
                self.identical_decisions,
                None if required is None else f">= {required}",
                None if required is None else bool(self.identical_decisions >= required),
            )
        return checks


def _score_text(run: Run) -> str:

    return anomaly_model(run.config.model).score


def _summary(result: AnomalyEvaluationResult, signals: list[str]) -> list[str]:
    lines = []
    for name, m in result.metrics.items():
        aucs = "  ".join(f"{s} {m.auc[s]:.3f}" for s in signals)
        first = next(iter(m.thresholds))
        eff = "  ".join(
            f"{s} {m.efficiency[s][first]:.3f}" if m.efficiency[s][first] is not None else f"{s} -"
            for s in signals
        )
        lines.append(f"{MODELS[name]:>6}: AUC {aucs} | signal efficiency at {first}: {eff}")
    lines.append(
        f"trigger threshold {result.threshold:.6g}; accepted test fraction "
        + "  ".join(f"{MODELS[k]} {v:.4f}" for k, v in result.accepted.items())
    )
    if result.identical_decisions is not None:
        lines.append(f"identical trigger decisions QKeras vs HLS: {result.identical_decisions:.2%}")
    return lines


def anomaly_evaluation_stage(run: Run) -> AnomalyEvaluationResult:
    """Metrics of the float, QKeras and (if built) HLS scores on the test jets; the trigger
    threshold from the QKeras validation scores, and the fraction of test jets with the same
    decision in QKeras and HLS; ROC and score-distribution plots."""
    config = run.config
    task = _anomaly_task(run)
    data = run.get(AnomalyDataResult)
    qkeras = run.get(AnomalyQuantizedResult)
    scores = {"float": run.get(AnomalyFloatResult).probs, "qkeras": qkeras.probs}
    verification = run.find(VerificationResult)
    if verification is not None:
        scores["hls"] = np.asarray(verification.hls_probs, dtype=np.float64).reshape(-1, 1)
    flat = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()}
    metrics = {
        k: evaluate_anomaly(
            v,
            data.y_test,
            data.classes,
            data.background,
            data.signals,
            task.background_acceptances,
        )
        for k, v in flat.items()
    }
    assert qkeras.validation_scores is not None
    threshold = trigger_threshold(qkeras.validation_scores, task.trigger_acceptance)
    # the threshold is the QKeras model's: it applies to the deployed scores only
    accepted = {k: float(np.mean(v > threshold)) for k, v in flat.items() if k != "float"}
    identical = (
        float(np.mean((flat["qkeras"] > threshold) == (flat["hls"] > threshold)))
        if "hls" in flat
        else None
    )
    title = f"{config.name} ({data.architecture.name}): {len(data.y_test)} test jets"
    labelled = {MODELS[k]: v for k, v in flat.items()}
    roc = run.run_dir / "roc.png"
    plot_anomaly_roc(
        labelled, data.y_test, data.classes, data.background, data.signals, roc, title=title
    )
    dist = run.run_dir / "score_distributions.png"
    plot_score_distributions(
        labelled, data.y_test, data.classes, dist, threshold=threshold, title=title
    )
    np.savez(run.run_dir / "scores.npz", labels=data.y_test, **flat)
    return AnomalyEvaluationResult(metrics, threshold, accepted, identical, [roc, dist])


# --- reading the report back --------------------------------------------------------------


def _headline(report: RunReport) -> dict[str, Value]:
    return {
        m: mean([value(v) for v in test.get("auc", {}).values()])
        for m, test in report.test_figures().items()
    }


def _tables(report: RunReport) -> list[FigureTable]:
    tests = report.test_figures()
    tables = []
    signals = columns(test.get("auc", {}) for test in tests.values())
    if signals:
        rows = {
            MODELS[m]: {s: value(test["auc"].get(s)) for s in signals}
            for m, test in tests.items()
            if "auc" in test
        }
        tables.append(FigureTable("AUC (background vs each signal class)", signals, rows))
    efficiencies = {m: test["signal_efficiency"] for m, test in tests.items()}
    efficiencies = {m: e for m, e in efficiencies.items() if isinstance(e, Mapping)}
    signals = columns(efficiencies.values())
    acceptances = columns(per_signal for e in efficiencies.values() for per_signal in e.values())
    for acceptance in sorted(acceptances, key=float, reverse=True):
        rows = {
            MODELS[m]: {s: value(e.get(s, {}).get(acceptance)) for s in signals}
            for m, e in efficiencies.items()
        }
        tables.append(
            FigureTable(f"signal efficiency at background acceptance {acceptance}", signals, rows)
        )
    return tables + trigger_rate_tables(report)


def _plots(report: RunReport) -> list[str]:
    plots = report.section("anomaly").get("plots", [])
    return [str(p) for p in plots if p != "roc.png"]


def _roc_section(report: RunReport, models: Mapping[str, np.ndarray], labels: np.ndarray) -> str:
    classes = list(report.classes)
    data = report.data
    background = [classes.index(c) for c in data.get("background_classes", []) if c in classes]
    signals = [classes.index(c) for c in data.get("signal_classes", []) if c in classes]
    if not background or not signals:
        return note("report.json names no background and signal classes: no curves to draw")

    def draw(buffer: io.BytesIO) -> None:
        with tempfile.TemporaryDirectory(prefix="hepfpga-report-") as tmp:
            path = Path(tmp) / "roc.png"
            plot_anomaly_roc(models, labels, classes, background, signals, path)
            buffer.write(path.read_bytes())

    return (
        "<p>Background acceptance against signal efficiency, background classes against each "
        "signal class, one line style per model.</p>" + figure(draw, "anomaly ROC curves")
    )


def _anomaly_scores(run: RunSummary) -> tuple[str, np.ndarray, np.ndarray, list[str]] | None:
    """(model, one score per jet, labels, class names) of an anomaly run's ``scores.npz``."""
    path = run.folder / SCORES_FILE
    classes = list(run.classes)
    if not path.is_file() or not classes:
        return None
    with np.load(path, allow_pickle=False) as data:
        model = curve_model(data.files)
        if model is None:
            return None
        return model, np.asarray(data[model]).reshape(-1), data["labels"], classes


def plot_anomaly_overlay(runs: Sequence[RunSummary], path: Path) -> list[str]:
    """One panel per signal class of the anomaly-detection runs: background acceptance (log)
    against signal efficiency, a curve per run (its background classes against the signal
    class), AUC in the legend; returns the names of the runs drawn."""
    loaded = [(r, s) for r in runs if (s := _anomaly_scores(r)) is not None]
    if not loaded:
        raise DataError("no anomaly-detection run has scores.npz (written by hepfpga run)")
    signals = list(dict.fromkeys(s for r, _ in loaded for s in r.signal_classes))
    panels = [f"{s} vs background" for s in signals]
    fig, axes = draw_panels(panels)
    for c, signal in enumerate(signals):
        for run, (model, scores, labels, classes) in loaded:
            if signal not in run.signal_classes or signal not in classes:
                continue
            background = np.isin(labels, [classes.index(b) for b in run.background_classes])
            positive = labels == classes.index(signal)
            if not positive.any() or not background.any():
                continue
            truth = np.concatenate([np.zeros(int(background.sum())), np.ones(int(positive.sum()))])
            label = f"{run.name} {run.architecture} {run.model_label(model)}"
            draw_roc(
                axes[0, c], truth, np.concatenate([scores[background], scores[positive]]), label
            )
    save_panels(fig, axes, panels, path, "background acceptance")
    return [run.name for run, _ in loaded]


ANOMALY_DETECTION = register_run_task(
    RunTask(
        AnomalyDetectionConfig,
        TaskFigures("mean signal AUC", _headline, _tables, _plots),
        replace={
            "data": Stage(
                "data", "loading the jets; background only for training", anomaly_data_stage
            ),
            "float_training": Stage(
                "float_training", "training the float model on background", anomaly_float_stage
            ),
            "qat": Stage("qat", "quantization-aware training ({method})", anomaly_qat_stage),
            "evaluation": Stage(
                "evaluation", "anomaly metrics, trigger decisions, plots", anomaly_evaluation_stage
            ),
        },
        remove={
            "bdt": "the BDT comparison is a classifier trained on every class; an anomaly "
            "detector sees background jets only",
            "analysis": "the overtraining check and the saliency are per class of a classifier; "
            "an anomaly score is one value per jet",
        },
        roc=_roc_section,
        overlay=plot_anomaly_overlay,
        data_rows={
            "background_classes": "background classes",
            "signal_classes": "signal classes (anomalies)",
            "trained_on": "trained on",
        },
    )
)
