"""The end-to-end run: data -> float model -> QKeras QAT -> ONNX + hls4ml firmware -> report.

:func:`run_pipeline` only composes the stage functions; each can be called alone. Everything is
written into a temporary folder renamed to ``<output_dir>/<name>/`` when complete:

===========================  ===========================================================
``float_model.h5``           trained float Keras model (inputs: scaled features)
``qkeras_model.h5``          quantization-aware trained QKeras model
``scaler.json``              the feature scaling fitted on the training jets
``model.onnx``               the QKeras model exported with tf2onnx (scaler and classes in
                             its metadata)
``firmware/``                the hls4ml project (test bench from the test set, config,
                             README on building it)
``report.json``              every number: data, fits, accuracies, AUCs, HLS vs QKeras,
                             ONNX vs QKeras, checks, versions, timings
``roc.png``                  per-class ROC curves of float, QKeras, HLS (and the BDT)
``scores.npz``               test-set outputs of every model, training-set outputs of
                             float and QKeras (the data behind report.html's plots)
``report.html``              the self-contained report (``hepfpga report RUN`` rebuilds it)
``bdt_firmware/``            with ``bdt.enabled``: conifer's HLS project and C++ emulation
``manifest.json``            inputs with hashes, versions, hashes of every output
===========================  ===========================================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.artifacts import (
    atomic_directory,
    check_destination,
    tool_versions,
    write_json_atomic,
    write_manifest,
)
from hepfpga.config import PipelineConfig, config_to_dict

__all__ = ["RunResult", "run_pipeline"]

log = logging.getLogger("hepfpga")


@dataclass
class RunResult:
    """A finished run: its folder, its report and whether every required check held."""

    run_dir: Path
    report: dict[str, Any]
    passed: bool
    failed_checks: list[str] = field(default_factory=list)


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, message: str) -> Iterator[None]:
        log.info("%s ...", message)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("%s done in %.1f s", message, self.seconds[name])


def _load_data(config: PipelineConfig) -> tuple[Any, Path | None]:
    from hepfpga.train.io import builtin_sample_path, load_sample

    path = config.data.path if config.data.path is not None else builtin_sample_path()
    return load_sample(path), path


def run_pipeline(
    config: PipelineConfig, *, config_path: Path | None = None, overwrite: bool = False
) -> RunResult:
    """Run every stage of ``config`` and return the finished run folder and report."""
    from hepfpga.analysis import analyse_run
    from hepfpga.deploy.onnx_export import check_onnx, export_onnx
    from hepfpga.firmware import compile_project, record_verification, write_project
    from hepfpga.firmware.csim import predict_with_logits
    from hepfpga.firmware.verify import compare_outputs, keras_outputs_with_logits
    from hepfpga.model_io import save_keras_model
    from hepfpga.quantize.qat import quantize_model
    from hepfpga.report_html import write_report_html
    from hepfpga.train.dataset import FeatureScaler, split_sample, stratified_subsample
    from hepfpga.train.evaluate import evaluate_classifier, plot_roc
    from hepfpga.train.fit import fit_classifier
    from hepfpga.train.models import build_model

    destination = Path(config.output_dir) / config.name
    check_destination(destination, overwrite=overwrite)
    timer = _Timer()
    total_start = time.perf_counter()
    firmware_options = config.firmware
    with timer.stage("data", "loading and splitting the jets"):
        sample, data_path = _load_data(config)
        if config.data.max_jets is not None:
            sample = stratified_subsample(sample, config.data.max_jets, config.seed)
        split_cfg = config.data.split
        split = split_sample(
            sample, (split_cfg.train, split_cfg.validation, split_cfg.test), config.seed
        )
        scaler = FeatureScaler.fit(split.train.features, config.data.scaling, sample.feature_names)
        x_train, x_val, x_test = (
            scaler.transform(s.features) for s in (split.train, split.validation, split.test)
        )
        y_train, y_val, y_test = split.train.labels, split.validation.labels, split.test.labels
        if config.verification.max_events is not None:
            x_test, y_test = (
                x_test[: config.verification.max_events],
                y_test[: config.verification.max_events],
            )
    with atomic_directory(destination, overwrite=overwrite) as run_dir:
        scaler.save(run_dir / "scaler.json")
        classes = sample.class_names

        with timer.stage("float_training", "training the float model"):
            float_model = build_model(
                x_train.shape[1], len(classes), config.model, seed=config.seed
            )
            float_fit = fit_classifier(
                float_model, x_train, y_train, x_val, y_val, config.training, seed=config.seed
            )
            save_keras_model(float_model, run_dir / "float_model.h5")
            float_probs = float_model.predict(x_test, batch_size=4096, verbose=0)

        with timer.stage("qat", "quantization-aware training (QKeras)"):
            qmodel = quantize_model(float_model, config.quantization)
            q_fit = fit_classifier(
                qmodel, x_train, y_train, x_val, y_val, config.quantization, seed=config.seed
            )
            save_keras_model(qmodel, run_dir / "qkeras_model.h5")
            q_probs, q_logits = keras_outputs_with_logits(qmodel, x_test)

        with timer.stage("onnx", "exporting to ONNX and checking with onnxruntime"):
            export = export_onnx(
                qmodel,
                run_dir / "model.onnx",
                opset=config.onnx.opset,
                metadata={
                    "class_names": list(classes),
                    "scaler": scaler.to_dict(),
                    "inputs": "scaled features, see scaler",
                },
            )
            onnx_parity = check_onnx(export, qmodel, x_test)

        n_tb = min(config.verification.testbench_events, len(x_test))
        with timer.stage(
            "firmware",
            f"hls4ml conversion ({firmware_options.backend.value}) and C simulation build",
        ):
            project = write_project(
                qmodel,
                firmware_options,
                run_dir / "firmware",
                testbench_inputs=x_test[:n_tb],
                testbench_outputs=q_probs[:n_tb],
            )
            compile_project(project)

        with timer.stage("csim", f"C simulation of {len(x_test)} test jets"):
            hls_probs, hls_logits = predict_with_logits(project, x_test)
            comparison = compare_outputs(q_logits, hls_logits, q_probs, hls_probs)
            record_verification(project, comparison)

        with timer.stage(
            "analysis",
            "overtraining check, saliency, layer types" + (", BDT" if config.bdt.enabled else ""),
        ):
            analysis = analyse_run(
                run_dir,
                config=config,
                classes=tuple(classes),
                feature_names=tuple(sample.feature_names),
                float_model=float_model,
                qmodel=qmodel,
                project=project,
                x_train=x_train,
                y_train=y_train,
                x_test=x_test,
                y_test=y_test,
                probs={"float": float_probs, "qkeras": q_probs, "hls": hls_probs},
            )

        with timer.stage("evaluation", "evaluating accuracies, ROC curves and AUCs"):
            metrics = {
                "float": evaluate_classifier(float_probs, y_test, classes),
                "qkeras": evaluate_classifier(q_probs, y_test, classes),
                "hls": evaluate_classifier(hls_probs, y_test, classes),
            }
            bdt_curves = {} if analysis.bdt_probs is None else {"BDT": analysis.bdt_probs}
            plot_roc(
                {"float": float_probs, "QKeras": q_probs, "HLS": hls_probs, **bdt_curves},
                y_test,
                classes,
                run_dir / "roc.png",
                title=f"{config.name}: {len(y_test)} test jets",
            )

        accuracy_drop = metrics["float"].accuracy - metrics["qkeras"].accuracy
        checks = {
            "hls_logits_bit_exact": {
                "value": comparison.logits_fraction_bit_exact,
                "required": 1.0 if config.verification.require_bit_exact else None,
                "passed": comparison.logits_fraction_bit_exact == 1.0
                or not config.verification.require_bit_exact,
            },
            "onnx_vs_qkeras_max_abs_diff": {
                "value": onnx_parity.max_abs_diff,
                "required": f"<= {config.onnx.tolerance}",
                "passed": onnx_parity.max_abs_diff <= config.onnx.tolerance,
            },
            "qkeras_accuracy_drop": {
                "value": accuracy_drop,
                "required": f"<= {config.verification.max_accuracy_drop}",
                "passed": accuracy_drop <= config.verification.max_accuracy_drop,
            },
        }
        if "bdt" in analysis.sections:
            bdt_check = analysis.sections["bdt"]["verification"]
            checks["bdt_emulation_identical"] = {
                "value": bdt_check["fraction_identical_decisions"],
                "required": 1.0,
                "passed": bdt_check["passed"],
            }
        failed = [name for name, check in checks.items() if not check["passed"]]
        report = {
            "name": config.name,
            "status": "passed" if not failed else "failed",
            "checks": checks,
            "data": {
                "path": str(data_path),
                "n_jets": len(sample),
                "classes": list(classes),
                "features": list(sample.feature_names),
                "split": {"train": len(y_train), "validation": len(y_val), "test": len(y_test)},
                "test_jets_per_class": {c: int(np.sum(y_test == i)) for i, c in enumerate(classes)},
                "scaling": config.data.scaling,
            },
            "float": {"fit": float_fit.to_dict(), "test": metrics["float"].to_dict()},
            "qkeras": {
                "quantization": config_to_dict(config)["quantization"],
                "fit": q_fit.to_dict(),
                "test": metrics["qkeras"].to_dict(),
            },
            "hls": {"test": metrics["hls"].to_dict()},
            "hls_vs_qkeras": comparison.to_dict(),
            "onnx_vs_qkeras": onnx_parity.to_dict(),
            "firmware": {
                "folder": "firmware",
                "options": firmware_options.to_dict(),
                "logits_layer": project.logits_layer,
                "compile_seconds": project.compile_seconds,
                "testbench_events": n_tb,
                "layer_types": analysis.sections["layer_types"],
            },
            "overtraining": analysis.sections["overtraining"],
            "saliency": analysis.sections["saliency"],
            **({"bdt": analysis.sections["bdt"]} if "bdt" in analysis.sections else {}),
            "timings_s": {**timer.seconds, "total": round(time.perf_counter() - total_start, 2)},
            "versions": tool_versions(),
            "config": config_to_dict(config),
        }
        write_json_atomic(run_dir / "report.json", report)
        write_report_html(run_dir)
        write_manifest(
            run_dir,
            inputs={"config": config_path, "data": data_path},
            config=config_to_dict(config),
            extra={"status": report["status"]},
        )
    return RunResult(run_dir=destination, report=report, passed=not failed, failed_checks=failed)
