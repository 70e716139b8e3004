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


# -- models as users write them (issue 8): Sequential, built-in activations, no input quantizer,
# padding, up-sampling, merges, standalone activations ------------------------------------------
def sequential_float_tagger(seed: int = 0) -> Any:
    """A keras.Sequential jet tagger ending in Dense(5, activation='softmax')."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.layers.Dense(16, activation="relu", input_shape=(10,), name="dense_1"),
            keras.layers.BatchNormalization(name="bn_1"),
            keras.layers.Dense(8, activation="tanh", name="dense_2"),
            keras.layers.Dense(5, activation="softmax", name="output"),
        ],
        name="sequential_tagger",
    )


def sequential_qkeras_no_input_quantizer(bits: int = 6, seed: int = 0) -> Any:
    """A keras.Sequential QKeras MLP with built-in quantized activations and no input
    quantizer (the MNIST-style models of QKeras' examples)."""
    import tensorflow as tf
    from qkeras import QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            QDense(
                16,
                kernel_quantizer=_q(bits),
                bias_quantizer=_q(bits),
                activation=quantized_relu(bits, 2),
                input_shape=(12,),
                name="dense_1",
            ),
            QDense(4, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits"),
            keras.layers.Activation("softmax", name="softmax"),
        ],
        name="sequential_qkeras",
    )


def float_conv2d_same(seed: int = 0) -> Any:
    """A float Conv2D tagger: 'same' padding, built-in relu, pooling, softmax output."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv_1")(x)
    h = keras.layers.MaxPooling2D(2, name="pool_1")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    return keras.Model(x, keras.layers.Dense(3, activation="softmax", name="output")(h))


def qconv1d_reshaping(bits: int = 6, seed: int = 0, crop: bool = True) -> Any:
    """QConv1D ('same') with zero padding, cropping (unless ``crop`` is false: hls4ml 1.3's
    Quartus and Catapult have no Cropping; the QConv1D is then 'valid'), up-sampling and
    global pooling."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((8, 2), name="sequence")
    h = QActivation(_q(10, 3), name="input_quant")(x)
    h = keras.layers.ZeroPadding1D(1, name="pad")(h)
    # without the crop, a 'valid' convolution keeps 8 positions (16 after up-sampling: the
    # global average divides by a power of two)
    h = QConv1D(
        3,
        3,
        padding="same" if crop else "valid",
        kernel_quantizer=_q(bits),
        bias_quantizer=_q(bits),
        name="conv_1",
    )(h)
    h = QActivation(quantized_relu(bits, 2), name="relu_1")(h)
    if crop:
        h = keras.layers.Cropping1D((1, 1), name="crop")(h)
    h = keras.layers.UpSampling1D(2, name="upsample")(h)
    h = keras.layers.GlobalAveragePooling1D(name="global_avg")(h)
    return keras.Model(
        x, QDense(2, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    )


def qconv2d_upsampling(bits: int = 6, seed: int = 0) -> Any:
    """A QKeras decoder-like block: UpSampling2D, ZeroPadding2D, Cropping2D, QConv2D,
    Permute, global max pooling."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((4, 4, 1), name="image")
    h = QActivation(_q(8, 2), name="input_quant")(x)
    h = keras.layers.UpSampling2D(2, name="upsample")(h)
    h = keras.layers.ZeroPadding2D(1, name="pad")(h)
    h = QConv2D(2, 3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="conv_1")(h)
    h = QActivation(quantized_relu(bits, 2), name="relu_1")(h)
    h = keras.layers.Cropping2D(1, name="crop")(h)
    h = keras.layers.GlobalMaxPooling2D(name="global_max")(h)
    return keras.Model(
        x, QDense(2, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    )


def qmerge(bits: int = 6, seed: int = 0) -> Any:
    """Two QDense branches joined by every merge layer hls4ml has, then one output."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = keras.Input((6,), name="features")
    h = QActivation(_q(10, 3), name="input_quant")(x)

    def branch(name: str) -> Any:
        d = QDense(4, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name=name)(h)
        return QActivation(quantized_relu(bits, 2), name=f"{name}_relu")(d)

    a, b = branch("a"), branch("b")
    merged = [
        layers.Add(name="add")([a, b]),
        layers.Subtract(name="subtract")([a, b]),
        layers.Multiply(name="multiply")([a, b]),
        layers.Average(name="average")([a, b]),
        layers.Maximum(name="maximum")([a, b]),
        layers.Minimum(name="minimum")([a, b]),
    ]
    joined = merged[0]
    for i, m in enumerate(merged[1:]):
        joined = layers.Concatenate(name=f"concat_{i}")([joined, m])
    dot = layers.Dot(axes=1, name="dot")([a, b])
    joined = layers.Concatenate(name="concat_dot")([joined, dot])
    logits = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(joined)
    return keras.Model(x, logits)


def float_activations(seed: int = 0) -> Any:
    """A float model with every standalone activation layer hls4ml converts."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = keras.Input((8,), name="features")
    h = layers.Dense(8, name="dense_1")(x)
    h = layers.LeakyReLU(0.25, name="leaky")(h)
    h = layers.Dense(8, name="dense_2")(h)
    h = layers.ELU(name="elu")(h)
    h = layers.Dense(8, name="dense_3")(h)
    h = layers.PReLU(name="prelu")(h)
    h = layers.Dense(8, name="dense_4")(h)
    h = layers.ThresholdedReLU(0.5, name="thresholded")(h)
    h = layers.Dense(8, name="dense_5")(h)
    h = layers.ReLU(name="relu")(h)
    h = layers.Dense(8, activation="sigmoid", name="dense_6")(h)
    h = layers.Dense(4, name="logits")(h)
    return keras.Model(x, layers.Softmax(name="softmax")(h))


def vae_encoder(bits: int = 6, seed: int = 0) -> Any:
    """A QKeras VAE encoder with two outputs, ``[mu, log_var]``."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((8,), name="features")
    h = QActivation(_q(10, 3), name="input_quant")(x)
    h = QDense(
        8,
        kernel_quantizer=_q(bits),
        bias_quantizer=_q(bits),
        activation=quantized_relu(bits, 2),
        name="encoder",
    )(h)
    mu = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="mu")(h)
    log_var = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="log_var")(h)
    return keras.Model(x, [mu, log_var], name="vae_encoder")


