"""Bring your own model: verify_model on the model kinds users bring, each exact (or within the
stated tolerance for a float model), with every layer compared.

Each case converts and compiles one project (g++, several seconds), shared by the tests of
that case through a module-scoped fixture; compiled simulations go to the session's cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions, VerificationReport, verify_model

pytestmark = pytest.mark.slow

N_EVENTS = 400

#: name -> (builder name, builder kwargs, input shape, FirmwareOptions kwargs)
CASES: dict[str, tuple[str, dict[str, Any], tuple[int, ...], dict[str, Any]]] = {
    "qdense-batchnorm": ("qdense_batchnorm", {}, (10,), {}),
    "binary-dense": ("binary_ternary_dense", {"kind": "binary"}, (12,), {}),
    "ternary-dense-binary-activation": (
        "binary_ternary_dense",
        {"kind": "ternary", "activation": "binary(alpha=1)"},
        (12,),
        {},
    ),
    "pruned-dense": ("pruned_dense", {}, (16,), {}),
    "conv1d": ("conv1d", {}, (16, 3), {}),
    "conv2d-pooling-parallel": ("conv2d_pooling", {}, (10, 10, 1), {}),
    "conv2d-pooling-stream": ("conv2d_pooling", {}, (10, 10, 1), {"io_type": "io_stream"}),
    "float-dense-batchnorm": ("float_dense_batchnorm", {}, (16,), {}),
}

#: QKeras MLPs at other bit widths than tests/firmware/test_bit_exact.py covers
WIDTHS: dict[str, dict[str, int]] = {
    "w3a3-in8": {"weight_bits": 3, "activation_bits": 3, "input_bits": 8, "input_integer": 3},
    "w10i2a8": {"weight_bits": 10, "weight_integer": 2, "activation_bits": 8},
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest, byo_models: Any) -> tuple[Any, VerificationReport]:
    builder, kwargs, shape, options = CASES[request.param]
    model = getattr(byo_models, builder)(**kwargs)
    x = byo_models.events(shape, N_EVENTS, seed=3)
    return model, verify_model(model, x, FirmwareOptions(**options))


def test_logits_agree(case: tuple[Any, VerificationReport]) -> None:
    _, report = case
    assert report.passed, report.summary()
    assert report.n_events == N_EVENTS
    if report.quantized:
        assert report.outputs.logits_fraction_bit_exact == 1.0, report.summary()
        assert report.outputs.logits_max_abs_diff == 0.0
        assert report.diagnosis is None
    else:
        assert report.requirement.split("; ")[0] == "logits within 0.01 (max |diff|)"
        assert report.outputs.logits_max_abs_diff <= 0.01
        assert report.outputs.argmax_agreement >= 0.99


def test_every_layer_is_compared(case: tuple[Any, VerificationReport]) -> None:
    model, report = case
    compared = {layer.name for layer in report.layers}
    weighted = {
        layer.name
        for layer in model.layers
        if type(layer).__name__.lstrip("Q") in ("Dense", "Conv1D", "Conv2D")
    }
    assert weighted <= compared, report.summary()
    for layer in report.layers:
        if layer.exact_expected:
            assert layer.fraction_bit_exact == 1.0, report.summary()
            assert layer.max_diff_lsb == 0.0
        # Keras values lie inside the range of the type chosen for them
        if report.quantized and layer.class_name != "Activation":
            assert layer.type_min <= layer.reference_min, layer
            assert layer.reference_max <= layer.type_max, layer


def test_report_is_plain_data(case: tuple[Any, VerificationReport]) -> None:
    import json

    _, report = case
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is True
    assert [o["index"] for o in data["per_output"]] == list(range(len(data["per_output"])))
    if report.quantized:
        assert all(o["logits_fraction_bit_exact"] == 1.0 for o in data["per_output"])
    assert set(data["precision"]) >= {layer.name for layer in report.layers}
    if not report.quantized:
        # float models: profiled ranges against the chosen types
        dense = data["precision"]["dense_1"]
        assert dense["source"] == "profiled"
        assert dense["type_min"] <= dense["profiled_min"] <= dense["profiled_max"]
        assert dense["profiled_max"] <= dense["type_max"]


@pytest.mark.parametrize("widths", list(WIDTHS))
def test_qkeras_mlp_at_other_widths_is_bit_exact(
    widths: str, tagger_factory: Any, inputs_factory: Any
) -> None:
    spec = WIDTHS[widths]
    model = tagger_factory(**spec, seed=7)
    inputs = {k: v for k, v in spec.items() if k.startswith("input")}
    report = verify_model(model, inputs_factory(N_EVENTS, seed=4, **inputs))
    assert report.passed and report.outputs.logits_bit_exact, report.summary()


def test_batchnorm_scale_and_bias_keep_float32_precision(
    case: tuple[Any, VerificationReport],
) -> None:
    _, report = case
    for name, types in report.precision.items():
        if types["class"] == "BatchNormalization" and report.quantized:
            assert types["source"] == "exact product"
            scale = types["scale"]
            width, integer = (int(v) for v in scale.split("<")[1].split(",")[:2])
            assert width - integer >= 23, (name, scale)


def test_pruned_model_keeps_its_zeros(byo_models: Any) -> None:
    from hepfpga.firmware.hls_config import hls4ml_ready_model

    model = byo_models.pruned_dense()
    ready = hls4ml_ready_model(model)
    assert not any(type(layer).__name__ == "PruneLowMagnitude" for layer in ready.layers)
    kernel = ready.get_layer("dense_1").get_weights()[0]
    assert np.mean(kernel == 0) >= 0.45
