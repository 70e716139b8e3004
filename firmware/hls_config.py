"""The hls4ml configuration that makes a QKeras model's firmware bit-exact.

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
* **Softmax** is hls4ml's ``stable`` table implementation and is *not* exact. For ``n``
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
from typing import Any

from hepfpga.errors import ConfigError, ConversionError
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation, from_quantizer

__all__ = ["build_hls_config", "hls4ml_ready_model", "input_fixed_type", "logits_layer_name"]

# hls4ml refuses layers with these names (ModelGraph reserves them).
_RESERVED_NAMES = frozenset({"input"})

_WEIGHT_LAYERS = ("QDense",)
_PASS_THROUGH = ("Dropout", "Flatten")
_SUPPORTED = ("InputLayer", "QActivation", "Activation", *_WEIGHT_LAYERS, *_PASS_THROUGH)


def hls4ml_ready_model(model: Any) -> Any:
    """``model`` itself, or a copy with its input layers renamed where hls4ml reserves the name.

    hls4ml refuses a layer named ``input``; such an input becomes ``input_layer`` (or
    ``input_layer_1``, ... if taken). The copy shares no state with ``model`` and has the same
    weights, so it computes exactly the same function.
    """
    from tensorflow import keras

    names = {layer.name for layer in model.layers}
    if not names & _RESERVED_NAMES:
        return model
    if any(
        layer.name in _RESERVED_NAMES and type(layer).__name__ != "InputLayer"
        for layer in model.layers
    ):
        raise ConversionError(
            f"layer names {sorted(names & _RESERVED_NAMES)} are reserved by hls4ml; "
            "rename the layer"
        )
    new_inputs = []
    for tensor in model.inputs:
        layer = tensor.node.layer
        name = layer.name
        if name in _RESERVED_NAMES:
            base, name, k = f"{layer.name}_layer", f"{layer.name}_layer", 0
            while name in names:
                k += 1
                name = f"{base}_{k}"
            names.add(name)
        new_inputs.append(keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=name))
    clone = keras.models.clone_model(
        model, input_tensors=new_inputs if len(new_inputs) > 1 else new_inputs[0]
    )
    clone.set_weights(model.get_weights())
    return clone


def _quantizer_of(layer: Any, key: str) -> Any:
    return layer.get_config().get(key)


def input_fixed_type(model: Any) -> FixedType:
    """The hardware input type: that of the ``QActivation(quantized_bits)`` after the input.

    Raises :class:`~hepfpga.errors.ConfigError` (``firmware.input_type``) when the model has
    no such quantizer, since the firmware's input type would then be a guess.
    """
    from qkeras.quantizers import get_quantizer

    if len(model.inputs) != 1:
        raise ConversionError(f"expected a model with one input, got {len(model.inputs)}")
    input_layer = model.inputs[0].node.layer
    consumers = [layer for layer in model.layers if input_layer in _inbound_layers(layer)]
    for layer in consumers:
        if type(layer).__name__ == "QActivation":
            quantizer = get_quantizer(layer.get_config()["activation"])
            if type(quantizer).__name__ == "quantized_bits":
                return from_quantizer(quantizer)
    raise ConfigError(
        f"cannot derive the hardware input type: the input '{input_layer.name}' is not followed by "
        "QActivation(quantized_bits(...)); add one or set firmware.input_type explicitly "
        "(e.g. 'ap_fixed<16,6,AP_RND_CONV,AP_SAT>')",
        path="firmware.input_type",
    )


def _inbound_layers(layer: Any) -> list[Any]:
    found: list[Any] = []
    for node in layer.inbound_nodes:
        inbound = node.inbound_layers
        found.extend(inbound if isinstance(inbound, (list, tuple)) else [inbound])
    return found


def logits_layer_name(model: Any) -> str:
    """Name of the layer whose output feeds the final softmax (the logits)."""
    last = model.layers[-1]
    if type(last).__name__ != "Activation" or last.get_config()["activation"] != "softmax":
        raise ConversionError(
            f"expected the model to end in Activation('softmax'), got {type(last).__name__} "
            f"'{last.name}'"
        )
    return _inbound_layers(last)[0].name


def _softmax_types(options: FirmwareOptions, n_classes: int) -> dict[str, FixedType]:
    bits = options.softmax_table_bits
    sum_bits = n_classes.bit_length()  # the sum of n values in (0, 1] with one equal to 1: [1, n]
    if sum_bits >= bits:
        raise ConfigError(
            f"a softmax over {n_classes} classes needs a table of more than 2**{sum_bits} entries",
            path="firmware.softmax_table_size",
        )
    frac = options.softmax_exp_table.fractional
    rnd_sat = {"rounding": Rounding.RND, "saturation": Saturation.SAT}
    return {
        "inp_norm_t": FixedType(bits, options.softmax_range_bits, signed=False, **rnd_sat),
        "inv_inp_t": FixedType(bits, sum_bits, signed=False, **rnd_sat),
        "accum_t": FixedType(frac + sum_bits, sum_bits, signed=False, **rnd_sat),
        "exp_table_t": options.softmax_exp_table,
        "inv_table_t": options.softmax_inv_table,
        "result_t": options.softmax_result,
    }


def build_hls_config(model: Any, options: FirmwareOptions | None = None) -> dict[str, Any]:
    """hls4ml's ``hls_config`` dict (``granularity='name'``) for a QKeras model.

    Layer keys use the names of :func:`hls4ml_ready_model` (a model input named ``input`` is
    ``input_layer`` in hls4ml). The numeric semantics are described in this module's docstring.
    Raises :class:`~hepfpga.errors.ConversionError` for layers or quantizers whose firmware
    would not reproduce QKeras (e.g. ``alpha='auto'``), and :class:`ConfigError` for options
    that do not fit the model.
    """
    import hls4ml

    options = options if options is not None else FirmwareOptions()
    ready = hls4ml_ready_model(model)
    for layer in ready.layers:
        kind = type(layer).__name__
        if kind not in _SUPPORTED:
            raise ConversionError(
                f"layer '{layer.name}' ({kind}) is not supported for bit-exact firmware; "
                f"supported: {', '.join(_SUPPORTED)}"
            )
    logits = logits_layer_name(ready)
    try:
        config = hls4ml.utils.config_from_keras_model(
            ready,
            granularity="name",
            backend=options.backend.info.hls4ml_name,
            default_reuse_factor=options.reuse_factor,
        )
    except Exception as exc:  # hls4ml raises bare Exception for unsupported models
        raise ConversionError(f"hls4ml could not parse the model: {exc}") from exc
    config = copy.deepcopy(config)
    config["Model"]["Strategy"] = options.strategy.value
    layers: dict[str, dict[str, Any]] = config["LayerName"]

    input_type = options.input_type if options.input_type is not None else input_fixed_type(ready)
    layers[ready.inputs[0].node.layer.name]["Precision"]["result"] = input_type.to_hls()

    for layer in ready.layers:
        kind = type(layer).__name__
        entry = layers.get(layer.name)
        if kind in _WEIGHT_LAYERS:
            layer_config = layer.get_config()
            if layer_config.get("activation") not in ("linear", None):
                raise ConversionError(
                    f"layer '{layer.name}' has a built-in activation "
                    f"{layer_config['activation']!r}; use a separate QActivation layer"
                )
            for key, precision_key in (("kernel_quantizer", "weight"), ("bias_quantizer", "bias")):
                quantizer = _quantizer_of(layer, key)
                if quantizer is None:
                    if key == "bias_quantizer" and not layer_config.get("use_bias", True):
                        continue
                    raise ConversionError(
                        f"layer '{layer.name}' has no {key}; every weight must be quantized "
                        "for bit-exact firmware"
                    )
                fixed = from_quantizer(quantizer)
                if not fixed.signed:
                    # hls4ml 1.3 stores weights in the quantizer's own hls_type, which ignores
                    # keep_negative=False and so drops the least significant bit
                    raise ConversionError(
                        f"layer '{layer.name}': {key} with keep_negative=False is stored with "
                        "one bit too few by hls4ml 1.3; use a signed quantizer"
                    )
                entry["Precision"][precision_key] = fixed.to_hls()
            entry["Precision"]["accum"] = "auto"
            entry["Precision"]["result"] = "auto"
        elif kind == "QActivation":
            entry["Precision"]["result"] = from_quantizer(layer.get_config()["activation"]).to_hls()
        elif kind == "Activation" and layer.get_config()["activation"] == "softmax":
            n_classes = int(ready.get_layer(logits).output_shape[-1])
            types = _softmax_types(options, n_classes)
            entry["Implementation"] = "stable"
            entry["TableSize"] = options.softmax_table_size
            # accum and result are read from "Precision"; the other *_t only as layer keys
            entry["Precision"] = {
                "result": types["result_t"].to_hls(),
                "accum": types["accum_t"].to_hls(),
            }
            for key in ("exp_table_t", "inv_table_t", "inv_inp_t", "inp_norm_t"):
                entry[key] = types[key].to_hls()
        elif kind == "Activation" and layer.get_config()["activation"] != "linear":
            raise ConversionError(
                f"layer '{layer.name}': only softmax and linear Activation layers are supported; "
                "use QActivation for quantized activations"
            )
    layers[logits]["Trace"] = True
    return config
