"""QLSTM and QGRU: converted as LSTM/GRU holding the QKeras-quantized weights, verified
against the measured bound (table-based sigmoid/tanh), and every refusal with its message.

The fast tests need no g++; the two compiled models (one QLSTM, one QGRU, 8 steps, 8 units)
are built once per session and marked slow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError
from hepfpga.firmware import FirmwareOptions, VerificationReport, plan_conversion, verify_model
from hepfpga.firmware.hls_config import hls4ml_ready_model
from hepfpga.firmware.layers.recurrent import (
    MAX_TABLE_SIZE,
    MIN_TABLE_SIZE,
    QKERAS_BOUND,
    TABLE_TYPE,
    grid_type,
    table_size,
)
from hepfpga.quantize.fixed import FixedType

N_EVENTS = 300
#: what these small models must meet (measured: see docs/firmware.md), tighter than the
#: general bound QKERAS_BOUND that verification requires of every recurrent QKeras model
TEST_MODEL_BOUND = 0.05
MIN_ARGMAX_AGREEMENT = 0.95


def qrecurrent(kind: str, seed: int = 0, input_bits: int = 12, **layer_options: Any) -> Any:
    """input quantizer ``quantized_bits(input_bits, 3)`` -> QLSTM/QGRU(8) over 8 steps ->
    QDense logits -> softmax."""
    import tensorflow as tf
    from qkeras import QGRU, QLSTM, QActivation, QDense, quantized_bits
    from tensorflow import keras

    from hepfpga.quantize.qat import qkeras_compat

    qkeras_compat()
    tf.keras.utils.set_random_seed(seed)

    def q() -> Any:
        return quantized_bits(8, 0, alpha=1)

    options: dict[str, Any] = {
        "kernel_quantizer": q(),
        "recurrent_quantizer": q(),
        "bias_quantizer": q(),
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
    }
    if kind == "QGRU":
        options["reset_after"] = True
    options.update(layer_options)
    x = keras.Input((8, 3), name="sequence")
    h = QActivation(quantized_bits(input_bits, 3, alpha=1), name="input_quant")(x)
    layer = {"QLSTM": QLSTM, "QGRU": QGRU}[kind](8, name="rnn", **options)
    h = layer(h)
    kernel, recurrent, bias = layer.get_weights()  # non-zero biases, as after training
    layer.set_weights([kernel, recurrent, np.random.default_rng(seed).normal(0, 0.3, bias.shape)])
    logits = QDense(5, kernel_quantizer=q(), bias_quantizer=q(), name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(logits))


def _events(n: int = N_EVENTS, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("kind", ["QLSTM", "QGRU"])
def test_the_firmware_model_holds_the_quantized_weights(kind: str) -> None:
    model = qrecurrent(kind)
    ready = hls4ml_ready_model(model)
    twin = ready.get_layer("rnn")
    assert type(twin).__name__ == kind[1:]
    cell = model.get_layer("rnn").cell
    quantizers = (
        cell.kernel_quantizer_internal,
        cell.recurrent_quantizer_internal,
        cell.bias_quantizer_internal,
    )
    for quantizer, float_w, written in zip(
        quantizers, model.get_layer("rnn").get_weights(), twin.get_weights(), strict=True
    ):
        assert np.array_equal(written, np.asarray(quantizer(float_w)))
        assert not np.array_equal(written, float_w)  # the float weights are not what is written
    x = _events(64)
    np.testing.assert_allclose(
        ready.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["QLSTM", "QGRU"])
def test_weight_types_are_the_quantized_grid(kind: str) -> None:
    plan = plan_conversion(qrecurrent(kind))
    types = plan.precision["rnn"]
    weights = plan.model.get_layer("rnn").get_weights()
    for key, values in zip(("weight", "recurrent_weight", "bias"), weights, strict=True):
        fixed = types.hls_types()[key]
        assert fixed.fractional <= 7  # quantized_bits(8, 0): lsb 2**-7
        assert np.array_equal(fixed.quantize(values), values), key
    # state, result and accumulator: the input quantizer's type (one type in hls4ml's templates)
    assert types.result == types.accum == plan.precision["input_quant"].result


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.25, -0.5, 0.125], (4, 1)),
        ([1.5, -0.75], (4, 2)),
        ([0.0, 0.0], (2, 1)),
        ([0.3], None),
    ],
)
def test_grid_type(values: list[float], expected: tuple[int, int] | None) -> None:
    fixed = grid_type(values)
    if expected is None:
        assert fixed is None
        return
    assert isinstance(fixed, FixedType) and (fixed.width, fixed.integer) == expected
    assert np.array_equal(fixed.quantize(np.asarray(values)), np.asarray(values))


REFUSALS = {
    "state_quantizer": (
        "QLSTM",
        {"state_quantizer": "quantized_bits(16, 4, alpha=1)"},
        "layer 'rnn' (QLSTM): state_quantizer quantized_bits is ap_fixed<16,5,AP_RND_CONV,AP_SAT>, "
        "but hls4ml 1.3's recurrent templates hold the state in the layer's one type, its "
        "input's ap_fixed<12,4,AP_RND_CONV,AP_SAT> (a state type of its own breaks the g++ "
        "build in nnet_recurrent.h); give the state_quantizer that type, or "
        "state_quantizer=None",
    ),
    "quantized_tanh": (
        "QLSTM",
        {"activation": "quantized_tanh(8)"},
        "layer 'rnn' (QLSTM) has activation='quantized_tanh'; hls4ml 1.3's Vivado/Vitis "
        "recurrent templates compute activation='tanh' only (they reject quantized_tanh / "
        "hard_sigmoid): use activation='tanh' (a lookup table in firmware)",
    ),
    "hard_sigmoid": (
        "QGRU",
        {"recurrent_activation": "hard_sigmoid"},
        "layer 'rnn' (QGRU) has recurrent_activation='hard_sigmoid'; hls4ml 1.3's Vivado/Vitis "
        "recurrent templates compute recurrent_activation='sigmoid' only",
    ),
    "reset_before": (
        "QGRU",
        {"reset_after": False},
        "layer 'rnn' (QGRU) has reset_after=False; hls4ml 1.3's Vitis/Vivado GRU implements "
        "reset_after=True (the Keras default) only",
    ),
    "unquantized_kernel": (
        "QLSTM",
        {"kernel_quantizer": None},
        "layer 'rnn' (QLSTM) has no kernel_quantizer; hepfpga converts QLSTM/QGRU whose "
        "kernel, recurrent kernel and bias are all quantized",
    ),
}


@pytest.mark.parametrize("kind", ["QLSTM", "QGRU"])
def test_state_quantizer_of_the_state_type_converts(kind: str) -> None:
    """hls4ml's own QKeras RNN tests set a state_quantizer: one of the firmware's state type
    (the input's, quantized_bits(12, 3) here) converts, and the plan says so."""
    model = qrecurrent(kind, state_quantizer="quantized_bits(12, 3, alpha=1)")
    plan = plan_conversion(model)
    types = plan.precision["rnn"]
    assert types.result == plan.precision["input_quant"].result
    assert "state_quantizer quantized_bits = the state type" in types.source


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_name_the_layer_and_the_reason(case: str) -> None:
    kind, options, message = REFUSALS[case]
    with pytest.raises(ConversionError) as info:
        plan_conversion(qrecurrent(kind, **options))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("fractional", "entries"),
    [(0, MIN_TABLE_SIZE), (6, 1024), (8, 4096), (10, 16384), (12, 65536), (16, MAX_TABLE_SIZE)],
)
def test_table_size_gives_every_sigmoid_input_its_entry(fractional: int, entries: int) -> None:
    state = FixedType(4 + fractional, 4, True)
    assert table_size(state) == entries
    if MIN_TABLE_SIZE < entries < MAX_TABLE_SIZE:
        # hls4ml's index int(x * N / 16) is an integer for every x on the state's grid
        assert entries / 16 * state.lsb == 1.0


