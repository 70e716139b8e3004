"""Activations: exact ones (linear, relu, QKeras quantizers), table-based ones (sigmoid, tanh,
softmax, elu, ...) and parametrised ones (LeakyReLU, PReLU, ThresholdedReLU).

* ``linear``/``relu`` (``Activation`` or ``ReLU()``): the input type; exact. hls4ml treats every
  ``ReLU`` layer as plain relu, so ``ReLU(max_value=..)``, ``threshold`` or ``negative_slope``
  are refused (use ``QActivation(quantized_relu(..))``, ``ThresholdedReLU`` or ``LeakyReLU``).
* ``QActivation``: the ``ap_fixed`` twin of its quantizer (rounding half to even and saturating
  like QKeras); exact. ``quantized_tanh`` is written as the ``quantized_bits(bits, 0)``
  conversion it equals, ``quantized_sigmoid`` as hls4ml's ``hard_sigmoid``, ``binary_tanh`` as
  hls4ml's sign, a leaky ``quantized_relu`` as hls4ml's ``LeakyReLU`` with the slope held
  exactly (bit-exact for inputs ``>= -2**integer``; see
  :func:`hepfpga.quantize.fixed.from_quantizer`).
* *Table based* (``sigmoid``, ``tanh``, ``softplus``, ``softsign``, ``elu``/``ELU``, ``selu``,
  ``hard_sigmoid``): hls4ml looks the value up in a table of 1024 entries addressed by the
  input's top bits, so the result approximates Keras; the measured difference is what
  ``hepfpga verify`` reports per layer, and the largest difference the table allows is
  derived from its size and types (:mod:`hepfpga.firmware.verify_bounds`). Results are
  ``ap_fixed<W, 2>`` for bounded ones (``W = float_width``) and wide enough for the input
  range otherwise; tables of 16 fractional bits (:func:`table_type`), written as the
  layer-level ``table_t`` hls4ml reads.
* ``softmax`` (``Activation`` or ``Softmax()``): see :mod:`hepfpga.firmware.hls_config`
  (``firmware.softmax``).
* ``LeakyReLU``/``PReLU``: ``alpha * x`` for negative inputs with ``alpha`` stored in hls4ml's
  parameter type: approximate (exact where ``alpha`` is a power of two).
  ``ThresholdedReLU``: a comparison with ``theta`` (exact when ``theta`` is on the input grid).
"""

from __future__ import annotations

import math
from typing import Any

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_engine.softmax import softmax_step
from hepfpga.firmware.emulate_engine.steps import (
    SignStep,
    activation_step,
    linear_step,
    relu_step,
)
from hepfpga.firmware.emulate_tables import (
    TABLE_KINDS,
    TABLE_STEPS,
    HardStep,
    SlopeStep,
    ThresholdStep,
    parametrised_step,
)
from hepfpga.firmware.layers._base import (
    RND_SAT,
    BackendSupport,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    Rewrite,
    register,
    significant_type,
)
from hepfpga.firmware.layers.tracers import trace_activation
from hepfpga.quantize.fixed import FixedType, from_quantizer

EXACT_ACTIVATIONS = ("linear", "relu")
#: bounded table activations: result in (-1, 1) or (0, 1)
BOUNDED_TABLE_ACTIVATIONS = (
    *(name for name, kind in TABLE_KINDS.items() if kind.bounded),
    "hard_sigmoid",
)
#: unbounded table activations: the result follows the input's range
UNBOUNDED_TABLE_ACTIVATIONS = tuple(name for name, kind in TABLE_KINDS.items() if not kind.bounded)
TABLE_ACTIVATIONS = (*BOUNDED_TABLE_ACTIVATIONS, *UNBOUNDED_TABLE_ACTIVATIONS, "softmax")
#: width of the lookup tables hepfpga sets for table activations
TABLE_WIDTH = 18


def activation_name(layer: Any) -> str:
    """The activation a layer computes: ``relu``, ``softmax``, ``quantized_relu``, ``elu``..."""
    kind = type(layer).__name__
    if kind in ("Softmax", "ReLU"):
        return kind.lower()
    if kind in ("ELU", "LeakyReLU", "PReLU", "ThresholdedReLU"):
        return kind
    activation = layer.get_config().get("activation")
    if isinstance(activation, dict):  # serialized quantizer
        return str(activation.get("class_name", activation))
    return str(activation).split("(")[0]


