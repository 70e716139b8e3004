"""Depthwise and separable convolutions, bring-your-own-model style (family x backend x
io_type x bit width): QKeras models must verify bit-exact, float ones within the measured
bound, and the emulator must use the fixed-point engine, identical to the C simulation.
Unsupported settings are refused with the layer's name and what to do instead.

One compiled project per case (verify compiles into the session cache; the emulator reuses it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError
from hepfpga.firmware import FirmwareOptions, VerificationReport, verify_model

N_EVENTS = 300


def _q(bits: int, integer: int = 0) -> Any:
    from qkeras import quantized_bits

    return quantized_bits(bits, integer, alpha=1)


def qdepthwise_separable_2d(bits: int = 6, seed: int = 0) -> Any:
    """QDepthwiseConv2D 'same' -> relu -> QSeparableConv2D -> relu -> flatten -> softmax."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, QDepthwiseConv2D, QSeparableConv2D, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((6, 6, 2), name="image")
    h = QActivation(_q(8, 2), name="input_quant")(x)
    h = QDepthwiseConv2D(
        3, padding="same", depthwise_quantizer=_q(bits), bias_quantizer=_q(bits), name="dw"
    )(h)
    h = QActivation(quantized_relu(bits, 2), name="relu_1")(h)
    h = QSeparableConv2D(
        3,
        3,
        depthwise_quantizer=_q(bits),
        pointwise_quantizer=_q(bits),
        bias_quantizer=_q(bits),
        name="sep",
    )(h)
    h = QActivation(quantized_relu(bits, 2), name="relu_2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))


def qseparable_1d(bits: int = 4, seed: int = 0) -> Any:
    """QSeparableConv1D 'same' with a built-in quantized relu, average pooling, and a second
    QSeparableConv1D as the output (its logits: hls4ml's '<name>_pointwise')."""
    import tensorflow as tf
    from qkeras import QActivation, QSeparableConv1D
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((10, 3), name="sequence")
    h = QActivation(_q(10, 3), name="input_quant")(x)
    h = QSeparableConv1D(
        4,
        3,
        padding="same",
        activation=f"quantized_relu({bits}, 2)",
        depthwise_quantizer=_q(bits),
        pointwise_quantizer=_q(bits),
        bias_quantizer=_q(bits),
        name="sep",
    )(h)
    h = keras.layers.AveragePooling1D(2, name="avg")(h)
    out = QSeparableConv1D(
        2,
        3,
        depthwise_quantizer=_q(bits),
        pointwise_quantizer=_q(bits),
        bias_quantizer=_q(bits),
        name="sep_out",
    )(h)
    return keras.Model(x, out)


def float_depthwise_separable(seed: int = 0) -> Any:
    """Float DepthwiseConv1D, SeparableConv1D (relu), a reshape to an image, DepthwiseConv2D,
    SeparableConv2D 'same', global average pooling over 14 positions, softmax output."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((10, 2), name="sequence")
    h = keras.layers.DepthwiseConv1D(3, padding="same", name="dw_1d")(x)
    h = keras.layers.SeparableConv1D(3, 3, activation="relu", name="sep_1d")(h)
    h = keras.layers.Reshape((8, 3, 1), name="to_image")(h)
    h = keras.layers.DepthwiseConv2D(2, name="dw_2d")(h)
    h = keras.layers.SeparableConv2D(2, 2, padding="same", name="sep_2d")(h)
    h = keras.layers.GlobalAveragePooling2D(name="global_avg")(h)
    return keras.Model(x, keras.layers.Dense(3, activation="softmax", name="output")(h))


@dataclass(frozen=True)
class Case:
    builder: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    #: None: bit-exact logits (QKeras); a number: the measured bound on the logits (float)
    tolerance: float | None = None


#: family - backend - io_type - bit width
CASES = {
    "qdepthwise2d-qseparable2d-Vitis-parallel-w6": Case(qdepthwise_separable_2d, {"bits": 6}),
    "qseparable1d-builtin-relu-avgpool-separable-output-Vivado-stream-w4": Case(
        qseparable_1d, {"bits": 4}, {"backend": "Vivado", "io_type": "io_stream"}
    ),
    "float-depthwise-separable-1d-2d-Vitis-stream": Case(
        float_depthwise_separable, options={"io_type": "io_stream"}, tolerance=0.001
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[Case, Any, Any, VerificationReport]:
    spec = CASES[request.param]
    model = spec.builder(**spec.kwargs)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N_EVENTS, *model.inputs[0].shape[1:])).astype(np.float32)
    report = verify_model(model, x, FirmwareOptions(**spec.options), tolerance=spec.tolerance)
    return spec, model, x, report


@pytest.mark.slow
def test_verify_states_the_exactness(case: tuple[Case, Any, Any, VerificationReport]) -> None:
    spec, _, _, report = case
    assert report.passed, report.summary()
    if spec.tolerance is None:
        assert report.outputs.logits_bit_exact, report.summary()
        assert report.outputs.logits_max_abs_diff == 0.0
        for layer in report.layers:
            if layer.exact_expected:
                assert layer.fraction_bit_exact == 1.0, report.summary()
        assert report.diagnosis is None
    else:
        assert 0 < report.outputs.logits_max_abs_diff <= spec.tolerance, report.summary()


@pytest.mark.slow
def test_every_depthwise_and_separable_layer_is_compared(
    case: tuple[Case, Any, Any, VerificationReport],
) -> None:
    """hls4ml splits a separable layer into '<name>_depthwise' and '<name>_pointwise'; its
    output (the pointwise part) is compared under the Keras layer's name."""
    _, model, _, report = case
    compared = {layer.name: layer for layer in report.layers}
    conv = [
        layer.name
        for layer in model.layers
        if "Depthwise" in type(layer).__name__ or "Separable" in type(layer).__name__
    ]
    assert conv and set(conv) <= set(compared), sorted(compared)
    for name in conv:
        assert compared[name].hls_type.startswith("ap_fixed<"), compared[name]


@pytest.mark.slow
def test_emulator_uses_the_proven_engine(case: tuple[Case, Any, Any, VerificationReport]) -> None:
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.csim import predict, predict_with_logits
    from hepfpga.firmware.emulate import ENGINE_FIXED, EmulationFallbackWarning, Emulator
    from hepfpga.firmware.verify import plan_for_events

    spec, model, x, _ = case
    options = FirmwareOptions(**spec.options)
    plan, events = plan_for_events(model, x, options)
    project = cached_project(plan, options)
    assert project.from_cache
    classes = {layer.class_name for layer in project.hls_model.get_layers()}
    assert classes & {"DepthwiseConv1D", "DepthwiseConv2D"}, classes
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, check_events=200, stress_events=300)
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    wide = np.random.default_rng(5).normal(size=events.shape).astype(np.float32) * 4
    assert np.array_equal(emulator.predict(wide), predict(project, wide))
    # the logits, also when they are a separable layer's (read from '<name>_pointwise')
    out, logits = emulator.predict_with_logits(wide)
    ref_out, ref_logits = predict_with_logits(project, wide)
    assert np.array_equal(out, ref_out) and np.array_equal(logits, ref_logits)


