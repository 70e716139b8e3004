"""Shared fixtures of the deploy tests: tiny ONNX models written as the pipeline writes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hepfpga.deploy.onnx_export import export_onnx
from hepfpga.train.jets import CLASS_NAMES


@pytest.fixture(scope="session")
def write_tiny_onnx() -> Callable[[Path, int], None]:
    """``write(path, seed)``: a 16-8-5 softmax model (weights fixed by ``seed``) exported to
    ``path`` with the jet class names in its metadata, like a run folder's model.onnx."""

    def write(path: Path, seed: int) -> None:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)
        model = tf.keras.Sequential(
            [
                tf.keras.layers.InputLayer(input_shape=(16,)),
                tf.keras.layers.Dense(8, activation="relu", name="hidden"),
                tf.keras.layers.Dense(5, activation="softmax", name="softmax"),
            ],
            name=f"tiny{seed}",
        )
        export_onnx(model, path, metadata={"class_names": list(CLASS_NAMES)})

    return write
