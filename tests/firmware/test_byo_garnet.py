"""GarNet and GarNetStack (hls4ml.contrib) in ``hepfpga firmware / verify``: the accepted
'xn' form, the quantized twin hls4ml converts, the vertex-count input, reloading, the stated
bound and every refusal with its message.

The fast tests need no g++; the two compiled models (a quantized GarNet through the library,
a float GarNetStack saved as JSON through ``hepfpga verify``) are built once and marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.errors import ConversionError, ModelFileError
from hepfpga.firmware import FirmwareOptions, VerificationReport, plan_conversion, verify_model
from hepfpga.firmware.data import random_events
from hepfpga.firmware.hls_config import hls4ml_ready_model
from hepfpga.firmware.layers.garnet import ACCEPTED, QKERAS_BOUND, quantized_weights
from hepfpga.train.garnet_layers import garnet_classes

VERTICES, FEATURES = 16, 4
N_EVENTS = 300
#: what these small models must meet (measured 0.0017-0.006, see docs/firmware.md), tighter
#: than the general bound QKERAS_BOUND verification requires of every GarNet QKeras model
TEST_MODEL_BOUND = 0.05


def garnet_model(
    kind: str = "GarNet",
    *,
    quantized: bool = True,
    vertices: int = VERTICES,
    seed: int = 0,
    contrib: bool = False,
    **layer_options: Any,
) -> Any:
    """[features (V, 4), vertex count] -> (input quantizer) -> GarNet(Stack) -> logits ->
    softmax, with hepfpga's reloadable classes (or hls4ml.contrib's own with ``contrib``)."""
    from hls4ml.contrib import garnet as contrib_garnet
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    keras.utils.set_random_seed(seed)
    classes = vars(contrib_garnet) if contrib else garnet_classes()
    x = keras.Input((vertices, FEATURES), name="vertices")
    n = keras.Input((1,), dtype="uint16", name="n_vertices")
    h = QActivation(quantized_bits(12, 3, alpha=1), name="input_quant")(x) if quantized else x
    sizes = (4, 4, 8) if kind == "GarNet" else ([4, 4], [4, 8], [8, 8])
    options: dict[str, Any] = {
        "simplified": True,
        "collapse": "mean",
        "input_format": "xn",
        "output_activation": None,
        "quantize_transforms": quantized or None,
    }
    if quantized:
        options.update(total_bits=12, int_bits=3)
    options.update(layer_options)
    inputs = [h, n] if options["input_format"] == "xn" else h
    g = classes[kind](*sizes, name="garnet", **options)(inputs)
    if quantized:
        q = quantized_bits(8, 0, alpha=1)
        logits = QDense(5, kernel_quantizer=q, bias_quantizer=q, name="logits")(g)
    else:
        logits = keras.layers.Dense(5, name="logits")(g)
    outputs = keras.layers.Activation("softmax", name="softmax")(logits)
    model_inputs = [x, n] if options["input_format"] == "xn" else x
    return keras.Model(model_inputs, outputs, name=f"tiny_{kind.lower()}")


def garnet_events(n: int = N_EVENTS, seed: int = 1) -> list[np.ndarray]:
    """Vertices uniform in [-1, 1), the first ``count`` of each event present, the rest zero."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, VERTICES, FEATURES)).astype(np.float32)
    count = rng.integers(1, VERTICES + 1, size=(n, 1))
    x[np.arange(VERTICES)[np.newaxis, :] >= count] = 0.0
    return [x, count.astype(np.float32)]


@pytest.mark.parametrize("kind", ["GarNet", "GarNetStack"])
def test_the_firmware_model_holds_the_quantized_weights(kind: str) -> None:
    model = garnet_model(kind)
    ready = hls4ml_ready_model(model)
    twin, layer = ready.get_layer("garnet"), model.get_layer("garnet")
    # hls4ml would read quantize_transforms=True as its ternary GarNet: the twin says False
    assert type(twin).__name__ == kind
    assert twin.get_config()["quantize_transforms"] is False
    written = twin.get_weights()
    changed = 0
    for variable, value, stored, expected in zip(
        layer.weights, layer.get_weights(), written, quantized_weights(layer), strict=True
    ):
        assert np.array_equal(stored, expected), variable.name
        changed += not np.array_equal(stored, value)
    assert changed >= 2  # the transforms' kernels are not the float values
    events = garnet_events(64)
    assert np.array_equal(ready.predict(events, verbose=0), model.predict(events, verbose=0))
    # the ready model converts again to itself (the twin is not rewritten twice)
    again = hls4ml_ready_model(ready)
    assert type(again.get_layer("garnet")) is type(twin)


