"""Wrappers: ``TimeDistributed`` (around Dense/Conv/pooling layers, or a whole model) and
``Bidirectional`` (around LSTM/GRU and QLSTM/QGRU).

*TimeDistributed*: hls4ml 1.3 expands ``TimeDistributed(layer)`` into a loop over the time
steps: a start marker named like the wrapper (one time step of the input), the wrapped layer
under its own name, and an end marker ``<name>_end`` that writes each step into the output
sequence. The wrapped layer's types are derived by its own handler, per time step, so the
output is what that layer gives on every step: ``TimeDistributed(QDense/QConv2D)``
has the exact sum types of :mod:`~hepfpga.firmware.layers.dense` and is **bit-exact**, a
wrapped max/average pooling layer has the types of :mod:`~hepfpga.firmware.layers.pooling`
(max: the input's type, exact); the float layers get the profiled range of the whole output
sequence (approximate). A built-in activation of the wrapped layer (which hls4ml 1.3 would
drop silently) is split off the wrapper as ``<name>_<activation>`` by
:func:`~hepfpga.firmware.layers.graph.ready_model`. ``TimeDistributed(model)`` is replaced by
its layers, each on every time step (:func:`~hepfpga.firmware.layers.graph.flatten_nested`),
so its exactness is that of its layers. The output is traced at the end marker. Accepted:
the classes of :data:`TIME_DISTRIBUTED_CLASSES` over time steps of 1 to 3 dimensions (the
shapes of hls4ml's ``read_time_step_{2,3,4}d``), in io_parallel; other wrapped layers and
io_stream are refused, and so are 1D convolutions and pooling (:data:`TIME_DISTRIBUTED_1D`:
hls4ml 1.3 drops their block's time axis and its C++ writes past its arrays). The emulator
runs the block as one row per time step (``emulate_engine.steps.TimeStepsStep``).

*Bidirectional*: hls4ml 1.3's Vivado/Vitis ``Bidirectional`` runs the forward and backward
recurrent layers of :mod:`~hepfpga.firmware.layers.recurrent` (same templates, same tables)
and concatenates their outputs; the types follow the same rule: input, state, result and
accumulator in the input's type, weights covering their values (float) or on the exact grid
of the QKeras-quantized values (QLSTM/QGRU, converted as LSTM/GRU holding those values, since
hls4ml ignores the quantizers), gate tables sized to the state's lsb (``table_settings``).
**Approximate** (the gates' tables):
``hepfpga verify`` requires the logits of a QKeras model within the recurrent bound
(:data:`~hepfpga.firmware.layers.recurrent.QKERAS_BOUND`) and reports the measured
difference. Refused: ``merge_mode`` other than ``concat`` (the Vitis backend switches to
``concat`` silently), ``io_stream`` (hls4ml's Bidirectional is io_parallel only),
SimpleRNN inside, and the forward-layer refusals of the recurrent layers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_engine.steps import time_distributed_step
from hepfpga.firmware.layers._base import (
    BackendSupport,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    Rewrite,
    handler_for,
    register,
)
from hepfpga.firmware.layers.recurrent import (
    QKERAS_BOUND,
    _check_forward,
    _check_qkeras,
    _float_twin,
    _quantized_weights,
    _weight_type,
    recurrent_source,
    table_settings,
)
from hepfpga.quantize.fixed import FixedType

#: classes hepfpga converts inside TimeDistributed (hls4ml's wrapper handles any layer; these
#: are the ones measured exact/approximate as stated)
TIME_DISTRIBUTED_CLASSES = (
    "Dense",
    "QDense",
    "Conv2D",
    "QConv2D",
    "MaxPooling2D",
    "AveragePooling2D",
)
#: 1D layers whose TimeDistributed block hls4ml 1.3 shapes wrongly: its wrapper replaces the
#: sequence shape from the second axis on with the layer's per-step output (width, channels),
#: dropping the time axis, so ``n_time_steps`` becomes the output width and the C++ loop
#: reads and writes past its arrays
TIME_DISTRIBUTED_1D = ("Conv1D", "QConv1D", "MaxPooling1D", "AveragePooling1D")
#: recurrent classes hls4ml 1.3's Vivado/Vitis Bidirectional implements
BIDIRECTIONAL_CLASSES = ("LSTM", "GRU", "QLSTM", "QGRU")


# -- TimeDistributed ---------------------------------------------------------------------------
def _wrapped(layer: Any) -> Any:
    """The layer a TimeDistributed wraps, checked."""
    inner = layer.layer
    kind = type(inner).__name__
    if kind in TIME_DISTRIBUTED_1D:
        raise ConversionError(
            f"layer '{layer.name}' (TimeDistributed) wraps {kind} '{inner.name}'; hls4ml 1.3 "
            "shapes a TimeDistributed 1D convolution/pooling without its time axis (it loops "
            "over the output width instead of the time steps and its C++ writes past its "
            "arrays); reshape the sequence to (steps, 1, width, channels) and wrap the 2D "
            "layer (e.g. Conv2D with a (1, k) kernel) instead"
        )
    if kind not in TIME_DISTRIBUTED_CLASSES:
        raise ConversionError(
            f"layer '{layer.name}' (TimeDistributed) wraps {kind} '{inner.name}'; hepfpga "
            f"converts TimeDistributed around {', '.join(TIME_DISTRIBUTED_CLASSES)} or a "
            "whole model only. Layers that act per element (Activation, QActivation, Dropout) "
            "act per time step already: apply them to the sequence without the wrapper"
        )
    if not 3 <= len(layer.input_shape) <= 5:
        raise ConversionError(
            f"layer '{layer.name}' (TimeDistributed): input of shape {layer.input_shape}; "
            "hls4ml 1.3 reads time steps of 1 to 3 dimensions (steps, [height,] [width,] "
            "channels)"
        )
    return inner


def _time_distributed(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    inner = _wrapped(layer)
    if ctx.options.io_type.value != "io_parallel":
        raise ConversionError(
            f"layer '{layer.name}' (TimeDistributed): hls4ml 1.3's time-step loop reads and "
            "writes arrays (nnet_time_distributed.h), so hepfpga converts TimeDistributed in "
            "io_parallel only; use --io-type io_parallel"
        )
    if inner.name == layer.name or inner.name == f"{layer.name}_end":
        raise ConversionError(
            f"layer '{layer.name}' (TimeDistributed) wraps a layer named '{inner.name}'; "
            "hls4ml names the wrapped layer and the wrapper's end marker "
            f"'{layer.name}_end' in one graph: rename the wrapped layer"
        )
    ranges = ctx.ranges
    if ranges is not None and layer.name in ranges:
        # every time step's values are the wrapper's output values
        ranges = {**ranges, inner.name: ranges[layer.name]}
    inner_ctx = DeriveContext(ctx.options, ctx.quantized, ranges)
    types = handler_for(inner).derive(inner, inner_ctx, inputs)
    return replace(
        types,
        name=layer.name,
        class_name="TimeDistributed",
        source=f"{types.source} (per time step, '{inner.name}')",
    )


def _time_distributed_entries(
    layer: Any, types: LayerPrecision, inputs: list[FixedType]
) -> dict[str, dict[str, Any]]:
    """hls4ml's three layers: the start marker holds one time step of the input (the input
    type), the wrapped layer the derived types, the end marker the output sequence (traced)."""
    (x,) = inputs
    inner = layer.layer
    wrapped = {key: value.to_hls() for key, value in types.hls_types().items()}
    return {
        layer.name: {"Precision": {"result": x.to_hls()}, "Trace": False},
        inner.name: {"Precision": wrapped, "Trace": False},
        f"{layer.name}_end": {"Precision": {"result": types.result.to_hls()}, "Trace": True},
    }


def _time_distributed_exact(layer: Any) -> bool:
    return handler_for(layer.layer).exact(layer.layer)


def _time_distributed_multiplications(layer: Any) -> int:
    """The wrapped layer's kernel products at every output position of every time step."""
    weights = layer.layer.get_weights()
    if not weights:
        return 0
    positions = 1
    for size in layer.output_shape[1:-1]:  # time steps, then the wrapped layer's positions
        positions *= int(size)
    return positions * int(weights[0].size)


