"""The backend x io_type x bit-width axes of hls4ml's test matrix on one QKeras model that
crosses several layer families (convolution, pooling, flatten, dense, merges): every
combination must be bit-exact for verify, and the emulator must answer exactly what the C
simulation answers (through its fixed-point engine, or the stated fallback).

The family axis is covered by ``test_byo_layers.py`` and ``test_byo_bit_exact.py``; this file
holds the model fixed and varies the firmware. One compiled project per combination, shared
by its tests and cached for the session.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions, VerificationReport, verify_model

pytestmark = pytest.mark.slow

N_EVENTS = 300

#: (backend, io_type, weight/activation bits)
COMBINATIONS = [
    ("Vitis", "io_parallel", 4),
    ("Vitis", "io_stream", 4),
    ("Vivado", "io_parallel", 4),
    ("Vivado", "io_stream", 4),
    ("Vitis", "io_parallel", 8),
    ("Vitis", "io_stream", 8),
    # the ac_fixed backends (Quartus in io_parallel only: with hls4ml 1.3 its io_stream C
    # simulation of this model aborts the process in free(); Catapult's io_stream
    # Concatenate is corrected by hepfpga, catapult_stream)
    ("Quartus", "io_parallel", 4),
    ("Catapult", "io_parallel", 4),
    ("Catapult", "io_stream", 4),
]
#: the backends whose convolution weights the emulate engine does not lay out as their C++
#: does: the emulator answers through the C simulation, and says so
CSIM_EMULATED = ("Quartus",)


@pytest.fixture(
    scope="module", params=COMBINATIONS, ids=["-".join(map(str, c)) for c in COMBINATIONS]
)
def combination(
    request: pytest.FixtureRequest, byo_models: Any
) -> tuple[FirmwareOptions, Any, np.ndarray, VerificationReport]:
    backend, io_type, bits = request.param
    model = byo_models.qcnn_branches(bits=bits)
    x = byo_models.events((6, 6, 1), N_EVENTS, seed=5)
    options = FirmwareOptions(backend=backend, io_type=io_type)
    return options, model, x, verify_model(model, x, options)


def test_verify_is_bit_exact(
    combination: tuple[FirmwareOptions, Any, np.ndarray, VerificationReport],
) -> None:
    *_, report = combination
    assert report.passed, report.summary()
    assert report.outputs.logits_bit_exact, report.summary()
    assert report.n_events == N_EVENTS
    compared = {layer.name for layer in report.layers}
    assert {"conv", "dense", "a", "b", "add", "concat", "logits"} <= compared, compared
    assert all(layer.fraction_bit_exact == 1.0 for layer in report.layers if layer.exact_expected)


def test_emulator_answers_as_the_c_simulation(
    combination: tuple[FirmwareOptions, Any, np.ndarray, VerificationReport],
) -> None:
    import warnings

    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.csim import predict
    from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
    from hepfpga.firmware.verify import plan_for_events

    options, model, x, _ = combination
    plan, events = plan_for_events(model, x, options)
    project = cached_project(plan, options)
    assert project.from_cache  # verify compiled it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, check_events=200, stress_events=200)
    if options.backend.info.hls4ml_name in CSIM_EMULATED:
        assert emulator.engine == "csim" and "kernel of shape" in str(emulator.fallback_reason)
    else:
        # io_stream graphs (Clone copies of the branches included) are in the engine too
        assert emulator.engine == "fixed-point", emulator.fallback_reason
        assert emulator.check is not None and emulator.check.passed
    assert np.array_equal(emulator.predict(events), predict(project, events))
