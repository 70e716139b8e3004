"""LayerNormalization over the features of a sequence ``(steps, features)``.

hls4ml 1.3's Vivado/Vitis ``layernormalize`` (``nnet_layernorm.h``) computes, per time step
over the ``n`` features, in one accumulator type ``accum_t``: the sum and ``mean = sum * (1/n)``,
the differences ``x - mean``, their squares and ``var = sum(squares) * (1/n)``; then
``1/sqrt(var + epsilon)`` is *looked up* in a table of ``TableSize`` entries over
``var in [0, 2**-p)`` (``TableRangePower2 = p``, an unsigned number: the table never reaches
past 1), indexed by truncation, each entry ``1/sqrt(epsilon + lower bin edge)``; finally
``(x - mean) * table * gamma + beta`` is rounded into the result type.

hepfpga chooses (types derived from the input type ``x``):

* ``accum_t``: signed, ``2 * I_x + 1 + ceil(log2 n)`` integer bits (no sum or square
  overflows) and ``max(2 * (F_x + ceil(log2 n)), 12 + p + 2)`` fractional bits (the mean and
  the squares exact for power-of-two ``n``, the variance fine enough to address the table),
  rounding, saturating;
* ``p`` from the input type's range: the largest ``p`` with ``max|x|**2 <= 2**-p`` (the
  variance never exceeds ``max|x|**2``), so the table covers every variance the input type
  allows when ``max|x| <= 1``; for wider inputs ``p = 0`` and variances of 1 or more saturate
  at the last entry (hls4ml 1.3 allows no wider table): keep the normalised input within
  ``(-1, 1)`` for a close result;
* 4096 table entries of ``ap_ufixed<I + float_width, I>`` (``I`` the bits of
  ``1/sqrt(epsilon)``); gamma and beta with float32's 24 significant bits (QKeras models) or
  ``float_width`` bits covering them (float models);
* the result: profiled (float models); for QKeras models ``float_width`` bits covering
  ``2 * sqrt(n) * max|gamma| + max|beta|`` (a normalised value never exceeds ``sqrt(n - 1)``).

So the layer is **approximate** by design (the table's bins, relative error up to about
``2**-p / 4096 / (2 * var)``): ``hepfpga verify`` requires the logits of a QKeras model within
:data:`LAYERNORM_BOUND` and reports the measured difference. Refused, with the reason: inputs
other than ``(steps, features)``, an axis other than the last, ``center``/``scale`` off, an
epsilon that is no power of ten (hls4ml rounds its exponent) and backends other than
Vivado/Vitis.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.layers._base import (
    RND_SAT,
    BackendSupport,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    covering_type,
    int_bits,
    register,
    significant_type,
)
from hepfpga.quantize.fixed import FixedType

#: entries of the 1/sqrt table (hls4ml's default)
TABLE_SIZE = 4096
#: largest ``TableRangePower2`` hepfpga sets (variances down to 2**-24)
MAX_RANGE_POWER = 24
#: the logits bound (max |difference|) verification requires of a QKeras model with a
#: LayerNormalization instead of bit-exactness (the 1/sqrt table); measured on the test
#: models: see docs/firmware.md
LAYERNORM_BOUND = 0.5
#: significant bits of gamma/beta in QKeras models (float32's significand)
SIGNIFICANT_BITS = 24


def _checked(layer: Any) -> tuple[int, float]:
    """``(n_features, epsilon)`` of a LayerNormalization hls4ml 1.3 converts; refuses others."""
    name = layer.name
    config = layer.get_config()
    shape = layer.input_shape
    if len(shape) != 3:
        raise ConversionError(
            f"layer '{name}' (LayerNormalization): input of shape {shape}; hls4ml 1.3 "
            "normalises sequences (steps, features) only: Reshape a feature vector to "
            "(1, features) first"
        )
    axis = [int(a) % 3 for a in np.atleast_1d(config["axis"])]
    if axis != [2]:
        raise ConversionError(
            f"layer '{name}' (LayerNormalization) normalises over axis {list(axis)}; "
            "hls4ml 1.3 normalises over the last axis (the features) only"
        )
    if not config.get("center", True) or not config.get("scale", True):
        raise ConversionError(
            f"layer '{name}' (LayerNormalization) has center=False or scale=False; hls4ml 1.3 "
            "reads both gamma and beta: use center=True, scale=True (the defaults)"
        )
    epsilon = float(config["epsilon"])
    power = -math.log10(epsilon) if epsilon > 0 else 0.0
    if round(power) < 1 or abs(power - round(power)) > 1e-6:
        raise ConversionError(
            f"layer '{name}' (LayerNormalization) has epsilon={epsilon:g}; hls4ml 1.3 stores "
            "epsilon as a power of ten below 1 (it rounds the exponent): use epsilon=1e-3 "
            "(the default) or another power of ten"
        )
    return int(shape[-1]), epsilon


def range_power(x: FixedType) -> int:
    """``TableRangePower2``: the largest ``p`` with ``max|x|**2 <= 2**-p`` (at least 0)."""
    magnitude = max(abs(x.min_value), abs(x.max_value))
    if magnitude <= 0:
        return 0
    return min(max(math.floor(-2 * math.log2(magnitude)), 0), MAX_RANGE_POWER)


def _layernorm(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    name = layer.name
    n, epsilon = _checked(layer)
    (x,) = inputs
    log_n = math.ceil(math.log2(n)) if n > 1 else 0
    power = range_power(x)
    integer_x = x.integer + (0 if x.signed else 1)
    integer = max(2, integer_x + log_n, 2 * integer_x + 1 + log_n)
    fractional = max(2 * (x.fractional + log_n), 12 + power + 2)
    accum = FixedType(integer + fractional, integer, True, **RND_SAT)
    table_integer = int_bits(1 / math.sqrt(epsilon), signed=False)
    table = FixedType(table_integer + ctx.width, table_integer, False, **RND_SAT)
    gamma, beta = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    where = f"layer '{name}'"
    if ctx.quantized:
        scale = significant_type(gamma, SIGNIFICANT_BITS)
        bias = significant_type(beta, SIGNIFICANT_BITS)
        bound = 2 * math.sqrt(n) * float(np.max(np.abs(gamma))) + float(np.max(np.abs(beta)))
        result = covering_type([bound], ctx.width, where=where)
        source = "bound of a normalised value (table, approximate)"
    else:
        scale = covering_type(gamma, ctx.width, where=f"{where} gamma")
        bias = covering_type(beta, ctx.width, where=f"{where} beta")
        result = ctx.profiled(name)
        source = "profiled (table, approximate)"
    return LayerPrecision(
        name,
        "LayerNormalization",
        result,
        accum=accum,
        bias=bias,
        scale=scale,
        source=f"{source}; 1/sqrt table over variances in [0, 2**-{power})",
        profiled=ctx.profile(name),
        extra=(("table", table),),
    )


def _entries(
    layer: Any, types: LayerPrecision, inputs: list[FixedType]
) -> dict[str, dict[str, Any]]:
    (x,) = inputs
    return {layer.name: {"TableSize": TABLE_SIZE, "TableRangePower2": range_power(x)}}


def _multiplications(layer: Any) -> int:
    steps, n = int(layer.input_shape[1]), int(layer.input_shape[2])
    return steps * 3 * n  # squares, times the table value, times gamma


register(
    LayerHandler(
        family="normalization",
        classes=("LayerNormalization",),
        derive=_layernorm,
        exactness="exact mean and variance in a wide accumulator; 1/sqrt(variance + epsilon) "
        "from hls4ml's 4096-entry table over [0, 2**-p) (p from the input type's range; "
        "variances of 1 or more saturate): approximate, measured",
        emulation=Emulation(
            "C simulation (the 1/sqrt table is not in the engine)",
        ),
        qkeras=QKerasMapping(reason="no QAT counterpart yet"),
        exact=lambda layer: False,
        hls_entries=_entries,
        bound=LAYERNORM_BOUND,
        bound_reason="table-based 1/sqrt of the variance",
        multiplications=_multiplications,
        backends=BackendSupport(("Vitis", "Vivado")),
    )
)
