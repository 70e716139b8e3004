"""``garnet``: GarNet (Qasim et al. 2019, the hls4ml.contrib layer) on the constituent cloud.

``(n_constituents, 4)`` cloud -> ``GarNet`` named ``garnet`` (``simplified=True``, linear
output, the constituents' features aggregated into ``aggregators`` learned aggregators with
weights ``exp(-d^2)`` and back, then averaged over the constituents: ``collapse``) -> the
dense head of :mod:`.mlp` -> ``logits`` -> ``softmax``. Padded constituents are masked by
the cloud's ``present`` channel (GarNet's single-input format ``x``).

The QKeras counterpart is GarNet with ``quantize_transforms`` (its three dense transforms
and its output quantized with the layer's weight bits). hls4ml 1.3 converts only GarNet's
two-input format (features and vertex count, ``xn``), and the firmware stage does not yet
convert GarNet at all, so a ``garnet`` run reports its firmware as not available.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hepfpga.train.architectures import Architecture, register_architecture
from hepfpga.train.architectures.mlp import dense_head, kernel_regularizer
from hepfpga.train.config import DataConfig, ModelConfig, check_regularization, check_widths
from hepfpga.train.representations import ConstituentCloud

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["GarNetConfig", "build_garnet"]


@dataclass(frozen=True)
class GarNetConfig(ModelConfig):
    """The ``garnet`` section: ``aggregators`` (GarNet's ``n_aggregators``), ``propagate``
    (features carried to the aggregators, ``n_propagate``), ``filters`` (output features per
    constituent, ``n_filters``), ``collapse`` over the constituents, then ``dense_units``."""

    architecture: str = "garnet"
    representation: Literal["constituent_cloud"] = "constituent_cloud"
    n_constituents: int = 20
    aggregators: int = 4
    propagate: int = 8
    filters: int = 8
    collapse: Literal["mean", "sum", "max"] = "mean"
    dense_units: tuple[int, ...] = (16,)
    activation: Literal["relu"] = "relu"
    l1: float = 0.0
    l2: float = 1.0e-4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_constituents", "aggregators", "propagate", "filters"):
            check_widths(getattr(self, name), name)
        check_widths(self.dense_units, "dense_units")
        check_regularization(self.l1, self.l2, self.dropout)

    def input_representation(self, data: DataConfig) -> ConstituentCloud:
        return ConstituentCloud(n_constituents=self.n_constituents)


def build_garnet(
    config: GarNetConfig, input_shape: tuple[int, ...], n_classes: int, seed: int = 0
) -> keras.Model:
    """Layers ``garnet``, ``dense_<j>``, ``relu_<j>``, ``logits``, ``softmax``. GarNet's own
    transforms take Keras' default initialisation, fixed by the global seed set here."""
    from hls4ml.contrib.garnet import GarNet
    from tensorflow import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="input")
    x = GarNet(
        config.aggregators,
        config.filters,
        config.propagate,
        simplified=True,
        collapse=config.collapse,
        input_format="x",
        output_activation=None,
        name="garnet",
    )(inputs)
    outputs = dense_head(
        x,
        config.dense_units,
        n_classes,
        activation=config.activation,
        regularizer=kernel_regularizer(config.l1, config.l2),
        dropout=config.dropout,
        seed=seed,
    )
    return keras.Model(inputs, outputs, name="jet_garnet")


register_architecture(
    Architecture(
        name="garnet",
        config_class=GarNetConfig,
        build=build_garnet,
        description="GarNet (simplified) on the constituent cloud",
        exactness=(
            "bounded, not bit-exact: the aggregator weights exp(-d^2) are a lookup table in "
            "firmware; the report gives the measured max |difference| and argmax agreement"
        ),
        bit_exact=False,
    )
)
