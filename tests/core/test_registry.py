"""The shared registry operations, on the stages' real registries."""

from __future__ import annotations

import importlib

import pytest

from hepfpga import registry
from hepfpga.errors import ConfigError

#: every name table of hepfpga: (module, attribute); each is one Registry
REGISTRIES = [
    ("hepfpga.datafiles", "READ_FORMATS"),
    ("hepfpga.datafiles", "WRITE_FORMATS"),
    ("hepfpga.train.optim", "OPTIMIZERS"),
    ("hepfpga.train.optim", "SCHEDULES"),
    ("hepfpga.train.tasks", "TASKS"),
    ("hepfpga.train.tasks", "METRICS"),
    ("hepfpga.train.tasks.anomaly", "ANOMALY_MODELS"),
    ("hepfpga.train.config", "MODEL_SECTIONS"),
    ("hepfpga.train.architectures", "ARCHITECTURES"),
    ("hepfpga.train.representations", "REPRESENTATIONS"),
    ("hepfpga.quantize.qat", "LAYER_MAPPINGS"),
    ("hepfpga.deploy.model_spec", "DATATYPES"),
    ("hepfpga.deploy.frontends", "FRONT_ENDS"),
    ("hepfpga.firmware.backends", "BACKENDS"),
    ("hepfpga.firmware.rtl.parts", "PARTS"),
    ("hepfpga.firmware.rtl.codegen", "FLAVORS"),
    ("hepfpga.firmware.layers._base", "HANDLERS"),
    ("hepfpga.firmware.layers._base", "REFUSED"),
    ("hepfpga.firmware.emulate_engine.plan", "GRAPH_STEPS"),
    ("hepfpga.firmware.emulate_tables", "TABLE_KINDS"),
    ("hepfpga.firmware.emulate_tables", "TABLE_STEPS"),
    ("hepfpga.pipeline.tune", "STRATEGIES"),
    ("hepfpga.pipeline.tune", "PRUNERS"),
    ("hepfpga.pipeline.tune", "OBJECTIVES"),
    ("hepfpga.pipeline.task", "RUN_TASKS"),
]


#: the package whose import registers a registry's built-in entries, where it is not the
#: registry's own package
BUILT_INS = {"RUN_TASKS": "hepfpga.pipeline.tasks"}


def _registry(module: str, attribute: str) -> registry.Registry:
    # the packages register their built-in entries when imported
    importlib.import_module(BUILT_INS.get(attribute, module.rsplit(".", 1)[0]))
    table = getattr(importlib.import_module(module), attribute)
    assert isinstance(table, registry.Registry)
    assert table, f"{module}.{attribute} is empty"
    return table


@pytest.mark.parametrize(("module", "attribute"), REGISTRIES)
def test_lookup_finds_names_and_refuses_misspelt_ones(module: str, attribute: str) -> None:
    table = _registry(module, attribute)
    name = next(iter(table))
    assert table.lookup(name, "some.path") is table[name]
    wrong = name[:-1] + ("x" if name[-1] != "x" else "y")
    if wrong in table:
        pytest.skip(f"{wrong!r} is registered too")
    with pytest.raises(ConfigError) as info:
        table.lookup(wrong, "some.path")
    message = str(info.value)
    assert info.value.path == "some.path"
    assert f"unknown {table.what} {wrong!r}" in message
    assert message.endswith("; accepted: " + ", ".join(table))
    assert table.names() == tuple(table)


@pytest.mark.parametrize(("module", "attribute"), REGISTRIES)
def test_a_name_is_registered_once(module: str, attribute: str) -> None:
    table = _registry(module, attribute)
    name = next(iter(table))
    before = dict(table)
    with pytest.raises(ValueError, match=f"{table.what} '{name}' is already registered"):
        table.register(name, table[name])
    assert table == before


def test_a_misspelt_name_gets_the_closest_one() -> None:
    from hepfpga.train.optim import OPTIMIZERS

    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        OPTIMIZERS.lookup("adma", "training.optimizer")


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
