"""Automatic precision: the type of every layer, derived before hls4ml sees the model.

Two regimes, chosen by :func:`is_quantized` (does the model have QKeras layers?):

**QKeras models: types from the quantizers, so the logits are exact.**

* *Input*: the type of the ``QActivation(quantized_bits)`` after the input (rounding half to
  even and saturating like QKeras), or ``firmware.input_type``.
* *Weights, biases and quantized activations*: the ``ap_fixed`` twin of each quantizer
  (:func:`hepfpga.quantize.fixed.from_quantizer`); ``binary``/``ternary`` weights are stored
  as ``ap_int<2>`` holding -1, 0, +1.
* *Dense/Conv1D/Conv2D* accumulator and result: wide enough that no sum is rounded or
  overflows (hls4ml's own rule): ``input + weight + ceil(log2(n_ops))`` bits, one more for
  the bias and as many fractional bits as the finer of product and bias. ``n_ops`` is the
  fan-in (``n_in``, ``kernel * channels``).
* *Batch normalization* (``BatchNormalization``, or ``QBatchNormalization`` with its four
  parameter quantizers set to None: hls4ml ignores QKeras' default power-of-two ones) is kept
  as its own layer (hls4ml's fusion into the previous layer is switched off so every Keras
  layer can be traced): ``scale = gamma / sqrt(var + eps)`` and
  ``bias = beta - mean * scale`` are stored with 24 significant bits (float32's), the product
  and sum exactly. Keras computes them in float32, so the two agree exactly up to float32
  rounding: a following quantizer sees a different value only when the exact result lies
  within one float32 ulp of a rounding tie.
* *ReLU, linear, Flatten, Reshape, Dropout, MaxPooling*: the input type (exact).
  *AveragePooling* of ``n`` values: ``log2(n)`` more fractional bits (exact when ``n`` is a
  power of two).

**Float models: types proposed from profiled ranges** of a data sample: each output gets
``float_width`` bits with the integer bits of its largest magnitude plus one bit of headroom
(``ap_fixed<W, I, AP_RND, AP_SAT>``); weights and biases likewise from their values. The
firmware then only approximates the model; ``hepfpga verify`` states the tolerance and shows
the profiled ranges against the chosen types.

``firmware.layer_types`` overrides any derived type of a layer; the types after it are derived
from the overridden one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError, ConversionError
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation, from_quantizer

__all__ = [
    "SUPPORTED_LAYERS",
    "LayerPrecision",
    "derive_precision",
    "is_quantized",
    "profile_ranges",
    "strip_pruning",
]

_DENSE = ("Dense", "QDense")
_CONV1D = ("Conv1D", "QConv1D")
_CONV2D = ("Conv2D", "QConv2D")
_WEIGHTED = (*_DENSE, *_CONV1D, *_CONV2D)
_BATCHNORM = ("BatchNormalization", "QBatchNormalization")
_MAX_POOL = ("MaxPooling1D", "MaxPooling2D")
_AVG_POOL = ("AveragePooling1D", "AveragePooling2D")
_PASS_THROUGH = ("Dropout", "Flatten", "Reshape", "ReLU")
_ACTIVATIONS = ("Activation", "QActivation")
#: Keras/QKeras layer classes hepfpga converts (pruning wrappers are stripped first)
SUPPORTED_LAYERS = (
    "InputLayer",
    *_WEIGHTED,
    *_BATCHNORM,
    *_MAX_POOL,
    *_AVG_POOL,
    *_PASS_THROUGH,
    *_ACTIVATIONS,
)
_EXACT_ACTIVATIONS = ("linear", "relu")
_TABLE_ACTIVATIONS = ("sigmoid", "tanh", "softmax")
_Q_LAYERS = ("QDense", "QConv1D", "QConv2D", "QActivation", "QBatchNormalization")

#: significant bits of batch-norm scale/bias (float32's significand)
_BN_SIGNIFICANT_BITS = 24
_RND_SAT = {"rounding": Rounding.RND, "saturation": Saturation.SAT}


@dataclass(frozen=True)
class LayerPrecision:
    """The derived types of one layer and where they come from."""

    name: str
    class_name: str
    result: FixedType
    accum: FixedType | None = None
    weight: FixedType | None = None
    bias: FixedType | None = None
    scale: FixedType | None = None
    #: how ``result`` was chosen, in words
    source: str = ""
    #: (min, max) of the layer's output on the profiling sample (float models)
    profiled: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"class": self.class_name, "source": self.source}
        for key in ("result", "accum", "weight", "bias", "scale"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.to_hls()
        if self.profiled is not None:
            out["profiled_min"], out["profiled_max"] = self.profiled
            out["type_min"], out["type_max"] = self.result.min_value, self.result.max_value
        return out


def strip_pruning(model: Any) -> Any:
    """``model`` without tfmot pruning wrappers (the pruned weights, masks applied)."""
    if not any(type(layer).__name__ == "PruneLowMagnitude" for layer in model.layers):
        return model
    import tensorflow_model_optimization as tfmot
    from tensorflow import keras

    stripped = tfmot.sparsity.keras.strip_pruning(model)
    # strip_pruning reuses the unwrapped layers, which then belong to two graphs; a fresh
    # clone gives each layer one inbound node again
    clone = keras.models.clone_model(stripped)
    clone.set_weights(stripped.get_weights())
    return clone


def is_quantized(model: Any) -> bool:
    """Whether ``model`` has QKeras layers (then its types come from the quantizers)."""
    return any(type(layer).__name__ in _Q_LAYERS for layer in model.layers)


def _inbound(layer: Any) -> list[Any]:
    found: list[Any] = []
    for node in layer.inbound_nodes:
        inbound = node.inbound_layers
        found.extend(inbound if isinstance(inbound, (list, tuple)) else [inbound])
    return found


def check_supported(model: Any) -> None:
    """Refuse layers hepfpga cannot convert and graphs that are not a single chain."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED_LAYERS:
            raise ConversionError(
                f"layer '{layer.name}' ({kind}) is not supported; supported: "
                f"{', '.join(SUPPORTED_LAYERS)} (tfmot pruning wrappers are stripped)"
            )
        if kind != "InputLayer" and len(_inbound(layer)) != 1:
            raise ConversionError(
                f"layer '{layer.name}' has {len(_inbound(layer))} inputs; only single-input, "
                "single-output chains of layers are supported"
            )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConversionError(
            f"expected one input and one output, got {len(model.inputs)} and {len(model.outputs)}"
        )


