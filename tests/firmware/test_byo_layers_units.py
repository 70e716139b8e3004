"""Layer handlers without g++: the ready model, the graph walk, derived types, and every
refusal with its exact message."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError
from hepfpga.firmware import plan_conversion
from hepfpga.firmware.hls_config import hls4ml_ready_model
from hepfpga.firmware.layers import model_graph, refused_classes, registered_handlers
from hepfpga.firmware.precision import profile_ranges


def _x(model: Any, n: int = 64, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    return (np.random.default_rng(seed).normal(size=(n, *shape)) * scale).astype(np.float32)


def test_sequential_becomes_a_functional_equivalent(byo_models: Any) -> None:
    model = byo_models.sequential_float_tagger()
    ready = hls4ml_ready_model(model)
    names = [layer.name for layer in ready.layers]
    assert names == [
        "dense_1_input",
        "dense_1",
        "dense_1_relu",
        "bn_1",
        "dense_2",
        "dense_2_tanh",
        "output",
        "output_softmax",
    ]
    x = _x(model)
    assert np.array_equal(ready.predict(x, verbose=0), model.predict(x, verbose=0))
    graph = {node.name: node.inputs for node in model_graph(ready)}
    assert graph["dense_1_relu"] == ("dense_1",) and graph["bn_1"] == ("dense_1_relu",)
    plan = plan_conversion(model, ranges=profile_ranges(ready, x))
    assert plan.logits_layer == "output"
    assert plan.precision["output_softmax"].source == "softmax"
    assert plan.precision["dense_2_tanh"].source == "profiled, table (approximate)"


def test_qkeras_builtin_activation_is_split_into_a_qactivation(byo_models: Any) -> None:
    model = byo_models.sequential_qkeras_no_input_quantizer()
    ready = hls4ml_ready_model(model)
    split = ready.get_layer("dense_1_quantized_relu")
    assert type(split).__name__ == "QActivation"
    x = _x(model)
    assert np.array_equal(ready.predict(x, verbose=0), model.predict(x, verbose=0))
    plan = plan_conversion(model)
    assert plan.precision["dense_1"].source == "exact sum"
    assert plan.precision["dense_1_quantized_relu"].result.to_hls() == (
        "ap_ufixed<6,2,AP_RND_CONV,AP_SAT>"
    )
    assert plan.precision["dense_1_input"].source.startswith("default: no input quantizer")


def test_merge_types_are_exact(byo_models: Any) -> None:
    plan = plan_conversion(byo_models.qmerge(bits=6))
    types = {name: p.result.to_hls() for name, p in plan.precision.items()}
    # a_relu, b_relu: ap_ufixed<6,2>
    assert types["add"] == "ap_ufixed<7,3>"
    assert types["subtract"] == "ap_fixed<8,4>"  # signed although both inputs are unsigned
    assert types["multiply"] == "ap_ufixed<12,4>"
    assert types["average"] == "ap_ufixed<8,3>"
    assert types["maximum"] == types["minimum"] == "ap_ufixed<6,2>"
    assert types["concat_0"] == "ap_fixed<8,4>"
    assert types["dot"] == "ap_ufixed<14,6>"  # 4 products of 12 bits: 2 more bits


def _functional(*layers: Any, shape: tuple[int, ...] = (8,)) -> Any:
    from tensorflow import keras

    x = keras.Input(shape, name="features")
    h = x
    for layer in layers:
        h = layer(h)
    return keras.Model(x, h)


def _refused(case: str) -> Any:
    from tensorflow import keras

    layers = keras.layers
    if case == "conv2d_transpose":
        return _functional(layers.Conv2DTranspose(2, 3, name="deconv"), shape=(4, 4, 1))
    if case == "conv1d_transpose":
        return _functional(layers.Conv1DTranspose(2, 3, name="deconv"), shape=(8, 1))
    if case == "lambda":
        return _functional(layers.Lambda(lambda t: t * 2, name="double"))
    if case == "clipped_relu":
        return _functional(layers.ReLU(max_value=6.0, name="relu6"))
    if case == "bilinear":
        return _functional(
            layers.UpSampling2D(2, interpolation="bilinear", name="up"), shape=(4, 4, 1)
        )
    if case == "softmax_axis":
        return _functional(layers.Softmax(axis=1, name="sm"), shape=(4, 3))
    if case == "prelu_shared":
        return _functional(layers.PReLU(shared_axes=[1], name="prelu"), shape=(4, 3))
    if case == "simple_rnn":
        return _functional(layers.SimpleRNN(4, name="rnn"), shape=(5, 2))
    if case == "qlstm":
        from qkeras import QLSTM, quantized_bits

        q = quantized_bits(6, 0, alpha=1)
        return _functional(
            QLSTM(4, kernel_quantizer=q, recurrent_quantizer=q, bias_quantizer=q, name="qlstm"),
            shape=(5, 2),
        )
    if case == "lstm_state":
        return _functional(layers.LSTM(4, go_backwards=True, name="lstm"), shape=(5, 2))
    if case == "three_input_add":
        x = keras.Input((4,), name="features")
        a, b, c = (layers.Dense(4, name=n)(x) for n in "abc")
        return keras.Model(x, layers.Add(name="sum3")([a, b, c]))
    if case == "shared_layer":
        x = keras.Input((4,), name="features")
        dense = layers.Dense(4, name="shared")
        return keras.Model(x, layers.Add(name="add")([dense(x), dense(layers.ReLU()(x))]))
    if case == "unknown":
        return _functional(layers.RepeatVector(2, name="repeat"))
    raise KeyError(case)


REFUSALS = {
    "conv2d_transpose": "layer 'deconv' (Conv2DTranspose): hls4ml 1.3 has no transposed "
    "convolution; for a decoder or generator use UpSampling2D followed by Conv2D "
    "(nearest-neighbour up-sampling, then a learned filter)",
    "conv1d_transpose": "layer 'deconv' (Conv1DTranspose): hls4ml 1.3 has no transposed "
    "convolution; for a decoder or generator use UpSampling1D followed by Conv1D",
    "lambda": "layer 'double' (Lambda): a Lambda layer holds arbitrary Python code, which "
    "hepfpga never runs and hls4ml cannot convert; replace it with standard layers",
    "clipped_relu": "layer 'relu6' (ReLU) has {'max_value': 6.0}, which hls4ml ignores (it "
    "writes a plain relu); use QActivation(quantized_relu(bits, integer)) for a clipped relu",
    "bilinear": "layer 'up' (UpSampling2D) uses interpolation 'bilinear'; hls4ml implements "
    "'nearest' only",
    "softmax_axis": "layer 'sm' (Softmax) over axis 1; hls4ml computes the softmax over the "
    "last axis only",
    "prelu_shared": "layer 'prelu' (PReLU) shares alpha over axes [1]; hls4ml supports PReLU "
    "with shared_axes=None only",
    "simple_rnn": "layer 'rnn' (SimpleRNN): hls4ml 1.3 implements SimpleRNN in the Quartus "
    "backend only, not Vitis; use --backend Quartus, or LSTM/GRU or QLSTM/QGRU (Vitis, Vivado)",
    # QKeras's default activation
    "qlstm": "layer 'qlstm' (QLSTM) has activation='quantized_tanh'; hls4ml 1.3's "
    "Vivado/Vitis recurrent templates compute activation='tanh' only (they reject "
    "quantized_tanh / hard_sigmoid)",
    "lstm_state": "layer 'lstm' (LSTM) uses return_state/go_backwards/stateful, which hls4ml "
    "1.3 does not convert; use a plain forward layer",
    "three_input_add": "layer 'sum3' (Add) merges 3 inputs; hls4ml 1.3 merges two: chain "
    "two-input Add layers instead",
    "shared_layer": "layer 'shared' is called 2 times (a shared layer); hls4ml converts each "
    "layer once: use a separate layer per call",
    "unknown": "layer 'repeat' (RepeatVector) is not supported; supported: Activation, Add",
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_name_the_layer_and_what_to_use(case: str) -> None:
    model = _refused(case)
    # float models: they need ranges
    ranges = profile_ranges(model, _x(model, 8))
    with pytest.raises(ConversionError) as info:
        plan_conversion(model, ranges=ranges)
    assert REFUSALS[case] in str(info.value)


def test_lambda_code_is_never_run() -> None:
    from tensorflow import keras

    calls = []

    def spy(t: Any) -> Any:
        calls.append(1)
        return t

    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Lambda(spy, name="spy")(x))
    before = len(calls)  # Keras traced it once while building
    with pytest.raises(ConversionError, match="'spy' \\(Lambda\\)"):
        plan_conversion(model)
    assert len(calls) == before


def test_float_model_on_huge_inputs_is_refused_before_compiling() -> None:
    """Issue 9: inputs of 1e30 gave ap_fixed<18,104> and a SIGABRT in the C simulation."""
    from tensorflow import keras

    model = _functional(keras.layers.Dense(4, name="dense"))
    x = _x(model, scale=1e30)
    with pytest.raises(ConversionError) as info:
        plan_conversion(model, ranges=profile_ranges(model, x))
    message = str(info.value)
    assert message.startswith("layer 'features': values reach ")
    assert "which needs 104 integer bits; profiled types are bounded to 32" in message
    assert "Standardise the inputs" in message


def test_types_wider_than_the_bound_are_refused() -> None:
    from qkeras import QActivation, QDense, quantized_bits

    q = quantized_bits(6, 0, alpha=1)
    layers: list[Any] = [QActivation(quantized_bits(16, 5, alpha=1), name="q_in")]
    layers += [QDense(4, kernel_quantizer=q, bias_quantizer=q, name=f"d{i}") for i in range(30)]
    with pytest.raises(ConversionError, match=r"layer 'd\d+' \(QDense\): its result type "):
        plan_conversion(_functional(*layers))


def test_every_handler_states_its_exactness_and_emulator() -> None:
    handlers = registered_handlers()
    assert {"Sequential", "Functional"}.isdisjoint(handlers)
    for name, handler in handlers.items():
        assert handler.exactness and handler.emulation.summary, name
    assert not set(handlers) & set(refused_classes())


def test_hls4ml_keras_layers_are_handled_or_listed() -> None:
    """Every layer class hls4ml 1.3's Keras-2 frontend converts is either handled, refused
    with a reason, or in the list still to do (issue 8); nothing is silently unknown."""
    from hls4ml.converters.keras_v2_to_hls import get_supported_keras_layers

    still_to_do = {
        "FixedPointQuantizer",
        "HGQ>FixedPointQuantizer",
        "UnaryLUT",
        "HGQ>UnaryLUT",
        "HardActivation",
        "TernaryTanh",
        "Functional",
        "Sequential",
        "Model",
    }
    known = set(registered_handlers()) | set(refused_classes()) | still_to_do
    assert set(get_supported_keras_layers()) - known == set()


def test_assert_bit_exact_validates_options_like_the_cli(small_tagger: Any) -> None:
    from hepfpga.errors import ConfigError
    from hepfpga.firmware.testing import assert_bit_exact

    with pytest.raises(ConfigError) as info:
        assert_bit_exact(small_tagger, np.zeros((2, 16), np.float32), io_typ="io_stream")
    assert info.value.path == "firmware.io_typ"
    assert "unknown key 'io_typ'; did you mean 'io_type'?" in str(info.value)


def test_large_unrolled_models_get_size_advice() -> None:
    from tensorflow import keras

    from hepfpga.firmware import FirmwareOptions
    from hepfpga.firmware.hls_config import LARGE_UNROLLED

    model = _functional(
        keras.layers.Conv1D(32, 5, padding="same", name="conv_1"),
        keras.layers.Conv1D(32, 5, padding="same", name="conv_2"),
        shape=(100, 16),
    )
    plan = plan_conversion(model, ranges=profile_ranges(model, _x(model, 8)))
    # 100 positions x (5 x 16 x 32 + 5 x 32 x 32) products
    assert plan.multiplications == 100 * (5 * 16 * 32 + 5 * 32 * 32) > LARGE_UNROLLED
    advice = plan.size_advice(FirmwareOptions())
    assert advice is not None
    assert advice.startswith("the model unrolls 768,000 multiplications per event")
    assert "--io-type io_stream --strategy resource" in advice
    assert plan.size_advice(FirmwareOptions(io_type="io_stream")) is None
    assert plan.size_advice(FirmwareOptions(reuse_factor=8)) is None  # 96,000 unrolled
