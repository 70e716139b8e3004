"""The precision optimiser: its constraints hold for what it returns (emulator, da4ml's
interpreter and one real C simulation), the search is seeded, bad arguments are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConfigError, DataError
from hepfpga.firmware import FirmwareOptions, write_project
from hepfpga.firmware.csim import predict_logits
from hepfpga.firmware.precision_search import (
    Constraint,
    PrecisionSearch,
    candidate_types,
    search_precision,
    trace_plan,
)

pytest.importorskip("optuna")
pytest.importorskip("da4ml")

TRIALS = 4


def build_tiny_mlp(seed: int = 0) -> Any:
    """6 inputs -> QDense(8) -> quantized_relu(6) -> QDense(3) logits -> softmax."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((6,), name="input")
    h = QActivation(quantized_bits(12, 3, alpha=1), name="input_quant")(x)
    h = QDense(
        8,
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="dense_1",
    )(h)
    h = QActivation(quantized_relu(6), name="relu_1")(h)
    h = QDense(
        3,
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="logits",
    )(h)
    out = keras.layers.Activation("softmax", name="softmax")(h)
    return keras.Model(x, out)


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, np.ndarray, np.ndarray]:
    model = build_tiny_mlp()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    # labels a model could learn: the float model's own choice, a fifth of them flipped
    labels = np.asarray(model.predict(x, verbose=0)).argmax(axis=1)
    flip = rng.uniform(size=len(labels)) < 0.2
    labels[flip] = rng.integers(0, 3, size=int(flip.sum()))
    return model, x, labels


@pytest.fixture(scope="module")
def exact(tiny: tuple[Any, np.ndarray, np.ndarray]) -> Any:
    model, x, _ = tiny
    return search_precision(model, x, constraint=Constraint.BIT_EXACT, n_trials=TRIALS, seed=0)


def _logits(model: Any, x: np.ndarray, layer_types: Any) -> np.ndarray:
    search = PrecisionSearch(model, x)
    try:
        plan, tensor = search.engine(layer_types)
        return search.logits(plan, tensor)
    finally:
        search.close()


def test_bit_exact_choice_is_bit_exact_in_the_emulator_and_cheaper(
    tiny: tuple[Any, np.ndarray, np.ndarray], exact: Any
) -> None:
    model, x, _ = tiny
    best = exact.best
    assert best.feasible and best.fraction_identical == 1.0
    assert best.layer_types, "the range-derived candidate already narrows the sums"
    assert best.lut_estimate < exact.baseline.lut_estimate
    np.testing.assert_array_equal(_logits(model, x, best.layer_types), _logits(model, x, {}))
    # every trial's feasibility is the constraint itself
    for trial in exact.trials:
        assert trial.feasible == (trial.fraction_identical == 1.0)
    assert all(t.feasible for t in exact.pareto)


@pytest.mark.slow  # one hls4ml C-simulation build (g++)
def test_bit_exact_choice_is_bit_exact_in_c_simulation(
    tiny: tuple[Any, np.ndarray, np.ndarray], exact: Any, tmp_path: Path
) -> None:
    model, x, _ = tiny
    options = FirmwareOptions(layer_types=exact.best.layer_types)
    project = write_project(model, options, tmp_path / "chosen", compile=True)
    np.testing.assert_array_equal(predict_logits(project, x), _logits(model, x, {}))


def test_rtl_of_a_narrowed_candidate_computes_the_engine_logits(
    tiny: tuple[Any, np.ndarray, np.ndarray], exact: Any
) -> None:
    """da4ml's trace of the engine steps (wrapping sums, truncated results) is the engine."""
    model, x, _ = tiny
    narrowed = max(exact.trials, key=lambda t: len(t.layer_types))
    search = PrecisionSearch(model, x)
    try:
        plan, tensor = search.engine(narrowed.layer_types)
        net = trace_plan(plan, tensor)
        rtl = np.asarray(net.comb.predict(net.input_type.quantize(x.astype(np.float64))))
        np.testing.assert_array_equal(rtl.reshape(len(x), -1), search.logits(plan, tensor))
    finally:
        search.close()


def test_accuracy_constraint_holds_and_the_search_is_seeded(
    tiny: tuple[Any, np.ndarray, np.ndarray],
) -> None:
    model, x, labels = tiny
    epsilon = 0.03
    result = search_precision(
        model,
        x,
        constraint=Constraint.ACCURACY,
        labels=labels,
        epsilon=epsilon,
        n_trials=TRIALS,
        seed=1,
    )
    base = result.baseline.accuracy
    assert base is not None
    logits = _logits(model, x, result.best.layer_types)
    assert base - float(np.mean(logits.argmax(axis=1) == labels)) <= epsilon
    for trial in result.trials:
        assert trial.accuracy is not None
        assert trial.feasible == (base - trial.accuracy <= epsilon)
    # the widths are free to change the logits here: some trial does
    assert min(t.fraction_identical for t in result.trials) < 1.0
    # the unconstrained knob values give the unconstrained firmware: no override at all
    search = PrecisionSearch(model, x)
    try:
        assert candidate_types(search.base_plan, {k.name: k.high for k in search.knobs}) == {}
    finally:
        search.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"constraint": Constraint.ACCURACY, "epsilon": 0.01}, DataError, "labels"),
        (
            {"constraint": Constraint.ACCURACY, "labels": "y", "epsilon": 1.5},
            ConfigError,
            "epsilon",
        ),
        ({"constraint": Constraint.BIT_EXACT, "epsilon": 0.01}, ConfigError, "epsilon"),
        ({"n_trials": 1}, ConfigError, "n_trials"),
    ],
    ids=["accuracy-without-labels", "epsilon-1.5", "epsilon-with-bit-exact", "one-trial"],
)
def test_bad_arguments_are_refused(
    tiny: tuple[Any, np.ndarray, np.ndarray], kwargs: dict, error: type, needle: str
) -> None:
    model, x, labels = tiny
    if kwargs.get("labels") == "y":
        kwargs = {**kwargs, "labels": labels}
    with pytest.raises(error, match=needle):
        search_precision(model, x, **kwargs)


def test_the_same_seed_gives_the_same_trials(tiny: tuple[Any, np.ndarray, np.ndarray]) -> None:
    model, x, _ = tiny
    first, second = (search_precision(model, x[:200], n_trials=3, seed=5) for _ in range(2))
    assert [t.layer_types for t in first.trials] == [t.layer_types for t in second.trials]
    assert [t.fraction_identical for t in first.trials] == [
        t.fraction_identical for t in second.trials
    ]