def is_softmax(layer: Any) -> bool:
    return activation_name(layer) == "softmax"


def is_table(layer: Any) -> bool:
    """Whether the firmware computes the layer from lookup tables (approximate by design)."""
    return type(layer).__name__ in ("Activation", "Softmax", "ELU") and (
        activation_name(layer).lower() in TABLE_ACTIVATIONS
    )


def table_integer_bits(kind: str) -> int:
    """Integer bits of the table of activation ``kind``: 2 (entries in (-2, 2): sigmoid, tanh,
    softsign, the negative halves of elu (times alpha later) and selu), 5 for softplus (up to
    8.0003 over the table's [-8, 8); 2 would saturate its entries at 2)."""
    return 5 if kind == "softplus" else 2


def table_type(layer: Any) -> FixedType | None:
    """The type of the lookup table of a table activation (None for other layers):
    ``TABLE_WIDTH - 2`` fractional bits, integer bits holding every entry."""
    name = activation_name(layer).lower()
    if not is_table(layer) or name == "softmax":
        return None
    signed = name != "sigmoid" and name != "hard_sigmoid"
    integer = table_integer_bits(name)
    return FixedType(TABLE_WIDTH + integer - 2, integer, signed=signed, **RND_SAT)


def _table_result(layer: Any, ctx: DeriveContext, x: FixedType) -> LayerPrecision:
    name = activation_name(layer).lower()
    kind = type(layer).__name__
    if not ctx.quantized:
        return LayerPrecision(
            layer.name,
            kind,
            ctx.profiled(layer.name),
            source="profiled, table (approximate)",
            profiled=ctx.profile(layer.name),
        )
    if name in BOUNDED_TABLE_ACTIVATIONS:
        result = FixedType(ctx.width, 2, True, **RND_SAT)
    else:
        integer = max(x.integer + 1, 3)
        result = FixedType(integer + ctx.width - 2, integer, True, **RND_SAT)
    return LayerPrecision(layer.name, kind, result, source="table (approximate)")


