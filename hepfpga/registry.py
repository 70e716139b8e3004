"""The one registry mechanism of hepfpga: every name table is a :class:`Registry`.

A registry maps the names a config or a command line may use to the objects that implement
them (optimizers, schedules, tasks, metrics, architectures, representations, HLS backends,
layer families, serving front ends, ...). It is owned by the stage that defines the objects;
each object is added once, by the module that defines it.

- :meth:`Registry.register` adds a name (a second registration of a name is a programming
  error: ``ValueError``);
- :meth:`Registry.lookup` resolves a name from a config: an unknown one is a
  :class:`~hepfpga.errors.ConfigError` at its config path, naming the closest registered name
  and listing them all in registration order;
- :meth:`Registry.names` is the tuple of choices, for a click ``Choice``, a docstring or a
  ``Literal`` check: a choice exists once, here, and everything else derives from it.

A :class:`Registry` is a ``dict``, so ``name in registry``, ``registry[name]`` and iteration
work as on the plain dicts it replaces. :func:`add` and :func:`lookup` are the same operations
for a plain mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import TypeVar

from hepfpga._schema import closest
from hepfpga.errors import ConfigError

__all__ = ["Registry", "add", "lookup"]

T = TypeVar("T")
V = TypeVar("V")


class Registry(dict[str, T]):
    """A name table of ``what`` (``"optimizer"``, ``"backend"``...) objects.

    >>> colours = Registry[int]("colour")
    >>> colours.register("red", 1)
    1
    >>> colours.lookup("rde", "style.colour")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hepfpga.errors.ConfigError: at 'style.colour': unknown colour 'rde' (did you mean 'red'?)...
    """

    def __init__(self, what: str, items: Mapping[str, T] | None = None) -> None:
        super().__init__()
        self.what = what
        for name, item in (items or {}).items():
            self.register(name, item)

    def register(self, name: str, item: T) -> T:
        """Add ``item`` as ``name`` and return it; ``ValueError`` if ``name`` is taken."""
        return add(self, name, item, self.what)

    def decorator(self, name: str) -> Callable[[V], V]:
        """``@REGISTRY.decorator("name")`` registers the decorated function or class."""

        def register(item: V) -> V:
            self.register(name, item)  # type: ignore[arg-type]
            return item

        return register

    def lookup(self, name: str, path: str) -> T:
        """``self[name]``; a :class:`ConfigError` at ``path`` naming the closest name and
        every accepted one otherwise."""
        return lookup(self, name, self.what, path)

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self)!r})"


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
