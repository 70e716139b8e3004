"""``cnn``: a convolutional tagger on jet images (de Oliveira et al. 2015, scaled down to what
fits a trigger FPGA).

``image_pixels`` x ``image_pixels`` image -> for each entry of ``filters``: ``Conv2D``
(``kernel_size``, valid padding) ``conv_<i>`` + ReLU ``relu_conv_<i>`` + ``MaxPooling2D``
(``pool_size``) ``pool_<i>`` -> ``Flatten`` -> the dense head of :mod:`.mlp` (``dense_units``)
-> ``logits`` -> ``softmax``. Max pooling and ReLU are exact in fixed point, so the firmware's
logits equal the QKeras ones bit for bit.

With ``image_features`` (e.g. ``[mass_mmdt]``) the input is one vector, the flattened image
followed by those features, scaled as ``data.scaling`` says (standard by default; fitted on
the training jets: :class:`~hepfpga.train.representations.JetImageFeatures`): ``Reshape``
``as_sequence`` to ``(pixels**2 + k, 1)``, ``Cropping1D`` ``crop_image`` (the first
``pixels**2``) -> ``Reshape`` ``image`` -> the convolution blocks -> ``flatten``;
``Cropping1D`` ``crop_features`` (the last ``k``) -> ``Flatten`` ``image_features``; both
``Concatenate`` ``concatenate`` -> the dense head. A 1 TeV W and Z differ by about one pixel
in prong separation at 0.025 per pixel, so the image alone hardly tells them apart; the
groomed mass beside it does (cropping, reshaping and concatenation are exact, so the logits
stay bit-exact).
"""

from __future__ import annotations

import math
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
from hepfpga.train.representations import JetImage, JetImageFeatures

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["CNNConfig", "build_cnn"]


@dataclass(frozen=True)
class CNNConfig(ModelConfig):
    """The ``cnn`` section. ``image_pixels`` and ``image_extent`` define the jet image (a
    32-pixel image over the same extent summed 2x2 is the 16-pixel one); ``image_align``
    bins each jet in its own frame (pT-weighted centroid, principal axis along eta, flipped
    to positive third moments: :func:`~hepfpga.train.images.align_constituents`);
    ``image_pt_reference`` (GeV) multiplies each jet's angles by ``jet pT /
    image_pt_reference`` before binning, so a boosted decay's prong separation (about
    ``2 m / pT``) measures its mass whatever the jet's pT;
    ``image_features`` names substructure features fed beside the image (to the dense head:
    see the module docstring); ``filters`` has one entry per convolution block."""

    architecture: str = "cnn"
    representation: Literal["jet_image"] = "jet_image"
    image_pixels: int = 16
    image_extent: float = 0.8
    image_align: bool = False
    image_pt_reference: float | None = None
    image_features: tuple[str, ...] = ()
    filters: tuple[int, ...] = (4, 8)
    kernel_size: int = 3
    pool_size: int = 2
    dense_units: tuple[int, ...] = (16,)
    activation: Literal["relu"] = "relu"
    l1: float = 0.0
    l2: float = 1.0e-4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        positive_int(self.image_pixels, "image_pixels")
        if not self.image_extent > 0:
            raise ConfigError(
                f"expected a number > 0, got {self.image_extent!r}", path="image_extent"
            )
        if not self.filters:
            raise ConfigError("expected at least one convolution", path="filters")
        check_widths(self.filters, "filters")
        check_widths(self.dense_units, "dense_units")
        positive_int(self.kernel_size, "kernel_size")
        positive_int(self.pool_size, "pool_size")
        check_regularization(self.l1, self.l2, self.dropout)
        self.feature_map_sizes()  # an image too small for the blocks is an error here
        reference = self.image_pt_reference
        if reference is not None and not (
            isinstance(reference, (int, float)) and math.isfinite(reference) and reference > 0
        ):
            raise ConfigError(
                f"expected a jet pT in GeV > 0 (or null), got {reference!r}",
                path="image_pt_reference",
            )
        for i, name in enumerate(self.image_features):
            if not name:  # the schema has checked it is a string
                raise ConfigError(
                    f"expected a feature name, got {name!r}", path=f"image_features[{i}]"
                )
        if len(set(self.image_features)) != len(self.image_features):
            raise ConfigError(
                f"a feature named twice: {list(self.image_features)!r}", path="image_features"
            )

    def feature_map_sizes(self) -> list[int]:
        """The side of the feature map after each convolution block (valid convolution, then
        pooling with floor division)."""
        sizes, side = [], self.image_pixels
        for i in range(len(self.filters)):
            conv = side - self.kernel_size + 1
            side = conv // self.pool_size
            if conv < 1 or side < 1:
                raise ConfigError(
                    f"a {self.image_pixels}x{self.image_pixels} image is too small for "
                    f"{len(self.filters)} blocks of a {self.kernel_size}x{self.kernel_size} "
                    f"convolution and {self.pool_size}x{self.pool_size} pooling (block {i + 1} "
                    "has no pixel left); use a larger image_pixels or fewer filters",
                    path="image_pixels",
                )
            sizes.append(side)
        return sizes

    def input_representation(self, data: DataConfig) -> JetImage:
        if self.image_features:
            return JetImageFeatures(
                pixels=self.image_pixels,
                extent=self.image_extent,
                align=self.image_align,
                pt_reference=self.image_pt_reference,
                features=tuple(self.image_features),
                scaling=data.scaling,
            )
        return JetImage(
            pixels=self.image_pixels,
            extent=self.image_extent,
            align=self.image_align,
            pt_reference=self.image_pt_reference,
        )


