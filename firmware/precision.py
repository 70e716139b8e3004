"""Automatic precision: the type of every layer, derived before hls4ml sees the model.

The rules live with the layers, one handler per family (:mod:`hepfpga.firmware.layers`);
this module walks the model's functional graph (:func:`~hepfpga.firmware.layers.model_graph`)
and hands every handler the types of the layers that feed it. Two regimes, chosen by
:func:`is_quantized` (does the model have QKeras layers?):

**QKeras models: types from the quantizers, so the logits are exact.** The input type is
that of the ``QActivation(quantized_bits)`` after the input (rounding half to even and
saturating like QKeras), or ``firmware.input_type``, or, for a model without an input
quantizer, the documented default :data:`DEFAULT_INPUT_WIDTH`-bit type
``ap_fixed<16, I, AP_RND_CONV, AP_SAT>`` with ``I`` the integer bits of the largest input of
the events given (plus one bit of headroom; ``I = 6``, hls4ml's default, without events).
The firmware is then exact for inputs on that grid; ``hepfpga verify`` states separately what
rounding the user's events to it costs.

**Float models: types proposed from profiled ranges** of a data sample: each output gets
``float_width`` bits with the integer bits of its largest magnitude plus one bit of headroom
(``ap_fixed<W, I, AP_RND, AP_SAT>``), at most :data:`~hepfpga.firmware.layers.MAX_INTEGER_BITS`
integer bits (larger ranges are refused with the layer's name); weights and biases likewise
from their values. The firmware then only approximates the model; ``hepfpga verify`` states
the tolerance and shows the profiled ranges against the chosen types.

``firmware.layer_types`` overrides any derived type of a layer; the types after it are derived
from the overridden one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError, ConversionError
from hepfpga.firmware.layers import (
    DeriveContext,
    LayerPrecision,
    covering_type,
    handler_for,
    model_graph,
    registered_handlers,
)
from hepfpga.firmware.layers._base import check_backend, check_width, count_type, int_bits
from hepfpga.firmware.layers.graph import input_names, layer_outputs
from hepfpga.firmware.options import FirmwareOptions, LayerTypes
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation, from_quantizer

__all__ = [
    "DEFAULT_INPUT_INTEGER",
    "DEFAULT_INPUT_WIDTH",
    "SUPPORTED_LAYERS",
    "LayerPrecision",
    "check_supported",
    "covering_type",
    "derive_precision",
    "input_types",
    "is_quantized",
    "profile_ranges",
]

#: Keras/QKeras layer classes hepfpga converts (pruning wrappers are stripped first)
SUPPORTED_LAYERS = tuple(sorted(registered_handlers()))
_Q_LAYERS = frozenset(name for name in SUPPORTED_LAYERS if name.startswith("Q"))

#: width of the default input type of a QKeras model without an input quantizer
DEFAULT_INPUT_WIDTH = 16
#: its integer bits when no events are given (hls4ml's own default, ``ap_fixed<16,6>``)
DEFAULT_INPUT_INTEGER = 6


def is_quantized(model: Any) -> bool:
    """Whether ``model`` has QKeras layers (then its types come from the quantizers), also
    inside wrappers (``TimeDistributed(QDense)``, ``Bidirectional(QLSTM)``)."""
    kinds = {type(layer).__name__ for layer in model.layers}
    kinds |= {type(getattr(layer, "layer", None)).__name__ for layer in model.layers}
    return bool(kinds & _Q_LAYERS)


def check_supported(model: Any) -> None:
    """Refuse layers hepfpga cannot convert, naming the layer and what to use instead, and
    tensors of one scalar per event (rank 1 with the batch: hls4ml 1.3 reads every shape as a
    list of at least one dimension and fails inside its converter on ``()``)."""
    for node in model_graph(model):
        handler_for(node.layer)
        _check_not_scalar(node.layer)


def _check_not_scalar(layer: Any) -> None:
    shape = layer.output_shape
    shapes = shape if isinstance(shape, list) else [shape]
    for one in shapes:
        if isinstance(one, tuple) and len(one) == 1:
            kind = type(layer).__name__
            fix = (
                "give the input the shape (1,) (events as (n_events, 1))"
                if kind == "InputLayer"
                else "keep a dimension of 1, e.g. Reshape((1,)) instead of Reshape(())"
            )
            raise ConversionError(
                f"layer '{layer.name}' ({kind}) gives one scalar per event (shape {one}); "
                f"hls4ml 1.3 needs at least one dimension per event: {fix}"
            )


def profile_ranges(model: Any, x: Any) -> dict[str, tuple[float, float]]:
    """(min, max) of every layer's output (inputs included) of ``model`` on the events ``x``."""
    outputs = layer_outputs(model, x)
    return {name: (float(np.min(out)), float(np.max(out))) for name, out in outputs.items()}


