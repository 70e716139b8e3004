"""The C++ generated from the fixed-point engine's plan (hepfpga.firmware.emulate_engine.cpp).

Its conversions must give the engine's raw codes for every rounding and overflow mode of
``ap_fixed`` (the tiny models of test_emulator_lib.py only use a few): one small program,
compiled once with g++, applies the generated expressions to codes around every rounding tie
and overflow boundary and is compared with
:class:`~hepfpga.firmware.emulate_engine.types.Convert` on the same codes. The input
conversion (``double`` to the input type) is compared with :meth:`Plan.run`'s, and both with
the real ``ap_fixed`` headers (hls4ml's copy, what the C simulation compiles): every rounding
and overflow mode on doubles at and between the ties, including a value exactly at the most
negative code, which ``AP_SAT_SYM`` excludes.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hepfpga.firmware.emulate_engine.cpp import (
    CPP_HELPERS,
    CppUnsupportedError,
    convert_expr,
    generate_cpp,
    input_function,
)
from hepfpga.firmware.emulate_engine.plan import Plan, PlanInput
from hepfpga.firmware.emulate_engine.types import Convert, Interval, Step, plan_convert
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

#: (from fractional bits, to type): bits dropped (3, 1), added (2), none, with each mode
_CASES = [
    (frac, FixedType(8, 3, signed, rounding, saturation))
    for frac, signed, rounding, saturation in itertools.product(
        (8, 6, 3, 5), (True, False), list(Rounding), list(Saturation)
    )
]
_CODES = np.arange(-4200, 4201, dtype=np.float64)
# the input types below have 6 fractional bits and the range [-8, 8): a grid of 1/256 between
# -9 and 9 puts values on every tie and quarter of an lsb, and exactly on the most negative code
_DOUBLES = np.concatenate(
    [
        np.arange(-40, 40.01, 1 / 64),
        np.arange(-9, 9, 1 / 256),
        [1e30, -1e30, 0.5 / 32, -0.5 / 32, -0.0, -8.0, -8.0 - 2**-20, 7.984375, 7.9921875],
    ]
)
_INPUT_TYPES = [
    FixedType(10, 4, signed, rounding, saturation)
    for signed, rounding, saturation in itertools.product(
        (True, False), list(Rounding), list(Saturation)
    )
]


def _engine_convert(frac: int, to: FixedType) -> Convert:
    # an interval far beyond the target's range, so that every overflow mode is applied
    convert, _, _ = plan_convert(frac, Interval(_CODES[0], _CODES[-1]), to)
    return convert


def _engine_input(t: FixedType, x: np.ndarray) -> np.ndarray:
    """What :meth:`Plan.run` does to the inputs: the raw codes of a plan with no step."""
    plan = Plan(t, (len(x),), [], "__input__", np.float64, {})
    return plan.run(x[None, :].astype(np.float64))["__input__"][0]


def _ap_types() -> str:
    # deferred: hls4ml loads slowly; its ap_types are the headers the C simulation compiles
    import hls4ml

    return str(Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types")


@pytest.fixture(scope="module")
def cpp_results(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """The program's output: one array per conversion case, then one per input type."""
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    root = tmp_path_factory.mktemp("cpp_convert")
    codes = ", ".join(str(int(c)) for c in _CODES)
    doubles = ", ".join(
        repr(float(d)) if np.isfinite(d) else ("INFINITY" if d > 0 else "-INFINITY")
        for d in _DOUBLES
    )
    lines = [
        "#include <cmath>\n#include <cstdint>\n#include <cstdio>\n#include <stdexcept>",
        '#include "ap_fixed.h"',
        CPP_HELPERS,
        f"static const int64_t codes[{len(_CODES)}] = {{{codes}}};",
        f"static const double doubles[{len(_DOUBLES)}] = {{{doubles}}};",
    ]
    for k, t in enumerate(_INPUT_TYPES):
        lines.append(f"namespace in{k} {{\n{input_function(t)}}}")
        # the C simulation's conversion: ap_fixed's constructor from double, read back exactly
        lines.append(
            f"static long long ap{k}(double d) {{ {t.to_hls()} v = d; "
            f"return std::llround(std::ldexp(v.to_double(), {t.fractional})); }}"
        )
    lines.append("int main() {")
    for ctype, (frac, to) in itertools.product(("int64_t", "int32_t"), _CASES):
        expr = convert_expr(_engine_convert(frac, to), "v", ctype=ctype)
        lines.append(
            f'    for (int64_t v : codes) std::printf("%lld ", (long long)({expr}));'
            ' std::printf("\\n");'
        )
    for k in range(len(_INPUT_TYPES)):
        lines.append(
            f'    for (double d : doubles) std::printf("%lld ", (long long)in{k}::input_code(d));'
            ' std::printf("\\n");'
        )
    for k in range(len(_INPUT_TYPES)):
        # ap_fixed leaves infinities undefined: the finite doubles only
        lines.append(
            f'    for (double d : doubles) if (std::isfinite(d)) std::printf("%lld ", ap{k}(d));'
            ' std::printf("\\n");'
        )
    lines.append("    return 0;\n}")
    source = root / "convert.cpp"
    source.write_text("\n".join(lines))
    binary = root / "convert"
    subprocess.run(
        ["g++", "-O0", "-std=c++17", f"-I{_ap_types()}", str(source), "-o", str(binary)],
        check=True,
    )
    out = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    return [np.array(line.split(), dtype=np.int64) for line in out.splitlines()]


