"""The tiny QKeras tagger the emulator-library tests package (shared by
tests/firmware/test_emulator_lib.py and tests/cli/test_emulator_lib_bdt.py)."""

from __future__ import annotations

from typing import Any


def tiny_model(seed: int) -> Any:
    """A QKeras 8 -> 8 -> 3 tagger; layer names fixed, weights from ``seed``."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)

    def bits() -> Any:
        return quantized_bits(6, 0, alpha=1)

    x = keras.Input((8,), name="input")
    h = QActivation(quantized_bits(12, 4, alpha=1), name="input_quant")(x)
    h = QDense(8, kernel_quantizer=bits(), bias_quantizer=bits(), name="dense_1")(h)
    h = QActivation(quantized_relu(6), name="relu_1")(h)
    h = QDense(3, kernel_quantizer=bits(), bias_quantizer=bits(), name="logits")(h)
    out = keras.layers.Activation("softmax", name="softmax")(h)
    return keras.Model(x, out, name="tagger")
