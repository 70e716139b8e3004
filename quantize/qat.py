"""QKeras counterparts of float models, through a layer-mapping registry.

:func:`quantize_model` rebuilds a float model (a chain, or branches joined by ``Concatenate``)
layer by layer: each float layer's class name is looked up in :data:`LAYER_MAPPINGS`, whose
entry makes the QKeras layer and says which weights to copy, so QAT starts from the trained
network. Bit widths come from :class:`QuantizationSpec`: the global defaults, then a default
per layer kind
(``kinds: {conv: {weight_bits: 8}}``), then an override per layer name
(``layers: {logits: {weight_bits: 10}}``).

=========================  ===========================  =======================================
float layer                kind                         QKeras layer (hardware type it implies)
=========================  ===========================  =======================================
``Input``                  input                        ``Input`` followed by
                                                        ``QActivation(quantized_bits(
                                                        input_bits, input_integer, alpha=1))``
                                                        named ``input_quant``:
                                                        ``ap_fixed<input_bits,
                                                        input_integer+1, AP_RND_CONV, AP_SAT>``
``Dense``                  dense                        ``QDense``, kernel and bias
                                                        ``quantized_bits(weight_bits,
                                                        weight_integer, alpha=1)``:
                                                        ``ap_fixed<weight_bits,
                                                        weight_integer+1>``
``Conv1D``, ``Conv2D``     conv                         ``QConv1D``/``QConv2D``, quantizers as
                                                        ``Dense``
``LSTM``, ``GRU``          recurrent                    ``QLSTM``/``QGRU``: kernel, recurrent
                                                        kernel and bias as ``Dense``; the
                                                        activations stay float in QKeras and
                                                        are lookup tables in firmware
``Activation('relu')``     activation                   ``QActivation(quantized_relu(
                                                        activation_bits, activation_integer))``:
                                                        ``ap_ufixed<activation_bits,
                                                        activation_integer, AP_RND_CONV,
                                                        AP_SAT>``
``Activation('softmax')``  activation                   unchanged (float in Keras, table-based
                                                        in firmware)
``MaxPooling1D/2D``,       structural                   the same layer (exact in fixed point)
``Flatten``, ``Reshape``,
``Cropping1D``,
``Concatenate``,
``UpSampling1D/2D``
``Dropout``                structural                   removed (identity at inference)
``GarNet`` (hls4ml         graph                        ``GarNet(quantize_transforms=True)``:
contrib)                                                its transforms and output as
                                                        ``quantized_bits(weight_bits,
                                                        weight_integer, 0, alpha=1)``
=========================  ===========================  =======================================

QKeras rounds half to even (``tf.round``) and saturates, which is what ``AP_RND_CONV`` and
``AP_SAT`` do in hardware. ``alpha=1`` fixes the scale to a power of two (no per-channel
scale), so the quantized weights are exactly representable in the ap_fixed type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hepfpga._schema import closest
from hepfpga.errors import ConfigError, ConversionError
from hepfpga.registry import Registry
from hepfpga.train.garnet_layers import garnet_classes

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = [
    "LAYER_MAPPINGS",
    "Bits",
    "LayerBits",
    "LayerMapping",
    "QuantizationSpec",
    "qkeras_compat",
    "qkeras_custom_objects",
    "quantize_model",
    "register_layer_mapping",
]

_BIT_KEYS = ("weight", "activation")


def _check_bits(bits: int, integer: int, name: str, prefix: str = "") -> None:
    if not 1 <= bits <= 32:
        raise ConfigError(f"expected 1..32 bits, got {bits}", path=f"{prefix}{name}_bits")
    if not 0 <= integer < bits:
        raise ConfigError(
            f"expected 0 <= integer < {name}_bits ({bits}), got {integer}",
            path=f"{prefix}{name}_integer",
        )


@dataclass(frozen=True)
class Bits:
    """The resolved bit widths of one layer and the QKeras quantizers they give."""

    weight_bits: int
    weight_integer: int
    activation_bits: int
    activation_integer: int

    def weight_quantizer(self) -> Any:
        """``quantized_bits(weight_bits, weight_integer, alpha=1)``: ``ap_fixed<weight_bits,
        weight_integer + 1>``."""
        # deferred: TensorFlow loads slowly
        from qkeras import quantized_bits

        return quantized_bits(self.weight_bits, self.weight_integer, alpha=1)

    def activation_quantizer(self) -> Any:
        """``quantized_relu(activation_bits, activation_integer)``: ``ap_ufixed<activation_bits,
        activation_integer>``."""
        # deferred: TensorFlow loads slowly
        from qkeras import quantized_relu

        return quantized_relu(self.activation_bits, self.activation_integer)


@dataclass(frozen=True)
class LayerBits:
    """Bit widths overriding the defaults for a layer kind or a layer name (None: inherit)."""

    weight_bits: int | None = None
    weight_integer: int | None = None
    activation_bits: int | None = None
    activation_integer: int | None = None

    def apply(self, bits: Bits, prefix: str = "") -> Bits:
        """``bits`` with this override's non-None values; validated (path under ``prefix``)."""
        changes = {k: v for k, v in vars(self).items() if v is not None}
        out = replace(bits, **changes)
        for name in _BIT_KEYS:
            _check_bits(getattr(out, f"{name}_bits"), getattr(out, f"{name}_integer"), name, prefix)
        return out


