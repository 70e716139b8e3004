"""Layer names hls4ml cannot use (issue 20): hepfpga renames them for hls4ml
(:func:`hepfpga.firmware.layers.graph.hls_name`) and reports them under the user's names.

With plain hls4ml 1.3 (``config_from_keras_model``, compile, predict) ``dense-1`` next to
``dense_1`` fails the g++ build (hls4ml names C++ types after layers; ``-`` is no identifier
character), and a layer named ``bias_layer`` reads its kernel as its bias (hls4ml finds a
layer's weights by the substring ``bias`` in the weights' names, ``bias_layer/kernel:0``
first). One QKeras model holds every such name (``byo_models.softmaxes_and_odd_names``; its g++
build is shared with test_softmax_bound.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware.layers.graph import hls_name

#: the user's layer names of the model below (the input is named 'class')
NAMES = ("class", "dense-1", "dense_1", "1st", "int", "bias_layer", "kernel_dense")


@pytest.mark.parametrize(
    "name, weights, expected",
    [
        ("dense_1", ("kernel", "bias"), "dense_1"),
        ("dense-1", ("kernel", "bias"), "dense_1"),
        ("my dense", ("kernel", "bias"), "my_dense"),
        ("1st", (), "layer_1st"),
        ("class", (), "class_layer"),
        ("int", (), "int_layer"),
        ("bias_layer", ("kernel", "bias"), "Bias_layer"),
        ("kernel_dense", ("kernel", "bias"), "Kernel_dense"),
        ("d_no_alpha", ("kernel", "bias"), "d_no_alpha"),  # a Dense looks up no 'alpha'
        ("prelu_alpha", ("alpha",), "prelu_Alpha"),
        ("beta.norm", ("gamma", "beta", "moving_mean", "moving_variance"), "Beta_norm"),
        ("lstm_recurrent_kernel", ("kernel", "recurrent_kernel", "bias"), "lstm_Recurrent_Kernel"),
    ],
)
def test_hls_name(name: str, weights: tuple[str, ...], expected: str) -> None:
    assert hls_name(name, weights) == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES[1:])
def test_renamed_layers_verify_under_their_own_names(softmax_names_case: Any, name: str) -> None:
    """Every layer is reported under the user's name (its row and its types), bit-exact up
    to the inner softmax (its table is judged by its bound, test_softmax_bound.py), and the
    names hls4ml was given appear nowhere (one g++ build, shared)."""
    _, _, report = softmax_names_case
    rows = {layer.name: layer for layer in report.layers}
    assert name in report.precision, sorted(report.precision)
    if name != "int":  # the input quantizer: the firmware's input type, no layer of its own
        assert name in rows, sorted(rows)
    if name not in ("int", "bias_layer"):
        assert rows[name].fraction_bit_exact == 1.0, report.summary()
    hls = hls_name(name, ("kernel", "bias"))
    if hls != name and hls not in NAMES:
        assert hls not in rows and hls not in report.precision
    assert report.model_outputs["out"].logits_bit_exact


def test_hls4ml_reads_each_renamed_layers_weights() -> None:
    """hls4ml's conversion of the ready model (no compiler): a Dense named 'bias_layer' and a
    BatchNormalization named 'beta.norm' get their own weights (as given, hls4ml read the
    kernel as the bias, and gamma as beta)."""
    import hls4ml
    from tensorflow import keras

    from hepfpga.firmware import plan_conversion
    from hepfpga.firmware.layers import ready_model
    from hepfpga.firmware.layers.graph import user_names
    from hepfpga.firmware.precision import profile_ranges

    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(3, name="bias_layer", bias_initializer="ones")(x)
    norm = keras.layers.BatchNormalization(name="beta.norm", gamma_initializer="zeros")
    model = keras.Model(x, norm(h))
    norm.set_weights([np.full(3, 0.5), np.full(3, -1.5), np.zeros(3), np.ones(3)])
    events = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    ready = ready_model(model)
    plan = plan_conversion(model, ranges=profile_ranges(ready, events))
    assert user_names(plan.model) == {"Bias_layer": "bias_layer", "Beta_norm": "beta.norm"}
    hls_model = hls4ml.converters.convert_from_keras_model(plan.model, hls_config=plan.hls_config)
    dense, norm_hls = hls_model.graph["Bias_layer"], hls_model.graph["Beta_norm"]
    kernel, bias = model.get_layer("bias_layer").get_weights()
    assert np.array_equal(dense.weights["weight"].data, kernel)
    assert np.array_equal(dense.weights["bias"].data, bias)
    # hls4ml folds batch normalization into scale = gamma / sqrt(var + eps) and bias
    gamma, beta, _, variance = model.get_layer("beta.norm").get_weights()
    scale = gamma / np.sqrt(variance + norm.epsilon)
    assert np.allclose(norm_hls.weights["scale"].data, scale)
    assert np.allclose(norm_hls.weights["bias"].data, beta)


def test_layers_inside_time_distributed_are_renamed(byo_models: Any) -> None:
    """A layer inside TimeDistributed is a layer of hls4ml's graph under its own name: it is
    renamed like any other ('dense-1' next to the wrapper 'dense_1' -> 'dense_1_2', 'bias_d'
    -> 'Bias_d'), mapped back (the wrapper's end marker too), the ready model computes the
    same function, and hls4ml reads each inner layer's own weights (no compiler)."""
    import hls4ml

    from hepfpga.firmware import plan_conversion
    from hepfpga.firmware.layers import ready_model
    from hepfpga.firmware.layers.graph import UserNames

    model = byo_models.renamed_time_distributed()
    ready = ready_model(model)
    names = UserNames.of(ready)
    assert names.renamed == {
        "dense_1_2": "dense-1",
        "Bias_d": "bias_d",
        "switch_layer": "switch",
        "switch_layer_end": "switch_end",
        "switch_layer_relu": "switch_relu",
    }
    x = np.random.default_rng(0).normal(size=(50, 3, 4)).astype(np.float32)
    assert np.array_equal(model.predict(x, verbose=0), ready.predict(x, verbose=0))
    plan = plan_conversion(model)
    hls_model = hls4ml.converters.convert_from_keras_model(plan.model, hls_config=plan.hls_config)
    for inner, wrapper in (("dense_1_2", "dense_1"), ("Bias_d", "switch")):
        layer = model.get_layer(wrapper).layer
        kernel, bias = layer.get_weights()
        node = hls_model.graph[inner]  # the QKeras-quantized weights
        assert np.array_equal(node.weights["weight"].data, layer.kernel_quantizer_internal(kernel))
        assert np.array_equal(node.weights["bias"].data, layer.bias_quantizer_internal(bias))
    assert names.text("layer 'Bias_d' and `switch_layer`") == "layer 'bias_d' and `switch`"


def test_project_files_and_firmware_cli_name_the_users_layers(
    byo_models: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hepfpga firmware`` (no build) prints the types under the user's names, and the
    project's README table and hepfpga_hls_config.json name them (the C++ name beside)."""
    from hepfpga.cli import main
    from hepfpga.quantize.model_io import save_keras_model

    save_keras_model(byo_models.renamed_chain(), tmp_path / "model.h5")
    assert main(["firmware", str(tmp_path / "model.h5"), "--out", str(tmp_path / "fw")]) == 0
    out = capsys.readouterr().out
    printed = [line.split()[0] for line in out.splitlines()[1:]]
    assert printed == ["jet-in", "int", "dense-1", "switch", "dense_1", "soft-max"], out
    readme = (tmp_path / "fw" / "README.md").read_text()
    rows = [line.split(" | ")[0][2:] for line in readme.splitlines() if line.startswith("| ")]
    assert "dense-1 (`dense_1_2` in the C++)" in rows and "dense_1" in rows, rows
    assert "switch (`switch_layer` in the C++)" in rows
    assert "soft-max (`soft_max` in the C++)" in rows
    config = json.loads((tmp_path / "fw" / "hepfpga_hls_config.json").read_text())
    assert config["user_names"] == {
        "dense_1_2": "dense-1",
        "int_layer": "int",
        "jet_in": "jet-in",
        "soft_max": "soft-max",
        "switch_layer": "switch",
    }


@pytest.mark.slow
def test_emulate_names_inputs_and_outputs_as_the_user(
    softmax_names_case: Any, tmp_path: Path
) -> None:
    """The emulator reads the input the user named ('class', 'class_layer' for hls4ml) and
    writes one array per output under the output layers' own names ('bias_layer', not
    hls4ml's 'Bias_layer'); the compiled project is the verify fixture's (cache hit)."""
    from hepfpga.firmware import FirmwareOptions
    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.csim import predict_outputs
    from hepfpga.firmware.emulate import emulate_file
    from hepfpga.firmware.verify import plan_for_events

    model, x, _ = softmax_names_case
    plan, _ = plan_for_events(model, x, FirmwareOptions())
    project = cached_project(plan, FirmwareOptions())
    np.savez(tmp_path / "events.npz", jets=x)
    result = emulate_file(
        project, tmp_path / "events.npz", tmp_path / "out.npz", key={"class": "jets"}, n_workers=1
    )
    assert result.arrays == ("outputs_out", "outputs_bias_layer")
    out, bias_layer = predict_outputs(project, x)  # the C simulation, output by output
    with np.load(tmp_path / "out.npz") as written:
        assert sorted(written.files) == ["outputs_bias_layer", "outputs_out"]
        assert np.array_equal(written["outputs_out"], out)
        assert np.array_equal(written["outputs_bias_layer"], bias_layer)