def build_cnn(
    config: CNNConfig, input_shape: tuple[int, ...], n_classes: int, seed: int = 0
) -> keras.Model:
    """Layers ``conv_<i>``, ``relu_conv_<i>``, ``pool_<i>``, ``flatten``, ``dense_<j>``,
    ``relu_<j>``, ``logits``, ``softmax``; kernel ``i`` initialised with seed ``seed + i``.
    A one-dimensional ``input_shape`` (``pixels**2 + k``) is an image followed by ``k``
    features, split as the module docstring says."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    regularizer = kernel_regularizer(config.l1, config.l2)
    inputs = keras.Input(input_shape, name="input")
    x, features = inputs, None
    if len(input_shape) == 1:
        side = config.image_pixels
        n_features = input_shape[0] - side * side
        if n_features < 1:  # pragma: no cover - the representation makes the shape
            raise ConfigError(f"input shape {input_shape} holds no feature after the image")
        sequence = keras.layers.Reshape((input_shape[0], 1), name="as_sequence")(inputs)
        x = keras.layers.Cropping1D((0, n_features), name="crop_image")(sequence)
        x = keras.layers.Reshape((side, side, 1), name="image")(x)
        features = keras.layers.Cropping1D((side * side, 0), name="crop_features")(sequence)
        features = keras.layers.Flatten(name="image_features")(features)
    for i, filters in enumerate(config.filters, start=1):
        x = keras.layers.Conv2D(
            filters,
            config.kernel_size,
            padding="valid",
            kernel_initializer=keras.initializers.LecunUniform(seed=seed + 100 + i),
            kernel_regularizer=regularizer,
            name=f"conv_{i}",
        )(x)
        x = keras.layers.Activation(config.activation, name=f"{config.activation}_conv_{i}")(x)
        x = keras.layers.MaxPooling2D(config.pool_size, name=f"pool_{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if features is not None:
        x = keras.layers.Concatenate(name="concatenate")([x, features])
    outputs = dense_head(
        x,
        config.dense_units,
        n_classes,
        activation=config.activation,
        regularizer=regularizer,
        dropout=config.dropout,
        seed=seed,
    )
    return keras.Model(inputs, outputs, name="jet_cnn")


register_architecture(
    Architecture(
        name="cnn",
        config_class=CNNConfig,
        build=build_cnn,
        description="convolutional network on jet images (QConv2D + max pooling + dense)",
        exactness="bit-exact logits: fixed-point convolutions, exact max pooling and ReLU",
    )
)
