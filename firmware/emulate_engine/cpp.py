"""C++ generated from a :class:`~hepfpga.firmware.emulate_engine.plan.Plan`: the engine's
integer arithmetic, one event at a time, for the trigger emulator library
(:mod:`hepfpga.firmware.emulator_lib`).

Every tensor is an array of raw codes (value times ``2**fractional`` of its type) in
``int32_t`` when its interval fits 31 bits, else ``int64_t``; every step is the engine's own
computation on those integers, so the results are the engine's (and, the engine being proven
against it, the hls4ml C simulation's) bit for bit:

* a conversion ``(to_type) x`` (in ``int32_t`` where every value on the way stays below
  ``2**30``, branch-free so that loops of it vectorise, else ``int64_t``) is a multiplication
  by ``2**k`` (``k >= 0``) or an arithmetic right shift by ``k`` with the target's rounding
  applied to the dropped bits (``AP_TRN``:
  floor; ``AP_RND``: add half, floor; ``AP_RND_CONV``: ties to even; ``AP_TRN_ZERO``,
  ``AP_RND_ZERO``, ``AP_RND_INF``, ``AP_RND_MIN_INF`` on the magnitude or with the sign as
  ``ap_fixed`` defines them), then the overflow mode on the raw range (``AP_SAT``: clamp;
  ``AP_SAT_SYM``: clamp to the symmetric range, the most negative code excluded;
  ``AP_SAT_ZERO``: zero; ``AP_WRAP``: keep the low ``width`` bits, two's complement);
  conversions the plan proved to be no-ops are not emitted;
* Dense and convolutions (the plan's dense-matrix form) are integer dot products with the
  plan's weights as integer constants (``accum_t`` alignment folded in, as in the plan),
  accumulated in ``int32_t`` when the plan's bound on every partial sum fits 31 bits, else in
  ``int64_t`` (the plan refuses anything above 50 bits); rows whose input is 0 are skipped and
  each row only touches the columns where its weights are non-zero (convolutions);
* ReLU is ``max(x, 0)``; max pooling the maximum over the window, converted;
* the table softmax (``stable``, ``latency``) and ``argmax`` use the plan's tables as constant
  arrays, addressed by the same top bits, summed by hls4ml's balanced adder tree in
  ``accum_t``; an entry without a defined value (``1/0``, an overflowing ``exp``) throws
  ``std::domain_error`` when addressed (the engine hands such events to the C simulation).

The input conversion (``double`` to the input type) repeats :meth:`Plan.run`'s float64
operations (scaling by ``2**fractional``, the rounding mode as ``floor``/``rint``/``trunc``...,
then the overflow mode) and so gives the engine's codes for every double, ties included.

Steps of other kinds (recurrent layers, table activations, average pooling, merges,
batch normalization...) raise :class:`CppUnsupportedError` naming the step; the library then
packages the hls4ml C-simulation sources instead, and says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from hepfpga.firmware.emulate_engine.plan import Plan
from hepfpga.firmware.emulate_engine.softmax import SoftmaxStep, _balanced_sum
from hepfpga.firmware.emulate_engine.steps import ConvertStep, MatmulStep, MaxPoolStep
from hepfpga.firmware.emulate_engine.types import Convert, Step, raw_range, saturation_range
from hepfpga.firmware.emulate_stream import CopyStep
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation

__all__ = [
    "CPP_HELPERS",
    "CPP_STEPS",
    "CppModel",
    "CppUnsupportedError",
    "convert_expr",
    "generate_cpp",
    "input_function",
    "work_type",
]

#: the step kinds the generator writes C++ for (anything else: CppUnsupportedError)
CPP_STEPS = ("ConvertStep", "CopyStep", "MatmulStep", "MaxPoolStep", "SoftmaxStep")
_INT32_LIMIT = 2.0**31 - 1
_INT16_LIMIT = 2.0**15 - 1
#: a row-sparse (per-row column range) weight layout is used below this share of the dense one
_PACKED_SHARE = 0.75
_NAN_SENTINEL = "INT64_MIN"

_ROUND_FN = {
    Rounding.TRN: "rnd_trn",
    Rounding.RND: "rnd_rnd",
    Rounding.RND_CONV: "rnd_conv",
    Rounding.TRN_ZERO: "rnd_trn_zero",
    Rounding.RND_ZERO: "rnd_zero",
    Rounding.RND_INF: "rnd_inf",
    Rounding.RND_MIN_INF: "rnd_min_inf",
}
# the same modes on doubles, as Plan.run's numpy calls (types._round) compute them
_ROUND_DOUBLE = {
    Rounding.TRN: "std::floor(s)",
    Rounding.RND_CONV: "std::nearbyint(s)",
    Rounding.TRN_ZERO: "std::trunc(s)",
    Rounding.RND: "std::floor(s + 0.5)",
    Rounding.RND_MIN_INF: "std::ceil(s - 0.5)",
    Rounding.RND_INF: "(s > 0 ? 1.0 : s < 0 ? -1.0 : 0.0) * std::floor(std::fabs(s) + 0.5)",
    Rounding.RND_ZERO: "(s > 0 ? 1.0 : s < 0 ? -1.0 : 0.0) * std::ceil(std::fabs(s) - 0.5)",
}


class CppUnsupportedError(Exception):
    """The plan has a step the C++ generator does not write; the message names it."""


@dataclass(frozen=True)
class CppModel:
    """The generated header and what its interface needs."""

    #: ``model.h``: everything inside ``namespace <namespace>`` (``run``, constants, helpers)
    source: str
    n_inputs: int
    n_outputs: int
    input_type: FixedType
    output_type: FixedType
    #: ``(step name, kind)`` per generated step, in order
    steps: tuple[tuple[str, str], ...]


#: the C++ helpers :func:`convert_expr`'s expressions call (rounding, overflow, table address)
CPP_HELPERS = """\
// raw-code helpers on int32_t or int64_t: x is a raw code (value * 2^fractional); k > 0 bits
// are dropped; branch-free where it matters, so that loops of them vectorise
template <typename T> static inline T rnd_trn(T x, int k) { return x >> k; }
template <typename T> static inline T rnd_rnd(T x, int k) { return (x + (T(1) << (k - 1))) >> k; }
template <typename T> static inline T rnd_conv(T x, int k) {
    // ties to even: round up when the dropped bits exceed half, or equal it with q odd
    const T q = x >> k, rem = x & ((T(1) << k) - 1), half = T(1) << (k - 1);
    return q + T((rem + (q & 1)) > half);
}
template <typename T> static inline T rnd_trn_zero(T x, int k) {
    return x >= 0 ? x >> k : -((-x) >> k);
}
template <typename T> static inline T rnd_min_inf(T x, int k) {
    return -((-x + (T(1) << (k - 1))) >> k);
}
template <typename T> static inline T rnd_inf(T x, int k) {
    const T half = T(1) << (k - 1);
    return x >= 0 ? (x + half) >> k : -((-x + half) >> k);
}
template <typename T> static inline T rnd_zero(T x, int k) {
    const T h = (T(1) << (k - 1)) - 1;
    return x >= 0 ? (x + h) >> k : -((-x + h) >> k);
}
template <typename T> static inline T sat(T x, T lo, T hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}
template <typename T> static inline T sat_zero(T x, T lo, T hi) {
    return (x < lo || x > hi) ? T(0) : x;
}
template <typename T> static inline T wrap(T x, T lo, int width) {
    const uint64_t mask = (uint64_t(1) << width) - 1;
    return static_cast<T>(static_cast<int64_t>(static_cast<uint64_t>(int64_t(x) - lo) & mask)) + lo;
}
// the top n_bits of a raw code of `width` bits (two's complement when signed), hls4ml's
// softmax_idx_from_real_val
static inline int64_t top_bits(int64_t x, bool is_signed, int width, int n_bits) {
    const uint64_t mask = (uint64_t(1) << width) - 1;
    if (is_signed) x = static_cast<int64_t>(static_cast<uint64_t>(x) & mask);
    return width > n_bits ? (x >> (width - n_bits)) : x;
}
"""


def _c_int(value: float) -> str:
    v = int(value)
    if v == -(2**63):
        return "INT64_MIN"
    return f"INT64_C({v})"


def convert_expr(conv: Convert, expr: str, extra_scale: float = 1.0, ctype: str = "int64_t") -> str:
    """C++ expression of ``conv`` (its scale times ``extra_scale``) applied to the integer
    expression ``expr``, computed in ``ctype`` (``int64_t``, or ``int32_t`` where the caller
    proved every intermediate value below ``2**30``), using :data:`CPP_HELPERS`."""
    scale = conv.scale * extra_scale
    shift = math.log2(scale)
    if shift != int(shift):
        raise CppUnsupportedError(f"a conversion scales by {scale}, not a power of two")
    shift = int(shift)

    def lit(value: float) -> str:
        return _c_int(value) if ctype == "int64_t" else f"{ctype}({int(value)})"

    out = f"{ctype}({expr})"
    if shift > 0:
        if shift > 62:
            raise CppUnsupportedError(f"a conversion shifts by {shift} bits")
        out = f"({out} * {lit(2**shift)})"
    elif shift < 0:
        if -shift > 62:
            raise CppUnsupportedError(f"a conversion shifts by {-shift} bits")
        if conv.rounding is None:
            raise CppUnsupportedError("a conversion drops bits without a rounding mode")
        out = f"{_ROUND_FN[conv.rounding]}({out}, {-shift})"
    if conv.saturation is None:
        return out
    if conv.saturation is Saturation.WRAP:
        if conv.width > 62:
            raise CppUnsupportedError(f"a wrapping conversion to {conv.width} bits")
        return f"wrap({out}, {lit(conv.lo)}, {conv.width})"
    if conv.saturation is Saturation.SAT_ZERO:
        return f"sat_zero({out}, {lit(conv.lo)}, {lit(conv.hi)})"
    return f"sat({out}, {lit(conv.lo)}, {lit(conv.hi)})"


def work_type(magnitude: float, conv: Convert, extra_scale: float = 1.0) -> str:
    """``int32_t`` when a conversion of values up to ``magnitude`` stays below ``2**30`` on
    the way (scaled, plus the rounding's half), else ``int64_t``."""
    up = max(conv.scale * extra_scale, 1.0)
    bound = max(magnitude * up + magnitude, abs(conv.lo), abs(conv.hi), 2.0**conv.width)
    return "int32_t" if bound < 2.0**30 else "int64_t"


def _int_type(magnitude: float) -> str:
    return "int32_t" if magnitude <= _INT32_LIMIT else "int64_t"


def _array(name: str, ctype: str, values: Iterable[Any], per_line: int = 16) -> str:
    items = [str(int(v)) if ctype != "int64_t" else _c_int(v) for v in values]
    if not items:
        items = ["0"]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(lines)
    return f"alignas(64) static const {ctype} {name}[{len(items)}] = {{\n    {body}}};\n"


def _integers(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise CppUnsupportedError(f"{what} are not integer raw codes")
    if np.abs(values).max(initial=0.0) >= 2.0**62:
        raise CppUnsupportedError(f"{what} exceed 62 bits")
    return values.astype(np.int64)


class _Writer:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.constants: list[str] = []
        self.body: list[str] = []
        self.names: dict[str, str] = {}
        self.ctypes: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.magnitudes: dict[str, float] = {}  # tensor -> largest raw magnitude
        self.scales: dict[str, float] = {}  # tensor -> the plan's output_scale of its producer
        self.kinds: list[tuple[str, str]] = []

    def ident(self, step: Step, k: int) -> str:
        clean = "".join(c if c.isalnum() else "_" for c in step.name)
        return f"s{k}_{clean}"

    def tensor(self, name: str) -> str:
        if name not in self.names:
            raise CppUnsupportedError(f"tensor '{name}' is read before any step writes it")
        return self.names[name]

    def one_input(self, step: Step) -> tuple[str, str, int]:
        if len(step.inputs) != 1:
            raise CppUnsupportedError(
                f"step '{step.name}' ({type(step).__name__}) has {len(step.inputs)} inputs"
            )
        source = step.inputs[0]
        if self.scales.get(source, 1.0) != 1.0 and not isinstance(step, (ConvertStep, CopyStep)):
            raise CppUnsupportedError(f"step '{step.name}' reads a scaled tensor")
        return self.tensor(source), self.ctypes[source], self.sizes[source]

    def declare(self, step: Step, ident: str) -> tuple[str, int]:
        size = int(math.prod(step.shape))
        lo, hi = step.out_interval.lo, step.out_interval.hi
        ctype = _int_type(max(abs(lo), abs(hi)))
        self.names[step.output] = ident
        self.ctypes[step.output] = ctype
        self.magnitudes[step.output] = max(abs(lo), abs(hi))
        self.sizes[step.output] = size
        self.scales[step.output] = 1.0
        self.body.append(f"    {ctype} {ident}[{size}];")
        return ctype, size

    # -- steps ---------------------------------------------------------------------------------
    def convert(self, step: ConvertStep | CopyStep, ident: str) -> None:
        src, _, n_in = self.one_input(step)
        scale = self.scales.get(step.inputs[0], 1.0)
        ctype, size = self.declare(step, ident)
        if n_in != size:
            raise CppUnsupportedError(f"step '{step.name}' maps {n_in} values to {size}")
        value = f"{src}[i]"
        if getattr(step, "relu", False):
            value = f"({src}[i] > 0 ? {src}[i] : 0)"
        work = work_type(self.magnitudes[step.inputs[0]], step.convert, scale)
        expr = convert_expr(step.convert, value, scale, work)
        self.body.append(f"    for (int i = 0; i < {size}; ++i) {ident}[i] = {ctype}({expr});")

    def matmul(self, step: MatmulStep, ident: str) -> None:
        if step.patches is not None:
            raise CppUnsupportedError(
                f"step '{step.name}': a convolution too large for its dense-matrix form"
            )
        src, _, n_in = self.one_input(step)
        # undo the plan's folding of the next conversion's power of two into the weights
        factor = step.output_scale
        w = _integers(np.asarray(step.w, dtype=np.float64) / factor, f"step '{step.name}' weights")
        b = _integers(np.asarray(step.b, dtype=np.float64) / factor, f"step '{step.name}' bias")
        if w.shape[0] != n_in:
            raise CppUnsupportedError(f"step '{step.name}': {w.shape} weights for {n_in} inputs")
        n_out = w.shape[1]
        magnitude = max(step.max_magnitude, float(np.abs(w).max(initial=0)))
        acc_t = _int_type(magnitude)
        # 16-bit inputs and weights into a 32-bit sum: the widening multiply vectorises
        in_magnitude = self.magnitudes[step.inputs[0]]
        narrow = (
            acc_t == "int32_t"
            and step.per_product is None
            and in_magnitude <= _INT16_LIMIT
            and float(np.abs(w).max(initial=0)) <= _INT16_LIMIT
        )
        w_t = x_t = "int16_t" if narrow else acc_t
        ctype, size = self.declare(step, ident)
        # the plan's next conversion expects codes times output_scale: it applies the factor
        self.scales[step.output] = factor
        if size != n_out:
            raise CppUnsupportedError(f"step '{step.name}': {n_out} columns for {size} outputs")
        nonzero = w != 0
        first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 0)
        last = np.where(nonzero.any(axis=1), n_out - nonzero[:, ::-1].argmax(axis=1), 0)
        lengths = last - first
        self.constants.append(_array(f"{ident}_b", acc_t, b))
        if step.per_product is None:
            term = f"{acc_t}(xi) * {acc_t}(w[j])"
        else:
            term = f"{acc_t}({convert_expr(step.per_product, 'xi * w[j]')})"
        if lengths.sum() < _PACKED_SHARE * w.size:
            # each row holds only its columns first[i]..last[i] (convolutions: mostly zeros)
            offsets = np.concatenate([[0], np.cumsum(lengths)])[:-1]
            packed = np.concatenate([w[i, first[i] : last[i]] for i in range(n_in)] + [[]])
            self.constants.append(_array(f"{ident}_w", w_t, packed))
            self.constants.append(_array(f"{ident}_off", "int32_t", offsets))
            self.constants.append(_array(f"{ident}_first", "int32_t", first))
            self.constants.append(_array(f"{ident}_len", "int32_t", lengths))
            loop = (
                f"            const {w_t}* w = {ident}_w + {ident}_off[i] - {ident}_first[i];\n"
                f"            for (int j = {ident}_first[i], e = j + {ident}_len[i]; j < e; ++j)\n"
                f"                acc[j] += {term};\n"
            )
        else:
            self.constants.append(_array(f"{ident}_w", w_t, w.reshape(-1)))
            loop = (
                f"            const {w_t}* w = {ident}_w + i * {n_out};\n"
                f"            for (int j = 0; j < {n_out}; ++j) acc[j] += {term};\n"
            )
        result = "acc[j]"
        if step.accum_wrap is not None:
            result = convert_expr(step.accum_wrap, result)
        result = convert_expr(step.result, result)
        self.body.append(
            "    {\n"
            f"        {acc_t} acc[{n_out}];\n"
            f"        for (int j = 0; j < {n_out}; ++j) acc[j] = {ident}_b[j];\n"
            f"        for (int i = 0; i < {n_in}; ++i) {{\n"
            f"            const {x_t} xi = {x_t}({src}[i]);\n"
            "            if (xi == 0) continue;  // a zero input adds nothing (relu outputs)\n"
            f"{loop}"
            "        }\n"
            f"        for (int j = 0; j < {n_out}; ++j) {ident}[j] = {ctype}({result});\n"
            "    }"
        )

    def maxpool(self, step: MaxPoolStep, ident: str) -> None:
        src, _, _ = self.one_input(step)
        ctype, _ = self.declare(step, ident)
        in_shape, shape = tuple(step.in_shape), tuple(step.shape)
        pool, stride = tuple(step.pool), tuple(step.stride)
        if len(in_shape) == 2:  # 1-d: one row
            in_shape, shape, pool, stride = (1, *in_shape), (1, *shape), (1, *pool), (1, *stride)
        if len(in_shape) != 3:
            raise CppUnsupportedError(f"step '{step.name}': pooling of shape {step.in_shape}")
        (h_in, w_in, ch), (h_out, w_out, _) = in_shape, shape
        value = "m"
        if step.to_accum is not None:
            value = convert_expr(step.to_accum, value)
        value = convert_expr(step.result, value)
        self.body.append(
            f"    for (int oy = 0; oy < {h_out}; ++oy)\n"
            f"        for (int ox = 0; ox < {w_out}; ++ox)\n"
            f"            for (int c = 0; c < {ch}; ++c) {{\n"
            f"                int64_t m = {src}[((oy * {stride[0]}) * {w_in} + "
            f"ox * {stride[1]}) * {ch} + c];\n"
            f"                for (int py = 0; py < {pool[0]}; ++py)\n"
            f"                    for (int px = 0; px < {pool[1]}; ++px) {{\n"
            f"                        const int64_t v = {src}[((oy * {stride[0]} + py) * {w_in} + "
            f"ox * {stride[1]} + px) * {ch} + c];\n"
            "                        m = v > m ? v : m;\n"
            "                    }\n"
            f"                {ident}[(oy * {w_out} + ox) * {ch} + c] = {ctype}({value});\n"
            "            }"
        )
        del h_in

    def softmax(self, step: SoftmaxStep, ident: str) -> None:
        src, _, n = self.one_input(step)
        ctype, size = self.declare(step, ident)
        if size != n:
            raise CppUnsupportedError(f"step '{step.name}': softmax of {n} values into {size}")
        if step.implementation == "argmax":
            one, zero = _c_int(step.one), _c_int(step.zero)
            self.body.append(
                "    {\n"
                f"        int best = 0;\n"
                f"        for (int i = 1; i < {n}; ++i) if ({src}[i] > {src}[best]) best = i;\n"
                f"        for (int i = 0; i < {n}; ++i) {ident}[i] = {ctype}(i == best ? "
                f"{one} : {zero});\n"
                "    }"
            )
            return
        for table, values in (("exp", step.exp_table), ("inv", step.inv_table)):
            finite = np.isfinite(values)
            codes = np.where(finite, values, 0.0)
            ints = [_c_int(v) if ok else _NAN_SENTINEL for v, ok in zip(codes, finite, strict=True)]
            body = ",\n    ".join(", ".join(ints[i : i + 8]) for i in range(0, len(ints), 8))
            self.constants.append(
                f"alignas(64) static const int64_t {ident}_{table}[{len(ints)}] = {{\n"
                f"    {body}}};\n"
            )
        if step.implementation == "stable":
            address = convert_expr(step.norm, "xmax - int64_t(" + src + "[i])")
            a_t = step.address_t
        else:
            address = f"int64_t({src}[i])"
            a_t = step.in_type
        address = f"top_bits({address}, {str(a_t.signed).lower()}, {a_t.width}, {step.exp_bits})"
        lines = ["    {"]
        if step.implementation == "stable":
            lines.append(f"        int64_t xmax = {src}[0];")
            lines.append(
                f"        for (int i = 1; i < {n}; ++i) if ({src}[i] > xmax) xmax = {src}[i];"
            )
        lines += [
            f"        int64_t e[{n}];",
            f"        for (int i = 0; i < {n}; ++i) {{",
            f"            const int64_t v = {ident}_exp[{address}];",
            f"            if (v == {_NAN_SENTINEL}) throw std::domain_error("
            f'"{step.name}: the exp table entry addressed has no defined value");',
            f"            e[i] = {convert_expr(step.to_accum, 'v')};",
            "        }",
        ]
        temps: list[str] = []

        def add(a: str, b: str) -> str:
            name = f"sum{len(temps)}"
            temps.append(f"        const int64_t {name} = {convert_expr(step.add, f'{a} + {b}')};")
            return name

        # hls4ml's adder tree, the engine's own partition (on names of C++ temporaries)
        total = cast(str, _balanced_sum(cast(Any, [f"e[{i}]" for i in range(n)]), cast(Any, add)))
        lines += temps
        inv_t = step.inv_inp_t
        inv_address = (
            f"top_bits({convert_expr(step.to_inv_inp, total)}, {str(inv_t.signed).lower()}, "
            f"{inv_t.width}, {step.inv_bits})"
        )
        lines += [
            f"        const int64_t inv = {ident}_inv[{inv_address}];",
            f"        if (inv == {_NAN_SENTINEL}) throw std::domain_error("
            f'"{step.name}: the sum addressed the undefined table entry 1/0");',
            f"        for (int i = 0; i < {n}; ++i) "
            f"{ident}[i] = {ctype}({convert_expr(step.to_result, 'e[i] * inv')});",
            "    }",
        ]
        self.body.append("\n".join(lines))


def input_function(t: FixedType) -> str:
    """C++ ``input_code(double)``: the raw code of ``t`` that :meth:`Plan.run` gives a double
    (needs ``<cmath>``, ``<cstdint>``, ``<stdexcept>``); saturating types clamp to
    :func:`~hepfpga.firmware.emulate_engine.types.saturation_range` (``AP_SAT_SYM``: minus the
    maximum is the minimum)."""
    lo, hi = saturation_range(t)
    scale = float(2.0**t.fractional)
    saturation = {
        # the low width bits: fmod by a power of two is exact at any magnitude
        Saturation.WRAP: (
            f"    {{ double m = std::fmod(s, {2.0**t.width!r});\n"
            f"      if (m < ({lo!r})) m += {2.0**t.width!r};\n"
            f"      else if (m > ({hi!r})) m -= {2.0**t.width!r};\n"
            f"      s = m + 0.0; }}\n"
        ),
        Saturation.SAT_ZERO: f"    if (s < ({lo!r}) || s > ({hi!r})) s = 0.0;\n",
    }.get(t.saturation, f"    s = s < ({lo!r}) ? ({lo!r}) : (s > ({hi!r}) ? ({hi!r}) : s);\n")
    return (
        f"// (input_t) x for a double x ({t.to_hls()}), as hepfpga emulate converts inputs:\n"
        "// scaled by 2^fractional, rounded, then the overflow mode, all in double arithmetic\n"
        "static inline int64_t input_code(double x) {\n"
        '    if (std::isnan(x)) throw std::domain_error("input value is NaN");\n'
        f"    double s = x * {scale!r};\n"
        f"    s = {_ROUND_DOUBLE[t.rounding]};\n"
        f"{saturation}"
        "    return static_cast<int64_t>(s);\n"
        "}\n"
    )


def generate_cpp(plan: Plan, namespace: str) -> CppModel:
    """The C++ of ``plan`` inside ``namespace``: ``input_code(double)``, constants
    ``n_inputs``/``n_outputs``/``input_fractional``/``output_fractional`` and
    ``run(const int64_t* in, int64_t* out)`` on raw codes (one event).

    Raises :class:`CppUnsupportedError` naming the first step not covered (see
    :data:`CPP_STEPS`), a model with several inputs or outputs, or a value wider than the
    integer types hold."""
    if len(plan.inputs) != 1 or len(plan.outputs) != 1:
        raise CppUnsupportedError(
            f"{len(plan.inputs)} inputs and {len(plan.outputs)} outputs (generated: one each)"
        )
    spec = plan.inputs[0]
    if spec.type.width > 50:
        raise CppUnsupportedError(f"input type {spec.type} is wider than 50 bits")
    writer = _Writer(plan)
    n_in = int(math.prod(spec.shape))
    lo, hi = raw_range(spec.type)
    in_ctype = _int_type(max(abs(lo), abs(hi)))
    writer.names[spec.tensor] = "x"
    writer.ctypes[spec.tensor] = in_ctype
    writer.magnitudes[spec.tensor] = max(abs(lo), abs(hi))
    writer.sizes[spec.tensor] = n_in
    writer.body.append(f"    {in_ctype} x[{n_in}];")
    writer.body.append(f"    for (int i = 0; i < {n_in}; ++i) x[i] = {in_ctype}(in[i]);")
    for k, step in enumerate(plan.steps):
        ident = writer.ident(step, k)
        kind = type(step).__name__
        if isinstance(step, (ConvertStep, CopyStep)):
            writer.convert(step, ident)
        elif isinstance(step, MatmulStep):
            writer.matmul(step, ident)
        elif isinstance(step, MaxPoolStep):
            writer.maxpool(step, ident)
        elif isinstance(step, SoftmaxStep):
            writer.softmax(step, ident)
        else:
            raise CppUnsupportedError(
                f"step '{step.name}' ({kind}) has no C++ generator; generated: "
                f"{', '.join(CPP_STEPS)}"
            )
        writer.kinds.append((step.name, kind))
    output = plan.outputs[0]
    out_type = plan.type_of(output)
    n_out = writer.sizes[output]
    if writer.scales.get(output, 1.0) != 1.0:
        raise CppUnsupportedError("the output is scaled")
    writer.body.append(
        f"    for (int i = 0; i < {n_out}; ++i) out[i] = {writer.tensor(output)}[i];"
    )
    source = (
        "// Generated by hepfpga from its fixed-point engine's plan: the firmware's arithmetic on\n"
        "// raw integer codes (value * 2^fractional), bit for bit (see README.md).\n"
        "#pragma once\n#include <cmath>\n#include <cstdint>\n#include <stdexcept>\n\n"
        f"namespace {namespace} {{\nnamespace gen {{\n\n"
        f"constexpr int n_inputs = {n_in};\nconstexpr int n_outputs = {n_out};\n"
        f"constexpr int input_fractional = {spec.type.fractional};\n"
        f"constexpr int output_fractional = {out_type.fractional};\n\n"
        f"{CPP_HELPERS}\n{input_function(spec.type)}\n"
        + "\n".join(writer.constants)
        + "\n// one event: raw input codes -> raw output codes\n"
        "static inline void run(const int64_t* in, int64_t* out) {\n"
        + "\n".join(writer.body)
        + f"\n}}\n\n}}  // namespace gen\n}}  // namespace {namespace}\n"
    )
    return CppModel(source, n_in, n_out, spec.type, out_type, tuple(writer.kinds))
