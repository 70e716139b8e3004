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
    proven_bounds,
    proven_values,
    search_precision,
    trace_plan,
)
from hepfpga.fixed_point import FixedType, Rounding, Saturation

pytest.importorskip("optuna")
pytest.importorskip("da4ml")

TRIALS = 4


def build_tiny_mlp(seed: int = 0, coarse_first: bool = False) -> Any:
    """6 inputs -> QDense(8) -> quantized_relu(6) -> QDense(3) logits -> softmax.

    ``coarse_first``: the first layer's weights and biases set to multiples of 1/4 (their
    quantizer keeps 5 fractional bits, so 3 of them are provably zero in every product)."""
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
    model = keras.Model(x, out)
    if coarse_first:
        rng = np.random.default_rng(seed)
        layer = model.get_layer("dense_1")
        kernel, bias = layer.get_weights()
        layer.set_weights(
            [
                rng.integers(-4, 4, size=kernel.shape) / 4.0,
                rng.integers(-2, 2, size=bias.shape) / 4.0,
            ]
        )
    return model


def corners(n_inputs: int, t_min: float, t_max: float) -> np.ndarray:
    """Every corner of the input box: each feature at either end of the input type."""
    grid = np.array(np.meshgrid(*[[t_min, t_max]] * n_inputs, indexing="ij"))
    return grid.reshape(n_inputs, -1).T.astype(np.float32)


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
    # the proof decides: no Optuna trial, and the report says what the old space would waste
    assert exact.proven and exact.trials_spent == 0 and exact.trials_requested == TRIALS
    assert [t.number for t in exact.trials] == [0]
    assert 0 < exact.old_space_unproven_share <= 1
    assert exact.trials_wasted_before == pytest.approx(TRIALS * exact.old_space_unproven_share)
    assert all(t.feasible for t in exact.pareto)


@pytest.mark.parametrize("coarse", [False, True], ids=["trained-weights", "coarse-weights"])
def test_proven_widths_hold_for_every_input_and_are_tight(coarse: bool) -> None:
    """Bit-exact on every corner of the input box (where the first layer's bound is
    reached) and on values beyond the input type's range; one integer bit fewer in the first
    Dense layer does not hold its values; provably-zero fractional bits are dropped."""
    model = build_tiny_mlp(seed=2, coarse_first=coarse)
    rng = np.random.default_rng(4)
    t_in = FixedType(12, 4, rounding=Rounding.RND_CONV, saturation=Saturation.SAT)
    box = corners(6, t_in.min_value, t_in.max_value)
    wild = rng.uniform(-3, 3, size=(500, 6)).astype(np.float32) * 2.0**t_in.integer
    search = PrecisionSearch(model, np.concatenate([box, wild]))
    try:
        plan, tensor = search.engine({})
        assert plan.inputs[0].type == t_in  # quantized_bits(12, 3): the box's corners
        bounds = proven_bounds(plan, tensor, search.base_plan)
        types = candidate_types(search.base_plan, proven_values(search.knobs, bounds))
        reference = search.logits(plan, tensor)
        chosen_plan, chosen_tensor = search.engine(types)
        np.testing.assert_array_equal(search.logits(chosen_plan, chosen_tensor), reference)
        first = bounds["dense_1"]
        base = search.base_plan.precision["dense_1"].result
        assert first.integer < base.integer, "the quantizer-derived sum is wider than needed"
        assert types["dense_1"].result.integer == first.integer
        # the first layer's bound is reached on a corner: one bit fewer would wrap there
        raw = plan.run(box, keep=("dense_1",))[plan.layer_outputs["dense_1"]]
        reached = np.ldexp(np.asarray(raw, dtype=np.float64), -base.fractional)
        assert reached.min() == first.lo or reached.max() == first.hi
        limit = 2.0 ** (first.integer - 2)
        assert reached.min() < -limit or reached.max() >= limit
        if coarse:  # inputs on 2**-8, weights and biases on 2**-2: 10 bits, not 13
            assert t_in.fractional == 8 and first.fractional == 10
            assert types["dense_1"].result.fractional == 10
        else:
            assert first.fractional == base.fractional
    finally:
        search.close()


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


def test_accuracy_constraint_holds_on_the_held_out_events(
    tiny: tuple[Any, np.ndarray, np.ndarray],
) -> None:
    """The search scores on half of the events; the choice keeps epsilon on the other half,
    which the search never saw, and both accuracies are reported."""
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
    assert result.n_heldout == len(x) // 2 and result.n_events == len(x) - result.n_heldout
    assert result.trials_spent == TRIALS and not result.proven
    # the held-out events: those the search did not score (the seeded split)
    order = np.random.default_rng(1).permutation(len(x))
    held = np.sort(order[: result.n_heldout])
    base_logits = _logits(model, x[held], {})
    base_held = float(np.mean(base_logits.argmax(axis=1) == labels[held]))
    assert result.heldout_baseline_accuracy == pytest.approx(base_held)
    chosen = _logits(model, x[held], result.best.layer_types)
    chosen_held = float(np.mean(chosen.argmax(axis=1) == labels[held]))
    assert result.best.heldout_accuracy == pytest.approx(chosen_held)
    assert base_held - chosen_held <= epsilon
    # on the search events too, and every trial's feasibility is the constraint there
    base = result.baseline.accuracy
    assert base is not None and result.best.accuracy is not None
    assert base - result.best.accuracy <= epsilon
    for trial in result.trials:
        assert trial.accuracy is not None
        assert trial.feasible == (base - trial.accuracy <= epsilon)
    # a cheaper candidate passed over broke epsilon on the held-out events
    for number in result.rejected_on_heldout:
        trial = next(t for t in result.trials if t.number == number)
        assert trial.heldout_accuracy is not None and base_held - trial.heldout_accuracy > epsilon
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
    model, x, labels = tiny
    first, second = (
        search_precision(
            model,
            x[:200],
            constraint=Constraint.ACCURACY,
            labels=labels[:200],
            epsilon=0.05,
            n_trials=3,
            seed=5,
        )
        for _ in range(2)
    )
    assert [t.layer_types for t in first.trials] == [t.layer_types for t in second.trials]
    assert [t.fraction_identical for t in first.trials] == [
        t.fraction_identical for t in second.trials
    ]
