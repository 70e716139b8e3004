"""FixedType: ap_fixed semantics, text form, and exact agreement with QKeras quantizers."""

from __future__ import annotations

import numpy as np
import pytest

from hepfpga.errors import ConfigError, ConversionError, DataError
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation, from_quantizer


def _probe_values(fixed: FixedType, seed: int = 0) -> np.ndarray:
    """Grid points, exact ties between them, random values and far out-of-range values."""
    rng = np.random.default_rng(seed)
    lsb = fixed.lsb
    span = fixed.max_value - fixed.min_value
    # QKeras returns x + (xq - x) in float32 (straight-through estimator), which is xq only
    # while |x| * 2**fractional < 2**24; see test_qkeras_is_inexact_for_huge_inputs
    far = min(1e6, 2.0 ** (22 - fixed.fractional))
    codes = np.arange(-(2**fixed.width) - 4, 2**fixed.width + 4, dtype=np.float64)
    if fixed.width > 10:  # keep the probe small for wide types: sample the codes
        codes = rng.integers(-(2**fixed.width), 2**fixed.width, size=3000).astype(np.float64)
    base = fixed.min_value + codes * lsb
    values = np.concatenate(
        [
            base,
            base + 0.5 * lsb,  # ties
            base + 0.25 * lsb,
            base + 0.75 * lsb,
            rng.uniform(fixed.min_value - span, fixed.max_value + span, size=4000),
            rng.normal(scale=3.0, size=2000),
            [0.0, -0.0, far, -far, fixed.max_value + lsb / 2, fixed.min_value - lsb / 2],
        ]
    )
    # the reference runs in float32: probe only values float32 holds exactly
    return values.astype(np.float32)


def _qkeras(quantizer, values: np.ndarray) -> np.ndarray:
    return np.asarray(quantizer(values.astype(np.float32)), dtype=np.float64)


QUANTIZERS = [
    ("quantized_bits(6, 0, alpha=1)", "ap_fixed<6,1,AP_RND_CONV,AP_SAT>"),
    ("quantized_bits(16, 5, alpha=1)", "ap_fixed<16,6,AP_RND_CONV,AP_SAT>"),
    ("quantized_bits(4, 0, alpha=1)", "ap_fixed<4,1,AP_RND_CONV,AP_SAT>"),
    ("quantized_bits(8, 3, alpha=1)", "ap_fixed<8,4,AP_RND_CONV,AP_SAT>"),
    ("quantized_bits(8, 0)", "ap_fixed<8,1,AP_RND_CONV,AP_SAT>"),
    ("quantized_bits(5, 7, alpha=1)", "ap_fixed<5,8,AP_RND_CONV,AP_SAT>"),
    ("quantized_bits(6, 0, symmetric=1, alpha=1)", "ap_fixed<6,1,AP_RND_CONV,AP_SAT_SYM>"),
    ("quantized_bits(6, 2, keep_negative=False, alpha=1)", "ap_ufixed<6,2,AP_RND_CONV,AP_SAT>"),
    ("quantized_relu(6)", "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>"),
    ("quantized_relu(4)", "ap_ufixed<4,0,AP_RND_CONV,AP_SAT>"),
    ("quantized_relu(8, 3)", "ap_ufixed<8,3,AP_RND_CONV,AP_SAT>"),
    ("quantized_relu(3, 1)", "ap_ufixed<3,1,AP_RND_CONV,AP_SAT>"),
]


@pytest.mark.parametrize(("text", "expected"), QUANTIZERS)
def test_quantize_matches_qkeras_exactly(text: str, expected: str) -> None:
    from qkeras.quantizers import get_quantizer

    quantizer = get_quantizer(text)
    fixed = from_quantizer(quantizer)
    assert fixed.to_hls() == expected
    values = _probe_values(fixed)
    reference = _qkeras(quantizer, values)
    ours = fixed.quantize(values.astype(np.float64))
    mismatch = np.flatnonzero(ours != reference)
    assert mismatch.size == 0, (
        f"{mismatch.size} mismatches, e.g. x={values[mismatch[:5]]} "
        f"qkeras={reference[mismatch[:5]]} ours={ours[mismatch[:5]]}"
    )
    assert fixed.can_represent(reference)


