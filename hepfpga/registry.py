"""The two operations every name registry of hepfpga shares.

A registry is a plain ``dict[str, T]`` owned by its stage (optimizers, schedules, tasks,
metrics, architectures, representations, HLS backends); :func:`add` registers a new name (a
second registration of a name is a programming error), :func:`lookup` resolves a name from a
config (an unknown one is a :class:`~hepfpga.errors.ConfigError` at its config path, naming the
closest registered name and listing them all in registration order).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TypeVar

from hepfpga._schema import closest
from hepfpga.errors import ConfigError

__all__ = ["add", "lookup"]

T = TypeVar("T")


def add(registry: MutableMapping[str, T], name: str, item: T, what: str) -> T:
    """Register ``item`` as ``name`` in ``registry`` and return it; a ``ValueError`` naming the
    ``what`` (``"optimizer"``, ...) if ``name`` is already registered."""
    if name in registry:
        raise ValueError(f"{what} {name!r} is already registered")
    registry[name] = item
    return item


def lookup(registry: Mapping[str, T], name: str, what: str, path: str) -> T:
    """``registry[name]``; a :class:`ConfigError` at ``path`` otherwise: ``unknown <what>
    'name' (did you mean '...'?); accepted: <every name>``."""
    if name in registry:
        return registry[name]
    hint = closest(name, registry)
    suggestion = f" (did you mean '{hint}'?)" if hint else ""
    raise ConfigError(
        f"unknown {what} {name!r}{suggestion}; accepted: {', '.join(registry)}", path=path
    )
