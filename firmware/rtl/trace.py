"""A QKeras network traced into a da4ml adder graph, bit for bit what QKeras computes.

:func:`trace_model` replays the model layer by layer on da4ml's symbolic fixed-point
variables (:class:`da4ml.trace.FixedVariableArray`); da4ml turns every constant matrix product
into a graph of shifts and adders (no multiplier) and writes it as pipelined Verilog or VHDL
(:mod:`hepfpga.firmware.rtl.codegen`). Numeric semantics, in ``ap_fixed`` notation (see
:mod:`hepfpga.quantize.fixed`):

* **Input.** The RTL input is the raw code of the input quantizer's type
  (:func:`hepfpga.firmware.hls_config.input_fixed_type`, e.g. ``quantized_bits(16, 5)`` ->
  ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``, 10 fractional bits): the float features are rounded
  half to even and clipped *before* the RTL, by :meth:`FixedType.quantize`, exactly as QKeras
  and the hls4ml test bench do. The input quantizer layer is then the identity.
* **QDense / QConv1D / QConv2D**: ``y = b + sum(x * w)`` with the weights and biases that
  QKeras itself multiplies with (its ``kernel_quantizer``/``bias_quantizer`` applied to the
  float weights), refused unless every one
  lies on the grid of its quantizer's fixed-point type. da4ml sizes every adder so that
  nothing is rounded or overflows: the sums are exact, as QKeras' float32 sums are while they
  fit the 24-bit significand (see :mod:`hepfpga.firmware.hls_config`).
* **quantized_relu(bits, integer)** is ``ap_ufixed<bits,integer,AP_RND_CONV,AP_SAT>`` and
  **quantized_bits** inside the network ``ap_fixed<...,AP_RND_CONV,AP_SAT>``: round half to
  even, then saturate. da4ml rounds only by truncation (``TRN``) or half up (``RND``). A
  *constant* bias cannot give half-to-even (a tie goes up or down depending on the parity of
  the result), so :func:`round_half_even` adds a bias that includes the parity bit: for a
  value ``x`` with lsb ``e`` rounded to lsb ``s`` (``s > e``), with ``p`` the bit of ``x``
  worth ``s``, ``rne(x) = floor((x + s/2 - e + p*e) / s) * s``. (Below a tie the bias stays
  under ``s``; above it reaches ``s``; at a tie it reaches ``s`` exactly when ``p = 1``.) It
  costs one narrow adder per neuron. ``tests/firmware/test_hardware_rtl.py`` shows that the
  constant bias ``s/2 - e`` alone (round half down) differs from QKeras on real data.
* Convolutions take ``padding='valid'`` or ``'same'`` (exact zeros), any stride.
* **MaxPooling1D/2D** ('valid') is the exact maximum; **Flatten/Reshape** only reorder; a final
  ``Activation('softmax')`` is not traced: the RTL ends at the logits (the input of the
  softmax), which are exact.

Anything else raises :class:`~hepfpga.errors.ConversionError` naming the layer and the
supported layers (:func:`layer_tracers`: each layer family names its tracers on its handler,
``LayerHandler.rtl``; they are in :mod:`hepfpga.firmware.layers.tracers`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError, ConversionError
from hepfpga.firmware.hls_config import hls4ml_ready_model, input_fixed_type
from hepfpga.firmware.layers import registered_handlers
from hepfpga.firmware.layers.tracers import Tracer
from hepfpga.firmware.pruning import strip_pruning
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation
from hepfpga.registry import Registry

__all__ = [
    "TracedNetwork",
    "layer_tracers",
    "round_half_even",
    "trace_chain",
    "trace_model",
]

#: da4ml solver settings: delay constraint of each constant-matrix block (adder depth over the
#: optimum it may add to share terms), as da4ml's own converter uses by default
DEFAULT_SOLVER_OPTIONS = {"hard_dc": 2}


@dataclass
class TracedNetwork:
    """A traced network: da4ml's combinational logic plus what is needed to drive it."""

    #: da4ml ``CombLogic`` from the input codes to the logits
    comb: Any
    #: the type of the RTL input (the input quantizer's), per feature
    input_type: FixedType
    #: shape of one event, as the Keras model takes it
    input_shape: tuple[int, ...]
    #: name of the traced output layer (the logits)
    output_layer: str
    #: number of outputs
    n_outputs: int
    #: the layers traced, in order
    layers: tuple[str, ...]
    #: float events -> their values on the RTL input's grid, when not ``input_type.quantize``
    #: (an HGQ proxy model: its first ``FixedPointQuantizer``, a type per input feature)
    input_quantizer: Callable[[np.ndarray], np.ndarray] | None = None

    def quantize_inputs(self, x: Any) -> np.ndarray:
        """Float events -> the values the RTL input receives (float64, on the input grid):
        rounded and saturated (or wrapped) by the model's own input quantizer, before the
        RTL, as the model and the hls4ml test bench do."""
        x = np.asarray(x, dtype=np.float64)
        if self.input_quantizer is not None:
            return np.asarray(self.input_quantizer(x), dtype=np.float64).reshape(x.shape)
        return np.asarray(self.input_type.quantize(x), dtype=np.float64)

    def input_codes(self, x: Any) -> np.ndarray:
        """Float events -> the input type's raw codes (int64), rounded and saturated as QKeras
        and the hls4ml test bench do, one row per event."""
        values = self.quantize_inputs(x)
        flat = values.reshape(values.shape[0], -1)
        return np.ldexp(flat, self.input_type.fractional).astype(np.int64)


