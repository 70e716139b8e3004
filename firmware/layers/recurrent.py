"""Recurrent layers: LSTM and GRU (float) and QLSTM and QGRU (QKeras), approximate, measured.

hls4ml 1.3 computes the gates with its own sigmoid/tanh tables and keeps the cell state in
the layer's result type; its templates (``nnet_recurrent.h``: the non-static ``lstm``/``gru``
are compiled beside the static ones and feed the state through the input's dense template)
need input, state, result and accumulator in ONE type, so hepfpga gives the layer its
input's type: the state's precision is the input's (the output lies in (-1, 1)). What makes
the firmware differ from QKeras's float recurrence, measured on the trained jet LSTM of
``examples/jet_lstm.yaml`` (numpy model of the templates, checked against the C simulation):

* every product ``x * w`` and ``h * u`` is rounded to the accumulator, every gate to it, the
  state and output to the result type: the input type's lsb sets the size of every step's
  error, and a trained recurrence amplifies it over the time steps;
* the tables: hls4ml addresses the sigmoid over [-8, 8) and the tanh over [-4, 4) by
  truncating ``x * N / 16`` (``x * N / 8``) toward zero and holds ``f`` at each bin's left
  edge; its default table type ``ap_fixed<18,8>`` *truncates* the entries to 10 fractional
  bits, which biases every gate low (a forget gate below its value drains the state).

hepfpga therefore sizes the tables to the input (= state) type (:func:`table_settings`:
``N = 16 * 2**F`` entries for ``F`` fractional bits, so every sigmoid input has an entry of
its own and the lookup is exact at the input, within 1024..65536) and holds them in
:data:`TABLE_TYPE` (16 fractional bits, rounded). The input's fractional bits are the
user's knob: 8 (``quantized_bits(12, 3)``) give 4096 entries and put the trained jet LSTM's
logits 1.8 off QKeras (argmax agreement 88%); 12 (``quantized_bits(16, 3)``, the example's
choice) give 65536 entries and 0.11 (99.3%), same weights. Larger tables cost FPGA memory
(each table is ``N`` x 18 bits, replicated per parallel lookup in io_parallel). ``hepfpga
verify`` measures the difference (max |difference| and argmax agreement).

Weights: float layers get ``float_width``-bit types covering their values. QLSTM/QGRU are
converted as the float LSTM/GRU holding the QKeras-quantized weights (hls4ml 1.3 reads the
stored float weights and ignores the quantizers, so hepfpga writes the quantized values
itself); their weight types are the exact grid of those values (``ap_fixed<I+F, I>`` with
``F`` the finest fractional bit used), so the firmware stores exactly what QKeras multiplies
with. A ``state_quantizer`` (QKeras rounds the state every step) is accepted when its type is
the firmware's state type, the layer's input type (then both round the state the same way;
measured, this does not bring the two closer: the products and gates dominate); any other is
refused naming both types (hls4ml 1.3 maps it to the accumulator, which its templates need
equal to the result type, and a different one breaks the g++ build in ``nnet_recurrent.h``).
Refused, with the reason: activations other than ``tanh`` / ``sigmoid`` (the Vivado/Vitis recurrent
templates reject ``quantized_tanh`` and ``hard_sigmoid``; QKeras's default
``recurrent_activation='hard_sigmoid'`` included), a QGRU with ``reset_after=False``
(QKeras's default; hls4ml implements ``reset_after=True``). SimpleRNN has no Vivado/Vitis
implementation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_recurrent import recurrent_step
from hepfpga.firmware.layers._base import (
    RND_SAT,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    Rewrite,
    covering_type,
    register,
)
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation, from_quantizer

#: the activations hls4ml 1.3's Vivado/Vitis recurrent templates compute (as tables)
_ACTIVATIONS = {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)}
#: the logits bound (max |difference|) verification requires of a QKeras model with a
#: recurrent layer instead of bit-exactness: a loose bound, because the rounding errors
#: compound over the time steps and trained recurrences amplify them. Measured (see
#: docs/firmware.md): about 0.01 on the small random test models (8 steps, 8 units); on the
#: trained jet LSTM of examples/jet_lstm.yaml (20 steps, 16 units) 0.14 with its 16-bit
#: input (argmax agreement 99.35%) and 2.06 with a 12-bit one and hls4ml's default tables
#: (88%). The report always gives the measured max |difference| and argmax agreement.
QKERAS_BOUND = 1.0
#: the gates' table type: 16 fractional bits, rounded (hls4ml's default ``ap_fixed<18,8>``
#: truncates the entries to 10 fractional bits, a bias of up to 2**-10 on every gate)
TABLE_TYPE = FixedType(18, 2, True, Rounding.RND_CONV, Saturation.SAT)
#: the bounds of :func:`table_size`: hls4ml's default, and 2**16 entries (a table of 1.2
#: Mbit; an input finer than 12 fractional bits is then addressed by truncation, at most
#: one bin of 2**-12 off)
MIN_TABLE_SIZE = 1024
MAX_TABLE_SIZE = 65536
#: the table size for an input with 8 fractional bits (``ap_fixed<12,4>``), for handlers
#: that do not size their tables with :func:`table_settings`
TABLE_SIZE = 4096


def table_size(state: FixedType) -> int:
    """Entries of the gates' sigmoid/tanh tables for a layer computing in ``state``.

    hls4ml indexes the sigmoid table by ``int(x * N / 16) + N / 2`` (inputs in [-8, 8)) and
    the tanh table by ``int(x * N / 8) + N / 2`` ([-4, 4)), truncating toward zero. With
    ``N = 16 * 2**F`` (``F``: the state's fractional bits) both products are integers, so the
    entry is the function at ``x`` itself; clamped to
    [:data:`MIN_TABLE_SIZE`, :data:`MAX_TABLE_SIZE`].
    """
    wanted = 16 * 2 ** max(state.fractional, 0)
    return int(min(max(wanted, MIN_TABLE_SIZE), MAX_TABLE_SIZE))


def recurrent_source(quantized: bool) -> str:
    """Where a recurrent layer's types come from, as the precision report states it."""
    if quantized:
        return "input type (recurrent, approximate; weights on their quantized grid)"
    return "input type (recurrent, approximate)"


def table_settings(state: FixedType) -> tuple[tuple[str, Any], ...]:
    """The layer-level hls4ml keys of a recurrent layer computing in ``state``: its tables'
    size (:func:`table_size`) and type (:data:`TABLE_TYPE`)."""
    return (("TableSize", table_size(state)), ("table_t", TABLE_TYPE.to_hls()))


#: finest fractional bit searched for the exact grid of quantized weights
_MAX_FRACTIONAL = 24


def _activation_name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("class_name"))
    return str(value)


