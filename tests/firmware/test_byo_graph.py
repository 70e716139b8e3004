"""Graph shapes from hls4ml's own test suite that hepfpga got wrong (issue 20): a softmax
applied directly to the input, an output that is the input through an identity quantizer
(hls4ml's ``test_quantizer``), ...

One compiled model covers the fixes that need g++ (session-scoped, shared by the tests);
the configuration tests need no compiler.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions, plan_conversion, verify_model
from hepfpga.firmware.options import IOType, SoftmaxMode


def _seed(seed: int) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


def softmax_of_input(shape: tuple[int, ...] = (8,)) -> Any:
    """hls4ml's test_softmax model: a softmax applied to the input itself (Sequential)."""
    from tensorflow import keras

    return keras.Sequential([keras.layers.Activation("softmax", input_shape=shape, name="softmax")])


def quantizer_only(bits: int = 4, integer: int = 0) -> Any:
    """hls4ml's test_quantizer model: one QActivation named 'quantizer' (so Keras names the
    input 'quantizer_input'), the model's output."""
    from qkeras import QActivation, quantized_bits
    from tensorflow import keras

    return keras.Sequential(
        [QActivation(quantized_bits(bits, integer), input_shape=(1,), name="quantizer")]
    )


def input_passthrough_outputs() -> Any:
    """Both shapes in one model (one g++ build): the input quantizer is an output of its own,
    and a softmax is applied to the quantized input."""
    from qkeras import QActivation, quantized_bits
    from tensorflow import keras

    x = keras.Input((6,), name="features")
    q = QActivation(quantized_bits(8, 2, alpha=1), name="quantizer")(x)
    return keras.Model(x, [keras.layers.Activation("softmax", name="softmax")(q), q])


@pytest.mark.parametrize("io_type", [IOType.PARALLEL, IOType.STREAM])
@pytest.mark.parametrize("softmax", [SoftmaxMode.STABLE, SoftmaxMode.ARGMAX])
def test_softmax_of_the_input_is_configured(io_type: IOType, softmax: SoftmaxMode) -> None:
    """The softmax's size is its own (the InputLayer feeding it has a list of shapes)."""
    options = FirmwareOptions(io_type=io_type, softmax=softmax)
    plan = plan_conversion(softmax_of_input(), options, ranges={"softmax_input": (-4.0, 4.0)})
    entry = plan.hls_config["LayerName"]["softmax"]
    assert entry["Trace"] is True
    if softmax is SoftmaxMode.ARGMAX:
        assert entry["Implementation"] == "argmax"
    else:
        assert entry["TableSize"] >= 8


def test_identity_output_stays_a_layer_of_its_own() -> None:
    """An output equal in type to the input it passes through is kept as an exact cast (other
    modes, same width), so hls4ml does not turn it into the input variable."""
    plan = plan_conversion(quantizer_only())
    precision = plan.hls_config["LayerName"]["quantizer"]["Precision"]["result"]
    assert precision == "ap_fixed<4,1>"
    assert plan.precision["quantizer"].result.to_hls() == "ap_fixed<4,1,AP_RND_CONV,AP_SAT>"
    assert plan.precision["quantizer_input"].result == plan.precision["quantizer"].result


@pytest.fixture(scope="session")
def passthrough_report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _seed(0)
    model = input_passthrough_outputs()
    x = np.random.default_rng(3).normal(0, 2, size=(300, 6)).astype(np.float32)
    return verify_model(
        model,
        x,
        FirmwareOptions(softmax=SoftmaxMode.STABLE),
        cache_directory=tmp_path_factory.mktemp("graph_cache"),
    )


@pytest.mark.slow
def test_input_passthrough_outputs_build_and_verify(passthrough_report: Any) -> None:
    report = passthrough_report
    assert report.passed, report.requirement
    softmax, quantizer = report.model_outputs["softmax"], report.model_outputs["quantizer"]
    # the softmax's logits are the quantized input, compared with what the firmware read
    assert softmax.logits_fraction_bit_exact == 1.0
    assert quantizer.logits_fraction_bit_exact == 1.0
    assert quantizer.probs_max_abs_diff == 0.0


