"""The link between QKeras quantizers and fixed-point types: :func:`from_quantizer`.

The types themselves (:class:`FixedType`, :class:`Rounding`, :class:`Saturation`, the
``ap_fixed`` semantics) live in :mod:`hepfpga.fixed_point` and are re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.fixed_point import MAX_WIDTH, FixedType, Rounding, Saturation

__all__ = [
    "LEARNED_SCALES",
    "MAX_WIDTH",
    "FixedType",
    "Rounding",
    "Saturation",
    "from_quantizer",
    "learned_scale",
    "learned_scale_values",
]


_SUPPORTED_QUANTIZERS = (
    "quantized_bits",
    "quantized_relu",
    "binary",
    "ternary",
    "quantized_tanh",
    "quantized_sigmoid",
    "binary_tanh",
)
#: ``alpha`` values of a learned per-channel scale (QKeras computes it from the weights)
LEARNED_SCALES = ("auto", "auto_po2")
#: the weight quantizers a learned scale is accepted on (factored out of the weights)
_SCALED_QUANTIZERS = ("quantized_bits", "binary", "ternary")


def _as_number(value: Any) -> Any:
    """A Python number from a number, numpy scalar or tf.Variable."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return value
        value = value.reshape(()).item()
    return value


def _unit_alpha(alpha: Any) -> bool:
    alpha = _as_number(alpha)
    if alpha is None:
        return True
    if isinstance(alpha, str):
        return False
    return bool(np.all(np.asarray(alpha, dtype=np.float64) == 1.0))


def _quantizer_object(quantizer: Any) -> Any:
    from qkeras.quantizers import get_quantizer  # heavy (TensorFlow), so imported late

    try:
        return get_quantizer(quantizer)
    except Exception as exc:  # QKeras raises bare ValueError/KeyError for unknown names
        raise ConversionError(
            f"{quantizer!r} is not a QKeras quantizer; "
            f"supported: {', '.join(_SUPPORTED_QUANTIZERS)}"
        ) from exc


def learned_scale(quantizer: Any) -> str | None:
    """``'auto'`` or ``'auto_po2'`` when ``quantizer`` learns a per-channel scale from the
    values it quantizes (``alpha='auto'``/``'auto_po2'``), else None.

    QKeras turns the plain strings ``'binary'`` and ``'ternary'`` into such quantizers
    (``binary(alpha='auto_po2')``, ``ternary(alpha='auto_po2')``), so a layer written with
    ``kernel_quantizer='binary'`` has a learned scale.
    """
    alpha = getattr(_quantizer_object(quantizer), "alpha", None)
    return alpha if isinstance(alpha, str) and alpha in LEARNED_SCALES else None


