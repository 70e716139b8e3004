from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepfpga.errors import DataError
from hepfpga.train.evaluate import evaluate_classifier, plot_roc

CLASSES = ("a", "b", "c")


def test_perfect_and_inverted_scores() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[labels]
    m = evaluate_classifier(perfect, labels, CLASSES)
    assert m.accuracy == 1.0 and all(v == 1.0 for v in m.auc.values())
    inverted = 1 - perfect
    m = evaluate_classifier(inverted, labels, CLASSES)
    assert m.accuracy == 0.0 and all(v == 0.0 for v in m.auc.values())


def test_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)
    scores = rng.random((200, 3)) + 0.5 * np.eye(3)[labels]
    m = evaluate_classifier(scores, labels, CLASSES)
    pos, neg = scores[labels == 1, 1], scores[labels != 1, 1]
    expected = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
    assert m.auc["b"] == pytest.approx(expected)


def test_shape_errors() -> None:
    with pytest.raises(DataError, match=r"shape \(N, 3\)"):
        evaluate_classifier(np.zeros((4, 2)), np.zeros(4, int), CLASSES)


def test_roc_plot_written(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2] * 10)
    scores = np.random.default_rng(0).random((30, 3))
    plot_roc({"float": scores, "HLS": scores}, labels, CLASSES, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
