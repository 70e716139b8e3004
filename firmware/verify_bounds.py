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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepfpga.firmware.emulate_engine.softmax import exp_table, inv_table
from hepfpga.firmware.emulate_tables import TABLE_KINDS, lookup_table
from hepfpga.fixed_point import FixedType, Rounding, Saturation

__all__ = [
    "DEFAULT_TABLE_SIZE",
    "QUARTUS_TABLE_T",
    "QuartusSoftmaxTables",
    "SoftmaxTables",
    "TableBound",
    "softmax_bound",
    "table_bound",
]

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


# -- softmax ----------------------------------------------------------------------------------
#: points per axis of the grid over which the softmax bound is maximised (see softmax_bound)
_SOFTMAX_GRID = 1025
#: Keras's float32 softmax: exp, sum and division, each within a few float32 ulps
_KERAS_SOFTMAX = 8 * 2.0**-24


class _NoBoundError(ValueError):
    """No bound can be derived; the message says why (never leaves this module: the public
    functions return the reason)."""


@dataclass(frozen=True)
class SoftmaxTables:
    """The types and table sizes of one of hls4ml 1.3's ``stable`` softmax layers
    (``nnet_activation.h``, ``softmax_stable``), as the configuration writes them."""

    #: classes (``n_slice``)
    n: int
    #: ``x_max - x_i`` is converted to it; the exp table is addressed by its top bits
    inp_norm_t: FixedType
    exp_size: int
    exp_table_t: FixedType
    #: each looked-up exp and the sum of them (``exp_res``, ``reduce<accum_t>``)
    accum_t: FixedType
    #: the sum is converted to it; the 1/x table is addressed by its top bits
    inv_inp_t: FixedType
    inv_size: int
    inv_table_t: FixedType
    result_t: FixedType
    exp_scale: float = 1.0


