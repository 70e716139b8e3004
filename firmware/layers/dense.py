"""Dense and convolution layers (Keras and QKeras), and their depthwise/separable variants.

*QKeras*: weights and biases are stored in the ``ap_fixed`` twin of their quantizers
(:func:`hepfpga.quantize.fixed.from_quantizer`; ``binary``/``ternary`` as ``ap_int<2>``
holding -1, 0, +1). Accumulator and result are wide enough that no sum is rounded or
overflows (hls4ml's own rule): ``input + weight + ceil(log2(n_ops))`` bits, one more for the
bias and as many fractional bits as the finer of product and bias; ``n_ops`` is the fan-in
(``n_in``, ``kernel * channels``). So the layer's output (the pre-activation output when the
layer had a built-in activation, which :mod:`~hepfpga.firmware.layers.graph` splits off) is
exact. ``padding='same'`` adds zeros, which changes no sum.

*Learned scales* (``kernel_quantizer`` with ``alpha='auto_po2'`` or ``'auto'``; QKeras makes
every kernel quantizer given without ``alpha`` one, and the strings ``'binary'``/``'ternary'``
too): QKeras multiplies with ``scale_j * u_ij``, ``u`` on the quantizer's own grid and one
``scale_j`` per output channel (:func:`hepfpga.quantize.fixed.learned_scale_values`).

* ``auto_po2`` (``scale_j = 2**e_j``): the scaled weights are themselves fixed-point numbers,
  so the layer is rewritten (:func:`fold_po2_scale`) into the same layer with
  ``quantized_bits(W, I-1, alpha=1)`` weights holding ``scale_j * u_ij`` exactly: ``I`` =
  the unscaled type's integer bits + ``max e``, ``W`` = its width + ``max e - min e``. Then
  the sums are exact as above: **bit-exact**, emulated and traced to RTL like any QDense.
  (hls4ml's own ``ApplyAlpha`` step stores the exponent in ``max|e| + 1`` bits through
  ``quantized_po2``, which clips ``2**1`` and ``2**2`` to smaller powers: wrong results.)
* ``auto`` (a float32 ``scale_j``): the layer sums ``x * u`` exactly in the unscaled type,
  without the bias, and hls4ml's ``ApplyAlpha`` step (``<name>_alpha``) computes
  ``acc * scale + bias`` exactly, ``scale`` held with its 24 significant bits. QKeras rounds
  each ``x * (scale * u)`` product and sum to float32, so the two agree **up to float32
  rounding** (relative ``~n * 2**-24``): a following quantizer sees a different value only at
  a rounding tie. The emulator reproduces the firmware (scale-and-shift step); the RTL trace
  refuses it (a float32 product is not fixed-point arithmetic).

*QConv2DBatchnorm* (QKeras' deployment layer, batch normalization folded into the kernel):
rewritten into the ``QConv2D`` it is at inference, holding the float32 folded kernel
``gamma * rsqrt(moving_variance + eps) * kernel`` and bias ``gamma * rsqrt(...) * (bias -
moving_mean) + beta`` computed with TensorFlow's own ops, which its quantizers then quantize
exactly as QKeras does: bit-exact like any QConv2D (a learned power-of-two scale folded as
above). hls4ml's own converter keeps the unfolded batch normalization.

*A QDense/QConv without kernel or bias quantizer* (hls4ml's quantizer-parsing test: the
quantized activation after it is what the user quantized): its float32 weights are held
exactly (24 significant bits, :func:`~hepfpga.firmware.layers._base.significant_type`) and
summed exactly; QKeras sums the same products in float32, so the layer agrees **up to float32
rounding** and the quantizer after it differs only at a rounding tie.

*Float*: weights and biases get ``float_width``-bit types covering their values, the
accumulator the exact sum of those, the result the profiled range (approximate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_engine.steps import batchnorm_step, conv_step, dense_step
from hepfpga.firmware.emulate_stream import pointwise_1d_step, pointwise_2d_step
from hepfpga.firmware.layers._base import (
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    Rewrite,
    add_type,
    covering_type,
    product_type,
    register,
    significant_type,
    sum_type,
)
from hepfpga.firmware.layers.tracers import (
    PO2_QUANTIZERS,
    folded_batchnorm,
    po2_folded_type,
    po2_values_type,
    quantizer_name,
    trace_conv,
    trace_dense,
)
from hepfpga.quantize.fixed import FixedType, from_quantizer, learned_scale, learned_scale_values

#: significant bits a float32 learned scale (alpha='auto') is held with
SCALE_SIGNIFICANT_BITS = 24


def weight_types(
    layer: Any,
    keys: tuple[str, str] = ("kernel_quantizer", "bias_quantizer"),
    *,
    scaled: bool = False,
    float_weights: bool = False,
) -> tuple[FixedType, FixedType | None]:
    """The types of a QKeras layer's weights and bias, from its quantizers; ``scaled``: the
    weights may have a learned scale (the type is then that of the unscaled values, see the
    module doc); ``float_weights``: a weight without quantizer is held exactly (float32's 24
    significant bits) instead of refused."""
    config = layer.get_config()
    types: list[FixedType | None] = []
    for index, key in enumerate(keys):
        quantizer = config.get(key)
        if quantizer is None:
            if key == keys[1] and not config.get("use_bias", True):
                types.append(None)
                continue
            if float_weights:
                types.append(_float_weight_type(layer, index, key))
                continue
            raise ConversionError(
                f"layer '{layer.name}' has no {key}; in a QKeras model every weight must be "
                "quantized for bit-exact firmware"
            )
        fixed = from_quantizer(quantizer, unscaled=scaled and key == keys[0])
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
    if weight is None:  # pragma: no cover - the loop raises first
        raise ConversionError(f"layer '{layer.name}' has no weight quantizer")
    return weight, bias


def n_ops(layer: Any) -> int:
    """The fan-in of one output: ``n_in`` (Dense) or ``kernel size * channels`` (Conv)."""
    weights = layer.get_weights()
    if not weights:
        raise ConversionError(f"layer '{layer.name}' ({type(layer).__name__}) has no weights")
    kernel = weights[0]
    if type(layer).__name__.lstrip("Q").startswith("Depthwise"):
        return int(np.prod(kernel.shape[:-2]))  # each channel on its own
    return int(np.prod(kernel.shape[:-1]))


def _float_weight_type(layer: Any, index: int, key: str) -> FixedType:
    values = layer.get_weights()[index]
    fixed = significant_type(values, SCALE_SIGNIFICANT_BITS)
    if not fixed.can_represent(np.asarray(values, dtype=np.float64)):
        raise ConversionError(
            f"layer '{layer.name}' has no {key} and its float32 values span more than 48 bits; "
            "give it a quantizer (quantized_bits) for firmware"
        )
    return fixed


def has_float_weights(layer: Any) -> bool:
    """A QDense/QConv with no kernel quantizer or no bias quantizer (and a bias): its float32
    weights are held exactly, its sums agree with QKeras up to float32 rounding."""
    if not type(layer).__name__.startswith("Q"):
        return False
    config = layer.get_config()
    no_bias = config.get("use_bias", True) and config.get("bias_quantizer") is None
    return config.get("kernel_quantizer") is None or bool(no_bias)


def kernel_scale(layer: Any) -> str | None:
    """``'auto'``/``'auto_po2'`` when ``layer``'s kernel quantizer learns a per-channel scale."""
    quantizer = layer.get_config().get("kernel_quantizer")
    return None if quantizer is None else learned_scale(quantizer)