@pytest.mark.parametrize(
    ("kind", "input_bits", "entries"),
    [("QLSTM", 12, 4096), ("QGRU", 12, 4096), ("QLSTM", 16, 65536), ("QGRU", 20, MAX_TABLE_SIZE)],
)
def test_the_hls_config_sizes_the_tables_to_the_input(
    kind: str, input_bits: int, entries: int
) -> None:
    plan = plan_conversion(qrecurrent(kind, input_bits=input_bits))
    entry = plan.hls_config["LayerName"]["rnn"]
    # the state is the input's type (quantized_bits(input_bits, 3): input_bits - 4 fractional)
    assert plan.precision["rnn"].result.fractional == input_bits - 4
    assert entry["TableSize"] == entries
    # rounded 16-fractional-bit entries instead of hls4ml's truncating ap_fixed<18,8>
    assert entry["table_t"] == TABLE_TYPE.to_hls() == "ap_fixed<18,2,AP_RND_CONV,AP_SAT>"


_VERIFIED: dict[tuple[str, int], VerificationReport] = {}


def _verified(kind: str, input_bits: int = 12) -> VerificationReport:
    """The verification of :func:`qrecurrent` (compiled once per session and model)."""
    if (kind, input_bits) not in _VERIFIED:
        model = qrecurrent(kind, input_bits=input_bits)
        _VERIFIED[kind, input_bits] = verify_model(model, _events(), FirmwareOptions(), cache=False)
    return _VERIFIED[kind, input_bits]


