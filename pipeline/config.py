"""The run configuration: the stage sections composed into one validated, typed tree.

This module belongs to the run layer (``pipeline/``), above every stage: each stage owns its
own section and its defaults (``data``/``training`` in
:mod:`hepfpga.train.config`, ``model`` in :mod:`hepfpga.train.architectures`,
``quantization`` in :mod:`hepfpga.quantize.config`, ``onnx`` in :mod:`hepfpga.deploy.config`,
``firmware`` in :mod:`hepfpga.firmware.options`) and this module only composes them, adding
the run-wide settings (name, output folder, seed) and the ``verification`` checks. The stage
packages never import this module, so ``import hepfpga.train`` loads no firmware code.

:func:`load_config` reads a YAML file with ``safe_load`` and builds :class:`PipelineConfig`
through :mod:`hepfpga._schema`, the one validator; an unknown key, a wrong type or an
out-of-range value raises :class:`~hepfpga.errors.ConfigError` naming the file, the dotted
path of the value and what is accepted (an unknown key also names the closest valid key).

Schema version 1. Example: ``examples/jet_tagging.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hepfpga._schema import build, to_plain
from hepfpga.deploy.config import OnnxConfig
from hepfpga.errors import ConfigError
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.rtl.config import HardwareConfig
from hepfpga.quantize.config import QuantizationConfig
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.bdt import BdtConfig
from hepfpga.train.config import (
    DataConfig,
    EarlyStoppingConfig,
    FitConfig,
    ModelConfig,
    SplitConfig,
    TrainingConfig,
)
from hepfpga.train.tasks import ClassificationConfig, TaskConfig, check_task_fits
from hepfpga.yaml_io import load_yaml

__all__ = [
    "BdtConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "FitConfig",
    "MLPConfig",
    "ModelConfig",
    "OnnxConfig",
    "PipelineConfig",
    "QuantizationConfig",
    "SplitConfig",
    "TaskConfig",
    "TrainingConfig",
    "VerificationConfig",
    "config_to_dict",
    "load_config",
    "parse_config",
]

SCHEMA_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: random seeds go to NumPy's legacy generator too (keras.utils.set_random_seed)
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class VerificationConfig:
    """What the run must show; a failed check makes the run exit with status 1 after its
    folder and report are written.

    ``require_bit_exact``: HLS logits equal QKeras logits on every test jet.
    ``max_accuracy_drop``: float accuracy minus QKeras accuracy (a fraction, 0.02 = 2 points).
    ``max_events``: verify and evaluate on at most this many test jets, a stratified subset
    (None: the whole test set).
    ``testbench_events``: test jets written into the firmware project as its C test bench.
    """

    require_bit_exact: bool = True
    max_accuracy_drop: float = 0.02
    max_events: int | None = None
    testbench_events: int = 1000

    def __post_init__(self) -> None:
        if not -1.0 <= self.max_accuracy_drop <= 1.0:
            raise ConfigError(
                "expected a fraction of the accuracy in [-1, 1] (0.02 = 2 points), "
                f"got {self.max_accuracy_drop!r}",
                path="max_accuracy_drop",
            )
        if self.testbench_events < 1:
            raise ConfigError(
                f"expected a positive integer, got {self.testbench_events}",
                path="testbench_events",
            )
        if self.max_events is not None and self.max_events < 1:
            raise ConfigError(
                f"expected a positive integer, got {self.max_events}",
                path="max_events",
            )


@dataclass(frozen=True)
class PipelineConfig:
    """The whole run: ``runs/<name>/`` receives every artifact."""

    name: str = "jet_tagging"
    output_dir: Path = Path("runs")
    seed: int = 42
    task: TaskConfig = field(default_factory=ClassificationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=MLPConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    onnx: OnnxConfig = field(default_factory=OnnxConfig)
    firmware: FirmwareOptions = field(default_factory=FirmwareOptions)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    bdt: BdtConfig = field(default_factory=BdtConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(
                f"expected a seed from 0 to 2**32 - 1 (NumPy's range), got {self.seed}",
                path="seed",
            )
        if not _NAME_RE.match(self.name):
            raise ConfigError(
                f"invalid run name {self.name!r}: use letters, digits, '_', '-', '.'", path="name"
            )
        if self.schema_version != SCHEMA_VERSION:
            raise ConfigError(
                f"unsupported schema version {self.schema_version}; this hepfpga reads "
                f"version {SCHEMA_VERSION}",
                path="schema_version",
            )
        check_task_fits(self.task, self.model)
        if self.bdt.enabled and not isinstance(self.task, ClassificationConfig):
            raise ConfigError(
                f"the BDT comparison is a classification stage; task '{self.task.name}' has no "
                "BDT: remove bdt.enabled",
                path="bdt.enabled",
            )


def parse_config(
    data: Any, *, source: str | None = None, base_dir: Path | None = None
) -> PipelineConfig:
    """Build a :class:`PipelineConfig` from plain data (a mapping, e.g. parsed YAML).

    Relative data paths are resolved against ``base_dir``.
    """
    config = build(PipelineConfig, data, source=source)
    if base_dir is not None and config.data.path is not None and not config.data.path.is_absolute():
        config = replace(config, data=replace(config.data, path=base_dir / config.data.path))
    return _resolve_trigger_background(config, source, base_dir)


def _resolve_trigger_background(
    config: PipelineConfig, source: str | None, base_dir: Path | None
) -> PipelineConfig:
    """``task.trigger_rates.background`` resolved like ``data.path``, and refused when it names
    nothing (before any training)."""
    rates = getattr(config.task, "trigger_rates", None)
    if rates is None or rates.background is None:
        return config
    path = rates.background
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if not path.exists():
        raise ConfigError(
            f"no such file or folder: {path}; expected a jet file (the formats data.path "
            "reads) holding the background sample, or null for the run's test jets",
            path="task.trigger_rates.background",
            source=source,
        )
    task: Any = config.task  # a task section with trigger_rates (classification, anomaly)
    return replace(config, task=replace(task, trigger_rates=replace(rates, background=path)))


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML pipeline configuration file (bounded, see
    :func:`hepfpga.yaml_io.load_yaml`); an empty file is a :class:`ConfigError` (every
    default alone is not a config anyone meant)."""
    path = Path(path)
    data = load_yaml(path, what="config file")
    if data is None:
        raise ConfigError(
            "the config file is empty (no YAML document, or only comments); a pipeline config "
            "is a mapping, e.g. 'name: my_run' (see examples/jet_tagging.yaml)",
            source=str(path),
        )
    return parse_config(data, source=str(path), base_dir=path.parent)


def config_to_dict(config: PipelineConfig) -> dict[str, Any]:
    """The configuration as plain data (what a YAML file with every default spelt out holds)."""
    return to_plain(config)
