"""TimeDistributed, Bidirectional, Embedding, LayerNormalization and SimpleRNN/QSimpleRNN
(Quartus) (issue 8): family x backend x io_type x bit width, each case asserting the
exactness hepfpga states for it, for verify and emulate; the hls4ml configuration written for
each family; every refusal's message.

Compiled cases (g++) share one verification per case (session-scoped fixture); the
configuration and refusal tests need no compiler.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError
from hepfpga.firmware import FirmwareOptions, VerificationReport, plan_conversion, verify_model

N_EVENTS = 300
VOCABULARY = 10


def _q(bits: int = 6, integer: int = 0) -> Any:
    from qkeras import quantized_bits

    return quantized_bits(bits, integer, alpha=1)


def _seed(seed: int) -> None:
    import tensorflow as tf

    from hepfpga.quantize.qat import qkeras_compat

    qkeras_compat()
    tf.keras.utils.set_random_seed(seed)


# -- tiny models --------------------------------------------------------------------------------
def embedding_time_distributed(seed: int = 0, normalise: bool = False) -> Any:
    """Tokens -> Embedding [-> LayerNormalization] -> TimeDistributed(Dense, relu) -> Flatten
    -> Dense softmax."""
    from tensorflow import keras

    _seed(seed)
    x = keras.Input((8,), name="tokens")
    h = keras.layers.Embedding(VOCABULARY, 4, name="embedding")(x)
    if normalise:
        h = keras.layers.LayerNormalization(name="ln")(h)
        _randomise_layernorm(h, seed)
    h = keras.layers.TimeDistributed(keras.layers.Dense(5, activation="relu"), name="td")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    out = keras.layers.Dense(3, activation="softmax", name="logits")(h)
    return keras.Model(x, out, name="float_tokens")


def qembedding_time_distributed(bits: int = 6, seed: int = 0) -> Any:
    """Tokens -> Embedding -> quantizer -> TimeDistributed(QDense, quantized_relu) -> QDense."""
    from qkeras import QActivation, QDense, quantized_relu
    from tensorflow import keras

    _seed(seed)
    x = keras.Input((8,), name="tokens")
    h = keras.layers.Embedding(VOCABULARY, 4, name="embedding")(x)
    h = QActivation(_q(8, 0), name="embedding_quant")(h)
    inner = QDense(
        5,
        kernel_quantizer=_q(bits),
        bias_quantizer=_q(bits),
        activation=quantized_relu(bits, 1),
        name="per_step",
    )
    h = keras.layers.TimeDistributed(inner, name="td")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    out = keras.layers.Activation("softmax", name="softmax")(h)
    return keras.Model(x, out, name="qkeras_tokens")


def bidirectional(kind: str = "LSTM", seed: int = 0) -> Any:
    """Sequence -> Bidirectional(LSTM/GRU, return_sequences) -> Flatten -> Dense softmax."""
    from tensorflow import keras

    _seed(seed)
    x = keras.Input((6, 4), name="sequence")
    rnn = getattr(keras.layers, kind)(5, return_sequences=True, name="rnn")
    h = keras.layers.Bidirectional(rnn, name="bi")(x)
    h = keras.layers.Flatten(name="flatten")(h)
    out = keras.layers.Dense(3, activation="softmax", name="logits")(h)
    return keras.Model(x, out, name="float_bidirectional")


def qbidirectional(
    kind: str = "QGRU", bits: int = 8, seed: int = 0, normalise: bool = False, **options: Any
) -> Any:
    """Input quantizer [-> LayerNormalization -> quantizer] -> Bidirectional(QLSTM/QGRU) ->
    QDense logits -> softmax."""
    from qkeras import QGRU, QLSTM, QActivation, QDense
    from tensorflow import keras

    _seed(seed)
    settings: dict[str, Any] = {
        "kernel_quantizer": _q(bits),
        "recurrent_quantizer": _q(bits),
        "bias_quantizer": _q(bits),
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
    }
    if kind == "QGRU":
        settings["reset_after"] = True
    settings.update(options)
    x = keras.Input((6, 4), name="sequence")
    h = QActivation(_q(12, 3), name="input_quant")(x)
    if normalise:
        h = keras.layers.LayerNormalization(name="ln")(h)
        _randomise_layernorm(h, seed)
        h = QActivation(_q(12, 3), name="ln_quant")(h)
    layer = keras.layers.Bidirectional(
        {"QLSTM": QLSTM, "QGRU": QGRU}[kind](5, **settings), name="bi"
    )
    h = layer(h)
    rng = np.random.default_rng(seed)  # non-zero biases, as after training
    weights = layer.get_weights()  # forward and backward: kernel, recurrent kernel, bias
    layer.set_weights(
        [rng.normal(0, 0.3, w.shape) if i % 3 == 2 else w for i, w in enumerate(weights)]
    )
    h = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    out = keras.layers.Activation("softmax", name="softmax")(h)
    return keras.Model(x, out, name="qkeras_bidirectional")


def qbidirectional_backward_layer() -> Any:
    """Bidirectional(QLSTM) with an explicit backward_layer."""
    from qkeras import QLSTM, QActivation
    from tensorflow import keras

    _seed(0)

    def rnn(backwards: bool) -> Any:
        q = _q(8)
        return QLSTM(
            3,
            kernel_quantizer=q,
            recurrent_quantizer=q,
            bias_quantizer=q,
            activation="tanh",
            recurrent_activation="sigmoid",
            go_backwards=backwards,
        )

    x = keras.Input((6, 4), name="sequence")
    h = QActivation(_q(12, 3), name="input_quant")(x)
    h = keras.layers.Bidirectional(rnn(False), backward_layer=rnn(True), name="bi")(h)
    return keras.Model(x, h)


def simple_rnn(seed: int = 0) -> Any:
    """Sequence -> SimpleRNN -> Dense logits (Quartus: its table softmax is coarse)."""
    from tensorflow import keras

    _seed(seed)
    x = keras.Input((6, 4), name="sequence")
    h = keras.layers.SimpleRNN(5, name="rnn")(x)
    return keras.Model(x, keras.layers.Dense(3, name="logits")(h), name="float_simple_rnn")


def qsimple_rnn(bits: int = 8, seed: int = 0, **options: Any) -> Any:
    """Input quantizer -> QSimpleRNN -> QDense logits (QKeras 0.9.0 builds QSimpleRNN on
    TF 2.14 only with hepfpga's qkeras_compat shim, applied by _seed)."""
    from qkeras import QActivation, QDense, QSimpleRNN
    from tensorflow import keras

    _seed(seed)
    settings: dict[str, Any] = {
        "kernel_quantizer": _q(bits),
        "recurrent_quantizer": _q(bits),
        "bias_quantizer": _q(bits),
        "activation": "tanh",
    }
    settings.update(options)
    x = keras.Input((6, 4), name="sequence")
    h = QActivation(_q(12, 3), name="input_quant")(x)
    layer = QSimpleRNN(5, name="rnn", **settings)
    h = layer(h)
    kernel, recurrent, bias = layer.get_weights()  # non-zero biases, as after training
    layer.set_weights([kernel, recurrent, np.random.default_rng(seed).normal(0, 0.3, bias.shape)])
    h = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    return keras.Model(x, h, name="qkeras_simple_rnn")


def layernorm(seed: int = 0) -> Any:
    """Sequence -> LayerNormalization -> Flatten -> Dense softmax (float)."""
    from tensorflow import keras

    _seed(seed)
    x = keras.Input((6, 8), name="sequence")
    h = keras.layers.LayerNormalization(name="ln")(x)
    _randomise_layernorm(h, seed)
    h = keras.layers.Flatten(name="flatten")(h)
    out = keras.layers.Dense(3, activation="softmax", name="logits")(h)
    return keras.Model(x, out, name="float_layernorm")


def _randomise_layernorm(tensor: Any, seed: int) -> None:
    """Gamma and beta away from 1 and 0, as after training."""
    layer = tensor.node.layer
    rng = np.random.default_rng(seed)
    gamma, beta = layer.get_weights()
    layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape)])


