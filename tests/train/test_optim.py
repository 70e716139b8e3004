"""Optimizers and schedules: the lecture's update rules and learning-rate formulas, read back
from real Keras fits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepfpga._schema import build
from hepfpga.errors import ConfigError
from hepfpga.train.optim import (
    OPTIMIZERS,
    SCHEDULES,
    OptimizerConfig,
    ScheduleConfig,
    build_optimizer,
    schedule_callbacks,
)

EPOCHS = 7
LR0 = 0.05


def _tiny_fit(settings: OptimizerConfig, epochs: int = EPOCHS) -> tuple[list[float], dict]:
    """Fit a 4-8-3 network for ``epochs`` epochs; the learning rate the optimizer holds during
    each epoch (read at the end of its first batch) and the history."""
    from tensorflow import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        optimizer=build_optimizer(settings),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    seen: list[float] = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                seen.append(float(keras.backend.get_value(self.model.optimizer.learning_rate)))

    history = model.fit(
        x[:64],
        y[:64],
        validation_data=(x[64:], y[64:]),
        batch_size=32,
        epochs=epochs,
        callbacks=[*schedule_callbacks(settings, epochs), Record()],
        verbose=0,
    )
    return seen, history.history


# The lecture's definitions, written independently of the implementation.
LECTURE = {
    "constant": (ScheduleConfig(), lambda t: LR0),
    "step": (
        ScheduleConfig(name="step", drop=0.5, step_epochs=2),
        lambda t: LR0 * 0.5 ** math.floor(t / 2),
    ),
    "exponential": (
        ScheduleConfig(name="exponential", decay=0.3),
        lambda t: LR0 * math.exp(-0.3 * t),
    ),
    "inverse_time": (
        ScheduleConfig(name="inverse_time", decay=0.5),
        lambda t: LR0 / (1 + 0.5 * t),
    ),
    "cosine": (
        ScheduleConfig(name="cosine", period_epochs=4, min_learning_rate=0.01),
        lambda t: 0.01 + (LR0 - 0.01) * (1 + math.cos(math.pi * min(t, 4) / 4)) / 2,
    ),
}


@pytest.mark.parametrize("name", sorted(LECTURE))
def test_schedule_sets_the_lecture_rate_every_epoch(name: str) -> None:
    schedule, formula = LECTURE[name]
    seen, history = _tiny_fit(
        OptimizerConfig(optimizer="sgd", learning_rate=LR0, schedule=schedule)
    )
    expected = [formula(t) for t in range(EPOCHS)]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    if name != "constant":
        np.testing.assert_allclose(history["lr"], expected, rtol=1e-6)
        assert seen[-1] < seen[0]


def test_plateau_follows_the_validation_loss() -> None:
    # min_delta larger than any change: only the first epoch counts as an improvement
    schedule = ScheduleConfig(name="plateau", factor=0.5, patience=2, min_delta=10.0)
    seen, history = _tiny_fit(
        OptimizerConfig(optimizer="adam", learning_rate=LR0, schedule=schedule)
    )
    best, wait, lr, expected = math.inf, 0, LR0, []
    for loss in history["val_loss"]:
        expected.append(lr)
        if loss < best - 10.0:
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= 2:
                lr, wait = lr * 0.5, 0
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    assert seen[-1] == pytest.approx(LR0 / 4)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_follows_the_step_schedule_and_learns(optimizer: str) -> None:
    step = ScheduleConfig(name="step", drop=0.1, step_epochs=3)
    settings = OptimizerConfig(optimizer=optimizer, learning_rate=LR0, schedule=step)
    seen, history = _tiny_fit(settings)
    np.testing.assert_allclose(seen, [LR0 * 0.1 ** (t // 3) for t in range(EPOCHS)], rtol=1e-6)
    assert type(build_optimizer(settings)).__name__ == OPTIMIZERS[optimizer].keras_class
    if optimizer != "adadelta":  # Adadelta's first steps are tiny by design (rate ~ sqrt(eps))
        assert history["loss"][-1] < history["loss"][0]


def _steps(settings: OptimizerConfig, w0: float, n: int) -> list[float]:
    """``n`` updates of one weight under the loss w**2 / 2 (gradient w)."""
    import tensorflow as tf

    optimizer = build_optimizer(settings)
    w = tf.Variable([w0], dtype=tf.float32)
    out = []
    for _ in range(n):
        optimizer.apply_gradients([(tf.identity(w), w)])
        out.append(float(w.numpy()[0]))
    return out


def _reference(rule: str, lr: float, w: float, n: int) -> list[float]:
    out, v, a = [], 0.0, 0.0
    m1 = m2 = 0.0
    for t in range(1, n + 1):
        g = w
        if rule == "sgd":
            w -= lr * g
        elif rule == "momentum":
            v = 0.9 * v - lr * g
            w += v
        elif rule == "nesterov":
            v = 0.9 * v - lr * g
            w += 0.9 * v - lr * g
        elif rule == "adagrad":
            a = (0.1 if t == 1 else a) + g * g
            w -= lr * g / math.sqrt(a + 1e-7)
        elif rule == "rmsprop":
            a = 0.9 * a + 0.1 * g * g
            w -= lr * g / math.sqrt(a + 1e-7)
        elif rule == "adam":
            m1 += (g - m1) * 0.1
            m2 += (g * g - m2) * 0.001
            alpha = lr * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            w -= m1 * alpha / (math.sqrt(m2) + 1e-7)
        out.append(w)
    return out


@pytest.mark.parametrize(
    ("rule", "settings"),
    [
        ("sgd", OptimizerConfig(optimizer="sgd", learning_rate=0.1)),
        (
            "momentum",
            OptimizerConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, nesterov=False),
        ),
        ("nesterov", OptimizerConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9)),
        ("adagrad", OptimizerConfig(optimizer="adagrad", learning_rate=0.1)),
        ("rmsprop", OptimizerConfig(optimizer="rmsprop", learning_rate=0.01)),
        ("adam", OptimizerConfig(optimizer="adam", learning_rate=0.01)),
    ],
)
def test_update_rules_are_the_lecture_ones(rule: str, settings: OptimizerConfig) -> None:
    np.testing.assert_allclose(
        _steps(settings, 1.5, 4), _reference(rule, settings.learning_rate, 1.5, 4), rtol=2e-6
    )


def test_momentum_and_nesterov_differ() -> None:
    a = _steps(OptimizerConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9), 1.0, 3)
    b = _steps(
        OptimizerConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, nesterov=False), 1.0, 3
    )
    assert a != b


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"optimizer": "adamm"}, "training.optimizer", "did you mean 'adam'"),
        (
            {"optimizer": "adam", "momentum": 0.9},
            "training.momentum",
            "not used by optimizer 'adam'",
        ),
        ({"optimizer": "sgd", "beta_1": 0.8}, "training.beta_1", "not used by optimizer 'sgd'"),
        ({"rho": 1.5, "optimizer": "rmsprop"}, "training.rho", "(0, 1)"),
        ({"learning_rate": 0}, "training.learning_rate", "> 0"),
        ({"schedule": {"name": "cosin"}}, "training.schedule.name", "did you mean 'cosine'"),
        (
            {"schedule": {"name": "exponential", "drop": 0.3}},
            "training.schedule.drop",
            "not used by schedule 'exponential'",
        ),
        (
            {"schedule": {"name": "step", "step_epochs": 0}},
            "training.schedule.step_epochs",
            "positive",
        ),
        ({"schedule": {"name": "plateau", "factor": 1.0}}, "training.schedule.factor", "(0, 1)"),
    ],
)
def test_bad_settings_name_the_path(data: dict, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(OptimizerConfig, data, path="training")
    assert info.value.path == path
    assert fragment in info.value.message


def test_choices_come_from_the_registries() -> None:
    with pytest.raises(ConfigError) as info:
        OptimizerConfig(optimizer="lion")
    assert all(name in info.value.message for name in OPTIMIZERS)
    with pytest.raises(ConfigError) as info:
        ScheduleConfig(name="warmup")
    assert all(name in info.value.message for name in SCHEDULES)
    assert set(OPTIMIZERS) == {"sgd", "adagrad", "adadelta", "rmsprop", "adam", "nadam"}
    assert set(SCHEDULES) == {
        "constant",
        "step",
        "exponential",
        "inverse_time",
        "cosine",
        "plateau",
    }


def test_the_run_config_takes_optimizer_and_schedule_and_fit_applies_them(make_jets) -> None:
    from hepfpga.pipeline.config import parse_config
    from hepfpga.train.fit import fit_classifier
    from hepfpga.train.models import build_model

    config = parse_config(
        {
            "training": {
                "optimizer": "nadam",
                "learning_rate": 0.02,
                "beta_1": 0.8,
                "epochs": 4,
                "schedule": {"name": "inverse_time", "decay": 1.0},
            },
            "quantization": {"optimizer": "sgd", "momentum": 0.9, "nesterov": False},
        }
    )
    assert config.quantization.schedule.name == "constant"
    with pytest.raises(ConfigError) as info:
        parse_config({"quantization": {"schedule": {"name": "step", "decay": 0.5}}})
    assert info.value.path == "quantization.schedule.decay"
    sample = make_jets(200, seed=2)
    x, y = sample.features, sample.labels
    model = build_model(16, 5, config.model, seed=1)
    fit = fit_classifier(model, x[:150], y[:150], x[150:], y[150:], config.training)
    np.testing.assert_allclose(fit.history["lr"], [0.02 / (1 + t) for t in range(4)], rtol=1e-6)
    assert model.optimizer.beta_1 == 0.8
