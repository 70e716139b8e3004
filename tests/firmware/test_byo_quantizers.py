"""QKeras quantizer coverage (issue 20): the quantizers hls4ml 1.3 converts, each converted,
verified with its stated exactness and emulated, in hls4ml's test style (test_qkeras.py).

Compile time is shared: every quantizer of a kind is one branch of one small model, compiled
once per module (``quantizer_project``); the per-quantizer tests read that one verification.
The unit tests (no g++) check the mappings, the rewrites (same outputs before and after, as
qonnx's transformation tests do) and the refusals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError
from hepfpga.firmware import FirmwareOptions, VerificationReport, verify_model
from hepfpga.firmware.emulate import ENGINE_FIXED, Emulator
from hepfpga.firmware.project import compile_project, write_project
from hepfpga.quantize.fixed import from_quantizer, learned_scale, learned_scale_values

#: kernel quantizers with a learned scale -> whether the firmware is bit-exact for them
LEARNED_SCALES: dict[str, tuple[Any, bool]] = {
    "bits_auto_po2": ("quantized_bits(4,0,alpha='auto_po2')", True),
    # QKeras gives a kernel quantizer without alpha a learned power-of-two scale
    "bits_no_alpha": ("quantized_bits(5,1)", True),
    "binary_string": ("binary", True),
    "ternary_string": ("ternary", True),
    "ternary_auto": ("ternary(alpha='auto')", False),
    "bits_auto": ("quantized_bits(6,2,alpha='auto')", False),
    # no kernel/bias quantizer, a quantized activation after it (hls4ml's parsing test): the
    # float32 weights held exactly, equal up to float32 rounding
    "no_quantizers": (None, False),
    # power-of-two weights and biases (hls4ml's exponent product is off by millions here)
    "po2_both": ("quantized_po2(5, 2)", True),
}
#: activation quantizers (after a QDense whose outputs lie in [-25, 25]) -> bit-exact
ACTIVATIONS: dict[str, tuple[str, bool]] = {
    "tanh": ("quantized_tanh(6)", True),
    "sigmoid": ("quantized_sigmoid(6)", True),
    # hls4ml gives +1 at an input of exactly 0, QKeras -1 (none among these events)
    "binary_tanh": ("binary_tanh", False),
    # inputs >= -2**5: the leaky relu is exact there (see from_quantizer)
    "leaky_relu": ("quantized_relu(8, 5, negative_slope=0.5)", True),
}
#: folded batch-normalization layers (QKeras' deployment form) -> their kernel quantizer
FOLDED: dict[str, Any] = {
    # no alpha: QKeras learns a power-of-two scale of the folded kernel (the RTL test folds
    # one with alpha=1 too)
    "conv_bn_po2": "quantized_bits(6,0)",
}
N_EVENTS = 300


def _kernel_quantizer(text: str | None) -> Any:
    from qkeras import quantized_bits

    # QKeras reads a string's default alpha as 1; the object's default (None) is learned
    plain = {
        "quantized_bits(5,1)": quantized_bits(5, 1),
        "quantized_bits(6,0)": quantized_bits(6, 0),
    }
    return plain.get(text, text) if text is not None else None


def branches_model(
    kernels: dict[str, str | None],
    activations: dict[str, str] | None = None,
    folded: dict[str, str] | None = None,
    seed: int = 0,
) -> Any:
    """One QDense branch per kernel quantizer (``d_<name>``, then ``r_<name>`` =
    quantized_relu), per activation quantizer (``d_<name>`` with 6-bit weights, then
    ``r_<name>`` = the quantizer) and per folded QConv2DBatchnorm (the input as a 3x2 image,
    ``d_<name>``, flattened, ``r_<name>`` = quantized_relu), concatenated two at a time, then
    QDense logits."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2DBatchnorm, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((6,), name="features")
    h = QActivation(quantized_bits(8, 2, alpha=1), name="input_quant")(x)
    plan = [(name, _kernel_quantizer(kernel), None) for name, kernel in kernels.items()]
    plan += [
        (name, quantized_bits(6, 0, alpha=1), act) for name, act in (activations or {}).items()
    ]
    outs = []
    for name, kernel, activation in plan:
        bias = "quantized_po2(5, 2)" if name == "po2_both" else None
        six_bits = quantized_bits(6, 0, alpha=1)
        if kernel is not None:
            bias = bias or (six_bits if activation else quantized_bits(8, 3, alpha=1))
        d = QDense(3, kernel_quantizer=kernel, bias_quantizer=bias, name=f"d_{name}")(h)
        act = activation if activation is not None else quantized_relu(8, 3)
        outs.append(QActivation(act, name=f"r_{name}")(d))
    for name, kernel in (folded or {}).items():
        image = keras.layers.Reshape((3, 2, 1), name=f"image_{name}")(h)
        d = QConv2DBatchnorm(
            2,
            (2, 1),
            kernel_quantizer=_kernel_quantizer(kernel),
            bias_quantizer=quantized_bits(8, 3, alpha=1),
            name=f"d_{name}",
        )(image)
        flat = keras.layers.Flatten(name=f"flat_{name}")(d)
        outs.append(QActivation(quantized_relu(8, 3), name=f"r_{name}")(flat))
    merged = outs[0]
    for k, out in enumerate(outs[1:]):
        merged = keras.layers.Concatenate(name=f"cat_{k}")([merged, out])
    logits = QDense(
        3,
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="logits",
    )(merged)
    model = keras.Model(x, logits)
    rng = np.random.default_rng(seed)
    for name in folded or {}:
        bn = model.get_layer(f"d_{name}").batchnorm
        n = bn.gamma.shape
        bn.gamma.assign(rng.uniform(0.5, 2.0, n))
        bn.beta.assign(rng.normal(0, 0.3, n))
        bn.moving_mean.assign(rng.normal(0, 0.5, n))
        bn.moving_variance.assign(rng.uniform(0.3, 3.0, n))
    return model


