"""Each architecture builds its float model, maps to QKeras layer by layer, and its inputs
come from its representation."""

from __future__ import annotations

import numpy as np
import pytest

from hepfpga.errors import ConfigError
from hepfpga.quantize.qat import LAYER_MAPPINGS, QuantizationSpec, quantize_model
from hepfpga.train.architectures import build_model
from hepfpga.train.architectures.cnn import CNNConfig
from hepfpga.train.architectures.garnet import GarNetConfig
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.architectures.recurrent import GRUConfig, LSTMConfig
from hepfpga.train.dataset import split_sample
from hepfpga.train.images import jet_images
from hepfpga.train.representations import REPRESENTATIONS

# (config, input shape, {float layer name: QKeras class name})
CASES = {
    "mlp": (MLPConfig(hidden_units=(8, 4)), (16,), {"dense_1": "QDense", "logits": "QDense"}),
    "cnn": (
        CNNConfig(image_pixels=8, filters=(2,), dense_units=(4,)),
        (8, 8, 1),
        {"conv_1": "QConv2D", "pool_1": "MaxPooling2D", "flatten": "Flatten", "dense_1": "QDense"},
    ),
    "lstm": (LSTMConfig(n_constituents=4, units=4, dense_units=(4,)), (4, 3), {"lstm": "QLSTM"}),
    "gru": (GRUConfig(n_constituents=4, units=4, dense_units=()), (4, 3), {"gru": "QGRU"}),
    "garnet": (
        GarNetConfig(n_constituents=4, aggregators=2, propagate=3, filters=4),
        (4, 4),
        {"garnet": "GarNet"},
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request: pytest.FixtureRequest):
    config, shape, expected = CASES[request.param]
    model = build_model(shape, 5, config, seed=1)
    return request.param, model, shape, expected


def test_float_model_ends_with_logits_and_softmax(built) -> None:
    name, model, shape, _ = built
    assert [layer.name for layer in model.layers[-2:]] == ["logits", "softmax"]
    x = np.random.default_rng(0).uniform(size=(6, *shape)).astype(np.float32)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    again = build_model(shape, 5, CASES[name][0], seed=1)
    np.testing.assert_array_equal(again.predict(x, verbose=0), probs)  # seeded init


def test_layer_mapping_gives_qkeras_counterparts_with_float_weights(built) -> None:
    _, model, shape, expected = built
    wide = QuantizationSpec(
        weight_bits=20,
        weight_integer=3,
        activation_bits=20,
        activation_integer=6,
        input_bits=20,
        input_integer=4,
    )
    qmodel = quantize_model(model, wide)
    by_name = {layer.name: layer for layer in qmodel.layers}
    for layer_name, qclass in expected.items():
        assert type(by_name[layer_name]).__name__ == qclass
    if "garnet" in by_name:  # same class, quantized transforms
        assert by_name["garnet"].get_config()["quantize_transforms"]
    x = np.random.default_rng(1).uniform(size=(32, *shape)).astype(np.float32)
    # 20-bit weights and activations: the QKeras model computes what the float one does
    np.testing.assert_allclose(qmodel.predict(x, verbose=0), model.predict(x, verbose=0), atol=2e-3)


def test_per_kind_and_per_name_bits_reach_the_quantizers(built) -> None:
    name, model, _, _ = built
    spec = QuantizationSpec(
        weight_bits=6,
        kinds={"dense": _bits(weight_bits=9)},
        layers={"logits": _bits(weight_bits=11, weight_integer=2)},
    )
    qmodel = quantize_model(model, spec)
    by_name = {layer.name: layer for layer in qmodel.layers}
    assert by_name["logits"].kernel_quantizer_internal.bits == 11
    assert by_name["logits"].kernel_quantizer_internal.integer == 2
    if "dense_1" in by_name:
        assert by_name["dense_1"].kernel_quantizer_internal.bits == 9
    recurrent = by_name.get(name) if name in ("lstm", "gru") else by_name.get("conv_1")
    if recurrent is not None:
        assert recurrent.kernel_quantizer_internal.bits == 6


def _bits(**kwargs):
    from hepfpga.quantize.qat import LayerBits

    return LayerBits(**kwargs)


def test_an_override_for_a_missing_layer_is_a_config_error() -> None:
    model = build_model(16, 5, MLPConfig(hidden_units=(4,)))
    with pytest.raises(ConfigError, match=r"layers\.logit.*did you mean 'logits'"):
        quantize_model(model, QuantizationSpec(layers={"logit": _bits(weight_bits=8)}))


def test_the_mapping_registry_covers_the_architectures() -> None:
    for float_class in ("Dense", "Conv2D", "LSTM", "GRU", "GarNet", "Activation", "Dropout"):
        assert float_class in LAYER_MAPPINGS


@pytest.mark.parametrize(
    ("name", "params", "shape"),
    [
        ("features", {"scaling": "standard"}, (16,)),
        ("constituent_sequence", {"n_constituents": 3}, (3, 3)),
        ("constituent_cloud", {"n_constituents": 4}, (4, 4)),
        ("jet_image", {"pixels": 8, "extent": 0.8}, (8, 8, 1)),
    ],
)
def test_representations_give_float32_inputs_per_split(synthetic_sample, name, params, shape):
    split = split_sample(synthetic_sample, (0.6, 0.2, 0.2), seed=0)
    prepared = REPRESENTATIONS[name](**params).prepare(split)
    assert prepared.input_shape == shape
    for part, jets in ((prepared.train, split.train), (prepared.test, split.test)):
        assert part.dtype == np.float32 and len(part) == len(jets)
    assert prepared.preprocessing["representation"] == name
    assert (prepared.scaler is not None) == (name == "features")


def test_coarser_jet_image_is_the_finer_one_summed(synthetic_sample) -> None:
    constituents = synthetic_sample.constituents * np.array([1.0, 1.6, 1.6]) - [0, 0.8, 0.8]
    fine = jet_images(constituents, 32, 0.8)[..., 0].astype(np.float64)
    coarse = jet_images(constituents, 16, 0.8)[..., 0]
    summed = fine.reshape(-1, 16, 2, 16, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(coarse, summed, atol=1e-6)
