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

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga.errors import ConfigError, ConversionError

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = [
    "CONVERTIBLE",
    "HGQSettings",
    "check_hgq_float_model",
    "check_hgq_model",
    "ebops",
    "hgq_callbacks",
    "hgq_counterpart",
    "hgq_custom_objects",
    "is_hgq_model",
    "logits_model",
    "onnx_ready_proxy",
    "proxy_model",
    "with_softmax",
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
    # a proxy model's plain Keras layers get their types from the quantizers after them
    proxy = any(type(layer).__name__ == "FixedPointQuantizer" for layer in model.layers)
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
        if family is None and not proxy and kind != "InputLayer" and _hgq() is not None:
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


@dataclass(frozen=True)
class HGQSettings:
    """HGQ training settings (``quantization.hgq``), used when ``quantization.method: hgq``.

    The loss is the classifier's cross-entropy plus ``beta`` x EBOPs (HGQ's resource
    estimate: per multiplication, the product of the bit widths of its operands). ``beta``
    ramps log-linearly from ``beta_initial`` at the first epoch to ``beta`` at epoch
    ``ramp_epochs`` (then stays), so the bit widths first learn the task and then shrink.
    ``init_bits``: the initial fractional bits of every weight and activation (HGQ's
    ``init_bw``); HGQ rounds half up on the fractional grid and wraps integer overflow of
    the activations outside the traced range (the proxy model reproduces both bit for bit).
    """

    beta: float = 1.0e-5
    beta_initial: float = 1.0e-7
    ramp_epochs: int = 20
    init_bits: int = 6

    def __post_init__(self) -> None:
        for name in ("beta", "beta_initial"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0; got {value!r}", path=name)
        if self.beta_initial > self.beta:
            raise ConfigError(
                f"beta_initial ({self.beta_initial}) must not exceed beta ({self.beta})",
                path="beta_initial",
            )
        for name, low in (("ramp_epochs", 1), ("init_bits", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}", path=name)

    def beta_at(self, epoch: int) -> float:
        """``beta`` of ``epoch`` (0-based): log-linear from ``beta_initial`` to ``beta``."""
        if epoch >= self.ramp_epochs - 1 or self.beta_initial == self.beta:
            return float(self.beta)
        if self.beta_initial == 0:
            return 0.0 if epoch == 0 else float(self.beta)
        fraction = epoch / max(self.ramp_epochs - 1, 1)
        return float(self.beta_initial * (self.beta / self.beta_initial) ** fraction)


#: float Keras layer classes hgq_counterpart maps
SUPPORTED_FLOAT_LAYERS = (
    "InputLayer",
    "Dense",
    "Conv2D",
    "MaxPooling2D",
    "Flatten",
    "Activation",
    "ReLU",
    "Dropout",
)


def _activation_name(layer: Any) -> str | None:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if type(layer).__name__ == "Activation" else None


def _no_counterpart(layer: Any) -> ConversionError:
    kind, name = type(layer).__name__, _activation_name(layer)
    what = f"{kind}('{name}')" if kind == "Activation" else kind
    return ConversionError(
        f"layer '{layer.name}' ({what}) has no HGQ counterpart in hepfpga; supported: "
        "Dense, Conv2D, MaxPooling2D, Flatten, relu activations, Dropout and a final softmax"
    )


def check_hgq_float_model(model: keras.Model) -> None:
    """Refuse, naming the first one, a layer of the float ``model`` that
    :func:`hgq_counterpart` has no counterpart for: pure Keras, no HGQ import and no model
    built, so a run checks it before any training (:mod:`hepfpga.pipeline.preflight`)."""
    last = model.layers[-1]
    for layer in model.layers[1:]:
        kind, name = type(layer).__name__, _activation_name(layer)
        mapped = kind in SUPPORTED_FLOAT_LAYERS and kind != "Activation"
        if mapped or name == "relu" or (name == "softmax" and layer is last):
            continue
        raise _no_counterpart(layer)


def hgq_counterpart(model: keras.Model, settings: HGQSettings) -> keras.Model:
    """The HGQ counterpart of a float MLP or CNN (a chain of ``Dense``, ``Conv2D``,
    ``MaxPooling2D``, ``Flatten``, relu activations, ``Dropout``, a final ``softmax``), with
    the float weights copied in.

    ``Input`` -> ``HQuantize`` (``input_quant``); ``Dense`` -> ``HDense``, ``Conv2D`` ->
    ``HConv2D`` (same names, sizes, strides, padding); ``MaxPooling2D`` -> ``PMaxPooling2D``;
    ``Flatten`` -> ``PFlatten``; ``Activation('relu')``/``ReLU`` -> ``HActivation('relu')``;
    ``Dropout`` -> removed; the final ``Activation('softmax')`` stays a float Keras layer
    (the firmware's outputs are the logits, exact). Another layer or activation raises a
    :class:`ConversionError` naming it.
    """
    if _hgq() is None:
        raise ConversionError(
            "quantization.method 'hgq' needs the hgq extra: pip install 'hepfpga[hgq]'"
        )
    # deferred: HGQ and TensorFlow load slowly
    from HGQ import get_default_kq_conf, get_default_paq_conf
    from HGQ.layers import (
        HActivation,
        HConv2D,
        HDense,
        HQuantize,
        PFlatten,
        PMaxPooling2D,
    )
    from tensorflow import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConversionError(
            f"the HGQ counterpart handles single-input, single-output models; {model.name} has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    check_hgq_float_model(model)
    weight_conf = {**get_default_kq_conf(), "init_bw": settings.init_bits}
    activation_conf = {**get_default_paq_conf(), "init_bw": settings.init_bits}
    beta = settings.beta_at(0)
    inputs = keras.Input(model.inputs[0].shape[1:], name=model.layers[0].name)
    x = HQuantize(beta=beta, paq_conf=activation_conf, name="input_quant")(inputs)
    copies = []
    last = model.layers[-1]
    for layer in model.layers[1:]:
        kind = type(layer).__name__
        config = layer.get_config()
        name = _activation_name(layer)
        if kind in ("Dense", "Conv2D"):
            if config.get("activation") not in ("linear", None):
                raise ConversionError(
                    f"layer '{layer.name}' ({kind}) has a fused activation; the HGQ "
                    "counterpart needs it as a separate Activation layer"
                )
            common = {
                "beta": beta,
                "kq_conf": weight_conf,
                "paq_conf": activation_conf,
                "use_bias": layer.use_bias,
                "name": layer.name,
            }
            if kind == "Dense":
                hlayer = HDense(layer.units, **common)
            else:
                if config.get("data_format", "channels_last") != "channels_last" or any(
                    d != 1 for d in config.get("dilation_rate", (1, 1))
                ):
                    raise ConversionError(
                        f"layer '{layer.name}' (Conv2D): the HGQ counterpart handles "
                        "channels_last convolutions without dilation"
                    )
                hlayer = HConv2D(
                    layer.filters,
                    layer.kernel_size,
                    strides=layer.strides,
                    padding=layer.padding,
                    **common,
                )
            x = hlayer(x)
            copies.append((hlayer, layer))
        elif kind == "MaxPooling2D":
            x = PMaxPooling2D(
                layer.pool_size, strides=layer.strides, padding=layer.padding, name=layer.name
            )(x)
        elif kind == "Flatten":
            x = PFlatten(name=layer.name)(x)
        elif kind == "ReLU" or (kind == "Activation" and name == "relu"):
            x = HActivation("relu", beta=beta, paq_conf=activation_conf, name=layer.name)(x)
        elif kind == "Activation" and name == "softmax" and layer is last:
            x = keras.layers.Activation("softmax", name=layer.name)(x)
        elif kind == "Dropout":
            continue
        else:  # pragma: no cover - check_hgq_float_model refused it above
            raise _no_counterpart(layer)
    hmodel = keras.Model(inputs, x, name=f"{model.name}_hgq")
    for hlayer, layer in copies:
        hlayer.kernel.assign(layer.kernel)
        if layer.use_bias:
            hlayer.bias.assign(layer.bias)
    return hmodel


def hgq_callbacks(settings: HGQSettings) -> list[Any]:
    """Keras callbacks of HGQ training: the ``beta`` schedule (:meth:`HGQSettings.beta_at`,
    set on every HGQ layer at each epoch's start, logged as ``beta``), HGQ's ``ResetMinMax``
    (activation ranges traced afresh each epoch) and ``FreeBOPs`` (EBOPs logged as
    ``bops``)."""
    # deferred: HGQ and TensorFlow load slowly
    from HGQ import FreeBOPs, ResetMinMax
    from tensorflow import keras

    class BetaSchedule(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            beta = settings.beta_at(epoch)
            for layer in self.model.layers:
                if hasattr(layer, "beta") and hasattr(layer.beta, "assign"):
                    layer.beta.assign(beta)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is not None:
                logs["beta"] = settings.beta_at(epoch)

    return [BetaSchedule(), ResetMinMax(), FreeBOPs()]


def logits_model(model: keras.Model) -> keras.Model:
    """``model`` without its final softmax (the same model when it has none): the logits,
    which the proxy model's firmware reproduces bit for bit."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    last = model.layers[-1]
    if (
        type(last).__name__ == "Activation"
        and getattr(last.activation, "__name__", "") == "softmax"
    ):
        return keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    return model


def with_softmax(logits: keras.Model) -> keras.Model:
    """``logits`` followed by a float softmax named ``softmax`` (a proxy model of the
    logits as the classifier it stands for)."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    probs = keras.layers.Activation("softmax", name="softmax")(logits.output)
    return keras.Model(logits.inputs, probs, name=f"{logits.name}_softmax")


def onnx_ready_proxy(proxy: keras.Model) -> keras.Model:
    """The proxy model (a chain of layers) with every ``FixedPointQuantizer`` replaced by the
    same arithmetic in plain TensorFlow operations, which tf2onnx converts (HGQ's quantizer is
    an XLA-compiled ``tf.function``, a ``StatefulPartitionedCall`` ONNX has no operator for).

    Per element, in float32 as HGQ computes it: ``y = x * 2**f``; ``RND``: ``floor(y + 1/2)``,
    ``TRN``: ``floor(y)``; ``WRAP``: ``(y - low) - floor((y - low) / n) * n + low`` with
    ``n = 2**(bits - keep_negative)`` (HGQ's ``floormod``; every step exact: ``n`` is a power
    of two and the integers are below 2**24), ``SAT``/``SAT_SYM``: clipped to
    ``[low, high]``; then ``y * 2**-f``, and 0 where ``bits == 0`` (every division is a
    multiplication by a power of two: exact). The other layers are the
    proxy model's own (shared weights). Its outputs equal the proxy model's bit for bit.
    """
    # deferred: TensorFlow loads slowly
    import tensorflow as tf
    from tensorflow import keras

    class GridQuantizer(keras.layers.Layer):  # type: ignore[misc]
        def __init__(self, source: Any) -> None:
            super().__init__(name=f"{source.name}_onnx", trainable=False)
            keep = np.asarray(source.keep_negative.numpy(), dtype=np.float32)
            bits = np.asarray(source.bits.numpy(), dtype=np.float32)
            integers = np.asarray(source.integers.numpy(), dtype=np.float32)
            self.rounding, self.overflow = str(source.RND), str(source.SAT)
            if self.rounding not in ("RND", "TRN") or self.overflow not in (
                "WRAP",
                "SAT",
                "SAT_SYM",
            ):
                raise ConversionError(
                    f"layer '{source.name}' (FixedPointQuantizer): {self.rounding}/"
                    f"{self.overflow} has no ONNX form here; supported: RND or TRN with WRAP, "
                    "SAT or SAT_SYM"
                )
            self.scale = np.exp2(bits - integers).astype(np.float32)
            high = np.exp2(bits - keep) - 1
            self.high = high.astype(np.float32)
            low = -high * keep if self.overflow == "SAT_SYM" else -(high + 1) * keep
            self.low = low.astype(np.float32)
            span = (high + 1) * (1 + keep)  # 2**bits: the wrap-around period
            # multiplications by powers of two only: exact, where TensorFlow's float32
            # division on CPU is not (it returns 0.74999994 for 3 / 4 in a graph)
            self.inverse_span = (1 / span).astype(np.float32)
            self.span = span.astype(np.float32)
            self.inverse_scale = (self.mask_of(bits) / self.scale).astype(np.float32)

        @staticmethod
        def mask_of(bits: Any) -> Any:
            return (bits != 0).astype(np.float32)

        def call(self, x: Any) -> Any:
            y = x * self.scale
            y = tf.floor(y + 0.5) if self.rounding == "RND" else tf.floor(y)
            if self.overflow == "WRAP":
                shifted = y - self.low
                y = shifted - tf.floor(shifted * self.inverse_span) * self.span + self.low
            else:
                y = tf.minimum(tf.maximum(y, self.low), self.high)
            return y * self.inverse_scale

    layers = [layer for layer in proxy.layers if type(layer).__name__ != "InputLayer"]
    inputs = keras.Input(proxy.inputs[0].shape[1:], name=proxy.inputs[0].node.layer.name)
    x = inputs
    previous = proxy.inputs[0].node.layer
    for layer in layers:
        inbound = [node.inbound_layers for node in layer.inbound_nodes]
        if inbound != [previous]:
            raise ConversionError(
                f"layer '{layer.name}' does not follow '{previous.name}': the ONNX form of an "
                "HGQ proxy model handles a chain of layers (no branches or merges)"
            )
        kind = type(layer).__name__
        if kind == "UnaryLUT":
            raise ConversionError(
                f"layer '{layer.name}' (UnaryLUT): HGQ's activation tables have no ONNX form here"
            )
        x = GridQuantizer(layer)(x) if kind == "FixedPointQuantizer" else layer(x)
        previous = layer
    return keras.Model(inputs, x, name=f"{proxy.name}_onnx")
