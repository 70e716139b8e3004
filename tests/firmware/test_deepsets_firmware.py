"""Deep Sets firmware (hls4ml 1.3, io_parallel): the C simulation's logits equal QKeras' bit
for bit and the bulk emulator's fixed-point engine reproduces the C simulation. One compiled
project (the example's form: Dense on the 3-d input, average pooling), shared by the tests
(module fixture, the session's cache). Conv1D-k1 with max pooling compiles to the same
products and an exact maximum (measured bit-exact too, see docs/architectures.md); it is left
out of CI for the test-time budget (a second g++ build)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions, VerificationReport, verify_model
from hepfpga.quantize.qat import QuantizationSpec, quantize_model
from hepfpga.train.architectures import build_model
from hepfpga.train.architectures.deepsets import DeepSetsConfig

pytestmark = pytest.mark.slow

N_CONSTITUENTS = 8


def _events(n: int, seed: int = 5) -> np.ndarray:
    """Constituent sets like the sample's (pT fractions, angles), the tail zero-padded, some
    beyond the input type's range (saturation) and some on its rounding ties."""
    rng = np.random.default_rng(seed)
    x = np.stack(
        [
            rng.uniform(0, 1, (n, N_CONSTITUENTS)),
            rng.normal(0, 0.4, (n, N_CONSTITUENTS)),
            rng.normal(0, 0.4, (n, N_CONSTITUENTS)),
        ],
        axis=-1,
    )
    x[::3, N_CONSTITUENTS // 2 :] = 0.0
    x[::10] *= 12.0  # beyond ap_fixed<12,4>'s +-8
    lsb = 2.0**-8
    x[5::20] = (np.round(x[5::20] / lsb) + 0.5) * lsb
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def case() -> tuple[Any, np.ndarray, VerificationReport]:
    layer, pooling = "dense", "average"
    config = DeepSetsConfig(
        n_constituents=N_CONSTITUENTS,
        phi_units=(6, 4),
        particle_layer=layer,
        pooling=pooling,
        dense_units=(4,),
    )
    model = build_model((N_CONSTITUENTS, 3), 5, config, seed=7)
    rng = np.random.default_rng(11)
    for weights_layer in model.layers:  # non-zero biases: the padding is phi(0) != 0
        weights = weights_layer.get_weights()
        if len(weights) == 2:
            weights_layer.set_weights([weights[0], rng.normal(0, 0.3, weights[1].shape)])
    qmodel = quantize_model(
        model,
        QuantizationSpec(
            weight_bits=8,
            weight_integer=0,
            activation_bits=8,
            activation_integer=2,
            input_bits=12,
            input_integer=3,
        ),
    )
    x = _events(300)
    return qmodel, x, verify_model(qmodel, x, FirmwareOptions())


def test_csim_logits_are_bit_exact(case: tuple[Any, np.ndarray, VerificationReport]) -> None:
    _, _, report = case
    assert report.quantized and report.requirement.split("; ")[0] == "bit-exact logits"
    assert report.passed, report.diagnosis
    assert report.outputs.logits_fraction_bit_exact == 1.0
    assert report.outputs.logits_max_abs_diff == 0.0
    by_name = {layer.name: layer for layer in report.layers}
    # every layer up to the logits, the pooling included, is exact
    for name in ("phi_1", "relu_phi_1", "phi_2", "relu_phi_2", "pool", "dense_1", "logits"):
        assert by_name[name].fraction_bit_exact == 1.0, name
    pool = report.precision["pool"]
    # relu ap_ufixed<8,2>: the sum of 8 in 3 more integer bits, the mean in 3 more
    # fractional bits (a shift by log2 8)
    assert pool["class"] == "GlobalAveragePooling1D"
    assert pool["source"] == "average (exact)"
    assert pool["result"] == "ap_ufixed<11,2>"


def test_emulator_reproduces_the_csim(case: tuple[Any, np.ndarray, VerificationReport]) -> None:
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.csim import predict
    from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
    from hepfpga.firmware.verify import plan_for_events

    qmodel, x, _ = case
    options = FirmwareOptions()
    plan, events = plan_for_events(qmodel, x, options)
    project = cached_project(plan, options)
    assert project.from_cache  # verify compiled it: no second g++ run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, check_events=300, stress_events=300)
    assert emulator.engine == "fixed-point", emulator.fallback_reason
    assert emulator.check is not None and emulator.check.passed
    assert np.array_equal(emulator.predict(events), predict(project, events))
    # and the firmware does not depend on the order of the constituents either
    reversed_events = events[:, ::-1, :]
    assert np.array_equal(emulator.predict(reversed_events), emulator.predict(events))
