"""RTL tracers of the layer families: a QKeras layer replayed on da4ml's symbolic fixed-point
variables, bit for bit what QKeras computes (the numeric semantics are in
:mod:`hepfpga.firmware.rtl.trace`, which drives them).

A :data:`Tracer` is ``(layer, FixedVariableArray, rounding) -> FixedVariableArray``;
``rounding(variable, type)`` is the trace's ``(type) x`` (round half to even, then saturate:
:func:`hepfpga.firmware.rtl.trace.round_half_even`). A family names its tracers on its
handler (``LayerHandler.rtl``, by Keras class), and the trace finds them there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.quantize.fixed import (
    FixedType,
    Rounding,
    Saturation,
    from_quantizer,
    learned_scale,
    learned_scale_values,
)

__all__ = [
    "PO2_QUANTIZERS",
    "Rounder",
    "Tracer",
    "apply_elementwise",
    "conv_product",
    "folded_batchnorm",
    "po2_folded_type",
    "po2_values_type",
    "quantized_weights",
    "quantizer_name",
    "trace_activation",
    "trace_conv",
    "trace_dense",
    "trace_flatten",
    "trace_identity",
    "trace_maxpool",
    "trace_reshape",
]

#: ``(variable, type) -> (type) variable``: the trace's conversion of one value
Rounder = Callable[[Any, FixedType], Any]
#: ``(layer, FixedVariableArray, rounding) -> FixedVariableArray``
Tracer = Callable[[Any, Any, Rounder], Any]


def apply_elementwise(arr: Any, fn: Callable[[Any], Any]) -> Any:
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.trace import FixedVariableArray

    flat = arr._vars.ravel()
    out = np.empty(flat.size, dtype=object)
    for n, v in enumerate(flat):
        out[n] = fn(v)
    return FixedVariableArray(out.reshape(arr.shape), arr.solver_options)


def _quantizer_of(layer: Any, key: str) -> Any:
    # deferred: TensorFlow loads slowly
    from qkeras.quantizers import get_quantizer

    config = layer.get_config().get(key)
    return None if config is None else get_quantizer(config)


def _on_grid(values: np.ndarray, quantizer: Any, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    t = from_quantizer(quantizer)
    if not t.can_represent(values):
        raise ConversionError(f"{what}: the quantized values are not on the grid of {t}")
    return values


#: weight quantizers whose values are signed powers of two (a logarithmic grid)
PO2_QUANTIZERS = ("quantized_po2", "quantized_relu_po2")


def quantizer_name(quantizer: Any) -> str:
    """The class (or function) name of a QKeras quantizer, its config or string form."""
    # deferred: TensorFlow loads slowly
    from qkeras.quantizers import get_quantizer

    try:
        obj = get_quantizer(quantizer)
    except Exception:  # QKeras raises bare ValueError/KeyError for unknown names
        return str(quantizer)
    return type(obj).__name__ if hasattr(obj, "get_config") else getattr(obj, "__name__", "")


def po2_values_type(values: np.ndarray, what: str) -> FixedType:
    """The narrowest ``ap_fixed<W, I, AP_RND_CONV, AP_SAT>`` holding every value of
    ``values`` (``quantized_po2`` outputs: 0 and signed powers of two) exactly: ``I`` from the
    largest power, ``W - I`` fractional bits down to the smallest."""
    magnitudes = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    nonzero = magnitudes[magnitudes > 0]
    if not nonzero.size:
        return FixedType(2, 2, True, Rounding.RND_CONV, Saturation.SAT)
    exponents = np.log2(nonzero)
    if not np.all(exponents == np.round(exponents)):
        raise ConversionError(f"{what}: the quantized values are not all powers of two")
    top, bottom = int(exponents.max()), int(exponents.min())
    # the sign bit and one bit so that +2**top fits: I = top + 2
    return FixedType(top - bottom + 2, top + 2, True, Rounding.RND_CONV, Saturation.SAT)


def po2_folded_type(unscaled: FixedType, scale: np.ndarray, what: str) -> FixedType:
    """The exact type of ``scale_j * u`` for ``u`` of type ``unscaled`` and power-of-two
    ``scale_j`` (a learned ``alpha='auto_po2'`` scale): ``max e`` more integer bits and
    ``-min e`` more fractional bits, ``ap_fixed<W + max e - min e, I + max e, AP_RND_CONV,
    AP_SAT>``."""
    exponents = np.log2(np.asarray(scale, dtype=np.float64))
    if not np.all(exponents == np.round(exponents)):
        raise ConversionError(f"{what}: the learned scale {scale} is not a power of two")
    top, bottom = int(exponents.max()), int(exponents.min())
    return FixedType(
        unscaled.width + top - bottom,
        unscaled.integer + top,
        True,
        Rounding.RND_CONV,
        Saturation.SAT,
    )


def _quantized(layer: Any, key: str, weights: Any) -> np.ndarray:
    quantizer = _quantizer_of(layer, f"{key}_quantizer")
    what = f"layer '{layer.name}' {key}"
    if quantizer is None:
        raise ConversionError(f"{what} has no quantizer; the RTL needs quantized weights")
    scale = learned_scale(quantizer) if key == "kernel" else None
    if scale == "auto":
        raise ConversionError(
            f"{what}: {quantizer} learns a float32 scale (alpha='auto'), which QKeras applies "
            "in float32 arithmetic, not fixed-point; the RTL trace needs alpha='auto_po2' or "
            "alpha=1"
        )
    if scale == "auto_po2":
        unscaled, channel = learned_scale_values(quantizer, weights)
        values = unscaled * channel
        folded = po2_folded_type(from_quantizer(quantizer, unscaled=True), channel, what)
        if not folded.can_represent(values):
            raise ConversionError(f"{what}: the scaled weights are not on the grid of {folded}")
        return values
    if quantizer_name(quantizer) in PO2_QUANTIZERS:
        values = np.asarray(quantizer(weights), dtype=np.float64)
        po2_values_type(values, what)  # refuses values off the power-of-two grid
        return values
    return _on_grid(np.asarray(quantizer(weights)), quantizer, what)


def folded_batchnorm(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias a ``QConv2DBatchnorm`` quantizes at inference, in float32 exactly
    as QKeras computes them: ``inv = gamma * rsqrt(moving_variance + eps)``, kernel
    ``inv * kernel``, bias ``inv * (bias - moving_mean) + beta``."""
    # deferred: TensorFlow loads slowly
    import tensorflow as tf

    bn = layer.batchnorm
    inv = tf.math.rsqrt(bn.moving_variance + bn.epsilon)
    if bn.gamma is not None:
        inv *= bn.gamma
    bias = layer.bias if layer.use_bias else 0.0
    folded_bias = inv * (bias - bn.moving_mean)
    if bn.beta is not None:
        folded_bias = folded_bias + bn.beta
    return np.asarray(inv * layer.kernel), np.asarray(folded_bias)


