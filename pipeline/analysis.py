"""The run stages that serve the person reading the report: the BDT next to the DNN, and the
analysis (overtraining check, saliency, per-layer types against profiled ranges).

Both are stages of :data:`hepfpga.pipeline.stage_list.STAGES` (after ``evaluation``)
composing library functions of :mod:`hepfpga.train` (bdt, curves, saliency) and
:func:`hepfpga.firmware.precision.profile_ranges`. They add to ``scores.npz`` (written by the
evaluation stage) what ``report.html`` plots: ``bdt`` (the BDT's test probabilities),
``train_labels``, ``train_float`` and ``train_qkeras`` (training-set outputs, for the
overtraining plot).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepfpga._schema import to_plain
from hepfpga.errors import ConversionError, MissingDependencyError
from hepfpga.firmware.layers.graph import UserNames
from hepfpga.firmware.precision import profile_ranges
from hepfpga.pipeline.run import SCORES_FILE, Check, Run, StageResult, scores_with_method_key
from hepfpga.pipeline.stages import (
    DataResult,
    FirmwareResult,
    FloatModelResult,
    QuantizedModelResult,
    held_training_inputs,
)
from hepfpga.train.bdt import convert_bdt, quantize_features, train_bdt, verify_bdt
from hepfpga.train.curves import score_compatibility
from hepfpga.train.evaluate import evaluate_classifier
from hepfpga.train.saliency import input_saliency

__all__ = ["AnalysisResult", "BdtResult", "analysis_stage", "bdt_stage", "layer_type_table"]

log = logging.getLogger("hepfpga")


def _add_scores(run: Run, arrays: dict[str, np.ndarray]) -> None:
    """Add ``arrays`` to the run's ``scores.npz`` (rewritten whole: npz cannot append)."""
    path = run.run_dir / SCORES_FILE
    existing: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            existing = {k: data[k] for k in data.files}
    np.savez_compressed(path, **existing, **arrays)


# --- DNN vs BDT ---------------------------------------------------------------------------


@dataclass
class BdtResult(StageResult):
    """The BDT's settings, timings, test metrics and its emulation's agreement with it; or why
    there is none (``not_available``)."""

    section: dict[str, Any]
    identical: float | None = None
    passed: bool | None = None

    def report_items(self, run: Run) -> dict[str, Any]:
        return {"bdt": self.section}

    def checks(self, run: Run) -> dict[str, Check]:
        emulation = self.section.get("emulation", {})
        if emulation.get("status") == "not available":
            return {"bdt_emulation_identical": Check(None, 1.0, None, reason=emulation["reason"])}
        if self.passed is None:
            return {}
        return {"bdt_emulation_identical": Check(self.identical, 1.0, self.passed)}


def bdt_stage(run: Run) -> BdtResult | None:
    """With ``bdt.enabled``: gradient-boosted trees on the run's (feature) inputs (the
    training jets of :func:`~hepfpga.pipeline.stages.held_training_inputs`), converted
    with conifer into ``bdt_firmware/`` and verified against scikit-learn on the test jets."""
    settings = run.config.bdt
    if not settings.enabled:
        return None
    data = run.get(DataResult)
    x_test = data.x_test
    if x_test.ndim != 2:
        representation = data.inputs.preprocessing.get("representation")
        reason = (
            f"the BDT takes a flat feature vector; the {representation} representation gives "
            f"inputs of shape {tuple(x_test.shape[1:])}"
        )
        log.warning("no BDT: %s", reason)
        return BdtResult({"status": "not available", "reason": reason})
    # a streamed run: a bounded subsample of the training jets (data.held_train_jets)
    x_train, y_train = held_training_inputs(run)
    bdt = train_bdt(x_train, y_train, settings, seed=run.config.seed)
    probs = bdt.probabilities(quantize_features(x_test, settings))
    _add_scores(run, {"bdt": probs.astype(np.float32)})
    section: dict[str, Any] = {
        "status": "built",
        "config": to_plain(settings),
        "fit_seconds": round(bdt.seconds, 2),
        "train_jets": len(y_train),
        "test": evaluate_classifier(probs, data.y_test, data.classes).to_dict(),
    }
    try:
        emulation = convert_bdt(bdt, run.run_dir / "bdt_firmware")
    except (MissingDependencyError, ConversionError) as exc:
        # conifer is an extra and its emulation needs system headers: the BDT still stands
        # next to the DNN, and the report says why its firmware is missing
        log.warning("BDT firmware not available: %s", exc)
        section["emulation"] = {"status": "not available", "reason": str(exc)}
        return BdtResult(section)
    verification = verify_bdt(bdt, emulation, x_test)
    section |= {
        "emulation_compile_seconds": round(emulation.compile_seconds, 2),
        "hls_project": str(emulation.hls_project.relative_to(run.run_dir)),
        "verification": to_plain(verification) | {"passed": verification.passed},
    }
    return BdtResult(section, verification.fraction_identical_decisions, verification.passed)


