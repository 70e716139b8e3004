"""The fixed-point engine's TimeDistributed block and table activations (issue 20), proven
identical to the C simulation: one QKeras model with TimeDistributed Conv2D, MaxPooling2D and
Dense, tanh and sigmoid tables, and a final table softmax (one g++ build), on random events
and on events at and past the input type's edges (the tables' first and last entries).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

STEPS, HEIGHT, WIDTH, CHANNELS = 3, 4, 5, 2


def time_distributed_tables() -> Any:
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(3)

    def q() -> Any:
        return quantized_bits(6, 0, alpha=1)

    layers = keras.layers
    x = keras.Input((STEPS, HEIGHT, WIDTH, CHANNELS), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="q")(x)
    conv = QConv2D(3, (2, 2), kernel_quantizer=q(), bias_quantizer=q(), name="conv")
    h = layers.TimeDistributed(conv, name="td_conv")(h)  # (3, 3, 4, 3)
    h = layers.TimeDistributed(layers.MaxPooling2D(2, name="pool"), name="td_pool")(h)
    h = layers.Reshape((STEPS, 6), name="steps")(h)
    dense = QDense(
        5, kernel_quantizer=q(), bias_quantizer=q(), activation=quantized_relu(8, 3), name="dense"
    )
    h = layers.TimeDistributed(dense, name="td_dense")(h)
    h = layers.Activation("tanh", name="tanh")(h)
    h = layers.Flatten(name="flat")(h)
    # weights up to 4: the sigmoid's inputs reach past both ends of its table's [-8, 8)
    wide = quantized_bits(6, 2, alpha=1)
    init = keras.initializers.RandomUniform(-4, 4, seed=4)
    h = QDense(6, kernel_quantizer=wide, kernel_initializer=init, bias_quantizer=q(), name="d1")(h)
    h = layers.Activation("sigmoid", name="sigmoid")(h)
    h = QDense(4, kernel_quantizer=q(), bias_quantizer=q(), name="logits")(h)
    return keras.Model(x, layers.Activation("softmax", name="softmax")(h))


def _events() -> np.ndarray:
    """Random events; events at the input type's ends (ap_fixed<8,4>: -8 and 7.9375, so the
    tanh/sigmoid inputs reach their tables' ends) and far past them (saturating)."""
    rng = np.random.default_rng(7)
    x = rng.normal(scale=2.0, size=(300, STEPS, HEIGHT, WIDTH, CHANNELS))
    x[::6] = rng.choice([-8.0, 7.9375], size=x[::6].shape)
    x[1::6] *= 40.0
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def td_project() -> Any:
    from hepfpga.firmware import FirmwareOptions
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.verify import plan_for_events

    options = FirmwareOptions()
    plan, events = plan_for_events(time_distributed_tables(), _events(), options)
    return cached_project(plan, options), events


@pytest.mark.slow
def test_time_distributed_and_tables_emulated_bit_exactly(td_project: Any) -> None:
    """No fallback: the engine reproduces the C simulation on the events and 2,000 spread
    over the input range, and every layer's output (the blocks' wrapped layers included,
    read as one row per time step) equals its C simulation trace."""
    from hepfpga.firmware.csim import predict_traces
    from hepfpga.firmware.emulate import ENGINE_FIXED, EmulationFallbackWarning, Emulator

    project, events = td_project
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, stress_events=2000)
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert emulator.check is not None and emulator.check.passed
    plan = emulator._plan
    assert plan is not None
    kinds = {type(step).__name__ for step in plan.steps}
    assert {"TimeStepsStep", "TableActivationStep", "SoftmaxStep"} <= kinds, kinds
    names = ["td_conv_end", "td_pool_end", "td_dense_end", "tanh", "sigmoid", "softmax"]
    _, traces = predict_traces(project, events, names)
    kept = plan.run(events, keep=tuple(names))
    for name in names:
        tensor = plan.layer_outputs[name]
        raw = kept[tensor] if tensor in kept else plan.run(events)[tensor]
        values = np.ldexp(raw.reshape(len(events), -1), -plan.type_of(tensor).fractional)
        assert np.array_equal(values, traces[name]), name
    # the events reach the ends of the tables: tanh's last entries (inputs of 4 and more,
    # from the relu), the sigmoid's first and last (inputs beyond -8 and 8)
    assert traces["tanh"].max() > 0.999
    assert traces["sigmoid"].min() < 4e-4 and traces["sigmoid"].max() > 1 - 4e-4


@pytest.mark.slow
def test_the_cpp_generator_still_refuses_the_block(td_project: Any) -> None:
    """The C++ generator has no TimeDistributed step: it refuses, naming the step (the
    emulator library then falls back loudly, see emulate_engine.cpp)."""
    from hepfpga.firmware.emulate_engine.cpp import CppUnsupportedError, generate_cpp
    from hepfpga.firmware.emulate_engine.plan import build_plan

    project, _ = td_project
    with pytest.raises(CppUnsupportedError, match=r"td_conv|TimeStepsStep"):
        generate_cpp(build_plan(project.hls_model), "td_model")