def test_types_of_the_plan() -> None:
    plan = plan_conversion(garnet_model())
    types = plan.precision["garnet"]
    hls = types.hls_types()
    # output quantizer quantized_bits(12, 3): 4 integer bits; log2(16) = 4 more fractional bits
    assert hls["result"].to_hls() == "ap_fixed<16,4,AP_RND,AP_SAT>"
    assert hls["edge_weight"].to_hls() == "ap_ufixed<12,0,AP_RND,AP_SAT>"
    assert not hls["edge_weight_aggr"].signed and hls["aggr"].signed
    # the vertex count: an exact unsigned integer type holding 0..16
    count = plan.precision["n_vertices"]
    assert count.result.to_hls() == "ap_ufixed<5,5,AP_TRN,AP_SAT>"
    assert count.source == "count 0..16 (exact unsigned integer)"
    entry = plan.hls_config["LayerName"]["garnet"]["Precision"]
    assert entry["edge_weight"] == "ap_ufixed<12,0,AP_RND,AP_SAT>"


def test_random_events_draw_vertex_counts() -> None:
    x, count = random_events(garnet_model(), 500)
    assert x.shape == (500, VERTICES, FEATURES)
    assert count.shape == (500, 1)
    assert np.array_equal(count, np.round(count)) and count.min() == 0 and count.max() == VERTICES


@pytest.mark.parametrize("kind", ["GarNet", "GarNetStack"])
def test_a_saved_quantized_garnet_reloads(kind: str, tmp_path: Path) -> None:
    from hepfpga.quantize.model_io import load_keras_model, save_keras_model

    model = garnet_model(kind)
    save_keras_model(model, tmp_path / "model.h5")
    loaded = load_keras_model(tmp_path / "model.h5")
    config = loaded.get_layer("garnet").get_config()
    assert (config["total_bits"], config["int_bits"]) == (12, 3)
    events = garnet_events(32)
    assert np.array_equal(loaded.predict(events, verbose=0), model.predict(events, verbose=0))


def test_hls4ml_saved_quantized_garnet_is_refused_with_what_to_add(tmp_path: Path) -> None:
    """hls4ml.contrib's own GarNet.get_config drops the bit widths: such a file cannot be
    loaded as it is, and the message says what to add."""
    from hepfpga.quantize.model_io import load_keras_model

    model = garnet_model(contrib=True)
    (tmp_path / "model.json").write_text(model.to_json())
    model.save_weights(tmp_path / "weights.h5")
    with pytest.raises(ModelFileError) as info:
        load_keras_model(tmp_path / "model.json", weights=tmp_path / "weights.h5")
    assert (
        "GarNet layer 'garnet' has quantize_transforms=True but no total_bits/int_bits in its "
        'config (hls4ml 1.3\'s GarNet.get_config drops them); add "total_bits": B, '
        '"int_bits": I' in str(info.value)
    )


REFUSALS = {
    "x_format": (
        {"input_format": "x"},
        "has input_format='x'; hls4ml 1.3 converts the two-input form 'xn' only",
    ),
    "tanh_output": ({"output_activation": "tanh"}, "has output_activation='tanh'"),
    "sum": ({"collapse": "sum"}, "has collapse='sum'; hls4ml 1.3's template collapses by 'mean'"),
    "no_collapse": ({"collapse": None}, "has collapse=None"),
    "mean_by_nvert": ({"mean_by_nvert": True}, "has mean_by_nvert=True"),
    "vertices": ({"vertices": 12}, "has 12 vertices; hls4ml's GarNet divides by 2**int(log2 V)"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_forms_name_the_layer_and_what_is_accepted(case: str) -> None:
    options, message = REFUSALS[case]
    with pytest.raises(ConversionError) as info:
        plan_conversion(garnet_model(**options))
    text = str(info.value)
    assert text.startswith("layer 'garnet' (GarNet) ")
    assert message in text and text.endswith(ACCEPTED)


def test_the_full_garnet_is_refused() -> None:
    """hls4ml.contrib's non-simplified GarNet does not even build in Keras (its output
    transform expects the wrong width); a layer of it is refused before anything else."""
    from hepfpga.firmware.layers.garnet import check_form

    layer = garnet_classes()["GarNet"](4, 4, 8, simplified=False, name="full")
    with pytest.raises(ConversionError) as info:
        check_form(layer)
    assert str(info.value).startswith(
        "layer 'full' (GarNet) has simplified=False; hls4ml's GarNet is the simplified one"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"io_type": "io_stream"},
            "hls4ml 1.3's GarNet exists in io_parallel only, not io_stream",
        ),
        (
            {"backend": "Quartus"},
            "hls4ml 1.3 implements GarNet for the Vivado and Vitis backends only, not Quartus",
        ),
        (
            {"reuse_factor": 3},
            "the reuse factor 3 must be a power of two dividing the 16 vertices",
        ),
    ],
)
def test_refused_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConversionError) as info:
        plan_conversion(garnet_model(), FirmwareOptions.from_dict(options))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "vertices=x",
            "--key 'vertices=x' names the inputs vertices; the model's inputs are vertices, "
            "n_vertices: give one INPUT=ARRAY pair for each",
        ),
        (
            "x,n",
            "--key 'x,n': the model has 2 inputs (vertices, n_vertices); expected INPUT=ARRAY "
            "pairs separated by commas, each input once (e.g. vertices=vertices,"
            "n_vertices=n_vertices); bad item 'x'",
        ),
        (None, "no array 'vertices'"),
    ],
)
def test_cli_reads_one_array_per_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str | None, message: str
) -> None:
    from hepfpga.quantize.model_io import save_keras_model

    save_keras_model(garnet_model(), tmp_path / "model.h5")
    x, count = garnet_events(20)
    np.savez(tmp_path / "events.npz", x=x, n=count)
    args = ["verify", str(tmp_path / "model.h5"), "--data", str(tmp_path / "events.npz")]
    code = main([*args, *(["--key", key] if key else [])])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert message in err


