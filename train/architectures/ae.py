"""``ae`` and ``dae``: dense autoencoders on the 16 substructure features, for anomaly
detection; the deployed model outputs the reconstruction error itself.

Training model (one chain, so :func:`hepfpga.quantize.quantize_model` maps it to QKeras):
``features -> enc_1, enc_1_relu, ... -> latent, latent_relu -> dec_1, dec_1_relu, ... ->
reconstruction`` (linear), trained with the mean squared error on the scaled features of the
background jets. The decoder mirrors the encoder's widths. Every hidden layer, the latent one
included, is followed by a ReLU: in the QKeras model each is a ``quantized_relu``, so every
value a QDense multiplies is on a short fixed-point grid and QKeras' float32 arithmetic is
exact (what makes the firmware bit-exact to it).

``dae`` is the same network trained on inputs with Gaussian noise of standard deviation
``noise_std`` (in units of the scaled features) added afresh to every batch, against the
clean inputs as the target; validation loss and all scores use clean inputs.

Deployed *score model* (float and QKeras), one input and one output::

    x --(QKeras: input_quant)--> x_q --> autoencoder --> x_hat
    error = Subtract([x_q, x_hat])            (QKeras: then error_quant, see below)
    squared_error = Multiply([error, error])
    score = Dense(1, no bias, kernel of ones)(squared_error)  = sum_i (x_q,i - x_hat,i)^2

In the QKeras model ``error_quant`` is ``QActivation(quantized_bits(square_bits,
square_integer, alpha=1))``: ``ap_fixed<square_bits, square_integer + 1, AP_RND_CONV,
AP_SAT>`` (errors beyond +-2**square_integer saturate), and ``score`` is a ``QDense`` whose
kernel quantizer ``quantized_bits(2, 1, alpha=1)`` (``ap_fixed<2,2>``) holds the ones exactly.
With the defaults (8 bits, 3 integer) a square has at most 14 significant bits and the sum of
16 at most 18, below float32's 24: the QKeras score is exact, and so is the fixed-point
arithmetic of the firmware (exact product and sum types), so the two agree bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hepfpga.errors import ConfigError
from hepfpga.reproducibility import seed_everything
from hepfpga.train.architectures._base import Architecture, register_architecture
from hepfpga.train.config import DataConfig, ModelConfig, check_widths, positive
from hepfpga.train.fit import FitResult
from hepfpga.train.optim import build_optimizer, schedule_callbacks
from hepfpga.train.representations import Features
from hepfpga.train.tasks.anomaly import AnomalyModel, register_anomaly_model

if TYPE_CHECKING:
    from tensorflow import keras

    from hepfpga.train.config import FitConfig
__all__ = [
    "AEConfig",
    "DAEConfig",
    "ScoreBits",
    "build_autoencoder",
    "fit_reconstruction",
    "fit_result",
    "reconstruction_score_model",
    "sum_of_squares",
]

#: float32 holds integers up to 2**24 exactly: the squared values and their sum must stay in
#: that many significant bits for QKeras' score to be exact
_FLOAT32_BITS = 24


@dataclass(frozen=True)
class ScoreBits(ModelConfig):
    """The on-chip score's quantizer: values that are squared are first quantized to
    ``quantized_bits(square_bits, square_integer, alpha=1)`` = ``ap_fixed<square_bits,
    square_integer + 1, AP_RND_CONV, AP_SAT>`` in the QKeras model."""

    square_bits: int = 8
    square_integer: int = 3

    def check_square_bits(self, n_summed: int = 16) -> None:
        if not 2 <= self.square_bits <= 16:
            raise ConfigError(f"expected 2..16 bits, got {self.square_bits}", path="square_bits")
        if not 0 <= self.square_integer < self.square_bits:
            raise ConfigError(
                f"expected 0 <= square_integer < square_bits ({self.square_bits}), "
                f"got {self.square_integer}",
                path="square_integer",
            )
        # a square of a b-bit value has 2(b-1) magnitude bits; a sum of n adds log2(n)
        needed = 2 * (self.square_bits - 1) + int(np.ceil(np.log2(n_summed)))
        if needed > _FLOAT32_BITS:
            raise ConfigError(
                f"squares of {self.square_bits}-bit values summed over {n_summed} inputs need "
                f"{needed} significant bits, more than float32's {_FLOAT32_BITS}: QKeras would "
                "round the score and the firmware could not match it; use square_bits <= "
                f"{(_FLOAT32_BITS - int(np.ceil(np.log2(n_summed)))) // 2 + 1}",
                path="square_bits",
            )


@dataclass(frozen=True)
class AEConfig(ScoreBits):
    """``features -> encoder_units... -> latent_dim -> mirrored decoder -> features``, ReLU
    after every hidden layer, L2 penalty ``l2`` on the kernels."""

    architecture: str = "ae"
    encoder_units: tuple[int, ...] = (32, 16)
    latent_dim: int = 4
    activation: Literal["relu"] = "relu"
    l2: float = 0.0
    representation: Literal["features"] = "features"

    def __post_init__(self) -> None:
        check_widths(self.encoder_units, "encoder_units")
        check_widths(self.latent_dim, "latent_dim")
        positive(self.l2, "l2", allow_zero=True)
        self.check_square_bits()

    def input_representation(self, data: DataConfig) -> Features:
        return Features(scaling=data.scaling)


@dataclass(frozen=True)
class DAEConfig(AEConfig):
    """:class:`AEConfig` trained on noisy inputs: Gaussian noise of standard deviation
    ``noise_std`` (scaled-feature units) added to each training batch, clean targets."""

    architecture: str = "dae"
    noise_std: float = 0.2

    def __post_init__(self) -> None:
        AEConfig.__post_init__(self)
        positive(self.noise_std, "noise_std")


def _dense_relu(x: Any, units: int, name: str, seed: int, regularizer: Any) -> Any:
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    x = keras.layers.Dense(
        units,
        kernel_initializer=keras.initializers.LecunUniform(seed=seed),
        kernel_regularizer=regularizer,
        name=name,
    )(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def build_autoencoder(
    config: AEConfig, input_shape: tuple[int, ...], seed: int = 0
) -> dict[str, keras.Model]:
    """The training chain ``{"autoencoder": model}`` (module docstring)."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = keras.Input(input_shape, name="features")
    x = inputs
    for i, units in enumerate(config.encoder_units, start=1):
        x = _dense_relu(x, units, f"enc_{i}", seed + i, regularizer)
    x = _dense_relu(x, config.latent_dim, "latent", seed + 50, regularizer)
    for i, units in enumerate(reversed(config.encoder_units), start=1):
        x = _dense_relu(x, units, f"dec_{i}", seed + 100 + i, regularizer)
    outputs = keras.layers.Dense(
        input_shape[-1],
        kernel_initializer=keras.initializers.LecunUniform(seed=seed + 200),
        name="reconstruction",
    )(x)
    return {"autoencoder": keras.Model(inputs, outputs, name=f"jet_{config.architecture}")}