def _input_quantizer_type(model: Any, name: str) -> FixedType | None:
    # deferred: TensorFlow loads slowly
    from qkeras.quantizers import get_quantizer

    for node in model_graph(model):
        if node.inputs == (name,) and node.class_name == "QActivation":
            quantizer = get_quantizer(node.layer.get_config()["activation"])
            if type(quantizer).__name__ == "quantized_bits":
                return from_quantizer(quantizer)
    return None


def default_input_type(ranges: Mapping[str, tuple[float, float]] | None, name: str) -> FixedType:
    """The input type of a QKeras model without an input quantizer (see the module doc)."""
    integer = DEFAULT_INPUT_INTEGER
    if ranges is not None and name in ranges:
        integer = max(int_bits(max(abs(v) for v in ranges[name]), signed=True), 2)
        integer = min(integer, DEFAULT_INPUT_WIDTH)
    return FixedType(DEFAULT_INPUT_WIDTH, integer, True, Rounding.RND_CONV, Saturation.SAT)


def count_inputs(model: Any) -> dict[str, int]:
    """The model inputs that are counts (e.g. GarNet's vertex count) and their largest
    values, as the layers reading them declare (``LayerHandler.counts``)."""
    handlers = registered_handlers()
    out: dict[str, int] = {}
    inputs = set(input_names(model))
    for node in model_graph(model):
        handler = handlers.get(node.class_name)
        if handler is None or handler.counts is None:
            continue
        for index, largest in handler.counts(node.layer).items():
            if index < len(node.inputs) and node.inputs[index] in inputs:
                out[node.inputs[index]] = largest
    return out


def input_types(
    model: Any,
    options: FirmwareOptions,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, LayerPrecision]:
    """The hardware type of every input of ``model``, with where it comes from.

    In order: the exact type of a count (:func:`count_inputs`); ``firmware.input_type``; the
    ``QActivation(quantized_bits)`` right after the input (QKeras); the profiled range (float
    models); the documented default (QKeras models without an input quantizer,
    :func:`default_input_type`).
    """
    quantized = is_quantized(model)
    counts = count_inputs(model)
    out = {}
    for name in input_names(model):
        if name in counts:
            types = LayerPrecision(
                name,
                "InputLayer",
                count_type(counts[name]),
                source=f"count 0..{counts[name]} (exact unsigned integer)",
            )
        elif options.input_type is not None:
            types = LayerPrecision(
                name, "InputLayer", options.input_type, source="firmware.input_type"
            )
        elif quantized:
            fixed = _input_quantizer_type(model, name)
            if fixed is not None:
                types = LayerPrecision(name, "InputLayer", fixed, source="input quantizer")
            else:
                fixed = default_input_type(ranges, name)
                how = "the events' range" if ranges is not None and name in ranges else "no events"
                types = LayerPrecision(
                    name,
                    "InputLayer",
                    fixed,
                    source=f"default: no input quantizer ({DEFAULT_INPUT_WIDTH} bits, {how})",
                )
        elif ranges is not None:
            ctx = DeriveContext(options, quantized, ranges)
            types = LayerPrecision(
                name,
                "InputLayer",
                ctx.profiled(name),
                source="profiled",
                profiled=ctx.profile(name),
            )
        else:
            raise ConfigError(
                "a float (non-QKeras) model needs events to profile its ranges and choose its "
                "types: pass --data FILE or --random N (library: ranges=profile_ranges(model, x))",
                path="firmware",
            )
        out[name] = types
    return out