def _activation_name(layer: Any) -> str:
    activation = layer.get_config().get("activation")
    if isinstance(activation, dict):  # serialized quantizer
        return str(activation.get("class_name", activation))
    return str(activation)


def _int_bits(magnitude: float, signed: bool) -> int:
    """Integer bits (sign included when signed) that hold ``magnitude``, one bit of headroom."""
    if magnitude <= 0 or not math.isfinite(magnitude):
        return 1
    return math.floor(math.log2(magnitude)) + 1 + (1 if signed else 0) + 1


def covering_type(values: Any, width: int, *, signed: bool = True) -> FixedType:
    """``ap_fixed<width, I, AP_RND, AP_SAT>`` with ``I`` the bits of ``max|values|`` + 1."""
    array = np.asarray(values, dtype=np.float64)
    magnitude = float(np.max(np.abs(array))) if array.size else 0.0
    return FixedType(width, _int_bits(magnitude, signed), signed, **_RND_SAT)


def _significant_type(values: Any, significant: int) -> FixedType:
    """A signed type holding every value of ``values`` to ``significant`` significant bits."""
    array = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    nonzero = array[array > 0]
    if not nonzero.size:
        return FixedType(2, 1, True, **_RND_SAT)
    integer = math.floor(math.log2(float(nonzero.max()))) + 2
    smallest = math.floor(math.log2(float(nonzero.min())))
    fractional = min(max(significant - 1 - smallest, 0), 48 - integer)
    return FixedType(integer + fractional, integer, True, **_RND_SAT)


def _sum_type(x: FixedType, w: FixedType, b: FixedType | None, n_ops: int) -> FixedType:
    """hls4ml's exact type of ``sum(x * w) + b`` over ``n_ops`` products (never rounds)."""
    extra = math.ceil(math.log2(n_ops)) if n_ops > 1 else 0
    width = w.width + x.width + extra
    integer = w.integer + x.integer + extra
    signed = w.signed or x.signed
    if b is not None:
        frac = width - integer
        integer = max(integer + (b.signed and not signed), b.integer + (signed and not b.signed))
        integer += 1
        width = integer + max(frac, b.fractional)
        signed = signed or b.signed
    return FixedType(width, integer, signed)


def _add_type(a: FixedType, b: FixedType) -> FixedType:
    """hls4ml's exact type of ``a + b`` (as for batch normalization)."""
    signed = a.signed or b.signed
    integer = max(a.integer + (b.signed and not a.signed), b.integer + (a.signed and not b.signed))
    integer += 1
    return FixedType(integer + max(a.fractional, b.fractional), integer, signed)