def _tokens(n: int = N_EVENTS, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCABULARY, size=(n, 8)).astype(np.float32)


def _sequence(shape: tuple[int, int], scale: float = 1.0, n: int = N_EVENTS) -> np.ndarray:
    return (np.random.default_rng(1).normal(size=(n, *shape)) * scale).astype(np.float32)


# -- compiled cases -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    build: Callable[..., Any]
    events: Callable[[], np.ndarray]
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    #: None: bit-exact logits required and measured; a number: the measured max |diff| of the
    #: logits must lie in (0, measured]
    measured: float | None = None
    #: the bound verify requires (None: bit-exact / the float tolerance passed)
    required: float | None = None
    #: float models: the tolerance passed to verify
    tolerance: float | None = None
    #: the layer classes whose emulator step is missing (the fallback names one of them)
    fallback: tuple[str, ...] = ()


#: family - backend - io_type - bit width; ``measured``: what these models gave (with margin),
#: see the table in docs/firmware.md
CASES: dict[str, Case] = {
    "embedding-layernorm-timedistributed-float-Vitis-parallel": Case(
        embedding_time_distributed,
        _tokens,
        {"normalise": True},
        measured=0.005,
        tolerance=0.01,
        fallback=("Embedding", "LayerNormalization", "TimeDistributed"),
    ),
    "embedding-timedistributed-qkeras-Vivado-parallel-w6": Case(
        qembedding_time_distributed,
        _tokens,
        {"bits": 6},
        {"backend": "Vivado"},
        fallback=("Embedding", "TimeDistributed"),
    ),
    "bidirectional-lstm-float-Vitis-parallel": Case(
        bidirectional,
        lambda: _sequence((6, 4)),
        {"kind": "LSTM"},
        measured=0.002,
        tolerance=0.05,
        fallback=("Bidirectional",),
    ),
    "layernorm-bidirectional-qgru-Vivado-parallel-w8": Case(
        qbidirectional,
        # per-step variances below 1: hls4ml's 1/sqrt table ends at 1 (see normalization.py)
        lambda: _sequence((6, 4), scale=0.5),
        {"kind": "QGRU", "bits": 8, "normalise": True},
        {"backend": "Vivado"},
        measured=0.05,
        required=1.0,
        fallback=("LayerNormalization", "Bidirectional"),
    ),
    "simple-rnn-float-Quartus-parallel": Case(
        simple_rnn,
        lambda: _sequence((6, 4)),
        {},
        {"backend": "Quartus"},
        measured=0.01,
        tolerance=0.05,
        fallback=("SimpleRNN",),
    ),
    "qsimple-rnn-Quartus-parallel-w8": Case(
        qsimple_rnn,
        lambda: _sequence((6, 4)),
        {"bits": 8},
        {"backend": "Quartus"},
        measured=0.05,
        required=1.0,
        fallback=("SimpleRNN",),
    ),
}


