"""``conv_ae``: a convolutional autoencoder on jet images for anomaly detection; the deployed
model outputs the reconstruction error summed over the pixels.

``image (pixels x pixels x 1) -> for each entry of filters: enc_<i> (Conv2D, 'same'
padding) + enc_<i>_relu + pool_<i> (MaxPooling2D 2x2) -> for each entry reversed: up_<i>
(UpSampling2D 2x2, nearest) + dec_<i> (Conv2D, 'same') + dec_<i>_relu -> reconstruction``
(Conv2D to one channel, linear). hls4ml 1.3.0 has no transposed convolution, so the decoder
up-samples (repeats each pixel 2x2, exact) and then convolves; ``upsampling`` accepts only
``nearest`` and names this when a transposed convolution is asked for.

The score model is the one of :mod:`hepfpga.train.architectures.ae`: ``Subtract`` of the
(quantized) input and the reconstruction, ``error_quant``, ``Multiply``, ``Flatten`` and a
Dense of fixed ones. The pixel values are pT fractions in [0, 1], so the default error grid
is ``ap_fixed<8,2>`` (``square_bits`` 8, ``square_integer`` 1); a square then has at most 14
significant bits and the sum over ``pixels**2`` pixels ``14 + 2 log2(pixels)``, within
float32's 24 for images up to 32 x 32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hepfpga.errors import ConfigError
from hepfpga.train.architectures._base import Architecture, register_architecture
from hepfpga.train.architectures.ae import (
    _EXACTNESS,
    ScoreBits,
    fit_reconstruction,
    reconstruction_score_model,
)
from hepfpga.train.config import DataConfig, check_widths, positive, positive_int
from hepfpga.train.representations import JetImage
from hepfpga.train.tasks.anomaly import AnomalyModel, register_anomaly_model

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["ConvAEConfig", "build_conv_autoencoder"]

_TRANSPOSED = ("transpose", "conv_transpose", "conv2dtranspose", "transposed", "deconvolution")


@dataclass(frozen=True)
class ConvAEConfig(ScoreBits):
    """The ``conv_ae`` section (module docstring): the image (``image_pixels``, divisible by
    ``2**len(filters)``; ``image_extent``), the encoder's ``filters`` and ``kernel_size``."""

    architecture: str = "conv_ae"
    representation: Literal["jet_image"] = "jet_image"
    image_pixels: int = 8
    image_extent: float = 0.8
    filters: tuple[int, ...] = (4,)
    kernel_size: int = 3
    upsampling: str = "nearest"
    l2: float = 0.0
    square_bits: int = 8
    square_integer: int = 1

    def __post_init__(self) -> None:
        positive_int(self.image_pixels, "image_pixels")
        positive(self.image_extent, "image_extent")
        if not self.filters:
            raise ConfigError("expected at least one convolution", path="filters")
        check_widths(self.filters, "filters")
        positive_int(self.kernel_size, "kernel_size")
        positive(self.l2, "l2", allow_zero=True)
        if self.upsampling.lower() in _TRANSPOSED:
            raise ConfigError(
                "a decoder with transposed convolutions (Conv2DTranspose) cannot be built: "
                "hls4ml 1.3.0 has no transposed convolution; use upsampling: nearest "
                "(UpSampling2D, then a Conv2D learns the filter)",
                path="upsampling",
            )
        if self.upsampling != "nearest":
            raise ConfigError(
                f"invalid value {self.upsampling!r}; accepted: 'nearest' (UpSampling2D; "
                "bilinear interpolation is not converted by hls4ml)",
                path="upsampling",
            )
        factor = 2 ** len(self.filters)
        if self.image_pixels % factor:
            raise ConfigError(
                f"{self.image_pixels} pixels cannot be pooled 2x2 {len(self.filters)} times "
                f"and up-sampled back: use a multiple of {factor}",
                path="image_pixels",
            )
        self.check_square_bits(self.image_pixels**2)

    def input_representation(self, data: DataConfig) -> JetImage:
        return JetImage(pixels=self.image_pixels, extent=self.image_extent)


def build_conv_autoencoder(
    config: ConvAEConfig, input_shape: tuple[int, ...], seed: int = 0
) -> dict[str, keras.Model]:
    """The training chain ``{"autoencoder": model}`` (module docstring)."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None

    def conv(x: Any, filters: int, name: str, s: int) -> Any:
        return keras.layers.Conv2D(
            filters,
            config.kernel_size,
            padding="same",
            kernel_initializer=keras.initializers.HeUniform(seed=s),
            kernel_regularizer=regularizer,
            name=name,
        )(x)

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, f in enumerate(config.filters, start=1):
        x = keras.layers.Activation("relu", name=f"enc_{i}_relu")(conv(x, f, f"enc_{i}", seed + i))
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    for i, f in enumerate(reversed(config.filters), start=1):
        x = keras.layers.UpSampling2D(2, name=f"up_{i}")(x)
        x = keras.layers.Activation("relu", name=f"dec_{i}_relu")(
            conv(x, f, f"dec_{i}", seed + 100 + i)
        )
    outputs = conv(x, int(input_shape[-1]), "reconstruction", seed + 200)
    return {"autoencoder": keras.Model(inputs, outputs, name="jet_conv_ae")}


def _float_score_model(config: Any, input_shape: tuple[int, ...], n_classes: int, seed: int) -> Any:
    return reconstruction_score_model(
        build_conv_autoencoder(config, input_shape, seed), config, False
    )


register_architecture(
    Architecture(
        name="conv_ae",
        config_class=ConvAEConfig,
        build=_float_score_model,
        description="convolutional autoencoder on jet images (UpSampling2D decoder)",
        exactness=_EXACTNESS,
        task="anomaly_detection",
    )
)
register_anomaly_model(
    "conv_ae",
    AnomalyModel(
        build_parts=build_conv_autoencoder,
        fit=fit_reconstruction,
        score_model=reconstruction_score_model,
        score="sum over the pixels of (image - reconstruction)^2",
    ),
)