def two_input_tagger(bits: int = 6, seed: int = 0) -> Any:
    """Two inputs (jet features, a second feature set) concatenated, one softmax output."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    a = keras.Input((6,), name="jet")
    b = keras.Input((4,), name="event")
    qa = QActivation(_q(10, 3), name="jet_quant")(a)
    qb = QActivation(_q(8, 2), name="event_quant")(b)
    h = keras.layers.Concatenate(name="concat")([qa, qb])
    h = QDense(
        8,
        kernel_quantizer=_q(bits),
        bias_quantizer=_q(bits),
        activation=quantized_relu(bits, 2),
        name="dense_1",
    )(h)
    h = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(h)
    return keras.Model([a, b], keras.layers.Activation("softmax", name="softmax")(h))


def float_recurrent(kind: str = "LSTM", seed: int = 0) -> Any:
    """A float LSTM (or GRU) over a short sequence, then a softmax classifier."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((6, 3), name="sequence")
    layer = getattr(keras.layers, kind)(8, name="rnn")
    h = layer(x)
    return keras.Model(x, keras.layers.Dense(3, activation="softmax", name="output")(h))


def qcnn_branches(bits: int = 4, seed: int = 1) -> Any:
    """A QKeras jet-image tagger touching several families at once: QConv2D, quantized_relu,
    MaxPooling2D, Flatten, QDense, two branches joined by Add and Concatenate, logits."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = keras.Input((6, 6, 1), name="image")
    h = QActivation(_q(10, 3), name="input_quant")(x)
    h = QConv2D(2, 3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="conv")(h)
    h = QActivation(quantized_relu(bits, 2), name="conv_relu")(h)
    h = layers.MaxPooling2D(2, name="pool")(h)
    h = layers.Flatten(name="flatten")(h)
    h = QDense(6, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="dense")(h)
    h = QActivation(quantized_relu(bits, 2), name="dense_relu")(h)
    a = QDense(4, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="a")(h)
    b = QDense(4, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="b")(h)
    joined = layers.Concatenate(name="concat")([layers.Add(name="add")([a, b]), a])
    logits = QDense(3, kernel_quantizer=_q(bits), bias_quantizer=_q(bits), name="logits")(joined)
    return keras.Model(x, logits)


def softmaxes_and_odd_names() -> Any:
    """A QKeras model with a final table softmax ('out', over exact logits) and one inside it
    ('inner', read by a QDense that is the second output), whose other layers carry names
    hls4ml cannot use as given: the input 'class', the input quantizer 'int', 'dense-1' next
    to 'dense_1', '1st', 'kernel_dense' and 'bias_layer' (hls4ml finds weights by substring).
    One g++ build serves the softmax bound's and the renaming's tests."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(11)

    def dense(n: int, name: str) -> Any:
        q = quantized_bits(6, 0, alpha=1)
        return QDense(n, kernel_quantizer=q, bias_quantizer=q, name=name)

    x = keras.Input((4,), name="class")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="int")(x)
    h = dense(6, "dense-1")(h)
    h = QActivation(quantized_relu(6, 2), name="1st")(h)
    h = dense(6, "kernel_dense")(h)
    logits = dense(5, "dense_1")(h)
    out = keras.layers.Activation("softmax", name="out")(logits)
    inner = keras.layers.Activation("softmax", name="inner")(logits)
    return keras.Model(x, [out, dense(3, "bias_layer")(inner)], name="softmaxes_and_odd_names")


