"""Optimizers and learning-rate schedules, each found through a registry.

The config's choices are the registries' keys: :class:`OptimizerConfig` checks ``optimizer``
against :data:`OPTIMIZERS` and :class:`ScheduleConfig` checks ``name`` against
:data:`SCHEDULES` when it is built, so registering a new entry is all it takes to offer it.

Optimizers (the update of a weight ``w`` with gradient ``g`` and learning rate ``lr``; Keras'
implementations, ``epsilon`` guards every division):

=============  ==================================================================================
``sgd``        ``v = momentum * v - lr * g; w += v`` (Nesterov: ``w += momentum * v - lr * g``);
               ``nesterov`` (default true) only matters when ``momentum > 0``
``adagrad``    ``a += g**2; w -= lr * g / sqrt(a)`` (``a`` starts at ``initial_accumulator``)
``adadelta``   running means of ``g**2`` and of the squared updates with decay ``rho``; the step
               is their ratio's square root times ``g``, scaled by ``lr`` (1.0 is the paper's)
``rmsprop``    ``a = rho * a + (1 - rho) * g**2; w -= lr * g / sqrt(a)`` (+ ``momentum``)
``adam``       bias-corrected running means of ``g`` (``beta_1``) and ``g**2`` (``beta_2``)
``nadam``      Adam with Nesterov momentum
=============  ==================================================================================

Schedules set the learning rate at the start of every epoch ``t = 0, 1, 2, ...`` from the
configured ``learning_rate`` ``lr0`` (the lecture's definitions):

=================  ===========================================================================
``constant``       ``lr0`` (no callback at all: the fit is the same as without a schedule)
``step``           ``lr0 * drop ** floor(t / step_epochs)``
``exponential``    ``lr0 * exp(-decay * t)`` (``decay`` is the lecture's ``k``; the Keras form
                   ``lr0 * rate ** (t / steps)`` is this with ``decay = -ln(rate) / steps``)
``inverse_time``   ``lr0 / (1 + decay * t)`` (the 1/t annealing)
``cosine``         ``min_learning_rate + (lr0 - min_learning_rate) * (1 + cos(pi * t / T)) / 2``
                   with ``T = period_epochs`` (default: the fit's ``epochs``), then flat
``plateau``        multiply by ``factor`` when the validation loss has not improved by
                   ``min_delta`` for ``patience`` epochs, never below ``min_learning_rate``
=================  ===========================================================================

The learning rate of each epoch is recorded as ``lr`` in the fit's history.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hepfpga.errors import ConfigError
from hepfpga.registry import Registry

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "OptimizerConfig",
    "OptimizerKind",
    "Schedule",
    "ScheduleConfig",
    "build_optimizer",
    "register_optimizer",
    "register_schedule",
    "schedule_callbacks",
]


@dataclass(frozen=True)
class OptimizerKind:
    """One optimizer: its Keras class and the config fields (besides ``learning_rate``) it
    reads, each passed to Keras under the given keyword. A field left at None takes Keras'
    default for that optimizer."""

    name: str
    keras_class: str
    #: config field -> Keras keyword argument
    parameters: Mapping[str, str]
    description: str

    def build(self, settings: OptimizerConfig, learning_rate: float | None = None) -> Any:
        """A fresh Keras optimizer for ``settings`` (``learning_rate`` overrides its rate)."""
        # deferred: TensorFlow loads slowly
        from tensorflow import keras

        kwargs: dict[str, Any] = {}
        for field_name, keyword in self.parameters.items():
            value = getattr(settings, field_name)
            if value is not None:
                kwargs[keyword] = value
        rate = settings.learning_rate if learning_rate is None else learning_rate
        return getattr(keras.optimizers, self.keras_class)(learning_rate=rate, **kwargs)


#: Registered optimizers by config name (``training.optimizer``).
OPTIMIZERS: Registry[OptimizerKind] = Registry("optimizer")


def register_optimizer(kind: OptimizerKind) -> OptimizerKind:
    """Add ``kind`` to :data:`OPTIMIZERS` (its name must be new)."""
    return OPTIMIZERS.register(kind.name, kind)


for _kind in (
    OptimizerKind(
        "sgd",
        "SGD",
        {"momentum": "momentum", "nesterov": "nesterov"},
        "stochastic gradient descent, optional (Nesterov) momentum",
    ),
    OptimizerKind(
        "adagrad",
        "Adagrad",
        {"initial_accumulator": "initial_accumulator_value", "epsilon": "epsilon"},
        "per-weight rate scaled by the accumulated squared gradients",
    ),
    OptimizerKind(
        "adadelta",
        "Adadelta",
        {"rho": "rho", "epsilon": "epsilon"},
        "Adagrad with decaying averages and unit-consistent steps",
    ),
    OptimizerKind(
        "rmsprop",
        "RMSprop",
        {"rho": "rho", "momentum": "momentum", "epsilon": "epsilon"},
        "rate scaled by a running mean of the squared gradients",
    ),
    OptimizerKind(
        "adam",
        "Adam",
        {"beta_1": "beta_1", "beta_2": "beta_2", "epsilon": "epsilon"},
        "momentum and RMSprop scaling with bias correction",
    ),
    OptimizerKind(
        "nadam",
        "Nadam",
        {"beta_1": "beta_1", "beta_2": "beta_2", "epsilon": "epsilon"},
        "Adam with Nesterov momentum",
    ),
):
    register_optimizer(_kind)


def _check_unused(config: Any, section: type, used: set[str], owner: str) -> None:
    """A parameter of ``section`` set away from its default but not read by the chosen entry
    is an error: the user believes it has an effect. (Only ``section``'s own fields: a subclass
    adds settings of its own.)"""
    for f in dataclasses.fields(section):
        if f.name in used or f.default is dataclasses.MISSING:
            continue
        if getattr(config, f.name) != f.default:
            reads = sorted(used - {"name", "optimizer", "schedule"})
            raise ConfigError(
                f"not used by {owner} (it reads: {', '.join(reads) or 'nothing'})",
                path=f.name,
            )


def _positive(value: float | None, path: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"expected a finite number {bound}, got {value!r}", path=path)


def _fraction(value: float | None, path: str, *, closed: bool = False) -> None:
    if value is None:
        return
    upper_ok = value <= 1.0 if closed else value < 1.0
    if not (math.isfinite(value) and value > 0.0 and upper_ok):
        interval = "(0, 1]" if closed else "(0, 1)"
        raise ConfigError(f"expected a number in {interval}, got {value!r}", path=path)


# ---------------------------------------------------------------------------------------------
# Schedules


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule (``training.schedule``); see the module docstring for each
    one's formula. ``name`` is a key of :data:`SCHEDULES`. Each schedule reads only its own
    parameters; setting another one is an error."""

    name: str = "constant"
    #: step: factor per step
    drop: float = 0.5
    #: step: epochs per step
    step_epochs: int = 10
    #: exponential and inverse_time: the lecture's k, per epoch
    decay: float = 0.1
    #: cosine: epochs of the half cosine (None: the fit's epochs)
    period_epochs: int | None = None
    #: cosine and plateau: the floor of the rate
    min_learning_rate: float = 0.0
    #: plateau: factor applied on a plateau
    factor: float = 0.5
    #: plateau: epochs without improvement before the rate drops
    patience: int = 3
    #: plateau: smallest decrease of the validation loss that counts as an improvement
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        SCHEDULES.lookup(self.name, "name")
        _fraction(self.drop, "drop", closed=True)
        _fraction(self.factor, "factor")
        _positive(self.decay, "decay", allow_zero=True)
        _positive(self.min_learning_rate, "min_learning_rate", allow_zero=True)
        _positive(self.min_delta, "min_delta", allow_zero=True)
        for name in ("step_epochs", "patience", "period_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"expected a positive integer, got {value}", path=name)
        schedule = SCHEDULES[self.name]
        _check_unused(
            self, ScheduleConfig, {"name", *schedule.parameters}, f"schedule {self.name!r}"
        )


@dataclass(frozen=True)
class Schedule:
    """One learning-rate schedule: the config parameters it reads and how it drives a fit.

    ``rate(t, lr0, config, epochs)`` is the learning rate of epoch ``t`` (0-based) for an
    epoch-indexed schedule; ``callback(config, lr0, epochs)`` builds a Keras callback for one
    that reacts to the fit (``plateau``). A schedule has one or the other, or neither
    (``constant``).
    """

    name: str
    parameters: tuple[str, ...]
    description: str
    rate: Callable[[int, float, ScheduleConfig, int], float] | None = None
    callback: Callable[[ScheduleConfig, float, int], Any] | None = None

    def callbacks(self, config: ScheduleConfig, lr0: float, epochs: int) -> list[Any]:
        """The Keras callbacks that apply this schedule to a fit of ``epochs`` epochs."""
        # deferred: TensorFlow loads slowly
        from tensorflow import keras

        if self.rate is not None:
            rate = self.rate
            return [
                keras.callbacks.LearningRateScheduler(
                    lambda t, _lr: float(rate(t, lr0, config, epochs))
                )
            ]
        if self.callback is not None:
            return [self.callback(config, lr0, epochs)]
        return []


#: Registered learning-rate schedules by config name (``training.schedule.name``).
SCHEDULES: Registry[Schedule] = Registry("schedule")


def register_schedule(schedule: Schedule) -> Schedule:
    """Add ``schedule`` to :data:`SCHEDULES` (its name must be new)."""
    return SCHEDULES.register(schedule.name, schedule)


def _cosine(t: int, lr0: float, c: ScheduleConfig, epochs: int) -> float:
    period = c.period_epochs or epochs
    phase = min(t, period) / period
    return c.min_learning_rate + (lr0 - c.min_learning_rate) * 0.5 * (1 + math.cos(math.pi * phase))


def _plateau(c: ScheduleConfig, lr0: float, epochs: int) -> Any:
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    return keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss",
        factor=c.factor,
        patience=c.patience,
        min_delta=c.min_delta,
        min_lr=c.min_learning_rate,
        verbose=0,
    )


