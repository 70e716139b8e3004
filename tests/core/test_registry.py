"""The shared registry operations, on the stages' real registries."""

from __future__ import annotations

import pytest

from hepfpga import registry
from hepfpga.errors import ConfigError


def _registries() -> list[tuple[str, dict, str, str]]:
    from hepfpga.firmware.backends import BACKENDS
    from hepfpga.train.architectures import ARCHITECTURES
    from hepfpga.train.optim import OPTIMIZERS, SCHEDULES
    from hepfpga.train.representations import REPRESENTATIONS
    from hepfpga.train.tasks import METRICS, TASKS

    return [
        ("optimizer", OPTIMIZERS, "training.optimizer", "adam"),
        ("schedule", SCHEDULES, "training.schedule.name", "cosine"),
        ("task", TASKS, "task.name", "anomaly_detection"),
        ("metric", METRICS, "task.metrics", next(iter(METRICS))),
        ("architecture", ARCHITECTURES, "model.architecture", "cnn"),
        ("representation", REPRESENTATIONS, "representation", next(iter(REPRESENTATIONS))),
        ("backend", BACKENDS, "firmware.backend", "Vitis"),
    ]


@pytest.mark.parametrize("index", range(7))
def test_lookup_finds_names_and_refuses_misspelt_ones(index: int) -> None:
    what, table, path, name = _registries()[index]
    assert registry.lookup(table, name, what, path) is table[name]
    with pytest.raises(ConfigError) as info:
        registry.lookup(table, name[:-1] + "x", what, path)
    message = str(info.value)
    assert info.value.path == path
    assert f"unknown {what} '{name[:-1]}x'" in message
    assert f"did you mean '{name}'?" in message
    assert message.endswith("; accepted: " + ", ".join(table))


@pytest.mark.parametrize("index", range(7))
def test_a_name_is_registered_once(index: int) -> None:
    what, table, _, name = _registries()[index]
    before = dict(table)
    with pytest.raises(ValueError, match=f"{what} '{name}' is already registered"):
        registry.add(table, name, table[name], what)
    assert table == before


def test_add_returns_the_item_it_registers() -> None:
    table: dict[str, int] = {}
    assert registry.add(table, "one", 1, "number") == 1
    assert table == {"one": 1}


def test_a_registry_object_registers_looks_up_and_lists_its_names() -> None:
    colours = registry.Registry[int]("colour")
    assert colours.register("red", 1) == 1

    @colours.decorator("blue")
    def _blue() -> int:
        return 2

    assert colours.names() == ("red", "blue")
    assert colours.lookup("blue", "style.colour") is _blue
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        colours.register("red", 3)
    with pytest.raises(ConfigError, match="did you mean 'red'") as info:
        colours.lookup("rde", "style.colour")
    assert info.value.path == "style.colour"
    assert colours == {"red": 1, "blue": _blue}