def _clone_layer(layer: Any) -> Any:
    return type(layer).from_config(layer.get_config())


def sum_of_squares(values: Any, n: int, config: ScoreBits, quantized: bool, prefix: str) -> Any:
    """``sum_i values_i**2`` with Multiply and a Dense of fixed ones (``<prefix>_squared``,
    ``score``; squares of more than one axis are flattened first, ``<prefix>_flat``); in a
    QKeras model ``values`` is first quantized (``<prefix>_quant``, see
    :class:`ScoreBits`). Returns the ``score`` tensor; its kernel of ones is set when the
    model is finished (the weights of a layer exist only then)."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    if quantized:
        # deferred: TensorFlow loads slowly
        from qkeras import QActivation, QDense, quantized_bits

        values = QActivation(
            quantized_bits(config.square_bits, config.square_integer, alpha=1),
            name=f"{prefix}_quant",
        )(values)
        total = QDense(
            1,
            use_bias=False,
            kernel_quantizer=quantized_bits(2, 1, alpha=1),
            kernel_initializer="ones",
            trainable=False,
            name="score",
        )
    else:
        total = keras.layers.Dense(
            1, use_bias=False, kernel_initializer="ones", trainable=False, name="score"
        )
    squared = keras.layers.Multiply(name=f"{prefix}_squared")([values, values])
    if len(squared.shape) > 2:  # images: one vector of squares for the sum
        squared = keras.layers.Flatten(name=f"{prefix}_flat")(squared)
    return total(squared)


def _chain(layers: list[Any], x: Any) -> tuple[Any, list[tuple[Any, Any]], Any]:
    """Apply fresh copies of ``layers`` to ``x`` in turn; returns the output, (copy,
    original) pairs for the weights, and the output of the first layer."""
    copies = []
    first = None
    for layer in layers:
        new = _clone_layer(layer)
        x = new(x)
        if first is None:
            first = x
        copies.append((new, layer))
    return x, copies, first


def _finish(inputs: Any, score: Any, copies: list[tuple[Any, Any]], name: str) -> Any:
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    model = keras.Model(inputs, score, name=name)
    for new, old in copies:
        new.set_weights(old.get_weights())
    ones = model.get_layer("score")
    ones.set_weights([np.ones_like(w) for w in ones.get_weights()])
    return model


def reconstruction_score_model(
    parts: dict[str, keras.Model], config: AEConfig, quantized: bool
) -> keras.Model:
    """The deployed model: the input and one output, ``sum_i (x_i - x_hat_i)**2`` (module
    docstring). The autoencoder's layers are copied (the parts stay untouched); with
    ``quantized`` the parts are QKeras chains starting with ``input_quant`` and the error is
    taken against the quantized input, as the firmware sees it."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    ae = parts["autoencoder"]
    inputs = keras.Input(ae.input_shape[1:], name="features")
    recon, copies, first = _chain(ae.layers[1:], inputs)
    reference = first if quantized else inputs
    error = keras.layers.Subtract(name="error")([reference, recon])
    score = sum_of_squares(error, int(ae.input_shape[-1]), config, quantized, "error")
    return _finish(inputs, score, copies, f"{ae.name}_score")