def fold_po2_scale(layer: Any) -> Any:
    """The rewrite of a QDense/QConv whose weights are powers of two times a fixed-point grid
    (a kernel quantizer with ``alpha='auto_po2'``, or ``quantized_po2``/``quantized_relu_po2``
    kernel or bias quantizers): the same layer with ``quantized_bits(W, I-1, alpha=1)``
    quantizers whose ``ap_fixed<W, I>`` holds exactly the values QKeras multiplies with (see
    the module doc); None for any other layer. Its weights: :func:`folded_weights`."""
    folds = _folds(layer)
    if not folds:
        return None
    config = layer.get_config()
    for key, (values, fixed) in folds.items():
        if fixed.integer < 1:  # QKeras' quantized_bits takes integer >= 0
            fixed = FixedType(fixed.width + 1 - fixed.integer, 1, True)
        config[key] = {
            "class_name": "quantized_bits",
            "config": {"bits": fixed.width, "integer": fixed.integer - 1, "alpha": 1},
        }
        check = from_quantizer(config[key])
        if not np.array_equal(check.quantize(values), values):  # pragma: no cover - by design
            raise ConversionError(
                f"layer '{layer.name}': the folded {key} values are not on {check}"
            )
    if config.get("activation") not in (None, "linear"):
        config["activation"] = "linear"  # ready_model splits it off into a layer of its own
    return type(layer).from_config(config)


def folded_weights(layer: Any) -> list[Any]:
    """The weights of :func:`fold_po2_scale`'s layer: the folded kernel and bias, as QKeras
    quantizes them, the others as they are."""
    weights = layer.get_weights()
    for key, (values, _) in _folds(layer).items():
        weights[_WEIGHT_INDEX[key]] = values.astype(np.float32)
    return weights