# -- TimeDistributed (issue 20): around 2D layers and sub-models, as the output; nested --------
def time_distributed_frames(bits: int = 6) -> Any:
    """hls4ml's TimeDistributed tests in one build: 3 frames of 7x7x2 -> input quantizer ->
    TimeDistributed(QConv2D) -> TimeDistributed(MaxPooling2D) -> TimeDistributed(Sequential[
    QConv2D, quantized_relu, AveragePooling2D, Flatten]) -> a nested Sequential (QDense,
    relu, TimeDistributed(QDense)) as the model's only output: TimeDistributed around 2D
    layers and a whole sub-model, hls4ml's nested-model test and the shape of its LSTM ->
    TimeDistributed(Dense) test (the wrapper ends the model)."""
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    _seed(6)
    q = quantized_bits(bits, 0, alpha=1)
    layers = keras.layers
    x = keras.Input((3, 7, 7, 2), name="frames")
    h = QActivation(quantized_bits(8, 2, alpha=1), name="input_quant")(x)
    conv = QConv2D(3, 2, kernel_quantizer=q, bias_quantizer=q, name="conv")
    h = layers.TimeDistributed(conv, name="td_conv")(h)
    h = layers.TimeDistributed(layers.MaxPooling2D(2, name="pool"), name="td_pool")(h)
    frame = keras.Sequential(
        [
            QConv2D(4, 2, kernel_quantizer=q, bias_quantizer=q, input_shape=(3, 3, 3), name="c2"),
            QActivation(quantized_relu(bits, 2), name="relu"),
            layers.AveragePooling2D(2, name="avg"),
            layers.Flatten(name="frame_flat"),
        ],
        name="frame_model",
    )
    h = layers.TimeDistributed(frame, name="td_frame")(h)
    block = keras.Sequential(
        [
            QDense(5, kernel_quantizer=q, bias_quantizer=q, input_shape=(3, 4), name="dense"),
            QActivation(quantized_relu(bits, 2), name="relu_2"),
            layers.TimeDistributed(
                QDense(2, kernel_quantizer=q, bias_quantizer=q, name="per_step"), name="td"
            ),
        ],
        name="block",
    )
    return keras.Model(x, block(h))


def test_time_distributed_model_becomes_per_step_layers() -> None:
    """TimeDistributed(model) -> one layer per step: the wrapped layers, the quantizer on the
    sequence, Flatten as Reshape to (steps, features); the same function, and each wrapped
    layer typed by its own rule (the sub-model's QConv2D sum exact)."""
    from hepfpga.firmware.layers import ready_model
    from hepfpga.firmware.layers.graph import model_graph

    model = time_distributed_frames()
    ready = ready_model(model)
    kinds = {node.name: node.class_name for node in model_graph(ready)}
    assert kinds["td_frame_c2"] == "TimeDistributed"
    assert kinds["relu"] == "QActivation"
    assert kinds["td_frame_avg"] == "TimeDistributed"
    assert kinds["frame_flat"] == "Reshape"
    x = np.random.default_rng(7).normal(0, 1.5, size=(32, 3, 7, 7, 2)).astype(np.float32)
    assert np.array_equal(ready.predict(x, verbose=0), model.predict(x, verbose=0))
    plan = plan_conversion(model)
    assert {"td_conv", "conv", "td_conv_end", "c2", "td_frame_c2_end"} <= set(
        plan.hls_config["LayerName"]
    )


@pytest.fixture(scope="session")
def time_distributed_frames_report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    x = np.random.default_rng(8).normal(0, 1.5, size=(200, 3, 7, 7, 2)).astype(np.float32)
    return verify_model(
        time_distributed_frames(), x, cache_directory=tmp_path_factory.mktemp("td_frames")
    )


@pytest.mark.slow
def test_time_distributed_conv_pool_and_model_bit_exact(
    time_distributed_frames_report: Any,
) -> None:
    """TimeDistributed around QConv2D, MaxPooling2D and a whole QKeras sub-model: every
    layer's output bit-exact (hls4ml 1.3's default types were 0.018-0.031 off here). hls4ml
    names both the start marker's and the output's type result_t; the project gives the start
    marker its own name back, so g++ builds it; the nested block is flattened."""
    report = time_distributed_frames_report
    assert report.passed, report.requirement
    assert report.outputs.logits_fraction_bit_exact == 1.0
    assert all(layer.fraction_bit_exact == 1.0 for layer in report.layers), [
        (layer.name, layer.max_abs_diff) for layer in report.layers
    ]


def test_time_distributed_nested_wrapper_is_refused() -> None:
    from tensorflow import keras

    from hepfpga.errors import ConversionError

    inner = keras.Sequential(
        [keras.layers.TimeDistributed(keras.layers.Dense(2), input_shape=(3, 4), name="td_in")],
        name="steps",
    )
    x = keras.Input((5, 3, 4), name="x")
    model = keras.Model(x, keras.layers.TimeDistributed(inner, name="td_out")(x))
    from hepfpga.firmware.layers import ready_model

    with pytest.raises(ConversionError, match=r"inside TimeDistributed 'td_out'; hls4ml 1\.3 does"):
        ready_model(model)


