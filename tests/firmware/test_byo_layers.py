"""Bring your own model, layer family by layer family (hls4ml's test style: family x backend x
io_type x bit width), each asserting the exactness hepfpga states for it, for verify and for
emulate.

One compiled project per case (g++), shared by the tests of the case through a module-scoped
fixture and the session's cache. QKeras cases must be bit-exact (on the input grid for the
model without an input quantizer); float cases must stay within the bound measured for them
(table-based activations are approximate by design).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions, VerificationReport, verify_model

pytestmark = pytest.mark.slow

N_EVENTS = 300


@dataclass(frozen=True)
class Case:
    builder: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    #: None: bit-exact logits (QKeras); a number: the measured bound on the logits (float)
    tolerance: float | None = None
    #: the emulator's engine: the fixed-point engine (proven identical) or the C simulation
    engine: str = "csim"


#: family - backend - io_type - bit width
CASES: dict[str, Case] = {
    "sequential-float-builtin-softmax-tanh-Vitis-parallel": Case(
        "sequential_float_tagger", tolerance=0.03, engine="fixed-point"
    ),
    "sequential-qkeras-no-input-quantizer-Vivado-parallel-w6": Case(
        "sequential_qkeras_no_input_quantizer",
        {"bits": 6},
        {"backend": "Vivado"},
        engine="fixed-point",
    ),
    "float-conv2d-same-Vitis-parallel": Case(
        "float_conv2d_same", tolerance=0.01, engine="fixed-point"
    ),
    "conv1d-pad-crop-upsample-globalavg-Vitis-parallel-w6": Case(
        "qconv1d_reshaping", {"bits": 6}, engine="fixed-point"
    ),
    "conv2d-upsample-pad-crop-globalmax-Vivado-parallel-w4": Case(
        "qconv2d_upsampling", {"bits": 4}, {"backend": "Vivado"}, engine="fixed-point"
    ),
    "merge-Vitis-parallel-w4": Case("qmerge", {"bits": 4}, engine="fixed-point"),
    "activations-float-Vitis-parallel": Case(
        "float_activations", tolerance=0.03, engine="fixed-point"
    ),
    "multi-output-vae-encoder-Vivado-parallel-w6": Case(
        "vae_encoder", {"bits": 6}, {"backend": "Vivado"}, engine="fixed-point"
    ),
    "multi-input-Vitis-parallel-w8": Case("two_input_tagger", {"bits": 8}, engine="fixed-point"),
    "recurrent-float-lstm-Vitis-parallel": Case(
        "float_recurrent", {"kind": "LSTM"}, tolerance=0.03, engine="fixed-point"
    ),
}


def _events(model: Any, byo_models: Any) -> Any:
    arrays = [
        byo_models.events(tuple(int(d) for d in t.shape[1:]), N_EVENTS, seed=3 + i)
        for i, t in enumerate(model.inputs)
    ]
    return arrays if len(arrays) > 1 else arrays[0]


@pytest.fixture(scope="module", params=list(CASES))
def case(
    request: pytest.FixtureRequest, byo_models: Any
) -> tuple[Case, Any, Any, VerificationReport]:
    spec = CASES[request.param]
    model = getattr(byo_models, spec.builder)(**spec.kwargs)
    x = _events(model, byo_models)
    report = verify_model(model, x, FirmwareOptions(**spec.options), tolerance=spec.tolerance)
    return spec, model, x, report


def test_verify_states_the_exactness(case: tuple[Case, Any, Any, VerificationReport]) -> None:
    spec, model, _, report = case
    assert report.passed, report.summary()
    comparisons = list(report.model_outputs.values()) or [report.outputs]
    assert len(comparisons) == len(model.outputs)
    for comparison in comparisons:
        if spec.tolerance is None:
            assert comparison.logits_bit_exact, report.summary()
            assert comparison.logits_max_abs_diff == 0.0
        else:
            assert 0 < comparison.logits_max_abs_diff <= spec.tolerance, report.summary()
    if spec.tolerance is None:
        for layer in report.layers:
            if layer.exact_expected:
                assert layer.fraction_bit_exact == 1.0, report.summary()
        assert report.diagnosis is None


def test_every_keras_layer_is_compared(case: tuple[Case, Any, Any, VerificationReport]) -> None:
    _, model, _, report = case
    from hepfpga.firmware.hls_config import hls4ml_ready_model

    ready = hls4ml_ready_model(model)
    compared = {layer.name for layer in report.layers}
    # hls4ml drops input quantizers (a no-op cast after the input type), Dropout and (in
    # io_parallel) Flatten
    skipped = {
        layer.name
        for layer in ready.layers
        if type(layer).__name__ in ("InputLayer", "Dropout", "Flatten")
        or (type(layer).__name__ == "QActivation" and layer.name.endswith("_quant"))
    }
    assert {layer.name for layer in ready.layers} - skipped - compared == set()


def test_report_states_the_input_type(case: tuple[Case, Any, Any, VerificationReport]) -> None:
    import json

    spec, _, _, report = case
    data = json.loads(json.dumps(report.to_dict()))
    assert data["input_type"].startswith("ap_fixed<")
    if spec.builder == "sequential_qkeras_no_input_quantizer":
        # the documented default, and what rounding the events to it costs
        assert data["input_type"] == "ap_fixed<16,4,AP_RND_CONV,AP_SAT>"
        assert data["input_type_source"].startswith("default: no input quantizer")
        assert report.requirement.split("; ")[0].endswith("on the input grid")
        rounding = data["input_rounding"]
        assert 0 < rounding["logits_max_abs_diff"] < 0.1
        assert rounding["argmax_agreement"] >= 0.99
        assert "rounding the events to it costs" in report.summary()
    else:
        assert data["input_rounding"] is None


def test_emulator_is_exact_or_falls_back_with_a_reason(
    case: tuple[Case, Any, Any, VerificationReport],
) -> None:
    import warnings

    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.csim import predict, predict_outputs
    from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
    from hepfpga.firmware.verify import plan_for_events

    spec, model, x, _ = case
    options = FirmwareOptions(**spec.options)
    plan, events = plan_for_events(model, x, options)
    project = cached_project(plan, options)
    assert project.from_cache  # verify compiled it; no second g++ run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, check_events=200, stress_events=200)
    assert emulator.engine == spec.engine, emulator.fallback_reason
    if emulator.exact_engine:
        assert emulator.check is not None and emulator.check.passed
    else:
        assert emulator.fallback_reason and "not reproduced" in emulator.fallback_reason
    assert np.array_equal(emulator.predict(events), predict(project, events))
    for mine, ref in zip(
        emulator.predict_outputs(events), predict_outputs(project, events), strict=True
    ):
        assert np.array_equal(mine, ref)  # every output of multi-output models