_HLS4ML_DIFFERS = {
    "quantized_bits(5, 7, alpha=1)": "hls4ml widens integer-only types to ap_int<integer+1>",
    "quantized_bits(6, 0, symmetric=1, alpha=1)": (
        "hls4ml ignores symmetric (AP_SAT, not AP_SAT_SYM)"
    ),
    "quantized_bits(6, 2, keep_negative=False, alpha=1)": (
        "hls4ml ignores keep_negative=False and drops a fractional bit (ap_fixed<6,3>)"
    ),
}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(text, marks=pytest.mark.xfail(strict=True, reason=_HLS4ML_DIFFERS[text]))
        if text in _HLS4ML_DIFFERS
        else text
        for text, _ in QUANTIZERS
    ],
)
def test_mapping_agrees_with_hls4ml(text: str) -> None:
    """hls4ml's own quantizer -> type mapping (which it uses for activations) gives our type.

    Where it does not (xfail), build_hls_config sets the type from from_quantizer explicitly.
    """
    from hls4ml.utils.config import _get_precision_from_quantizer
    from qkeras.quantizers import get_quantizer

    quantizer = get_quantizer(text)
    config = {"class_name": type(quantizer).__name__, "config": quantizer.get_config()}
    hls_type = FixedType.parse(str(_get_precision_from_quantizer(config)))
    assert hls_type == from_quantizer(quantizer)


def test_qkeras_is_inexact_for_huge_inputs() -> None:
    """Documents a QKeras limit: its float32 straight-through form x + (xq - x) loses xq.

    ap_fixed (and FixedType.quantize) saturate 1e6 to 31/32; QKeras returns 1.0, a value that is
    not even on the quantization grid. Inputs that large are outside what bit-exactness covers.
    """
    from qkeras import quantized_bits

    quantizer = quantized_bits(6, 0, alpha=1)
    fixed = from_quantizer(quantizer)
    x = np.array([1e6], dtype=np.float32)
    assert fixed.quantize(x).tolist() == [31 / 32]
    assert _qkeras(quantizer, x).tolist() == [1.0]


def test_from_quantizer_accepts_config_dicts_and_strings() -> None:
    from qkeras import quantized_bits

    q = quantized_bits(6, 0, alpha=1)
    config = {"class_name": "quantized_bits", "config": q.get_config()}
    assert (
        from_quantizer(config) == from_quantizer(q) == from_quantizer("quantized_bits(6,0,alpha=1)")
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("binary()", "ap_fixed<2,2>"),
        ("binary(use_01=True)", "ap_ufixed<1,1>"),
        ("ternary()", "ap_fixed<2,2>"),
    ],
)
def test_binary_and_ternary_map_to_storage_types(text: str, expected: str) -> None:
    from qkeras.quantizers import get_quantizer

    quantizer = get_quantizer(text)
    fixed = from_quantizer(quantizer)
    assert fixed.to_hls() == expected
    outputs = _qkeras(quantizer, np.linspace(-3, 3, 101, dtype=np.float32))
    assert fixed.can_represent(outputs)


#: activation quantizers whose outputs are the conversion of QKeras' hard function (tanh:
#: of x itself; sigmoid: of 0.5 x + 0.5, hls4ml's hard_sigmoid), checked value by value
HARD_ACTIVATIONS = [
    ("quantized_tanh(6)", "ap_fixed<6,1,AP_RND_CONV,AP_SAT>", 1.0, 0.0),
    ("quantized_tanh(5, symmetric=True)", "ap_fixed<5,1,AP_RND_CONV,AP_SAT_SYM>", 1.0, 0.0),
    ("quantized_sigmoid(6)", "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>", 0.5, 0.5),
    ("quantized_relu(8, 3, negative_slope=0.5)", "ap_fixed<8,4,AP_RND_CONV,AP_SAT>", 1.0, 0.0),
]


