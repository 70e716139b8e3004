"""The ``deepsets`` plugin: its config section and refusals, the float model (the same
function of the constituents in any order, Dense and Conv1D-k1 alike) and its QKeras
counterpart (pooling kept, exact on the ReLU grid)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import config_to_dict, load_config, parse_config
from hepfpga.train.architectures import ARCHITECTURES, build_model
from hepfpga.train.architectures.deepsets import DeepSetsConfig
from hepfpga.train.representations import ConstituentSequence

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jet_deepsets.yaml"


def _constituents(n_jets: int, n: int, seed: int = 0) -> np.ndarray:
    """Jets like the sample's: pT fractions in [0, 1), angles within +-0.8, the tail padded."""
    rng = np.random.default_rng(seed)
    x = np.stack(
        [
            rng.uniform(0, 1, (n_jets, n)),
            rng.uniform(-0.8, 0.8, (n_jets, n)),
            rng.uniform(-0.8, 0.8, (n_jets, n)),
        ],
        axis=-1,
    ).astype(np.float32)
    x[::2, n // 2 :] = 0.0
    return x


def test_the_section_is_selected_and_round_trips() -> None:
    config = parse_config({"model": {"architecture": "deepsets", "pooling": "max"}})
    assert type(config.model) is DeepSetsConfig
    assert ARCHITECTURES["deepsets"].bit_exact
    assert parse_config(config_to_dict(config)) == config
    assert config.model.input_representation(config.data) == ConstituentSequence(16)


def test_the_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.model.architecture == "deepsets"
    assert config.firmware.io_type.value == "io_parallel"
    assert parse_config(config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("model", "path", "fragment"),
    [
        ({"n_constituents": 20}, "model.n_constituents", "use 16 or 32, or pooling: max"),
        ({"n_constituents": 0}, "model.n_constituents", "positive"),
        ({"phi_units": []}, "model.phi_units", "at least one per-constituent layer"),
        ({"phi_units": [8, 0]}, "model.phi_units[1]", "positive"),
        ({"dense_units": [5000]}, "model.dense_units[0]", "at most"),
        ({"pooling": "sum"}, "model.pooling", "'average'"),
        ({"particle_layer": "lstm"}, "model.particle_layer", "'conv1d'"),
        ({"representation": "jet_image"}, "model.representation", "constituent_sequence"),
        ({"dropout": 1.5}, "model.dropout", "fraction"),
        ({"hidden_units": [8]}, "model.hidden_units", "Valid keys"),
    ],
)
def test_bad_sections_name_their_path(model: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"model": {"architecture": "deepsets", **model}}, source="cfg.yaml")
    message = str(info.value)
    assert f"at '{path}'" in message, message
    assert fragment in message, message


def test_max_pooling_takes_any_number_of_constituents() -> None:
    config = parse_config(
        {"model": {"architecture": "deepsets", "n_constituents": 20, "pooling": "max"}}
    )
    assert config.model.n_constituents == 20


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    """Float models: Dense on the 3-d input and Conv1D-k1 with the same weights, average
    and max pooling."""
    out = {}
    for layer in ("dense", "conv1d"):
        for pooling in ("average", "max"):
            config = DeepSetsConfig(
                n_constituents=8,
                phi_units=(6, 5),
                particle_layer=layer,
                pooling=pooling,
                dense_units=(4,),
            )
            out[f"{layer}-{pooling}"] = build_model((8, 3), 5, config, seed=3)
    for pooling in ("average", "max"):  # the Conv1D twins take the Dense kernels
        dense, conv = out[f"dense-{pooling}"], out[f"conv1d-{pooling}"]
        for d, c in zip(dense.layers, conv.layers, strict=True):
            weights = d.get_weights()
            if d.name.startswith("phi_"):
                weights = [weights[0][None], weights[1]]
            c.set_weights(weights)
    return out


def test_float_model_layers_and_shapes(models: dict[str, Any]) -> None:
    model = models["dense-average"]
    names = [layer.name for layer in model.layers]
    assert names == [
        "input",
        "phi_1",
        "relu_phi_1",
        "phi_2",
        "relu_phi_2",
        "pool",
        "dense_1",
        "relu_1",
        "logits",
        "softmax",
    ]
    assert type(model.get_layer("pool")).__name__ == "GlobalAveragePooling1D"
    assert type(models["conv1d-max"].get_layer("phi_1")).__name__ == "Conv1D"
    assert type(models["conv1d-max"].get_layer("pool")).__name__ == "GlobalMaxPooling1D"
    assert model.output_shape == (None, 5)


@pytest.mark.parametrize("pooling", ["average", "max"])
def test_the_output_ignores_the_order_and_the_layer_kind(
    models: dict[str, Any], pooling: str
) -> None:
    x = _constituents(64, 8)
    permuted = x[:, np.random.default_rng(1).permutation(8), :]
    dense = models[f"dense-{pooling}"].predict(x, verbose=0)
    np.testing.assert_allclose(
        models[f"dense-{pooling}"].predict(permuted, verbose=0), dense, atol=1e-6
    )
    np.testing.assert_allclose(models[f"conv1d-{pooling}"].predict(x, verbose=0), dense, atol=1e-6)
    # and it is not a constant: different jets, different outputs
    assert np.ptp(dense, axis=0).max() > 1e-3


@pytest.mark.parametrize("layer", ["dense", "conv1d"])
def test_qkeras_counterpart_keeps_the_pooling_exact(models: dict[str, Any], layer: str) -> None:
    from tensorflow import keras

    from hepfpga.quantize.qat import QuantizationSpec, quantize_model

    qmodel = quantize_model(models[f"{layer}-average"], QuantizationSpec())
    kinds = {layer.name: type(layer).__name__ for layer in qmodel.layers}
    assert kinds["phi_1"] == ("QDense" if layer == "dense" else "QConv1D")
    assert kinds["relu_phi_2"] == "QActivation"
    assert kinds["pool"] == "GlobalAveragePooling1D"
    x = _constituents(64, 8, seed=2)
    probe = keras.Model(
        qmodel.inputs, [qmodel.get_layer("relu_phi_2").output, qmodel.get_layer("pool").output]
    )
    relu, pooled = probe.predict(x, verbose=0)
    # the ReLU outputs are on their grid and their average over 8 (a shift) is exact
    exact = relu.astype(np.float64).sum(axis=1) / 8
    assert np.array_equal(pooled.astype(np.float64), exact)
    permuted = x[:, ::-1, :]
    assert np.array_equal(qmodel.predict(permuted, verbose=0), qmodel.predict(x, verbose=0))
