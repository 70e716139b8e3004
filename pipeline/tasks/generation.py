"""The ``generation`` task of a run (:mod:`hepfpga.train.tasks.generation`): its stages and
figures (no ROC curves).

The data stage keeps the jets of ``task.target_class`` (the feature scaling is fitted on its
training jets) and draws the latent vectors the generators are evaluated on (``N(0, 1)``,
fixed by the seed; as many as half of the real test jets): they are the test inputs of the
shared ONNX, firmware and C-simulation stages, which export, convert and verify the
generator. The evaluation stage compares float, QKeras and HLS generated jets with the real
test jets, beside the real-vs-real baseline, and draws the overlay histograms.

Run folder, besides the shared files: ``float_model.h5``/``qkeras_model.h5`` (the
generators), ``float_discriminator.h5``, ``feature_overlays.png``, ``generated.npz`` (the
latent vectors, the real halves and every generated sample, scaled features).

Stage list: the base list with the task's data, float training (the GAN), QAT, ONNX and
evaluation stages; the shared firmware, C-simulation, emulation and hardware stages act on the
generator. It leaves out the BDT and the analysis stages (see :data:`GENERATION`).

Figures: the fidelity of each sample against the real test jets of the class: mean
Wasserstein-1 distance and mean Kolmogorov-Smirnov statistic over the (scaled) features and
the AUC of a classifier telling generated from real jets (0.5: indistinguishable); the
headline is that AUC. The real half-sample baseline is a row of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.deploy.onnx_export import check_onnx, export_onnx
from hepfpga.pipeline.figures import FigureTable, TaskFigures, Value, value
from hepfpga.pipeline.run import MODELS, Check, Run, StageResult, section_as
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.stage_list import Stage
from hepfpga.pipeline.stages import (
    DataResult,
    FloatModelResult,
    OnnxResult,
    QuantizedModelResult,
    VerificationResult,
    load_run_sample,
    prepare_run_inputs,
    split_run_sample,
)
from hepfpga.pipeline.task import RunTask, register_run_task
from hepfpga.quantize.model_io import save_keras_model
from hepfpga.quantize.qat import quantize_model
from hepfpga.train.architectures import get_architecture
from hepfpga.train.architectures.gan import GANConfig, build_gan, fit_gan
from hepfpga.train.dataset import Split
from hepfpga.train.tasks.generation import (
    GenerationConfig,
    compare_samples,
    plot_feature_overlays,
    target_index,
)

__all__ = [
    "GENERATION",
    "GenerationDataResult",
    "GenerationEvaluationResult",
    "generation_data_stage",
    "generation_evaluation_stage",
    "generation_float_stage",
    "generation_onnx_stage",
    "generation_qat_stage",
]

#: the rows of the quality table that are the models' samples
GENERATED = {m: f"{label} generated" for m, label in MODELS.items()}


@dataclass
class GenerationDataResult(DataResult):
    """:class:`DataResult` of a generation run: ``x_test`` holds latent vectors; the real
    test jets of the class are split in halves ``real_a`` (baseline) and ``real_b``."""

    target: int = 0
    real_a: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    real_b: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def report_items(self, run: Run) -> dict[str, Any]:
        items = super().report_items(run)
        items["data"]["target_class"] = self.classes[self.target]
        items["data"]["real_test_halves"] = [len(self.real_a), len(self.real_b)]
        items["data"]["latent_vectors"] = len(self.x_test)
        return items


def _generation_task(run: Run) -> GenerationConfig:
    return section_as(run.config.task, GenerationConfig, "task")


def _gan_config(run: Run) -> GANConfig:
    return section_as(run.config.model, GANConfig, "model")


def generation_data_stage(run: Run) -> GenerationDataResult:
    """The target class's jets, split as for classification, scaled with the scaling fitted
    on its training jets; fixed latent vectors as test inputs."""
    config = run.config
    path, sample = load_run_sample(run)
    target = target_index(_generation_task(run), sample.class_names)
    split = split_run_sample(run, sample)
    split = Split(
        *(
            p.subset(np.flatnonzero(p.labels == target))
            for p in (split.train, split.validation, split.test)
        )
    )
    inputs = prepare_run_inputs(run, split)
    assert inputs.scaler is not None  # the gan takes scaled features (saved as scaler.json)
    half = len(inputs.test) // 2
    real_a, real_b = inputs.test[:half], inputs.test[half : 2 * half]
    latent_dim = _gan_config(run).latent_dim
    z = np.random.default_rng(config.seed).standard_normal((half, latent_dim)).astype(np.float32)
    if config.verification.max_events is not None:
        z = z[: config.verification.max_events]
    return GenerationDataResult(
        sample=sample,
        path=path,
        architecture=get_architecture(config.model.architecture),
        inputs=inputs,
        y_train=split.train.labels,
        y_val=split.validation.labels,
        y_test=np.full(len(z), target),
        x_test=z,
        target=target,
        real_a=real_a,
        real_b=real_b,
    )


@dataclass
class GeneratorFloatResult(FloatModelResult):
    """The float generator (``model``), its discriminator, and the generated test jets."""

    discriminator: Any = None


def generation_float_stage(run: Run) -> GeneratorFloatResult:
    """Train the GAN on the class's training jets; generate from the fixed latent vectors."""
    config = run.config
    data = run.get(GenerationDataResult)
    parts = build_gan(_gan_config(run), data.inputs.input_shape, config.seed)
    fit = fit_gan(
        parts,
        data.inputs.train,
        data.inputs.validation,
        config.training,
        _gan_config(run),
        seed=config.seed,
    )
    save_keras_model(parts["generator"], run.run_dir / "float_model.h5")
    save_keras_model(parts["discriminator"], run.run_dir / "float_discriminator.h5")
    generated = parts["generator"].predict(data.x_test, batch_size=4096, verbose=0)
    return GeneratorFloatResult(
        "float", parts["generator"], fit, generated, None, parts["discriminator"]
    )