def _events(shape: tuple[int, ...], n: int = N_EVENTS, seed: int = 3) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, *shape)) * 2).astype(np.float32)


# -- unit tests: mappings, rewrites, refusals (no g++) -----------------------------------------
@pytest.mark.parametrize(
    ("text", "alpha", "unscaled"),
    [
        (
            "quantized_bits(4,0,alpha='auto_po2')",
            "auto_po2",
            "ap_fixed<4,1,AP_RND_CONV,AP_SAT_SYM>",
        ),
        ("quantized_bits(6,2,alpha='auto')", "auto", "ap_fixed<6,3,AP_RND_CONV,AP_SAT_SYM>"),
        ("binary(alpha='auto_po2')", "auto_po2", "ap_fixed<2,2>"),
        ("ternary(alpha='auto')", "auto", "ap_fixed<2,2>"),
        ("quantized_bits(4,0,alpha=1)", None, "ap_fixed<4,1,AP_RND_CONV,AP_SAT>"),
    ],
)
def test_learned_scale_maps_to_its_unscaled_grid(
    text: str, alpha: str | None, unscaled: str
) -> None:
    from qkeras.quantizers import get_quantizer

    quantizer = get_quantizer(text)
    assert learned_scale(quantizer) == alpha
    fixed = from_quantizer(quantizer, unscaled=True)
    assert fixed.to_hls() == unscaled
    weights = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    if alpha is None:
        return
    codes, scale = learned_scale_values(quantizer, weights)
    assert scale.shape == (4,)
    assert fixed.can_represent(codes)
    reference = np.asarray(get_quantizer(text)(weights), dtype=np.float64)
    if alpha == "auto_po2":
        assert np.all(np.log2(scale) == np.round(np.log2(scale)))
        assert np.array_equal(codes * scale, reference)  # exact: powers of two
    else:
        assert np.allclose(codes * scale, reference, rtol=2**-23, atol=0)


@pytest.mark.parametrize("text", ["quantized_bits(4,0,alpha='auto_po2')", "ternary(alpha='auto')"])
def test_learned_scale_is_refused_where_no_step_applies_it(text: str) -> None:
    with pytest.raises(ConversionError, match=r"a weight quantizer .* may learn alpha"):
        from_quantizer(text)


@pytest.fixture(scope="module")
def scales_model() -> Any:
    """Every learned-scale kernel quantizer, one branch each."""
    return branches_model(
        {name: text for name, (text, _) in LEARNED_SCALES.items()},
        {name: text for name, (text, _) in ACTIVATIONS.items()},
        FOLDED,
    )


@pytest.fixture(scope="module")
def ready_scales(scales_model: Any) -> tuple[Any, Any]:
    """The model as hls4ml gets it (rewritten once) and its Vitis io_parallel plan."""
    from hepfpga.firmware import plan_conversion
    from hepfpga.firmware.layers import ready_model

    ready = ready_model(scales_model)
    return ready, plan_conversion(ready, FirmwareOptions())


