"""Generation: the quality measures, the GAN fit and the generation section's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import parse_config
from hepfpga.train.architectures.gan import GANConfig, build_gan, fit_gan
from hepfpga.train.config import FitConfig
from hepfpga.train.tasks.generation import GenerationConfig, compare_samples, target_index

NAMES = [f"f{i}" for i in range(16)]


def test_quality_measures_separate_same_from_shifted() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16))
    same = compare_samples(rng.normal(size=(300, 16)), real, NAMES, seed=1)
    shifted = rng.normal(size=(300, 16))
    shifted[:, 3] += 1.5
    far = compare_samples(shifted, real, NAMES, seed=1)
    assert abs(same.classifier_auc - 0.5) < 0.1 and far.classifier_auc > 0.8
    # W1 of two unit Gaussians 1.5 apart is 1.5; KS is 2 * Phi(0.75) - 1 = 0.55
    assert far.wasserstein["f3"] == pytest.approx(1.5, abs=0.2)
    assert far.ks["f3"] == pytest.approx(0.547, abs=0.1)
    assert same.ks["f3"] < 0.15 and same.mean_wasserstein < 0.2
    assert set(far.to_dict(("ks",))) == {"n_jets", "mean_ks", "ks"}


def test_gan_fit_records_both_losses() -> None:
    config = GANConfig(latent_dim=3, generator_units=(8,), discriminator_units=(8,))
    parts = build_gan(config, (16,), seed=1)
    x = np.random.default_rng(2).normal(size=(128, 16)).astype(np.float32)
    fit = fit_gan(parts, x, x[:32], FitConfig(epochs=2, batch_size=32), config, seed=3)
    assert fit.epochs_run == fit.best_epoch == 2
    assert {"d_loss", "g_loss", "val_d_loss", "val_g_loss"} <= set(fit.history)
    assert json.dumps(fit.to_dict())  # finite, strict JSON
    assert parts["generator"].output_shape == (None, 16)


@pytest.mark.parametrize(
    ("data", "path", "word"),
    [
        ({"task": "generation"}, "model.architecture", "gan"),
        (
            {"task": "anomaly_detection", "model": {"architecture": "gan"}},
            "model.architecture",
            "generation model",
        ),
        (
            {
                "task": {"name": "generation", "metrics": ["signal_auc"]},
                "model": {"architecture": "gan"},
            },
            "task.metrics[0]",
            "anomaly_detection metric",
        ),
        (
            {"task": "generation", "model": {"architecture": "gan", "label_smoothing": 0.6}},
            "model.label_smoothing",
            "[0, 0.5)",
        ),
        (
            {
                "task": {"name": "generation", "max_classifier_auc": 0.3},
                "model": {"architecture": "gan"},
            },
            "task.max_classifier_auc",
            "[0.5, 1]",
        ),
    ],
)
def test_bad_generation_configs(data: dict, path: str, word: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.path == path and word in str(info.value), str(info.value)


def test_unknown_target_class() -> None:
    with pytest.raises(ConfigError) as info:
        target_index(GenerationConfig(target_class="top"), ("q", "g", "W", "Z", "t"))
    assert info.value.path == "task.target_class" and "q, g, W, Z, t" in str(info.value)
