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
work as on the plain dicts it replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from hepfpga._schema import closest
from hepfpga.errors import ConfigError

__all__ = ["Registry"]

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
        if name in self:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self[name] = item
        return item

    def decorator(self, name: str) -> Callable[[V], V]:
        """``@REGISTRY.decorator("name")`` registers the decorated function or class."""

        def register(item: V) -> V:
            self.register(name, item)  # type: ignore[arg-type]
            return item

        return register

    def lookup(self, name: str, path: str) -> T:
        """``self[name]``; a :class:`ConfigError` at ``path`` naming the closest name and
        every accepted one otherwise."""
        if name in self:
            return self[name]
        hint = closest(name, self)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise ConfigError(
            f"unknown {self.what} {name!r}{suggestion}; accepted: {', '.join(self)}", path=path
        )

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self)!r})"
