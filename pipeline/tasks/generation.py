"""The stages of a ``generation`` run (:mod:`hepfpga.train.tasks.generation`).

The data stage keeps the jets of ``task.target_class`` (the feature scaling is fitted on its
training jets) and draws the latent vectors the generators are evaluated on (``N(0, 1)``,
fixed by the seed; as many as half of the real test jets): they are the test inputs of the
shared ONNX, firmware and C-simulation stages, which export, convert and verify the
generator. The evaluation stage compares float, QKeras and HLS generated jets with the real
test jets, beside the real-vs-real baseline, and draws the overlay histograms.

Run folder, besides the shared files: ``float_model.h5``/``qkeras_model.h5`` (the
generators), ``float_discriminator.h5``, ``feature_overlays.png``, ``generated.npz`` (the
latent vectors, the real halves and every generated sample, scaled features).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga.pipeline.stages import (
    Check,
    DataResult,
    FloatModelResult,
    OnnxResult,
    QuantizedModelResult,
    Run,
    StageResult,
    VerificationResult,
    load_run_sample,
    prepare_run_inputs,
    section_as,
    split_run_sample,
)
from hepfpga.pipeline.tasks.anomaly import optional_shared_stages

if TYPE_CHECKING:
    from hepfpga.train.architectures.gan import GANConfig
    from hepfpga.train.tasks.generation import GenerationConfig

__all__ = [
    "GenerationDataResult",
    "GenerationEvaluationResult",
    "generation_data_stage",
    "generation_evaluation_stage",
    "generation_float_stage",
    "generation_onnx_stage",
    "generation_qat_stage",
    "generation_stages",
]

_LABELS = {"float": "float", "qkeras": "QKeras", "hls": "HLS"}


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
    from hepfpga.train.tasks.generation import GenerationConfig

    return section_as(run.config.task, GenerationConfig, "task")


def _gan_config(run: Run) -> GANConfig:
    from hepfpga.train.architectures.gan import GANConfig

    return section_as(run.config.model, GANConfig, "model")


def generation_data_stage(run: Run) -> GenerationDataResult:
    """The target class's jets, split as for classification, scaled with the scaling fitted
    on its training jets; fixed latent vectors as test inputs."""
    from hepfpga.train.architectures import get_architecture
    from hepfpga.train.dataset import Split
    from hepfpga.train.tasks.generation import target_index

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
    from hepfpga.quantize.model_io import save_keras_model
    from hepfpga.train.architectures.gan import build_gan, fit_gan

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
    from hepfpga.quantize.model_io import save_keras_model
    from hepfpga.quantize.qat import quantize_model
    from hepfpga.train.architectures.gan import fit_gan

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
    from hepfpga.deploy.onnx_export import check_onnx, export_onnx

    data = run.get(GenerationDataResult)
    qgen = run.get(QuantizedModelResult).model
    assert data.inputs.scaler is not None
    metadata = {
        "task": "generation",
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
        increase = self.rows["QKeras generated"].mean_ks - self.rows["float generated"].mean_ks
        limit = task.max_mean_ks_increase
        checks = {
            "qkeras_mean_ks_increase": Check(increase, f"<= {limit}", bool(increase <= limit))
        }
        required = task.max_classifier_auc
        auc = self.rows["QKeras generated"].classifier_auc
        checks["qkeras_classifier_auc"] = Check(
            auc,
            None if required is None else f"<= {required}",
            True if required is None else bool(auc <= required),
        )
        return checks


def generation_evaluation_stage(run: Run) -> GenerationEvaluationResult:
    """Wasserstein-1, KS and classifier AUC of the real baseline and every generator
    against the real test half B; overlay histograms in physical units."""
    from hepfpga.train.tasks.generation import compare_samples, plot_feature_overlays

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
        rows[f"{_LABELS[key]} generated"] = compare_samples(values, data.real_b, names, seed=seed)
    scaler = data.inputs.scaler
    assert scaler is not None
    physical = {"real": np.concatenate([data.real_a, data.real_b])} | {
        f"{_LABELS[k]} generated": v for k, v in samples.items()
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


def generation_stages() -> list[Any]:
    """The stage list of a generation run."""
    from hepfpga.pipeline.runner import STAGES, Stage

    shared = {stage.name: stage for stage in STAGES}
    return [
        Stage("data", "loading the jets of the target class", generation_data_stage),
        shared["preflight"],
        Stage("float_training", "training the GAN", generation_float_stage),
        Stage("qat", "quantization-aware fine-tuning of the generator", generation_qat_stage),
        Stage("onnx", "exporting the generator to ONNX and checking it", generation_onnx_stage),
        shared["firmware"],
        shared["csim"],
        *optional_shared_stages(),
        Stage(
            "evaluation",
            "generated vs real jets: distances, classifier, plots",
            generation_evaluation_stage,
        ),
    ]