def _conv_of_batchnorm(layer: Any) -> tuple[Any, list[Any]]:
    """``QConv2DBatchnorm`` as the ``QConv2D`` it is at inference: same quantizers, holding
    the folded float32 kernel and bias (:func:`~hepfpga.firmware.layers.tracers.
    folded_batchnorm`), which the quantizers then quantize as QKeras does; a learned
    power-of-two scale is folded too (:func:`fold_po2_scale`)."""
    # deferred: TensorFlow loads slowly
    from qkeras import QConv2D

    accepted = set(QConv2D(1, 1).get_config())
    config = {key: value for key, value in layer.get_config().items() if key in accepted}
    config["use_bias"] = True
    if config.get("activation") not in (None, "linear"):
        config["activation"] = "linear"  # ready_model splits it off into a layer of its own
    conv = QConv2D.from_config(config)
    conv.build(layer.input_shape)
    kernel, bias = folded_batchnorm(layer)
    conv.set_weights([kernel, bias])
    replacement = fold_po2_scale(conv)
    if replacement is None:
        return conv, [kernel, bias]
    return replacement, folded_weights(conv)


def _rewrite(layer: Any) -> Any:
    if type(layer).__name__ == "QConv2DBatchnorm":
        replacement, weights = _conv_of_batchnorm(layer)
        _REWRITTEN_WEIGHTS[id(layer)] = weights
        return replacement
    return fold_po2_scale(layer)


def _rewritten_weights(layer: Any) -> list[Any]:
    weights = _REWRITTEN_WEIGHTS.pop(id(layer), None)
    if weights is not None:
        return weights
    if type(layer).__name__ == "QConv2DBatchnorm":
        return _conv_of_batchnorm(layer)[1]
    return folded_weights(layer)


#: id(layer) -> the weights of its rewrite, computed with the rewrite (ready_model asks for
#: them right after)
_REWRITTEN_WEIGHTS: dict[int, list[Any]] = {}


_WEIGHT_INDEX = {"kernel_quantizer": 0, "bias_quantizer": 1}


def _folds(layer: Any) -> dict[str, tuple[np.ndarray, FixedType]]:
    """Quantizer key -> (the values QKeras multiplies with, the exact ap_fixed holding them),
    of the quantizers :func:`fold_po2_scale` replaces."""
    # deferred: TensorFlow loads slowly
    from qkeras.quantizers import get_quantizer

    if not type(layer).__name__.startswith("Q"):
        return {}
    config = layer.get_config()
    weights = layer.get_weights()
    out: dict[str, tuple[np.ndarray, FixedType]] = {}
    for key, index in _WEIGHT_INDEX.items():
        quantizer = config.get(key)
        if quantizer is None or index >= len(weights):
            continue
        what = f"layer '{layer.name}' {key.split('_')[0]}"
        if key == "kernel_quantizer" and learned_scale(quantizer) == "auto_po2":
            unscaled, scale = learned_scale_values(quantizer, weights[index])
            utype = from_quantizer(quantizer, unscaled=True)
            out[key] = (unscaled * scale, po2_folded_type(utype, scale, what))
        elif quantizer_name(quantizer) in PO2_QUANTIZERS:
            values = np.asarray(get_quantizer(quantizer)(weights[index]), dtype=np.float64)
            out[key] = (values, po2_values_type(values, what))
    return out


def _scaled(layer: Any, x: FixedType) -> LayerPrecision:
    """The types of a layer whose kernel has a float learned scale (``alpha='auto'``): the
    unscaled exact sum, then hls4ml's ``ApplyAlpha`` (``acc * scale + bias``, exact)."""
    weight, bias = weight_types(layer, scaled=True)
    acc = sum_type(x, weight, None, n_ops(layer))
    _, scale_values = learned_scale_values(
        layer.get_config()["kernel_quantizer"], layer.get_weights()[0]
    )
    scale = significant_type(scale_values, SCALE_SIGNIFICANT_BITS)
    product = product_type(acc, scale)
    result = add_type(product, bias) if bias is not None else product
    return LayerPrecision(
        layer.name,
        type(layer).__name__,
        result,
        accum=acc,
        weight=weight,
        bias=bias,
        scale=scale,
        source="exact sum, then learned scale (alpha='auto', float32 scale) and bias",
    )


