"""The derived bound of hls4ml's table softmax (issue 20): from the table sizes and types the
configuration writes (:func:`hepfpga.firmware.verify_bounds.softmax_bound`), checked against
hls4ml's ``softmax_stable`` arithmetic on random and edge logits (no compiler), against the
C simulation of a QKeras model with a final softmax and one inside it (one g++ build), and
stated (with the reason) where no bound is derived.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware.emulate_engine.softmax import exp_table, inv_table
from hepfpga.firmware.hls_config import softmax_settings
from hepfpga.firmware.options import FirmwareOptions, SoftmaxMode
from hepfpga.firmware.verify_bounds import QuartusSoftmaxTables, SoftmaxTables, softmax_bound
from hepfpga.firmware.verify_plan import tables_from_settings
from hepfpga.fixed_point import FixedType, Rounding, Saturation

LOGITS = FixedType.parse("ap_fixed<16,6>")


def _tables(n: int, logits: FixedType = LOGITS, **options: Any) -> SoftmaxTables:
    settings = softmax_settings(FirmwareOptions(**options), n, logits)
    tables = tables_from_settings(settings, n, "vivado", logits)
    assert isinstance(tables, SoftmaxTables), tables
    return tables


def _firmware(x: np.ndarray, t: SoftmaxTables) -> np.ndarray:
    """hls4ml's ``softmax_stable`` on logits ``x`` (exact in their type), step by step."""
    exp_bits, inv_bits = t.exp_size.bit_length() - 1, t.inv_size.bit_length() - 1
    d = t.inp_norm_t.quantize(x.max(axis=1, keepdims=True) - x) / t.inp_norm_t.lsb
    index = np.floor(d / 2.0 ** (t.inp_norm_t.width - exp_bits)).astype(np.intp)
    entries = exp_table(t.inp_norm_t, exp_bits, t.exp_table_t, t.exp_scale) * t.exp_table_t.lsb
    e = entries[index]  # exact in accum_t, and so is the sum
    s = t.inv_inp_t.quantize(e.sum(axis=1)) / t.inv_inp_t.lsb
    inverse = inv_table(t.inv_inp_t, inv_bits, t.inv_table_t) * t.inv_table_t.lsb
    i = inverse[np.floor(s / 2.0 ** (t.inv_inp_t.width - inv_bits)).astype(np.intp)]
    return t.result_t.quantize(e * i[:, None])


def _logits(n: int, logits: FixedType, events: int = 20000) -> np.ndarray:
    """Random logits of every spread, and the edges: ties, one class far above the others
    (the others' differences saturate the exp table's address), pairs one lsb apart."""
    rng = np.random.default_rng(n)
    spread = rng.uniform(0.01, 12, size=(events, 1))
    x = rng.uniform(-1, 1, size=(events, n)) * spread
    x[::7] = 0.0  # all tied
    x[1::7, 1:] = -20.0  # the others saturate
    x[2::7, 1:] = -rng.uniform(0, 0.05, size=(len(x[2::7]), n - 1))  # near ties
    x[3::7, 0] = x[3::7, 1] + logits.lsb
    return logits.quantize(x)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