@dataclass(frozen=True)
class QuantizationSpec:
    """Bit widths of a QKeras model (see the module table for the hardware types).

    ``kinds``: defaults per layer kind (the ``kind`` of a :class:`LayerMapping`: dense, conv,
    recurrent, activation); ``layers``: overrides per layer name, applied last.
    """

    weight_bits: int = 6
    weight_integer: int = 0
    activation_bits: int = 6
    activation_integer: int = 0
    input_bits: int = 16
    input_integer: int = 5
    kinds: dict[str, LayerBits] = field(default_factory=dict)
    layers: dict[str, LayerBits] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (*_BIT_KEYS, "input"):
            _check_bits(getattr(self, f"{name}_bits"), getattr(self, f"{name}_integer"), name)
        kinds = sorted({m.kind for m in LAYER_MAPPINGS.values()} - {"input", "structural"})
        for kind, override in self.kinds.items():
            if kind not in kinds:
                raise ConfigError(
                    f"unknown layer kind '{kind}'; accepted: {', '.join(kinds)}",
                    path=f"kinds.{kind}",
                )
            override.apply(self.defaults(), prefix=f"kinds.{kind}.")
        for name, override in self.layers.items():
            override.apply(self.defaults(), prefix=f"layers.{name}.")

    def defaults(self) -> Bits:
        """The global bit widths, before any kind or layer override."""
        return Bits(
            self.weight_bits, self.weight_integer, self.activation_bits, self.activation_integer
        )

    def bits_for(self, layer_name: str, kind: str) -> Bits:
        """The bit widths of layer ``layer_name`` of ``kind``: defaults, then the kind's, then
        the layer's override."""
        bits = self.defaults()
        if kind in self.kinds:
            bits = self.kinds[kind].apply(bits, prefix=f"kinds.{kind}.")
        if layer_name in self.layers:
            bits = self.layers[layer_name].apply(bits, prefix=f"layers.{layer_name}.")
        return bits

    def weight_quantizer(self) -> Any:
        return self.defaults().weight_quantizer()

    def activation_quantizer(self) -> Any:
        return self.defaults().activation_quantizer()

    def input_quantizer(self) -> Any:
        # deferred: TensorFlow loads slowly
        from qkeras import quantized_bits

        return quantized_bits(self.input_bits, self.input_integer, alpha=1)

    def check_layer_names(self, model: keras.Model) -> None:
        """A :class:`ConfigError` at ``layers.<name>`` for an override naming no layer of
        ``model`` (checked before training, on the untrained float model)."""
        names = [layer.name for layer in model.layers]
        for name in self.layers:
            if name not in names:
                hint = closest(name, names)
                suggestion = f"; did you mean '{hint}'?" if hint else ""
                raise ConfigError(
                    f"no layer named '{name}' in the model{suggestion} Layers: {', '.join(names)}",
                    path=f"layers.{name}",
                )


def qkeras_compat() -> None:
    """Make QKeras 0.9.0's recurrent cells run on TensorFlow 2.14.

    ``QGRUCell`` and ``QSimpleRNNCell`` call ``tensorflow.python.util.nest.is_sequence``
    (renamed ``is_nested`` in TensorFlow 2.13, same behaviour) and ``QGRUCell`` calls
    ``tensorflow.python.ops.array_ops.unstack`` (now only ``tf.unstack``, the same op);
    without these a QGRU fails on its first call. Idempotent; changes nothing when the
    names exist.
    """
    # deferred: TensorFlow loads slowly
    import tensorflow as tf
    from tensorflow.python.ops import array_ops
    from tensorflow.python.util import nest

    if not hasattr(nest, "is_sequence"):
        nest.is_sequence = nest.is_nested
    if not hasattr(array_ops, "unstack"):
        array_ops.unstack = tf.unstack