for _schedule in (
    Schedule("constant", (), "the configured learning rate throughout"),
    Schedule(
        "step",
        ("drop", "step_epochs"),
        "lr0 * drop ** floor(t / step_epochs)",
        rate=lambda t, lr0, c, _n: lr0 * c.drop ** (t // c.step_epochs),
    ),
    Schedule(
        "exponential",
        ("decay",),
        "lr0 * exp(-decay * t)",
        rate=lambda t, lr0, c, _n: lr0 * math.exp(-c.decay * t),
    ),
    Schedule(
        "inverse_time",
        ("decay",),
        "lr0 / (1 + decay * t)",
        rate=lambda t, lr0, c, _n: lr0 / (1.0 + c.decay * t),
    ),
    Schedule(
        "cosine",
        ("period_epochs", "min_learning_rate"),
        "min + (lr0 - min) * (1 + cos(pi * t / T)) / 2",
        rate=_cosine,
    ),
    Schedule(
        "plateau",
        ("factor", "patience", "min_delta", "min_learning_rate"),
        "lr * factor after patience epochs without a better validation loss",
        callback=_plateau,
    ),
):
    register_schedule(_schedule)


# ---------------------------------------------------------------------------------------------
# The optimizer settings of a fit


@dataclass(frozen=True)
class OptimizerConfig:
    """How the weights are updated: the optimizer (a key of :data:`OPTIMIZERS`), its
    hyper-parameters and the learning-rate schedule.

    The hyper-parameters left at None take Keras' default for the chosen optimizer (adam:
    beta_1 0.9, beta_2 0.999, epsilon 1e-7; rmsprop: rho 0.9; adadelta: rho 0.95; adagrad:
    initial_accumulator 0.1). ``momentum`` is read by ``sgd`` and ``rmsprop``; ``nesterov`` by
    ``sgd`` (Nesterov momentum, the default, when ``momentum > 0``). Setting a parameter the
    chosen optimizer does not read is an error.
    """

    optimizer: str = "adam"
    learning_rate: float = 1.0e-3
    momentum: float = 0.0
    nesterov: bool = True
    rho: float | None = None
    beta_1: float | None = None
    beta_2: float | None = None
    epsilon: float | None = None
    initial_accumulator: float | None = None
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        OPTIMIZERS.lookup(self.optimizer, "optimizer")
        _positive(self.learning_rate, "learning_rate")
        if not (math.isfinite(self.momentum) and 0.0 <= self.momentum < 1.0):
            raise ConfigError(
                f"expected a number in [0, 1), got {self.momentum!r}", path="momentum"
            )
        for name in ("rho", "beta_1", "beta_2"):
            _fraction(getattr(self, name), name)
        _positive(self.epsilon, "epsilon")
        _positive(self.initial_accumulator, "initial_accumulator", allow_zero=True)
        used = {"learning_rate", *OPTIMIZERS[self.optimizer].parameters}
        _check_unused(
            self, OptimizerConfig, {*used, "optimizer", "schedule"}, f"optimizer {self.optimizer!r}"
        )


def build_optimizer(settings: OptimizerConfig) -> keras.optimizers.Optimizer:
    """A fresh Keras optimizer as configured (rate: ``settings.learning_rate``, the rate of
    epoch 0; the schedule's callbacks change it afterwards)."""
    return OPTIMIZERS[settings.optimizer].build(settings)


def schedule_callbacks(settings: OptimizerConfig, epochs: int) -> list[Any]:
    """The Keras callbacks that apply ``settings.schedule`` to a fit of ``epochs`` epochs
    (none for ``constant``)."""
    schedule = SCHEDULES[settings.schedule.name]
    return schedule.callbacks(settings.schedule, settings.learning_rate, epochs)