@pytest.fixture(scope="session", params=["QLSTM", "QGRU"])
def compiled(request: pytest.FixtureRequest) -> tuple[str, VerificationReport]:
    return request.param, _verified(request.param)


@pytest.mark.slow
def test_a_finer_input_brings_the_firmware_closer_to_qkeras() -> None:
    """The state has the input's type: 12 fractional bits instead of 8 (and 65536-entry
    tables) shrink every rounding inside the recurrence (measured on the trained jet LSTM:
    logits 1.8 -> 0.11 off QKeras)."""
    coarse, fine = _verified("QLSTM", 12), _verified("QLSTM", 16)
    assert fine.passed and fine.precision["rnn"]["result"].startswith("ap_fixed<16,4")
    assert fine.outputs.logits_max_abs_diff < coarse.outputs.logits_max_abs_diff / 4, (
        coarse.summary(),
        fine.summary(),
    )
    assert fine.outputs.argmax_agreement >= coarse.outputs.argmax_agreement


@pytest.mark.slow
def test_verify_states_the_measured_bound(compiled: tuple[str, VerificationReport]) -> None:
    kind, report = compiled
    outputs = report.outputs
    assert report.quantized and report.bound == QKERAS_BOUND
    assert report.passed, report.summary()
    assert report.requirement.startswith(f"logits within {QKERAS_BOUND:g} (max |diff|)")
    assert "table-based sigmoid/tanh" in report.requirement
    # never claimed bit-exact: the tables differ from QKeras's float sigmoid/tanh
    assert not outputs.logits_bit_exact
    assert 0 < outputs.logits_max_abs_diff <= TEST_MODEL_BOUND <= QKERAS_BOUND, report.summary()
    assert outputs.argmax_agreement >= MIN_ARGMAX_AGREEMENT, report.summary()
    rnn = next(layer for layer in report.layers if layer.name == "rnn")
    assert not rnn.exact_expected and rnn.class_name == kind[1:]
    # the logits inherit the gates' table error: no later layer is blamed for it
    assert report.diagnosis is None, report.summary()
    assert report.precision["rnn"]["weight"].startswith("ap_fixed<")
