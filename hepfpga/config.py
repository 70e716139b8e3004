"""The pipeline configuration: a validated, typed tree loaded from YAML.

Defaults live here and only here. :func:`load_config` reads a YAML file with ``safe_load`` and
builds :class:`PipelineConfig`; an unknown key, a wrong type or an out-of-range value raises
:class:`~hepfpga.errors.ConfigError` naming the file, the dotted path of the value and what is
accepted (an unknown key also names the closest valid key).

Schema version 1. Example: ``examples/jet_tagging.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hepfpga._schema import build, to_plain
from hepfpga.errors import ConfigError
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.quantize.qat import QuantizationSpec
from hepfpga.yaml_io import load_yaml

__all__ = [
    "DataConfig",
    "EarlyStoppingConfig",
    "FitConfig",
    "ModelConfig",
    "OnnxConfig",
    "PipelineConfig",
    "QuantizationConfig",
    "SplitConfig",
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
#: widest hidden layer accepted
MAX_LAYER_WIDTH = 4096


def _positive(value: float, path: str, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"expected a number {bound}, got {value!r}", path=path)


def _positive_int(value: int, path: str) -> None:
    if value < 1:
        raise ConfigError(f"expected a positive integer, got {value}", path=path)


# Validation errors raised in __post_init__ name the field relative to its section; the
# schema builder prefixes the section's path (``epochs`` -> ``quantization.epochs``).


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of the jets for training, validation (early stopping) and test (all reported
    numbers). The split is stratified by class and fixed by ``PipelineConfig.seed``."""

    train: float = 0.6
    validation: float = 0.2
    test: float = 0.2

    def __post_init__(self) -> None:
        for name in ("train", "validation", "test"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"expected a fraction in (0, 1), got {value!r}", path=name)
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"train + validation + test must be 1, got {total:g}")


@dataclass(frozen=True)
class DataConfig:
    """Where the jets come from and how the inputs are scaled.

    ``path``: None for the built-in Pythia sample shipped with hepfpga, else an ``.npz``/``.h5``
    file written by ``hepfpga data generate`` or the OpenML ``hls4ml_lhc_jets_hlf`` CSV/ARFF.
    Relative paths are resolved against the config file's folder.
    ``scaling``: ``standard`` (x - mean) / std fitted on the training jets only, saved with the
    model and applied identically for ONNX serving and firmware test benches.
    ``max_jets``: keep at most this many jets (stratified), for quick runs.
    """

    path: Path | None = None
    scaling: Literal["standard", "minmax", "none"] = "standard"
    split: SplitConfig = field(default_factory=SplitConfig)
    max_jets: int | None = None

    def __post_init__(self) -> None:
        if self.max_jets is not None and self.max_jets < 10:
            raise ConfigError(f"expected at least 10 jets, got {self.max_jets}", path="max_jets")


@dataclass(frozen=True)
class ModelConfig:
    """The float network. ``architecture`` is a key of the model registry
    (:data:`hepfpga.train.models.MODEL_BUILDERS`)."""

    architecture: Literal["mlp"] = "mlp"
    hidden_units: tuple[int, ...] = (64, 32, 32)
    activation: Literal["relu"] = "relu"
    l1: float = 0.0
    l2: float = 1.0e-4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not self.hidden_units:
            raise ConfigError("expected at least one hidden layer", path="hidden_units")
        for i, n in enumerate(self.hidden_units):
            _positive_int(n, f"hidden_units[{i}]")
            if n > MAX_LAYER_WIDTH:
                raise ConfigError(
                    f"expected at most {MAX_LAYER_WIDTH} units, got {n}: a trigger network is "
                    "unrolled into FPGA logic, and wider layers do not fit in memory either",
                    path=f"hidden_units[{i}]",
                )
        _positive(self.l1, "l1", allow_zero=True)
        _positive(self.l2, "l2", allow_zero=True)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(
                f"expected a fraction in [0, 1), got {self.dropout!r}", path="dropout"
            )


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience``
    epochs; the weights of the best epoch are restored."""

    patience: int = 8
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        _positive_int(self.patience, "patience")
        _positive(self.min_delta, "min_delta", allow_zero=True)


@dataclass(frozen=True)
class FitConfig:
    """How a model is fitted. ``optimizer`` is a key of :data:`hepfpga.train.fit.OPTIMIZERS`;
    ``momentum`` is used by ``sgd`` (Nesterov when > 0) and ``rmsprop``."""

    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: float = 1.0e-3
    momentum: float = 0.0
    batch_size: int = 256
    epochs: int = 100
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)

    def __post_init__(self) -> None:
        _positive(self.learning_rate, "learning_rate")
        _positive(self.momentum, "momentum", allow_zero=True)
        _positive_int(self.batch_size, "batch_size")
        _positive_int(self.epochs, "epochs")


@dataclass(frozen=True)
class TrainingConfig(FitConfig):
    """Fitting of the float model (see :class:`FitConfig`)."""


@dataclass(frozen=True)
class QuantizationConfig(FitConfig, QuantizationSpec):
    """Quantization-aware training with QKeras, starting from the float weights: the bit
    widths of :class:`~hepfpga.quantize.qat.QuantizationSpec` (whose docstring gives the
    ap_fixed type of each) and the fine-tuning settings of :class:`FitConfig`."""

    epochs: int = 60
    learning_rate: float = 5.0e-4

    def __post_init__(self) -> None:
        QuantizationSpec.__post_init__(self)
        FitConfig.__post_init__(self)


@dataclass(frozen=True)
class OnnxConfig:
    """ONNX export of the quantized model with tf2onnx; checked with onnxruntime on the test set."""

    opset: int = 13
    tolerance: float = 1.0e-5

    def __post_init__(self) -> None:
        if not 9 <= self.opset <= 21:
            raise ConfigError(f"expected an opset in 9..21, got {self.opset}", path="opset")
        _positive(self.tolerance, "tolerance", allow_zero=True)


@dataclass(frozen=True)
class VerificationConfig:
    """What the run must show; a failed check makes the run exit with status 1 after its
    folder and report are written.

    ``require_bit_exact``: HLS logits equal QKeras logits on every test jet.
    ``max_accuracy_drop``: float accuracy minus QKeras accuracy (a fraction, 0.02 = 2 points).
    ``max_events``: verify on at most this many test jets (None: the whole test set).
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
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    onnx: OnnxConfig = field(default_factory=OnnxConfig)
    firmware: FirmwareOptions = field(default_factory=FirmwareOptions)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
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


def parse_config(
    data: Any, *, source: str | None = None, base_dir: Path | None = None
) -> PipelineConfig:
    """Build a :class:`PipelineConfig` from plain data (a mapping, e.g. parsed YAML).

    Relative data paths are resolved against ``base_dir``.
    """
    config = build(PipelineConfig, data, source=source)
    if base_dir is not None and config.data.path is not None and not config.data.path.is_absolute():
        from dataclasses import replace

        config = replace(config, data=replace(config.data, path=base_dir / config.data.path))
    return config


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML pipeline configuration file (bounded, see
    :func:`hepfpga.yaml_io.load_yaml`)."""
    path = Path(path)
    data = load_yaml(path, what="config file")
    return parse_config(data, source=str(path), base_dir=path.parent)


def config_to_dict(config: PipelineConfig) -> dict[str, Any]:
    """The configuration as plain data (what a YAML file with every default spelt out holds)."""
    return to_plain(config)
