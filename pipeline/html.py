"""The HTML pieces of ``report.html`` that a task's section renders with: escaped text,
numbers, tables, pass/fail marks, embedded PNG figures and notes. Every function returns HTML
already escaped (:class:`Raw` in a table cell is kept as it is)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["Raw", "escape", "figure", "mark", "note", "number", "table"]


class Raw(str):
    """Already-escaped HTML (a table cell keeps it as it is)."""


def escape(value: Any) -> Raw:
    return Raw(html.escape(str(value)))


def number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return escape(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not np.isfinite(value):
            return escape(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return escape(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1) -> str:
    head = "".join(
        f"<th{' class=l' if i < left else ''}>{escape(h)}</th>" for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=l' if i < left else ''}>{v if isinstance(v, Raw) else number(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def mark(passed: bool) -> Raw:
    return Raw('<span class="ok">ok</span>' if passed else '<span class="bad">FAILED</span>')


def figure(draw: Callable[[io.BytesIO], None], alt: str) -> str:
    buffer = io.BytesIO()
    draw(buffer)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'
