"""``gan``: a generative adversarial network for the 16 substructure features of one class
(task ``generation``); the generator is deployed (ONNX, firmware).

Parts (chains; the generator maps to QKeras through :func:`hepfpga.quantize.quantize_model`):

* ``generator``: ``latent (latent_dim, N(0, 1)) -> gen_1, gen_1_relu, ... -> features``
  (linear, the scaled features);
* ``discriminator``: ``features -> disc_1, disc_1_relu, ... -> realness`` (one logit).

Training alternates, per batch of real jets ``x`` and fresh noise ``z``, one discriminator
step on ``BCE(real_label, D(x + n)) + BCE(0, D(G(z) + n))`` and one generator step on
``BCE(1, D(G(z) + n))`` (the non-saturating loss), with the usual stabilisers: one-sided label
smoothing (``real_label = 1 - label_smoothing``), instance noise ``n ~ N(0,
instance_noise**2)`` on the discriminator's inputs, Adam with ``beta_1 = 0.5`` unless the
``training`` section sets it. Both networks share the learning rate and its schedule. The
adversarial losses do not measure quality, so there is no early stopping: every epoch runs,
and the quality is measured against real jets by the task
(:mod:`hepfpga.train.tasks.generation`).

In QAT the quantized generator is fine-tuned against the float discriminator of the float
fit (which keeps learning).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hepfpga.errors import ConfigError
from hepfpga.reproducibility import seed_everything
from hepfpga.train.architectures._base import Architecture, register_architecture
from hepfpga.train.architectures._tracked import fit_tracked, tracked_model
from hepfpga.train.config import DataConfig, ModelConfig, check_widths
from hepfpga.train.fit import FitResult
from hepfpga.train.optim import build_optimizer, schedule_callbacks
from hepfpga.train.representations import Features

if TYPE_CHECKING:
    from hepfpga.train.config import FitConfig

__all__ = ["GANConfig", "build_gan", "fit_gan"]


@dataclass(frozen=True)
class GANConfig(ModelConfig):
    """Generator ``latent_dim -> generator_units... -> n_features``, discriminator
    ``n_features -> discriminator_units... -> 1``, ReLU hidden activations; stabilisers
    ``label_smoothing`` (real target ``1 - label_smoothing``) and ``instance_noise``."""

    architecture: str = "gan"
    latent_dim: int = 8
    generator_units: tuple[int, ...] = (32, 32)
    discriminator_units: tuple[int, ...] = (32, 16)
    label_smoothing: float = 0.1
    instance_noise: float = 0.1
    activation: Literal["relu"] = "relu"
    representation: Literal["features"] = "features"

    def __post_init__(self) -> None:
        check_widths(self.latent_dim, "latent_dim")
        check_widths(self.generator_units, "generator_units")
        check_widths(self.discriminator_units, "discriminator_units")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError(
                f"expected a fraction in [0, 0.5), got {self.label_smoothing!r}",
                path="label_smoothing",
            )
        if self.instance_noise < 0:
            raise ConfigError(
                f"expected a number >= 0, got {self.instance_noise!r}", path="instance_noise"
            )

    def input_representation(self, data: DataConfig) -> Features:
        return Features(scaling=data.scaling)


def _mlp(inputs: Any, units: tuple[int, ...], prefix: str, seed: int) -> Any:
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    x = inputs
    for i, n in enumerate(units, start=1):
        x = keras.layers.Dense(
            n, kernel_initializer=keras.initializers.HeUniform(seed=seed + i), name=f"{prefix}_{i}"
        )(x)
        x = keras.layers.Activation("relu", name=f"{prefix}_{i}_relu")(x)
    return x


def build_gan(config: GANConfig, input_shape: tuple[int, ...], seed: int = 0) -> dict[str, Any]:
    """The parts ``{"generator": ..., "discriminator": ...}`` (module docstring)."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    n = int(input_shape[-1])
    z = keras.Input((config.latent_dim,), name="latent")
    features = keras.layers.Dense(
        n, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 90), name="generated"
    )(_mlp(z, config.generator_units, "gen", seed))
    x = keras.Input((n,), name="features")
    logit = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 190), name="realness"
    )(_mlp(x, config.discriminator_units, "disc", seed + 100))
    return {
        "generator": keras.Model(z, features, name="generator"),
        "discriminator": keras.Model(x, logit, name="discriminator"),
    }