@pytest.mark.parametrize(
    ("backend", "io_type"),
    [
        (backend, io_type)
        for backend in ("Vitis", "Vivado", "Quartus", "Catapult")
        for io_type in ("io_parallel", "io_stream")
        if (backend, io_type) != ("Vitis", "io_parallel")
    ],
)
def test_other_backends_and_io_types_get_the_same_exact_types(
    backend: str, io_type: str, ready_scales: tuple[Any, Any]
) -> None:
    """hls4ml's tests vary backend x io_type: every new quantizer converts on each backend and
    io_type with the types of its exactness statement (those of Vitis io_parallel, which the
    compiled tests verify); the po2 scales folded, the float scale applied by '<name>_alpha'.
    (Configuration only: the C simulation of these is not built here.)"""
    from hepfpga.firmware import plan_conversion

    ready, reference_plan = ready_scales
    plan = plan_conversion(ready, FirmwareOptions(backend=backend, io_type=io_type))
    names = [f"{p}_{n}" for n in (*LEARNED_SCALES, *ACTIVATIONS, *FOLDED) for p in ("d", "r")]
    for name in names:
        assert plan.precision[name] == reference_plan.precision[name], name
    layers = plan.hls_config["LayerName"]
    assert "d_bits_auto_alpha" in layers and "d_bits_auto_po2_alpha" not in layers


def test_po2_scale_folds_into_exact_weights(scales_model: Any) -> None:
    """Before/after: each rewritten layer (alpha=1, wider weights) holds what QKeras
    multiplies with, and the model computes the same outputs bit for bit."""
    from hepfpga.firmware.hls_config import hls4ml_ready_model

    ready = hls4ml_ready_model(scales_model)
    for name, (text, exact) in LEARNED_SCALES.items():
        config = ready.get_layer(f"d_{name}").get_config()["kernel_quantizer"]
        if text is None:
            continue
        if not exact:  # alpha='auto' stays: hls4ml's ApplyAlpha step applies the scale
            assert learned_scale(config) == "auto"
            continue
        assert learned_scale(config) is None
        assert config["class_name"] == "quantized_bits"
        assert from_quantizer(config).can_represent(ready.get_layer(f"d_{name}").get_weights()[0])
    x = _events((6,))
    assert np.array_equal(scales_model.predict(x, verbose=0), ready.predict(x, verbose=0))


def test_float_scale_is_refused_by_the_rtl_trace() -> None:
    pytest.importorskip("da4ml")
    from hepfpga.firmware.rtl.trace import trace_model

    model = branches_model({"bits_auto": LEARNED_SCALES["bits_auto"][0]})
    with pytest.raises(ConversionError, match=r"float32 scale .* alpha=.auto_po2. or alpha=1"):
        trace_model(model)


#: single-branch models the RTL trace replays: (kernels, activations, folded)
RTL_CASES: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]] = {
    "binary_string": ({"binary_string": "binary"}, {}, {}),
    "bits_auto_po2": ({"bits_auto_po2": LEARNED_SCALES["bits_auto_po2"][0]}, {}, {}),
    "po2_weights": ({"po2_weights": "quantized_po2(4)"}, {}, {}),
    "tanh": ({}, {"tanh": ACTIVATIONS["tanh"][0]}, {}),
    "sigmoid": ({}, {"sigmoid": ACTIVATIONS["sigmoid"][0]}, {}),
    "conv_bn": ({}, {}, {"conv_bn": "quantized_bits(6,0,alpha=1)"}),
    "conv_bn_po2": ({}, {}, {"conv_bn_po2": "quantized_bits(6,0)"}),
}


@pytest.mark.parametrize("case", list(RTL_CASES))
def test_rtl_trace_equals_qkeras(case: str) -> None:
    """da4ml's trace of the model computes QKeras' logits bit for bit (stress events on and
    beyond the input grid)."""
    pytest.importorskip("da4ml")
    from hepfpga.firmware.rtl.flow import stress_events
    from hepfpga.firmware.rtl.trace import trace_model
    from hepfpga.firmware.verify import keras_outputs_with_logits

    model = branches_model(*RTL_CASES[case])
    net = trace_model(model)
    x = np.concatenate([stress_events(net, 1000), _events((6,), 200)])
    codes = net.input_codes(x)
    traced = net.comb.predict(np.ldexp(codes.astype(np.float64), -net.input_type.fractional))
    reference = np.asarray(keras_outputs_with_logits(model, x)[1], dtype=np.float64)
    assert np.array_equal(traced, reference)