def _alpha_entries(
    layer: Any, types: LayerPrecision, inputs: list[FixedType]
) -> dict[str, dict[str, Any]]:
    """hls4ml's entries of a layer with a float learned scale: the layer itself sums without
    the bias, ``<name>_alpha`` (inserted by hls4ml) scales and adds the bias."""
    if kernel_scale(layer) != "auto" or types.accum is None or types.scale is None:
        return {}
    acc = types.accum.to_hls()
    own: dict[str, str] = {"result": acc, "accum": acc}
    if types.weight is not None:
        own["weight"] = types.weight.to_hls()
    bias = types.bias if types.bias is not None else FixedType(2, 2, True)
    own["bias"] = bias.to_hls()
    alpha = {
        "result": types.result.to_hls(),
        "scale": types.scale.to_hls(),
        "bias": bias.to_hls(),
    }
    return {layer.name: {"Precision": own}, f"{layer.name}_alpha": {"Precision": alpha}}


def _traced_as(layer: Any) -> str:
    return f"{layer.name}_alpha" if kernel_scale(layer) == "auto" else str(layer.name)


def _dense(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    (x,) = inputs
    kind = type(layer).__name__
    name = layer.name
    config = layer.get_config()
    if config.get("activation") not in ("linear", None):
        # ready_model splits built-in activations; this is a model given unprepared
        raise ConversionError(
            f"layer '{name}' still has its built-in activation {config['activation']!r}; "
            "convert hepfpga.firmware.hls_config.hls4ml_ready_model(model)"
        )
    if kind.startswith("Q") and kernel_scale(layer) == "auto":
        return _scaled(layer, x)
    if kind.startswith("Q"):
        weight, bias = weight_types(layer, float_weights=True)
        result = sum_type(x, weight, bias, n_ops(layer))
        source = "exact sum" + (
            " of float32 weights held exactly (no quantizer)" if has_float_weights(layer) else ""
        )
        return LayerPrecision(
            name, kind, result, accum=result, weight=weight, bias=bias, source=source
        )
    if ctx.quantized:
        raise ConversionError(
            f"layer '{name}' ({kind}) is a float layer in a QKeras model; use Q{kind} with "
            "quantizers so its firmware is exact (or give no QKeras layer at all: a float "
            "model gets profiled types)"
        )
    values = layer.get_weights()
    width = ctx.width
    weight = covering_type(values[0], width, where=f"layer '{name}' weights")
    bias = (
        covering_type(values[1], width, where=f"layer '{name}' bias") if len(values) > 1 else None
    )
    accum = sum_type(x, weight, bias, n_ops(layer))
    return LayerPrecision(
        name,
        kind,
        ctx.profiled(name),
        accum=accum,
        weight=weight,
        bias=bias,
        source="profiled",
        profiled=ctx.profile(name),
    )


def multiplications(layer: Any) -> int:
    """Products per event: kernel size times the number of output positions."""
    kernel = layer.get_weights()[0]
    positions = int(np.prod(layer.output_shape[1:-1])) if len(layer.output_shape) > 2 else 1
    return int(kernel.size) * positions


register(
    LayerHandler(
        family="dense/conv",
        classes=("Dense", "QDense", "Conv1D", "Conv2D", "QConv1D", "QConv2D", "QConv2DBatchnorm"),
        derive=_dense,
        exactness="QKeras: weights in their quantizers' types, exact sums (any padding): "
        "bit-exact. Learned scale alpha='auto_po2' (also kernel quantizers without alpha, "
        "'binary', 'ternary'): folded into weights of an ap_fixed wide enough for "
        "2**e * u: bit-exact. alpha='auto' (float32 scale): exact sum, then "
        "'<name>_alpha' = acc * scale + bias exactly, scale with 24 significant bits: equal "
        "to QKeras up to float32 rounding. No kernel/bias quantizer: float32 weights held exactly, "
        "exact sum: up to float32 rounding. Float: profiled result, approximate. A built-in "
        "activation is split into '<name>_<activation>' (judged as that activation)",
        emulation=Emulation(
            "matrix product (im2col for convolutions; io_parallel); a float learned scale: "
            "scale-and-shift step",
            steps={
                "ApplyAlpha": batchnorm_step,
                "Dense": dense_step,
                "Conv1D": conv_step(1),
                "Conv2D": conv_step(2),
                "PointwiseConv1D": pointwise_1d_step,
                "PointwiseConv2D": pointwise_2d_step,
            },
        ),
        qkeras=QKerasMapping(
            ("Dense", "Conv1D", "Conv2D"),
            "QDense, QConv1D, QConv2D, QConv2DBatchnorm are QKeras layers themselves",
        ),
        rtl={
            "QDense": trace_dense,
            "QConv1D": trace_conv,
            "QConv2D": trace_conv,
            "QConv2DBatchnorm": trace_conv,
        },
        exact=lambda layer: kernel_scale(layer) != "auto" and not has_float_weights(layer),
        rewrite=Rewrite(_rewrite, _rewritten_weights),
        hls_entries=_alpha_entries,
        traced_as=_traced_as,
        multiplications=multiplications,
    )
)