@needs_gxx
@pytest.mark.parametrize("ctype", ["int64_t", "int32_t"])
@pytest.mark.parametrize(
    "case", range(len(_CASES)), ids=lambda k: f"{_CASES[k][0]}->{_CASES[k][1]}"
)
def test_conversions_match_the_engine(cpp_results: list[np.ndarray], case: int, ctype: str) -> None:
    """In 64-bit and in 32-bit arithmetic (used where every value stays below 2**30)."""
    frac, to = _CASES[case]
    expected = _engine_convert(frac, to)(_CODES.copy())
    row = case + (len(_CASES) if ctype == "int32_t" else 0)
    assert np.array_equal(cpp_results[row], expected.astype(np.int64)), (frac, to, ctype)


@needs_gxx
@pytest.mark.parametrize("k", range(len(_INPUT_TYPES)), ids=lambda k: str(_INPUT_TYPES[k]))
def test_input_conversion_matches_plan_run(cpp_results: list[np.ndarray], k: int) -> None:
    t = _INPUT_TYPES[k]
    expected = _engine_input(t, _DOUBLES.copy()).astype(np.int64)
    assert np.array_equal(cpp_results[2 * len(_CASES) + k], expected), t


@needs_gxx
@pytest.mark.parametrize("k", range(len(_INPUT_TYPES)), ids=lambda k: str(_INPUT_TYPES[k]))
def test_input_conversion_matches_the_ap_fixed_headers(
    cpp_results: list[np.ndarray], k: int
) -> None:
    """Plan.run (hence ``hepfpga emulate`` and the generated C++, compared above) converts a
    double as ``ap_fixed``'s own constructor does, for every rounding and overflow mode; for
    ``AP_SAT_SYM`` -8.0 becomes -8 + 2**-6 (code -511), never -512."""
    t = _INPUT_TYPES[k]
    finite = _DOUBLES[np.isfinite(_DOUBLES)]
    headers = cpp_results[2 * len(_CASES) + len(_INPUT_TYPES) + k]
    engine = _engine_input(t, finite.copy()).astype(np.int64)
    differ = np.flatnonzero(headers != engine)
    assert differ.size == 0, (
        f"{t}: {differ.size} doubles differ, first {finite[differ[0]]!r}: "
        f"ap_fixed {headers[differ[0]]}, Plan.run {engine[differ[0]]}"
    )
    if t.signed and t.saturation is Saturation.SAT_SYM:
        assert headers[np.flatnonzero(finite == -8.0)[0]] == -511


class _OddStep(Step):
    """A step kind the generator has no C++ for (plans are open to new layer families)."""

    def __init__(self) -> None:
        self.name = "odd"
        self.inputs = ("__input__",)
        self.output = "odd_out"
        self.shape = (4,)
        self.out_type = FixedType(8, 3)
        self.out_interval = Interval(-128.0, 127.0)
        self.max_magnitude = 128.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return -x


def test_a_step_without_generator_is_refused_by_name() -> None:
    t = FixedType(8, 3)
    plan = Plan(
        t, (4,), [_OddStep()], "odd_out", np.float32, {}, (PlanInput("__input__", t, (4,)),)
    )
    with pytest.raises(
        CppUnsupportedError, match=r"step 'odd' \(_OddStep\) has no C\+\+ generator"
    ):
        generate_cpp(plan, "ns")
