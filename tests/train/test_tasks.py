"""The task registry and the task section: bad combinations fail before any training."""

from __future__ import annotations

import pytest

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import config_to_dict, parse_config
from hepfpga.train.tasks import METRICS, TASKS
from hepfpga.train.tasks.anomaly import AnomalyDetectionConfig, class_indices


def _error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value


def test_registered_tasks_and_metric_owners() -> None:
    assert {"classification", "anomaly_detection"} <= set(TASKS)
    assert METRICS["accuracy"].task == "classification"
    assert METRICS["signal_auc"].task == "anomaly_detection"


def test_task_by_name_alone_gets_its_defaults_and_round_trips() -> None:
    config = parse_config({"task": "anomaly_detection", "model": {"architecture": "vae"}})
    assert isinstance(config.task, AnomalyDetectionConfig)
    assert config.task.background == ("q", "g")
    assert config.task.background_acceptances == (1e-2, 1e-3, 1e-4)
    assert parse_config(config_to_dict(config)) == config
    assert parse_config({}).task.name == "classification"


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        # a classifier on an anomaly task, an autoencoder on a classification task
        ({"task": "anomaly_detection"}, "model.architecture", ["'mlp'", "ae, dae, vae"]),
        ({"model": {"architecture": "ae"}}, "model.architecture", ["anomaly_detection", "cnn"]),
        # a classification metric on an anomaly task
        (
            {
                "task": {"name": "anomaly_detection", "metrics": ["accuracy"]},
                "model": {"architecture": "ae"},
            },
            "task.metrics[0]",
            ["classification metric", "signal_auc"],
        ),
        (
            {
                "task": {"name": "anomaly_detection", "metrics": ["signal_auc", "auroc"]},
                "model": {"architecture": "ae"},
            },
            "task.metrics[1]",
            ["unknown metric"],
        ),
        (
            {"task": {"name": "classification", "metrics": ["signal_auc"]}},
            "task.metrics[0]",
            ["anomaly_detection metric"],
        ),
        ({"task": "anomaly_detectoin"}, "task", ["did you mean 'anomaly_detection'"]),
        ({"task": {"name": "generate"}}, "task.name", ["accepted"]),
        (
            {
                "task": {"name": "anomaly_detection", "background": []},
                "model": {"architecture": "ae"},
            },
            "task.background",
            ["at least one"],
        ),
        (
            {
                "task": {"name": "anomaly_detection", "signals": ["q"]},
                "model": {"architecture": "ae"},
            },
            "task.signals[0]",
            ["both background and signal"],
        ),
        (
            {
                "task": {"name": "anomaly_detection", "background_acceptances": [0.01, 0]},
                "model": {"architecture": "ae"},
            },
            "task.background_acceptances[1]",
            ["(0, 1)"],
        ),
        (
            {
                "task": {"name": "anomaly_detection", "threshold": 3},
                "model": {"architecture": "ae"},
            },
            "task.threshold",
            ["unknown key"],
        ),
        (
            {"task": "anomaly_detection", "model": {"architecture": "ae", "square_bits": 14}},
            "model.square_bits",
            ["float32"],
        ),
        (
            {"task": "anomaly_detection", "model": {"architecture": "dae", "noise_std": 0}},
            "model.noise_std",
            ["> 0"],
        ),
        (
            {"task": "anomaly_detection", "model": {"architecture": "vae", "kl_weight": -1}},
            "model.kl_weight",
            [">= 0"],
        ),
        (
            {"task": "anomaly_detection", "model": {"architecture": "ae", "hidden_units": [8]}},
            "model.hidden_units",
            ["unknown key"],
        ),
        (
            {
                "task": "anomaly_detection",
                "model": {"architecture": "ae"},
                "bdt": {"enabled": True},
            },
            "bdt.enabled",
            ["classification stage"],
        ),
        # a decoder with a transposed convolution, refused before any training
        (
            {
                "task": "anomaly_detection",
                "model": {"architecture": "conv_ae", "upsampling": "Conv2DTranspose"},
            },
            "model.upsampling",
            ["no transposed convolution", "UpSampling2D"],
        ),
        (
            {
                "task": "anomaly_detection",
                "model": {"architecture": "conv_ae", "image_pixels": 10, "filters": [2, 2]},
            },
            "model.image_pixels",
            ["multiple of 4"],
        ),
    ],
)
def test_bad_task_configs_name_the_path(data: dict, path: str, words: list[str]) -> None:
    error = _error(data)
    assert error.path == path, str(error)
    for word in words:
        assert word in str(error), str(error)


def test_unknown_background_class_is_a_config_error() -> None:
    task = AnomalyDetectionConfig(background=("q", "gluon"))
    with pytest.raises(ConfigError) as info:
        class_indices(task, ("q", "g", "W", "Z", "t"))
    assert info.value.path == "task.background[1]" and "q, g, W, Z, t" in str(info.value)
    assert class_indices(AnomalyDetectionConfig(), ("q", "g", "W", "Z", "t")) == ([0, 1], [2, 3, 4])
    assert class_indices(
        AnomalyDetectionConfig(background=("g",), signals=("t",)), ("q", "g", "W", "Z", "t")
    ) == ([1], [4])