def fit_result(logs: dict[str, Any], seconds: float) -> FitResult:
    """A :class:`~hepfpga.train.fit.FitResult` from Keras' per-epoch logs
    (``History.history``; best epoch by validation loss)."""
    val_loss = [float(v) for v in logs["val_loss"]]
    best = int(np.argmin(val_loss))
    return FitResult(
        epochs_run=len(val_loss),
        best_epoch=best + 1,
        best_val_loss=val_loss[best],
        seconds=seconds,
        history={k: [float(x) for x in v] for k, v in logs.items()},
    )


def _early_stopping(settings: FitConfig) -> Any:
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    return keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=settings.early_stopping.patience,
        min_delta=settings.early_stopping.min_delta,
        restore_best_weights=True,
    )


def fit_reconstruction(
    parts: dict[str, keras.Model],
    x_train: np.ndarray,
    x_val: np.ndarray,
    settings: FitConfig,
    config: AEConfig,
    *,
    seed: int = 0,
    verbose: int = 0,
) -> FitResult:
    """Fit ``parts["autoencoder"]`` to reproduce its input (mean squared error), with the
    optimizer, schedule and early stopping of ``settings``; for a ``dae``, noisy inputs
    (module docstring). Deterministic for a given ``seed``."""
    # deferred: TensorFlow loads slowly
    import tensorflow as tf

    model = parts["autoencoder"]
    seed_everything(seed)
    model.compile(optimizer=build_optimizer(settings), loss="mse")
    noise = float(getattr(config, "noise_std", 0.0))
    x_train = np.ascontiguousarray(x_train, dtype=np.float32)
    data = tf.data.Dataset.from_tensor_slices(x_train).shuffle(
        len(x_train), seed=seed, reshuffle_each_iteration=True
    )
    data = data.batch(settings.batch_size)
    if noise > 0:
        data = data.map(lambda b: (b + tf.random.normal(tf.shape(b), stddev=noise, seed=seed), b))
    else:
        data = data.map(lambda b: (b, b))
    start = time.perf_counter()
    history = model.fit(
        data,
        validation_data=(x_val, x_val),
        epochs=settings.epochs,
        callbacks=[*schedule_callbacks(settings, settings.epochs), _early_stopping(settings)],
        verbose=verbose,
    )
    return fit_result(history.history, time.perf_counter() - start)


def _float_score_model(config: Any, input_shape: tuple[int, ...], n_classes: int, seed: int) -> Any:
    model = ANOMALY_HOOKS.build_parts(config, input_shape, seed)
    return ANOMALY_HOOKS.score_model(model, config, False)


ANOMALY_HOOKS = AnomalyModel(
    build_parts=build_autoencoder,
    fit=fit_reconstruction,
    score_model=reconstruction_score_model,
    score="sum over the features of (x - reconstruction)^2, on the scaled features",
)
_EXACTNESS = (
    "bit-exact score: fixed-point multiply-accumulate, then exact Subtract, Multiply and sum "
    "of the error quantized to ap_fixed<square_bits, square_integer + 1>"
)
for _name, _config, _text in (
    ("ae", AEConfig, "dense autoencoder on the 16 features; score: reconstruction error"),
    ("dae", DAEConfig, "denoising dense autoencoder (noisy training inputs, clean scoring)"),
):
    register_architecture(
        Architecture(
            name=_name,
            config_class=_config,
            build=_float_score_model,
            description=_text,
            exactness=_EXACTNESS,
            task="anomaly_detection",
        )
    )
    register_anomaly_model(_name, ANOMALY_HOOKS)
