"""CLI commands of bulk emulation, attached to the main group by :func:`register`."""

from __future__ import annotations

import click


def register(cli: click.Group, export: click.Group) -> None:
    """Attach this module's commands to the top-level group and the ``export`` group."""