def _check_forward(layer: Any) -> None:
    """Refuse what hls4ml 1.3's recurrent layers do not implement."""
    kind = type(layer).__name__
    name = layer.name
    config = layer.get_config()
    if config.get("return_state") or config.get("go_backwards") or config.get("stateful"):
        raise ConversionError(
            f"layer '{name}' ({kind}) uses return_state/go_backwards/stateful, which hls4ml "
            "1.3 does not convert; use a plain forward layer"
        )
    if kind.endswith("GRU") and not config.get("reset_after", True):
        raise ConversionError(
            f"layer '{name}' ({kind}) has reset_after=False; hls4ml 1.3's Vitis/Vivado GRU "
            "implements reset_after=True (the Keras default) only"
        )


def _check_qkeras(layer: Any, *, state_allowed: bool = False) -> None:
    """Refuse QLSTM/QGRU settings the pinned hls4ml cannot reproduce (specific reasons);
    ``state_allowed``: a ``state_quantizer`` is checked later, against the state type (a
    layer of its own; inside a wrapper it is refused here)."""
    kind = type(layer).__name__
    name = layer.name
    config = layer.get_config()
    _check_forward(layer)
    if config.get("state_quantizer") is not None and not state_allowed:
        raise ConversionError(
            f"layer '{name}' ({kind}) has state_quantizer "
            f"{_activation_name(config['state_quantizer'])}; hepfpga converts QLSTM/QGRU with "
            "state_quantizer=None only inside Bidirectional (a QLSTM/QGRU of its own takes a "
            "state_quantizer of its input's type, the firmware's state type)"
        )
    for key, accepted in _ACTIVATIONS.items():
        value = _activation_name(config.get(key))
        if value not in accepted:
            raise ConversionError(
                f"layer '{name}' ({kind}) has {key}='{value}'; hls4ml 1.3's Vivado/Vitis "
                f"recurrent templates compute {key}='{accepted[0]}' only (they reject "
                "quantized_tanh / hard_sigmoid): use "
                f"{key}='{accepted[0]}' (a lookup table in firmware)"
            )
    for key in ("kernel_quantizer", "recurrent_quantizer", "bias_quantizer"):
        if config.get(key) is None:
            raise ConversionError(
                f"layer '{name}' ({kind}) has no {key}; hepfpga converts QLSTM/QGRU whose "
                "kernel, recurrent kernel and bias are all quantized (use quantized_bits)"
            )