def softmax_edge_events(n: int = 400) -> np.ndarray:
    """Events for :func:`softmaxes_and_odd_names`: random ones, ones at the input type's ends
    (ap_fixed<8,4>: the logits then spread far, saturating the exp table's address) and
    all-zero ones (logits = the biases)."""
    rng = np.random.default_rng(5)
    x = rng.normal(scale=2.0, size=(n, 4))
    x[::5] = rng.choice([-8.0, 7.9375], size=x[::5].shape)
    x[1::10] = 0.0
    return x.astype(np.float32)


def renamed_chain() -> Any:
    """A QKeras chain (RTL-traceable) whose layer names hls4ml cannot use as given: the input
    'jet-in', the input quantizer 'int' and the activation 'switch' (C++ keywords), 'dense-1'
    next to 'dense_1', the final softmax 'soft-max'."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(3)

    def dense(n: int, name: str) -> Any:
        q = quantized_bits(6, 0, alpha=1)
        return QDense(n, kernel_quantizer=q, bias_quantizer=q, name=name)

    x = keras.Input((4,), name="jet-in")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="int")(x)
    h = dense(6, "dense-1")(h)
    h = QActivation(quantized_relu(6, 2), name="switch")(h)
    h = dense(3, "dense_1")(h)
    out = keras.layers.Activation("softmax", name="soft-max")(h)
    return keras.Model(x, out, name="renamed_chain")


def renamed_time_distributed() -> Any:
    """TimeDistributed blocks whose inner layers carry names hls4ml cannot use: 'dense-1'
    (next to the outer 'dense_1') and 'bias_d' (holding its weight name 'bias'), the second
    wrapper named 'switch' with a built-in relu that hls4ml splits off."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    tf.keras.utils.set_random_seed(4)

    def dense(n: int, name: str, **kw: Any) -> Any:
        q = quantized_bits(6, 0, alpha=1)
        return QDense(n, kernel_quantizer=q, bias_quantizer=q, name=name, **kw)

    x = keras.Input((3, 4), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="x_q")(x)
    h = keras.layers.TimeDistributed(dense(5, "dense-1"), name="dense_1")(h)
    h = keras.layers.TimeDistributed(dense(4, "bias_d", activation="relu"), name="switch")(h)
    return keras.Model(x, h, name="renamed_time_distributed")