def quantized_weights(layer: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The weights QKeras multiplies with: each quantizer applied to the float weights (the
    folded ones of a ``QConv2DBatchnorm``)."""
    if hasattr(layer, "batchnorm"):
        kernel, bias = folded_batchnorm(layer)
        return _quantized(layer, "kernel", kernel), _quantized(layer, "bias", bias)
    kernel = _quantized(layer, "kernel", layer.kernel)
    return kernel, (_quantized(layer, "bias", layer.bias) if layer.use_bias else None)


def _layer_activation(layer: Any, y: Any, rounding: Rounder) -> Any:
    """The ``activation=`` of a QDense/QConv (linear, or a quantizer)."""
    activation = layer.get_config().get("activation", "linear")
    if activation in (None, "linear"):
        return y
    return _activation(layer, activation, y, rounding)


def _activation(layer: Any, activation: Any, y: Any, rounding: Rounder) -> Any:
    # deferred: TensorFlow loads slowly
    from qkeras.quantizers import get_quantizer

    if activation in ("linear", None):
        return y
    if activation == "relu":
        return apply_elementwise(y, lambda v: v.relu())
    try:
        quantizer = get_quantizer(activation)
    except Exception as exc:
        raise ConversionError(
            f"layer '{layer.name}': activation {activation!r} is not supported in the RTL; "
            "supported: linear, relu, quantized_relu, quantized_bits"
        ) from exc
    name = quantizer_name(quantizer)
    if name in _NOT_TRACED:
        raise ConversionError(
            f"layer '{layer.name}': {name} is not traced to RTL ({_NOT_TRACED[name]}); "
            f"supported: {', '.join(_TRACED)}"
        )
    target = from_quantizer(quantizer)
    if name not in _TRACED:
        raise ConversionError(
            f"layer '{layer.name}': {quantizer} is not supported in the RTL; "
            f"supported: {', '.join(_TRACED)}"
        )
    if name == "quantized_sigmoid":
        # clip(0.5 x + 0.5, 0, 1), rounded and saturated: the saturation is the clip
        return apply_elementwise(y, lambda v: rounding(v * 0.5 + 0.5, target))
    slope: Any = getattr(quantizer, "negative_slope", None)
    if name == "quantized_relu" and slope:
        raise ConversionError(
            f"layer '{layer.name}': a leaky quantized_relu is not traced to RTL (da4ml's "
            "trace has no select between x and a * x); use quantized_relu without a slope"
        )
    return apply_elementwise(y, lambda v: rounding(v, target))


#: the activation quantizers the RTL trace reproduces (quantized_tanh becomes quantized_bits)
_TRACED = ("quantized_bits", "quantized_relu", "quantized_sigmoid", "quantized_tanh")
#: why the others are not traced
_NOT_TRACED = {
    "binary_tanh": "a sign function, which da4ml's trace has no comparison for; use "
    "quantized_bits(2, 1)",
    "binary": "a sign function, which da4ml's trace has no comparison for",
    "ternary": "a threshold function, which da4ml's trace has no comparison for",
}


def trace_dense(layer: Any, x: Any, rounding: Rounder) -> Any:
    """QDense: ``x @ kernel + bias`` (exact), then its activation."""
    kernel, bias = quantized_weights(layer)
    if x.ndim != 1:
        raise ConversionError(f"layer '{layer.name}': QDense on a {x.ndim}-d input")
    y = x @ kernel
    if bias is not None:
        y = y + bias
    return _layer_activation(layer, y, rounding)


def _windows(
    in_shape: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...]
) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Output spatial shape and the top-left corner of every window of a 'valid' scan."""
    out = tuple((n - k) // s + 1 for n, k, s in zip(in_shape, kernel, strides, strict=True))
    corners = [
        tuple(o * s for o, s in zip(index, strides, strict=True)) for index in np.ndindex(*out)
    ]
    return out, corners


def _same_padding(x: Any, kernel: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """``x`` padded with exact zeros as Keras' ``padding='same'`` does (extra row/column at
    the end when the total is odd)."""
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.trace import FixedVariable, FixedVariableArray

    pads = []
    for n, k, s in zip(x.shape[:-1], kernel, strides, strict=True):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    zero = FixedVariable.from_const(0.0, hwconf=x._vars.ravel()[0].hwconf)
    shape = tuple(n + a + b for n, (a, b) in zip(x.shape[:-1], pads, strict=True))
    padded = np.full((*shape, x.shape[-1]), zero, dtype=object)
    inner = tuple(slice(a, a + n) for n, (a, _) in zip(x.shape[:-1], pads, strict=True))
    padded[inner] = x._vars
    return FixedVariableArray(padded, x.solver_options)


def trace_conv(layer: Any, x: Any, rounding: Rounder) -> Any:
    """QConv1D/QConv2D: one exact product per window ('valid' or 'same'), then its
    activation."""
    kernel, bias = quantized_weights(layer)
    return _layer_activation(layer, conv_product(layer, x, kernel, bias), rounding)


def conv_product(layer: Any, x: Any, kernel: np.ndarray, bias: np.ndarray | None) -> Any:
    """The exact ``sum(window * kernel) + bias`` of a Keras Conv1D/Conv2D ``layer`` (its
    strides and 'valid'/'same' padding, channels last, no dilation) for the given weights,
    one constant matrix product per window; no activation."""
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.trace import FixedVariableArray

    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"layer '{layer.name}': only channels_last is supported")
    if any(d != 1 for d in np.ravel(config.get("dilation_rate", 1))):
        raise ConversionError(f"layer '{layer.name}': dilation is not supported")
    ksize = kernel.shape[:-2]
    strides = tuple(int(s) for s in np.broadcast_to(config["strides"], (len(ksize),)))
    padding = config["padding"]
    if padding == "same":
        x = _same_padding(x, ksize, strides)
    elif padding != "valid":
        raise ConversionError(
            f"layer '{layer.name}': padding='{padding}' is not supported; use 'valid' or 'same'"
        )
    out_shape, corners = _windows(x.shape[:-1], ksize, strides)
    matrix = kernel.reshape(-1, kernel.shape[-1])
    columns = []
    for corner in corners:
        window = tuple(slice(c, c + k) for c, k in zip(corner, ksize, strict=True))
        patch = FixedVariableArray(x._vars[window].ravel(), x.solver_options)
        y = patch @ matrix
        if bias is not None:
            y = y + bias
        columns.append(y._vars)
    return FixedVariableArray(np.stack(columns).reshape(*out_shape, -1), x.solver_options)


def trace_maxpool(layer: Any, x: Any, rounding: Rounder) -> Any:
    """MaxPooling1D/2D ('valid'): the exact maximum of every window."""
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.trace import FixedVariableArray

    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"layer '{layer.name}': only channels_last is supported")
    pool = tuple(int(p) for p in np.ravel(config["pool_size"]))
    strides = tuple(int(s) for s in np.ravel(config["strides"] or pool))
    if config["padding"] != "valid":
        raise ConversionError(
            f"layer '{layer.name}': padding='{config['padding']}' is not supported; use 'valid'"
        )
    out_shape, corners = _windows(x.shape[:-1], pool, strides)
    cells = []
    for corner in corners:
        window = tuple(slice(c, c + k) for c, k in zip(corner, pool, strict=True))
        block = x._vars[window].reshape(-1, x.shape[-1])
        cells.append([_max_of_all(block[:, ch]) for ch in range(x.shape[-1])])
    return FixedVariableArray(
        np.array(cells, dtype=object).reshape(*out_shape, -1), x.solver_options
    )


def trace_flatten(layer: Any, x: Any, rounding: Rounder) -> Any:
    """Flatten: the same values, one axis."""
    return x.ravel()


def trace_reshape(layer: Any, x: Any, rounding: Rounder) -> Any:
    """Reshape: the same values, in the target shape."""
    return x.reshape(tuple(layer.get_config()["target_shape"]))


def trace_activation(layer: Any, x: Any, rounding: Rounder) -> Any:
    """Activation / QActivation: relu, or the quantizer's ``(type) x``."""
    return _activation(layer, layer.get_config()["activation"], x, rounding)


def trace_identity(layer: Any, x: Any, rounding: Rounder) -> Any:
    """Dropout: the identity at inference."""
    return x


def _max_of_all(values: np.ndarray) -> Any:
    """Balanced tree of maxima (exact)."""
    items = list(values)
    while len(items) > 1:
        pairs = [items[n].max_of(items[n + 1]) for n in range(0, len(items) - 1, 2)]
        items = pairs + ([items[-1]] if len(items) % 2 else [])
    return items[0]