def _address_bins(t: FixedType, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """For each table index (the top ``n_bits`` of ``t``'s code, non-negative values only):
    the closed interval of real values whose conversion to ``t`` reads it (codes ``first..
    last``: from ``first`` (floor) or ``first - 1/2`` (to nearest) to ``last + 1`` or
    ``last + 1/2`` lsb; the type's largest code reaches up to infinity when ``t``
    saturates)."""
    per = 2 ** (t.width - n_bits)
    count = 2**n_bits if not t.signed else 2 ** (n_bits - 1)
    first = np.arange(count, dtype=np.float64) * per
    last = first + per - 1
    if t.rounding in (Rounding.TRN, Rounding.TRN_ZERO):  # non-negative inputs: floor
        lo, hi = first, last + 1
    else:  # to nearest, any tie rule
        lo, hi = first - 0.5, last + 0.5
    hi = np.where(last >= 2.0 ** (t.width - (1 if t.signed else 0)) - 1, math.inf, hi)
    return lo * t.lsb, hi * t.lsb


def _check_type(t: FixedType, largest: float, what: str) -> None:
    if t.saturation is not Saturation.SAT and largest > t.max_value:
        raise _NoBoundError(
            f"{what} {t.to_hls()} wraps and can be exceeded ({largest:.4g} > {t.max_value:g})"
        )


def _range_reduce(values: np.ndarray, first: np.ndarray, last: np.ndarray, op: Any) -> np.ndarray:
    """``op`` (np.minimum / np.maximum) of ``values[first:last + 1]`` for every pair of
    indices (a sparse table: ``log2(len)`` levels of power-of-two spans)."""
    levels = [values]
    while 2 ** len(levels) <= len(values):
        span = 2 ** (len(levels) - 1)
        prev = levels[-1]
        levels.append(op(prev[:-span], prev[span:]))
    length = last - first + 1
    level = np.floor(np.log2(length)).astype(np.intp)
    out = np.empty(first.shape)
    for k in np.unique(level):
        at = level == k
        table = levels[k]
        out[at] = op(table[first[at]], table[last[at] - 2**k + 1])
    return out


def _softmax_error(
    w: np.ndarray,
    rho: np.ndarray,
    n: int,
    boxes: tuple[float, float, float, float],
    exact_top: float | None,
    top: bool,
    sums: tuple[np.ndarray, np.ndarray],
    g_bins: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """``max(high - p, p - low)`` on the grid ``w x rho`` (see :func:`softmax_bound`); ``top``:
    ``w`` is the largest class (else one of the others, reading ``exact_top`` when given)."""
    delta_lo, delta_hi, eps_lo, eps_hi = boxes
    w, rho = w[:, None], rho[None, :]
    if top and exact_top is not None:
        e_lo = e_hi = np.full(w.shape, exact_top)
    else:
        e_lo = np.maximum(w * (1 + delta_lo) + eps_lo, 0.0)
        e_hi = w * (1 + delta_hi) + eps_hi
    if not top and exact_top is not None:
        rest, others = rho - 1.0, n - 2
        r_lo = exact_top + np.maximum(rest * (1 + delta_lo) + others * eps_lo, 0.0)
        r_hi = exact_top + rest * (1 + delta_hi) + others * eps_hi
    else:
        r_lo = np.maximum(rho * (1 + delta_lo) + (n - 1) * eps_lo, 0.0)
        r_hi = rho * (1 + delta_hi) + (n - 1) * eps_hi
    shape = (w.shape[0], rho.shape[1])
    e_lo, e_hi, r_lo, r_hi = (np.broadcast_to(v, shape) for v in (e_lo, e_hi, r_lo, r_hi))
    # the sums a point and its grid neighbours reach, and S * I over the entries they read
    s_min = _neighbour(e_lo + r_lo, np.minimum)
    s_max = _neighbour(e_hi + r_hi, np.maximum)
    bins_lo, bins_hi = sums
    first = np.clip(np.searchsorted(bins_hi, s_min, side="left"), 0, len(bins_lo) - 1)
    final = np.clip(np.searchsorted(bins_lo, s_max, side="right") - 1, 0, len(bins_lo) - 1)
    first = np.minimum(first, final)
    g_lo = _range_reduce(g_bins[0], first.ravel(), final.ravel(), np.minimum).reshape(s_min.shape)
    g_hi = _range_reduce(g_bins[1], first.ravel(), final.ravel(), np.maximum).reshape(s_min.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(w + rho > 0, w / (w + rho), 0.0)
        high = np.where(e_hi + r_lo > 0, e_hi / (e_hi + r_lo), 0.0) * g_hi
        low = np.where(e_lo + r_hi > 0, e_lo / (e_lo + r_hi), 0.0) * g_lo
    return np.maximum(high - p, p - low)


def _neighbour(values: np.ndarray, op: Any) -> np.ndarray:
    """``op`` of each grid point's value and its (up to 8) neighbours'."""
    padded = np.pad(values, 1, mode="edge")
    out = values.copy()
    rows, cols = values.shape
    for i in (0, 1, 2):
        for j in (0, 1, 2):
            out = op(out, padded[i : i + rows, j : j + cols])
    return out


def softmax_bound(
    tables: SoftmaxTables | QuartusSoftmaxTables,
    logit_range: float,
    *,
    logit_error: float = 0.0,
    logit_lsb: float | None = None,
) -> TableBound | str:
    """The largest ``|firmware - softmax(x)_i|`` of hls4ml's ``stable`` softmax for logits
    ``x`` whose ``max - min`` is at most ``logit_range``, each read by the firmware within
    ``logit_error`` of Keras's (0 when the logits are exact); ``logit_lsb``: exact logits lie
    on this grid, so their differences do too (only those differences are considered in
    each entry's interval: an exp table addressed at the logits' resolution has no rounding
    of the difference at all).

    The firmware (``softmax_stable``): ``d_i = x_max - x_i`` converted to ``inp_norm_t``;
    ``E_i = exp_table[top bits of d_i]`` (entries ``(exp_table_t) expf(-c_k)``, reproduced
    here as the emulator builds them); ``S = sum E_i`` in ``accum_t``; ``S`` converted to
    ``inv_inp_t`` reads ``I = inv_table[top bits]`` (``(inv_table_t)(1/s_j)``); the result is
    ``(result_t)(E_i * I)``.

    Derivation: every exp entry ``k`` is read by an interval ``[lo_k, hi_k]`` of ``d`` (the
    conversion's rounding and the index's truncation; the last entry up to infinity), so
    ``E = exp(-d) (1 + delta) + eps`` with ``delta = exp(d - c_k) - 1`` over the interval and
    ``eps = entry - exp(-c_k)`` (the table's rounding); over the reachable entries ``delta``
    and ``eps`` lie in boxes (the saturated last entry puts its whole error in ``eps``).
    Likewise every inverse entry ``j`` is read by an interval of sums, so ``S * I`` lies in
    ``[G_lo, G_hi]`` over the reachable sums (those between the largest class's entry and
    ``n`` times the largest entry). With ``w = exp(-d_i)`` and ``rho`` the others' sum
    (``p = w / (w + rho)``), ``E_i / S`` is increasing in ``E_i`` and decreasing in the
    others, so the firmware lies in ``[E_lo / (E_lo + R_hi) * G_lo, E_hi / (E_hi + R_lo) *
    G_hi]``, each end from the boxes. The largest distance to ``p`` is taken over a grid of
    ``w`` in ``[0, 1]`` and ``rho`` in ``[0, n - 1]`` (one class is the maximum: ``w = 1`` or
    ``rho >= 1``; with exact logits that class reads the first entry exactly), plus the
    largest change between neighbouring grid points (the grid's
    margin), plus the result's rounding and Keras's float32 softmax (``8 * 2**-24``).

    The accumulation must be exact (``accum_t`` holding the entries' fractional bits and
    ``n`` times the largest entry) and the sum must never address the ``1/0`` entry; else
    the reason, in words, is returned instead of a bound.

    The Quartus template (:class:`QuartusSoftmaxTables`) is analysed the same way with its
    own addressing: ``x_i - max`` in the input type (rounding, saturating) addresses the exp
    table by the bits below its sign, each entry computed at the top of the differences it
    covers; the sum in ``exp_table_t`` addresses the 1/x table the same way, each entry
    computed at the bottom of its bucket; both tables hold ``ac_fixed<16,8>`` entries
    (:data:`QUARTUS_TABLE_T`) converted to ``exp_table_t`` / ``inv_table_t`` when read."""
    try:
        return _softmax_bound(tables, logit_range, logit_error, logit_lsb)
    except _NoBoundError as exc:
        return str(exc)


def _power_of_two_bits(size: int, what: str) -> int:
    if size < 1 or size & (size - 1):
        raise _NoBoundError(f"the {what} table size {size} is not a power of two")
    return size.bit_length() - 1


def _vivado_exp(
    t: SoftmaxTables, logit_range: float, logit_error: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vivado/Vitis ``softmax_stable``'s exp table: the entries (values), the closed interval
    of ``max - x_i`` reading each (``inf``: saturated) and the difference each was computed
    at."""
    exp_bits = _power_of_two_bits(t.exp_size, "exp")
    _power_of_two_bits(t.inv_size, "inverse")
    if t.inp_norm_t.width < exp_bits or t.inv_inp_t.width < t.inv_size.bit_length() - 1:
        raise _NoBoundError("a table has more entries than its address type has codes")
    if t.inp_norm_t.signed:
        raise _NoBoundError(f"inp_norm_t {t.inp_norm_t.to_hls()} is signed")
    _check_type(t.inp_norm_t, logit_range + 2 * logit_error, "inp_norm_t")
    entries = exp_table(t.inp_norm_t, exp_bits, t.exp_table_t, t.exp_scale) * t.exp_table_t.lsb
    d_lo, d_hi = _address_bins(t.inp_norm_t, exp_bits)
    centre = np.arange(len(d_lo)) * 2.0 ** (t.inp_norm_t.width - exp_bits) * t.inp_norm_t.lsb
    return entries, d_lo, d_hi, centre * t.exp_scale


def _vivado_sum(t: SoftmaxTables, largest_entry: float) -> None:
    """Vivado/Vitis add the exp entries up in ``accum_t``: exact, or no bound."""
    if t.accum_t.fractional < t.exp_table_t.fractional:
        raise _NoBoundError(
            f"accum_t {t.accum_t.to_hls()} rounds the exp entries ({t.exp_table_t.to_hls()})"
        )
    if t.n * largest_entry > t.accum_t.max_value:
        raise _NoBoundError(
            f"accum_t {t.accum_t.to_hls()} cannot hold {t.n} times the largest exp "
            f"{largest_entry:.4g}"
        )


def _vivado_inverse(t: SoftmaxTables, s_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vivado/Vitis' 1/x table: the entries (values; NaN ``1/0``) and the closed interval of
    sums reading each (the sum converted to ``inv_inp_t``, addressed by its top bits)."""
    _check_type(t.inv_inp_t, s_max, "inv_inp_t")
    inv_bits = t.inv_size.bit_length() - 1
    inverse = inv_table(t.inv_inp_t, inv_bits, t.inv_table_t) * t.inv_table_t.lsb
    s_lo, s_hi = _address_bins(t.inv_inp_t, inv_bits)
    return inverse[: len(s_lo)], s_lo, s_hi


def _vivado_how(t: SoftmaxTables, exp_error: str, g: str) -> str:
    return (
        f"softmax over {t.n}: max - x_i in {t.inp_norm_t.to_hls()} addressing a {t.exp_size}-entry "
        f"exp table of {t.exp_table_t.to_hls()} ({exp_error}), the sum in {t.inv_inp_t.to_hls()} "
        f"addressing a {t.inv_size}-entry 1/x table of {t.inv_table_t.to_hls()} (sum * 1/sum in "
        f"{g}), result {t.result_t.to_hls()}"
    )


#: the type of the Quartus softmax's table entries: hls4ml 1.3's Quartus softmax config sets
#: ``exp_table_t`` and ``inv_table_t`` only, and its tables are declared
#: ``CONFIG_T::table_t``, ``nnet::activ_config``'s ``ac_fixed<16,8>`` (truncating, wrapping)
QUARTUS_TABLE_T = FixedType(16, 8, True, Rounding.TRN, Saturation.WRAP)


@dataclass(frozen=True)
class QuartusSoftmaxTables:
    """The types and table size of one of hls4ml 1.3's Quartus ``stable`` softmax layers
    (``templates/quartus/.../nnet_activation.h``, ``softmax_stable``) and the tables its
    writer fills (``quartus_writer.py``, written for the layer's own types by
    :mod:`hepfpga.firmware.quartus_tables`)."""

    #: classes (``n_in``)
    n: int
    #: the softmax's input (the logits) type, signed; ``x_i - max`` is computed in it,
    #: rounding and saturating (``AC_RND, AC_SAT``)
    input_t: FixedType
    #: entries of the exp and the 1/x table (``table_size``)
    size: int
    #: each looked-up exp, and their sum (the 1/x table is addressed by its top bits)
    exp_table_t: FixedType
    #: the looked-up inverse of the sum
    inv_table_t: FixedType
    result_t: FixedType
    #: the entries' declared type
    table_t: FixedType = QUARTUS_TABLE_T


def _writer_entries(values: list[float], first: FixedType, then: FixedType) -> np.ndarray:
    """Entries as the Quartus writer prints them (``round(v, 12)``, Python's ``str``), read
    by the C++ into ``first`` (the tables' ``table_t``) and converted to ``then`` where they
    are used."""
    printed = np.array([round(v, 12) for v in values], dtype=np.float64)
    return then.quantize(first.quantize(printed))


def _quartus_exp(
    t: QuartusSoftmaxTables, logit_range: float, logit_error: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Quartus exp table. ``d = x_i - max`` (in the input type, saturating at
    ``-2**(I-1)``) reads entry 0 when 0, else the ``N`` bits below its sign bit (``N =
    log2(size)``; 1 where those are 0). The writer computes entry ``k >= 1`` at the value with
    the sign bit and ``k`` in those bits, ``-2**(I-1) + k P`` (``P = 2**(I-1-N)``): the top
    of its bucket of ``max - x_i``, ``(2**(I-1) - (k+1) P, 2**(I-1) - k P]``; entry 1 also
    reads bucket 0 and every saturated difference."""
    del logit_range, logit_error  # the difference saturates (AC_SAT): no range to check
    bits = _power_of_two_bits(t.size, "exp")
    x_t = t.input_t
    if not x_t.signed:
        raise _NoBoundError(f"the softmax's input {x_t.to_hls()} is unsigned (Quartus: signed)")
    if bits > x_t.width - 1:
        raise _NoBoundError("a table has more entries than its address type has codes")
    half, step = 2.0 ** (x_t.integer - 1), 2.0 ** (x_t.integer - 1 - bits)
    k = np.arange(2**bits, dtype=np.float64)
    centre = np.where(k == 0, 0.0, half - k * step)
    entries = _writer_entries([math.exp(-c) for c in centre], t.table_t, t.exp_table_t)
    d_hi = centre.copy()
    d_lo = np.where(k == 0, 0.0, centre - step + x_t.lsb)
    d_lo[1], d_hi[1] = half - 2 * step + x_t.lsb, math.inf
    return entries, d_lo, d_hi, centre


def _quartus_sum(t: QuartusSoftmaxTables, largest_entry: float) -> None:
    """Quartus adds the exp entries up in ``exp_table_t`` itself: exact, or no bound."""
    if t.n * largest_entry > t.exp_table_t.max_value:
        raise _NoBoundError(
            f"exp_table_t {t.exp_table_t.to_hls()} (the sum's type on Quartus) cannot hold "
            f"{t.n} times the largest exp {largest_entry:.4g}"
        )


def _quartus_inverse(
    t: QuartusSoftmaxTables, s_max: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Quartus 1/x table: the sum ``S`` (exact in ``exp_table_t``) reads entry ``k =
    floor(S / P)`` (the ``N`` bits below the sign, ``P = 2**(I_e - 1 - N)``); the writer
    computes entry ``k`` at ``k P``, the bottom of its bucket (entry 0 at ``1/0``: NaN)."""
    del s_max  # exp_table_t holds it (checked with the sum)
    bits = _power_of_two_bits(t.size, "inverse")
    e_t = t.exp_table_t
    if bits > e_t.width - 1:
        raise _NoBoundError("a table has more entries than its address type has codes")
    step = 2.0 ** (e_t.integer - 1 - bits)
    k = np.arange(2**bits, dtype=np.float64)
    inverse = np.full(len(k), np.nan)
    inverse[1:] = _writer_entries([1.0 / (v * step) for v in k[1:]], t.table_t, t.inv_table_t)
    return inverse, k * step, (k + 1) * step - e_t.lsb


def _ac(t: FixedType, modes: str = "") -> str:
    """``t`` as Quartus' ``ac_fixed`` spells it (``modes``: e.g. ``AC_RND,AC_SAT``)."""
    return f"ac_fixed<{t.width},{t.integer},{str(t.signed).lower()}{',' + modes if modes else ''}>"


def _quartus_how(t: QuartusSoftmaxTables, exp_error: str, g: str) -> str:
    return (
        f"Quartus softmax over {t.n}: x_i - max in {_ac(t.input_t, 'AC_RND,AC_SAT')} addressing "
        f"a {t.size}-entry exp table of {_ac(t.table_t)} (table_t) read into exp_table_t "
        f"{t.exp_table_t.to_hls()} ({exp_error}), the sum in exp_table_t addressing a "
        f"{t.size}-entry 1/x table of {_ac(t.table_t)} read into {t.inv_table_t.to_hls()} "
        f"(sum * 1/sum in {g}), result {t.result_t.to_hls()}"
    )


@dataclass(frozen=True)
class _Layout:
    """How one backend's softmax template reads its tables (see :func:`softmax_bound`)."""

    exp: Callable[[Any, float, float], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    sum: Callable[[Any, float], None]
    inverse: Callable[[Any, float], tuple[np.ndarray, np.ndarray, np.ndarray]]
    how: Callable[[Any, str, str], str]


#: the layout of each tables class (a registry: one entry per template)
_LAYOUTS: dict[type, _Layout] = {
    SoftmaxTables: _Layout(_vivado_exp, _vivado_sum, _vivado_inverse, _vivado_how),
    QuartusSoftmaxTables: _Layout(_quartus_exp, _quartus_sum, _quartus_inverse, _quartus_how),
}


def _softmax_bound(
    tables: SoftmaxTables | QuartusSoftmaxTables,
    logit_range: float,
    logit_error: float,
    logit_lsb: float | None,
) -> TableBound:
    t = tables
    n = t.n
    layout = _LAYOUTS[type(t)]
    # the exp table: entries, the inputs reading each, the points they were computed at
    entries, d_lo, d_hi, centre = layout.exp(t, logit_range, logit_error)
    d_lo, d_hi = d_lo - 2 * logit_error, d_hi + 2 * logit_error
    if logit_lsb and not logit_error:  # the differences of exact logits lie on their grid
        with np.errstate(invalid="ignore"):
            d_lo = np.ceil(d_lo / logit_lsb) * logit_lsb
            d_hi = np.where(np.isinf(d_hi), d_hi, np.floor(d_hi / logit_lsb) * logit_lsb)
    reach = (d_hi >= 0) & (d_lo <= logit_range + 2 * logit_error) & (d_lo <= d_hi)
    if np.isnan(entries[reach]).any():
        raise _NoBoundError("a reachable exp table entry overflows")
    d_lo = np.maximum(d_lo, 0.0)
    last = np.isinf(d_hi)
    body = reach & ~last
    delta = [np.exp(d_lo[body] - centre[body]) - 1, np.exp(d_hi[body] - centre[body]) - 1]
    eps = entries - np.exp(-centre)
    delta_lo = float(min(0.0, np.min(delta[0]))) if body.any() else 0.0
    delta_hi = float(max(0.0, np.max(delta[1]))) if body.any() else 0.0
    eps_lo, eps_hi = float(np.min(eps[body], initial=0.0)), float(np.max(eps[body], initial=0.0))
    if (reach & last).any():  # saturated d: exp(-d) anywhere in [0, exp(-lo)]
        k = int(np.flatnonzero(reach & last)[0])
        eps_lo = min(eps_lo, entries[k] - math.exp(-d_lo[k]))
        eps_hi = max(eps_hi, entries[k])
    largest_entry = float(np.max(entries[reach]))
    # the sum, exact
    layout.sum(t, largest_entry)
    # the inverse: S * I over the reachable sums
    s_min = float(entries[0])  # the largest class: d = 0 reads the first entry
    s_max = n * largest_entry
    inverse, s_lo, s_hi = layout.inverse(t, s_max)
    s_lo, s_hi = np.maximum(s_lo, s_min), np.minimum(s_hi, s_max)
    used = s_lo <= s_hi
    if np.isnan(inverse[used]).any():
        raise _NoBoundError("the sum can address the 1/0 entry of the inverse table")
    inverse = inverse[used]
    s_lo, s_hi = s_lo[used], s_hi[used]
    g_bins = (s_lo * inverse, s_hi * inverse)
    g_lo, g_hi = float(np.min(g_bins[0])), float(np.max(g_bins[1]))
    # the grid over (w, rho): the largest class itself (w = 1), or another (rho >= 1)
    exact_top = float(entries[0]) if not logit_error else None
    boxes = (delta_lo, delta_hi, eps_lo, eps_hi)
    worst, margin = 0.0, 0.0
    cases = [(np.ones(1), np.linspace(0.0, n - 1.0, _SOFTMAX_GRID if n > 1 else 1), True)]
    if n > 1:
        cases.append(
            (np.linspace(0.0, 1.0, _SOFTMAX_GRID), np.linspace(1.0, n - 1.0, _SOFTMAX_GRID), False)
        )
    for w_nodes, rho_nodes, top in cases:
        error = _softmax_error(w_nodes, rho_nodes, n, boxes, exact_top, top, (s_lo, s_hi), g_bins)
        worst = max(worst, float(np.max(error)))
        for axis in (0, 1):
            if error.shape[axis] > 1:
                margin = max(margin, float(np.max(np.abs(np.diff(error, axis=axis)))))
    result = _rounding_error(t.result_t) + max(0.0, 1.0 - t.result_t.max_value)
    bound = worst + margin + result + _KERAS_SOFTMAX
    exp_error = f"relative {delta_lo:+.2g}/{delta_hi:+.2g}, absolute {eps_lo:+.2g}/{eps_hi:+.2g}"
    how = layout.how(t, exp_error, f"[{g_lo:.6g}, {g_hi:.6g}]")
    if logit_error:
        how += f", logits read within {logit_error:.3g}"
    return TableBound("softmax", bound, how + f" -> bound {bound:.3g}")
