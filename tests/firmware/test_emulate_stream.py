"""The fixed-point engine on io_stream CNNs: identical to the C simulation, or a named fallback.

Cases (family - backend - io_type - bit width) are tiny QKeras CNNs holding what hls4ml's
io_stream flow inserts or changes: ``ZeroPadding`` layers in front of ``padding='same'``
convolutions, a ``Clone`` of a tensor read twice (a skip connection), line-buffer max and
average pooling, flatten, dense and softmax. One compiled project per case (verify compiles
it into the session cache; the emulator reuses it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions, VerificationReport, verify_model

N_EVENTS = 300


def _q(bits: int, integer: int = 0) -> Any:
    from qkeras import quantized_bits

    return quantized_bits(bits, integer, alpha=1)


def qcnn2d_same_pools(bits: int = 6, seed: int = 0) -> Any:
    """QConv2D 'same' -> relu -> max pool -> QConv2D 'same' -> relu -> average pool ->
    flatten -> QDense -> softmax."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((8, 8, 2), name="image")
    h = QActivation(_q(8, 2), name="input_quant")(x)
    for i in (1, 2):
        h = QConv2D(
            3,
            3,
            padding="same",
            kernel_quantizer=_q(bits),
            bias_quantizer=_q(bits),
            name=f"conv_{i}",
        )(h)
        h = QActivation(quantized_relu(bits, 2), name=f"relu_{i}")(h)
        pool = keras.layers.MaxPooling2D if i == 1 else keras.layers.AveragePooling2D
        h = pool(2, name=f"pool_{i}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))


def qcnn1d_skip(bits: int = 4, seed: int = 0) -> Any:
    """A QConv1D block with a skip connection: relu_1 is read by conv_2 and by the Add."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((12, 2), name="sequence")
    h = QActivation(_q(10, 3), name="input_quant")(x)
    convs = []
    for i in (1, 2):
        h = QConv1D(
            3,
            3,
            padding="same",
            kernel_quantizer=_q(bits),
            bias_quantizer=_q(bits),
            name=f"conv_{i}",
        )(h)
        h = QActivation(quantized_relu(bits, 2), name=f"relu_{i}")(h)
        convs.append(h)
    h = keras.layers.Add(name="skip")(convs)
    h = keras.layers.MaxPooling1D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    return keras.Model(
        x, QDense(2, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    )


@dataclass(frozen=True)
class Case:
    builder: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    #: hls4ml layer classes io_stream must have put into the graph
    inserted: tuple[str, ...] = ()


CASES = {
    "qcnn2d-same-maxpool-avgpool-Vitis-stream-w6": Case(
        qcnn2d_same_pools, {"bits": 6}, {"io_type": "io_stream"}, ("ZeroPadding2D",)
    ),
    "qcnn1d-same-skip-clone-Vivado-stream-w4": Case(
        qcnn1d_skip,
        {"bits": 4},
        {"io_type": "io_stream", "backend": "Vivado"},
        ("ZeroPadding1D", "Clone"),
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def stream_case(request: pytest.FixtureRequest) -> tuple[Case, Any, Any, VerificationReport]:
    spec = CASES[request.param]
    model = spec.builder(**spec.kwargs)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N_EVENTS, *model.inputs[0].shape[1:])).astype(np.float32)
    report = verify_model(model, x, FirmwareOptions(**spec.options))
    return spec, model, x, report


def _project(spec: Case, model: Any, x: Any) -> Any:
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.verify import plan_for_events

    options = FirmwareOptions(**spec.options)
    plan, events = plan_for_events(model, x, options)
    project = cached_project(plan, options)
    assert project.from_cache  # verify compiled it: no second g++ run
    return project, events


@pytest.mark.slow
def test_stream_cnn_verifies_bit_exact(stream_case: tuple[Case, Any, Any, Any]) -> None:
    _, _, _, report = stream_case
    assert report.passed, report.summary()
    assert report.outputs.logits_bit_exact and report.outputs.logits_max_abs_diff == 0.0
    for layer in report.layers:
        if layer.exact_expected:
            assert layer.fraction_bit_exact == 1.0, report.summary()


@pytest.mark.slow
def test_stream_cnn_is_emulated_identically(stream_case: tuple[Case, Any, Any, Any]) -> None:
    from hepfpga.firmware.csim import predict, predict_with_logits
    from hepfpga.firmware.emulate import ENGINE_FIXED, EmulationFallbackWarning, Emulator

    spec, model, x, _ = stream_case
    project, events = _project(spec, model, x)
    classes = {layer.class_name for layer in project.hls_model.get_layers()}
    assert set(spec.inserted) <= classes, classes
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, check_events=200, stress_events=300)
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert emulator.check is not None and emulator.check.passed
    # fresh events, saturating ones included, against the C simulation bit for bit
    wide = np.random.default_rng(9).normal(size=events.shape).astype(np.float32) * 4
    assert np.array_equal(emulator.predict(wide), predict(project, wide))
    if project.logits_layer:
        out, logits = emulator.predict_with_logits(wide)
        ref_out, ref_logits = predict_with_logits(project, wide)
        assert np.array_equal(out, ref_out) and np.array_equal(logits, ref_logits)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"pool_2": {"accum": "ap_ufixed<10,8>"}}, "fewer fractional bits than the input"),
        ({"pool_2": {"accum": "ap_ufixed<10,3>"}}, "may overflow within a window sum"),
    ],
    ids=["avgpool-accum-rounds", "avgpool-accum-overflows"],
)
def test_unreproducible_stream_pooling_is_named(
    tmp_path: Path, override: dict[str, Any], reason: str
) -> None:
    """What the engine cannot prove is refused with the layer and the reason (the emulator
    turns it into a fallback to the C simulation); no compilation needed to find it."""
    from hepfpga.firmware import write_project
    from hepfpga.firmware.emulate_engine.plan import UnsupportedLayerError, build_plan

    options = FirmwareOptions(io_type="io_stream", layer_types=override)
    project = write_project(qcnn2d_same_pools(), options, tmp_path / "fw")
    with pytest.raises(UnsupportedLayerError, match=f"layer 'pool_2'.*{reason}"):
        build_plan(project.hls_model)


def test_dot_in_io_stream_is_refused_by_name(byo_models: Any) -> None:
    """hls4ml 1.3 writes io_parallel dot1d calls on streams (g++ fails on them): refused
    before anything is written, instead of a compiler error."""
    from hepfpga.errors import ConversionError
    from hepfpga.firmware.hls_config import plan_conversion

    with pytest.raises(ConversionError) as info:
        plan_conversion(byo_models.qmerge(), FirmwareOptions(io_type="io_stream"))
    assert str(info.value) == (
        "layer 'dot' (Dot): hls4ml 1.3 has no io_stream Dot (the C++ it writes does not "
        "compile); use --io-type io_parallel"
    )


def test_a_failed_compilation_reports_the_compiler_errors(tmp_path: Path) -> None:
    """g++ ends with pages of warnings; the error names its first errors (found with the
    io_stream Dot, whose message used to be eight lines of ap_private.h warnings)."""
    from hepfpga.errors import ConversionError
    from hepfpga.firmware.project import _build_library

    (tmp_path / "firmware").mkdir()
    noise = "\n".join(f"echo 'ap_private.h:{i}: warning: deprecated'" for i in range(12))
    (tmp_path / "build_lib.sh").write_text(
        "WEIGHTS_DIR=weights\n"
        "echo 'myproject.cpp:214:58: error: cannot convert stream to array'\n"
        f"{noise}\nexit 1\n"
    )
    with pytest.raises(ConversionError) as info:
        _build_library(tmp_path)
    message = str(info.value)
    assert message.endswith("myproject.cpp:214:58: error: cannot convert stream to array")
    assert "warning" not in message