def learned_scale_values(quantizer: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(unscaled, scale)`` of a learned-scale weight quantizer applied to ``weights``:
    QKeras multiplies with ``scale * unscaled``, ``scale`` one float32 per output channel (the
    last axis; a power of two for ``auto_po2``) and ``unscaled`` on the grid of
    ``from_quantizer(quantizer, unscaled=True)``. hls4ml's ``qkeras_factorize_alpha`` pass
    makes the same split (the weights of the layer hold ``unscaled``, an ``ApplyAlpha`` layer
    multiplies by ``scale`` and adds the bias). A fresh quantizer is built from the
    quantizer's config, so the layer's own one is not touched.
    """
    import tensorflow as tf  # heavy, so imported late

    obj = _quantizer_object(quantizer)
    fresh = type(obj).from_config(obj.get_config())
    values = np.asarray(fresh(tf.convert_to_tensor(np.asarray(weights, dtype=np.float32))))
    scale = np.asarray(getattr(fresh.scale, "numpy", lambda: fresh.scale)(), dtype=np.float32)
    channel = np.broadcast_to(scale.reshape(-1), (values.shape[-1],)).astype(np.float64)
    # alpha='auto': scale * z was rounded to float32; the codes are back on the grid here
    unscaled = from_quantizer(obj, unscaled=True).quantize(values.astype(np.float64) / channel)
    return unscaled, channel


def from_quantizer(quantizer: Any, *, unscaled: bool = False) -> FixedType:
    """The :class:`FixedType` a QKeras quantizer's outputs are exactly the values of.

    ``quantizer`` is a QKeras quantizer object, its config dict (``{"class_name": ...,
    "config": ...}``) or its string form (``"quantized_bits(6,0,alpha=1)"``).

    Mappings (QKeras rounds half to even with ``tf.round`` and clips, so every type uses
    ``AP_RND_CONV`` and a saturating overflow mode):

    * ``quantized_bits(bits, integer, keep_negative=True)`` ->
      ``ap_fixed<bits, integer+1, AP_RND_CONV, AP_SAT>``: QKeras computes
      ``clip(round(x * 2**(bits-1-integer)), -2**(bits-1), 2**(bits-1)-1) / 2**(bits-1-integer)``,
      e.g. ``quantized_bits(6, 0)`` is ``ap_fixed<6,1>`` and ``quantized_bits(16, 5)`` is
      ``ap_fixed<16,6>``. With ``symmetric=1`` the lowest code is not used: ``AP_SAT_SYM``.
    * ``quantized_bits(bits, integer, keep_negative=False)`` ->
      ``ap_ufixed<bits, integer, AP_RND_CONV, AP_SAT>`` (negative values become 0).
    * ``quantized_relu(bits, integer)`` -> ``ap_ufixed<bits, integer, AP_RND_CONV, AP_SAT>``:
      QKeras computes ``clip(round(x * 2**(bits-integer)) / 2**bits, 0, 1 - 2**-bits) *
      2**integer``, i.e. relu, round half to even, saturate at ``2**integer - lsb``.
    * ``binary()`` (values -1, +1) -> ``ap_int<2>``; ``binary(use_01=True)`` (0, 1) ->
      ``ap_uint<1>``; ``ternary()`` (-1, 0, +1) -> ``ap_int<2>``. For these the type is only
      the *storage* type of the results: the sign/threshold function itself is not a
      fixed-point conversion and :meth:`FixedType.quantize` does not emulate it.

    * ``quantized_tanh(bits, symmetric=s)`` (QKeras' hard tanh ``clip(x, -1, 1)``, rounded
      half to even to ``2**(1-bits)`` and clipped to ``[-1 + s * lsb, 1 - lsb]``) is exactly
      ``ap_fixed<bits, 1, AP_RND_CONV, AP_SAT>`` (``AP_SAT_SYM`` when symmetric) of ``x``: the
      clip to +-1 commutes with rounding and saturating, so it is this type's conversion.
    * ``quantized_sigmoid(bits)`` (QKeras' hard sigmoid ``clip(0.5 x + 0.5, 0, 1)``, rounded
      half to even to ``2**-bits``, clipped to ``1 - 2**-bits``) -> ``ap_ufixed<bits, 0,
      AP_RND_CONV, AP_SAT>`` of ``0.5 x + 0.5`` (hls4ml's ``hard_sigmoid``, slope and shift
      exact): the type holds the results; the affine step comes first.
    * ``binary_tanh`` (``x > 0 ? 1 : -1``, -1 at 0: QKeras rounds the hard sigmoid 0.5 half to
      even) -> ``ap_int<2>`` storage, like ``binary()``; hls4ml's ``binary_tanh`` computes
      ``x >= 0 ? 1 : -1``, so the two differ at ``x == 0`` exactly.
    * leaky ``quantized_relu(bits, integer, negative_slope=a)`` -> ``ap_fixed<bits, integer+1,
      AP_RND_CONV, AP_SAT>``: QKeras keeps a sign bit, rounds ``x`` (``x >= 0``, saturating at
      ``2**integer - lsb``) or ``a * x`` (``x < 0``) half to even to ``lsb = 2**(integer+1-bits)``
      and clips the negative side at ``-a * 2**integer``; the type saturates at ``-2**integer``,
      so the two agree for inputs ``x >= -2**integer`` (with ``a`` a power of two; other
      slopes are rounded to float32 by QKeras before its rounding).

    QKeras returns ``x + stop_gradient(xq - x)`` in float32 (its straight-through estimator),
    which equals ``xq`` only while ``|x| * 2**F < 2**24`` (``F`` fractional bits of the type):
    for ``quantized_bits(6, 0)`` up to about ``|x| < 2**19``. Beyond that QKeras' output is not
    even on the grid, while ``ap_fixed`` saturates; bit-exactness is promised inside that bound.

    ``unscaled=True`` (weights of a Dense/Conv): a *learned scale* (``alpha='auto'`` or
    ``'auto_po2'``, see :func:`learned_scale`) is accepted on ``quantized_bits``, ``binary``
    and ``ternary``, and the type returned is that of the *unscaled* values (QKeras' integer
    codes ``z`` times ``2**(integer-bits+1)``, i.e. the ``alpha=1`` type above; -1/+1 and
    -1/0/+1 for binary/ternary). The per-channel scale is applied as a step of its own
    (:func:`learned_scale_values`): for ``auto_po2`` a power of two, exact; for ``auto`` a
    float32 number, which the firmware holds exactly (24 significant bits) while QKeras rounds
    each ``scale * z`` product and sum to float32.

    Refused with :class:`~hepfpga.errors.ConversionError`: ``alpha`` other than ``None``/1
    (``'auto'``, ``'auto_po2'`` and per-channel scales multiply by a learned factor that is no
    fixed-point type; only weights, with ``unscaled=True``, factor it out), stochastic
    rounding, ``qnoise_factor != 1``, ``quantized_bits`` with a single bit (a sign function),
    ``quantized_relu`` with ``use_sigmoid`` or a ``relu_upper_bound`` below its quantized
    maximum, ``quantized_tanh``/``quantized_sigmoid`` with ``use_real_tanh``/
    ``use_real_sigmoid`` (a real tanh/sigmoid, which only a table approximates) or a
    symmetric ``quantized_sigmoid``, the power-of-two quantizers ``quantized_po2``/
    ``quantized_relu_po2`` (a logarithmic grid, no ``ap_fixed``; as weights hepfpga folds their
    values into an exact ``ap_fixed``, see :mod:`hepfpga.firmware.layers.dense`), and every
    other quantizer class.
    """
    quantizer_obj = _quantizer_object(quantizer)
    name = type(quantizer_obj).__name__ if hasattr(quantizer_obj, "get_config") else ""
    if not name:
        name = getattr(quantizer_obj, "__name__", repr(quantizer_obj))
    text = str(quantizer_obj) if hasattr(quantizer_obj, "get_config") else name

    def refuse(reason: str) -> ConversionError:
        return ConversionError(f"cannot map the QKeras quantizer {text} to ap_fixed: {reason}")

    if name in ("quantized_po2", "quantized_relu_po2"):
        raise refuse(
            "it rounds to powers of two (a logarithmic grid), which no ap_fixed type is and "
            "hls4ml 1.3 cannot convert as an activation; as a QDense/QConv kernel or bias "
            "quantizer hepfpga converts it exactly, as an activation use quantized_relu(bits, "
            "integer) or quantized_bits(bits, integer)"
        )
    if name not in _SUPPORTED_QUANTIZERS:
        raise refuse(f"unsupported quantizer class; supported: {', '.join(_SUPPORTED_QUANTIZERS)}")
    if name == "binary_tanh":
        return FixedType(2, 2, signed=True)
    if getattr(quantizer_obj, "use_stochastic_rounding", False):
        raise refuse("stochastic rounding has no hardware equivalent")
    if _as_number(getattr(quantizer_obj, "qnoise_factor", 1.0)) != 1.0:
        raise refuse("qnoise_factor != 1 mixes unquantized values into the output")
    alpha = getattr(quantizer_obj, "alpha", None)
    scaled = isinstance(alpha, str) and alpha in LEARNED_SCALES
    if scaled and unscaled and name in _SCALED_QUANTIZERS:
        if name == "quantized_bits" and not quantizer_obj.symmetric:
            raise refuse("QKeras computes a learned scale for symmetric quantizers only")
    elif not _unit_alpha(alpha):
        where = (
            "; a weight quantizer (kernel_quantizer) may learn alpha='auto' or 'auto_po2'"
            if scaled and not unscaled
            else ""
        )
        raise refuse(
            f"alpha={quantizer_obj.alpha!r} scales the values by a learned factor; "
            f"only alpha=None or alpha=1 map to a fixed-point type (use alpha=1){where}"
        )

    saturating = (Rounding.RND_CONV, Saturation.SAT)
    if name == "quantized_bits":
        bits = int(_as_number(quantizer_obj.bits))
        integer = int(_as_number(quantizer_obj.integer))
        if quantizer_obj.keep_negative:
            if bits < 2:
                raise refuse("a 1-bit signed quantized_bits is a sign function, use binary()")
            saturation = Saturation.SAT_SYM if quantizer_obj.symmetric else Saturation.SAT
            return FixedType(bits, integer + 1, True, Rounding.RND_CONV, saturation)
        return FixedType(bits, integer, False, *saturating)
    if name == "quantized_relu":
        bits = int(_as_number(quantizer_obj.bits))
        integer = int(_as_number(quantizer_obj.integer))
        if quantizer_obj.use_sigmoid:
            raise refuse("use_sigmoid applies a sigmoid before quantizing")
        if quantizer_obj.negative_slope:
            if quantizer_obj.relu_upper_bound is not None and not quantizer_obj.is_quantized_clip:
                raise refuse("a leaky quantized_relu with relu_upper_bound is not supported")
            return FixedType(bits, integer + 1, True, *saturating)
        result = FixedType(bits, integer, False, *saturating)
        bound = quantizer_obj.relu_upper_bound
        if not quantizer_obj.is_quantized_clip and bound is not None and bound < result.max_value:
            raise refuse(f"relu_upper_bound={bound} clips below the type's maximum")
        return result
    if name in ("quantized_tanh", "quantized_sigmoid"):
        bits = int(_as_number(quantizer_obj.bits))
        kind = name.split("_")[1]
        if getattr(quantizer_obj, f"use_real_{kind}"):
            raise refuse(
                f"use_real_{kind}=True computes a real {kind}, which hls4ml approximates with a "
                f"table (not exact); use the default hard {kind} (exact) or Activation('{kind}')"
            )
        if name == "quantized_tanh":
            saturation = Saturation.SAT_SYM if quantizer_obj.symmetric else Saturation.SAT
            return FixedType(bits, 1, True, Rounding.RND_CONV, saturation)
        if quantizer_obj.symmetric:
            raise refuse("a symmetric quantized_sigmoid clips at 2**-bits, no ap_ufixed does")
        return FixedType(bits, 0, False, *saturating)
    if name == "binary":
        if quantizer_obj.use_01:
            return FixedType(1, 1, signed=False)
        return FixedType(2, 2, signed=True)
    # ternary
    return FixedType(2, 2, signed=True)
