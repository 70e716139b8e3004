"""The bound a table-based activation can meet, derived from its table and types.

hls4ml 1.3 computes ``sigmoid``, ``tanh``, ``softsign``, ``softplus``, ``elu`` and ``selu``
from a table of ``N`` entries (``TableSize``, 1024 unless set) of ``table_t``
(:mod:`hepfpga.firmware.emulate_tables` reproduces them): entry ``k`` holds ``f`` at one point
of a grid of step ``s`` (``16 / N`` for sigmoid, softsign and softplus over ``[-8, 8)``,
``8 / N`` for tanh over ``[-4, 4)`` and for the negative half of elu/selu over ``[-8, 0)``),
and an input ``x`` reads the entry its address ``trunc(x / s)`` (toward zero, clipped to the
table) selects; the entry is then converted to the result type ``res_t``. elu multiplies the
entry by ``alpha`` in ``param_t`` first; for ``x >= 0`` elu returns ``(res_t) x`` and selu
``(res_t)(x * (ap_ufixed<16,1>) lambda)``.

Every one of these functions is monotone, so over the inputs that read entry ``k`` (an
interval: the entry's bin, the first and last bins reaching down/up to the input type's
range) the largest ``|firmware - f(x)|`` is at one of the interval's two ends.
:func:`table_bound` takes that maximum over every bin the input type can reach, with the
entries as the firmware holds them (``table_t``, then ``param_t`` and ``res_t``), plus the
float32 rounding of Keras's own ``f`` (``2**-23`` relative). The bound therefore holds for
every input the input type holds, and grows when the table is too coarse (``f'`` times the
step), its type too narrow (entries saturated) or the result type too coarse.

When the activation's input is a model input that Keras reads unrounded (a float model's
profiled input type), the firmware rounds it first: ``L * lsb`` (``lsb / 2`` when the input
type rounds to nearest) is added, ``L`` the function's largest slope. Inputs outside the
input type's range saturate there and are not covered (the type covers the profiled range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepfpga.firmware.emulate_tables import TABLE_KINDS, lookup_table
from hepfpga.fixed_point import FixedType, Rounding

__all__ = ["DEFAULT_TABLE_SIZE", "TableBound", "table_bound"]

#: hls4ml 1.3's table size when the configuration sets none
DEFAULT_TABLE_SIZE = 1024
#: (ap_ufixed<16,1>) of selu's lambda, as hls4ml 1.3 writes it for x >= 0
_SELU_LAMBDA = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717
_KERAS_RELATIVE = 2.0**-23


@dataclass(frozen=True)
class TableBound:
    """The largest ``|firmware - f(x)|`` of one table activation, and how it was derived."""

    kind: str
    bound: float
    #: the derivation, in words (table, step, types, the slope term)
    how: str


def _function(kind: str, alpha: float) -> tuple[Any, float]:
    """``f`` in float64 and its largest slope."""
    if kind == "sigmoid":
        return (lambda x: 1.0 / (1.0 + np.exp(-x))), 0.25
    if kind == "tanh":
        return np.tanh, 1.0
    if kind == "softsign":
        return (lambda x: x / (1.0 + np.abs(x))), 1.0
    if kind == "softplus":
        return (lambda x: np.logaddexp(0.0, x)), 1.0
    if kind == "elu":
        return (lambda x: np.where(x < 0, alpha * np.expm1(np.minimum(x, 0)), x)), max(1.0, alpha)
    if kind == "selu":
        scale = _SELU_LAMBDA * _SELU_ALPHA
        return (
            lambda x: np.where(x < 0, scale * np.expm1(np.minimum(x, 0)), _SELU_LAMBDA * x)
        ), scale
    raise KeyError(kind)


def _rounding_error(t: FixedType) -> float:
    """The largest error of a conversion to ``t`` inside its range."""
    return t.lsb / 2 if t.rounding is not Rounding.TRN else t.lsb


def _bins(kind: str, size: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every entry an input of ``[lo, hi]`` can read: its index and the closed interval of
    inputs reading it (empty bins dropped)."""
    divisor = TABLE_KINDS[kind].divisor
    step = abs(divisor) / size
    k = np.arange(size)
    if divisor > 0:
        # index = clip(trunc(x / step) + N/2, 0, N-1): j = k - N/2 covers [j, j+1] steps for
        # j >= 1, [-1, 1] for j = 0, [j-1, j] for j <= -1
        j = (k - size // 2).astype(np.float64)
        start = np.where(j >= 1, j, np.where(j == 0, -1.0, j - 1.0)) * step
        end = np.where(j >= 1, j + 1.0, np.where(j == 0, 1.0, j)) * step
        start[0] = -math.inf
        end[-1] = math.inf
    else:
        # x < 0 only: index = min(trunc(-x / step), N-1): entry k covers [-(k+1), -k] steps
        start = -(k + 1.0) * step
        end = -k * step
        start[-1] = -math.inf
        hi = min(hi, 0.0)
    start, end = np.maximum(start, lo), np.minimum(end, hi)
    keep = start <= end
    return k[keep], start[keep], end[keep]


def table_bound(
    kind: str,
    size: int,
    table_t: FixedType,
    result_t: FixedType,
    input_t: FixedType,
    *,
    alpha: float = 1.0,
    param_t: FixedType | None = None,
    input_rounded: bool = False,
    input_range: tuple[float, float] | None = None,
) -> TableBound:
    """``max |firmware(x) - f(x)|`` over every ``x`` in ``input_t``'s range, or in
    ``input_range`` (the inputs checked) converted to ``input_t`` (see the module docstring);
    ``input_rounded``: the input reaches the firmware unrounded (a model input Keras reads as
    given), adding the slope times the input type's rounding error."""
    f, slope = _function(kind, alpha)
    lo, hi = input_t.min_value, input_t.max_value
    if input_range is not None:
        lo, hi = (float(v) for v in input_t.quantize(np.array(input_range, dtype=np.float64)))
    values = lookup_table(kind, size, table_t, f"the {kind} table").entries * table_t.lsb
    alpha_q = alpha
    if kind == "elu":
        alpha_q = float(param_t.quantize(np.array([alpha]))[0]) if param_t is not None else alpha
        values = values * alpha_q
    index, start, end = _bins(kind, size, lo, hi)
    held = result_t.quantize(values[index])
    errors = [np.abs(f(start) - held), np.abs(f(end) - held)]
    worst = float(np.max(np.maximum(*errors))) if len(index) else 0.0
    if kind in ("elu", "selu") and hi >= 0:
        # x >= 0: (res_t) x, or (res_t)(x * lambda_q): the factor's error grows with x
        factor = 1.0
        if kind == "selu":
            factor = math.floor(_SELU_LAMBDA * 2**15) / 2**15  # ap_ufixed<16,1>, truncated
        top = max(lo, 0.0), hi
        exact = [_SELU_LAMBDA * v if kind == "selu" else v for v in top]
        firm = result_t.quantize(np.array([v * factor for v in top]))
        positive = abs(_SELU_LAMBDA - factor) * hi if kind == "selu" else 0.0
        worst = max(
            worst,
            positive + _rounding_error(result_t),
            *(abs(e - float(h)) for e, h in zip(exact, firm, strict=True)),
        )
    largest = float(np.max(np.abs(f(np.array([lo, hi])))))
    keras = _KERAS_RELATIVE * max(1.0, largest)
    rounding = slope * _rounding_error(input_t) if input_rounded else 0.0
    bound = worst + keras + rounding
    step = abs(TABLE_KINDS[kind].divisor) / size
    span = (
        "[-8, 0)"
        if TABLE_KINDS[kind].divisor < 0
        else f"[-{step * size / 2:g}, {step * size / 2:g})"
    )
    how = (
        f"{kind}: {size}-entry table over {span} (step {step:g}, slope up to {slope:.4g}: "
        f"{slope * step:.3g}) in {table_t.to_hls()}, result {result_t.to_hls()}, input "
        f"{input_t.to_hls()}: |firmware - {kind}(x)| <= {worst:.3g} for x in [{lo:.4g}, {hi:.4g}]"
    )
    if rounding:
        how += f", + {rounding:.3g} for rounding the input"
    return TableBound(kind, bound, how + f" -> bound {bound:.3g}")
