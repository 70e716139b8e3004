"""Lazy imports of optional, heavy dependencies with an exact install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from hepfpga.errors import MissingDependencyError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python module '{module}', which is not installed. "
            f"Install it with: pip install 'hepfpga[{extra}]'"
        ) from exc
