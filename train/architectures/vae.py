"""``vae``: a variational autoencoder on the 16 substructure features whose *encoder* is
deployed, scoring ``sum_k mu_k**2`` as the CMS Level-1 anomaly trigger AXOL1TL does
(arXiv:2411.19506).

Parts (two chains, each mapped to QKeras by :func:`hepfpga.quantize.quantize_model`):

* ``encoder``: ``features -> enc_1, enc_1_relu, ... -> latent_params`` (linear, ``2 *
  latent_dim`` outputs: the means ``mu`` then the log-variances ``log sigma**2``);
* ``decoder``: ``z -> dec_1, dec_1_relu, ... -> reconstruction`` (linear), mirroring the
  encoder's widths.

Loss per jet (averaged over a batch): ``sum_i (x_i - x_hat_i)**2 + kl_weight * KL`` with
``KL = 0.5 * sum_k (mu_k**2 + sigma_k**2 - log sigma_k**2 - 1)``, the divergence of the
encoder's Gaussian from the unit Gaussian; ``z = mu + sigma * eps`` with ``eps ~ N(0, 1)``
drawn afresh for every jet in training, ``z = mu`` in validation. ``kl_weight = 1`` is the
usual evidence lower bound of a unit-variance Gaussian decoder up to a factor 2.

Deployed *score model*: the encoder's layers up to a Dense ``mu`` holding the mean half of
``latent_params`` (the log-variances are not computed on chip), then
``score = sum_k mu_k**2`` through ``mu_quant`` (QKeras: ``quantized_bits(square_bits,
square_integer, alpha=1)``), ``Multiply`` and a Dense of fixed ones, as in
:mod:`hepfpga.train.architectures.ae` (bit-exact for the same reasons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hepfpga.reproducibility import seed_everything
from hepfpga.train.architectures._base import Architecture, register_architecture
from hepfpga.train.architectures._tracked import fit_tracked, tracked_model
from hepfpga.train.architectures.ae import (
    ScoreBits,
    _chain,
    _early_stopping,
    _finish,
    fit_result,
    sum_of_squares,
)
from hepfpga.train.config import DataConfig, check_widths, positive
from hepfpga.train.optim import build_optimizer, schedule_callbacks
from hepfpga.train.representations import Features
from hepfpga.train.tasks.anomaly import AnomalyModel, register_anomaly_model

if TYPE_CHECKING:
    from tensorflow import keras

    from hepfpga.train.config import FitConfig
    from hepfpga.train.fit import FitResult

__all__ = ["VAEConfig", "build_vae", "fit_vae", "mu_score_model"]


@dataclass(frozen=True)
class VAEConfig(ScoreBits):
    """Encoder ``features -> encoder_units... -> 2 * latent_dim``, mirrored decoder, ReLU
    after every hidden layer; ``kl_weight`` multiplies the KL term of the loss."""

    architecture: str = "vae"
    encoder_units: tuple[int, ...] = (32, 16)
    latent_dim: int = 3
    kl_weight: float = 1.0
    activation: Literal["relu"] = "relu"
    l2: float = 0.0
    representation: Literal["features"] = "features"
    square_bits: int = 10
    square_integer: int = 4

    def __post_init__(self) -> None:
        check_widths(self.encoder_units, "encoder_units")
        check_widths(self.latent_dim, "latent_dim")
        positive(self.kl_weight, "kl_weight", allow_zero=True)
        positive(self.l2, "l2", allow_zero=True)
        self.check_square_bits(self.latent_dim)

    def input_representation(self, data: DataConfig) -> Features:
        return Features(scaling=data.scaling)


def build_vae(config: VAEConfig, input_shape: tuple[int, ...], seed: int = 0) -> dict[str, Any]:
    """The parts ``{"encoder": ..., "decoder": ...}`` (module docstring), untrained."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None

    def dense(x: Any, units: int, name: str, s: int) -> Any:
        return keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.LecunUniform(seed=s),
            kernel_regularizer=regularizer,
            name=name,
        )(x)

    inputs = keras.Input(input_shape, name="features")
    x = inputs
    for i, units in enumerate(config.encoder_units, start=1):
        x = keras.layers.Activation("relu", name=f"enc_{i}_relu")(
            dense(x, units, f"enc_{i}", seed + i)
        )
    params = dense(x, 2 * config.latent_dim, "latent_params", seed + 50)
    encoder = keras.Model(inputs, params, name="vae_encoder")
    z = keras.Input((config.latent_dim,), name="z")
    x = z
    for i, units in enumerate(reversed(config.encoder_units), start=1):
        x = keras.layers.Activation("relu", name=f"dec_{i}_relu")(
            dense(x, units, f"dec_{i}", seed + 100 + i)
        )
    recon = dense(x, input_shape[-1], "reconstruction", seed + 200)
    return {"encoder": encoder, "decoder": keras.Model(z, recon, name="vae_decoder")}