@pytest.mark.parametrize(("text", "expected", "slope", "shift"), HARD_ACTIVATIONS)
def test_hard_activations_are_their_types_conversion(
    text: str, expected: str, slope: float, shift: float
) -> None:
    from qkeras.quantizers import get_quantizer

    quantizer = get_quantizer(text)
    fixed = from_quantizer(quantizer)
    assert fixed.to_hls() == expected
    # grid points, ties and values beyond the range (a leaky relu: inputs >= -2**integer)
    low = -8.0 if "negative_slope" in text else -4.0
    x = np.concatenate(
        [np.arange(low, 4.0, fixed.lsb / 4), np.random.default_rng(0).uniform(low, 4.0, 3000)]
    ).astype(np.float32)
    reference = _qkeras(quantizer, x)
    if "negative_slope" in text:
        ours = np.where(x >= 0, fixed.quantize(x.astype(np.float64)), fixed.quantize(0.5 * x))
    else:
        ours = fixed.quantize(slope * x.astype(np.float64) + shift)
    assert np.array_equal(ours, reference)


def test_binary_tanh_is_a_sign_with_minus_one_at_zero() -> None:
    from qkeras.quantizers import get_quantizer

    quantizer = get_quantizer("binary_tanh")
    assert from_quantizer(quantizer).to_hls() == "ap_fixed<2,2>"
    x = np.array([-2.0, -1e-6, 0.0, 1e-6, 3.0], dtype=np.float32)
    assert _qkeras(quantizer, x).tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("quantized_bits(6, 0, alpha='auto')", "alpha"),
        ("quantized_bits(6, 0, alpha='auto_po2')", "alpha"),
        ("quantized_bits(6, 0, alpha=0.5)", "alpha"),
        ("quantized_bits(6, 0, use_stochastic_rounding=True)", "stochastic"),
        ("quantized_bits(1, 0)", "sign"),
        ("quantized_relu(6, 0, use_sigmoid=1)", "sigmoid"),
        ("quantized_relu(6, 0, negative_slope=0.25, use_sigmoid=1)", "sigmoid"),
        ("quantized_tanh(6, use_real_tanh=True)", "use_real_tanh=True computes a real tanh"),
        ("quantized_sigmoid(6, symmetric=True)", "symmetric quantized_sigmoid"),
        ("quantized_po2(4)", "powers of two .* as a QDense/QConv kernel or bias quantizer"),
        ("quantized_relu_po2(4)", "powers of two"),
        ("binary(alpha='auto')", "alpha"),
    ],
)
def test_unsupported_quantizers_are_refused(text: str, reason: str) -> None:
    from qkeras.quantizers import get_quantizer

    with pytest.raises(ConversionError, match=reason):
        from_quantizer(get_quantizer(text))


# value per rounding mode at lsb 1 (ap_fixed<8,8>)
ROUNDING_TABLE = {
    "x": [-2.5, -1.5, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1.5, 2.5],
    Rounding.TRN: [-3, -2, -1, -1, -1, 0, 0, 0, 1, 2],
    Rounding.TRN_ZERO: [-2, -1, 0, 0, 0, 0, 0, 0, 1, 2],
    Rounding.RND: [-2, -1, -1, 0, 0, 0, 1, 1, 2, 3],
    Rounding.RND_ZERO: [-2, -1, -1, 0, 0, 0, 0, 1, 1, 2],
    Rounding.RND_MIN_INF: [-3, -2, -1, -1, 0, 0, 0, 1, 1, 2],
    Rounding.RND_INF: [-3, -2, -1, -1, 0, 0, 1, 1, 2, 3],
    Rounding.RND_CONV: [-2, -2, -1, 0, 0, 0, 0, 1, 2, 2],
}


@pytest.mark.parametrize("mode", list(Rounding))
@pytest.mark.parametrize(("integer", "scale"), [(8, 1.0), (6, 0.25), (-2, 2.0**-10)])
def test_rounding_modes(mode: Rounding, integer: int, scale: float) -> None:
    fixed = FixedType(8, integer, rounding=mode, saturation=Saturation.SAT)
    assert fixed.lsb == scale
    x = np.array(ROUNDING_TABLE["x"]) * scale
    assert (fixed.quantize(x) / scale).tolist() == ROUNDING_TABLE[mode]