def _trainer(parts: dict[str, Any], config: GANConfig, d_optimizer: Any) -> Any:
    # deferred: TensorFlow loads slowly
    import tensorflow as tf
    from tensorflow import keras

    generator, discriminator = parts["generator"], parts["discriminator"]
    real_label = 1.0 - config.label_smoothing
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    class GANTrainer(tracked_model()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__("gan", ("d_loss", "g_loss"))
            self.generator, self.discriminator = generator, discriminator

        def call(self, z: Any, training: bool = False) -> Any:
            return self.generator(z, training=training)

        def _noisy(self, x: Any) -> Any:
            if config.instance_noise == 0:
                return x
            return x + tf.random.normal(tf.shape(x), stddev=config.instance_noise)

        def _adversarial(self, x: Any, training: bool) -> tuple[Any, Any]:
            z = tf.random.normal((tf.shape(x)[0], config.latent_dim))
            fake = self.generator(z, training=training)
            d_real = self.discriminator(self._noisy(x), training=training)
            d_fake = self.discriminator(self._noisy(fake), training=training)
            d_loss = bce(tf.fill(tf.shape(d_real), real_label), d_real) + bce(
                tf.zeros_like(d_fake), d_fake
            )
            g_loss = bce(tf.ones_like(d_fake), d_fake)
            return d_loss, g_loss

        def train_step(self, data: Any) -> dict[str, Any]:
            x = data[0] if isinstance(data, tuple) else data
            d_optimizer.learning_rate.assign(self.optimizer.learning_rate)
            with tf.GradientTape() as tape:
                d_loss, _ = self._adversarial(x, True)
            d_vars = self.discriminator.trainable_variables
            d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars, strict=True))
            with tf.GradientTape() as tape:
                _, g_loss = self._adversarial(x, True)
            g_vars = self.generator.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars, strict=True))
            return self._record((d_loss, g_loss))

        def test_step(self, data: Any) -> dict[str, Any]:
            x = data[0] if isinstance(data, tuple) else data
            return self._record(self._adversarial(x, False))

    return GANTrainer()


def fit_gan(
    parts: dict[str, Any],
    x_train: np.ndarray,
    x_val: np.ndarray,
    settings: FitConfig,
    config: GANConfig,
    *,
    seed: int = 0,
    verbose: int = 0,
) -> FitResult:
    """Train generator and discriminator adversarially for ``settings.epochs`` epochs (module
    docstring). The result's ``best_epoch`` is the last one and ``best_val_loss`` the
    generator's loss on the validation jets then (no early stopping for a GAN)."""
    if settings.optimizer == "adam" and settings.beta_1 is None:
        settings = replace(settings, beta_1=0.5)  # the usual GAN setting
    seed_everything(seed)
    trainer = _trainer(parts, config, build_optimizer(settings))
    trainer.compile(optimizer=build_optimizer(settings))
    h, seconds = fit_tracked(
        trainer, x_train, x_val, settings, schedule_callbacks(settings, settings.epochs), verbose
    )
    return FitResult(
        epochs_run=len(h["g_loss"]),
        best_epoch=len(h["g_loss"]),
        best_val_loss=h["val_g_loss"][-1],
        seconds=seconds,
        history=h,
    )


def _generator(config: Any, input_shape: tuple[int, ...], n_classes: int, seed: int) -> Any:
    return build_gan(config, input_shape, seed)["generator"]


register_architecture(
    Architecture(
        name="gan",
        config_class=GANConfig,
        build=_generator,
        description="GAN generating the 16 features of one class; deployed generator",
        exactness="bit-exact generated features: fixed-point multiply-accumulate, as the MLP",
        task="generation",
    )
)
