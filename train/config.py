"""The training stage's config sections: data, the float fit and its early stopping.

Each stage owns its sections (this module: ``data``, ``training`` and the base of ``model``,
whose architecture-specific keys belong to the plugins of
:mod:`hepfpga.train.architectures`); only the run config at the top (:mod:`hepfpga.pipeline.config`)
composes them. Defaults live here and only here. Validation errors raised in
``__post_init__`` name the field relative to its section; the schema builder
(:mod:`hepfpga._schema`) prefixes the section's path (``epochs`` -> ``training.epochs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from hepfpga.errors import ConfigError
from hepfpga.registry import Registry
from hepfpga.train.dataset import ScalingKind
from hepfpga.train.optim import OptimizerConfig, ScheduleConfig

if TYPE_CHECKING:
    from hepfpga.train.representations import Representation

__all__ = [
    "DATA_LOADINGS",
    "HELD_TRAIN_JETS",
    "MODEL_SECTIONS",
    "STREAM_ABOVE_JETS",
    "DataConfig",
    "DataLoading",
    "EarlyStoppingConfig",
    "FitConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "SplitConfig",
    "TrainingConfig",
    "check_regularization",
    "check_widths",
    "positive",
    "positive_int",
]


#: widest hidden layer accepted
MAX_LAYER_WIDTH = 4096


def positive(value: float, path: str, *, allow_zero: bool = False) -> None:
    """Raise a :class:`ConfigError` at ``path`` unless ``value > 0`` (``>= 0`` with
    ``allow_zero``)."""
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"expected a number {bound}, got {value!r}", path=path)


def positive_int(value: int, path: str) -> None:
    """Raise a :class:`ConfigError` at ``path`` unless ``value >= 1``."""
    if value < 1:
        raise ConfigError(f"expected a positive integer, got {value}", path=path)


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of the jets for training, validation (early stopping) and test (all reported
    numbers). The split is stratified by class and fixed by the run's ``seed``."""

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


#: How a run holds its jets (``data.loading``): the one statement of the choice, see
#: :class:`DataConfig`.
DataLoading = Literal["auto", "memory", "stream"]
DATA_LOADINGS: tuple[str, ...] = get_args(DataLoading)

#: ``data.stream_above``'s default: ``loading: auto`` streams a sample of more jets than this.
#: In memory a run holds every jet with its constituents and the representation's inputs of
#: all three parts (measured: about 62 MiB of peak RSS per 100k jets for the features MLP,
#: 231 MiB for the jet-image CNN, ``benchmarks/streaming.py``); at 200k jets that is still
#: well under a GiB, above it the in-memory run grows without bound while a streamed one
#: stays at its shuffle buffer and the test jets.
STREAM_ABOVE_JETS = 200_000
#: Default ``data.held_train_jets``: training jets a streamed run holds in memory for the
#: stages that need them at once (BDT, overtraining check, HGQ proxy tracing).
HELD_TRAIN_JETS = 200_000