@pytest.mark.parametrize(
    ("fixed", "x", "expected"),
    [
        (FixedType(4, 4), [7, 8, 9, -8, -9, 23], [7, -8, -7, -8, 7, 7]),
        (FixedType(4, 4, signed=False), [15, 16, -1, 33], [15, 0, 15, 1]),
        (FixedType(4, 4, saturation=Saturation.SAT), [8, -9, 100], [7, -8, 7]),
        (FixedType(4, 4, saturation=Saturation.SAT_SYM), [8, -8, -100], [7, -7, -7]),
        (FixedType(4, 4, saturation=Saturation.SAT_ZERO), [8, -9, 7, -8], [0, 0, 7, -8]),
        (FixedType(4, 4, False, Rounding.RND, Saturation.SAT), [-3, 15.4, 15.6], [0, 15, 15]),
        (
            FixedType(6, 1, True, Rounding.RND_CONV, Saturation.SAT),
            [0.984375, 0.99, 5.0],
            [0.96875, 0.96875, 0.96875],
        ),
        (FixedType(6, 1, True, Rounding.RND_CONV, Saturation.WRAP), [0.99], [-1.0]),
    ],
)
def test_overflow_modes(fixed: FixedType, x: list[float], expected: list[float]) -> None:
    assert fixed.quantize(np.array(x, dtype=np.float64)).tolist() == expected


def test_properties() -> None:
    fixed = FixedType(6, 1)
    assert (fixed.lsb, fixed.min_value, fixed.max_value, fixed.fractional) == (
        1 / 32,
        -1.0,
        1 - 1 / 32,
        5,
    )
    unsigned = FixedType(6, 0, signed=False)
    assert (unsigned.lsb, unsigned.min_value, unsigned.max_value) == (1 / 64, 0.0, 1 - 1 / 64)
    wide = FixedType(4, 7)  # I > W: lsb 8
    assert wide.lsb == 8.0 and wide.max_value == 56.0 and wide.min_value == -64.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ap_fixed<16,6>", FixedType(16, 6)),
        (
            "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
            FixedType(6, 1, True, Rounding.RND_CONV, Saturation.SAT),
        ),
        (
            "ap_ufixed<6,0,AP_RND,AP_SAT_SYM>",
            FixedType(6, 0, False, Rounding.RND, Saturation.SAT_SYM),
        ),
        ("fixed<16,6,RND_CONV,SAT,0>", FixedType(16, 6, True, Rounding.RND_CONV, Saturation.SAT)),
        ("ufixed<8, 3>", FixedType(8, 3, signed=False)),
        ("ap_int<8>", FixedType(8, 8)),
        ("uint<3>", FixedType(3, 3, signed=False)),
        (" ap_fixed<4,-2> ", FixedType(4, -2)),
    ],
)
def test_parse(text: str, expected: FixedType) -> None:
    assert FixedType.parse(text) == expected
    assert FixedType.parse(expected.to_hls()) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ap_fixed<16>",
        "ap_float<8,4>",
        "ap_fixed<a,b>",
        "ap_fixed<6,1,AP_RND_X>",
        "ap_fixed<6,1,AP_RND,AP_SAT,2>",
    ],
)
def test_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(ConfigError):
        FixedType.parse(text)


def test_to_hls_writes_modes_only_when_not_default() -> None:
    assert FixedType(16, 6).to_hls() == "ap_fixed<16,6>"
    assert (
        FixedType(6, 0, False, saturation=Saturation.SAT).to_hls() == "ap_ufixed<6,0,AP_TRN,AP_SAT>"
    )


def test_invalid_construction_and_values() -> None:
    with pytest.raises(ConfigError, match="width"):
        FixedType(0, 0)
    with pytest.raises(DataError):
        FixedType(8, 3).quantize(np.array([np.nan]))
