"""Learning curves and the Kolmogorov-Smirnov overtraining check."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from hepfpga.errors import DataError
from hepfpga.train.curves import (
    KS_THRESHOLD,
    plot_learning_curves,
    plot_score_compatibility,
    score_compatibility,
)

CLASSES = ("a", "b", "c")


def _scores(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 3, size=n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[labels] * (1.0 + shift)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


def _ecdf_distance(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def test_same_distribution_is_compatible_and_statistic_is_the_ecdf_distance() -> None:
    rng = np.random.default_rng(1)
    train, test = _scores(rng, 3000), _scores(rng, 1000)
    result = score_compatibility(*train, *test, CLASSES)
    assert result.compatible and result.min_p_value > KS_THRESHOLD
    assert (result.n_train, result.n_test) == (3000, 1000)
    for c, name in enumerate(CLASSES):
        expected = _ecdf_distance(train[0][train[1] == c, c], test[0][test[1] == c, c])
        assert result.classes[name].signal_statistic == pytest.approx(expected)


def test_sharper_training_scores_are_flagged() -> None:
    rng = np.random.default_rng(2)
    train, test = _scores(rng, 3000, shift=0.6), _scores(rng, 1000)
    result = score_compatibility(*train, *test, CLASSES)
    assert not result.compatible
    assert all(not c.compatible for c in result.classes.values())


def test_a_real_overtrained_network_fails_the_check(make_jets) -> None:
    """Random labels: whatever the network learns about the training jets is memorised."""
    from tensorflow import keras

    keras.utils.set_random_seed(0)
    sample = make_jets(400, seed=3)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=400)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(sample.features[:200], labels[:200], epochs=60, batch_size=50, verbose=0)
    train = model.predict(sample.features[:200], verbose=0)
    test = model.predict(sample.features[200:], verbose=0)
    result = score_compatibility(
        train, labels[:200], test, labels[200:], [str(i) for i in range(5)]
    )
    assert result.min_p_value < KS_THRESHOLD


def test_bad_shapes_are_data_errors() -> None:
    with pytest.raises(DataError, match="training set"):
        score_compatibility(np.zeros((4, 2)), np.zeros(4), np.zeros((4, 3)), np.zeros(4), CLASSES)
    with pytest.raises(DataError, match="test set"):
        score_compatibility(np.zeros((4, 3)), np.zeros(4), np.zeros((4, 3)), np.zeros(5), CLASSES)


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_plots_are_written(make_jets, tmp_path, fmt: str) -> None:
    from hepfpga.train.architectures.mlp import MLPConfig
    from hepfpga.train.config import TrainingConfig
    from hepfpga.train.fit import fit_classifier
    from hepfpga.train.models import build_model

    sample = make_jets(300, seed=1)
    x, y = sample.features, sample.labels
    model = build_model(16, 5, MLPConfig(hidden_units=(8,)), seed=1)
    fit = fit_classifier(model, x[:200], y[:200], x[200:], y[200:], TrainingConfig(epochs=4))
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(fit.history)
    out = io.BytesIO()
    plot_learning_curves(
        {"float": fit.history}, out, best_epochs={"float": fit.best_epoch}, fmt=fmt
    )
    head = out.getvalue()[:300]
    assert head.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in out.getvalue()
    path = tmp_path / f"overtraining.{fmt}"
    rng = np.random.default_rng(0)
    plot_score_compatibility(*_scores(rng, 300), *_scores(rng, 100), CLASSES, path)
    assert path.stat().st_size > 1000


def test_a_history_without_accuracy_plots_without_a_warning() -> None:
    """An autoencoder's fit records losses only: its accuracy panel stays empty, without the
    empty-legend warning (a warning from hepfpga's code is an error under pytest)."""
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.5]}
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_learning_curves({"float": history}, out, best_epochs={"float": 3}, fmt="png")
    assert out.getvalue().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("quiet", "ci", "level", "expected"),
    [(False, "", 20, None), (True, "", 20, True), (False, "1", 20, True), (False, "", 30, True)],
)
def test_progress_bars_are_quiet_under_q_and_in_ci(monkeypatch, quiet, ci, level, expected):
    import logging

    from hepfpga.train.progress import progress_bar, progress_disabled

    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(logging.getLogger("hepfpga"), "level", level)
    assert progress_disabled(quiet) is expected
    bar = progress_bar(3, "epochs", "epoch", quiet=quiet)
    assert bar.disable is True  # pytest's output is no terminal: never shown here
    bar.close()
