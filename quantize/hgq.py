"""HGQ (High Granularity Quantization, the Keras-2 release ``HGQ==0.2.6``) models: loading,
checking and their hls4ml-ready proxy model.

An HGQ model learns a bit width per weight and per activation (``HQuantize``, ``HDense``,
``HConv1D/2D``, ``HActivation``, ...) against a resource cost (EBOPs, scaled by ``beta``).
Its firmware is built from the *proxy model* (:func:`proxy_model`, HGQ's
``to_proxy_model``): plain Keras layers whose weights already lie on their fixed-point grid,
each followed by a ``FixedPointQuantizer`` that carries the exact type of every element
(``keep_negative``, ``bits``, ``integers`` arrays; rounding ``RND``, overflow ``SAT``).
hls4ml 1.3.0 converts the proxy model and reproduces it bit for bit; with HGQ's
``aggressive=True`` (the default here) an activation outside the range traced on the
calibration events wraps (``AP_WRAP``) in the proxy model exactly as in the firmware.

A model is an HGQ model when one of its layers is an HGQ class. Such a model may not hold
QKeras layers (two quantization families in one graph have no common proxy), and only the
HGQ classes whose proxy layers hls4ml converts are accepted (:data:`CONVERTIBLE`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hepfpga.errors import ConversionError

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = [
    "CONVERTIBLE",
    "check_hgq_model",
    "ebops",
    "hgq_custom_objects",
    "is_hgq_model",
    "proxy_model",
]

#: HGQ 0.2.6 layer classes whose proxy layers hls4ml 1.3.0 converts
CONVERTIBLE = (
    "HQuantize",
    "HDense",
    "HDenseBatchNorm",
    "HConv1D",
    "HConv2D",
    "HConv1DBatchNorm",
    "HConv2DBatchNorm",
    "HActivation",
    "HAdd",
    "Signature",
    "PReshape",
    "PFlatten",
    "PConcatenate",
    "PMaxPooling1D",
    "PMaxPooling2D",
    "PAveragePooling1D",
    "PAveragePooling2D",
    "PDropout",
    "PPermute",
    # the proxy model's own layers (a saved proxy model loads too)
    "FixedPointQuantizer",
    "UnaryLUT",
)


def _hgq() -> Any:
    """The HGQ package, or None when the ``hgq`` extra is not installed."""
    try:
        # deferred: HGQ imports TensorFlow, which loads slowly
        import HGQ
    except ImportError:
        return None
    return HGQ


def hgq_custom_objects() -> dict[str, Any]:
    """HGQ's layer classes by name (empty without the ``hgq`` extra), for Keras' loader."""
    if _hgq() is None:
        return {}
    # deferred: HGQ imports TensorFlow, which loads slowly
    from HGQ import layers as hlayers
    from HGQ.layers.experimental import attn
    from HGQ.proxy.fixed_point_quantizer import FixedPointQuantizer
    from HGQ.proxy.unary_lut import UnaryLUT

    objects: dict[str, Any] = {}
    for module in (hlayers, attn):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, type) and getattr(value, "__module__", "").startswith("HGQ."):
                objects[name] = value
    objects["FixedPointQuantizer"] = FixedPointQuantizer
    objects["UnaryLUT"] = UnaryLUT
    # HGQ registers its classes as serializable under the package "HGQ": saved configs name
    # them "HGQ>HDense"
    objects.update({f"HGQ>{name}": value for name, value in list(objects.items())})
    return objects


def _family(layer: Any) -> str | None:
    module = type(layer).__module__ or ""
    if module.startswith("HGQ.") or module == "HGQ":
        return "hgq"
    if module.startswith("qkeras"):
        return "qkeras"
    return None


def is_hgq_model(model: keras.Model) -> bool:
    """Whether any layer of ``model`` is an HGQ class (``HDense``, ``FixedPointQuantizer``...)."""
    return any(_family(layer) == "hgq" for layer in model.layers)


def check_hgq_model(model: keras.Model) -> None:
    """Refuse, with a :class:`ConversionError` naming the layer, an HGQ model holding a QKeras
    layer or an HGQ layer hls4ml cannot convert (outside :data:`CONVERTIBLE`)."""
    for layer in model.layers:
        family, kind = _family(layer), type(layer).__name__
        if family == "qkeras":
            raise ConversionError(
                f"layer '{layer.name}' ({kind}) is a QKeras layer in an HGQ model; one model "
                "uses one quantization family: replace it with its HGQ counterpart "
                "(HDense, HConv1D/2D, HActivation, HQuantize)"
            )
        if family == "hgq" and kind not in CONVERTIBLE:
            raise ConversionError(
                f"layer '{layer.name}' ({kind}): HGQ's proxy model of this layer is not "
                f"converted by hls4ml 1.3; convertible HGQ layers: {', '.join(CONVERTIBLE)}"
            )
        if family is None and kind not in ("InputLayer",) and _hgq() is not None:
            # plain Keras layers between HGQ layers are not quantized: the proxy model could
            # not give them a fixed-point type
            from HGQ.layers.base import ABSBaseLayer  # deferred: HGQ imports TensorFlow

            if not isinstance(layer, ABSBaseLayer) and layer.count_params():
                raise ConversionError(
                    f"layer '{layer.name}' ({kind}) is a float Keras layer with weights in an "
                    "HGQ model; its weights would have no fixed-point type: use its HGQ "
                    "counterpart"
                )


def ebops(model: keras.Model) -> float:
    """HGQ's effective bit operations (EBOPs) of ``model``, the resource estimate its
    regulariser trains against, as last computed (after :func:`HGQ.trace_minmax`), summed
    over the layers; 0 for a model without HGQ layers."""
    total = 0.0
    for layer in model.layers:
        value = getattr(layer, "bops", None)
        if value is not None:
            total += float(value.numpy() if hasattr(value, "numpy") else value)
    return total


def proxy_model(model: keras.Model, calibration: Any = None) -> keras.Model:
    """HGQ's hls4ml-ready proxy model of ``model`` (``to_proxy_model(aggressive=True)``).

    ``calibration`` (events as the model takes them): the activation ranges, hence the
    integer bits of every activation type, are traced on them first (``trace_minmax``);
    None keeps the ranges recorded during training (saved with the model). A loaded proxy
    model (made of ``FixedPointQuantizer`` layers) is returned as it is.
    """
    check_hgq_model(model)
    HGQ = _hgq()  # noqa: N806 - the package's name
    if HGQ is None:
        raise ConversionError(
            "HGQ models need the hgq extra: pip install 'hepfpga[hgq]' (HGQ==0.2.6)"
        )
    proxy_classes = ("FixedPointQuantizer", "UnaryLUT")
    if not any(
        _family(layer) == "hgq" and type(layer).__name__ not in proxy_classes
        for layer in model.layers
    ):
        return model  # already a proxy model
    if calibration is not None:
        HGQ.trace_minmax(model, calibration, verbose=False)
    try:
        return HGQ.to_proxy_model(model, aggressive=True)
    except Exception as exc:  # HGQ raises bare exceptions for layers it cannot map
        raise ConversionError(f"HGQ could not make the proxy model of {model.name}: {exc}") from exc
