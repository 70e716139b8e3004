"""``garnet``: GarNet (Qasim et al. 2019, the hls4ml.contrib layer) on the constituent cloud.

``(n_constituents, 4)`` cloud -> ``GarNet`` named ``garnet`` (``simplified=True``, linear
output, the constituents' features aggregated into ``aggregators`` learned aggregators with
weights ``exp(-d^2)`` and back, then averaged over the constituents: ``collapse``) -> the
dense head of :mod:`.mlp` -> ``logits`` -> ``softmax``. Padded constituents are masked by
the cloud's ``present`` channel (GarNet's single-input format ``x``), so training, QAT and
the ONNX export take one input, the cloud.

The QKeras counterpart is GarNet with ``quantize_transforms`` (its dense transforms and its
output quantized with the ``graph`` kind's weight bits). The layers are
:mod:`hepfpga.train.garnet_layers`' (hls4ml.contrib's with a config that keeps the bit widths),
so the saved ``qkeras_model.h5`` reloads.

**Firmware.** hls4ml 1.3 converts only GarNet's two-input form ``xn`` (the features and the
number of present vertices, which must be the leading ones), with ``collapse='mean'`` over a
power-of-two number of vertices (:mod:`hepfpga.firmware.layers.garnet`).
:func:`firmware_form` builds that form of a trained model with the same layers and weights:
inputs ``[constituents (n, 4), n_constituents (1,)]``, the count being the number of
constituents with ``present != 0``. The constituents are pT-ordered and zero-padded, so the
present ones are the leading ones and both forms compute the same outputs on every jet (the
run checks it on the test jets: ``firmware_model_vs_qkeras_max_abs_diff`` must be 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hepfpga.errors import ConfigError
from hepfpga.reproducibility import seed_everything
from hepfpga.train.architectures._base import Architecture, FirmwareForm, register_architecture
from hepfpga.train.architectures.mlp import dense_head, kernel_regularizer
from hepfpga.train.config import DataConfig, ModelConfig, check_regularization, check_widths
from hepfpga.train.dataset import ScalingKind
from hepfpga.train.garnet_layers import garnet_classes, is_garnet
from hepfpga.train.representations import (
    DEFAULT_CHANNELS,
    PRESENT_CHANNEL,
    ConstituentCloud,
    check_channels,
)

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["GarNetConfig", "build_garnet", "firmware_form", "vertex_counts"]


@dataclass(frozen=True)
class GarNetConfig(ModelConfig):
    """The ``garnet`` section: ``aggregators`` (GarNet's ``n_aggregators``), ``propagate``
    (features carried to the aggregators, ``n_propagate``), ``filters`` (output features per
    constituent, ``n_filters``), ``collapse`` over the constituents, then ``dense_units``.
    ``channels`` (at least three: ``present`` is channel 3) and ``channel_scaling``: the
    per-constituent inputs (:class:`ConstituentCloud`); ``pad_constituents``: zero (absent)
    constituents beyond the stored ones instead of a refusal (32 over 30 stored)."""

    architecture: str = "garnet"
    representation: Literal["constituent_cloud"] = "constituent_cloud"
    n_constituents: int = 16
    aggregators: int = 4
    propagate: int = 8
    filters: int = 8
    collapse: Literal["mean"] = "mean"
    dense_units: tuple[int, ...] = (16,)
    activation: Literal["relu"] = "relu"
    l1: float = 0.0
    l2: float = 1.0e-4
    dropout: float = 0.0
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    channel_scaling: ScalingKind = "none"
    pad_constituents: bool = False

    def __post_init__(self) -> None:
        check_channels(
            self.channels,
            "channels",
            minimum=PRESENT_CHANNEL,
            why=" (GarNet reads its vertex mask, the cloud's present channel, at index 3)",
        )
        for name in ("n_constituents", "aggregators", "propagate", "filters"):
            check_widths(getattr(self, name), name)
        n = self.n_constituents
        if n < 2 or n & (n - 1):
            upper = 1 << (n - 1).bit_length()
            raise ConfigError(
                f"expected a power of two, got {n}: hls4ml's GarNet firmware averages over "
                "the constituents with right shifts (a division by 2**int(log2 n)); use "
                f"{max(upper // 2, 2)} or {upper}",
                path="n_constituents",
            )
        check_widths(self.dense_units, "dense_units")
        check_regularization(self.l1, self.l2, self.dropout)

    def input_representation(self, data: DataConfig) -> ConstituentCloud:
        return ConstituentCloud(
            n_constituents=self.n_constituents,
            channels=tuple(self.channels),
            scaling=self.channel_scaling,
            pad=self.pad_constituents,
        )


def build_garnet(
    config: GarNetConfig, input_shape: tuple[int, ...], n_classes: int, seed: int = 0
) -> keras.Model:
    """Layers ``garnet``, ``dense_<j>``, ``relu_<j>``, ``logits``, ``softmax``. GarNet's own
    transforms take Keras' default initialisation, fixed by the global seed set here."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    seed_everything(seed)
    inputs = keras.Input(input_shape, name="input")
    x = garnet_classes()["GarNet"](
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


def vertex_counts(cloud: Any) -> np.ndarray:
    """``(n_jets, 1)`` float32: the number of constituents whose ``present`` channel (3) is
    not 0, GarNet's vertex count in its ``xn`` form."""
    array = np.asarray(cloud)
    return np.sum(array[..., 3] != 0, axis=1, keepdims=True).astype(np.float32)


def firmware_form(model: Any) -> FirmwareForm:
    """The ``xn`` form of a trained ``garnet`` model (float or QKeras): the same layers
    (rebuilt from their configs) and weights, the GarNet layer reading ``[constituents,
    n_constituents]`` instead of the masked cloud (see the module docstring)."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    cloud = model.inputs[0]
    constituents = keras.Input(tuple(cloud.shape[1:]), name="constituents")
    count = keras.Input((1,), name="n_constituents")
    x = constituents
    for layer in model.layers[1:]:
        config = layer.get_config()
        if is_garnet(layer):
            config["input_format"] = "xn"
            config.pop("n_sublayers", None)
            copy = type(layer).from_config(config)
            x = copy([x, count])
        else:
            copy = type(layer).from_config(config)
            x = copy(x)
        if layer.weights:
            copy.set_weights(layer.get_weights())
    xn = keras.Model([constituents, count], x, name=f"{model.name}_xn")
    return FirmwareForm(
        model=xn,
        inputs=lambda cloud_events: [np.asarray(cloud_events), vertex_counts(cloud_events)],
        description=(
            "GarNet's two-input 'xn' form of the QKeras model (same layers and weights), the "
            "form hls4ml converts: inputs [constituents (n, 4), n_constituents = the number "
            "of present constituents]"
        ),
    )


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
        firmware_form=firmware_form,
    )
)