@pytest.mark.parametrize(
    ("activations", "message"),
    [
        ({"binary_tanh": "binary_tanh"}, "binary_tanh is not traced to RTL .* comparison"),
        (
            {"leaky_relu": ACTIVATIONS["leaky_relu"][0]},
            "a leaky quantized_relu is not traced to RTL",
        ),
    ],
)
def test_rtl_trace_refuses_what_da4ml_cannot_express(
    activations: dict[str, str], message: str
) -> None:
    pytest.importorskip("da4ml")
    from hepfpga.firmware.rtl.trace import trace_model

    with pytest.raises(ConversionError, match=message):
        trace_model(branches_model({}, activations))


# -- one compiled project for every learned scale ----------------------------------------------
@pytest.fixture(scope="module")
def learned_scale_run(
    tmp_path_factory: pytest.TempPathFactory, scales_model: Any
) -> tuple[VerificationReport, Any]:
    model = scales_model
    options = FirmwareOptions()
    project = write_project(model, options, tmp_path_factory.mktemp("scales") / "fw")
    compile_project(project)
    x = _events((6,))
    report = verify_model(model, x, options, project=project)
    return report, (project, x)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LEARNED_SCALES))
def test_learned_scale_verifies_as_stated(
    name: str, learned_scale_run: tuple[VerificationReport, Any]
) -> None:
    report, _ = learned_scale_run
    assert report.passed, report.summary()
    assert report.outputs.logits_fraction_bit_exact == 1.0
    layers = {layer.name: layer for layer in report.layers}
    dense, relu = layers[f"d_{name}"], layers[f"r_{name}"]
    assert dense.exact_expected is LEARNED_SCALES[name][1]
    if dense.exact_expected:
        assert dense.fraction_bit_exact == 1.0 and dense.max_diff_lsb == 0.0
    else:
        # up to float32 rounding: a relative difference of a few float32 ulps
        magnitude = max(abs(dense.reference_min), abs(dense.reference_max))
        assert 0 < dense.max_abs_diff <= 2**-20 * magnitude
    assert relu.fraction_bit_exact == 1.0  # the quantizer after it sees the same values


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_quantizer_verifies_as_stated(
    name: str, learned_scale_run: tuple[VerificationReport, Any]
) -> None:
    report, _ = learned_scale_run
    layers = {layer.name: layer for layer in report.layers}
    activation = layers[f"r_{name}"]
    assert activation.exact_expected is ACTIVATIONS[name][1]
    assert activation.fraction_bit_exact == 1.0 and activation.max_diff_lsb == 0.0, report.summary()


def test_folded_batchnorm_becomes_its_inference_conv(scales_model: Any) -> None:
    """Before/after: QConv2DBatchnorm rewritten into a QConv2D holding QKeras' folded,
    quantized weights computes the same outputs bit for bit."""
    from hepfpga.firmware.hls_config import hls4ml_ready_model

    ready = hls4ml_ready_model(scales_model)
    x = _events((6,))
    for name in FOLDED:
        assert type(ready.get_layer(f"d_{name}")).__name__ == "QConv2D"
        probe = [scales_model.get_layer(f"r_{name}").output]
        original = __import__("tensorflow").keras.Model(scales_model.inputs, probe)
        rewritten = __import__("tensorflow").keras.Model(
            ready.inputs, [ready.get_layer(f"r_{name}").output]
        )
        assert np.array_equal(original.predict(x, verbose=0), rewritten.predict(x, verbose=0))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FOLDED))
def test_folded_batchnorm_verifies_bit_exact(
    name: str, learned_scale_run: tuple[VerificationReport, Any]
) -> None:
    report, _ = learned_scale_run
    layers = {layer.name: layer for layer in report.layers}
    for layer in (layers[f"d_{name}"], layers[f"r_{name}"]):
        assert layer.exact_expected
        assert layer.fraction_bit_exact == 1.0 and layer.max_diff_lsb == 0.0, report.summary()


@pytest.mark.slow
def test_learned_scales_are_emulated_exactly(
    learned_scale_run: tuple[VerificationReport, Any],
) -> None:
    from hepfpga.firmware.csim import predict

    _, (project, x) = learned_scale_run
    emulator = Emulator.from_project(project, x)
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert np.array_equal(emulator.predict(x), predict(project, x))
