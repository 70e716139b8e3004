"""Anomaly detection: metrics, the on-chip score models and the fits, on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from hepfpga.quantize.qat import QuantizationSpec, quantize_model
from hepfpga.train.architectures.ae import (
    AEConfig,
    DAEConfig,
    build_autoencoder,
    fit_reconstruction,
    reconstruction_score_model,
)
from hepfpga.train.architectures.conv_ae import ConvAEConfig, build_conv_autoencoder
from hepfpga.train.architectures.vae import VAEConfig, build_vae, fit_vae, mu_score_model
from hepfpga.train.config import FitConfig
from hepfpga.train.tasks.anomaly import evaluate_anomaly, trigger_threshold

CLASSES = ("q", "g", "W", "Z", "t")


def test_metrics_on_known_scores() -> None:
    rng = np.random.default_rng(0)
    bg = rng.uniform(0, 1, 1000)  # q and g
    w = rng.uniform(0, 1, 200)  # indistinguishable from background
    t = rng.uniform(2, 3, 200)  # always above every background jet
    scores = np.concatenate([bg, w, t])
    labels = np.concatenate([np.repeat([0, 1], 500), np.full(200, 2), np.full(200, 4)])
    m = evaluate_anomaly(scores[:, None], labels, CLASSES, [0, 1], [2, 4], (0.1, 1e-2, 1e-4))
    assert m.auc["t"] == 1.0 and abs(m.auc["W"] - 0.5) < 0.06
    assert m.efficiency["t"] == {"0.1": 1.0, "0.01": 1.0, "0.0001": None}
    # a uniform signal passes a threshold keeping 10% of the same uniform background ~10%
    assert abs(m.efficiency["W"]["0.1"] - 0.1) < 0.05
    assert m.thresholds["0.1"] == pytest.approx(np.quantile(bg, 0.9))
    assert m.thresholds["0.0001"] is None and m.n_background == 1000
    out = m.to_dict()
    assert "below 1/1000" in out["unresolved_acceptances"]
    assert "auc" not in m.to_dict(("signal_efficiency",))
    assert trigger_threshold(np.arange(101.0), 0.1) == pytest.approx(90.0)


def _x(n: int = 256, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)


def _quantize_like_qkeras(values: np.ndarray, bits: int, integer: int) -> np.ndarray:
    """quantized_bits(bits, integer, alpha=1) in NumPy: round half to even, saturate."""
    step = 2.0 ** (integer + 1 - bits)
    top = 2.0**integer
    return np.clip(np.round(values / step) * step, -top, top - step)


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("architecture", ["ae", "conv_ae"])
def test_reconstruction_score_is_the_sum_of_squared_errors(
    quantized: bool, architecture: str
) -> None:
    if architecture == "ae":
        config = AEConfig(encoder_units=(8,), latent_dim=3)
        parts = build_autoencoder(config, (16,), seed=2)
        x = _x()
    else:
        config = ConvAEConfig(image_pixels=4, filters=(2,))
        parts = build_conv_autoencoder(config, (4, 4, 1), seed=2)
        x = np.random.default_rng(1).uniform(size=(64, 4, 4, 1)).astype(np.float32)
    if quantized:
        parts = {k: quantize_model(v, QuantizationSpec()) for k, v in parts.items()}
    model = reconstruction_score_model(parts, config, quantized)
    recon = parts["autoencoder"].predict(x, verbose=0).astype(np.float64)
    axes = tuple(range(1, x.ndim))
    if quantized:
        reference = _quantize_like_qkeras(x.astype(np.float64), 16, 5)  # input_quant
        error = _quantize_like_qkeras(reference - recon, config.square_bits, config.square_integer)
        expected = np.sum(error**2, axis=axes)
        got = model.predict(x, verbose=0)[:, 0]
        np.testing.assert_array_equal(got, expected)  # exact: float32 holds every value
    else:
        expected = np.sum((x - recon) ** 2, axis=axes)
        got = model.predict(x, verbose=0)[:, 0]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    kinds = [type(layer).__name__ for layer in model.layers if "Input" not in type(layer).__name__]
    assert kinds[-1] == ("QDense" if quantized else "Dense") and "Multiply" in kinds[-3:]
    assert "Conv2DTranspose" not in kinds
    assert len(model.outputs) == 1 and model.output_shape == (None, 1)


@pytest.mark.parametrize("quantized", [False, True])
def test_vae_score_is_the_sum_of_squared_means(quantized: bool) -> None:
    config = VAEConfig(encoder_units=(8,), latent_dim=2)
    parts = build_vae(config, (16,), seed=3)
    if quantized:
        parts = {k: quantize_model(v, QuantizationSpec()) for k, v in parts.items()}
    model = mu_score_model(parts, config, quantized)
    x = _x()
    mu = parts["encoder"].predict(x, verbose=0)[:, :2].astype(np.float64)
    if quantized:
        mu = _quantize_like_qkeras(mu, config.square_bits, config.square_integer)
    got = model.predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(got, np.sum(mu**2, axis=1), rtol=0 if quantized else 1e-5)
    # only the means are computed on chip: mu has latent_dim outputs, no log-variances
    assert model.get_layer("mu").units == 2
    assert model.count_params() < parts["encoder"].count_params()


_FIT = FitConfig(epochs=2, batch_size=64)


def _weights(model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in model.get_weights()])


def test_dae_trains_on_noisy_inputs_and_is_reproducible() -> None:
    x, xv = _x(256, 4), _x(64, 5)
    runs = {}
    for name, config in (
        ("ae", AEConfig(encoder_units=(8,), latent_dim=3)),
        ("dae", DAEConfig(encoder_units=(8,), latent_dim=3, noise_std=0.5)),
        ("dae_again", DAEConfig(encoder_units=(8,), latent_dim=3, noise_std=0.5)),
    ):
        parts = build_autoencoder(config, (16,), seed=6)
        fit = fit_reconstruction(parts, x, xv, _FIT, config, seed=7)
        assert fit.epochs_run == 2 and np.isfinite(fit.best_val_loss)
        runs[name] = _weights(parts["autoencoder"])
    np.testing.assert_array_equal(runs["dae"], runs["dae_again"])
    assert not np.array_equal(runs["ae"], runs["dae"])  # the noise changed the fit


def test_vae_loss_is_reconstruction_plus_weighted_kl() -> None:
    config = VAEConfig(encoder_units=(8,), latent_dim=2, kl_weight=0.5)
    parts = build_vae(config, (16,), seed=8)
    fit = fit_vae(parts, _x(256, 9), _x(64, 10), _FIT, config, seed=11)
    h = fit.history
    for prefix in ("", "val_"):
        np.testing.assert_allclose(
            h[f"{prefix}loss"],
            np.asarray(h[f"{prefix}reconstruction"]) + 0.5 * np.asarray(h[f"{prefix}kl"]),
            rtol=1e-5,
        )
    assert all(k >= 0 for k in h["kl"])
