"""An HGQ model traced into a da4ml adder graph, bit for bit what its proxy model computes.

HGQ 0.2.6 (Keras 2) has no da4ml converter (da4ml's ``converter.hgq2`` is for HGQ2 on
Keras 3), so :func:`trace_hgq_model` replays HGQ's *proxy model*
(:func:`hepfpga.quantize.hgq.proxy_model`, the model its firmware is built from) on da4ml's
symbolic fixed-point variables, as :mod:`hepfpga.firmware.rtl.trace` does for QKeras. Numeric
semantics:

* **FixedPointQuantizer** (``keep_negative``, ``bits``, ``integers``: one type per element,
  or one for all): element ``j`` becomes da4ml's ``(k, i, f) = (keep_negative_j,
  integers_j - keep_negative_j, bits_j - integers_j)`` (``bits_j = 0``: the constant 0),
  rounded ``RND`` (``floor(x * 2**f + 1/2)``, half up, HGQ's ``RND``) or ``TRN`` (floor),
  then ``WRAP`` (two's-complement wrap-around, what HGQ's ``aggressive`` proxy does outside
  the traced range), ``SAT`` or ``SAT_SYM``: exactly HGQ's ``gfixed_quantizer``. Other
  rounding modes are refused naming the layer.
* **Input.** The proxy model's first layer is the input's ``FixedPointQuantizer``; the RTL
  input of feature ``j`` is its type ``j`` (the wrapper's ports carry the widest), and the
  float features are quantized *before* the RTL by that quantizer itself (TensorFlow, as the
  proxy model and the hls4ml test bench do).
* **Dense / Conv1D / Conv2D**: ``y = b + sum(x * w)``, exact, with the proxy model's weights
  (HGQ stores them already on their per-weight grids; float32 values, exact in float64).
  da4ml sizes every adder so that nothing is rounded or overflows; the quantizer after the
  layer sets its type.
* **ReLU** / ``Activation('relu')``: ``max(0, x)``, exact; ``linear`` and ``Dropout``: the
  identity; **MaxPooling1D/2D** ('valid'): the exact maximum; **Flatten/Reshape** only
  reorder; a final softmax is not traced (the RTL ends at the logits).

Anything else (``UnaryLUT`` tables, merges, average pooling) raises a
:class:`~hepfpga.errors.ConversionError` naming the layer and the supported layers
(:data:`PROXY_TRACERS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.layers.tracers import (
    conv_product,
    trace_flatten,
    trace_identity,
    trace_maxpool,
    trace_reshape,
)
from hepfpga.firmware.rtl.trace import (
    DEFAULT_SOLVER_OPTIONS,
    TracedNetwork,
    _sequential_layers,
    round_half_even,
    trace_chain,
)
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation
from hepfpga.quantize.hgq import proxy_model
from hepfpga.registry import Registry

__all__ = ["PROXY_TRACERS", "quantizer_kif", "trace_hgq_model"]

#: HGQ's rounding modes -> da4ml's (HGQ's ``RND`` is half up: ``floor(x + 1/2)``)
_ROUNDING = Registry[str]("HGQ rounding mode", {"RND": "RND", "TRN": "TRN"})
#: HGQ's overflow modes -> da4ml's
_OVERFLOW = Registry[str]("HGQ overflow mode", {"WRAP": "WRAP", "SAT": "SAT", "SAT_SYM": "SAT_SYM"})


def quantizer_kif(layer: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """da4ml's ``(k, i, f)`` arrays (``shape``: one event's) of a ``FixedPointQuantizer``:
    ``k = keep_negative``, ``i = integers - keep_negative``, ``f = bits - integers``; an
    element of 0 bits gets ``(0, 0, 0)`` (the constant 0)."""
    arrays = []
    for name in ("keep_negative", "bits", "integers"):
        value = np.asarray(getattr(layer, name).numpy(), dtype=np.int64)
        if value.ndim == len(shape) + 1 and value.shape[0] == 1:  # the batch axis
            value = value[0]
        try:
            arrays.append(np.broadcast_to(value, shape))
        except ValueError as exc:
            raise ConversionError(
                f"layer '{layer.name}' (FixedPointQuantizer): its {name} of shape "
                f"{value.shape} does not fit its input of shape {shape}"
            ) from exc
    keep, bits, integers = arrays
    zero = bits <= 0
    k = np.where(zero, 0, keep)
    i = np.where(zero, 0, integers - keep)
    f = np.where(zero, 0, bits - integers)
    return k, i, f


def _modes(layer: Any) -> tuple[str, str]:
    rnd, sat = str(layer.RND).upper(), str(layer.SAT).upper()
    for mode, registry in ((rnd, _ROUNDING), (sat, _OVERFLOW)):
        if mode not in registry:
            raise ConversionError(
                f"layer '{layer.name}' (FixedPointQuantizer): {registry.what} {mode} is not "
                f"traced to RTL; supported: {', '.join(registry)}"
            )
    return _ROUNDING[rnd], _OVERFLOW[sat]


def trace_fixed_point_quantizer(layer: Any, x: Any) -> Any:
    """``FixedPointQuantizer``: every element to its own type (module notes)."""
    k, i, f = quantizer_kif(layer, tuple(x.shape))
    rounding, overflow = _modes(layer)
    return x.quantize(k, i, f, overflow_mode=overflow, round_mode=rounding)


def _weights(layer: Any) -> tuple[np.ndarray, np.ndarray | None]:
    kernel = np.asarray(layer.kernel.numpy(), dtype=np.float64)
    bias = np.asarray(layer.bias.numpy(), dtype=np.float64) if layer.use_bias else None
    return kernel, bias


def _linear_only(layer: Any) -> None:
    activation = layer.get_config().get("activation", "linear")
    if activation not in (None, "linear"):
        raise ConversionError(
            f"layer '{layer.name}' ({type(layer).__name__}) has the fused activation "
            f"{activation!r}; HGQ's proxy models keep activations as separate layers"
        )


def trace_proxy_dense(layer: Any, x: Any) -> Any:
    """Dense of a proxy model: ``x @ kernel + bias``, exact."""
    _linear_only(layer)
    if x.ndim != 1:
        raise ConversionError(f"layer '{layer.name}': Dense on a {x.ndim}-d input")
    kernel, bias = _weights(layer)
    y = x @ kernel
    return y + bias if bias is not None else y


def trace_proxy_conv(layer: Any, x: Any) -> Any:
    """Conv1D/Conv2D of a proxy model: one exact product per window."""
    _linear_only(layer)
    kernel, bias = _weights(layer)
    return conv_product(layer, x, kernel, bias)


def trace_relu(layer: Any, x: Any) -> Any:
    """ReLU (no cap, slope or threshold) and ``Activation('relu'/'linear')``: exact."""
    config = layer.get_config()
    if type(layer).__name__ == "ReLU":
        if (
            config.get("max_value") is not None
            or config.get("negative_slope")
            or config.get("threshold")
        ):
            raise ConversionError(
                f"layer '{layer.name}' (ReLU): a capped, leaky or shifted ReLU is not traced "
                "to RTL; use a plain relu"
            )
        activation = "relu"
    else:
        activation = config.get("activation")
    if activation in ("linear", None):
        return x
    if activation != "relu":
        raise ConversionError(
            f"layer '{layer.name}': activation {activation!r} is not traced to RTL (HGQ's "
            "proxy model computes it as a table, UnaryLUT, or in float); supported: relu, "
            "linear and a final softmax"
        )
    return x.relu()


def _without_rounding(tracer: Any) -> Any:
    return lambda layer, x: tracer(layer, x, round_half_even)


#: proxy model layer class -> ``(layer, FixedVariableArray) -> FixedVariableArray``
PROXY_TRACERS = Registry[Any](
    "HGQ proxy layer",
    {
        "FixedPointQuantizer": trace_fixed_point_quantizer,
        "Dense": trace_proxy_dense,
        "Conv1D": trace_proxy_conv,
        "Conv2D": trace_proxy_conv,
        "ReLU": trace_relu,
        "Activation": trace_relu,
        "MaxPooling1D": _without_rounding(trace_maxpool),
        "MaxPooling2D": _without_rounding(trace_maxpool),
        "Flatten": _without_rounding(trace_flatten),
        "Reshape": _without_rounding(trace_reshape),
        "Dropout": _without_rounding(trace_identity),
    },
)


def trace_hgq_model(
    model: Any,
    *,
    calibration: Any = None,
    solver_options: dict[str, Any] | None = None,
) -> TracedNetwork:
    """Trace an HGQ model (its proxy model; a loaded proxy model as it is) into da4ml's
    combinational logic, from the input codes to the logits (module notes).

    ``calibration``: events whose activation ranges set the integer bits of the proxy
    model's activation types (needed for an HGQ model loaded from a file, whose traced
    ranges are not saved; the firmware commands calibrate on their events the same way)."""
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    proxy = proxy_model(model, calibration)
    layers = _sequential_layers(proxy)
    if not layers or type(layers[0]).__name__ != "FixedPointQuantizer":
        name = proxy.inputs[0].node.layer.name
        raise ConversionError(
            f"the input '{name}' of the HGQ proxy model is not followed by a "
            "FixedPointQuantizer: the RTL takes the input types from it (start the HGQ model "
            "with HQuantize)"
        )
    first = layers[0]
    shape = tuple(int(n) for n in proxy.inputs[0].shape[1:])
    k, i, f = quantizer_kif(first, shape)
    options = dict(DEFAULT_SOLVER_OPTIONS if solver_options is None else solver_options)
    x_in = FixedVariableArray.from_kif(k, i, f, hwconf=HWConfig(1, -1, -1), solver_options=options)
    x, traced, output_layer = trace_chain(
        proxy, x_in, PROXY_TRACERS, subject="of the HGQ proxy model "
    )
    outputs = x.ravel()
    comb = comb_trace(x_in.ravel(), outputs)
    # the widest input type (what the wrapper's ports carry; the per-feature types are in
    # the quantizer, applied before the RTL)
    signed = bool(k.max())
    width = int((k + i + f).max()) if (k + i + f).max() > 0 else 1
    integer = int((k + i).max())
    fractional = int(f.max())
    width = max(width, integer + fractional, 1)
    input_type = FixedType(width, width - fractional, signed, Rounding.RND, Saturation.WRAP)

    def quantize_inputs(values: np.ndarray) -> np.ndarray:
        # the proxy model's own input quantizer (TensorFlow, float32, as the proxy computes)
        flat = np.asarray(values, dtype=np.float32).reshape(-1, *shape)
        return np.asarray(first(flat, training=False).numpy(), dtype=np.float64)

    return TracedNetwork(
        comb=comb,
        input_type=input_type,
        input_shape=shape,
        output_layer=output_layer,
        n_outputs=int(outputs.size),
        layers=tuple(traced),
        input_quantizer=quantize_inputs,
    )