def _bn_parameters(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """``scale`` and ``bias`` of a batch normalization, as hls4ml computes them (float64)."""
    config = layer.get_config()
    weights = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
    mean = weights["moving_mean"].astype(np.float64)
    variance = weights["moving_variance"].astype(np.float64)
    gamma = weights.get("gamma", np.ones_like(mean)).astype(np.float64)
    beta = weights.get("beta", np.zeros_like(mean)).astype(np.float64)
    scale = gamma / np.sqrt(variance + config["epsilon"])
    return scale, beta - mean * scale


def _weight_types(layer: Any) -> tuple[FixedType, FixedType | None]:
    config = layer.get_config()
    types: list[FixedType | None] = []
    for key in ("kernel_quantizer", "bias_quantizer"):
        quantizer = config.get(key)
        if quantizer is None:
            if key == "bias_quantizer" and not config.get("use_bias", True):
                types.append(None)
                continue
            raise ConversionError(
                f"layer '{layer.name}' has no {key}; in a QKeras model every weight must be "
                "quantized for bit-exact firmware"
            )
        fixed = from_quantizer(quantizer)
        if not fixed.signed and fixed.width > 1:
            # hls4ml 1.3 stores weights in the quantizer's own hls_type, which ignores
            # keep_negative=False and so drops the least significant bit
            raise ConversionError(
                f"layer '{layer.name}': {key} with keep_negative=False is stored with one bit "
                "too few by hls4ml 1.3; use a signed quantizer"
            )
        if fixed.width <= 2 and fixed.integer == fixed.width:  # binary/ternary: -1, 0, +1
            fixed = FixedType(2, 2, True)
        types.append(fixed)
    weight, bias = types
    assert weight is not None
    return weight, bias


def _n_ops(layer: Any) -> int:
    kind = type(layer).__name__
    kernel = layer.get_weights()[0] if layer.get_weights() else None
    if kernel is None:
        raise ConversionError(f"layer '{layer.name}' ({kind}) has no weights")
    return int(np.prod(kernel.shape[:-1]))


def profile_ranges(model: Any, x: Any) -> dict[str, tuple[float, float]]:
    """(min, max) of every layer's output (and the input) of ``model`` on the events ``x``."""
    from tensorflow import keras

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = probe.predict(np.asarray(x, dtype=np.float32), verbose=0, batch_size=1024)
    if len(layers) == 1:
        outputs = [outputs]
    ranges = {
        layer.name: (float(np.min(out)), float(np.max(out)))
        for layer, out in zip(layers, outputs, strict=True)
    }
    values = np.asarray(x, dtype=np.float64)
    ranges[model.inputs[0].node.layer.name] = (float(values.min()), float(values.max()))
    return ranges


def _profiled_type(ranges: Mapping[str, tuple[float, float]], name: str, width: int) -> FixedType:
    lo, hi = ranges[name]
    return covering_type([lo, hi], width)


def derive_precision(
    model: Any,
    options: FirmwareOptions,
    *,
    input_type: FixedType | None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, LayerPrecision]:
    """The types of every layer of ``model`` (a chain, see :func:`check_supported`).

    ``input_type`` is the hardware input type (derived from the input quantizer by the caller,
    or None for float models, whose input type is profiled). ``ranges`` (from
    :func:`profile_ranges`) is needed for float models. Keys are layer names; see the module
    docstring for the rules.
    """
    check_supported(model)
    quantized = is_quantized(model)
    if not quantized and ranges is None:
        raise ConfigError(
            "a float (non-QKeras) model needs events to profile its ranges and choose its "
            "types: pass --data FILE or --random N (library: ranges=profile_ranges(model, x))",
            path="firmware",
        )
    width = options.float_width
    out: dict[str, LayerPrecision] = {}
    previous: FixedType | None = None
    for layer in model.layers:
        kind = type(layer).__name__
        name = layer.name
        profiled = ranges.get(name) if ranges is not None else None
        if kind == "InputLayer":
            if input_type is not None:
                types = LayerPrecision(name, kind, input_type, source="input quantizer")
            elif ranges is not None:
                types = LayerPrecision(
                    name,
                    kind,
                    _profiled_type(ranges, name, width),
                    source="profiled",
                    profiled=profiled,
                )
            else:
                raise ConfigError(
                    "cannot derive the hardware input type; set firmware.input_type",
                    path="firmware.input_type",
                )
        else:
            assert previous is not None
            types = _layer_types(layer, kind, previous, quantized, options, ranges)
            if profiled is not None and not quantized:
                types = replace(types, profiled=profiled)
        override = options.layer_types.get(name)
        if override is not None:
            types = replace(types, **dict(override.items()), source="firmware.layer_types")
        out[name] = types
        previous = types.result
    return out


def _layer_types(
    layer: Any,
    kind: str,
    x: FixedType,
    quantized: bool,
    options: FirmwareOptions,
    ranges: Mapping[str, tuple[float, float]] | None,
) -> LayerPrecision:
    name = layer.name
    width = options.float_width
    if kind in _WEIGHTED:
        config = layer.get_config()
        activation = config.get("activation")
        if kind.startswith("Q") or quantized:
            if kind.startswith("Q") is False:
                raise ConversionError(
                    f"layer '{name}' ({kind}) is a float layer in a QKeras model; use "
                    f"Q{kind} with quantizers so its firmware is exact"
                )
            if activation not in ("linear", None):
                raise ConversionError(
                    f"layer '{name}' has a built-in activation {activation!r}; use a separate "
                    "QActivation layer"
                )
            weight, bias = _weight_types(layer)
            result = _sum_type(x, weight, bias, _n_ops(layer))
            return LayerPrecision(
                name, kind, result, accum=result, weight=weight, bias=bias, source="exact sum"
            )
        if activation not in _EXACT_ACTIVATIONS:
            raise ConversionError(
                f"layer '{name}' has a built-in activation {activation!r}; use a separate "
                "Activation layer"
            )
        values = layer.get_weights()
        weight = covering_type(values[0], width)
        bias = covering_type(values[1], width) if len(values) > 1 else None
        accum = _sum_type(x, weight, bias, _n_ops(layer))
        assert ranges is not None
        result = _profiled_type(ranges, name, width)
        return LayerPrecision(
            name, kind, result, accum=accum, weight=weight, bias=bias, source="profiled"
        )
    if kind in _BATCHNORM:
        if kind == "QBatchNormalization":
            config = layer.get_config()
            keys = ("gamma_quantizer", "beta_quantizer", "mean_quantizer", "variance_quantizer")
            quantized_params = [key for key in keys if config.get(key) is not None]
            if quantized_params:
                raise ConversionError(
                    f"layer '{name}' (QBatchNormalization) quantizes its parameters "
                    f"({', '.join(quantized_params)}; QKeras' defaults are power-of-two "
                    "quantizers), which hls4ml 1.3 does not reproduce; set them to None or use "
                    "BatchNormalization"
                )
        scale_values, bias_values = _bn_parameters(layer)
        if quantized:
            scale = _significant_type(scale_values, _BN_SIGNIFICANT_BITS)
            bias = _significant_type(bias_values, _BN_SIGNIFICANT_BITS)
            product = FixedType(
                x.width + scale.width, x.integer + scale.integer, x.signed or scale.signed
            )
            result = _add_type(product, bias)
            return LayerPrecision(
                name, kind, result, weight=None, bias=bias, scale=scale, source="exact product"
            )
        scale = covering_type(scale_values, width)
        bias = covering_type(bias_values, width)
        assert ranges is not None
        return LayerPrecision(
            name,
            kind,
            _profiled_type(ranges, name, width),
            bias=bias,
            scale=scale,
            source="profiled",
        )
    if kind in _MAX_POOL or kind in _PASS_THROUGH:
        return LayerPrecision(name, kind, x, source="input type (exact)")
    if kind in _AVG_POOL:
        n = int(np.prod(layer.get_config()["pool_size"]))
        extra = math.ceil(math.log2(n)) if n > 1 else 0
        accum = FixedType(x.width + 2 * extra, x.integer + extra, x.signed)
        result = FixedType(x.width + extra, x.integer, x.signed)
        source = "average (exact)" if n & (n - 1) == 0 else "average (rounded: pool size not 2**k)"
        return LayerPrecision(name, kind, result, accum=accum, source=source)
    if kind == "QActivation":
        quantizer = layer.get_config()["activation"]
        result = from_quantizer(quantizer)
        return LayerPrecision(name, kind, result, source="quantizer")
    # Activation
    activation = _activation_name(layer)
    if activation in _EXACT_ACTIVATIONS:
        return LayerPrecision(name, kind, x, source="input type (exact)")
    if activation in _TABLE_ACTIVATIONS:
        if activation == "softmax":
            # the softmax layer's types are set by hls_config from firmware.softmax
            return LayerPrecision(name, kind, options.softmax_result, source="softmax")
        result = FixedType(width, 2, True, **_RND_SAT)
        return LayerPrecision(name, kind, result, source="table (approximate)")
    raise ConversionError(
        f"layer '{name}': activation {activation!r} is not supported; supported: "
        f"{', '.join(_EXACT_ACTIVATIONS + _TABLE_ACTIVATIONS)} and QActivation quantizers"
    )
