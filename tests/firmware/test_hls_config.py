"""build_hls_config: types derived from the QKeras quantizers (no hls4ml compilation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConfigError, ConversionError
from hepfpga.firmware import FirmwareOptions, build_hls_config, plan_conversion
from hepfpga.firmware.hls_config import hls4ml_ready_model, input_fixed_type, logits_layer_name


@pytest.mark.parametrize(
    ("widths", "input_type", "weight_type", "relu_type"),
    [
        (
            {},
            "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
            "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
            "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>",
        ),
        (
            {"weight_bits": 4, "activation_bits": 8, "input_bits": 12, "input_integer": 4},
            "ap_fixed<12,5,AP_RND_CONV,AP_SAT>",
            "ap_fixed<4,1,AP_RND_CONV,AP_SAT>",
            "ap_ufixed<8,0,AP_RND_CONV,AP_SAT>",
        ),
        (
            {"weight_bits": 8, "weight_integer": 1},
            "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
            "ap_fixed<8,2,AP_RND_CONV,AP_SAT>",
            "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>",
        ),
    ],
)
def test_types_follow_the_quantizers(
    tagger_factory: Any, widths: dict, input_type: str, weight_type: str, relu_type: str
) -> None:
    config = build_hls_config(tagger_factory(**widths), FirmwareOptions())
    layers = config["LayerName"]
    # hls4ml reserves the name 'input': the input layer is renamed
    assert "input" not in layers
    assert layers["input_layer"]["Precision"]["result"] == input_type
    for name in ("dense_1", "dense_2", "dense_3", "logits"):
        precision = layers[name]["Precision"]
        assert precision["weight"] == precision["bias"] == weight_type
        assert precision["accum"] == precision["result"]
        assert precision["result"].startswith("ap_fixed<")
    for name in ("relu_1", "relu_2", "relu_3"):
        assert layers[name]["Precision"]["result"] == relu_type
    assert layers["logits"]["Trace"] is True


def test_softmax_uses_layer_level_keys(small_tagger: Any) -> None:
    options = FirmwareOptions(softmax_table_size=2048, softmax_range_bits=4)
    softmax = build_hls_config(small_tagger, options)["LayerName"]["softmax"]
    assert softmax["Implementation"] == "stable"
    assert softmax["TableSize"] == 2048
    assert softmax["exp_table_t"] == softmax["inv_table_t"] == "ap_ufixed<18,1,AP_RND,AP_SAT>"
    assert softmax["inp_norm_t"] == "ap_ufixed<11,4,AP_RND,AP_SAT>"
    # 5 classes: the sum of exp lies in [1, 5], 3 integer bits, 17 fractional as the table
    assert softmax["inv_inp_t"] == "ap_ufixed<11,3,AP_RND,AP_SAT>"
    assert softmax["Precision"] == {
        "result": "ap_ufixed<16,0,AP_RND,AP_SAT>",
        "accum": "ap_ufixed<20,3,AP_RND,AP_SAT>",
    }


def test_model_options_are_applied(small_tagger: Any) -> None:
    config = build_hls_config(small_tagger, FirmwareOptions(strategy="Resource", reuse_factor=4))
    assert config["Model"]["Strategy"] == "Resource"
    assert config["Model"]["ReuseFactor"] == 4
    assert config["LayerName"]["dense_1"]["ReuseFactor"] == 4


def test_input_type_option_overrides_the_quantizer(small_tagger: Any) -> None:
    options = FirmwareOptions(input_type="ap_fixed<18,8,AP_RND_CONV,AP_SAT>")
    config = build_hls_config(small_tagger, options)
    assert (
        config["LayerName"]["input_layer"]["Precision"]["result"]
        == "ap_fixed<18,8,AP_RND_CONV,AP_SAT>"
    )


def test_ready_model_is_a_renamed_equivalent_copy(small_tagger: Any) -> None:
    ready = hls4ml_ready_model(small_tagger)
    assert ready is not small_tagger
    assert small_tagger.layers[0].name == "input"
    assert ready.layers[0].name == "input_layer"
    assert [layer.name for layer in ready.layers[1:]] == [
        layer.name for layer in small_tagger.layers[1:]
    ]
    x = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    assert np.array_equal(ready.predict(x, verbose=0), small_tagger.predict(x, verbose=0))
    assert hls4ml_ready_model(ready) is ready
    assert logits_layer_name(ready) == "logits"
    assert input_fixed_type(ready).to_hls() == "ap_fixed<16,6,AP_RND_CONV,AP_SAT>"


def _model(layers: list[Any]) -> Any:
    from tensorflow import keras

    x = keras.Input((16,), name="features")
    h = x
    for layer in layers:
        h = layer(h)
    return keras.Model(x, h)


def test_missing_input_quantizer_gets_the_documented_default() -> None:
    from qkeras import QDense, quantized_bits
    from tensorflow import keras

    q = quantized_bits(6, 0, alpha=1)
    model = _model(
        [
            QDense(5, kernel_quantizer=q, bias_quantizer=q, name="logits"),
            keras.layers.Activation("softmax"),
        ]
    )
    plan = plan_conversion(model, FirmwareOptions())
    types = plan.precision["features"]
    assert types.result.to_hls() == "ap_fixed<16,6,AP_RND_CONV,AP_SAT>"
    assert types.source == "default: no input quantizer (16 bits, no events)"
    # with the events' range: the integer bits of the largest input plus one of headroom
    plan = plan_conversion(model, FirmwareOptions(), ranges={"features": (-3.2, 2.5)})
    assert plan.precision["features"].result.to_hls() == "ap_fixed<16,4,AP_RND_CONV,AP_SAT>"
    config = build_hls_config(
        model, FirmwareOptions(input_type="ap_fixed<16,5,AP_RND_CONV,AP_SAT>")
    )
    assert (
        config["LayerName"]["features"]["Precision"]["result"]
        == "ap_fixed<16,5,AP_RND_CONV,AP_SAT>"
    )
    with pytest.raises(ConfigError, match="input_type") as info:
        input_fixed_type(model)
    assert info.value.path == "firmware.input_type"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("auto_alpha", "alpha='auto'"),
        ("repeat", r"\(RepeatVector\) is not supported; supported: Activation, Add"),
        ("sigmoid_quantizer", "use_real_sigmoid=True computes a real sigmoid"),
        ("unquantized_dense", "float layer in a QKeras model; use QDense"),
        ("unsigned_weights", "keep_negative=False"),
    ],
)
def test_unsupported_models_are_refused(case: str, message: str) -> None:
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    def q(alpha: Any = 1) -> Any:
        return quantized_bits(6, 0, alpha=alpha)

    head = [QActivation(quantized_bits(16, 5, alpha=1))]
    tail = [
        QDense(5, kernel_quantizer=q(), bias_quantizer=q(), name="logits"),
        keras.layers.Activation("softmax"),
    ]
    middle = {
        # a learned scale is accepted on weights only (tests/firmware/test_byo_quantizers.py)
        "auto_alpha": [QActivation(q("auto"))],
        "repeat": [keras.layers.RepeatVector(2)],
        "sigmoid_quantizer": [QActivation("quantized_sigmoid(6, use_real_sigmoid=True)")],
        "unquantized_dense": [keras.layers.Dense(8)],
        "unsigned_weights": [
            QDense(8, kernel_quantizer=quantized_bits(6, 0, keep_negative=False, alpha=1))
        ],
    }[case]
    layers = head + middle + tail
    with pytest.raises(ConversionError, match=message):
        build_hls_config(_model(layers), FirmwareOptions())


def test_a_model_without_softmax_has_its_output_as_logits() -> None:
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    q = quantized_bits(6, 0, alpha=1)
    inputs = keras.Input((4,), name="x")
    h = QActivation(quantized_bits(12, 3, alpha=1), name="xq")(inputs)
    model = keras.Model(inputs, QDense(2, kernel_quantizer=q, bias_quantizer=q, name="out")(h))
    assert logits_layer_name(model) == "out"
    assert build_hls_config(model)["LayerName"]["out"]["Trace"] is True
