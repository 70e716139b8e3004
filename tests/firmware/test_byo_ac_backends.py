"""The layer families a user brings, on the two ac_fixed backends (Quartus and Catapult):
hls4ml's backend x io_type axis crossed with the family axis that ``test_byo_layers.py`` and
``test_byo_bit_exact.py`` cover on Vitis/Vivado (``test_byo_matrix.py`` holds one branched
CNN fixed and varies the firmware).

Two QKeras models cross the families, each compiled once per (backend, io_type): QKeras
activations after a QDense -> BatchNormalization (and a final table softmax on Quartus: judged
by its derived bound; Catapult compiles only ``softmax: logits``), a 2D model (up-sampling,
zero padding, QConv2D -> BatchNormalization, QDepthwiseConv2D, QSeparableConv2D, a folded
QConv2DBatchnorm, Reshape). (A 1D model, ZeroPadding1D -> QConv1D
-> UpSampling1D, was bit-exact up to its GlobalAveragePooling1D, which is refused on these
backends.) Every case must be bit-exact at every layer meant to be, and the emulator must
answer what the C simulation answers (through the C simulation: the stated fallback).

What hls4ml 1.3 writes wrongly on these backends and hepfpga cannot correct is refused before
any build, in one line naming what works (the fast tests at the end): table activations
(sigmoid, tanh, softsign, softplus, elu, selu: computed otherwise than the tables their bound
is derived from), Cropping (no template: no call written), depthwise/separable convolutions on
Quartus (no template) and Catapult's one-dimensional ones in io_parallel (a header it does not
ship), GlobalAveragePooling1D (not QKeras' average): test_ac_backend_refusals.py.
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
class Model:
    builder: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: layers that must be compared (traced) and bit-exact
    compared: frozenset[str] = frozenset()


MODELS = {
    "activations-batchnorm": Model(
        "qactivations_batchnorm",
        compared=frozenset({"dense_1", "relu", "act_2", "act_3", "act_4", "logits"}),
    ),
    "conv2d-depthwise-folded": Model(
        "qconv2d_families",
        compared=frozenset({"upsample", "pad", "conv", "relu_1", "folded", "relu_2", "logits"}),
    ),
}
#: (backend, io_type); Quartus' io_stream C simulation is refused (HLSBackend.unsimulable_io)
FIRMWARE = [("Quartus", "io_parallel"), ("Catapult", "io_parallel"), ("Catapult", "io_stream")]
#: hls4ml 1.3's Quartus has no depthwise/separable template (refused: the fast tests)
WITHOUT_DEPTHWISE = {"Quartus"}
CASES = [(m, b, io) for m in MODELS for b, io in FIRMWARE]


def _options(backend: str, io_type: str) -> FirmwareOptions:
    # Catapult compiles without a softmax only (HLSBackend.softmax_modes)
    softmax = {} if backend == "Quartus" else {"softmax": "logits"}
    return FirmwareOptions(backend=backend, io_type=io_type, **softmax)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def case(
    request: pytest.FixtureRequest, byo_models: Any
) -> tuple[Model, FirmwareOptions, Any, np.ndarray, VerificationReport]:
    name, backend, io_type = request.param
    spec = MODELS[name]
    kwargs = dict(spec.kwargs)
    if spec.builder == "qconv2d_families":
        kwargs["depthwise"] = backend not in WITHOUT_DEPTHWISE
    model = getattr(byo_models, spec.builder)(**kwargs)
    x = byo_models.events(tuple(int(d) for d in model.inputs[0].shape[1:]), N_EVENTS, seed=3)
    options = _options(backend, io_type)
    return spec, options, model, x, verify_model(model, x, options)


def test_verify_is_bit_exact_at_every_layer(
    case: tuple[Model, FirmwareOptions, Any, np.ndarray, VerificationReport],
) -> None:
    spec, options, model, _, report = case
    assert report.passed, report.summary()
    assert report.n_events == N_EVENTS
    assert report.outputs.logits_bit_exact, report.summary()
    assert report.outputs.logits_max_abs_diff == 0.0
    compared = {layer.name for layer in report.layers}
    depthwise = {"relu_dw", "relu_sep"} & {layer.name for layer in model.layers}
    assert spec.compared | depthwise <= compared, compared
    assert all(layer.fraction_bit_exact == 1.0 for layer in report.layers if layer.exact_expected)
    assert report.diagnosis is None
    if "softmax" in [layer.name for layer in model.layers]:
        if options.backend.info.hls4ml_name == "Quartus":
            # the table softmax, judged by the bound derived from Quartus' own template
            assert "outputs within its derived bound (Quartus softmax" in report.requirement
            assert 0 < report.outputs.probs_max_abs_diff <= 0.03, report.summary()
        else:
            assert report.softmax == "logits"


def test_emulator_answers_as_the_c_simulation(
    case: tuple[Model, FirmwareOptions, Any, np.ndarray, VerificationReport],
) -> None:
    import warnings

    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.csim import predict
    from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
    from hepfpga.firmware.verify import plan_for_events

    _, options, model, x, _ = case
    plan, events = plan_for_events(model, x, options)
    project = cached_project(plan, options)
    assert project.from_cache  # verify compiled it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, check_events=200, stress_events=200)
    # the fixed-point engine where it proves itself against this C simulation (Catapult's
    # convolutions: the Vivado weight layout); else the C simulation answers, saying which
    # layer the engine does not reproduce (Quartus' weight layouts, the ac backends'
    # activations)
    if emulator.engine == "fixed-point":
        assert emulator.check is not None and emulator.check.passed
    else:
        assert emulator.engine == "csim"
        assert emulator.fallback_reason and "not reproduced" in emulator.fallback_reason
    assert np.array_equal(emulator.predict(events), predict(project, events))
