"""``hepfpga config``: check run configurations."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from hepfpga.pipeline.config import config_to_dict, load_config

__all__ = ["COMMANDS", "config_group"]


@click.group("config")
def config_group() -> None:
    """Check pipeline configurations."""


@config_group.command("check")
@click.argument("config_file", type=click.Path(path_type=Path))
def config_check(config_file: Path) -> None:
    """Validate CONFIG_FILE and print it with every default filled in."""
    config = load_config(config_file)
    click.echo(yaml.safe_dump(config_to_dict(config), sort_keys=False))


COMMANDS = (config_group,)