# -- rounding ----------------------------------------------------------------------------------
def _kif(t: FixedType) -> tuple[int, int, int]:
    """da4ml's (keep_negative, integer bits without the sign, fractional bits) of a type."""
    return int(t.signed), t.integer - int(t.signed), t.fractional


def round_half_even(x: Any, target: FixedType) -> Any:
    """``(target) x`` for a da4ml ``FixedVariable``: round half to even, then saturate
    (``AP_SAT``) or wrap, exactly as ``ap_fixed`` with ``AP_RND_CONV`` (see the module notes)."""
    k, i, f = _kif(target)
    overflow = {Saturation.SAT: "SAT", Saturation.WRAP: "WRAP", Saturation.SAT_SYM: "SAT_SYM"}
    if target.saturation not in overflow:
        raise ConversionError(f"the RTL has no {target.saturation.value} overflow ({target})")
    mode = overflow[target.saturation]
    if target.rounding is Rounding.TRN or x.low == x.high:
        return _quantize_const_or_trn(x, k, i, f, mode, target)
    if target.rounding is not Rounding.RND_CONV:
        raise ConversionError(f"the RTL supports AP_TRN and AP_RND_CONV rounding, not {target}")
    x_f = x.kif[2]
    if x_f <= f:  # no bit is dropped: no rounding
        return x.quantize(k, i, f, mode, "TRN")
    s = 2.0**-f
    e = 2.0**-x_f
    parity = x.quantize(0, 1 - f, f, "WRAP", "TRN")  # the bit of x worth s: 0 or s
    biased = x + (parity * (e / s) if parity.high > 0 else 0.0) + (s / 2 - e)
    return biased.quantize(k, i, f, mode, "TRN")


def _quantize_const_or_trn(x: Any, k: int, i: int, f: int, mode: str, target: FixedType) -> Any:
    if x.low == x.high:  # a constant: quantize it exactly here
        value = float(target.quantize(float(x.low)))
        return type(x).from_const(value, hwconf=x.hwconf)
    return x.quantize(k, i, f, mode, "TRN")


def layer_tracers() -> Registry[Tracer]:
    """Keras/QKeras layer class -> tracer, from the registered layer handlers
    (``LayerHandler.rtl``)."""
    tracers: Registry[Tracer] = Registry("RTL tracer")
    for name, handler in registered_handlers().items():
        if name in handler.rtl:
            tracers.register(name, handler.rtl[name])
    return tracers


