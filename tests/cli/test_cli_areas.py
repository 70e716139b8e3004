"""The command line is one module per command area, each holding its click commands at module
level (``COMMANDS``), attached once to the root group."""

from __future__ import annotations

import importlib
import pkgutil

import click

import hepfpga.cli
from hepfpga.cli.app import cli

# modules of hepfpga.cli that are not command areas
NOT_AREAS = {"app", "params"}


def _areas() -> list[str]:
    return sorted(
        info.name for info in pkgutil.iter_modules(hepfpga.cli.__path__)
        if info.name not in NOT_AREAS
    )  # fmt: skip


def test_every_area_module_declares_module_level_commands() -> None:
    areas = _areas()
    assert {"run", "data", "config", "export", "firmware", "deploy"} <= set(areas)
    for name in areas:
        module = importlib.import_module(f"hepfpga.cli.{name}")
        commands = module.COMMANDS
        assert commands, name
        assert all(isinstance(c, click.Command) for c in commands), name


def test_the_root_group_holds_exactly_the_areas_commands() -> None:
    declared = {
        command.name
        for name in _areas()
        for command in importlib.import_module(f"hepfpga.cli.{name}").COMMANDS
    }
    assert set(cli.commands) == declared
    export = cli.commands["export"]
    assert isinstance(export, click.Group)
    assert set(export.commands) == {"onnx", "triton"}
