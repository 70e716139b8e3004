"""``lstm`` and ``gru``: recurrent taggers on the pT-ordered constituent sequence.

``(n_constituents, 3)`` sequence -> ``LSTM``/``GRU`` (``units``, the last state; all states
with ``return_sequences``, then flattened) named ``lstm``/``gru`` -> the dense head of
:mod:`.mlp` -> ``logits`` -> ``softmax``. In firmware the gates' sigmoid and tanh come from
lookup tables and the state is rounded to the layer's input type every step (hls4ml 1.3), so
HLS and QKeras agree only within that resolution: the report gives the measured maximum
difference and the argmax agreement, not bit-exactness. The input's fractional bits
(``quantization.input_bits`` - ``input_integer`` - 1) set it: the examples use 12 (see
docs/firmware.md for the measured effect).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

from hepfpga.train.architectures._base import Architecture, register_architecture
from hepfpga.train.architectures.mlp import dense_head, kernel_regularizer
from hepfpga.train.config import (
    DataConfig,
    ModelConfig,
    check_regularization,
    check_widths,
    positive_int,
)
from hepfpga.train.dataset import ScalingKind
from hepfpga.train.representations import (
    DEFAULT_CHANNELS,
    ConstituentSequence,
    check_channels,
)

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["GRUConfig", "LSTMConfig", "RecurrentConfig", "build_recurrent"]


@dataclass(frozen=True)
class RecurrentConfig(ModelConfig):
    """The ``lstm``/``gru`` section: ``n_constituents`` leading constituents (at most the 30
    stored), one recurrent layer of ``units``, then ``dense_units``. ``channels`` and
    ``channel_scaling``: the per-constituent inputs (:class:`ConstituentSequence`);
    ``pad_constituents``: zero constituents beyond the stored ones instead of a refusal."""

    architecture: str = "lstm"
    representation: Literal["constituent_sequence"] = "constituent_sequence"
    n_constituents: int = 20
    units: int = 16
    return_sequences: bool = False
    dense_units: tuple[int, ...] = (16,)
    activation: Literal["relu"] = "relu"
    l1: float = 0.0
    l2: float = 1.0e-4
    dropout: float = 0.0
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    channel_scaling: ScalingKind = "none"
    pad_constituents: bool = False

    def __post_init__(self) -> None:
        check_channels(self.channels, "channels")
        positive_int(self.n_constituents, "n_constituents")
        check_widths(self.units, "units")
        check_widths(self.dense_units, "dense_units")
        check_regularization(self.l1, self.l2, self.dropout)

    def input_representation(self, data: DataConfig) -> ConstituentSequence:
        return ConstituentSequence(
            n_constituents=self.n_constituents,
            channels=tuple(self.channels),
            scaling=self.channel_scaling,
            pad=self.pad_constituents,
        )


@dataclass(frozen=True)
class LSTMConfig(RecurrentConfig):
    """The ``lstm`` section (see :class:`RecurrentConfig`)."""

    architecture: str = "lstm"


@dataclass(frozen=True)
class GRUConfig(RecurrentConfig):
    """The ``gru`` section (see :class:`RecurrentConfig`)."""

    architecture: str = "gru"


def build_recurrent(
    config: RecurrentConfig,
    input_shape: tuple[int, ...],
    n_classes: int,
    seed: int = 0,
    *,
    layer: Literal["LSTM", "GRU"] = "LSTM",
) -> keras.Model:
    """Layers ``<lstm|gru>``, (``flatten``), ``dense_<j>``, ``relu_<j>``, ``logits``, ``softmax``;
    ``layer`` is the Keras recurrent layer class."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    layer_class = getattr(keras.layers, layer)
    regularizer = kernel_regularizer(config.l1, config.l2)
    inputs = keras.Input(input_shape, name="input")
    x = layer_class(
        config.units,
        return_sequences=config.return_sequences,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 100),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 101),
        kernel_regularizer=regularizer,
        name=config.architecture,
    )(inputs)
    if config.return_sequences:
        x = keras.layers.Flatten(name="flatten")(x)
    outputs = dense_head(
        x,
        config.dense_units,
        n_classes,
        activation=config.activation,
        regularizer=regularizer,
        dropout=config.dropout,
        seed=seed,
    )
    return keras.Model(inputs, outputs, name=f"jet_{config.architecture}")


_EXACTNESS = (
    "bounded, not bit-exact: the gates' sigmoid and tanh are lookup tables in firmware and the "
    "state is rounded to the input's type every step; the report gives the measured max "
    "|difference| and argmax agreement"
)

register_architecture(
    Architecture(
        name="lstm",
        config_class=LSTMConfig,
        build=partial(build_recurrent, layer="LSTM"),
        description="LSTM on the pT-ordered constituent sequence",
        exactness=_EXACTNESS,
        bit_exact=False,
    )
)
register_architecture(
    Architecture(
        name="gru",
        config_class=GRUConfig,
        build=partial(build_recurrent, layer="GRU"),
        description="GRU on the pT-ordered constituent sequence",
        exactness=_EXACTNESS,
        bit_exact=False,
    )
)
