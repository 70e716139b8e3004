"""C simulation of the written firmware against QKeras: logits bit-exact, softmax close.

Each case converts and compiles one project (g++, several seconds), shared by the tests of
that case through a module-scoped fixture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import (
    Comparison,
    FirmwareOptions,
    FirmwareProject,
    compile_project,
    predict,
    predict_logits,
    record_verification,
    verify_qkeras,
    write_project,
)
from hepfpga.firmware.csim import predict_with_logits
from hepfpga.firmware.hls_config import input_fixed_type

pytestmark = pytest.mark.slow

N_EVENTS = 1000
#: softmax tables of 2**10 entries: max(logit) - logit and the sum of exponentials are rounded
#: to 1/128, each a relative error of at most 1/256 on a probability; bound ~2**-8 in all
PROBS_TOLERANCE = 5e-3
#: argmax can differ only where the two largest logits are within ~1/256 (table resolution)
MIN_ARGMAX_AGREEMENT = 0.99

CASES: dict[str, tuple[dict[str, int], dict[str, str]]] = {
    "w6a6-vitis": ({}, {}),
    "w4a4-vitis": ({"weight_bits": 4, "activation_bits": 4}, {}),
    "w8a8-vitis": ({"weight_bits": 8, "activation_bits": 8}, {}),
    "w8i1a4-in12i4-vitis": (
        {
            "weight_bits": 8,
            "weight_integer": 1,
            "activation_bits": 4,
            "input_bits": 12,
            "input_integer": 4,
        },
        {},
    ),
    "w6a6-vivado-stream": ({}, {"backend": "Vivado", "io_type": "io_stream"}),
}


@dataclass
class Case:
    model: Any
    project: FirmwareProject
    x: np.ndarray
    comparison: Comparison


@pytest.fixture(scope="module", params=list(CASES))
def case(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tagger_factory: Any,
    inputs_factory: Any,
) -> Case:
    widths, options = CASES[request.param]
    model = tagger_factory(**widths, seed=len(request.param))
    input_widths = {k: v for k, v in widths.items() if k.startswith("input")}
    x = inputs_factory(N_EVENTS, seed=3, **input_widths)
    out = tmp_path_factory.mktemp(request.param) / "firmware"
    project = write_project(
        model,
        FirmwareOptions(**options),
        out,
        testbench_inputs=x[:50],
        testbench_outputs=model.predict(x[:50], verbose=0),
    )
    compile_project(project)
    return Case(model, project, x, verify_qkeras(model, project, x))


def test_logits_are_bit_exact(case: Case) -> None:
    assert case.comparison.n_events == N_EVENTS
    assert case.comparison.logits_fraction_bit_exact == 1.0, case.comparison
    assert case.comparison.logits_max_abs_diff == 0.0


def test_verification_is_recorded_in_the_project(case: Case) -> None:
    path = record_verification(case.project, case.comparison)
    assert path == case.project.path / "verification.json"
    assert json.loads(path.read_text()) == case.comparison.to_dict()
    assert not list(case.project.path.glob(".verification.*"))


def test_softmax_is_close_and_argmax_agrees(case: Case) -> None:
    assert case.comparison.probs_max_abs_diff < PROBS_TOLERANCE, case.comparison
    assert case.comparison.argmax_agreement >= MIN_ARGMAX_AGREEMENT, case.comparison


def test_inputs_saturate_and_round_like_qkeras(case: Case) -> None:
    """The events exercise saturation and ties, and the input type treats them as QKeras does."""
    from tensorflow import keras

    fixed = input_fixed_type(case.model)
    quantized = keras.Model(case.model.inputs, case.model.get_layer("input_quant").output)
    q = quantized.predict(case.x, verbose=0).astype(np.float64)
    assert np.array_equal(q, fixed.quantize(case.x))
    saturated = (q == fixed.max_value) | (q == fixed.min_value)
    assert saturated[::10].any(axis=1).all()
    ties = np.abs(case.x.astype(np.float64) - q) == fixed.lsb / 2
    assert ties[5::20].all() and np.all((q[5::20] / fixed.lsb) % 2 == 0)  # half to even


def test_predict_and_logits_are_consistent(case: Case) -> None:
    probs, logits = predict_with_logits(case.project, case.x[:100])
    assert np.array_equal(probs, predict(case.project, case.x[:100]))
    assert np.array_equal(logits, predict_logits(case.project, case.x[:100]))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=5e-3)


def test_logits_reader_matches_hls4ml_trace(case: Case) -> None:
    """Our reader of the compiled trace buffers agrees with hls4ml's own (recompiling) trace."""
    if case.project.backend.value != "Vivado":
        pytest.skip("checked once, on the Vivado case, to save a recompilation")
    x = np.ascontiguousarray(case.x[:200].astype(np.float64))
    ours = predict_logits(case.project, x)
    _, traces = case.project.hls_model.trace(x)
    assert np.array_equal(ours, traces[case.project.logits_layer].reshape(ours.shape))