def qkeras_custom_objects() -> dict[str, Any]:
    """The custom objects Keras needs to load a saved QKeras model."""
    # deferred: TensorFlow loads slowly
    from qkeras.utils import _add_supported_quantized_objects

    qkeras_compat()

    objects: dict[str, Any] = {}
    _add_supported_quantized_objects(objects)
    return objects


#: ``convert(float_layer, bits) -> QKeras layer`` (None: the layer is dropped)
Converter = Callable[[Any, Bits], Any]


@dataclass(frozen=True)
class LayerMapping:
    """How one float Keras layer class becomes its QKeras counterpart.

    ``kind`` selects the per-kind bit widths (``quantization.kinds``); with
    ``copies_weights`` the float layer's weights are set on the new layer after the model is
    built (same shapes and order).
    """

    kind: str
    convert: Converter
    copies_weights: bool = False


#: Layer mappings by float Keras class name.
LAYER_MAPPINGS: Registry[LayerMapping] = Registry("layer mapping")


def register_layer_mapping(
    *class_names: str, kind: str, copies_weights: bool = False
) -> Callable[[Converter], Converter]:
    """Decorator: ``convert`` maps the float layer classes ``class_names``."""

    def decorator(convert: Converter) -> Converter:
        for name in class_names:
            LAYER_MAPPINGS.register(name, LayerMapping(kind, convert, copies_weights))
        return convert

    return decorator


def _no_fused_activation(layer: Any) -> None:
    activation = layer.get_config().get("activation", "linear")
    if activation not in ("linear", None):
        raise ConversionError(
            f"layer '{layer.name}': {type(layer).__name__} with a fused activation "
            f"'{activation}' is not supported; use a separate Activation layer"
        )


@register_layer_mapping("Dense", kind="dense", copies_weights=True)
def _dense(layer: Any, bits: Bits) -> Any:
    # deferred: TensorFlow loads slowly
    from qkeras import QDense

    _no_fused_activation(layer)
    return QDense(
        layer.units,
        kernel_quantizer=bits.weight_quantizer(),
        bias_quantizer=bits.weight_quantizer(),
        use_bias=layer.use_bias,
        name=layer.name,
    )


@register_layer_mapping("Conv1D", "Conv2D", kind="conv", copies_weights=True)
def _conv(layer: Any, bits: Bits) -> Any:
    # deferred: TensorFlow loads slowly
    import qkeras

    _no_fused_activation(layer)
    cls = getattr(qkeras, f"Q{type(layer).__name__}")
    cfg = layer.get_config()
    return cls(
        cfg["filters"],
        cfg["kernel_size"],
        strides=cfg["strides"],
        padding=cfg["padding"],
        use_bias=cfg["use_bias"],
        kernel_quantizer=bits.weight_quantizer(),
        bias_quantizer=bits.weight_quantizer(),
        name=layer.name,
    )


@register_layer_mapping("LSTM", "GRU", kind="recurrent", copies_weights=True)
def _recurrent(layer: Any, bits: Bits) -> Any:
    # deferred: TensorFlow loads slowly
    import qkeras

    qkeras_compat()
    cls = getattr(qkeras, f"Q{type(layer).__name__}")
    cfg = layer.get_config()
    extra = {"reset_after": cfg["reset_after"]} if "reset_after" in cfg else {}
    return cls(
        cfg["units"],
        activation=cfg["activation"],
        recurrent_activation=cfg["recurrent_activation"],
        use_bias=cfg["use_bias"],
        return_sequences=cfg["return_sequences"],
        kernel_quantizer=bits.weight_quantizer(),
        recurrent_quantizer=bits.weight_quantizer(),
        bias_quantizer=bits.weight_quantizer(),
        name=layer.name,
        **extra,
    )


