"""The model section is selected by model.architecture; each plugin validates its own keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import config_to_dict, load_config, parse_config
from hepfpga.train.architectures import ARCHITECTURES
from hepfpga.train.architectures.cnn import CNNConfig
from hepfpga.train.architectures.garnet import GarNetConfig
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.architectures.recurrent import GRUConfig, LSTMConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("mlp", MLPConfig),
        ("cnn", CNNConfig),
        ("lstm", LSTMConfig),
        ("gru", GRUConfig),
        ("garnet", GarNetConfig),
    ],
)
def test_architecture_selects_its_section(name: str, cls: type) -> None:
    config = parse_config({"model": {"architecture": name}})
    assert type(config.model) is cls
    assert config.model.architecture == name
    assert ARCHITECTURES[name].config_class is cls
    assert parse_config(config_to_dict(config)) == config


@pytest.mark.parametrize(
    "example",
    [EXAMPLES / f"jet_{name}.yaml" for name in ("tagging", "cnn", "lstm", "gru", "garnet")],
    ids=lambda p: p.stem,
)
def test_examples_load_and_round_trip(example: Path) -> None:
    config = load_config(example)
    assert config.model.architecture in ARCHITECTURES
    assert parse_config(config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("model", "path", "fragment"),
    [
        ({"architecture": "cn"}, "model.architecture", "did you mean 'cnn'"),
        ({"architecture": 3}, "model.architecture", "'mlp', "),
        ({"architecture": "cnn", "hidden_units": [8]}, "model.hidden_units", "'dense_units'"),
        ({"architecture": "mlp", "filters": [8]}, "model.filters", "Valid keys"),
        (
            {"architecture": "cnn", "representation": "features"},
            "model.representation",
            "jet_image",
        ),
        (
            {"architecture": "lstm", "representation": "jet_image"},
            "model.representation",
            "constituent_sequence",
        ),
        ({"architecture": "cnn", "image_pixels": 6}, "model.image_pixels", "too small"),
        ({"architecture": "cnn", "filters": []}, "model.filters", "at least one"),
        ({"architecture": "cnn", "filters": [4, 0]}, "model.filters[1]", "positive"),
        ({"architecture": "gru", "units": 0}, "model.units", "positive"),
        ({"architecture": "lstm", "units": 5000}, "model.units", "at most"),
        ({"architecture": "gru", "dropout": 1.0}, "model.dropout", "fraction"),
        ({"architecture": "garnet", "aggregators": 0}, "model.aggregators", "positive"),
        ({"architecture": "garnet", "collapse": "avg"}, "model.collapse", "'mean'"),
    ],
)
def test_bad_model_sections_name_their_path(model: dict, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"model": model}, source="cfg.yaml")
    message = str(info.value)
    assert f"at '{path}'" in message, message
    assert fragment in message, message


def test_quantization_overrides_are_validated() -> None:
    config = parse_config(
        {
            "quantization": {
                "kinds": {"conv": {"weight_bits": 8}},
                "layers": {"logits": {"weight_bits": 10}},
            }
        }
    )
    bits = config.quantization.bits_for("logits", "dense")
    assert (bits.weight_bits, bits.activation_bits) == (10, 6)
    assert config.quantization.bits_for("conv_1", "conv").weight_bits == 8
    with pytest.raises(ConfigError, match=r"quantization\.kinds\.cnv.*accepted: .*conv"):
        parse_config({"quantization": {"kinds": {"cnv": {"weight_bits": 8}}}})
    with pytest.raises(ConfigError, match=r"quantization\.layers\.logits\.weight_integer"):
        parse_config({"quantization": {"layers": {"logits": {"weight_integer": 6}}}})


def test_model_config_builds_the_section_of_its_architecture() -> None:
    from hepfpga.train.config import ModelConfig

    assert ModelConfig(hidden_units=(8,)) == MLPConfig(hidden_units=(8,))
    assert type(ModelConfig(architecture="cnn", filters=(2,))) is CNNConfig
    with pytest.raises(ConfigError, match="unknown architecture 'rnn'"):
        ModelConfig(architecture="rnn")