def _activation(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    kind = type(layer).__name__
    name = activation_name(layer)
    if kind == "ReLU":
        config = layer.get_config()
        odd = {
            key: float(config[key])
            for key, default in (("max_value", None), ("negative_slope", 0.0), ("threshold", 0.0))
            if config.get(key) not in (default, None if default is None else float(default))
        }
        if odd:
            raise ConversionError(
                f"layer '{layer.name}' (ReLU) has {odd}, which hls4ml ignores (it writes a plain "
                "relu); use QActivation(quantized_relu(bits, integer)) for a clipped relu, "
                "LeakyReLU for a slope or ThresholdedReLU for a threshold"
            )
    if name in EXACT_ACTIVATIONS:
        return LayerPrecision(layer.name, kind, x, source="input type (exact)")
    if name == "softmax":
        # the softmax layer's types are set by hls_config from firmware.softmax
        return LayerPrecision(layer.name, kind, ctx.options.softmax_result, source="softmax")
    if name.lower() in TABLE_ACTIVATIONS:
        return _table_result(layer, ctx, x)
    raise ConversionError(
        f"layer '{layer.name}': activation {name!r} is not supported; supported: "
        f"{', '.join(EXACT_ACTIVATIONS + TABLE_ACTIVATIONS)} and QActivation quantizers"
    )


def _softmax_as_activation(layer: Any) -> Any:
    """``Softmax()`` over the last axis as ``Activation('softmax')``: hls4ml 1.3 writes the
    C++ of a ``Softmax`` layer with a misspelt config name (``softmax_config`` for
    ``Softmax_config``), which does not compile."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    if type(layer).__name__ != "Softmax":
        return None
    axis = layer.get_config().get("axis", -1)
    if axis not in (-1, [-1], (-1,)) and axis != len(layer.input_shape) - 1:
        raise ConversionError(
            f"layer '{layer.name}' (Softmax) over axis {axis}; hls4ml computes the softmax "
            "over the last axis only"
        )
    return keras.layers.Activation("softmax", name=layer.name)


def _function_table(layer: Any) -> bool:
    """Whether ``layer`` is a sigmoid/tanh/softsign/softplus/elu/selu table (not softmax nor
    hard_sigmoid, which every backend computes as stated)."""
    return is_table(layer) and activation_name(layer).lower() in TABLE_KINDS


#: the table activations whose bound (verify_bounds.table_bound) is derived from the Vivado
#: templates' tables. hls4ml 1.3's Quartus writer fills tables of its own layout (sigmoid and
#: softsign over [0, 8), tanh over [0, 4), mirrored for x < 0; an input of exactly 8 (4)
#: reads one entry past the table's end), and its Catapult templates compute these functions
#: with ac_math's piecewise-linear approximations (USE_AC_MATH): neither has a derived bound
_VIVADO_TABLES = BackendSupport(
    ("Vitis", "Vivado"),
    "QKeras quantized_tanh / quantized_sigmoid (exact on every backend)",
    applies=_function_table,
    reason="hls4ml 1.3 computes it otherwise than the Vivado templates' 1024-entry tables "
    "its bound is derived from (Quartus: half-range tables mirrored for x < 0; Catapult: "
    "ac_math's piecewise-linear functions), so verify could not judge it",
)


register(
    LayerHandler(
        family="activation",
        classes=("Activation", "ReLU", "Softmax", "ELU"),
        derive=_activation,
        exactness="linear, relu: exact. sigmoid, tanh, softsign, hard_sigmoid, softplus, elu, "
        "selu: 1024-entry tables (approximate, measured). softmax: firmware.softmax",
        emulation=Emulation(
            "relu/linear conversion step; softmax tables (stable, latency, argmax); "
            "sigmoid/tanh/softplus/softsign/elu/selu tables and hard_sigmoid (emulate_tables)",
            steps={
                "Activation": activation_step,
                "ReLU": activation_step,
                "Softmax": softmax_step,
                "ELU": parametrised_step,
                "HardActivation": HardStep,
            },
            activations={"relu": relu_step, "linear": linear_step, **TABLE_STEPS},
            parametrised={"elu": TABLE_STEPS["elu"]},
        ),
        qkeras=QKerasMapping(
            ("Activation",),
            "ReLU, Softmax and ELU layers have no QAT counterpart yet (Activation has, for "
            "relu, softmax and linear)",
        ),
        rtl={"Activation": trace_activation},
        exact=lambda layer: not is_table(layer),
        rewrite=Rewrite(_softmax_as_activation),
        backends=_VIVADO_TABLES,
    )
)


def _quantizer(layer: Any) -> Any:
    # deferred: TensorFlow loads slowly
    from qkeras.quantizers import get_quantizer

    return get_quantizer(layer.get_config()["activation"])


def _slope(layer: Any) -> float:
    """The negative slope of a leaky ``quantized_relu`` (0: none)."""
    try:
        quantizer = _quantizer(layer)
    except Exception:  # QKeras raises bare ValueError/KeyError; derive names the problem
        return 0.0
    return float(getattr(quantizer, "negative_slope", 0.0) or 0.0)


def _qactivation(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    quantizer = layer.get_config()["activation"]
    try:
        result = from_quantizer(quantizer)
    except ConversionError as exc:
        raise ConversionError(f"layer '{layer.name}' (QActivation): {exc}") from exc
    slope = _slope(layer)
    if slope:
        # hls4ml's LeakyReLU multiplies by its param_t: hold the slope exactly (float32's 24
        # significant bits, what QKeras multiplies with)
        param = significant_type([slope], 24)
        return LayerPrecision(
            layer.name,
            type(layer).__name__,
            result,
            source="quantizer (leaky: slope * x for x < 0)",
            extra=(("param", param),),
        )
    return LayerPrecision(layer.name, type(layer).__name__, result, source="quantizer")


def _qactivation_exact(layer: Any) -> bool:
    """Bit-exact unless binary_tanh (hls4ml maps 0 to +1, QKeras to -1) or a leaky relu whose
    slope is no power of two (QKeras rounds ``a * x`` to float32 first)."""
    try:
        name = type(_quantizer(layer)).__name__
    except Exception:  # QKeras raises bare ValueError/KeyError; derive names the problem
        return True
    if name == "function":
        name = getattr(_quantizer(layer), "__name__", "")
    slope = _slope(layer)
    return name != "binary_tanh" and (slope == 0 or math.log2(abs(slope)).is_integer())


def _tanh_as_bits(layer: Any) -> Any:
    """``QActivation(quantized_tanh(bits, symmetric))`` as the same conversion written
    ``QActivation(quantized_bits(bits, 0, symmetric, alpha=1))`` (QKeras' hard tanh rounded
    and clipped is exactly that type's conversion, see
    :func:`hepfpga.quantize.fixed.from_quantizer`): hls4ml then writes a plain conversion,
    which the emulator and the RTL trace reproduce."""
    if type(layer).__name__ != "QActivation":
        return None
    quantizer = _quantizer(layer)
    if type(quantizer).__name__ != "quantized_tanh" or quantizer.use_real_tanh:
        return None
    # deferred: TensorFlow loads slowly
    from qkeras import QActivation, quantized_bits

    bits = quantized_bits(int(quantizer.bits), 0, symmetric=int(quantizer.symmetric), alpha=1)
    return QActivation(bits, name=layer.name)


register(
    LayerHandler(
        family="quantized activation",
        classes=("QActivation",),
        derive=_qactivation,
        exactness="the ap_fixed twin of the quantizer (rounds half to even, saturates): exact. "
        "quantized_tanh: the same conversion as quantized_bits(bits, 0): exact. "
        "quantized_sigmoid: hls4ml's hard_sigmoid (0.5 x + 0.5, exact) into "
        "ap_ufixed<bits,0,AP_RND_CONV,AP_SAT>: exact. binary_tanh: hls4ml's x >= 0 ? 1 : -1, "
        "exact except at x == 0 (QKeras: -1, hls4ml: +1). "
        "Leaky quantized_relu(bits, integer, negative_slope=a): hls4ml's LeakyReLU (a held "
        "exactly) into ap_fixed<bits,integer+1,AP_RND_CONV,AP_SAT>: exact for inputs >= "
        "-2**integer with a power-of-two slope (QKeras clips the negative side at "
        "-a * 2**integer)",
        emulation=Emulation(
            "conversion step; hard_sigmoid step (quantized_sigmoid), sign step (binary_tanh), "
            "slope step (leaky quantized_relu)",
            activations={"binary_tanh": SignStep},
            parametrised={"leaky_relu": SlopeStep},
        ),
        qkeras=QKerasMapping(reason="a QKeras layer itself (QAT makes it of Activation('relu'))"),
        rtl={"QActivation": trace_activation},
        exact=_qactivation_exact,
        rewrite=Rewrite(_tanh_as_bits),
    )
)


def _parametrised(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    kind = type(layer).__name__
    if kind == "PReLU" and layer.get_config().get("shared_axes") is not None:
        raise ConversionError(
            f"layer '{layer.name}' (PReLU) shares alpha over axes "
            f"{list(layer.get_config()['shared_axes'])}; hls4ml supports PReLU with "
            "shared_axes=None only"
        )
    if kind == "ThresholdedReLU":
        return LayerPrecision(layer.name, kind, x, source="input type (comparison)")
    if not ctx.quantized:
        return LayerPrecision(
            layer.name,
            kind,
            ctx.profiled(layer.name),
            source="profiled",
            profiled=ctx.profile(layer.name),
        )
    # alpha * x for x < 0: keep the input's integer bits, 8 more fractional bits
    result = FixedType(x.width + 8, x.integer + (0 if x.signed else 1), True, **RND_SAT)
    return LayerPrecision(layer.name, kind, result, source="alpha * x (approximate)")


register(
    LayerHandler(
        family="parametrised activation",
        classes=("LeakyReLU", "PReLU", "ThresholdedReLU"),
        derive=_parametrised,
        exactness="LeakyReLU, PReLU: alpha in hls4ml's parameter type, 8 more fractional bits "
        "(approximate, measured). ThresholdedReLU: comparison with theta (input type)",
        emulation=Emulation(
            "LeakyReLU/PReLU slope step, ThresholdedReLU comparison step (emulate_tables)",
            steps={
                "ParametrizedActivation": parametrised_step,
                "LeakyReLU": parametrised_step,
                "ThresholdedReLU": parametrised_step,
                "PReLU": SlopeStep,
            },
            parametrised={"leakyrelu": SlopeStep, "thresholdedrelu": ThresholdStep},
        ),
        qkeras=QKerasMapping(reason="no QAT counterpart yet"),
        exact=lambda layer: False,
    )
)