# -- the model ---------------------------------------------------------------------------------
def _sequential_layers(model: Any) -> list[Any]:
    """The layers after the input, in order; refused unless the graph is a chain."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    previous = model.inputs[0].node.layer
    for layer in layers:
        inbound = [node.inbound_layers for node in layer.inbound_nodes]
        flat = [
            item
            for entry in inbound
            for item in (entry if isinstance(entry, (list, tuple)) else [entry])
        ]
        if flat != [previous]:
            raise ConversionError(
                f"layer '{layer.name}' does not follow '{previous.name}': the RTL tracer "
                "supports a chain of layers (no branches or merges)"
            )
        previous = layer
    return layers


def _is_final_softmax(layer: Any, is_last: bool) -> bool:
    return (
        is_last
        and type(layer).__name__ in ("Activation", "Softmax")
        and layer.get_config().get("activation", "softmax") == "softmax"
    )


def trace_chain(
    model: Any,
    x: Any,
    tracers: Mapping[str, Callable[[Any, Any], Any]],
    *,
    subject: str,
) -> tuple[Any, list[str], str]:
    """Trace the layers of the chain ``model`` one after the other from ``x`` (da4ml's
    symbolic array of the input), each by its class name's tracer, stopping before a final
    softmax (the logits are the output). Returns the output array, the traced layer names and
    the name of the layer whose output it is. A layer without a tracer is refused naming it,
    ``subject`` (e.g. ``"of the HGQ proxy model "``) and the supported kinds."""
    layers = _sequential_layers(model)
    traced: list[str] = []
    output_layer = model.inputs[0].node.layer.name
    for n, layer in enumerate(layers):
        kind = type(layer).__name__
        if _is_final_softmax(layer, n == len(layers) - 1):
            break
        tracer = tracers.get(kind)
        if tracer is None:
            raise ConversionError(
                f"layer '{layer.name}' ({kind}) {subject}is not supported by the RTL tracer; "
                f"supported: {', '.join(sorted(tracers))} and a final softmax"
            )
        x = tracer(layer, x)
        traced.append(layer.name)
        output_layer = layer.name
    return x, traced, output_layer


def _with_rounding(tracer: Tracer) -> Callable[[Any, Any], Any]:
    return lambda layer, x: tracer(layer, x, round_half_even)


def trace_model(
    model: Any,
    *,
    solver_options: dict[str, Any] | None = None,
) -> TracedNetwork:
    """Trace a QKeras model (a chain: input quantizer, QDense/QConv, quantized activations,
    max pooling, flatten, optional final softmax) into da4ml's combinational logic, from the
    input codes to the logits (see the module notes for the exact semantics)."""
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    model = strip_pruning(model)
    try:
        input_type = input_fixed_type(hls4ml_ready_model(model))
    except ConfigError as exc:  # its advice (firmware.input_type) is not an option here
        name = model.inputs[0].node.layer.name
        raise ConfigError(
            f"the RTL needs the input type from the model: the input '{name}' is not followed "
            "by QActivation(quantized_bits(...)); add one to the model (the RTL flow takes "
            "every type from the quantizers and has no input-type option)"
        ) from exc
    shape = tuple(int(n) for n in model.inputs[0].shape[1:])
    k, i, f = _kif(input_type)
    options = dict(DEFAULT_SOLVER_OPTIONS if solver_options is None else solver_options)
    x_in = FixedVariableArray.from_kif(
        np.full(shape, k),
        np.full(shape, i),
        np.full(shape, f),
        hwconf=HWConfig(1, -1, -1),
        solver_options=options,
    )
    tracers = layer_tracers()
    x, traced, output_layer = trace_chain(
        model,
        x_in,
        # the module's round_half_even, looked up at each call (a test replaces it)
        {kind: _with_rounding(tracer) for kind, tracer in tracers.items()},
        subject="",
    )
    outputs = x.ravel()
    comb = comb_trace(x_in.ravel(), outputs)
    return TracedNetwork(
        comb=comb,
        input_type=input_type,
        input_shape=shape,
        output_layer=output_layer,
        n_outputs=int(outputs.size),
        layers=tuple(traced),
    )


def latency_stages(comb: Any, latency_cutoff: float) -> int:
    """Number of pipeline stages da4ml makes of ``comb`` at ``latency_cutoff``."""
    return max(1, math.ceil(comb.latency[1] / latency_cutoff)) if latency_cutoff > 0 else 0