def nested(case: str) -> Any:
    """Models used as layers: a Sequential inside a functional model whose layer names clash
    with the outer ones, a functional model inside a Sequential, two levels deep."""
    from tensorflow import keras

    _seed(2)
    layers = keras.layers

    def block(name: str) -> Any:
        return keras.Sequential(
            [
                layers.Dense(6, activation="relu", input_shape=(6,), name="dense"),
                layers.Dense(6, name="dense_1"),
            ],
            name=name,
        )

    if case == "sequential_in_functional":
        x = keras.Input((6,), name="x")
        h = block("inner")(layers.Dense(6, name="dense")(x))
        return keras.Model(x, layers.Activation("softmax", name="softmax")(h))
    if case == "functional_in_sequential":
        x = keras.Input((6,), name="features")
        inner = keras.Model(x, layers.Dense(4, name="hidden")(x), name="inner")
        return keras.Sequential([inner, layers.Dense(3, name="logits")])
    if case == "two_levels":
        x = keras.Input((6,), name="x")
        y = keras.Input((6,), name="y")
        middle_in = keras.Input((6,), name="middle_in")
        middle = keras.Model(middle_in, block("deep")(middle_in), name="middle")
        h = layers.Add(name="add")([middle(x), layers.Dense(6, name="side")(y)])
        return keras.Model([x, y], layers.Dense(2, name="logits")(h))
    raise KeyError(case)


FLAT_NAMES = {
    "sequential_in_functional": ["x", "dense", "inner_dense", "inner_dense_relu", "dense_1"],
    "functional_in_sequential": ["inner_input", "hidden", "logits"],
    "two_levels": ["x", "dense", "dense_relu", "dense_1", "y", "side", "add", "logits"],
}


@pytest.mark.parametrize("case", list(FLAT_NAMES))
def test_nested_models_are_flattened_as_hls4ml_does(case: str) -> None:
    """The inner layers join the graph under their own names (an outer name taken already:
    '<inner model>_<name>'), with the same weights: the same function."""
    from hepfpga.firmware.layers import ready_model
    from hepfpga.firmware.layers.graph import model_graph
    from hepfpga.firmware.precision import profile_ranges

    model = nested(case)
    ready = ready_model(model)
    names = [node.name for node in model_graph(ready)]
    assert all(name in names for name in FLAT_NAMES[case]), names
    assert not any(type(layer).__name__ in ("Sequential", "Functional") for layer in ready.layers)
    rng = np.random.default_rng(5)
    x = [rng.normal(size=(64, 6)).astype(np.float32) for _ in model.inputs]
    events = x if len(x) > 1 else x[0]
    assert np.array_equal(ready.predict(events, verbose=0), model.predict(events, verbose=0))
    plan = plan_conversion(model, ranges=profile_ranges(model, events))
    assert set(FLAT_NAMES[case]) - {"x", "y", "inner_input"} <= set(plan.hls_config["LayerName"])


def recurrent(kind: str, quantized: bool) -> Any:
    """A recurrent layer whose kernel and recurrent kernel need different types (the kernel
    scaled up 8x), then a Dense."""
    from tensorflow import keras

    _seed(1)
    x = keras.Input((5, 3), name="sequence")
    h = x
    if quantized:
        from qkeras import QActivation, quantized_bits

        h = QActivation(quantized_bits(10, 2, alpha=1), name="input_quant")(x)
    layer = getattr(keras.layers, kind)(4, name="rnn")
    h = layer(h)
    weights = layer.get_weights()
    layer.set_weights([weights[0] * 8, *weights[1:]])
    return keras.Model(x, keras.layers.Dense(2, name="logits")(h))


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU"])
def test_quartus_recurrent_kernels_share_one_weight_type(kind: str) -> None:
    """The Quartus GRU/SimpleRNN templates take one weight_t for both kernels: the derived
    type covers both (it does not on Vitis, where each kernel has its own)."""
    model = recurrent(kind, quantized=False)
    ranges = {"sequence": (-4.0, 4.0), "rnn": (-1.0, 1.0), "logits": (-4.0, 4.0)}
    plan = plan_conversion(model, FirmwareOptions(backend="Quartus"), ranges=ranges)
    types = plan.hls_config["LayerName"]["rnn"]["Precision"]
    assert types["weight"] == types["recurrent_weight"]
    kernel, recurrent_kernel = model.get_layer("rnn").get_weights()[:2]
    both = np.concatenate([kernel.ravel(), recurrent_kernel.ravel()])
    fixed = plan.precision["rnn"].weight
    assert fixed.min_value <= both.min() and both.max() <= fixed.max_value
    if kind == "GRU":  # Vitis keeps one type per kernel
        vitis = plan_conversion(model, FirmwareOptions(), ranges=ranges)
        vitis_types = vitis.hls_config["LayerName"]["rnn"]["Precision"]
        assert vitis_types["weight"] != vitis_types["recurrent_weight"]