def test_cli_firmware_writes_a_two_input_test_bench(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hls4ml's test bench reads the inputs one after the other on each line."""
    from hepfpga.quantize.model_io import save_keras_model

    save_keras_model(garnet_model(), tmp_path / "model.h5")
    x, count = garnet_events(20)
    np.savez(tmp_path / "events.npz", vertices=x, n_vertices=count)
    out = tmp_path / "firmware"
    args = ["firmware", str(tmp_path / "model.h5"), "--out", str(out)]
    code = main([*args, "--data", str(tmp_path / "events.npz")])
    assert code == 0, capsys.readouterr().err
    bench = np.load(out / "tb_data" / "tb_input_features.npy")
    assert bench.shape == (20, VERTICES * FEATURES + 1)
    assert np.array_equal(bench[:, :-1], x.reshape(20, -1)) and np.array_equal(bench[:, -1:], count)
    assert np.load(out / "tb_data" / "tb_output_predictions.npy").shape == (20, 5)
    assert (
        "ap_fixed<12, 4, AP_RND, AP_SAT> distance_t;"
        in (out / "firmware" / "parameters.h").read_text()
    )


@pytest.fixture(scope="session")
def compiled_garnet() -> VerificationReport:
    return verify_model(garnet_model(), garnet_events(), FirmwareOptions(), cache=False)


@pytest.mark.slow
def test_verify_states_the_measured_bound(compiled_garnet: VerificationReport) -> None:
    report = compiled_garnet
    outputs = report.outputs
    assert report.quantized and report.bound == QKERAS_BOUND
    assert report.passed, report.summary()
    assert report.requirement.split("; softmax ")[0] == (
        f"logits within {QKERAS_BOUND:g} (max |diff|): 'garnet' (GarNet) not bit-exact by "
        "design (edge weights exp(-d^2) from a lookup table)"
    )
    assert not outputs.logits_bit_exact
    assert 0 < outputs.logits_max_abs_diff <= TEST_MODEL_BOUND, report.summary()
    # an untrained model has near-ties: any argmax flip is one (gap below twice the error)
    assert outputs.argmax_agreement >= 0.8, report.summary()
    assert outputs.argmax_flip_max_gap <= 2 * outputs.probs_max_abs_diff, report.summary()
    garnet = next(layer for layer in report.layers if layer.name == "garnet")
    assert not garnet.exact_expected and garnet.class_name == "GarNet"
    assert "count 0..16" in report.input_type_source


@pytest.mark.slow
def test_cli_verifies_a_float_garnet_stack_json_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a user types it: an hls4ml.contrib GarNetStack model saved as JSON + weights, the
    events in one file, one array per input (--key INPUT=ARRAY pairs)."""
    model = garnet_model("GarNetStack", quantized=False, contrib=True)
    (tmp_path / "model.json").write_text(model.to_json())
    model.save_weights(tmp_path / "weights.h5")
    x, count = garnet_events(200, seed=3)
    np.savez(tmp_path / "events.npz", x=x, n=count)
    report = tmp_path / "report.json"
    args = ["verify", str(tmp_path / "model.json"), "--weights", str(tmp_path / "weights.h5")]
    args += ["--data", str(tmp_path / "events.npz"), "--key", "vertices=x,n_vertices=n"]
    args += ["--tolerance", "0.05", "--no-cache", "--report", str(report)]
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err + out.out
    assert "PASSED: logits within 0.05 (max |diff|)" in out.out
    data = json.loads(report.read_text())
    assert data["n_events"] == 200 and not data["quantized"]
    assert 0 < data["outputs"]["logits_max_abs_diff"] <= 0.05
