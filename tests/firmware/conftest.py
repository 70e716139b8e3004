"""Fixtures of the firmware tests: the pipeline's QKeras tagger at chosen bit widths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest


def build_tagger(
    weight_bits: int = 6,
    weight_integer: int = 0,
    activation_bits: int = 6,
    input_bits: int = 16,
    input_integer: int = 5,
    seed: int = 0,
) -> Any:
    """The QKeras jet tagger the pipeline builds, with random (seeded) weights."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)

    def weights() -> Any:
        return quantized_bits(weight_bits, weight_integer, alpha=1)

    x = keras.Input((16,), name="input")
    h = QActivation(quantized_bits(input_bits, input_integer, alpha=1), name="input_quant")(x)
    for i, n in enumerate((64, 32, 32), 1):
        h = QDense(
            n,
            kernel_quantizer=weights(),
            bias_quantizer=weights(),
            bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=seed + i),
            name=f"dense_{i}",
        )(h)
        h = QActivation(quantized_relu(activation_bits), name=f"relu_{i}")(h)
    logits = QDense(
        5,
        kernel_quantizer=weights(),
        bias_quantizer=weights(),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=seed + 9),
        name="logits",
    )(h)
    out = keras.layers.Activation("softmax", name="softmax")(logits)
    return keras.Model(x, out, name="jet_tagger")


def standardized_inputs(
    n: int, seed: int = 1, input_bits: int = 16, input_integer: int = 5
) -> np.ndarray:
    """Events like standardized features, some far outside the input type's range.

    One event in ten is scaled up to saturate the input quantizer; one in twenty sits on exact
    rounding ties of the input type (``quantized_bits(16, 5)`` is ``ap_fixed<16,6>``: lsb 2**-10).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16))
    x[::10] *= 2.0 ** (input_integer + 1)
    lsb = 2.0 ** (input_integer + 1 - input_bits)
    x[5::20] = (np.round(x[5::20] / lsb) + 0.5) * lsb
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def tagger_factory() -> Callable[..., Any]:
    return build_tagger


@pytest.fixture(scope="session")
def small_tagger() -> Any:
    return build_tagger()


@pytest.fixture(scope="session")
def inputs_factory() -> Callable[..., np.ndarray]:
    return standardized_inputs


@pytest.fixture(scope="session")
def byo_models() -> Any:
    """The bring-your-own-model builders of ``byo_models.py`` (next to this file)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("byo_models.py")
    spec = importlib.util.spec_from_file_location("hepfpga_test_byo_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def softmax_names_case(byo_models: Any) -> Any:
    """``(model, events, report)``: :func:`byo_models.softmaxes_and_odd_names` verified on
    its edge events (one g++ build, shared by the softmax-bound and layer-name tests)."""
    from hepfpga.firmware import verify_model

    model, x = byo_models.softmaxes_and_odd_names(), byo_models.softmax_edge_events()
    return model, x, verify_model(model, x)


@pytest.fixture(scope="session", autouse=True)
def csim_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every firmware test caches compiled simulations in one session folder under tmp."""
    path = tmp_path_factory.mktemp("hepfpga-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEPFPGA_CACHE", str(path))
        yield path
