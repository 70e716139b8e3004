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
