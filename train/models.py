"""Float Keras model builders, found through a registry.

``MODEL_BUILDERS[name](n_inputs, n_classes, config, seed)`` returns an uncompiled ``keras.Model``
whose last two layers are the logits (a ``Dense`` named ``logits``) and a ``softmax``
``Activation``: keeping them separate lets the firmware and the verification compare the
pre-softmax values exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hepfpga.train.config import ModelConfig

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["MODEL_BUILDERS", "build_model", "register_model"]

ModelBuilder = Callable[[int, int, ModelConfig, int], "keras.Model"]

#: Registered float architectures, by the name used in ``model.architecture``.
MODEL_BUILDERS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Class decorator-style registration of a model builder under ``name``."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in MODEL_BUILDERS:
            raise ValueError(f"model architecture {name!r} is already registered")
        MODEL_BUILDERS[name] = builder
        return builder

    return decorator


def build_model(n_inputs: int, n_classes: int, config: ModelConfig, seed: int = 0) -> keras.Model:
    """Build the float model named by ``config.architecture``; ``seed`` fixes its initial
    weights."""
    try:
        builder = MODEL_BUILDERS[config.architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {config.architecture!r}; "
            f"registered: {', '.join(sorted(MODEL_BUILDERS))}"
        ) from None
    return builder(n_inputs, n_classes, config, seed)


@register_model("mlp")
def build_mlp(n_inputs: int, n_classes: int, config: ModelConfig, seed: int = 0) -> keras.Model:
    """Fully connected tagger ``n_inputs - hidden_units... - n_classes`` with ReLU and softmax.

    Layers are named ``dense_1``, ``relu_1``, ... ``logits``, ``softmax``; the quantizer maps
    each to its QKeras counterpart by name. L1/L2 penalties apply to kernels; dropout (if any)
    follows each hidden activation and is dropped in the quantized model.
    """
    from tensorflow import keras

    regularizer = (
        keras.regularizers.L1L2(l1=config.l1, l2=config.l2) if (config.l1 or config.l2) else None
    )
    inputs = keras.Input((n_inputs,), name="input")
    x = inputs
    for i, units in enumerate(config.hidden_units, start=1):
        x = keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.LecunUniform(seed=seed + i),
            kernel_regularizer=regularizer,
            name=f"dense_{i}",
        )(x)
        x = keras.layers.Activation(config.activation, name=f"{config.activation}_{i}")(x)
        if config.dropout > 0:
            x = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(
        n_classes,
        kernel_initializer=keras.initializers.LecunUniform(
            seed=seed + len(config.hidden_units) + 1
        ),
        kernel_regularizer=regularizer,
        name="logits",
    )(x)
    outputs = keras.layers.Activation("softmax", name="softmax")(logits)
    return keras.Model(inputs, outputs, name="jet_mlp")