def generation_qat_stage(run: Run) -> QuantizedModelResult:
    """Map the generator to QKeras and fine-tune it against the discriminator."""
    config = run.config
    data = run.get(GenerationDataResult)
    floats = run.get(GeneratorFloatResult)
    qgen = quantize_model(floats.model, config.quantization)
    fit = fit_gan(
        {"generator": qgen, "discriminator": floats.discriminator},
        data.inputs.train,
        data.inputs.validation,
        config.quantization,
        _gan_config(run),
        seed=config.seed,
    )
    save_keras_model(qgen, run.run_dir / "qkeras_model.h5")
    generated = qgen.predict(data.x_test, batch_size=4096, verbose=0)
    return QuantizedModelResult("qkeras", qgen, fit, generated, generated)


def generation_onnx_stage(run: Run) -> OnnxResult:
    """Export the QKeras generator (input: latent vectors; output: scaled features, the
    scaler in the metadata) and check it with onnxruntime on the test latent vectors."""
    data = run.get(GenerationDataResult)
    qgen = run.get(QuantizedModelResult).model
    assert data.inputs.scaler is not None
    metadata = {
        "task": run.config.task.name,
        "target_class": data.classes[data.target],
        "inputs": f"latent vectors, {data.x_test.shape[1]} values drawn from N(0, 1)",
        "outputs": "scaled features of one jet; features = outputs * scale + offset (scaler)",
        "scaler": data.inputs.scaler.to_dict(),
    }
    export = export_onnx(
        qgen, run.run_dir / "model.onnx", opset=run.config.onnx.opset, metadata=metadata
    )
    return OnnxResult(export, check_onnx(export, qgen, data.x_test))


@dataclass
class GenerationEvaluationResult(StageResult):
    """The quality table (baseline first) and the overlay plot."""

    rows: dict[str, Any]
    plot: Path

    def report_items(self, run: Run) -> dict[str, Any]:
        selected = run.config.task.selected_metrics()
        table = {name: row.to_dict(selected) for name, row in self.rows.items()}
        n = next(iter(self.rows.values())).n_jets
        lines = [
            f"{n} jets per row against {n} real test jets of the class (scaled features):",
            f"{'vs real test jets':>22}  mean W1   mean KS   classifier AUC",
        ]
        for name, row in self.rows.items():
            lines.append(
                f"{name:>22}  {row.mean_wasserstein:7.4f}  {row.mean_ks:7.4f}  "
                f"{row.classifier_auc:7.4f}"
            )
        return {"generation": {"quality": table, "plot": self.plot.name}, "summary": lines}

    def checks(self, run: Run) -> dict[str, Check]:
        task = _generation_task(run)
        increase = self.rows[GENERATED["qkeras"]].mean_ks - self.rows[GENERATED["float"]].mean_ks
        limit = task.max_mean_ks_increase
        checks = {
            "qkeras_mean_ks_increase": Check(increase, f"<= {limit}", bool(increase <= limit))
        }
        required = task.max_classifier_auc
        auc = self.rows[GENERATED["qkeras"]].classifier_auc
        checks["qkeras_classifier_auc"] = Check(
            auc,
            None if required is None else f"<= {required}",
            True if required is None else bool(auc <= required),
        )
        return checks