def derive_precision(
    model: Any,
    options: FirmwareOptions,
    *,
    input_type: FixedType | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, LayerPrecision]:
    """The types of every layer of ``model`` (a functional model, see
    :func:`hepfpga.firmware.layers.ready_model`), keyed by layer name.

    ``input_type`` fixes the type of every input (else :func:`input_types` decides).
    ``ranges`` (from :func:`profile_ranges`) is needed for float models. Layers are visited
    in topological order, each handler getting the types of the layers feeding it.
    """
    quantized = is_quantized(model)
    if not quantized and ranges is None:
        raise ConfigError(
            "a float (non-QKeras) model needs events to profile its ranges and choose its "
            "types: pass --data FILE or --random N (library: ranges=profile_ranges(model, x))",
            path="firmware",
        )
    if input_type is not None:
        options = replace(options, input_type=input_type)
    inputs = input_types(model, options, ranges)
    ctx = DeriveContext(options, quantized, ranges)
    out: dict[str, LayerPrecision] = {}
    for node in model_graph(model):
        handler = handler_for(node.layer)
        if node.name in inputs:
            incoming = [inputs[node.name].result]
        else:
            missing = [name for name in node.inputs if name not in out]
            if missing or not node.inputs:
                raise ConversionError(
                    f"layer '{node.name}' reads {missing or 'nothing'}, which no earlier layer "
                    "writes; the graph cannot be walked"
                )
            incoming = [out[name].result for name in node.inputs]
        check_backend(node.layer, handler, options)
        types = handler.derive(node.layer, ctx, incoming)
        if node.name in inputs:
            types = inputs[node.name]
        override = options.layer_types.get(node.name)
        if override is not None:
            _refuse_ignored_weight(node.layer, types, override)
            types = _overridden(types, override)
        out[node.name] = check_width(types)
    return out


def _refuse_ignored_weight(layer: Any, types: LayerPrecision, override: LayerTypes) -> None:
    """A ``weight`` override of a QKeras layer with a kernel quantizer, unless it is the
    quantizer's own type (same width, integer bits, sign): hls4ml 1.3.0 stores such a layer's
    weights in its quantizer's type whatever ``layer_types`` says (the products stay as wide;
    measured on the jet MLP), so the override would be silently ignored."""
    wanted, derived = override.weight, types.weight
    if wanted is None or derived is None or type(layer).__name__ not in _Q_LAYERS:
        return
    if getattr(layer, "kernel_quantizer", None) is None:
        return
    if (wanted.width, wanted.integer, wanted.signed) == (
        derived.width,
        derived.integer,
        derived.signed,
    ):
        return
    raise ConfigError(
        f"'{wanted.to_hls()}' for the weights of the QKeras layer '{layer.name}' would be "
        "ignored: hls4ml stores them in its kernel quantizer's type "
        f"({derived.to_hls()}) whatever layer_types says. Accepted: no weight override (or "
        "that type); to change the weights, change the layer's kernel_quantizer (hepfpga "
        "scan) or train with quantization.method: hgq",
        path=f"firmware.layer_types.{layer.name}.weight",
    )


def _overridden(types: LayerPrecision, override: LayerTypes) -> LayerPrecision:
    """``types`` with the hand-chosen types of ``override`` (``firmware.layer_types``)."""
    return replace(
        types,
        result=override.result if override.result is not None else types.result,
        accum=override.accum if override.accum is not None else types.accum,
        weight=override.weight if override.weight is not None else types.weight,
        bias=override.bias if override.bias is not None else types.bias,
        scale=override.scale if override.scale is not None else types.scale,
        source="firmware.layer_types",
    )


def exact_layer(layer: Any, quantized: bool) -> bool:
    """Whether the firmware is meant to reproduce ``layer`` bit for bit."""
    return quantized and handler_for(layer).exact(layer)