def _quantized_weights(layer: Any) -> list[np.ndarray]:
    """The weights QKeras multiplies with: kernel, recurrent kernel and bias, quantized."""
    cell = layer.cell
    kernel, recurrent, bias = layer.get_weights()
    quantizers = (
        cell.kernel_quantizer_internal,
        cell.recurrent_quantizer_internal,
        cell.bias_quantizer_internal,
    )
    return [
        np.asarray(q(w), dtype=np.float32)
        for q, w in zip(quantizers, (kernel, recurrent, bias), strict=True)
    ]


def _float_twin(layer: Any, *, state_allowed: bool = False) -> Any:
    """QLSTM/QGRU -> the Keras LSTM/GRU of the same name and settings (weights: see
    :func:`_quantized_weights`); a QLSTM with float activations and no state quantizer
    computes exactly this."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    _check_qkeras(layer, state_allowed=state_allowed)
    config = layer.get_config()
    kind = type(layer).__name__[1:]
    extra = {"reset_after": config["reset_after"]} if kind == "GRU" else {}
    twin = getattr(keras.layers, kind)(
        config["units"],
        activation=_activation_name(config["activation"]),
        recurrent_activation=_activation_name(config["recurrent_activation"]),
        use_bias=config["use_bias"],
        return_sequences=config["return_sequences"],
        return_state=config["return_state"],
        go_backwards=config["go_backwards"],
        stateful=config["stateful"],
        name=layer.name,
        **extra,
    )
    state = config.get("state_quantizer")
    if state is not None:
        # checked against the layer's state type (its input's) when the types are derived
        twin._hepfpga_state_quantizer = (str(_activation_name(state)), from_quantizer(state))
    return twin


def _check_state_quantizer(layer: Any, state: FixedType) -> str:
    """The words on a QLSTM/QGRU ``state_quantizer`` ('' without one), or the refusal when the
    firmware cannot hold the state in its type."""
    given = getattr(layer, "_hepfpga_state_quantizer", None)
    if given is None:
        return ""
    text, fixed = given
    same = (fixed.width, fixed.integer, fixed.signed) == (state.width, state.integer, state.signed)
    if not same or fixed.rounding != state.rounding or fixed.saturation != state.saturation:
        raise ConversionError(
            f"layer '{layer.name}' (Q{type(layer).__name__}): state_quantizer {text} is "
            f"{fixed.to_hls()}, but hls4ml 1.3's recurrent templates hold the state in the "
            f"layer's one type, its input's {state.to_hls()} (a state type of its own breaks "
            "the g++ build in nnet_recurrent.h); give the state_quantizer that type, or "
            "state_quantizer=None"
        )
    return f"; state_quantizer {text} = the state type"


def grid_type(values: Any) -> FixedType | None:
    """The narrowest signed ``ap_fixed`` holding every value of ``values`` exactly, or None
    when they are not on a grid of at most :data:`_MAX_FRACTIONAL` fractional bits."""
    array = np.asarray(values, dtype=np.float64).ravel()
    magnitude = float(np.max(np.abs(array))) if array.size else 0.0
    for fractional in range(_MAX_FRACTIONAL + 1):
        scaled = array * 2.0**fractional
        if np.all(scaled == np.round(scaled)):
            break
    else:
        return None
    # signed, |values| < 2**(integer - 1): every value and its grid fit
    integer = math.floor(math.log2(magnitude)) + 2 if magnitude > 0 else 1
    fractional = max(fractional, 2 - integer)  # at least two bits in all
    return FixedType(integer + fractional, integer, True, **RND_SAT)


def _weight_type(values: Any, ctx: DeriveContext, where: str) -> FixedType:
    if ctx.quantized:
        exact = grid_type(values)
        if exact is not None:
            return exact
    return covering_type(values, ctx.width, where=where)


def _recurrent(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    kind = type(layer).__name__
    name = layer.name
    _check_forward(layer)
    kernel, recurrent, bias = layer.get_weights()
    # hls4ml's nnet_recurrent.h feeds the input and the state (res_T) through the same dense
    # template and writes the gate sums into accum_t: input, result and accumulator must be
    # one type. The output (tanh of the state, times a gate) lies in (-1, 1).
    (x,) = inputs
    if not x.signed or x.integer < 1:
        raise ConversionError(
            f"layer '{name}' ({kind}): hls4ml 1.3 computes input, state and output in one "
            f"type, and the input type {x.to_hls()} cannot hold the output range (-1, 1); "
            "give the layer a signed input with at least one integer bit"
        )
    result = accum = x
    where = f"layer '{name}'"
    weight = _weight_type(kernel, ctx, f"{where} weights")
    recurrent_weight = _weight_type(recurrent, ctx, f"{where} weights")
    if ctx.options.backend.info.hls4ml_name == "Quartus":
        # the Quartus GRU/SimpleRNN templates declare kernel and recurrent kernel with the one
        # CONFIG_T::weight_t: one type covering both (on both grids when quantized)
        both = np.concatenate([np.ravel(kernel), np.ravel(recurrent)])
        weight = recurrent_weight = _weight_type(both, ctx, f"{where} weights")
    extra = (
        ("recurrent_weight", recurrent_weight),
        ("recurrent_bias", _weight_type(bias, ctx, f"{where} bias")),
    )
    source = recurrent_source(ctx.quantized) + _check_state_quantizer(layer, result)
    return LayerPrecision(
        name,
        kind,
        result,
        accum=accum,
        weight=weight,
        bias=_weight_type(bias, ctx, f"{where} bias"),
        source=source,
        profiled=ctx.profile(name),
        extra=extra,
        settings=table_settings(result),
    )


def _multiplications(layer: Any) -> int:
    kernel, recurrent, _ = layer.get_weights()
    steps = int(layer.input_shape[1])
    return steps * int(kernel.size + recurrent.size)


register(
    LayerHandler(
        family="recurrent",
        classes=("LSTM", "GRU"),
        derive=_recurrent,
        exactness="float models: profiled result, covering weight types; state in the input's "
        "type, gates from sigmoid/tanh tables sized to its lsb: approximate (measured)",
        emulation=Emulation(
            "recurrent step (emulate_recurrent: gate tables, state in res_T)",
            steps={"LSTM": recurrent_step, "GRU": recurrent_step},
        ),
        qkeras=QKerasMapping(("LSTM", "GRU")),
        exact=lambda layer: False,
        bound=QKERAS_BOUND,
        multiplications=_multiplications,
    )
)

register(
    LayerHandler(
        family="recurrent",
        classes=("QLSTM", "QGRU"),
        derive=_recurrent,
        exactness="converted as LSTM/GRU holding the QKeras-quantized weights (exact weight "
        "types); state and output in the input's type, gates from sigmoid/tanh tables "
        "sized to its lsb: approximate (measured); a state_quantizer only of the input's type "
        "(the state's); quantized_tanh/hard_sigmoid activations and QGRU reset_after=False "
        "are refused",
        emulation=Emulation(
            "recurrent step (emulate_recurrent: gate tables, state in res_T)",
            steps={"LSTM": recurrent_step, "GRU": recurrent_step},
        ),
        qkeras=QKerasMapping(reason="QKeras layers themselves"),
        exact=lambda layer: False,
        rewrite=Rewrite(lambda layer: _float_twin(layer, state_allowed=True), _quantized_weights),
        bound=QKERAS_BOUND,
        multiplications=_multiplications,
    )
)
