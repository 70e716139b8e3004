"""``mlp``: a fully connected tagger on the substructure features (the default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hepfpga.errors import ConfigError
from hepfpga.train.architectures._base import Architecture, register_architecture
from hepfpga.train.config import (
    DataConfig,
    ModelConfig,
    check_regularization,
    check_widths,
)
from hepfpga.train.representations import Features

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["MLPConfig", "build_mlp", "dense_head", "kernel_regularizer"]


@dataclass(frozen=True)
class MLPConfig(ModelConfig):
    """``n_features - hidden_units... - n_classes`` with ReLU; L1/L2 penalties on the kernels,
    dropout (if any) after each hidden activation (dropped in the quantized model)."""

    architecture: str = "mlp"
    hidden_units: tuple[int, ...] = (64, 32, 32)
    activation: Literal["relu"] = "relu"
    l1: float = 0.0
    l2: float = 1.0e-4
    dropout: float = 0.0
    representation: Literal["features"] = "features"

    def __post_init__(self) -> None:
        if not self.hidden_units:
            raise ConfigError("expected at least one hidden layer", path="hidden_units")
        check_widths(self.hidden_units, "hidden_units")
        check_regularization(self.l1, self.l2, self.dropout)

    def input_representation(self, data: DataConfig) -> Features:
        return Features(scaling=data.scaling)


def kernel_regularizer(l1: float, l2: float) -> Any:
    """Keras ``L1L2`` penalty on kernels, or None when both are 0."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def dense_head(
    x: Any,
    hidden_units: tuple[int, ...],
    n_classes: int,
    *,
    activation: str,
    regularizer: Any,
    dropout: float,
    seed: int,
    first_index: int = 1,
) -> Any:
    """Dense layers ``dense_<i>`` + ``<activation>_<i>`` (+ ``dropout_<i>``), then ``logits``
    and ``softmax``. Kernel ``i`` is initialised with ``LecunUniform(seed + i)``."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    index = first_index
    for units in hidden_units:
        x = keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.LecunUniform(seed=seed + index),
            kernel_regularizer=regularizer,
            name=f"dense_{index}",
        )(x)
        x = keras.layers.Activation(activation, name=f"{activation}_{index}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
        index += 1
    logits = keras.layers.Dense(
        n_classes,
        kernel_initializer=keras.initializers.LecunUniform(seed=seed + index),
        kernel_regularizer=regularizer,
        name="logits",
    )(x)
    return keras.layers.Activation("softmax", name="softmax")(logits)


def build_mlp(
    config: MLPConfig, input_shape: tuple[int, ...], n_classes: int, seed: int = 0
) -> keras.Model:
    """Layers ``dense_1``, ``relu_1``, ... ``logits``, ``softmax``."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    inputs = keras.Input(input_shape, name="input")
    outputs = dense_head(
        inputs,
        config.hidden_units,
        n_classes,
        activation=config.activation,
        regularizer=kernel_regularizer(config.l1, config.l2),
        dropout=config.dropout,
        seed=seed,
    )
    return keras.Model(inputs, outputs, name="jet_mlp")


register_architecture(
    Architecture(
        name="mlp",
        config_class=MLPConfig,
        build=build_mlp,
        description="fully connected network on the 16 substructure features",
        exactness="bit-exact logits: fixed-point multiply-accumulate, exact in QKeras and HLS",
    )
)
