"""LSTM and GRU in the fixed-point engine: identical to the C simulation bit for bit (gate
tables, saturating accumulators, state in the result type, reset_after GRU,
return_sequences), and refusals of what it does not reproduce.

One compiled project per case (g++), built once per session; the cases are marked slow.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

N_EVENTS = 300


def recurrent_model(kind: str, return_sequences: bool, seed: int = 0) -> Any:
    """input quantizer -> (Q)LSTM/(Q)GRU(6) over 7 steps -> dense logits -> softmax.

    QLSTM/QGRU get 8-bit weights (hepfpga converts them as LSTM/GRU holding the quantized
    weights); the float layers get profiled types. With ``return_sequences`` the logits are
    computed per step (hls4ml's pointwise Conv1D) or after a Flatten (float model).
    """
    import tensorflow as tf
    from qkeras import QGRU, QLSTM, QActivation, QDense, quantized_bits
    from tensorflow import keras

    from hepfpga.quantize.qat import qkeras_compat

    qkeras_compat()
    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((7, 3), name="sequence")
    h = QActivation(quantized_bits(12, 3, alpha=1), name="input_quant")(x)
    options: dict[str, Any] = {"return_sequences": return_sequences, "name": "rnn"}
    if kind.startswith("Q"):

        def q() -> Any:
            return quantized_bits(8, 0, alpha=1)

        options |= {
            "kernel_quantizer": q(),
            "recurrent_quantizer": q(),
            "bias_quantizer": q(),
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
        }
        if kind == "QGRU":
            options["reset_after"] = True
        layer = {"QLSTM": QLSTM, "QGRU": QGRU}[kind](6, **options)
    else:
        layer = getattr(keras.layers, kind)(6, **options)
    h = layer(h)
    kernel, recurrent, bias = layer.get_weights()  # non-zero biases, as after training
    layer.set_weights([kernel, recurrent, np.random.default_rng(seed).normal(0, 0.3, bias.shape)])
    if return_sequences and not kind.startswith("Q"):
        h = keras.layers.Flatten(name="flatten")(h)
    q8 = quantized_bits(8, 0, alpha=1)
    logits = QDense(4, kernel_quantizer=q8, bias_quantizer=q8, name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(logits))


#: kind - return_sequences - backend (a float LSTM is in test_byo_layers.py)
CASES = {
    "QLSTM-last-Vitis": ("QLSTM", False, "Vitis"),
    "QGRU-sequences-Vivado": ("QGRU", True, "Vivado"),
}


@pytest.fixture(scope="session", params=list(CASES))
def recurrent_project(request: pytest.FixtureRequest) -> tuple[str, Any, np.ndarray]:
    from hepfpga.firmware import FirmwareOptions
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.verify import plan_for_events

    kind, sequences, backend = CASES[request.param]
    options = FirmwareOptions(backend=backend)
    x = np.random.default_rng(1).normal(size=(N_EVENTS, 7, 3)).astype(np.float32)
    plan, events = plan_for_events(recurrent_model(kind, sequences), x, options)
    return request.param, cached_project(plan, options), events


@pytest.mark.slow
def test_recurrent_layers_are_emulated_bit_exactly(
    recurrent_project: tuple[str, Any, np.ndarray],
) -> None:
    from hepfpga.firmware.csim import predict_traces, predict_with_logits
    from hepfpga.firmware.emulate import ENGINE_FIXED, EmulationFallbackWarning, Emulator
    from hepfpga.firmware.emulate_recurrent import RecurrentStep

    case, project, events = recurrent_project
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, stress_events=1000)
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert emulator.check is not None and emulator.check.passed
    plan = emulator._plan
    assert plan is not None
    step = next(s for s in plan.steps if s.name == "rnn")
    assert isinstance(step, RecurrentStep) and step.return_sequences == ("sequences" in case)
    # outputs and logits, and the recurrent layer's own output, on events far outside the
    # input type's range too (saturating inputs, saturating gate sums)
    wide = np.concatenate([events, events * 6.0])
    out, logits = emulator.predict_with_logits(wide)
    ref_out, ref_logits = predict_with_logits(project, wide, emulator.logits_layer or "logits")
    assert np.array_equal(out, ref_out) and np.array_equal(logits, ref_logits)
    _, traces = predict_traces(project, wide, ["rnn"])
    tensor = plan.layer_outputs["rnn"]
    raw = plan.run(wide, keep=("rnn",))[tensor].reshape(len(wide), -1)
    assert np.array_equal(np.ldexp(raw, -plan.type_of(tensor).fractional), traces["rnn"])


@pytest.mark.slow
def test_the_emulator_reports_the_recurrent_engine(
    recurrent_project: tuple[str, Any, np.ndarray], tmp_path: Any
) -> None:
    """``emulate_file`` on a sequence file: the fixed-point engine, proven, no fallback."""
    from hepfpga.firmware.csim import predict
    from hepfpga.firmware.emulate import ENGINE_FIXED, emulate_file

    case, project, events = recurrent_project
    if case != "QLSTM-last-Vitis":
        pytest.skip("one file round trip is enough")
    data = tmp_path / "sequences.npz"
    np.savez(data, x=events)
    result = emulate_file(project, data, tmp_path / "scores.npz", check_events=100, n_workers=1)
    assert result.engine == ENGINE_FIXED and result.fallback_reason is None
    with np.load(tmp_path / "scores.npz") as scores:
        assert np.array_equal(scores["outputs"], predict(project, events))
