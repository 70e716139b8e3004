"""SimpleRNN and QSimpleRNN: hls4ml 1.3 implements them in the Quartus backend only
(``nnet::simple_rnn``).

The Vivado/Vitis backends have no SimpleRNN template, so hepfpga converts a SimpleRNN with
``--backend Quartus`` (whose C simulation compiles with g++) and refuses it elsewhere, naming
Quartus and the LSTM/GRU alternative. Types follow the recurrent layers
(:mod:`~hepfpga.firmware.layers.recurrent`): the state, result and accumulator in the input's
type (the template feeds the state back through the input's type), weights covering their
values (float) or on the exact grid of the QKeras-quantized values, a 4096-entry tanh table
in hls4ml's table type (the Vivado/Vitis table sizing of
:func:`~hepfpga.firmware.layers.recurrent.table_settings` does not fit the Quartus tables:
measured, 65536 entries in ``ap_fixed<18,2>`` put a float SimpleRNN 7 off Keras):
**approximate**, measured by ``hepfpga verify`` (QKeras models: logits within the recurrent
bound :data:`~hepfpga.firmware.layers.recurrent.QKERAS_BOUND`).

``QSimpleRNN`` is converted as the float SimpleRNN holding the QKeras-quantized weights
(hls4ml 1.3 reads the stored float weights and ignores the quantizers); refused, with the
reason: ``activation`` other than ``tanh`` (QKeras's default ``quantized_tanh`` has no
template), a ``state_quantizer`` (the Quartus state has the input's type), unquantized
weights. QKeras 0.9.0's ``QSimpleRNNCell`` runs on TensorFlow 2.14 only with the shim
:func:`hepfpga.quantize.qat.qkeras_compat` (applied when hepfpga loads a model file).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hepfpga.errors import ConversionError
from hepfpga.firmware.layers._base import (
    BackendSupport,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    Rewrite,
    register,
)
from hepfpga.firmware.layers.recurrent import (
    QKERAS_BOUND,
    TABLE_SIZE,
    _activation_name,
    _check_forward,
    _multiplications,
    _quantized_weights,
    _recurrent,
)
from hepfpga.quantize.fixed import FixedType

_HINT = "LSTM/GRU or QLSTM/QGRU (Vitis, Vivado)"


def _check_qkeras(layer: Any) -> None:
    name = layer.name
    config = layer.get_config()
    _check_forward(layer)
    activation = _activation_name(config.get("activation"))
    if activation != "tanh":
        raise ConversionError(
            f"layer '{name}' (QSimpleRNN) has activation='{activation}'; hls4ml 1.3's Quartus "
            "SimpleRNN computes activation='tanh' (a lookup table) for a quantized layer: use "
            "activation='tanh'"
        )
    if config.get("state_quantizer") is not None:
        raise ConversionError(
            f"layer '{name}' (QSimpleRNN) has a state_quantizer; hls4ml 1.3's Quartus SimpleRNN "
            "keeps the state in the layer's input type: remove it"
        )
    for key in ("kernel_quantizer", "recurrent_quantizer", "bias_quantizer"):
        if config.get(key) is None:
            raise ConversionError(
                f"layer '{name}' (QSimpleRNN) has no {key}; hepfpga converts QSimpleRNN whose "
                "kernel, recurrent kernel and bias are all quantized (use quantized_bits)"
            )


def _float_twin(layer: Any) -> Any:
    """QSimpleRNN -> the Keras SimpleRNN of the same name and settings (weights: the
    quantized ones); with a tanh activation and no state quantizer it computes exactly this."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    _check_qkeras(layer)
    config = layer.get_config()
    return keras.layers.SimpleRNN(
        config["units"],
        activation="tanh",
        use_bias=config["use_bias"],
        return_sequences=config["return_sequences"],
        name=layer.name,
    )


def _simple_rnn(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    """The recurrent types, with Quartus's tanh table: 4096 entries, hls4ml's table type."""
    return replace(_recurrent(layer, ctx, inputs), settings=(("TableSize", TABLE_SIZE),))


def _handler(classes: tuple[str, ...], rewrite: Rewrite | None = None) -> LayerHandler:
    return LayerHandler(
        family="recurrent",
        classes=classes,
        derive=_simple_rnn,
        exactness="Quartus only (hls4ml 1.3 has no Vivado/Vitis SimpleRNN): state and output "
        "in the input's type, weights covering their values (QSimpleRNN: the quantized values, "
        "exact types), 4096-entry tanh table: approximate (measured)",
        emulation=Emulation(
            "C simulation (the Quartus SimpleRNN is not in the engine)",
        ),
        qkeras=QKerasMapping(reason="no QAT counterpart yet"),
        exact=lambda layer: False,
        rewrite=rewrite,
        bound=QKERAS_BOUND,
        bound_reason="table-based tanh",
        multiplications=_multiplications,
        backends=BackendSupport(("Quartus",), _HINT),
    )


register(_handler(("SimpleRNN",)))
register(_handler(("QSimpleRNN",), Rewrite(_float_twin, _quantized_weights)))
