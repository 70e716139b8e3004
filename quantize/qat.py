"""QKeras counterparts of float models, and quantization-aware fine-tuning.

:func:`quantize_model` rebuilds a float model layer by layer with QKeras layers and copies the
float weights in, so QAT starts from the trained network:

=========================  ============================================================
float layer                QKeras layer (hardware type it implies)
=========================  ============================================================
``Input``                  ``Input`` followed by ``QActivation(quantized_bits(input_bits,
                           input_integer, alpha=1))`` named ``input_quant``:
                           ``ap_fixed<input_bits, input_integer+1, AP_RND_CONV, AP_SAT>``
``Dense``                  ``QDense`` with ``quantized_bits(weight_bits, weight_integer,
                           alpha=1)`` kernel and bias: ``ap_fixed<weight_bits,
                           weight_integer+1>``
``Activation('relu')``     ``QActivation(quantized_relu(activation_bits,
                           activation_integer))``: ``ap_ufixed<activation_bits,
                           activation_integer, AP_RND_CONV, AP_SAT>``
``Activation('softmax')``  unchanged (float in Keras, table-based in firmware)
``Dropout``                removed (identity at inference)
=========================  ============================================================

QKeras rounds half to even (``tf.round``) and saturates, which is what ``AP_RND_CONV`` and
``AP_SAT`` do in hardware. ``alpha=1`` fixes the scale to a power of two (no per-channel
scale), so the quantized weights are exactly representable in the ap_fixed type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hepfpga.errors import ConfigError, ConversionError

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["QuantizationSpec", "qkeras_custom_objects", "quantize_model"]


@dataclass(frozen=True)
class QuantizationSpec:
    """Bit widths of a QKeras model (see the module table for the hardware types)."""

    weight_bits: int = 6
    weight_integer: int = 0
    activation_bits: int = 6
    activation_integer: int = 0
    input_bits: int = 16
    input_integer: int = 5

    def __post_init__(self) -> None:
        for name in ("weight", "activation", "input"):
            bits = getattr(self, f"{name}_bits")
            integer = getattr(self, f"{name}_integer")
            if not 1 <= bits <= 32:
                raise ConfigError(f"expected 1..32 bits, got {bits}", path=f"{name}_bits")
            if not 0 <= integer < bits:
                raise ConfigError(
                    f"expected 0 <= integer < {name}_bits ({bits}), got {integer}",
                    path=f"{name}_integer",
                )

    def weight_quantizer(self) -> Any:
        from qkeras import quantized_bits

        return quantized_bits(self.weight_bits, self.weight_integer, alpha=1)

    def activation_quantizer(self) -> Any:
        from qkeras import quantized_relu

        return quantized_relu(self.activation_bits, self.activation_integer)

    def input_quantizer(self) -> Any:
        from qkeras import quantized_bits

        return quantized_bits(self.input_bits, self.input_integer, alpha=1)


def qkeras_custom_objects() -> dict[str, Any]:
    """The custom objects Keras needs to load a saved QKeras model."""
    from qkeras.utils import _add_supported_quantized_objects

    objects: dict[str, Any] = {}
    _add_supported_quantized_objects(objects)
    return objects


def quantize_model(model: keras.Model, spec: QuantizationSpec) -> keras.Model:
    """The QKeras counterpart of a sequential float ``model`` with the float weights copied in.

    Supports ``Dense``, ``Activation`` (relu, softmax, linear) and ``Dropout`` layers in a
    single chain; anything else raises :class:`~hepfpga.errors.ConversionError` naming the
    layer and listing what is supported.
    """
    from qkeras import QActivation, QDense
    from tensorflow import keras

    supported = "Dense, Activation(relu|softmax|linear), Dropout"
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConversionError(
            f"quantize_model handles single-input, single-output models; {model.name} has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    inputs = keras.Input(model.inputs[0].shape[1:], name=model.layers[0].name)
    x = QActivation(spec.input_quantizer(), name="input_quant")(inputs)
    copies: list[tuple[Any, Any]] = []
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Dense):
            qlayer = QDense(
                layer.units,
                kernel_quantizer=spec.weight_quantizer(),
                bias_quantizer=spec.weight_quantizer(),
                use_bias=layer.use_bias,
                name=layer.name,
            )
            x = qlayer(x)
            copies.append((qlayer, layer))
            activation = layer.get_config().get("activation", "linear")
            if activation not in ("linear", None):
                raise ConversionError(
                    f"layer '{layer.name}': Dense with a fused activation '{activation}' is not "
                    "supported; use a separate Activation layer"
                )
        elif isinstance(layer, keras.layers.Activation):
            kind = layer.get_config()["activation"]
            if kind == "relu":
                x = QActivation(spec.activation_quantizer(), name=layer.name)(x)
            elif kind == "softmax":
                x = keras.layers.Activation("softmax", name=layer.name)(x)
            elif kind == "linear":
                continue
            else:
                raise ConversionError(
                    f"layer '{layer.name}': activation '{kind}' has no quantized counterpart here; "
                    "supported activations: relu, softmax, linear"
                )
        elif isinstance(layer, keras.layers.Dropout):
            continue
        else:
            raise ConversionError(
                f"layer '{layer.name}' of type {type(layer).__name__} is not supported by "
                f"quantize_model; supported layers: {supported}"
            )
    qmodel = keras.Model(inputs, x, name=f"{model.name}_qkeras")
    for qlayer, layer in copies:
        qlayer.set_weights(layer.get_weights())
    return qmodel
