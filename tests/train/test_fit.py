from __future__ import annotations

import numpy as np
import pytest

from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.config import EarlyStoppingConfig, TrainingConfig
from hepfpga.train.fit import OPTIMIZERS, fit_classifier
from hepfpga.train.models import build_model


def _fit(make_jets, optimizer: str, seed: int, momentum: float = 0.0):
    sample = make_jets(400, seed=1)
    x, y = sample.features, sample.labels
    model = build_model(16, 5, MLPConfig(hidden_units=(8,)), seed=seed)
    settings = TrainingConfig(
        optimizer=optimizer,
        learning_rate=0.01,
        momentum=momentum,
        batch_size=64,
        epochs=5,
        early_stopping=EarlyStoppingConfig(patience=2),
    )
    result = fit_classifier(model, x[:300], y[:300], x[300:], y[300:], settings, seed=seed)
    return model, result


@pytest.mark.parametrize(("optimizer", "momentum"), [("adam", 0.0), ("sgd", 0.9), ("rmsprop", 0.0)])
def test_fit_learns_and_is_reproducible(make_jets, optimizer: str, momentum: float) -> None:
    assert optimizer in OPTIMIZERS
    a, result = _fit(make_jets, optimizer, seed=5, momentum=momentum)
    b, _ = _fit(make_jets, optimizer, seed=5, momentum=momentum)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert 1 <= result.best_epoch <= result.epochs_run <= 5
    assert result.history["val_loss"][result.best_epoch - 1] == result.best_val_loss
    c, _ = _fit(make_jets, optimizer, seed=6, momentum=momentum)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