def _trainer(encoder: Any, decoder: Any, latent: int, kl_weight: float) -> Any:
    # deferred: TensorFlow loads slowly
    import tensorflow as tf

    class VAETrainer(tracked_model()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__("vae", ("loss", "reconstruction", "kl"))
            self.encoder, self.decoder = encoder, decoder

        def call(self, x: Any, training: bool = False) -> Any:
            return self.decoder(self.encoder(x, training=training)[:, :latent], training=training)

        def _step(self, x: Any, training: bool) -> Any:
            params = self.encoder(x, training=training)
            mu, logvar = params[:, :latent], tf.clip_by_value(params[:, latent:], -12.0, 12.0)
            z = mu + tf.exp(0.5 * logvar) * tf.random.normal(tf.shape(mu)) if training else mu
            recon = self.decoder(z, training=training)
            rec = tf.reduce_mean(tf.reduce_sum(tf.square(x - recon), axis=1))
            kl = tf.reduce_mean(
                0.5 * tf.reduce_sum(tf.square(mu) + tf.exp(logvar) - logvar - 1.0, axis=1)
            )
            return rec + kl_weight * kl, rec, kl

        def train_step(self, data: Any) -> dict[str, Any]:
            x = data[0] if isinstance(data, tuple) else data
            with tf.GradientTape() as tape:
                loss, rec, kl = self._step(x, True)
                total = loss + tf.add_n(self.losses) if self.losses else loss
            grads = tape.gradient(total, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
            return self._record((loss, rec, kl))

        def test_step(self, data: Any) -> dict[str, Any]:
            x = data[0] if isinstance(data, tuple) else data
            return self._record(self._step(x, False))

    return VAETrainer()


def fit_vae(
    parts: dict[str, Any],
    x_train: np.ndarray,
    x_val: np.ndarray,
    settings: FitConfig,
    config: VAEConfig,
    *,
    seed: int = 0,
    verbose: int = 0,
) -> FitResult:
    """Fit encoder and decoder together on the loss of the module docstring (early stopping
    on the validation loss, evaluated with ``z = mu``). Deterministic for a given ``seed``."""
    seed_everything(seed)
    trainer = _trainer(parts["encoder"], parts["decoder"], config.latent_dim, config.kl_weight)
    trainer.compile(optimizer=build_optimizer(settings))
    callbacks = [*schedule_callbacks(settings, settings.epochs), _early_stopping(settings)]
    return fit_result(*fit_tracked(trainer, x_train, x_val, settings, callbacks, verbose))


def mu_score_model(parts: dict[str, Any], config: VAEConfig, quantized: bool) -> keras.Model:
    """The deployed encoder: ``features -> ... -> mu -> sum_k mu_k**2`` (module docstring);
    the layers are copied, the parts stay untouched."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    encoder = parts["encoder"]
    inputs = keras.Input(encoder.input_shape[1:], name="features")
    x, copies, _ = _chain(encoder.layers[1:-1], inputs)
    params = encoder.layers[-1]
    cfg = dict(params.get_config(), units=config.latent_dim, name="mu")
    mu_layer = type(params).from_config(cfg)
    mu = mu_layer(x)
    score = sum_of_squares(mu, config.latent_dim, config, quantized, "mu")
    model = _finish(inputs, score, copies, "vae_encoder_score")
    kernel, bias = params.get_weights()
    mu_layer.set_weights([kernel[:, : config.latent_dim], bias[: config.latent_dim]])
    return model


def _float_score_model(config: Any, input_shape: tuple[int, ...], n_classes: int, seed: int) -> Any:
    return mu_score_model(build_vae(config, input_shape, seed), config, False)


register_architecture(
    Architecture(
        name="vae",
        config_class=VAEConfig,
        build=_float_score_model,
        description="variational autoencoder; deployed encoder, score sum(mu^2) (AXOL1TL)",
        exactness=(
            "bit-exact score: fixed-point multiply-accumulate up to mu, then exact Multiply "
            "and sum of mu quantized to ap_fixed<square_bits, square_integer + 1>"
        ),
        task="anomaly_detection",
    )
)
register_anomaly_model(
    "vae",
    AnomalyModel(
        build_parts=build_vae,
        fit=fit_vae,
        score_model=mu_score_model,
        score="sum over the latent dimensions of mu^2 (the encoder's means)",
    ),
)