@dataclass(frozen=True)
class DataConfig:
    """Where the jets come from and how the inputs are scaled.

    ``path``: None for the built-in Pythia sample shipped with hepfpga, else an ``.npz``/``.h5``
    file written by ``hepfpga data generate``, the OpenML ``hls4ml_lhc_jets_hlf`` CSV/ARFF, an
    HDF5 file of the public hls4ml LHC jet or JetNet data sets, or a folder or glob (``*``,
    ``?``, ``[...]``) of such files, read in name order (:mod:`hepfpga.train.layouts`).
    Relative paths are resolved against the config file's folder.
    ``scaling``: ``standard`` (x - mean) / std fitted on the training jets only, saved with the
    model and applied identically for ONNX serving and firmware test benches (used by the
    ``features`` representation; the constituent representations are not rescaled).
    ``max_jets``: keep at most this many jets (stratified), for quick runs.
    ``loading``: how the run holds the jets while it trains (:data:`DATA_LOADINGS`).
    ``memory`` loads the whole sample; ``stream`` reads HDF5 files (one file, a folder or a
    glob of shards, in any layout of :data:`hepfpga.train.layouts.SAMPLE_LAYOUTS`) chunk by
    chunk (:mod:`hepfpga.train.stream`): the stratified split is cut from the labels alone
    (the same jets as in memory), the scaler is fitted on a streamed pass over the training
    jets, the float and quantization-aware fits draw ``tf.data`` batches, and only the test
    jets (at most ``verification.max_events``) are held in memory. ``auto`` (default) streams
    when the path is such HDF5 data and the run uses more than ``stream_above`` jets (after
    ``max_jets``; default :data:`STREAM_ABOVE_JETS`, 200,000), and loads the sample otherwise
    (the built-in sample, ``.npz``, CSV/ARFF files are always loaded). Streaming serves the
    classification task; the anomaly and generation tasks load their jets.
    ``held_train_jets``: when the run streams, the stages that need training inputs in memory
    at once (the BDT's fit, the overtraining check's training scores, the HGQ proxy model's
    range tracing) take a stratified subsample of at most this many training jets (default
    :data:`HELD_TRAIN_JETS`, 200,000; drawn with ``seed``, the same jets for every stage,
    read once) instead of the whole training part; a run that loads its jets uses all of
    them.
    """

    path: Path | None = None
    scaling: ScalingKind = "standard"
    split: SplitConfig = field(default_factory=SplitConfig)
    max_jets: int | None = None
    loading: DataLoading = "auto"
    stream_above: int = STREAM_ABOVE_JETS
    held_train_jets: int = HELD_TRAIN_JETS

    def __post_init__(self) -> None:
        if self.max_jets is not None and self.max_jets < 10:
            raise ConfigError(f"expected at least 10 jets, got {self.max_jets}", path="max_jets")
        positive_int(self.stream_above, "stream_above")
        if self.held_train_jets < 10:
            raise ConfigError(
                f"expected at least 10 jets, got {self.held_train_jets}", path="held_train_jets"
            )


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience``
    epochs; the weights of the best epoch are restored."""

    patience: int = 8
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        positive_int(self.patience, "patience")
        positive(self.min_delta, "min_delta", allow_zero=True)


@dataclass(frozen=True)
class FitConfig(OptimizerConfig):
    """How a model is fitted: the optimizer, its hyper-parameters and learning-rate schedule
    (:class:`~hepfpga.train.optim.OptimizerConfig`: ``optimizer`` is a key of
    :data:`hepfpga.train.optim.OPTIMIZERS`, ``schedule.name`` one of
    :data:`hepfpga.train.optim.SCHEDULES`), mini-batches of ``batch_size`` jets, at most
    ``epochs`` epochs, and early stopping."""

    batch_size: int = 256
    epochs: int = 100
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)

    def __post_init__(self) -> None:
        OptimizerConfig.__post_init__(self)
        positive_int(self.batch_size, "batch_size")
        positive_int(self.epochs, "epochs")


@dataclass(frozen=True)
class TrainingConfig(FitConfig):
    """Fitting of the float model (see :class:`FitConfig`); the ``training`` section."""


@dataclass(frozen=True)
class ModelConfig:
    """The ``model`` section, a tagged section: ``architecture`` names a registered plugin
    (:data:`hepfpga.train.architectures.ARCHITECTURES`) whose own dataclass holds and
    validates the other keys (``hidden_units`` for ``mlp``, ``filters`` for ``cnn``, ...).
    The plugin's configs subclass this one."""

    architecture: str = "mlp"

    __schema_variant_key__: ClassVar[str] = "architecture"

    def __new__(cls, *args: Any, **kwargs: Any) -> ModelConfig:
        # ModelConfig(...) itself builds the section of its architecture (default mlp), so
        # ModelConfig(hidden_units=(8,)) is an MLPConfig, as in the YAML
        if cls is ModelConfig:
            name = kwargs.get("architecture", args[0] if args else "mlp")
            variants = cls.__schema_variants__()
            if name not in variants:
                raise ConfigError(
                    f"unknown architecture {name!r}; registered: {', '.join(sorted(variants))}",
                    path="architecture",
                )
            cls = variants[name]
        return super().__new__(cls)

    @classmethod
    def __schema_variants__(cls) -> dict[str, type[ModelConfig]]:
        return dict(MODEL_SECTIONS)

    def input_representation(self, data: DataConfig) -> Representation:
        """The representation this architecture consumes, configured from its section (and
        the ``data`` section, e.g. the feature scaling)."""
        raise NotImplementedError(f"{type(self).__name__} does not name its representation")


#: The section class of each registered architecture, by ``model.architecture``: filled by
#: :func:`hepfpga.train.architectures.register_architecture` beside
#: :data:`~hepfpga.train.architectures.ARCHITECTURES` (the plugins sit above this module).
MODEL_SECTIONS: Registry[type[ModelConfig]] = Registry("architecture")


def check_regularization(l1: float, l2: float, dropout: float) -> None:
    """Validate the L1/L2 kernel penalties (>= 0) and the dropout fraction (in [0, 1))."""
    positive(l1, "l1", allow_zero=True)
    positive(l2, "l2", allow_zero=True)
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"expected a fraction in [0, 1), got {dropout!r}", path="dropout")


def check_widths(units: int | tuple[int, ...], name: str) -> None:
    """Every layer width in ``units`` (the key ``name``; one int or a list) is in
    1..:data:`MAX_LAYER_WIDTH`."""
    paths = (
        [(units, name)]
        if isinstance(units, int)
        else [(n, f"{name}[{i}]") for i, n in enumerate(units)]
    )
    for n, path in paths:
        positive_int(n, path)
        if n > MAX_LAYER_WIDTH:
            raise ConfigError(
                f"expected at most {MAX_LAYER_WIDTH} units, got {n}: a trigger network is "
                "unrolled into FPGA logic, and wider layers do not fit in memory either",
                path=path,
            )