register(
    LayerHandler(
        family="wrappers",
        classes=("TimeDistributed",),
        derive=_time_distributed,
        exactness="the wrapped Dense/Conv/pooling layer's types on every time step: QKeras "
        "bit-exact (exact sums), float profiled over the output sequence; a built-in activation "
        "of the wrapped layer is split off as '<name>_<activation>'; a wrapped model: its "
        "layers, each on every time step",
        emulation=Emulation(
            "time-step block: the wrapped layers' own steps on every time step as one row "
            "each (raw codes reshaped, exact)",
            steps={"TimeDistributed": time_distributed_step},
        ),
        qkeras=QKerasMapping(reason="no QAT counterpart yet"),
        exact=_time_distributed_exact,
        multiplications=_time_distributed_multiplications,
        hls_entries=_time_distributed_entries,
        traced_as=lambda layer: f"{layer.name}_end",
        backends=BackendSupport(("Vitis", "Vivado")),
    )
)


# -- Bidirectional -----------------------------------------------------------------------------
def _directions(layer: Any) -> tuple[Any, Any]:
    """The forward and backward recurrent layers of a Bidirectional, checked."""
    name = layer.name
    forward, backward = layer.forward_layer, layer.backward_layer
    for inner in (forward, backward):
        kind = type(inner).__name__
        if kind not in BIDIRECTIONAL_CLASSES:
            hint = (
                "; SimpleRNN has no Vivado/Vitis template in hls4ml 1.3: use LSTM or GRU"
                if "SimpleRNN" in kind
                else ""
            )
            raise ConversionError(
                f"layer '{name}' (Bidirectional) wraps {kind} '{inner.name}'; hls4ml 1.3's "
                f"Bidirectional converts {', '.join(BIDIRECTIONAL_CLASSES)}{hint}"
            )
    merge_mode = layer.get_config().get("merge_mode")
    if merge_mode != "concat":
        raise ConversionError(
            f"layer '{name}' (Bidirectional) has merge_mode={merge_mode!r}; hls4ml 1.3 "
            "implements merge_mode='concat' only (its Vitis backend switches other modes to "
            "'concat' without changing the layers after it): use merge_mode='concat' and "
            "combine the two halves with a following layer"
        )
    if forward.go_backwards or not backward.go_backwards:
        raise ConversionError(
            f"layer '{name}' (Bidirectional): the forward layer runs backwards; hls4ml 1.3 "
            "converts a forward layer first and a backward layer second"
        )
    check = _check_qkeras if type(forward).__name__.startswith("Q") else _check_forward
    check(forward)
    config = backward.get_config()
    for key in ("return_state", "stateful"):
        if config.get(key):
            raise ConversionError(
                f"layer '{name}' (Bidirectional) uses {key}, which hls4ml 1.3 does not convert"
            )
    return forward, backward


