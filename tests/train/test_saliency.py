"""Input-gradient saliency against models whose gradients are known in closed form."""

from __future__ import annotations

import io

import numpy as np
import pytest

from hepfpga.errors import DataError
from hepfpga.train.saliency import input_saliency, plot_saliency

CLASSES = ("a", "b", "c")


def _linear(weights: np.ndarray):
    from tensorflow import keras

    model = keras.Sequential([keras.Input((weights.shape[0],)), keras.layers.Dense(3)])
    model.layers[0].set_weights([weights.astype(np.float32), np.zeros(3, np.float32)])
    return model


def test_linear_model_saliency_is_the_weight_magnitude(tmp_path) -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 3))
    x = rng.normal(size=(50, 4))
    labels = np.array([0, 1, 2, 0, 1] * 10)
    result = input_saliency(
        _linear(weights), x, labels, CLASSES, input_names=("w", "x", "y", "z"), batch_size=16
    )
    np.testing.assert_allclose(result.values, np.abs(weights.T), rtol=1e-6)
    assert result.n_events == (20, 20, 10)
    top = int(np.argmax(np.abs(weights[:, 1])))
    assert result.ranking("b")[0] == ("wxyz"[top], pytest.approx(abs(weights[top, 1]), rel=1e-6))
    assert set(result.to_dict()["a"]) == {"w", "x", "y", "z"}
    plot_saliency(result, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_softmax_saliency_is_averaged_over_the_jets_of_each_class() -> None:
    """d p_c / d x = p_c (W_c - sum_k p_k W_k): checked against the closed form."""
    from tensorflow import keras

    rng = np.random.default_rng(1)
    weights = rng.normal(size=(5, 3))
    model = keras.Sequential([_linear(weights), keras.layers.Softmax()])
    x = rng.normal(size=(40, 5))
    labels = rng.integers(0, 3, size=40)
    logits = x @ weights
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.zeros((3, 5))
    for c in range(3):
        rows = labels == c
        grad = p[rows, c, None] * (weights[:, c] - p[rows] @ weights.T)
        expected[c] = np.abs(grad).mean(axis=0)
    result = input_saliency(model, x, labels, CLASSES)
    np.testing.assert_allclose(result.values, expected, rtol=1e-4, atol=1e-7)


def test_image_heat_map_lights_the_pixel_the_model_reads() -> None:
    from tensorflow import keras

    weights = np.zeros((8 * 8 * 2, 3))
    weights[np.ravel_multi_index((2, 5, 1), (8, 8, 2)), :] = [1.0, -2.0, 0.5]
    model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Flatten(), _linear(weights)])
    x = np.random.default_rng(2).uniform(size=(30, 8, 8, 2))
    result = input_saliency(model, x, np.arange(30) % 3, CLASSES)
    assert result.values.shape == (3, 8, 8, 2)
    np.testing.assert_allclose(result.values[:, 2, 5, 1], [1.0, 2.0, 0.5])
    assert np.count_nonzero(result.values) == 3
    out = io.BytesIO()
    plot_saliency(result, out, fmt="svg")
    assert b"<svg" in out.getvalue()
    with pytest.raises(DataError, match="flat"):
        result.ranking("a")


def test_wrong_labels_or_outputs_are_data_errors() -> None:
    model = _linear(np.ones((4, 3)))
    with pytest.raises(DataError, match="labels"):
        input_saliency(model, np.zeros((5, 4)), np.zeros(4, int), CLASSES)
    with pytest.raises(DataError, match="outputs"):
        input_saliency(model, np.zeros((5, 4)), np.zeros(5, int), ("a", "b"))
