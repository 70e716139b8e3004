"""``deepsets``: the permutation-invariant constituent tagger of L1 triggers (Zaheer et al.
2017; on FPGAs: Odagiu et al. 2024, hls4ml io_parallel).

``(n_constituents, 3)`` constituents (pT / jet pT, eta - jet eta, delta phi; zero-padded) ->
for each entry of ``phi_units`` one per-constituent layer ``phi_<i>`` (the same weights on
every constituent: ``Dense`` on the ``(particles, features)`` input, or ``Conv1D`` with kernel
1, by ``particle_layer``) + ReLU ``relu_phi_<i>`` -> a global pooling over the constituents
``pool`` (``GlobalAveragePooling1D`` or ``GlobalMaxPooling1D``) -> the dense head of
:mod:`.mlp` (``rho``: ``dense_units``) -> ``logits`` -> ``softmax``. The output does not
depend on the order of the constituents. Padding constituents are not masked: each pads
with ``phi(0)`` (its biases through the ReLUs), the same for every jet, so the network sees
the multiplicity through them, as the FPGA Deep Sets of the literature do.

**QKeras.** ``phi_<i>`` become ``QDense``/``QConv1D`` with ``quantized_relu``; the pooling
is kept as it is (:mod:`hepfpga.quantize.qat`: it has no weights). Its inputs are on the
ReLU's grid (``ap_ufixed<activation_bits, activation_integer>``), so the maximum is one of
them and the average of ``n`` of them, with ``n`` a power of two, is exact in float32.

**Firmware (hls4ml 1.3, io_parallel).** Dense on the 3-d input and Conv1D with kernel 1 both
convert to the same per-constituent product (exact sum types, :mod:`hepfpga.firmware.layers.
dense`). ``GlobalMaxPooling1D`` keeps the input type (exact). ``GlobalAveragePooling1D``
sums the ``n`` values in ``accum_t`` (``log2 n`` more integer and fractional bits than the
input, so no sum overflows or is rounded) and divides there (hls4ml's ``y /= length``: the
quotient truncated to ``accum_t``'s fractional bits; the ReLU outputs are >= 0, so towards
zero and minus infinity alike), then stores it in ``result_t`` with the same fractional bits
(:mod:`hepfpga.firmware.layers.pooling`). The division is a shift, exact, only when ``n`` is a
power of two: with 20 constituents it truncates (measured: 91% of the logits bit-exact on
random weights), so ``pooling: average`` requires a power-of-two ``n_constituents``; the
logits are then bit-exact for both poolings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hepfpga.errors import ConfigError
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

__all__ = ["DeepSetsConfig", "build_deepsets"]

#: ``pooling`` -> the Keras layer class over the constituents
POOLING_LAYERS = {"average": "GlobalAveragePooling1D", "max": "GlobalMaxPooling1D"}


@dataclass(frozen=True)
class DeepSetsConfig(ModelConfig):
    """The ``deepsets`` section: ``n_constituents`` leading constituents (at most the stored
    ones; a power of two with ``pooling: average``), ``phi_units`` (the per-constituent
    layers, ``particle_layer`` ``dense`` or ``conv1d``: the same function), ``pooling``
    (``average`` or ``max``) over the constituents, then ``dense_units`` (rho). ``channels``
    and ``channel_scaling``: the per-constituent inputs (:class:`ConstituentSequence`).
    ``pad_constituents``: a sample storing fewer than ``n_constituents`` is zero-padded up to
    it (e.g. 32 over the 30 that ``hepfpga data generate`` stores, so that a power-of-two
    average sees every stored constituent), instead of refused."""

    architecture: str = "deepsets"
    representation: Literal["constituent_sequence"] = "constituent_sequence"
    n_constituents: int = 16
    phi_units: tuple[int, ...] = (32, 32)
    particle_layer: Literal["dense", "conv1d"] = "dense"
    pooling: Literal["average", "max"] = "average"
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
        if not self.phi_units:
            raise ConfigError(
                "expected at least one per-constituent layer (phi) before the pooling",
                path="phi_units",
            )
        check_widths(self.phi_units, "phi_units")
        check_widths(self.dense_units, "dense_units")
        check_regularization(self.l1, self.l2, self.dropout)
        n = self.n_constituents
        if self.pooling == "average" and n & (n - 1):
            upper = 1 << (n - 1).bit_length()
            raise ConfigError(
                f"expected a power of two with pooling: average, got {n}: the firmware "
                f"divides the sum by n into log2(n) more fractional bits, exact only for "
                f"n = 2**k (a shift), else truncated; use {upper // 2} or {upper}, or "
                "pooling: max (exact for any n)",
                path="n_constituents",
            )

    def input_representation(self, data: DataConfig) -> ConstituentSequence:
        return ConstituentSequence(
            n_constituents=self.n_constituents,
            channels=tuple(self.channels),
            scaling=self.channel_scaling,
            pad=self.pad_constituents,
        )


def build_deepsets(
    config: DeepSetsConfig, input_shape: tuple[int, ...], n_classes: int, seed: int = 0
) -> keras.Model:
    """Layers ``phi_<i>``, ``relu_phi_<i>``, ``pool``, ``dense_<j>``, ``relu_<j>``,
    ``logits``, ``softmax``; ``phi_<i>``'s kernel initialised with ``LecunUniform(seed +
    100 + i)``, the head's as in :func:`~.mlp.dense_head`."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    regularizer = kernel_regularizer(config.l1, config.l2)
    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for i, units in enumerate(config.phi_units, start=1):
        common = {
            "kernel_initializer": keras.initializers.LecunUniform(seed=seed + 100 + i),
            "kernel_regularizer": regularizer,
            "name": f"phi_{i}",
        }
        if config.particle_layer == "conv1d":
            x = keras.layers.Conv1D(units, 1, **common)(x)
        else:
            x = keras.layers.Dense(units, **common)(x)
        x = keras.layers.Activation(config.activation, name=f"{config.activation}_phi_{i}")(x)
    x = getattr(keras.layers, POOLING_LAYERS[config.pooling])(name="pool")(x)
    outputs = dense_head(
        x,
        config.dense_units,
        n_classes,
        activation=config.activation,
        regularizer=regularizer,
        dropout=config.dropout,
        seed=seed,
    )
    return keras.Model(inputs, outputs, name="jet_deepsets")


register_architecture(
    Architecture(
        name="deepsets",
        config_class=DeepSetsConfig,
        build=build_deepsets,
        description="Deep Sets on the constituents (per-constituent dense, global pooling, dense)",
        exactness="bit-exact logits: per-constituent fixed-point products, exact max "
        "pooling or a power-of-two average (a shift), fixed-point dense head",
    )
)
