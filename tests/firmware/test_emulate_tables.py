"""Table-based and parametrised activations in the fixed-point engine: identical to the C
simulation bit for bit (sigmoid, tanh, softplus, softsign, elu/ELU, selu, hard_sigmoid,
LeakyReLU, PReLU, ThresholdedReLU), and the table address hls4ml computes.

The fast tests check the address and table rules without g++; the compiled chain model (every
activation in one model; Vitis io_parallel and Vivado io_stream, whose nnet_activation_stream.h
addresses the tables the same way) is built once per session and marked slow.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware.emulate_tables import lookup_table
from hepfpga.quantize.fixed import FixedType

TABLE_T = FixedType.parse("ap_fixed<18,8>")


@pytest.mark.parametrize(
    ("kind", "size", "x", "index"),
    [
        # sigmoid/softplus/softsign: clip(trunc(x * N / 16) + N / 2, 0, N - 1)
        ("sigmoid", 1024, 0.0, 512),
        ("sigmoid", 1024, -1 / 128, 512),  # x * 64 = -0.5 truncates to 0 (toward zero)
        ("sigmoid", 1024, -1 / 64, 511),
        ("sigmoid", 1024, 1 / 128, 512),
        ("sigmoid", 1024, -8.0, 0),
        ("sigmoid", 1024, -20.0, 0),
        ("sigmoid", 1024, 7.99, 1023),
        ("softplus", 4096, 1.0, 2048 + 256),
        # tanh: clip(trunc(x * N / 8) + N / 2, 0, N - 1)
        ("tanh", 1024, 1.0, 640),
        ("tanh", 1024, -0.0078125, 511),
        ("tanh", 1024, 4.0, 1023),
        # elu/selu (x < 0): min(trunc(x * N / -8), N - 1)
        ("elu", 1024, -1.0, 128),
        ("elu", 1024, -1 / 256, 0),
        ("selu", 1024, -100.0, 1023),
    ],
)
def test_table_address(kind: str, size: int, x: float, index: int) -> None:
    data_t = FixedType.parse("ap_fixed<20,8>")
    table = lookup_table(kind, size, TABLE_T, "test")
    raw = np.ldexp(data_t.quantize(np.array([x])), data_t.fractional)
    assert int(table.address(raw, data_t.fractional)[0]) == index


@pytest.mark.parametrize(
    ("kind", "index", "value"),
    [
        ("sigmoid", 512, 0.5),  # sigmoid(0)
        ("tanh", 512, 0.0),
        ("softsign", 512 + 64, 0.5),  # x = 1: 1 / (1 + 1)
        ("elu", 0, 0.0),  # exp(0) - 1
        ("sigmoid", 0, 0.0003354626),  # sigmoid(-8), in ap_fixed<18,8> (10 fractional bits)
    ],
)
def test_table_entries(kind: str, index: int, value: float) -> None:
    table = lookup_table(kind, 1024, TABLE_T, "test")
    expected = TABLE_T.quantize(np.array([value]))[0]
    assert np.ldexp(table.entries[index], -TABLE_T.fractional) == expected


def activations_chain(seed: int = 0) -> Any:
    """Every table-based and parametrised activation hls4ml converts, one after the other."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = keras.Input((6,), name="features")
    h = x
    chain = [
        layers.Activation("sigmoid", name="sigmoid"),
        layers.Activation("tanh", name="tanh"),
        layers.Activation("softplus", name="softplus"),
        layers.Activation("softsign", name="softsign"),
        layers.Activation("selu", name="selu"),
        layers.ELU(alpha=0.7, name="elu"),
        layers.LeakyReLU(alpha=0.3, name="leaky"),
        layers.PReLU(
            alpha_initializer=keras.initializers.RandomUniform(0.05, 0.6, seed=seed),
            name="prelu",
        ),
        layers.ThresholdedReLU(theta=0.37, name="thresholded"),
        layers.Activation("hard_sigmoid", name="hard_sigmoid"),
    ]
    for i, activation in enumerate(chain):
        init = keras.initializers.RandomNormal(stddev=0.8, seed=seed + i)
        h = layers.Dense(6, kernel_initializer=init, bias_initializer=init, name=f"dense_{i}")(h)
        h = activation(h)
    h = layers.Dense(4, name="logits")(h)
    return keras.Model(x, layers.Activation("softmax", name="softmax")(h))


@pytest.fixture(
    scope="session", params=[("Vitis", "io_parallel"), ("Vivado", "io_stream")], ids=str
)
def chain_project(request: pytest.FixtureRequest) -> tuple[Any, np.ndarray]:
    from hepfpga.firmware import FirmwareOptions
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.verify import plan_for_events

    backend, io_type = request.param
    options = FirmwareOptions(backend=backend, io_type=io_type)
    x = np.random.default_rng(2).normal(0, 2.0, size=(400, 6)).astype(np.float32)
    plan, events = plan_for_events(activations_chain(), x, options)
    return cached_project(plan, options), events


@pytest.mark.slow
def test_every_activation_is_emulated_bit_exactly(chain_project: tuple[Any, np.ndarray]) -> None:
    from hepfpga.firmware.csim import predict_traces
    from hepfpga.firmware.emulate import ENGINE_FIXED, EmulationFallbackWarning, Emulator

    project, events = chain_project
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events, stress_events=2000)
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert emulator.check is not None and emulator.check.passed
    assert emulator.check.n_events == len(events) + 2000
    # every activation layer on its own, on the data and far outside the profiled range
    plan = emulator._plan
    assert plan is not None
    names = [s.name for s in plan.steps if not s.name.startswith("dense_")]
    wide = np.concatenate([events, events * 8.0])
    _, traces = predict_traces(project, wide, names)
    kept = plan.run(wide, keep=tuple(names))
    for name in names:
        tensor = plan.layer_outputs[name]
        values = np.ldexp(kept[tensor].reshape(len(wide), -1), -plan.type_of(tensor).fractional)
        assert np.array_equal(values, traces[name]), name