def _bidirectional(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    name = layer.name
    directions = _directions(layer)
    if ctx.options.io_type.value != "io_parallel":
        raise ConversionError(
            f"layer '{name}' (Bidirectional): hls4ml 1.3 converts Bidirectional in io_parallel "
            f"only (its Vitis backend refuses {ctx.options.io_type.value}); use "
            "--io-type io_parallel"
        )
    (x,) = inputs
    if not x.signed or x.integer < 1:
        raise ConversionError(
            f"layer '{name}' (Bidirectional): hls4ml 1.3 computes input, state and output in "
            f"one type, and the input type {x.to_hls()} cannot hold the output range (-1, 1); "
            "give the layer a signed input with at least one integer bit"
        )
    extra = []
    for direction, inner in zip(("forward", "backward"), directions, strict=True):
        weights = (
            _quantized_weights(inner)
            if type(inner).__name__.startswith("Q")
            else inner.get_weights()
        )
        kernel, recurrent, bias = weights
        where = f"layer '{name}' ({direction})"
        extra += [
            (f"{direction}_weight", _weight_type(kernel, ctx, f"{where} weights")),
            (f"{direction}_recurrent_weight", _weight_type(recurrent, ctx, f"{where} weights")),
            (f"{direction}_bias", _weight_type(bias, ctx, f"{where} bias")),
            (f"{direction}_recurrent_bias", _weight_type(bias, ctx, f"{where} bias")),
        ]
    source = recurrent_source(ctx.quantized)
    return LayerPrecision(
        name,
        "Bidirectional",
        x,
        accum=x,
        source=source,
        profiled=ctx.profile(name),
        extra=tuple(extra),
        # the recurrent layers' tables: sized to the state's lsb, rounded entries
        settings=table_settings(x),
    )


def _bidirectional_twin(layer: Any) -> Any:
    """Bidirectional(QLSTM/QGRU) -> Bidirectional(LSTM/GRU) of the same name and settings,
    holding the quantized weights (:func:`_bidirectional_weights`); None for float layers."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    forward, _ = _directions(layer)
    if not type(forward).__name__.startswith("Q"):
        return None
    if layer.get_config().get("backward_layer") is not None:
        raise ConversionError(
            f"layer '{layer.name}' (Bidirectional) has its own backward_layer; hepfpga "
            f"converts Bidirectional({type(forward).__name__}) with the backward copy Keras "
            "makes of the forward layer: drop backward_layer"
        )
    return keras.layers.Bidirectional(
        _float_twin(layer.layer), merge_mode=layer.get_config()["merge_mode"], name=layer.name
    )


def _bidirectional_weights(layer: Any) -> list[Any]:
    """The weights QKeras multiplies with: forward, then backward (kernel, recurrent kernel,
    bias each), quantized."""
    return [*_quantized_weights(layer.forward_layer), *_quantized_weights(layer.backward_layer)]


def _bidirectional_multiplications(layer: Any) -> int:
    steps = int(layer.input_shape[1])
    return steps * sum(int(w.size) for w in layer.get_weights()[:2] + layer.get_weights()[3:5])


register(
    LayerHandler(
        family="wrappers",
        classes=("Bidirectional",),
        derive=_bidirectional,
        exactness="forward and backward LSTM/GRU as the recurrent layers (QLSTM/QGRU converted "
        "with their quantized weights, exact weight types); state and output in the input's "
        "type, gate tables sized to the state's lsb: approximate (measured); merge_mode 'concat', "
        "io_parallel only",
        emulation=Emulation(
            "C simulation (the engine steps LSTM/GRU, not hls4ml's Bidirectional layer)",
        ),
        qkeras=QKerasMapping(reason="no QAT counterpart yet"),
        exact=lambda layer: False,
        rewrite=Rewrite(_bidirectional_twin, _bidirectional_weights),
        bound=QKERAS_BOUND,
        multiplications=_bidirectional_multiplications,
        backends=BackendSupport(("Vitis", "Vivado"), "a single-direction LSTM/GRU"),
    )
)