# -- the ac_fixed backends (Quartus, Catapult): several families per model, few g++ builds ----
def qactivations_batchnorm(softmax: bool = True, seed: int = 0) -> Any:
    """QDense -> BatchNormalization -> quantized_relu, then QDense -> each QKeras activation
    (leaky quantized_relu, quantized_tanh, quantized_sigmoid), logits and (``softmax``) a
    final softmax."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_relu, quantized_sigmoid, quantized_tanh
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)

    def dense(n: int, name: str) -> Any:
        return QDense(n, kernel_quantizer=_q(), bias_quantizer=_q(), name=name)

    x = keras.Input((8,), name="features")
    h = QActivation(_q(10, 3), name="input_quant")(x)
    h = dense(8, "dense_1")(h)
    h = keras.layers.BatchNormalization(name="bn_1")(h)
    h = QActivation(quantized_relu(6, 2), name="relu")(h)
    for i, activation in enumerate(
        (quantized_relu(6, 2, negative_slope=0.25), quantized_tanh(6), quantized_sigmoid(6)), 2
    ):
        h = dense(8, f"dense_{i}")(h)
        h = QActivation(activation, name=f"act_{i}")(h)
    h = dense(4, "logits")(h)
    if softmax:
        h = keras.layers.Activation("softmax", name="softmax")(h)
    model = keras.Model(x, h)
    _randomise_batchnorm(model, seed)
    return model


def qconv2d_families(depthwise: bool = True, seed: int = 0) -> Any:
    """UpSampling2D, ZeroPadding2D, QConv2D -> BatchNormalization -> quantized_relu, (when
    ``depthwise``: QDepthwiseConv2D 'same' and QSeparableConv2D, each -> quantized_relu), a
    folded QConv2DBatchnorm -> quantized_relu, a flat Reshape and QDense logits."""
    import tensorflow as tf
    from qkeras import (
        QActivation,
        QConv2D,
        QConv2DBatchnorm,
        QDense,
        QDepthwiseConv2D,
        QSeparableConv2D,
        quantized_relu,
    )
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = keras.Input((3, 3, 1), name="image")
    h = QActivation(_q(8, 2), name="input_quant")(x)
    h = layers.UpSampling2D(2, name="upsample")(h)
    h = layers.ZeroPadding2D(1, name="pad")(h)
    h = QConv2D(2, 3, kernel_quantizer=_q(), bias_quantizer=_q(), name="conv")(h)
    h = layers.BatchNormalization(name="bn")(h)
    h = QActivation(quantized_relu(6, 2), name="relu_1")(h)
    if depthwise:
        h = QDepthwiseConv2D(
            3, padding="same", depthwise_quantizer=_q(), bias_quantizer=_q(), name="dw"
        )(h)
        h = QActivation(quantized_relu(6, 2), name="relu_dw")(h)
        h = QSeparableConv2D(
            2,
            3,
            depthwise_quantizer=_q(),
            pointwise_quantizer=_q(),
            bias_quantizer=_q(),
            name="sep",
        )(h)
        h = QActivation(quantized_relu(6, 2), name="relu_sep")(h)
    h = QConv2DBatchnorm(2, 2, kernel_quantizer=_q(), bias_quantizer=_q(8, 3), name="folded")(h)
    h = QActivation(quantized_relu(6, 2), name="relu_2")(h)
    h = layers.Reshape((int(np.prod(h.shape[1:])),), name="reshape")(h)
    model = keras.Model(x, QDense(3, kernel_quantizer=_q(), bias_quantizer=_q(), name="logits")(h))
    _randomise_batchnorm(model, seed)
    rng = np.random.default_rng(seed)
    folded = model.get_layer("folded").batchnorm
    n = folded.gamma.shape
    folded.gamma.assign(rng.uniform(0.5, 2.0, n))
    folded.beta.assign(rng.normal(0, 0.3, n))
    folded.moving_mean.assign(rng.normal(0, 0.5, n))
    folded.moving_variance.assign(rng.uniform(0.3, 3.0, n))
    return model
