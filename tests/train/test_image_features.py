"""The jet image with substructure features beside it (``model.image_features``): one vector
per jet, the image flattened row-major then the features scaled on the training jets
(``data.scaling``); refusals; the CNN splitting the vector again."""

from __future__ import annotations

import numpy as np
import pytest

from hepfpga.errors import ConfigError, DataError
from hepfpga.pipeline.config import parse_config
from hepfpga.train.dataset import split_sample
from hepfpga.train.images import jet_images
from hepfpga.train.representations import JetImageFeatures


def _representation(scaling: str = "standard", **model) -> JetImageFeatures:
    config = parse_config(
        {
            "data": {"scaling": scaling},
            "model": {"architecture": "cnn", "image_pixels": 6, "filters": [2], **model},
        }
    )
    representation = config.model.input_representation(config.data)
    assert isinstance(representation, JetImageFeatures)
    return representation


@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_the_vector_is_the_image_then_the_features_scaled_on_the_training_jets(
    make_jets, scaling: str
) -> None:
    representation = _representation(scaling, image_features=["multiplicity", "mass_mmdt"])
    sample = make_jets(300, seed=4)
    split = split_sample(sample, (0.6, 0.2, 0.2), seed=1)
    inputs = representation.prepare(split)
    assert inputs.input_shape == (36 + 2,)
    names = list(sample.feature_names)
    columns = [names.index("multiplicity"), names.index("mass_mmdt")]
    for part, x in ((split.train, inputs.train), (split.test, inputs.test)):
        image = jet_images(part.constituents, 6, 0.8).reshape(len(part), 36)
        np.testing.assert_array_equal(x[:, :36], image)
        train = split.train.features[:, columns].astype(np.float64)
        if scaling == "standard":
            offset, scale = train.mean(axis=0), train.std(axis=0)
        else:
            offset, scale = train.min(axis=0), train.max(axis=0) - train.min(axis=0)
        expected = (part.features[:, columns] - offset) / scale
        np.testing.assert_allclose(x[:, 36:], expected, rtol=1e-5, atol=1e-5)
    assert inputs.scaler is not None and inputs.scaler.kind == scaling
    assert inputs.scaler is not None and inputs.scaler.feature_names == (
        "multiplicity",
        "mass_mmdt",
    )
    assert inputs.preprocessing["representation"] == "jet_image_features"
    assert inputs.preprocessing["features"] == ["multiplicity", "mass_mmdt"]


def test_a_feature_the_sample_lacks_is_refused_naming_what_it_holds(make_jets) -> None:
    representation = _representation(image_features=["mass_sd"])
    split = split_sample(make_jets(100, seed=1), (0.6, 0.2, 0.2), seed=1)
    with pytest.raises(
        DataError, match=r"'mass_sd' not among the sample's features; accepted: zlogz"
    ):
        representation.prepare(split)


def test_a_sample_without_features_is_refused(make_jets) -> None:
    sample = make_jets(100, seed=1)
    sample.metadata.update(features="absent", source="images.h5")
    split = split_sample(sample, (0.6, 0.2, 0.2), seed=1)
    message = r"needs the jets' features, which images\.h5 does not hold"
    with pytest.raises(DataError, match=message):
        _representation(image_features=["mass_mmdt"]).prepare(split)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["mass_mmdt", "mass_mmdt"], r"'model\.image_features': a feature named twice"),
        ([""], r"'model\.image_features\[0\]': expected a feature name"),
        ([3], r"'model\.image_features\[0\]': expected a string, got 3"),
    ],
)
def test_bad_image_features_are_refused_with_their_path(value, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"model": {"architecture": "cnn", "image_features": value}})


def test_the_cnn_splits_the_vector_into_the_image_and_the_features() -> None:
    from tensorflow import keras

    from hepfpga.train.architectures.cnn import CNNConfig, build_cnn

    config = CNNConfig(image_pixels=6, filters=(2,), dense_units=(4,), image_features=("a", "b"))
    model = build_cnn(config, (38,), 5)
    x = np.random.default_rng(0).uniform(size=(3, 38)).astype(np.float32)
    parts = keras.Model(
        model.inputs, [model.get_layer("image").output, model.get_layer("image_features").output]
    ).predict(x, verbose=0)
    np.testing.assert_array_equal(parts[0], x[:, :36].reshape(3, 6, 6, 1))
    np.testing.assert_array_equal(parts[1], x[:, 36:])
    assert model.get_layer("dense_1").input_shape == (None, 2 * 2 * 2 + 2)