def test_failed_build_names_a_folder_that_exists(tmp_path: Any) -> None:
    """A project g++ refuses keeps the compiler's output, and the cache keeps the project in
    csim/failed/<key>, the folder its error names."""
    from hepfpga.errors import ConversionError
    from hepfpga.firmware.cache import FAILED_DIR, _keep_failed
    from hepfpga.firmware.project import BUILD_LOG, _build_library, write_project

    entry = tmp_path / "csim" / "0123abcd"
    project = write_project(quantizer_only(), None, entry / "project")
    source = project.path / "firmware" / "myproject.cpp"
    source.write_text(source.read_text() + "\nthis_is_no_cpp;\n")
    with pytest.raises(ConversionError, match=BUILD_LOG) as failure:
        _build_library(project.path)
    assert "this_is_no_cpp" in (project.path / BUILD_LOG).read_text()
    assert str(project.path) in str(failure.value)
    kept = _keep_failed(entry)
    assert kept == tmp_path / "csim" / FAILED_DIR / "0123abcd"
    assert (kept / BUILD_LOG).is_file() and not (entry / "project").exists()


def test_build_script_compiles_at_hepfpgas_level(tmp_path: Any) -> None:
    """hls4ml's build_lib.sh as hepfpga runs it: -O3 replaced by BUILD_OPT_LEVEL (the same
    values, measured in benchmarks/build_time.py), weights found at run time, both units at
    once."""
    from pathlib import Path

    import hls4ml

    from hepfpga.firmware.project import BUILD_OPT_LEVEL, _relocatable_script

    # the script hls4ml 1.3 writes into every Vivado/Vitis project
    template = Path(hls4ml.__file__).parent / "templates" / "vivado" / "build_lib.sh"
    (tmp_path / "build_lib.sh").write_text(template.read_text())
    assert 'CFLAGS="-O3 -fPIC"' in template.read_text()
    script = _relocatable_script(tmp_path)
    assert script is not None
    assert f'CFLAGS="-{BUILD_OPT_LEVEL} -fPIC"' in script and "-O3" not in script
    assert "HEPFPGA_MODEL_UNIT=$!" in script and "hepfpga_weights_dir()" in script
    assert 'CFLAGS="-O3 -fPIC"' in (_relocatable_script(tmp_path, "O3") or "")


# -- random events on the input grid (issue 20) ----------------------------------------------
def _on_grid(values: np.ndarray, fixed: Any) -> bool:
    return bool(np.array_equal(fixed.quantize(values), values))


@pytest.mark.parametrize(
    ("case", "input_type", "expected"),
    [
        ("quantizer", None, "ap_fixed<4,1,AP_RND_CONV,AP_SAT>"),
        ("quantizer", "ap_fixed<12,3,AP_RND_CONV,AP_SAT>", "ap_fixed<12,3,AP_RND_CONV,AP_SAT>"),
        ("float", "ap_fixed<10,2,AP_RND,AP_SAT>", "ap_fixed<10,2,AP_RND,AP_SAT>"),
        ("float", None, None),
    ],
)
def test_random_events_lie_on_the_input_grid(
    case: str, input_type: str | None, expected: str | None
) -> None:
    """--random draws what the firmware reads unchanged when the input type is known before
    any event (input quantizer, declared type): on its grid, within its range, saturated
    values included; a float model without a declared type gets standard-normal events."""
    from tensorflow import keras

    from hepfpga.firmware.data import random_events
    from hepfpga.quantize.fixed import FixedType

    if case == "quantizer":
        model = quantizer_only()
    else:
        model = keras.Sequential([keras.layers.Dense(2, input_shape=(1,), name="dense")])
    options = FirmwareOptions(input_type=input_type)
    events = random_events(model, 2000, options=options)
    assert events.shape == (2000, 1) and events.dtype == np.float32
    if expected is None:
        assert not _on_grid(events, FixedType.parse("ap_fixed<16,6>"))
        return
    fixed = FixedType.parse(expected)
    assert _on_grid(events, fixed)
    assert events.min() >= fixed.min_value and events.max() <= fixed.max_value
    assert len(np.unique(events)) > 8  # spread over the grid, not a few values
    if expected.startswith("ap_fixed<4,1"):  # sigma 0.5 of a [-1, 0.875] type: some saturate
        assert np.any(events == fixed.max_value) and np.any(events == fixed.min_value)