# -- refusals: the layer, what hls4ml 1.3 lacks, what to do instead ---------------------------
def _qdepthwise(io_type: str = "io_parallel", **kwargs: Any) -> Any:
    from qkeras import QActivation, QDepthwiseConv2D
    from tensorflow import keras

    x = keras.Input((6, 6, 2), name="image")
    h = QActivation(_q(8, 2), name="input_quant")(x)
    settings = {"kernel_size": 3, "depthwise_quantizer": _q(6), "bias_quantizer": _q(6)}
    settings.update(kwargs)
    return keras.Model(x, QDepthwiseConv2D(name="dw", **settings)(h))


@pytest.mark.parametrize(
    ("layer", "options", "message"),
    [
        (
            {"depth_multiplier": 2},
            {},
            "layer 'dw' (QDepthwiseConv2D): depth_multiplier=2; hls4ml 1.3 implements a depth "
            "multiplier of 1 only (its C++ aborts otherwise). Use depth_multiplier=1, followed "
            "by a 1x1 Conv for more channels",
        ),
        (
            {"dilation_rate": 2},
            {},
            "layer 'dw' (QDepthwiseConv2D): dilation_rate=(2, 2); hls4ml 1.3 has no dilated "
            "depthwise convolution. Use dilation_rate=1",
        ),
        (
            {},
            {"strategy": "resource"},
            "layer 'dw' (QDepthwiseConv2D): hls4ml 1.3's io_parallel depthwise convolution has "
            "no Resource strategy (its C++ aborts); use --strategy latency, or --io-type io_stream",
        ),
        (
            {"kernel_size": (3, 2)},
            {"io_type": "io_stream"},
            "layer 'dw' (QDepthwiseConv2D): kernel_size=(3, 2); hls4ml 1.3's io_stream depthwise "
            "convolution needs a square kernel. Use a square kernel, or --io-type io_parallel",
        ),
    ],
    ids=["depth-multiplier", "dilation", "resource-parallel", "stream-non-square"],
)
def test_unsupported_settings_are_refused(
    layer: dict[str, Any], options: dict[str, Any], message: str
) -> None:
    from hepfpga.firmware.hls_config import plan_conversion

    with pytest.raises(ConversionError) as info:
        plan_conversion(_qdepthwise(**layer), FirmwareOptions(**options))
    assert str(info.value) == message


def test_float_depthwise_in_a_qkeras_model_is_refused() -> None:
    from qkeras import QActivation, QDense
    from tensorflow import keras

    from hepfpga.firmware.hls_config import plan_conversion

    x = keras.Input((6, 6, 2), name="image")
    h = QActivation(_q(8, 2), name="input_quant")(x)
    h = keras.layers.DepthwiseConv2D(3, name="dw")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    model = keras.Model(x, QDense(2, kernel_quantizer=_q(6), bias_quantizer=_q(6))(h))
    with pytest.raises(ConversionError) as info:
        plan_conversion(model)
    assert str(info.value) == (
        "layer 'dw' (DepthwiseConv2D) is a float layer in a QKeras model; use QDepthwiseConv2D "
        "with quantizers so its firmware is exact (or give no QKeras layer at all: a float "
        "model gets profiled types)"
    )


def test_qkeras_types_are_exact_sums() -> None:
    """QSeparableConv2D: depthwise phase ``input + weight + ceil(log2(9))`` bits, pointwise
    phase that plus the channel sum and the bias (hls4ml's keys for its split)."""
    from hepfpga.firmware.hls_config import plan_conversion

    plan = plan_conversion(qdepthwise_separable_2d(bits=6))
    entry = plan.hls_config["LayerName"]["sep"]["Precision"]
    # relu_1 is ap_ufixed<6,2>, kernels ap_fixed<6,1>: 6 + 6 + 4 bits, 2 + 1 + 4 integer
    assert entry["depthwise"] == "ap_fixed<6,1,AP_RND_CONV,AP_SAT>"
    assert entry["depthwise_result"] == "ap_fixed<16,7>"
    assert entry["pointwise"] == "ap_fixed<6,1,AP_RND_CONV,AP_SAT>"
    # 16 + 6 + ceil(log2(2 channels)) = 23 bits, one more for the bias
    assert entry["result"] == "ap_fixed<24,10>"