@pytest.fixture(scope="session", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[Case, Any, np.ndarray, VerificationReport]:
    spec = CASES[request.param]
    model = spec.build(**spec.kwargs)
    x = spec.events()
    options = FirmwareOptions(**spec.options)
    return spec, model, x, verify_model(model, x, options, tolerance=spec.tolerance)


@pytest.mark.slow
def test_verify_states_the_measured_exactness(
    case: tuple[Case, Any, np.ndarray, VerificationReport],
) -> None:
    spec, _, _, report = case
    outputs = report.outputs
    assert report.passed, report.summary()
    assert report.bound == spec.required
    if spec.measured is None:
        assert report.requirement.split("; ")[0] == "bit-exact logits"
        assert outputs.logits_bit_exact and outputs.logits_max_abs_diff == 0.0
        for layer in report.layers:
            if layer.exact_expected:
                assert layer.fraction_bit_exact == 1.0, report.summary()
        assert report.diagnosis is None, report.summary()
    else:
        assert not outputs.logits_bit_exact
        assert 0 < outputs.logits_max_abs_diff <= spec.measured, report.summary()
    if spec.required is not None:
        assert report.requirement.startswith(f"logits within {spec.required:g} (max |diff|)")
        assert "not bit-exact by design" in report.requirement


@pytest.mark.slow
def test_the_wrapped_layers_are_compared_as_keras_sees_them(
    case: tuple[Case, Any, np.ndarray, VerificationReport],
) -> None:
    """TimeDistributed is compared at hls4ml's end marker (the whole sequence, in the wrapped
    layer's type), the others under their own name; every new layer has a row."""
    spec, _, _, report = case
    rows = {layer.name: layer for layer in report.layers}
    for kind in spec.fallback:
        names = [layer.name for layer in report.layers if layer.class_name == kind]
        assert names, (kind, sorted(rows))
    if "td" in rows:
        td = rows["td"]
        assert td.hls_type == report.precision["td"]["result"]
        assert td.exact_expected == (spec.measured is None)
        if spec.measured is None:
            assert td.fraction_bit_exact == 1.0
    if "embedding" in rows and spec.measured is None:
        assert rows["embedding"].fraction_bit_exact == 1.0


@pytest.mark.slow
def test_emulator_falls_back_naming_the_layer(
    case: tuple[Case, Any, np.ndarray, VerificationReport],
) -> None:
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.csim import predict
    from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
    from hepfpga.firmware.verify import plan_for_events

    spec, model, x, _ = case
    options = FirmwareOptions(**spec.options)
    plan, events = plan_for_events(model, x, options)
    project = cached_project(plan, options)
    assert project.from_cache  # verify compiled it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events[:50], check_events=50, stress_events=0)
    assert emulator.engine == "csim"
    reason = emulator.fallback_reason or ""
    assert "not reproduced" in reason and any(kind in reason for kind in spec.fallback), reason
    assert np.array_equal(emulator.predict(events[:50]), predict(project, events[:50]))


# -- configuration written for hls4ml (no compiler) ---------------------------------------------
def test_time_distributed_entries_and_exact_types() -> None:
    from hepfpga.firmware.layers._base import sum_type
    from hepfpga.firmware.layers.dense import n_ops
    from hepfpga.firmware.layers.recurrent import grid_type

    plan = plan_conversion(qembedding_time_distributed(), ranges={"tokens": (0.0, 9.0)})
    layers = plan.hls_config["LayerName"]
    x = plan.precision["embedding_quant"].result
    # start marker: one time step of the input, untraced; the wrapped layer: the exact sum
    assert layers["td"]["Precision"] == {"result": x.to_hls()} and not layers["td"]["Trace"]
    inner = plan.model.get_layer("td").layer
    types = plan.precision["td"]
    assert types.weight is not None
    assert types.result == types.accum == sum_type(x, types.weight, types.bias, n_ops(inner))
    assert layers["per_step"]["Precision"]["weight"] == types.weight.to_hls()
    assert layers["per_step"]["Precision"]["result"] == types.result.to_hls()
    assert layers["td_end"] == {"Precision": {"result": types.result.to_hls()}, "Trace": True}
    # the wrapped layer's built-in activation is split off the wrapper (hls4ml drops it)
    assert inner.get_config()["activation"] == "linear"
    assert type(plan.model.get_layer("td_quantized_relu")).__name__ == "QActivation"
    # embeddings stored exactly
    values = plan.model.get_layer("embedding").get_weights()[0]
    assert np.array_equal(plan.precision["embedding"].result.quantize(values), values)
    assert grid_type(values) is None or plan.precision["embedding"].result == grid_type(values)
    # the indices: an exact unsigned integer (truncating like Keras's cast)
    assert plan.precision["tokens"].result.to_hls() == "ap_ufixed<4,4,AP_TRN,AP_SAT>"
    assert plan.multiplications >= 8 * 4 * 5


def test_ready_model_computes_the_same_function() -> None:
    from hepfpga.firmware.hls_config import hls4ml_ready_model

    for model, x in (
        (embedding_time_distributed(), _tokens(64)),
        (qbidirectional("QLSTM"), _sequence((6, 4), n=64)),
    ):
        ready = hls4ml_ready_model(model)
        np.testing.assert_allclose(
            ready.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-6
        )


@pytest.mark.parametrize("kind", ["QLSTM", "QGRU"])
def test_bidirectional_holds_the_quantized_weights(kind: str) -> None:
    model = qbidirectional(kind)
    plan = plan_conversion(model)
    twin = plan.model.get_layer("bi")
    assert type(twin.forward_layer).__name__ == kind[1:]
    original = model.get_layer("bi")
    for direction in ("forward", "backward"):
        layer = getattr(original, f"{direction}_layer")
        cell = layer.cell
        quantizers = (
            cell.kernel_quantizer_internal,
            cell.recurrent_quantizer_internal,
            cell.bias_quantizer_internal,
        )
        written = getattr(twin, f"{direction}_layer").get_weights()
        for quantizer, values, stored in zip(quantizers, layer.get_weights(), written, strict=True):
            assert np.array_equal(stored, np.asarray(quantizer(values)))
        types = dict(plan.precision["bi"].extra)
        for key, stored in zip(("weight", "recurrent_weight", "bias"), written, strict=True):
            fixed = types[f"{direction}_{key}"]
            assert fixed.fractional <= 7 and np.array_equal(fixed.quantize(stored), stored)
    entry = plan.hls_config["LayerName"]["bi"]
    assert (
        entry["TableSize"] == 4096 and entry["Precision"]["result"] == entry["Precision"]["accum"]
    )


def test_qsimple_rnn_holds_the_quantized_weights() -> None:
    model = qsimple_rnn()
    plan = plan_conversion(model, FirmwareOptions(backend="Quartus"))
    twin = plan.model.get_layer("rnn")
    assert type(twin).__name__ == "SimpleRNN"
    cell = model.get_layer("rnn").cell
    quantizers = (
        cell.kernel_quantizer_internal,
        cell.recurrent_quantizer_internal,
        cell.bias_quantizer_internal,
    )
    written = twin.get_weights()
    for quantizer, values, stored in zip(
        quantizers, model.get_layer("rnn").get_weights(), written, strict=True
    ):
        assert np.array_equal(stored, np.asarray(quantizer(values)))
        assert not np.array_equal(stored, values)
    types = plan.precision["rnn"]
    for key, stored in zip(("weight", "recurrent_weight", "bias"), written, strict=True):
        fixed = types.hls_types()[key]
        assert fixed.fractional <= 7 and np.array_equal(fixed.quantize(stored), stored)
    assert types.result == types.accum == plan.precision["input_quant"].result
    assert plan.hls_config["LayerName"]["rnn"]["TableSize"] == 4096


@pytest.mark.parametrize(("scale", "power"), [(0.02, 4), (0.05, 2), (1.0, 0)])
def test_layernorm_table_covers_the_input_range(scale: float, power: int) -> None:
    """TableRangePower2 from the profiled input type: the table reaches max|x|**2."""
    from hepfpga.firmware.layers.normalization import TABLE_SIZE, range_power
    from hepfpga.firmware.verify import plan_for_events

    plan, _ = plan_for_events(layernorm(), _sequence((6, 8), scale=scale, n=200))
    entry = plan.hls_config["LayerName"]["ln"]
    input_type = plan.precision["sequence"].result
    assert entry["TableRangePower2"] == range_power(input_type) == power
    assert entry["TableSize"] == TABLE_SIZE
    accum = plan.precision["ln"].accum
    assert accum is not None and accum.fractional >= 2 * (input_type.fractional + 3)
    if power > 0:  # the table reaches every variance the input type allows
        assert max(abs(input_type.min_value), input_type.max_value) ** 2 <= 2.0**-power


# -- refusals (exact messages) ------------------------------------------------------------------
def _functional(*layers: Any, shape: tuple[int, ...] = (6, 4)) -> Any:
    from tensorflow import keras

    x = keras.Input(shape, name="sequence")
    h = x
    for layer in layers:
        h = layer(h)
    return keras.Model(x, h)


def _refusal_models() -> dict[str, tuple[Callable[[], Any], dict[str, Any], str]]:
    from tensorflow import keras

    layers = keras.layers
    return {
        "td_padding": (
            lambda: _functional(
                layers.TimeDistributed(layers.ZeroPadding1D(1), name="td"), shape=(6, 4, 3)
            ),
            {},
            "layer 'td' (TimeDistributed) wraps ZeroPadding1D 'zero_padding1d",
        ),
        "td_conv1d": (
            lambda: _functional(
                layers.TimeDistributed(layers.Conv1D(2, 3), name="td"), shape=(6, 4, 3)
            ),
            {},
            "layer 'td' (TimeDistributed) wraps Conv1D 'conv1d",
        ),
        "td_quartus": (
            lambda: _functional(layers.TimeDistributed(layers.Dense(3), name="td")),
            {"backend": "Quartus"},
            "layer 'td' (TimeDistributed): hls4ml 1.3 implements TimeDistributed in the Vitis, "
            "Vivado backends only, not Quartus; use --backend Vitis",
        ),
        "td_stream": (
            lambda: _functional(layers.TimeDistributed(layers.Dense(3), name="td")),
            {"io_type": "io_stream"},
            "layer 'td' (TimeDistributed): hls4ml 1.3's time-step loop reads and writes arrays "
            "(nnet_time_distributed.h), so hepfpga converts TimeDistributed in io_parallel "
            "only; use --io-type io_parallel",
        ),
        "bi_merge_sum": (
            lambda: _functional(layers.Bidirectional(layers.LSTM(3), merge_mode="sum", name="bi")),
            {},
            "layer 'bi' (Bidirectional) has merge_mode='sum'; hls4ml 1.3 implements "
            "merge_mode='concat' only (its Vitis backend switches other modes to 'concat' "
            "without changing the layers after it)",
        ),
        "bi_stream": (
            lambda: _functional(layers.Bidirectional(layers.GRU(3), name="bi")),
            {"io_type": "io_stream"},
            "layer 'bi' (Bidirectional): hls4ml 1.3 converts Bidirectional in io_parallel only "
            "(its Vitis backend refuses io_stream); use --io-type io_parallel",
        ),
        "bi_simple_rnn": (
            lambda: _functional(layers.Bidirectional(layers.SimpleRNN(3), name="bi")),
            {},
            "layer 'bi' (Bidirectional) wraps SimpleRNN 'forward_simple_rnn",
        ),
        "bi_state_quantizer": (
            lambda: qbidirectional("QLSTM", state_quantizer=_q(16, 4)),
            {},
            "(QLSTM) has state_quantizer quantized_bits; hepfpga converts QLSTM/QGRU with "
            "state_quantizer=None only",
        ),
        "bi_reset_before": (
            lambda: qbidirectional("QGRU", reset_after=False),
            {},
            "(QGRU) has reset_after=False; hls4ml 1.3's Vitis/Vivado GRU implements "
            "reset_after=True (the Keras default) only",
        ),
        "bi_backward_layer": (
            lambda: qbidirectional_backward_layer(),
            {},
            "layer 'bi' (Bidirectional) has its own backward_layer; hepfpga converts "
            "Bidirectional(QLSTM) with the backward copy Keras makes of the forward layer: drop "
            "backward_layer",
        ),
        "simple_rnn_vitis": (
            lambda: _functional(layers.SimpleRNN(3, name="rnn")),
            {},
            "layer 'rnn' (SimpleRNN): hls4ml 1.3 implements SimpleRNN in the Quartus backend "
            "only, not Vitis; use --backend Quartus, or LSTM/GRU or QLSTM/QGRU (Vitis, Vivado)",
        ),
        "qsimple_rnn_vivado": (
            lambda: qsimple_rnn(),
            {"backend": "Vivado"},
            "layer 'rnn' (SimpleRNN): hls4ml 1.3 implements SimpleRNN in the Quartus backend "
            "only, not Vivado; use --backend Quartus",
        ),
        "qsimple_rnn_quantized_tanh": (
            lambda: qsimple_rnn(activation="quantized_tanh(8)"),
            {"backend": "Quartus"},
            "layer 'rnn' (QSimpleRNN) has activation='quantized_tanh'; hls4ml 1.3's Quartus "
            "SimpleRNN computes activation='tanh' (a lookup table) for a quantized layer",
        ),
        "qsimple_rnn_state_quantizer": (
            lambda: qsimple_rnn(state_quantizer=_q(16, 4)),
            {"backend": "Quartus"},
            "layer 'rnn' (QSimpleRNN) has a state_quantizer; hls4ml 1.3's Quartus SimpleRNN "
            "keeps the state in the layer's input type: remove it",
        ),
        "layernorm_2d": (
            lambda: _functional(layers.LayerNormalization(name="ln"), shape=(8,)),
            {},
            "layer 'ln' (LayerNormalization): input of shape (None, 8); hls4ml 1.3 normalises "
            "sequences (steps, features) only: Reshape a feature vector to (1, features) first",
        ),
        "layernorm_axis": (
            lambda: _functional(layers.LayerNormalization(axis=1, name="ln")),
            {},
            "layer 'ln' (LayerNormalization) normalises over axis [1]; hls4ml 1.3 normalises "
            "over the last axis (the features) only",
        ),
        "layernorm_epsilon": (
            lambda: _functional(layers.LayerNormalization(epsilon=2e-3, name="ln")),
            {},
            "layer 'ln' (LayerNormalization) has epsilon=0.002; hls4ml 1.3 stores epsilon as a "
            "power of ten below 1 (it rounds the exponent)",
        ),
        "layernorm_center": (
            lambda: _functional(layers.LayerNormalization(center=False, name="ln")),
            {},
            "layer 'ln' (LayerNormalization) has center=False or scale=False",
        ),
        "layernorm_catapult": (
            lambda: _functional(layers.LayerNormalization(name="ln")),
            {"backend": "Catapult"},
            "layer 'ln' (LayerNormalization): hls4ml 1.3 implements LayerNormalization in the "
            "Vitis, Vivado backends only, not Catapult",
        ),
        # an Embedding fed by a layer (not the model input, which gets an exact index type)
        "embedding_input_type": (
            lambda: _functional(
                layers.Reshape((4,), name="reshape"),
                layers.Embedding(300, 2, name="embedding"),
                shape=(4,),
            ),
            {},
            "layer 'embedding' (Embedding) looks up indices 0..299, which its input type "
            "ap_fixed<18,3,AP_RND,AP_SAT> cannot hold; give the input an integer range of at "
            "least 9 bits (feed the Embedding from a model input, which then gets an exact "
            "index type",
        ),
    }


REFUSALS = [
    "td_padding",
    "td_conv1d",
    "td_quartus",
    "td_stream",
    "bi_merge_sum",
    "bi_stream",
    "bi_simple_rnn",
    "bi_state_quantizer",
    "bi_reset_before",
    "bi_backward_layer",
    "simple_rnn_vitis",
    "qsimple_rnn_vivado",
    "qsimple_rnn_quantized_tanh",
    "qsimple_rnn_state_quantizer",
    "layernorm_2d",
    "layernorm_axis",
    "layernorm_epsilon",
    "layernorm_center",
    "layernorm_catapult",
    "embedding_input_type",
]


@pytest.mark.parametrize("name", REFUSALS)
def test_refusals_name_the_layer_and_what_to_use(name: str) -> None:
    build, options, message = _refusal_models()[name]
    model = build()
    # float models need profiled ranges; any will do for a refusal
    ranges = {layer.name: (0.0, 1.0) for layer in model.layers}
    with pytest.raises(ConversionError) as info:
        plan_conversion(model, FirmwareOptions(**options), ranges=ranges)
    assert message in str(info.value)


def test_embedding_refuses_events_that_are_no_indices() -> None:
    from hepfpga.firmware.verify import plan_for_events

    with pytest.raises(ConversionError) as info:
        plan_for_events(embedding_time_distributed(), _sequence((8,), n=20))
    assert (
        "layer 'embedding' (Embedding) looks up indices 0..9, but its input 'tokens' holds "
        "values in [" in str(info.value)
    )
    assert "the events must be integer indices in that range" in str(info.value)


def test_random_events_of_an_embedding_model_are_indices() -> None:
    from hepfpga.firmware.data import random_events

    x = random_events(embedding_time_distributed(), 500)
    assert x.shape == (500, 8) and np.array_equal(x, np.round(x))
    assert x.min() == 0 and x.max() == VOCABULARY - 1


@pytest.mark.parametrize(
    ("build", "args", "message"),
    [
        (
            embedding_time_distributed,
            ["--data", "events.npz"],
            "error: layer 'embedding' (Embedding) looks up indices 0..9, but its input 'tokens' "
            "holds values in [",
        ),
        (
            simple_rnn,
            ["--random", "20", "--backend", "vivado"],
            "error: layer 'rnn' (SimpleRNN): hls4ml 1.3 implements SimpleRNN in the Quartus "
            "backend only, not Vivado; use --backend Quartus, or LSTM/GRU or QLSTM/QGRU",
        ),
    ],
)
def test_cli_refuses_with_one_line_and_exit_2(
    build: Callable[[], Any],
    args: list[str],
    message: str,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hepfpga.cli import main
    from hepfpga.quantize.model_io import save_keras_model

    path = tmp_path / "model.h5"
    model = build()
    save_keras_model(model, path)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    np.savez(tmp_path / "events.npz", x=np.random.default_rng(0).normal(size=(20, *shape)))
    args = [str(tmp_path / a) if a.endswith(".npz") else a for a in args]
    code = main(["verify", str(path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
