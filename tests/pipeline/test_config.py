from __future__ import annotations

from pathlib import Path

import pytest

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import PipelineConfig, config_to_dict, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jet_tagging.yaml"


def test_example_config_loads_and_round_trips() -> None:
    config = load_config(EXAMPLE)
    assert config.name == "jet_tagging"
    assert config.model.hidden_units == (64, 32, 32)
    assert parse_config(config_to_dict(config)) == config


def test_empty_config_gives_defaults() -> None:
    assert parse_config({}) == PipelineConfig()
    assert parse_config(None) == PipelineConfig()


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"trainig": {}}, "trainig", "did you mean 'training'"),
        ({"training": {"optimzer": "adam"}}, "training.optimzer", "did you mean 'optimizer'"),
        (
            {"training": {"early_stopping": {"patince": 3}}},
            "training.early_stopping.patince",
            "did you mean 'patience'",
        ),
        (
            {"training": {"optimizer": "adamw"}},
            "training.optimizer",
            "did you mean 'adam'?); accepted: sgd, adagrad",
        ),
        ({"training": {"epochs": "ten"}}, "training.epochs", "expected an integer"),
        ({"training": {"epochs": 0}}, "training.epochs", "expected a positive integer"),
        ({"model": {"hidden_units": [64, -1]}}, "model.hidden_units[1]", "positive integer"),
        ({"model": {"dropout": 1.5}}, "model.dropout", "fraction"),
        (
            {"quantization": {"weight_bits": 6, "weight_integer": 6}},
            "quantization.weight_integer",
            "integer < weight_bits",
        ),
        (
            {"data": {"split": {"train": 0.5, "validation": 0.2, "test": 0.2}}},
            "data.split",
            "must be 1",
        ),
        ({"data": {"scaling": "zscore"}}, "data.scaling", "accepted"),
        ({"name": "a b"}, "name", "invalid run name"),
        (
            {"verification": {"require_bit_exact": "yes"}},
            "verification.require_bit_exact",
            "true or false",
        ),
        ({"training": []}, "training", "expected a mapping"),
    ],
)
def test_invalid_values_name_their_path(data: dict, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="cfg.yaml")
    message = str(info.value)
    assert f"at '{path}'" in message
    assert fragment in message
    assert message.startswith("cfg.yaml: ")


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: 1e-3\n")
    assert load_config(path).training.learning_rate == pytest.approx(1e-3)


def test_relative_data_path_resolves_against_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  path: jets.npz\n")
    assert load_config(path).data.path == tmp_path / "jets.npz"


@pytest.mark.parametrize("text", ["a: [unclosed", "\xff\xfe"])
def test_unreadable_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"c\.yaml"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
