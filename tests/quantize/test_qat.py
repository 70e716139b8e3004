from __future__ import annotations

import numpy as np
import pytest

from hepfpga.errors import ConversionError
from hepfpga.quantize.qat import QuantizationSpec, quantize_model
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.models import build_model


@pytest.fixture(scope="module")
def float_model():
    return build_model(16, 5, MLPConfig(hidden_units=(8, 4), dropout=0.1))


def test_structure_maps_layer_by_layer(float_model) -> None:
    qmodel = quantize_model(float_model, QuantizationSpec())
    kinds = [(layer.name, type(layer).__name__) for layer in qmodel.layers]
    assert kinds == [
        ("input", "InputLayer"),
        ("input_quant", "QActivation"),
        ("dense_1", "QDense"),
        ("relu_1", "QActivation"),
        ("dense_2", "QDense"),
        ("relu_2", "QActivation"),
        ("logits", "QDense"),
        ("softmax", "Activation"),
    ]
    assert qmodel.get_layer("dense_1").get_quantizers()[0].bits == 6


@pytest.mark.parametrize(("bits", "integer"), [(4, 0), (6, 0), (8, 1)])
def test_weights_are_copied_and_quantized_on_their_grid(
    float_model, bits: int, integer: int
) -> None:
    spec = QuantizationSpec(weight_bits=bits, weight_integer=integer)
    qmodel = quantize_model(float_model, spec)
    for name in ("dense_1", "dense_2", "logits"):
        layer = qmodel.get_layer(name)
        np.testing.assert_array_equal(
            layer.get_weights()[0], float_model.get_layer(name).get_weights()[0]
        )
        quantized = layer.get_quantizers()[0](layer.kernel).numpy()
        lsb = 2.0 ** -(bits - 1 - integer)
        assert np.all(np.abs(quantized / lsb - np.round(quantized / lsb)) == 0)
        assert quantized.max() <= 2.0**integer - lsb and quantized.min() >= -(2.0**integer)


def test_input_quantizer_rounds_half_to_even_and_saturates(float_model) -> None:
    qmodel = quantize_model(float_model, QuantizationSpec(input_bits=8, input_integer=3))
    quant = qmodel.get_layer("input_quant")
    lsb = 2.0**-4
    x = np.array([[0.5 * lsb, 1.5 * lsb, 2.5 * lsb, 100.0, -100.0] + [0.0] * 11], dtype=np.float32)
    y = quant(x).numpy()[0, :5]
    np.testing.assert_array_equal(y, [0.0, 2 * lsb, 2 * lsb, 8 - lsb, -8.0])


def test_unsupported_layer_is_named() -> None:
    from tensorflow import keras

    inputs = keras.Input((16,))
    x = keras.layers.Dense(4, name="d")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, x)
    with pytest.raises(
        ConversionError, match=r"'bn' of type BatchNormalization.*supported layers: Dense"
    ):
        quantize_model(model, QuantizationSpec())


def test_branches_joined_by_concatenate_are_wired_as_in_the_float_model() -> None:
    """The CNN with features beside the image: one input split by Cropping1D into an image
    and a feature, joined by Concatenate. The QKeras model has the same graph, the weights
    copied, and (with wide types) the float model's outputs."""
    from hepfpga.train.architectures.cnn import CNNConfig, build_cnn

    config = CNNConfig(image_pixels=6, filters=(2,), dense_units=(4,), image_features=("a",))
    float_model = build_cnn(config, (37,), 5, seed=3)
    spec = QuantizationSpec(
        weight_bits=16, weight_integer=2, activation_bits=16, activation_integer=4, input_bits=16
    )
    qmodel = quantize_model(float_model, spec)
    wiring = {
        layer.name: sorted(node.name for node in _inbound(layer)) for layer in qmodel.layers[2:]
    }
    assert wiring["crop_image"] == wiring["crop_features"] == ["as_sequence"]
    assert wiring["concatenate"] == ["flatten", "image_features"]
    np.testing.assert_array_equal(
        qmodel.get_layer("conv_1").get_weights()[0],
        float_model.get_layer("conv_1").get_weights()[0],
    )
    x = np.random.default_rng(0).uniform(0, 1, (64, 37)).astype(np.float32)
    np.testing.assert_allclose(
        qmodel.predict(x, verbose=0), float_model.predict(x, verbose=0), atol=2e-3
    )


def _inbound(layer):
    inputs = layer.input if isinstance(layer.input, list) else [layer.input]
    return [tensor.node.layer for tensor in inputs]
