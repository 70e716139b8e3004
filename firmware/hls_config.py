"""The hls4ml configuration that makes a QKeras model's firmware bit-exact.

Every layer's types come from :mod:`hepfpga.firmware.precision` (derived from the quantizers,
or proposed from profiled ranges for float models) and are written explicitly; every layer is
traced in C simulation so verification can compare each one with Keras. The description below
is that of the jet tagger (a QKeras MLP); the general rules are in
:mod:`hepfpga.firmware.precision`.

Numeric semantics of the firmware written from :func:`build_hls_config` (``ap_fixed``
notation, see :mod:`hepfpga.quantize.fixed`):

* **Input.** The hardware input type is the type of the ``QActivation(quantized_bits(...))``
  that follows the model input, with QKeras' rounding and saturation: ``quantized_bits(16, 5)``
  is ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``. Float inputs are therefore rounded half to even and
  clipped exactly as QKeras does; hls4ml's default (``ap_fixed<16,6>``, truncating and wrapping)
  would not. hls4ml then drops the input quantizer as a no-op cast.
* **Weights and biases** are quantized by hls4ml with the QKeras quantizers themselves and
  stored in the mapped type (``quantized_bits(6, 0)`` -> ``ap_fixed<6,1,...>``), so they hold the
  very values QKeras multiplies with.
* **Dense accumulator and result** are left to hls4ml's ``auto`` inference, which sizes them
  so that no sum is rounded or overflows (width = input + weight + ceil(log2(n_in)) bits, plus
  the bias). They equal QKeras' float32 sums as long as those are exact, i.e. every partial sum
  fits float32's 24-bit significand; for the supported widths and inputs within the input
  type's range this holds with a wide margin.
* **Activations.** ``quantized_relu(bits, integer)`` is ``ap_ufixed<bits,integer,AP_RND_CONV,
  AP_SAT>``: the relu result is rounded half to even and saturated, as in QKeras (hls4ml's own
  config writes the same type; it is set explicitly here so the mapping has one source).
* So the **logits** (the layer feeding the softmax) are bit-exact, and that layer is traced in
  C simulation so :func:`hepfpga.firmware.csim.predict_logits` can read them back.
* **Softmax** is chosen by ``firmware.softmax`` (:class:`~hepfpga.firmware.options.SoftmaxMode`):
  ``argmax`` and ``logits`` are exact, ``latency`` uses hls4ml's own tables and types, and
  ``tuned`` is ``stable`` addressed at the logits' resolution (see :func:`softmax_settings`).
  The default, ``stable``, is hls4ml's ``stable`` table implementation and is *not* exact. For ``n``
  classes and a table of ``2**T`` entries (:class:`FirmwareOptions` names in brackets):

  - ``d = max(logits) - logit`` is converted to ``inp_norm_t = ap_ufixed<T, R, AP_RND, AP_SAT>``
    (``R = softmax_range_bits``): resolution ``2**(R-T)`` (1/128 by default), differences
    ``>= 2**R`` saturate (``exp(-8) = 3.4e-4`` by default). Every ``inp_norm_t`` value has its
    own table entry, so the only error is this rounding.
  - ``exp(-d)`` comes from a table of ``exp_table_t`` (``softmax_exp_table``, default
    ``ap_ufixed<18,1,AP_RND,AP_SAT>``); the sum of the ``n`` values is accumulated exactly in
    ``accum_t = ap_ufixed<F + S, S, AP_RND, AP_SAT>`` with ``F`` the table's fractional bits and
    ``S = bit_length(n)`` (the sum lies in ``[1, n]``).
  - the sum is rounded to ``inv_inp_t = ap_ufixed<T, S, AP_RND, AP_SAT>`` to address the
    ``1/x`` table of ``inv_table_t`` (``softmax_inv_table``), and the probabilities
    ``exp(-d) * (1/sum)`` are rounded into ``result_t`` (``softmax_result``, default
    ``ap_ufixed<16,0,AP_RND,AP_SAT>``).

  With the defaults each probability is off by at most about ``2**-8`` (the two roundings to
  1/128 above, each a relative error of at most 1/256); a table of 4096 entries brings this to
  about ``2**-10``. hls4ml's own defaults (``ap_fixed<18,8>`` tables addressed by the top 10
  bits of a 17-bit difference) are off by up to ~0.2 on the same model.

  These are hls4ml *layer-level* keys (``exp_table_t``, ``inv_table_t``, ``inv_inp_t``,
  ``inp_norm_t``, ``TableSize``); the ``Precision: {exp_table: ...}`` entries that
  ``config_from_keras_model`` writes are ignored by hls4ml and are removed here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from hepfpga.errors import ConfigError, ConversionError
from hepfpga.firmware.layers import handler_for, ready_model
from hepfpga.firmware.layers._base import RND_SAT, traced_name
from hepfpga.firmware.layers.activation import is_softmax, table_type
from hepfpga.firmware.layers.graph import model_graph, output_names
from hepfpga.firmware.options import FirmwareOptions, SoftmaxMode
from hepfpga.firmware.precision import (
    LayerPrecision,
    _input_quantizer_type,
    check_supported,
    derive_precision,
    is_quantized,
)
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation

__all__ = [
    "ConversionPlan",
    "build_hls_config",
    "hls4ml_ready_model",
    "input_fixed_type",
    "logits_layer_name",
    "plan_conversion",
    "softmax_settings",
]


def hls4ml_ready_model(model: Any) -> Any:
    """``model`` itself, or a copy hls4ml can convert and hepfpga can trace layer by layer:
    pruning wrappers stripped, Sequential made functional, built-in activations split into
    ``<name>_<activation>`` layers, an input named ``input`` renamed ``input_layer``.

    See :func:`hepfpga.firmware.layers.ready_model`; the copy has the same weights and
    computes the same function.
    """
    return ready_model(model)


def input_fixed_type(model: Any) -> FixedType:
    """The hardware input type: that of the ``QActivation(quantized_bits)`` after the input.

    Raises :class:`~hepfpga.errors.ConfigError` (``firmware.input_type``) when the model has
    no such quantizer (:func:`hepfpga.firmware.precision.input_types` then chooses the
    documented default).
    """
    if len(model.inputs) != 1:
        raise ConversionError(f"expected a model with one input, got {len(model.inputs)}")
    name = model.inputs[0].node.layer.name
    fixed = _input_quantizer_type(model, name)
    if fixed is None:
        raise ConfigError(
            f"cannot derive the hardware input type: the input '{name}' is not followed by "
            "QActivation(quantized_bits(...)); add one or set firmware.input_type explicitly "
            "(e.g. 'ap_fixed<16,6,AP_RND_CONV,AP_SAT>')",
            path="firmware.input_type",
        )
    return fixed


def _feeding(model: Any, name: str) -> str:
    for node in model_graph(model):
        if node.name == name:
            return node.inputs[0]
    raise KeyError(name)


def logits_layer_names(model: Any) -> dict[str, str]:
    """For every model output (layer name, in output order): the layer whose output feeds its
    softmax (its logits), or the output layer itself when it is no softmax."""
    out = {}
    for name in output_names(model):
        layer = model.get_layer(name)
        out[name] = _feeding(model, name) if is_softmax(layer) else name
    return out


def logits_layer_name(model: Any) -> str:
    """Name of the layer whose output feeds the final softmax (the logits) of the model's
    first output.

    A model without a final softmax has its output layer as "logits".
    """
    last = model.get_layer(output_names(model)[0])
    if not is_softmax(last):
        return str(last.name)
    return _feeding(model, last.name)


def softmax_settings(
    options: FirmwareOptions, n_classes: int, logits_type: FixedType
) -> dict[str, Any]:
    """hls4ml layer keys of the final softmax for ``options.softmax``.

    * ``stable``: tables of ``softmax_table_size`` entries, types from the ``softmax_*``
      options (see this module's docstring).
    * ``tuned``: ``max - logit`` keeps every fractional bit of the logits (``F``) and 4
      integer bits (differences of 16 or more give ``exp(-16) = 1.1e-7``), so the exp table
      has ``2**(4 + F)`` entries (at most ``2**16``: beyond, the difference is rounded) and
      each entry is one exact difference; the sum is addressed with
      ``softmax_tuned_inv_bits`` bits (default 16, the dominant error: ~6e-5; 20 bits give
      ~4e-6 at 2**20 table entries); tables hold 24-bit values; the result 24 fractional bits.
    * ``latency``: hls4ml's ``latency`` implementation with hls4ml's default types
      (``ap_fixed<18,8>`` tables of 1024 entries).
    * ``argmax``: hls4ml's ``argmax`` (one-hot, exact).
    * ``logits``: the layer is skipped (hls4ml ``skip``); the outputs are the logits.
    """
    # per-backend overrides (Quartus: signed types) live on the registered backend
    return options.backend.info.softmax_settings(_softmax_settings(options, n_classes, logits_type))


def _softmax_settings(
    options: FirmwareOptions, n_classes: int, logits_type: FixedType
) -> dict[str, Any]:
    mode = options.softmax
    sum_bits = n_classes.bit_length()  # the sum of n values in (0, 1] with one equal to 1: [1, n]
    if mode is SoftmaxMode.LOGITS:
        return {"Skip": True}
    if mode is SoftmaxMode.ARGMAX:
        return {"Implementation": "argmax", "Precision": {"result": "ap_ufixed<1,1>"}}
    if mode is SoftmaxMode.LATENCY:
        return {"Implementation": "latency", "TableSize": 1024}
    if mode is SoftmaxMode.TUNED:
        range_bits = 4
        bits = min(range_bits + max(logits_type.fractional, 0), 16)
        inv_bits = options.softmax_tuned_inv_bits
        table = FixedType(24, 1, signed=False, **RND_SAT)
        return {
            "Implementation": "stable",
            "exp_table_size": 2**bits,
            "inv_table_size": 2**inv_bits,
            "TableSize": 2**bits,
            "Precision": {
                "result": FixedType(24, 0, signed=False, **RND_SAT).to_hls(),
                "accum": FixedType(23 + sum_bits, sum_bits, signed=False, **RND_SAT).to_hls(),
            },
            "inp_norm_t": FixedType(bits, range_bits, signed=False, **RND_SAT).to_hls(),
            "inv_inp_t": FixedType(inv_bits, sum_bits, signed=False, **RND_SAT).to_hls(),
            "exp_table_t": table.to_hls(),
            "inv_table_t": table.to_hls(),
        }
    bits = options.softmax_table_bits
    if sum_bits >= bits:
        raise ConfigError(
            f"a softmax over {n_classes} classes needs a table of more than 2**{sum_bits} entries",
            path="firmware.softmax_table_size",
        )
    frac = options.softmax_exp_table.fractional
    types = {
        "inp_norm_t": FixedType(bits, options.softmax_range_bits, signed=False, **RND_SAT),
        "inv_inp_t": FixedType(bits, sum_bits, signed=False, **RND_SAT),
        "exp_table_t": options.softmax_exp_table,
        "inv_table_t": options.softmax_inv_table,
    }
    return {
        "Implementation": "stable",
        "TableSize": options.softmax_table_size,
        # accum and result are read from "Precision"; the other *_t only as layer keys
        "Precision": {
            "result": options.softmax_result.to_hls(),
            "accum": FixedType(frac + sum_bits, sum_bits, signed=False, **RND_SAT).to_hls(),
        },
        **{key: value.to_hls() for key, value in types.items()},
    }


@dataclass
class ConversionPlan:
    """What hepfpga gives hls4ml for one model: the ready model, its config and types."""

    #: the model hls4ml converts (:func:`hls4ml_ready_model`)
    model: Any
    #: hls4ml's ``hls_config`` (``granularity='name'``)
    hls_config: dict[str, Any]
    #: derived types per (ready) layer name
    precision: dict[str, LayerPrecision]
    #: name of the layer whose outputs are the logits
    logits_layer: str
    #: whether the model is a QKeras model (exact) or a float one (profiled types)
    quantized: bool
    #: multiplications per event, summed over the layers (what io_parallel unrolls)
    multiplications: int = 0

    def size_advice(self, options: FirmwareOptions) -> str | None:
        """A sentence proposing io_stream / Resource when the fully unrolled design is
        large, or None. Unrolled: ``multiplications / reuse``."""
        unrolled = self.multiplications // options.reuse_factor
        if options.io_type.value != "io_parallel" or unrolled <= LARGE_UNROLLED:
            return None
        return (
            f"the model unrolls {unrolled:,} multiplications per event in io_parallel "
            f"(more than {LARGE_UNROLLED:,}); the design is then large (FPGA resources, "
            "synthesis time): consider --io-type io_stream --strategy resource "
            "--reuse-factor 8 (or more)"
        )


#: unrolled multiplications above which the size advice is given (the jet MLP has 4,256;
#: hls4ml's example Conv1D tagger KERAS_conv1d 9.2e6, whose C simulation took 22 minutes of
#: g++ here until hepfpga.firmware.fill_buffer, 20 s since)
LARGE_UNROLLED = 100_000


def plan_conversion(
    model: Any,
    options: FirmwareOptions | None = None,
    *,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> ConversionPlan:
    """Derive every type of ``model`` and hls4ml's config for it.

    ``ranges`` (from :func:`hepfpga.firmware.precision.profile_ranges` of the ready model) is
    needed for float models. Raises :class:`~hepfpga.errors.ConversionError` for layers or
    quantizers whose firmware would not reproduce QKeras, listing what is supported.
    """
    options = options if options is not None else FirmwareOptions()
    ready = hls4ml_ready_model(model)
    check_supported(ready)
    quantized = is_quantized(ready)
    logits = logits_layer_name(ready)
    outputs = output_names(ready)
    allowed = options.backend.info.softmax_modes
    if logits != outputs[0] and options.softmax.value not in allowed:
        raise ConfigError(
            f"softmax '{options.softmax.value}' does not compile with the "
            f"{options.backend.value} backend of hls4ml; accepted there: {', '.join(allowed)}",
            path="firmware.softmax",
        )
    precision = derive_precision(ready, options, ranges=ranges)
    config = parsed_hls_config(ready, options)
    # keep batch normalization a layer of its own, so each Keras layer has a traced twin
    config["SkipOptimizers"] = ["fuse_batch_normalization"]
    layers: dict[str, dict[str, Any]] = config["LayerName"]
    graph = {node.name: node for node in model_graph(ready)}
    for layer in ready.layers:
        entry = layers.setdefault(layer.name, {})
        types = precision[layer.name]
        if is_softmax(layer):
            feeding = graph[layer.name].inputs[0]
            # the softmax's own (single) shape: the feeding layer may be an InputLayer, whose
            # output_shape is a list of shapes
            n_classes = int(layer.output_shape[-1])
            final = layer.name in outputs
            # only the final softmax follows firmware.softmax; others are tables
            layer_options = options if final else replace(options, softmax=SoftmaxMode.STABLE)
            entry.pop("Precision", None)
            for key in ("Implementation", "TableSize", "exp_table_t", "inv_table_t"):
                entry.pop(key, None)
            softmax = softmax_settings(layer_options, n_classes, precision[feeding].result)
            entry.update(softmax)
            entry["Trace"] = layer_options.softmax is not SoftmaxMode.LOGITS
            result = softmax.get("Precision", {}).get("result")
            if result is not None:
                precision[layer.name] = replace(types, result=FixedType.parse(result))
            continue
        # recurrent layers keep hls4ml's keys for their internal types ('auto', the tables)
        entry_precision: dict[str, str] = dict(entry.get("Precision", {})) if types.extra else {}
        entry_precision.update({key: value.to_hls() for key, value in types.hls_types().items()})
        entry["Precision"] = entry_precision
        table = table_type(layer)
        if table is not None:
            # a layer-level '<name>_t' key: hls4ml 1.3 sets an activation's table_t from it
            # (a Precision 'table' entry is never read: the table stayed ap_fixed<18,8>)
            entry["table_t"] = table.to_hls()
        entry["Trace"] = True
        handler = handler_for(layer)
        if handler.settings is not None:
            entry.update(handler.settings(layer))
        entry.update(dict(types.settings))
        if handler.hls_entries is not None:
            incoming = [precision[name].result for name in graph[layer.name].inputs]
            for name, extra in handler.hls_entries(layer, types, incoming).items():
                layers.setdefault(name, {}).update(extra)
        # hls4ml splits a linear built-in activation off into '<name>_linear' (other built-in
        # activations are split by hls4ml_ready_model already)
        key = f"{layer.name}_linear"
        if key in layers:
            layers[key].setdefault("Precision", {})["result"] = types.result.to_hls()
            layers[key]["Trace"] = True
    for name in _outputs_passing_input_through(graph, outputs, precision):
        # hls4ml removes a linear activation (a quantizer) whose type equals its input's; an
        # output that the input reaches through such layers would become the input variable
        # itself, declared twice in the top function (g++: "redefinition of 'result_t*
        # <input>'"). The output keeps its width but other rounding/overflow modes, so hls4ml
        # keeps it as a cast; every value of its input is representable, so the cast is exact.
        exact = precision[name].result
        kept = (
            replace(exact, rounding=Rounding.RND_CONV, saturation=Saturation.SAT)
            if (exact.rounding, exact.saturation) == (Rounding.TRN, Saturation.WRAP)
            else replace(exact, rounding=Rounding.TRN, saturation=Saturation.WRAP)
        )
        layers[name].setdefault("Precision", {})["result"] = kept.to_hls()
    multiplications = sum(
        handler_for(node.layer).multiplications(node.layer) for node in model_graph(ready)
    )
    return ConversionPlan(
        model=ready,
        hls_config=config,
        precision=precision,
        # the hls4ml layer holding the logits (TimeDistributed: its end marker)
        logits_layer=traced_name(ready.get_layer(logits)),
        quantized=quantized,
        multiplications=multiplications,
    )


#: layers hls4ml may remove as an identity (a linear activation, a quantizer whose type
#: equals its input's)
_PASS_THROUGH = frozenset({"Activation", "QActivation"})


def _outputs_passing_input_through(
    graph: dict[str, Any], outputs: list[str], precision: dict[str, Any]
) -> list[str]:
    """The model outputs that hls4ml would turn into a model input: reached from an input
    through activations only, with the input's type."""
    found = []
    for name in outputs:
        node = graph[name]
        while node.class_name in _PASS_THROUGH and len(node.inputs) == 1:
            node = graph[node.inputs[0]]
        if (
            node.name != name
            and node.class_name == "InputLayer"
            and precision[name].result == precision[node.name].result
        ):
            found.append(name)
    return found


def parsed_hls_config(model: Any, options: FirmwareOptions, what: str = "the model") -> dict:
    """hls4ml's own per-layer ``hls_config`` of ``model`` (``granularity='name'``) for the
    backend and reuse factor of ``options``, with their strategy: the start of every config
    hepfpga hands to hls4ml; a model hls4ml cannot parse is a :class:`ConversionError`."""
    # deferred: hls4ml loads slowly
    import hls4ml

    try:
        config = hls4ml.utils.config_from_keras_model(
            model,
            granularity="name",
            backend=options.backend.info.hls4ml_name,
            default_reuse_factor=options.reuse_factor,
        )
    except Exception as exc:  # hls4ml raises bare Exception for unsupported models
        raise ConversionError(f"hls4ml could not parse {what}: {exc}") from exc
    config = copy.deepcopy(config)
    config["Model"]["Strategy"] = options.strategy.value
    return config


def build_hls_config(
    model: Any,
    options: FirmwareOptions | None = None,
    *,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """hls4ml's ``hls_config`` dict (``granularity='name'``) for a QKeras (or float) model.

    Layer keys use the names of :func:`hls4ml_ready_model` (a model input named ``input`` is
    ``input_layer`` in hls4ml). See :func:`plan_conversion`.
    """
    return plan_conversion(model, options, ranges=ranges).hls_config