def generation_evaluation_stage(run: Run) -> GenerationEvaluationResult:
    """Wasserstein-1, KS and classifier AUC of the real baseline and every generator
    against the real test half B; overlay histograms in physical units."""
    data = run.get(GenerationDataResult)
    names = list(data.sample.feature_names)
    seed = run.config.seed
    samples = {
        "float": run.get(GeneratorFloatResult).probs,
        "qkeras": run.get(QuantizedModelResult).probs,
    }
    verification = run.find(VerificationResult)
    if verification is not None:
        samples["hls"] = verification.hls_probs
    samples = {k: np.asarray(v, dtype=np.float64).reshape(len(v), -1) for k, v in samples.items()}
    rows = {"real (half A), baseline": compare_samples(data.real_a, data.real_b, names, seed=seed)}
    for key, values in samples.items():
        rows[GENERATED[key]] = compare_samples(values, data.real_b, names, seed=seed)
    scaler = data.inputs.scaler
    assert scaler is not None
    physical = {"real": np.concatenate([data.real_a, data.real_b])} | {
        GENERATED[k]: v for k, v in samples.items()
    }
    physical = {
        k: v * np.asarray(scaler.scale) + np.asarray(scaler.offset) for k, v in physical.items()
    }
    plot = run.run_dir / "feature_overlays.png"
    plot_feature_overlays(
        physical,
        names,
        plot,
        title=f"{run.config.name}: {data.classes[data.target]} jets, real vs generated",
    )
    np.savez(
        run.run_dir / "generated.npz",
        latent=data.x_test,
        real_a=data.real_a,
        real_b=data.real_b,
        **samples,
    )
    return GenerationEvaluationResult(rows, plot)


# --- reading the report back --------------------------------------------------------------

#: the columns of the fidelity table: report key -> display name
_FIDELITY = {
    "mean_wasserstein": "mean W1",
    "mean_ks": "mean KS",
    "classifier_auc": "classifier AUC",
}


def _quality(report: RunReport) -> Mapping[str, Mapping[str, Any]]:
    quality = report.section("generation").get("quality")
    if not isinstance(quality, Mapping):
        raise KeyError("generation.quality")
    return quality


def _headline(report: RunReport) -> dict[str, Value]:
    quality = _quality(report)
    return {
        m: value(quality[row].get("classifier_auc"))
        for m, row in GENERATED.items()
        if row in quality
    }


def _tables(report: RunReport) -> list[FigureTable]:
    quality = _quality(report)
    columns = tuple(
        label for key, label in _FIDELITY.items() if any(key in q for q in quality.values())
    )
    rows = {
        sample: {label: value(q.get(key)) for key, label in _FIDELITY.items() if label in columns}
        for sample, q in quality.items()
    }
    return [FigureTable("fidelity against the real test jets of the class", columns, rows)]


def _plots(report: RunReport) -> list[str]:
    plot = report.section("generation").get("plot")
    return [str(plot)] if plot else []


GENERATION = register_run_task(
    RunTask(
        GenerationConfig,
        TaskFigures("classifier AUC", _headline, _tables, _plots),
        replace={
            "data": Stage("data", "loading the jets of the target class", generation_data_stage),
            "float_training": Stage("float_training", "training the GAN", generation_float_stage),
            "qat": Stage(
                "qat", "quantization-aware fine-tuning of the generator", generation_qat_stage
            ),
            "onnx": Stage(
                "onnx", "exporting the generator to ONNX and checking it", generation_onnx_stage
            ),
            "evaluation": Stage(
                "evaluation",
                "generated vs real jets: distances, classifier, plots",
                generation_evaluation_stage,
            ),
        },
        remove={
            "bdt": "the BDT comparison is a classifier trained on every class; a generator "
            "learns the jets of one class",
            "analysis": "the overtraining check and the saliency are per class of a classifier; "
            "a generator's outputs are jet features",
        },
        data_rows={
            "target_class": "generated class",
            "latent_vectors": "latent vectors (test)",
        },
    )
)