CASES = {
    "2 classes": (2, LOGITS, {}),
    "5 classes": (5, LOGITS, {}),
    "16 classes": (16, LOGITS, {}),
    "5, 256-entry tables": (5, LOGITS, {"softmax_table_size": 256}),
    "5, tuned": (5, FixedType.parse("ap_fixed<12,5>"), {"softmax": "tuned"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_bound_holds_and_is_tight(case: str) -> None:
    """hls4ml's arithmetic on 20,000 logit vectors (random spreads, ties, saturating
    differences, near ties): every output within the derived bound, and the bound within
    2.5x of the worst difference seen."""
    n, logits, options = CASES[case]
    tables = _tables(n, logits, **options)
    derived = softmax_bound(tables, logits.max_value - logits.min_value, logit_lsb=logits.lsb)
    assert not isinstance(derived, str), derived
    x = _logits(n, logits)
    worst = float(np.max(np.abs(_firmware(x, tables) - _softmax(x))))
    assert worst <= derived.bound, derived.how
    assert derived.bound <= 2.5 * worst, (worst, derived.how)


def test_the_bound_follows_the_tables() -> None:
    """A 4x larger table (2 more address bits) about quarters the error from rounding the
    differences; the tuned tables bring the bound below 1e-3."""
    small = softmax_bound(_tables(3, softmax_table_size=256), 20.0)
    large = softmax_bound(_tables(3, softmax_table_size=4096), 20.0)
    logits = FixedType.parse("ap_fixed<12,5>")
    tuned = softmax_bound(_tables(3, logits, softmax="tuned"), 20.0, logit_lsb=logits.lsb)
    assert not isinstance(small, str) and not isinstance(large, str)
    assert not isinstance(tuned, str)
    assert large.bound < small.bound / 3
    assert tuned.bound < 1e-3
    assert "256-entry exp table" in small.how and "4096-entry 1/x table" in large.how


def _quartus_tables(n: int, logits: FixedType, **options: Any) -> QuartusSoftmaxTables:
    settings = softmax_settings(FirmwareOptions(backend="Quartus", **options), n, logits)
    tables = tables_from_settings(settings, n, "Quartus", logits)
    assert isinstance(tables, QuartusSoftmaxTables), tables
    return tables


def _quartus_firmware(x: np.ndarray, t: QuartusSoftmaxTables) -> np.ndarray:
    """hls4ml 1.3's Quartus ``softmax_stable`` on logits ``x`` (exact in their type), step by
    step, with the tables made by hls4ml's own writer helpers (``FixedPointEmulator``), read
    into ``table_t`` and converted where they are used."""
    from hls4ml.utils.fixed_point_utils import FixedPointEmulator, uint_to_binary

    bits = t.size.bit_length() - 1

    def table(value_t: FixedType, sign: bool, func: str, read_t: FixedType) -> np.ndarray:
        values = []
        for i in range(t.size):
            f = FixedPointEmulator(value_t.width, value_t.integer, signed=True)
            b = uint_to_binary(i, bits)
            b.insert(0, 1 if (sign and i) else 0)
            f.set_msb_bits(b)
            values.append(getattr(f, func)())
        return read_t.quantize(t.table_t.quantize(np.array(values[1:] if not sign else values)))

    def index(v: np.ndarray, v_t: FixedType) -> np.ndarray:
        raw = np.round(v / v_t.lsb).astype(np.int64) % 2**v_t.width  # two's complement code
        y = (raw >> (v_t.width - bits - 1)) & (2**bits - 1)
        return np.where((y == 0) & (v != 0), 1, y)

    exp_entries = table(t.input_t, True, "exp_float", t.exp_table_t)
    inverse = np.concatenate(([np.nan], table(t.exp_table_t, False, "inv_float", t.inv_table_t)))
    diff_t = replace(t.input_t, rounding=Rounding.RND, saturation=Saturation.SAT)
    e = exp_entries[index(diff_t.quantize(x - x.max(axis=1, keepdims=True)), t.input_t)]
    s = e.sum(axis=1)  # exact in exp_table_t
    i = inverse[index(s, t.exp_table_t)]
    return t.result_t.quantize(e * i[:, None])


QUARTUS_CASES: dict[str, tuple[int, FixedType, dict[str, Any]]] = {
    "3 classes, ap_fixed<14,7> logits": (3, FixedType.parse("ap_fixed<14,7>"), {}),
    "5 classes": (5, LOGITS, {}),
    "10 classes, ap_fixed<10,4>": (10, FixedType.parse("ap_fixed<10,4>"), {}),
    # Quartus reads TableSize (2048) only, not the Vivado-only inv_table_size (65536)
    "3 classes, tuned": (3, FixedType.parse("ap_fixed<12,5>"), {"softmax": "tuned"}),
}


@pytest.mark.parametrize("case", list(QUARTUS_CASES))
def test_the_quartus_bound_holds_and_is_tight(case: str) -> None:
    """The Quartus template (its own addressing, tables of ``ac_fixed<16,8>`` entries) on
    20,000 logit vectors: every output within the derived bound, the bound within 2.5x of the
    worst difference seen, and its statement names the entries' type."""
    n, logits, options = QUARTUS_CASES[case]
    tables = _quartus_tables(n, logits, **options)
    derived = softmax_bound(tables, logits.max_value - logits.min_value, logit_lsb=logits.lsb)
    assert not isinstance(derived, str), derived
    x = _logits(n, logits)
    worst = float(np.max(np.abs(_quartus_firmware(x, tables) - _softmax(x))))
    assert worst <= derived.bound, derived.how
    assert derived.bound <= 2.5 * worst, (worst, derived.how)
    assert "Quartus softmax" in derived.how and "ac_fixed<16,8,true>" in derived.how


def test_the_quartus_sum_must_fit_exp_table_t() -> None:
    """Quartus sums the exponentials in ``exp_table_t``: one too narrow for ``n`` gives no
    bound, said in words (the saturated sum of the old configuration, 0.99 off)."""
    logits = FixedType.parse("ap_fixed<14,7>")
    tables = replace(_quartus_tables(3, logits), exp_table_t=FixedType.parse("ap_fixed<19,2>"))
    found = softmax_bound(tables, logits.max_value - logits.min_value)
    assert isinstance(found, str) and "cannot hold 3 times the largest exp" in found, found


@pytest.mark.parametrize(
    "change, reason",
    [
        (
            {"accum_t": FixedType.parse("ap_ufixed<12,3,AP_RND,AP_SAT>")},
            "accum_t ap_ufixed<12,3,AP_RND,AP_SAT> rounds the exp entries",
        ),
        (
            {"accum_t": FixedType.parse("ap_ufixed<18,1,AP_RND,AP_SAT>")},
            "cannot hold 5 times the largest exp",
        ),
        (
            {"inv_inp_t": FixedType.parse("ap_ufixed<10,3,AP_RND,AP_WRAP>")},
            "inv_inp_t ap_ufixed<10,3,AP_RND,AP_WRAP> wraps",
        ),
        ({"exp_size": 1000}, "table size 1000 is not a power of two"),
    ],
)
def test_no_bound_says_why(change: dict[str, Any], reason: str) -> None:
    tables = replace(_tables(5), **change)
    if "inv_inp_t" in change:
        # sums up to 9 > 8 - lsb: the wrap is reachable
        tables = replace(tables, n=9, accum_t=FixedType.parse("ap_ufixed<21,4,AP_RND,AP_SAT>"))
    found = softmax_bound(tables, 20.0)
    assert isinstance(found, str) and reason in found, found


def test_other_implementations_and_backends_are_not_analysed() -> None:
    latency = softmax_settings(FirmwareOptions(softmax=SoftmaxMode.LATENCY), 5, LOGITS)
    assert "'latency' softmax is not analysed" in str(tables_from_settings(latency, 5))
    stable = softmax_settings(FirmwareOptions(backend="Catapult"), 5, LOGITS)
    assert "Catapult backend's softmax" in str(tables_from_settings(stable, 5, "Catapult"))
    bare = {"Implementation": "stable", "TableSize": 1024}
    assert "leaves inp_norm_t" in str(tables_from_settings(bare, 5))


# -- the requirement verify states ---------------------------------------------------------------
@pytest.fixture(scope="module")
def two_softmaxes(softmax_names_case: Any) -> Any:
    from hepfpga.firmware.verify_plan import plan_for_events, requirement

    model, x, report = softmax_names_case
    plan, _ = plan_for_events(model, x)
    required = requirement(plan, None, exact_outputs=False, on_grid=False)
    return report, required, model, x


@pytest.mark.slow
def test_verify_judges_each_softmax_by_its_bound(two_softmaxes: Any) -> None:
    """The C simulation (one g++ build, shared with test_byo_names.py): the final softmax's
    outputs and the inner softmax's traced output are each within their derived bound (and
    not exact); the QDense output after the inner softmax is judged by the bound carried
    through it (sum_j |W_ij| * bound, stated), which it meets without being exact: the
    verdict passes; the diagnosis names the inner softmax, not the QDense after it."""
    from hepfpga.firmware import verify_model

    report, required, model, x = two_softmaxes
    assert set(required.softmax_output_bounds) == {"out"}
    assert set(required.layer_bounds) == {"inner"}
    text = report.requirement
    assert text.startswith("bit-exact logits")
    assert "softmax 'out' outputs within its derived bound (softmax over 5" in text
    assert "softmax 'inner' (inside the model): its traced output within" in text
    after = "output 'bias_layer' after it: logits within 0.0"
    assert after in text and "the bound carried from softmax 'inner' through 'bias_layer'" in text
    carried = required.output_bounds["Bias_layer"]  # the requirement speaks hls4ml's names
    kernel = model.get_layer("bias_layer").kernel_quantizer_internal(
        model.get_layer("bias_layer").kernel
    )
    per_unit = np.abs(np.asarray(kernel)).sum(axis=0).max() * required.layer_bounds["inner"]
    assert per_unit <= carried <= per_unit + 1e-5
    out = report.model_outputs["out"]
    assert out.logits_bit_exact
    assert 0 < out.probs_max_abs_diff <= required.softmax_output_bounds["out"]
    inner = next(layer for layer in report.layers if layer.name == "inner")
    assert 0 < inner.max_abs_diff <= required.layer_bounds["inner"]
    dense = report.model_outputs["bias_layer"]
    assert not dense.logits_bit_exact and 0 < dense.logits_max_abs_diff <= carried
    assert report.passed and "PASSED" in report.summary()
    assert report.diagnosis is not None
    assert (report.diagnosis.layer, report.diagnosis.cause) == ("inner", "table_activation")
    assert "'bias_layer' after it is the first layer meant to be exact" in str(report.diagnosis)
    tolerated = verify_model(model, x, tolerance=0.05)
    assert tolerated.passed and tolerated.from_cache, tolerated.requirement


def _after_inner_softmax(tail: str) -> Any:
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    def dense(n: int, name: str) -> Any:
        q = quantized_bits(6, 0, alpha=1)
        return QDense(n, kernel_quantizer=q, bias_quantizer=q, name=name)

    x = keras.Input((4,), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="x_q")(x)
    h = keras.layers.Activation("softmax", name="inner")(dense(5, "d1")(h))
    h = dense(4, "d2")(h)
    if tail == "dense":
        h = dense(3, "d3")(h)
    elif tail == "quantizer":
        h = QActivation(quantized_relu(6, 2), name="q3")(h)
    return keras.Model(x, h)


@pytest.mark.parametrize(
    "tail, expected",
    [
        ("", "output 'd2' after it: logits within"),
        ("dense", "the bound carried from softmax 'inner' through 'd2', 'd3'"),
        ("quantizer", "no bound is carried: it passes through QActivation 'q3'"),
    ],
)
def test_a_bound_is_carried_through_dense_layers_only(tail: str, expected: str) -> None:
    """After an inner softmax judged by its bound b: a QDense gets sum_j |W_ij| b (+ 1 lsb
    and float32's rounding), a second QDense that bound carried again, and a quantizer none
    (the verdict says which layer stops it). No compiler."""
    from hepfpga.firmware.verify_plan import plan_for_events, requirement

    model = _after_inner_softmax(tail)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    plan, _ = plan_for_events(model, x)
    required = requirement(plan, None, exact_outputs=False, on_grid=False)
    assert expected in required.text, required.text
    output = {"": "d2", "dense": "d3", "quantizer": "q3"}[tail]
    if tail == "quantizer":
        assert output not in required.output_bounds
        return
    b = required.layer_bounds["inner"]
    bound = np.full(5, b)
    for name in ("d2", "d3")[: 2 if tail else 1]:
        layer = model.get_layer(name)
        kernel = np.abs(np.asarray(layer.kernel_quantizer_internal(layer.kernel), np.float64))
        bound = bound @ kernel
    # the carried bound: the linear part, plus the result types' lsb and float32's rounding
    # (over the second layer's input range), together under 1e-4 here
    assert bound.max() <= required.output_bounds[output] <= bound.max() + 1e-4


def test_a_tighter_bound_fails_the_verdict() -> None:
    """The same requirement with a bound below the measured difference fails (the
    requirement is checked, not only stated)."""
    from hepfpga.firmware.diagnose import LayerComparison
    from hepfpga.firmware.verify_plan import Requirement
    from hepfpga.firmware.verify_report import compare_outputs

    logits = np.zeros((2, 3))
    probs = np.full((2, 3), 1 / 3)
    exact = compare_outputs(logits, logits, probs, probs)
    off = compare_outputs(logits, logits, probs, probs + 0.004)
    rule = Requirement("bit-exact logits", softmax_output_bounds={"out": 0.005})
    assert rule.met_by({"out": off}) and not replace(
        rule, softmax_output_bounds={"out": 0.003}
    ).met_by({"out": off})
    layer = LayerComparison("inner", "Activation", "t", 0.0, 0.004, 1.0, 0, 1, 0, 1, False)
    inside = Requirement("bit-exact logits", layer_bounds={"inner": 0.005})
    assert inside.met_by({"d2": exact}, [layer])
    assert not replace(inside, layer_bounds={"inner": 0.003}).met_by({"d2": exact}, [layer])
    assert not inside.met_by({"d2": exact}, [])  # a bounded layer must have been compared


def _softmax_model(kind: str) -> Any:
    from tensorflow import keras

    x = keras.Input((6,), name="x")
    h = x if kind == "of input" else keras.layers.Dense(6, name="d")(x)
    return keras.Model(x, keras.layers.Activation("softmax", name="sm")(h))


@pytest.mark.parametrize(
    "kind, mode, expected",
    [
        ("of input", "stable", "softmax 'sm' outputs within its derived bound"),
        ("of input", "latency", "'latency' softmax is not analysed"),
        ("after a float Dense", "stable", "a float model's profiled layer, not exact"),
    ],
)
def test_float_models_state_their_softmax(kind: str, mode: str, expected: str) -> None:
    """hls4ml's softmax tests apply the softmax to the input: judged by the bound, which
    includes the input's rounding (Keras reads the events unrounded); after a float layer,
    or for hls4ml's latency tables, the verdict says no bound is derived."""
    from hepfpga.firmware import plan_conversion
    from hepfpga.firmware.layers import ready_model
    from hepfpga.firmware.precision import profile_ranges
    from hepfpga.firmware.verify_plan import requirement

    model = ready_model(_softmax_model(kind))
    x = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    options = FirmwareOptions(softmax=SoftmaxMode(mode))
    plan = plan_conversion(model, options, ranges=profile_ranges(model, x))
    required = requirement(plan, None, exact_outputs=False, on_grid=False)
    assert expected in required.text, required.text
    assert required.text.startswith("logits within 0.01")
    if mode == "stable" and kind == "of input":
        assert "logits read within" in required.text
        assert 2**-9 < required.softmax_output_bounds["sm"] < 0.02
        on_grid = requirement(plan, None, exact_outputs=False, on_grid=True)
        # on the input grid the firmware reads the very logits Keras does
        assert "logits read within" not in on_grid.text
        assert 2**-9 < on_grid.softmax_output_bounds["sm"] < 0.02
    else:
        assert not required.softmax_output_bounds


@pytest.mark.parametrize(("width", "size"), [(8, 256), (10, 1024), (16, 1024), (None, None)])
def test_table_size_is_cut_as_hls4ml_cuts_it(width: int | None, size: int | None) -> None:
    """hls4ml 1.3's FixSoftmaxTableSize: without an explicit ``inv_table_size``, the table
    has ``min(TableSize, 2**min(input width, inv_table_t width))`` entries (256 after an
    ``ap_fixed<8,3>`` input, as in the softmax-of-the-input model); an unknown input width
    gives no bound, said in words."""
    settings = softmax_settings(FirmwareOptions(), 6, LOGITS)
    input_t = None if width is None else FixedType(width, 3)
    tables = tables_from_settings(settings, 6, "vivado", input_t)
    if size is None:
        assert isinstance(tables, str) and "input type of the softmax is unknown" in tables
    else:
        assert not isinstance(tables, str)
        assert tables.exp_size == tables.inv_size == size