# --- overtraining, saliency, layer types -------------------------------------------------------


def layer_type_table(project: Any, x: np.ndarray) -> list[dict[str, Any]]:
    """Per firmware layer: the chosen types (:class:`~hepfpga.firmware.precision.LayerPrecision`)
    and the range of the layer's output on the events ``x`` (the model's inputs); layers
    under the user's names (:class:`~hepfpga.firmware.layers.graph.UserNames`)."""
    ranges = profile_ranges(project.keras_model, x)
    names = UserNames.of(project.keras_model)
    rows = []
    for name, types in project.precision.items():
        row = {"layer": names.name(name), **types.to_dict()}
        row["type_min"], row["type_max"] = types.result.min_value, types.result.max_value
        if name in ranges:
            row["profiled_min"], row["profiled_max"] = ranges[name]
        rows.append(row)
    return rows


@dataclass
class AnalysisResult(StageResult):
    """Train-vs-test KS results (float, QKeras), the float model's saliency, layer types."""

    overtraining: dict[str, Any]
    saliency: dict[str, Any]
    layer_types: list[dict[str, Any]] = field(default_factory=list)

    def report_items(self, run: Run) -> dict[str, Any]:
        items: dict[str, Any] = {"overtraining": self.overtraining, "saliency": self.saliency}
        if self.layer_types:
            items["firmware"] = {"layer_types": self.layer_types}
        return items


def analysis_stage(run: Run) -> AnalysisResult:
    """KS compatibility of training and test scores per class (the training jets of
    :func:`~hepfpga.pipeline.stages.held_training_inputs`), input saliency of the float
    model on the test jets, and the firmware's layer types against the profiled ranges."""
    data = run.get(DataResult)
    models = {"float": run.get(FloatModelResult), "qkeras": run.get(QuantizedModelResult)}
    # a streamed run: a bounded subsample of the training jets (data.held_train_jets)
    x_train, y_train = held_training_inputs(run)
    train_probs = {
        name: np.asarray(r.model.predict(x_train, batch_size=4096, verbose=0))
        for name, r in models.items()
    }
    overtraining = {}
    for name, result in models.items():
        ks = score_compatibility(
            train_probs[name], y_train, result.probs, data.y_test, data.classes
        )
        overtraining[name] = to_plain(ks) | {
            "compatible": ks.compatible,
            "min_p_value": ks.min_p_value,
        }
    features = tuple(data.sample.feature_names)
    flat = data.x_test.ndim == 2 and data.x_test.shape[1] == len(features)
    saliency = input_saliency(
        models["float"].model,
        data.x_test,
        data.y_test,
        data.classes,
        input_names=features if flat else None,
    )
    firmware = run.find(FirmwareResult)
    layers = (
        layer_type_table(firmware.project, firmware.firmware_inputs(data.x_test))
        if firmware is not None and firmware.project is not None
        else []
    )
    _add_scores(
        run,
        scores_with_method_key(
            {"train_labels": y_train}
            | {f"train_{n}": p.astype(np.float32) for n, p in train_probs.items()},
            run.config.quantization.method,
        ),
    )
    return AnalysisResult(overtraining, {"float": saliency.to_dict()}, layers)
