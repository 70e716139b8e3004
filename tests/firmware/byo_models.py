"""Small Keras/QKeras models of the kinds users bring, with seeded random weights.

Imported by the bring-your-own-model tests through the ``byo_models`` fixture (conftest).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _q(bits: int = 6, integer: int = 0) -> Any:
    from qkeras import quantized_bits

    return quantized_bits(bits, integer, alpha=1)


def _randomise_batchnorm(model: Any, seed: int) -> None:
    """Non-trivial moving statistics, as after training."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, gamma.shape),
                    rng.normal(0, 0.3, beta.shape),
                    rng.normal(0, 0.5, mean.shape),
                    rng.uniform(0.3, 3.0, var.shape),
                ]
            )


def qdense_batchnorm(seed: int = 0) -> Any:
    """QDense -> BatchNormalization -> quantized_relu, twice, then logits and softmax."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((10,), name="features")
    h = QActivation(_q(12, 3), name="input_quant")(x)
    for i, n in enumerate((16, 8), 1):
        h = QDense(n, kernel_quantizer=_q(), bias_quantizer=_q(), name=f"dense_{i}")(h)
        h = keras.layers.BatchNormalization(name=f"bn_{i}")(h)
        h = QActivation(quantized_relu(8, 2), name=f"relu_{i}")(h)
    h = QDense(4, kernel_quantizer=_q(), bias_quantizer=_q(), name="logits")(h)
    model = keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))
    _randomise_batchnorm(model, seed)
    return model


def binary_ternary_dense(kind: str, activation: str = "quantized_relu(4, 2)", seed: int = 0) -> Any:
    """Dense layers with binary() or ternary() weights; quantized_bits biases."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, binary, ternary
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    weights = {"binary": binary, "ternary": ternary}[kind]
    x = keras.Input((12,), name="features")
    h = QActivation(_q(10, 2), name="input_quant")(x)
    h = QDense(16, kernel_quantizer=weights(alpha=1), bias_quantizer=_q(), name="dense_1")(h)
    h = QActivation(activation, name="relu_1")(h)
    h = QDense(3, kernel_quantizer=weights(alpha=1), bias_quantizer=_q(), name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))


def pruned_dense(seed: int = 0) -> Any:
    """A QKeras MLP wrapped for tfmot pruning, with 50% of the weights pruned."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    from qkeras import QActivation, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    prune = tfmot.sparsity.keras.prune_low_magnitude
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1)
    x = keras.Input((16,), name="features")
    h = QActivation(_q(16, 5), name="input_quant")(x)
    h = prune(
        QDense(32, kernel_quantizer=_q(), bias_quantizer=_q(), name="dense_1"),
        pruning_schedule=schedule,
    )(h)
    h = QActivation(quantized_relu(6), name="relu_1")(h)
    h = prune(
        QDense(5, kernel_quantizer=_q(), bias_quantizer=_q(), name="logits"),
        pruning_schedule=schedule,
    )(h)
    model = keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))
    # one pruning step applies the masks (50% zeros), as after pruning-aware training
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    data = np.random.default_rng(seed).normal(size=(64, 16)).astype(np.float32)
    labels = np.eye(5)[np.arange(64) % 5]
    model.fit(
        data,
        labels,
        epochs=1,
        batch_size=64,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    return model


def conv1d(seed: int = 0) -> Any:
    """QConv1D -> relu -> max pool -> QConv1D -> relu -> flatten -> QDense logits."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((16, 3), name="sequence")
    h = QActivation(_q(10, 3), name="input_quant")(x)
    h = QConv1D(4, 3, kernel_quantizer=_q(), bias_quantizer=_q(), name="conv_1")(h)
    h = QActivation(quantized_relu(6, 1), name="relu_1")(h)
    h = keras.layers.MaxPooling1D(2, name="pool_1")(h)
    h = QConv1D(4, 3, kernel_quantizer=_q(), bias_quantizer=_q(), name="conv_2")(h)
    h = QActivation(quantized_relu(6, 1), name="relu_2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(3, kernel_quantizer=_q(), bias_quantizer=_q(), name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))


def conv2d_pooling(seed: int = 0) -> Any:
    """QConv2D -> relu -> max pool -> QConv2D -> relu -> average pool -> flatten -> logits."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((10, 10, 1), name="image")
    h = QActivation(_q(8, 1), name="input_quant")(x)
    h = QConv2D(4, (3, 3), kernel_quantizer=_q(), bias_quantizer=_q(), name="conv_1")(h)
    h = QActivation(quantized_relu(6, 1), name="relu_1")(h)
    h = keras.layers.MaxPooling2D((2, 2), name="max_pool")(h)
    h = QConv2D(4, (2, 2), kernel_quantizer=_q(), bias_quantizer=_q(), name="conv_2")(h)
    h = QActivation(quantized_relu(6, 1), name="relu_2")(h)
    h = keras.layers.AveragePooling2D((2, 2), name="avg_pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(3, kernel_quantizer=_q(), bias_quantizer=_q(), name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))


def float_dense_batchnorm(seed: int = 0) -> Any:
    """A float Keras MLP with batch normalization (types proposed from profiled ranges)."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((16,), name="features")
    h = keras.layers.Dense(32, name="dense_1")(x)
    h = keras.layers.BatchNormalization(name="bn_1")(h)
    h = keras.layers.Activation("relu", name="relu_1")(h)
    h = keras.layers.Dense(16, activation="relu", name="dense_2")(h)
    h = keras.layers.Dense(5, name="logits")(h)
    model = keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))
    _randomise_batchnorm(model, seed)
    return model


def events(shape: tuple[int, ...], n: int, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    """Standard-normal events (times ``scale``) of the given input shape, float32."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, *shape)) * scale).astype(np.float32)
