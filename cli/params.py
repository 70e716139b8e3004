"""Parameter types shared by the command-line modules."""

from __future__ import annotations

import math
from typing import Any

import click

__all__ = ["FiniteFloat"]


class FiniteFloat(click.FloatRange):
    """``click.FloatRange`` without ``nan`` and ``inf``: Python's ``float()`` reads both, and
    NaN passes every range check because it compares false with any bound."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number is not None and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