@register_layer_mapping("GarNet", kind="graph", copies_weights=True)
def _garnet(layer: Any, bits: Bits) -> Any:
    # hepfpga's GarNet class: its saved config keeps total_bits/int_bits, so it reloads
    garnet = garnet_classes()["GarNet"]
    cfg = layer.get_config()
    if cfg["quantize_transforms"]:
        raise ConversionError(f"layer '{layer.name}': GarNet is already quantized")
    keep = ("simplified", "collapse", "input_format", "output_activation", "mean_by_nvert")
    return garnet(
        cfg["n_aggregators"],
        cfg["n_filters"],
        cfg["n_propagate"],
        quantize_transforms=True,
        total_bits=bits.weight_bits,
        int_bits=bits.weight_integer,
        name=layer.name,
        **{k: cfg[k] for k in keep},
    )


#: the float activations QAT maps (``Activation(name)``), by name
_ACTIVATIONS: Registry[Callable[[Any, Bits], Any]] = Registry(
    "activation",
    {
        "relu": lambda layer, bits: _qactivation(bits.activation_quantizer(), layer.name),
        "softmax": lambda layer, bits: _activation("softmax", layer.name),
        "linear": lambda layer, bits: None,
    },
)


def _qactivation(quantizer: Any, name: str) -> Any:
    # deferred: TensorFlow loads slowly
    from qkeras import QActivation

    return QActivation(quantizer, name=name)


def _activation(kind: str, name: str) -> Any:
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    return keras.layers.Activation(kind, name=name)


@register_layer_mapping("Activation", kind="activation")
def _activation_layer(layer: Any, bits: Bits) -> Any:
    kind = layer.get_config()["activation"]
    if kind not in _ACTIVATIONS:
        raise ConversionError(
            f"layer '{layer.name}': activation '{kind}' has no quantized counterpart here; "
            f"supported activations: {', '.join(_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[kind](layer, bits)


@register_layer_mapping(
    "MaxPooling1D",
    "MaxPooling2D",
    "Flatten",
    "Reshape",
    "Cropping1D",
    "Concatenate",
    "UpSampling1D",
    "UpSampling2D",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling1D",
    kind="structural",
)
def _same_layer(layer: Any, bits: Bits) -> Any:
    return type(layer).from_config(layer.get_config())


@register_layer_mapping("Dropout", kind="structural")
def _dropped(layer: Any, bits: Bits) -> Any:
    return None


def quantize_model(model: keras.Model, spec: QuantizationSpec) -> keras.Model:
    """The QKeras counterpart of a single-input, single-output float ``model`` with the float
    weights copied in, built through :data:`LAYER_MAPPINGS`: the input quantizer after the
    input, then each layer's counterpart wired as the float graph is (a chain, or branches
    joined by ``Concatenate``); a dropped layer (``Dropout``) passes its input on.

    A layer class without a mapping raises :class:`~hepfpga.errors.ConversionError` naming
    the layer and listing the supported classes; an override in ``spec.layers`` naming no
    layer of the model raises :class:`~hepfpga.errors.ConfigError`.
    """
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConversionError(
            f"quantize_model handles single-input, single-output models; {model.name} has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    spec.check_layer_names(model)
    inputs = keras.Input(model.inputs[0].shape[1:], name=model.layers[0].name)
    # the quantized tensor standing for each float tensor (by identity)
    tensors: dict[int, Any] = {
        id(model.inputs[0]): _qactivation(spec.input_quantizer(), "input_quant")(inputs)
    }
    copies: list[tuple[Any, Any]] = []
    for layer in model.layers[1:]:
        mapping = LAYER_MAPPINGS.get(type(layer).__name__)
        if mapping is None:
            raise ConversionError(
                f"layer '{layer.name}' of type {type(layer).__name__} is not supported by "
                f"quantize_model; supported layers: {', '.join(LAYER_MAPPINGS)}"
            )
        float_inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        x = [tensors[id(t)] for t in float_inputs]
        qlayer = mapping.convert(layer, spec.bits_for(layer.name, mapping.kind))
        if qlayer is None:
            tensors[id(layer.output)] = x[0]
            continue
        tensors[id(layer.output)] = qlayer(x if len(x) > 1 else x[0])
        if mapping.copies_weights:
            copies.append((qlayer, layer))
    qmodel = keras.Model(inputs, tensors[id(model.outputs[0])], name=f"{model.name}_qkeras")
    for qlayer, layer in copies:
        qlayer.set_weights(layer.get_weights())
    return qmodel
