"""``hepfpga tune``: hyper-parameter search over any value of a run config, with Optuna.

A tune file (YAML, validated like a run config) names a base run config, a search space over
dotted config paths and how to search::

    config: jet_tagging.yaml          # the base run config (relative to this file)
    objective: qkeras_accuracy        # a key of OBJECTIVES (validation-set accuracy;
                                      # qkeras_accuracy_lut also pays lut_weight per 10k LUTs)
    strategy: bayesian                # a key of STRATEGIES: grid, random, bayesian (TPE)
    trials: 20
    workers: 2
    space:
      training.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}
      quantization.weight_bits: {low: 4, high: 8, integer: true}
      model.hidden_units: {choices: [[32, 16], [64, 32, 32]]}
    overrides: {training.epochs: 30}  # applied to every trial, the default one included

The study lives in a database (``storage``: any SQLAlchemy URL; default an SQLite file
``<output_dir>/<study>/study.db``), so a search killed at any point (even ``kill -9``)
resumes where it stopped: finished trials are kept and never rerun, trials that were running
are marked failed (``interrupted``) and replaced. Trials run in parallel on dask.distributed
(a LocalCluster of ``workers`` processes, or ``--scheduler ADDRESS``), each one a fresh
``study.optimize(n_trials=1)`` against the shared storage, so the sampler sees every
finished trial. A study is bound to the space it was made with: resuming it with another
space is an error naming both (give the new search its own ``study`` name). Before the first
trial every value the space can take is checked against the run config schema (each choice,
both ends of each range) and a grid is counted, not listed (at most ``MAX_GRID_POINTS``).
A search in which every trial failed exits with status 1. The first trial is the base config
itself (``include_default``) when its values lie in the space: the results compare the best
trial with it.

Objectives are measured on the *validation* jets (the test jets stay untouched for the run's
report). Pruning (``pruner: median``) stops a trial whose validation accuracy after an
epoch is below the median of the earlier trials at that epoch (after 5 trials and 5 epochs).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import itertools
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hepfpga._optional import require
from hepfpga._schema import build, closest, to_plain
from hepfpga.artifacts import (
    atomic_file,
    check_destination,
    remove_empty_parents,
    write_json_atomic,
    write_text_atomic,
)
from hepfpga.cluster import dask_client
from hepfpga.errors import (
    ConfigError,
    HepfpgaError,
    disk_full,
    file_system_error,
)
from hepfpga.firmware.rtl.codegen import write_rtl
from hepfpga.firmware.rtl.trace import trace_model
from hepfpga.pipeline.config import config_to_dict, load_config, parse_config
from hepfpga.quantize.qat import quantize_model
from hepfpga.registry import Registry
from hepfpga.train.architectures import build_model
from hepfpga.train.dataset import split_sample, stratified_subsample
from hepfpga.train.fit import fit_classifier
from hepfpga.train.io import builtin_sample_path, load_sample
from hepfpga.train.progress import progress_bar
from hepfpga.train.tasks import ClassificationConfig
from hepfpga.yaml_io import load_yaml

__all__ = [
    "OBJECTIVES",
    "PRUNERS",
    "STRATEGIES",
    "Dimension",
    "TuneConfig",
    "TuneResult",
    "load_tune_config",
    "run_tune",
]

log = logging.getLogger("hepfpga")


@dataclass(frozen=True)
class Dimension:
    """One searched value: ``choices`` (any YAML values, e.g. layer lists), or a range
    ``[low, high]`` of floats (``log``: sampled uniformly in log) or of integers
    (``integer: true``); ``step`` discretises a range (needed by the grid strategy for floats).
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.choices is not None:
            if not self.choices:
                raise ConfigError("expected at least one choice", path="choices")
            if self.low is not None or self.high is not None:
                raise ConfigError("give either choices or low/high, not both", path="choices")
            return
        if self.low is None or self.high is None:
            raise ConfigError("expected choices, or low and high", path="low")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ConfigError(f"expected low < high, got {self.low} and {self.high}", path="high")
        if self.log and self.low <= 0:
            raise ConfigError("a log range needs low > 0", path="low")
        if self.integer and (self.low != int(self.low) or self.high != int(self.high)):
            raise ConfigError("an integer range needs integer bounds", path="low")
        if self.step is not None and (self.step <= 0 or self.log):
            raise ConfigError("expected a step > 0 (and no log)", path="step")

    def suggest(self, trial: Any, name: str) -> Any:
        """The trial's value for this dimension (choices are stored as their JSON text)."""
        if self.choices is not None:
            return json.loads(trial.suggest_categorical(name, [_enc(c) for c in self.choices]))
        assert self.low is not None and self.high is not None  # __post_init__: a range
        if self.integer:
            step = int(self.step or 1)
            return trial.suggest_int(name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def size(self, path: str) -> int:
        """How many values the grid strategy visits (counted, not listed)."""
        if self.choices is not None:
            return len(self.choices)
        assert self.low is not None and self.high is not None
        if self.integer:
            return len(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ConfigError(
                "the grid strategy needs choices or a step for a float range", path=path
            )
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def grid(self, path: str) -> list[Any]:
        """Every value of this dimension (grid search); :func:`load_tune_config` has bounded
        the grid's size (:data:`MAX_GRID_POINTS`) before this lists it."""
        n = self.size(path)
        if self.choices is not None:
            return [_enc(c) for c in self.choices]
        assert self.low is not None and self.high is not None
        if self.integer:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        assert self.step is not None  # size() refused a float range without one
        return [float(self.low + i * self.step) for i in range(n)]

    def extremes(self) -> list[tuple[str, Any]]:
        """The values that stand for every value this dimension can take when checked
        against the config schema: each choice, or a range's two bounds (as the integers or
        floats a trial gets), labelled for messages."""
        if self.choices is not None:
            return [(f"choice {i + 1}", c) for i, c in enumerate(self.choices)]
        assert self.low is not None and self.high is not None
        kind = int if self.integer else float
        return [("low", kind(self.low)), ("high", kind(self.high))]

    def parameter(self, value: Any) -> Any | None:
        """The optuna parameter that stands for the config ``value``, or None if the value
        lies outside this dimension."""
        if self.choices is not None:
            text = _enc(value)
            return text if text in [_enc(c) for c in self.choices] else None
        assert self.low is not None and self.high is not None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not self.low <= value <= self.high:
            return None
        return int(value) if self.integer else float(value)


def _enc(value: Any) -> str:
    return json.dumps(to_plain(value))


# -- registries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """A search strategy: the optuna sampler each trial uses (``sampler(seed)``), and whether
    the driver queues every point of the space once instead (``exhaustive``: grid search;
    finished points are never queued again when a search resumes)."""

    name: str
    sampler: Callable[[int], Any]
    exhaustive: bool = False


def _tpe(seed: int) -> Any:
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def _random(seed: int) -> Any:
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


#: search strategies by name
STRATEGIES: Registry[Strategy] = Registry("strategy")
for _strategy in (
    # the grid's points are queued by the driver; the sampler only fills nothing
    Strategy("grid", _random, exhaustive=True),
    Strategy("random", _random),
    Strategy("bayesian", _tpe),
):
    STRATEGIES.register(_strategy.name, _strategy)


#: the most points a grid search may have (each one a trial that trains a model; the points are
#: queued in the study database before the first runs)
MAX_GRID_POINTS = 10_000


def grid_size(space: Mapping[str, Dimension], *, limit: int = MAX_GRID_POINTS) -> int:
    """The number of points of the grid over ``space``, counted without listing them; a
    :class:`ConfigError` past ``limit``."""
    total = 1
    for dotted, dim in space.items():
        total *= dim.size(f"space.{dotted}")
        if total > limit:
            sizes = ", ".join(f"{p}: {d.size(p):,}" for p, d in space.items())
            raise ConfigError(
                f"the grid has more than {limit:,} points ({sizes} values); narrow the ranges, "
                "raise their step, or use strategy random or bayesian",
                path="space",
            )
    return total


def _queue_grid(study: Any, space: Mapping[str, Dimension]) -> int:
    """Queue every grid point no finished or queued trial has; returns the grid's size."""
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    names = list(space)
    points = list(itertools.product(*(space[p].grid(p) for p in names)))
    waiting = optuna.trial.TrialState.WAITING
    seen = {
        tuple(t.params.get(p) for p in names)
        for t in [*_finished(study), *study.get_trials(deepcopy=False, states=(waiting,))]
    }
    for point in points:
        if point not in seen:
            study.enqueue_trial(dict(zip(names, point, strict=True)))
    return len(points)


def _median() -> Any:
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)


def _no_pruning() -> Any:
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    return optuna.pruners.NopPruner()


#: pruners by name
PRUNERS: Registry[Callable[[], Any]] = Registry("pruner", {"median": _median, "none": _no_pruning})


@dataclass(frozen=True)
class Objective:
    """What a trial maximises: validation accuracy of the float model, or of its QKeras
    counterpart after quantization-aware training (which then also runs); with
    ``hardware_cost``, minus ``lut_weight`` per 10,000 LUTs of the QKeras model's RTL as
    da4ml estimates it (:mod:`hepfpga.firmware.rtl`, the ``hardware`` extra; no synthesis)."""

    name: str
    needs_qat: bool
    description: str
    hardware_cost: bool = False


#: objectives by name
OBJECTIVES: Registry[Objective] = Registry("objective")
for _objective in (
    Objective("float_accuracy", False, "validation accuracy of the float model"),
    Objective("qkeras_accuracy", True, "validation accuracy of the QKeras model after QAT"),
    Objective(
        "qkeras_accuracy_lut",
        True,
        "QKeras validation accuracy - lut_weight x (da4ml LUT estimate / 10,000)",
        hardware_cost=True,
    ),
):
    OBJECTIVES.register(_objective.name, _objective)

#: the most trials a search may ask for, and the most worker processes it may start (each
#: trains a model; a larger cluster is given with --scheduler)
MAX_TRIALS, MAX_WORKERS = 100_000, 256

#: LUTs per unit of ``lut_weight`` in the ``qkeras_accuracy_lut`` objective
LUT_UNIT = 10_000


@dataclass(frozen=True)
class TuneConfig:
    """A hyper-parameter search (see the module docstring for the file format)."""

    config: Path
    space: dict[str, Dimension]
    objective: str = "qkeras_accuracy"
    #: accuracy (a fraction) given up per 10,000 LUTs by ``qkeras_accuracy_lut``
    lut_weight: float = 0.01
    strategy: str = "bayesian"
    trials: int = 20
    workers: int = 2
    seed: int = 0
    storage: str | None = None
    study: str | None = None
    pruner: str = "median"
    include_default: bool = True
    output_dir: Path = Path("runs")
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        OBJECTIVES.lookup(self.objective, "objective")
        if self.lut_weight < 0:
            raise ConfigError(f"expected a number >= 0, got {self.lut_weight!r}", path="lut_weight")
        STRATEGIES.lookup(self.strategy, "strategy")
        PRUNERS.lookup(self.pruner, "pruner")
        if not self.space:
            raise ConfigError("expected at least one searched value", path="space")
        for name, most in (("trials", MAX_TRIALS), ("workers", MAX_WORKERS)):
            if not 1 <= getattr(self, name) <= most:
                raise ConfigError(
                    f"expected an integer from 1 to {most:,}, got {getattr(self, name)}",
                    path=name,
                )
        if self.study is not None and not self.study.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"invalid study name {self.study!r}", path="study")


def load_tune_config(path: str | Path) -> tuple[TuneConfig, dict[str, Any]]:
    """Read a tune file; returns it and the base run config (overrides applied) as plain data,
    both validated: every searched path must exist in the run config."""
    path = Path(path)
    tune = build(TuneConfig, load_yaml(path, what="tune file"), source=str(path))
    base_path = tune.config if tune.config.is_absolute() else path.parent / tune.config
    base = config_to_dict(load_config(base_path))
    for dotted, value in tune.overrides.items():
        _set(base, dotted, value, source=str(path), section="overrides")
    for dotted in tune.space:
        _get(base, dotted, source=str(path), section="space")
    config = parse_config(base, source=f"{path} (overrides)")
    if not isinstance(config.task, ClassificationConfig):
        raise ConfigError(
            f"tune searches classifiers; the run config's task is '{config.task.name}' "
            "(accepted: classification)",
            path="task",
            source=str(base_path),
        )
    if STRATEGIES[tune.strategy].exhaustive:
        grid_size(tune.space)
    check_space(tune.space, base, source=str(path))
    return tune, base


def check_space(space: Mapping[str, Dimension], base: dict[str, Any], *, source: str) -> None:
    """Check every value ``space`` can take against the run config schema before any trial
    runs: each choice, and both bounds of each range (the schema's checks on a number are
    its type and bounds, which a range's two ends stand for), each with the other values at
    the base config's. A :class:`ConfigError` names the searched path, which value
    and what the schema says."""
    for dotted, dim in space.items():
        for label, value in dim.extremes():
            plain = copy.deepcopy(base)
            _set(plain, dotted, value)
            try:
                parse_config(plain)
            except ConfigError as exc:
                hint = (
                    "; make it an integer range (integer: true)"
                    if dim.choices is None and not dim.integer and "integer" in exc.message
                    else ""
                )
                raise ConfigError(
                    f"{label} = {_enc(value)[:200]} is not a valid run config value: "
                    f"{exc.message}{hint}" + (f" (at '{exc.path}')" if exc.path != dotted else ""),
                    path=f"space.{dotted}",
                    source=source,
                ) from exc


def _walk(plain: dict[str, Any], dotted: str, source: str, section: str) -> tuple[dict, str]:
    node: Any = plain
    keys = dotted.split(".")
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            options = list(node) if isinstance(node, dict) else []
            hint = closest(key, options)
            suggestion = f"; did you mean '{'.'.join([*keys[:i], hint])}'?" if hint else ""
            raise ConfigError(
                f"'{dotted}' is not a value of the run config{suggestion}",
                path=f"{section}.{dotted}",
                source=source,
            )
        if i == len(keys) - 1:
            return node, key
        node = node[key]
    raise AssertionError  # pragma: no cover - loop always returns


def _get(plain: dict[str, Any], dotted: str, *, source: str = "", section: str = "space") -> Any:
    node, key = _walk(plain, dotted, source, section)
    return node[key]


def _set(
    plain: dict[str, Any], dotted: str, value: Any, *, source: str = "", section: str = "space"
) -> None:
    node, key = _walk(plain, dotted, source, section)
    node[key] = value


# -- one trial (runs on a dask worker) ---------------------------------------------------------


@dataclass(frozen=True)
class _TrialTask:
    storage: str
    study: str
    strategy: str
    pruner: str
    objective: str
    seed: int
    space: dict[str, Dimension]
    base: dict[str, Any]
    lut_weight: float = 0.0


def run_trial(task: _TrialTask) -> int:
    """Run one trial of the study against its storage; returns the trial number."""
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    _one_thread_tensorflow()
    # a failed trial's reason is kept on the trial (user attribute 'error') and logged once by
    # the driver; optuna's own warning would add a traceback per trial
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(
        study_name=task.study,
        storage=task.storage,
        sampler=STRATEGIES[task.strategy].sampler(task.seed),
        pruner=PRUNERS[task.pruner](),
    )
    numbers: list[int] = []

    def objective(trial: Any) -> float:
        numbers.append(trial.number)
        try:
            return _evaluate(trial, task)
        except HepfpgaError as exc:
            trial.set_user_attr("error", str(exc)[:1000])
            raise

    study.optimize(objective, n_trials=1, catch=(HepfpgaError,))
    return numbers[0] if numbers else -1


def _one_thread_tensorflow() -> None:
    # deferred: TensorFlow loads slowly
    import tensorflow as tf

    try:  # parallel trials share the cores: one thread each
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this worker
        pass


def _pruning_callback(trial: Any, offset: int) -> Any:
    # deferred: TensorFlow loads slowly; optional: optuna (hepfpga[tune])
    import optuna
    from tensorflow import keras

    class Prune(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            value = (logs or {}).get("val_accuracy")
            if value is None:
                return
            trial.report(float(value), offset + epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {offset + epoch + 1}")

    return Prune()


def _evaluate(trial: Any, task: _TrialTask) -> float:

    plain = copy.deepcopy(task.base)
    for dotted, dim in task.space.items():
        _set(plain, dotted, dim.suggest(trial, dotted))
    config = parse_config(plain, source=f"trial {trial.number}")
    sample = load_sample(config.data.path or builtin_sample_path())
    if config.data.max_jets is not None:
        sample = stratified_subsample(sample, config.data.max_jets, config.seed)
    s = config.data.split
    split = split_sample(sample, (s.train, s.validation, s.test), config.seed)
    inputs = config.model.input_representation(config.data).prepare(split)
    x_train, x_val = inputs.train, inputs.validation
    y_train, y_val = split.train.labels, split.validation.labels
    n_classes = len(sample.class_names)
    model = build_model(inputs.input_shape, n_classes, config.model, seed=config.seed)
    fit = fit_classifier(
        model, x_train, y_train, x_val, y_val, config.training, seed=config.seed,
        callbacks=[_pruning_callback(trial, 0)], progress=False,
    )  # fmt: skip

    def accuracy(m: Any) -> float:
        return float(np.mean(np.argmax(m.predict(x_val, verbose=0), axis=1) == y_val))

    value = accuracy(model)
    trial.set_user_attr("float_accuracy", value)
    trial.set_user_attr("float_epochs", fit.epochs_run)
    if OBJECTIVES[task.objective].needs_qat:
        qmodel = quantize_model(model, config.quantization)
        fit_classifier(
            qmodel, x_train, y_train, x_val, y_val, config.quantization, seed=config.seed,
            callbacks=[_pruning_callback(trial, fit.epochs_run)], progress=False,
        )  # fmt: skip
        value = accuracy(qmodel)
        trial.set_user_attr("qkeras_accuracy", value)
        if OBJECTIVES[task.objective].hardware_cost:
            luts = estimated_luts(qmodel, config.firmware.clock_period)
            trial.set_user_attr("estimated_luts", luts)
            value -= task.lut_weight * luts / LUT_UNIT
    return value


def estimated_luts(qmodel: Any, clock_period_ns: float) -> int:
    """da4ml's LUT estimate of ``qmodel``'s RTL (traced as ``hepfpga hardware`` does, pipelined
    at ``clock_period_ns``; written to a temporary folder, no simulation or synthesis)."""
    net = trace_model(qmodel)
    with tempfile.TemporaryDirectory(prefix="hepfpga-tune-rtl-") as folder:
        project = write_rtl(net, Path(folder) / "rtl", clock_period_ns=clock_period_ns)
        return int(project.estimated_luts)


# -- the driver ---------------------------------------------------------------------------------


@dataclass
class TuneResult:
    """A finished (or resumed and finished) search."""

    folder: Path
    storage: str
    study: str
    n_complete: int
    n_pruned: int
    n_failed: int
    best_value: float | None
    best_params: dict[str, Any]
    default_value: float | None
    seconds: float
    #: one row per trial: number, state, value, params, seconds
    table: list[dict[str, Any]] = field(default_factory=list)
    #: why each failed trial failed (its error's message; 'interrupted' for a trial a killed
    #: search left running), by trial number
    failures: dict[int, str] = field(default_factory=dict)


def _progress(total: int, quiet: bool) -> Any:

    return progress_bar(total, "trials", "trial", quiet=quiet)


def _finished(study: Any) -> list[Any]:
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in done
        or (t.state == optuna.trial.TrialState.FAIL and not t.user_attrs.get("interrupted"))
    ]


def run_tune(
    tune: TuneConfig,
    base: dict[str, Any],
    *,
    name: str,
    scheduler: str | None = None,
    quiet: bool = False,
) -> TuneResult:
    """Run (or resume) the search; writes ``<output_dir>/<study>/`` (results.csv,
    best_config.yaml, tune_report.json, objective.png, importances.png, and study.db with the
    default storage).

    Before any trial: the study folder must be a folder this process can write, the storage
    a database that opens (a :class:`ConfigError` naming it otherwise), ``scheduler``
    reachable (a :class:`~hepfpga.errors.DataError` naming ``--scheduler`` otherwise, before
    anything is written; its client is kept for the whole study), and a study resumed under
    the same name must have been made with the same space. A failure of the disk or the
    database during the search is one :class:`~hepfpga.errors.FileSystemError` /
    :class:`~hepfpga.errors.ExternalError`."""
    optuna = require("optuna", "tune", "hyper-parameter search")
    if OBJECTIVES[tune.objective].hardware_cost:
        require("da4ml", "hardware", f"the objective '{tune.objective}' (da4ml LUT estimates)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_name = tune.study or name
    folder = Path(tune.output_dir) / study_name
    check_destination(folder, exist_ok=True, option="output_dir")
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(_dask_client(scheduler, tune.workers)) if scheduler else None
        created = [p for p in (folder, *folder.absolute().parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        url = tune.storage or f"sqlite:///{(folder / 'study.db').resolve()}"
        new_database = tune.storage is None and not (folder / "study.db").exists()
        try:
            storage, study = _open_study(url, study_name, tune.space)
        except BaseException:
            if new_database:  # only what this call created; an existing study is kept
                (folder / "study.db").unlink(missing_ok=True)
            remove_empty_parents(created)
            raise
        with _database_errors(url, study_name):
            total = _prepare(study, storage, tune, base)
            remaining = max(total - len(_finished(study)), 0)
        start = time.perf_counter()
        if remaining:
            log.info(
                "%d trial(s) to run (%d done) on %d worker(s)",
                remaining,
                total - remaining,
                tune.workers,
            )
            _run_remaining(study, tune, base, url, study_name, remaining, client, quiet)
        with _database_errors(url, study_name):
            result = _results(study, folder, url, time.perf_counter() - start)
        try:
            _write_outputs(result, study, tune, base)
        except OSError as exc:
            raise file_system_error(
                exc, doing=f"writing the results of study '{study_name}' in", path=folder
            ) from exc
    return result


def _dask_client(scheduler: str | None, workers: int) -> contextlib.AbstractContextManager[Any]:
    """The trials' dask client (:func:`hepfpga.cluster.dask_client`): on the scheduler at
    ``scheduler``, or on a LocalCluster of ``workers`` single-threaded worker processes (each
    trial builds and fits its own TensorFlow model)."""
    return dask_client(
        scheduler, None if scheduler else workers, extra="tune", purpose="parallel trials"
    )


def _prepare(study: Any, storage: Any, tune: TuneConfig, base: dict[str, Any]) -> int:
    """Mark the trials a killed search left running as failed, queue the grid or the default
    trial; returns the number of finished trials the search is to have."""
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    # a killed search leaves its running trials RUNNING forever: mark them failed, replace them
    for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    total = tune.trials
    if STRATEGIES[tune.strategy].exhaustive:
        total = min(total, _queue_grid(study, tune.space))
    elif tune.include_default and not any(t.user_attrs.get("default") for t in _finished(study)):
        params = {p: d.parameter(_get(base, p)) for p, d in tune.space.items()}
        if all(v is not None for v in params.values()):
            study.enqueue_trial(params, user_attrs={"default": True}, skip_if_exists=True)
        else:
            outside = [p for p, v in params.items() if v is None]
            log.warning("the base config lies outside the space at %s: no default trial", outside)
    return total


#: the study's user attribute that binds its name to the space it was made with
_SPACE_ATTR = "hepfpga_space"


def _space_text(space: Mapping[str, Dimension]) -> str:
    return json.dumps({p: to_plain(d) for p, d in sorted(space.items())}, sort_keys=True)


def _open_study(url: str, name: str, space: Mapping[str, Dimension]) -> tuple[Any, Any]:
    """Open (or create) the study ``name`` in the database ``url``, bound to ``space``: a
    study made with another space is refused, naming both."""
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    if url.startswith("sqlite") and url.split("?")[0] in ("sqlite://", "sqlite:///:memory:"):
        raise ConfigError(
            f"the storage {url!r} is an in-memory database, which the worker processes cannot "
            "share; give a file (sqlite:///path/study.db) or a database server URL",
            path="storage",
        )
    with _database_errors(url, name, opening=True):
        storage = optuna.storages.RDBStorage(url)
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", load_if_exists=True
        )
        text = _space_text(space)
        stored = study.user_attrs.get(_SPACE_ATTR)
        if stored is None:
            # a new study, or one made before studies were bound to their space: its trials'
            # parameters must then all be searched paths of this space
            used = {p for t in study.get_trials(deepcopy=False) for p in t.params}
            if used - set(space):
                stored = json.dumps({p: "?" for p in sorted(used)})
            else:
                study.set_user_attr(_SPACE_ATTR, text)
                stored = text
    if stored != text:
        raise ConfigError(
            f"the study '{name}' in {url} was made with another search space ({stored[:300]}); "
            f"this tune file's space is {text[:300]}. Give the new search its own name "
            "(study: NAME in the tune file) or another output_dir",
            path="study",
        )
    return storage, study


@contextlib.contextmanager
def _database_errors(url: str, name: str, *, opening: bool = False) -> Iterator[None]:
    """Translate the failures of the study database (SQLAlchemy, sqlite, the disk under it)
    into one error naming the storage and what to do."""
    try:
        yield
    except HepfpgaError:
        raise
    except Exception as exc:
        family = type(exc).__module__.split(".")[0]
        if disk_full(exc) or (isinstance(exc, OSError) and exc.errno):
            raise file_system_error(
                exc, doing=f"writing the study database of '{name}' at", path=url
            ) from exc
        if family not in ("sqlalchemy", "optuna") and not (
            opening and isinstance(exc, ImportError | ValueError)
        ):
            raise
        detail = " ".join(str(exc).split("(Background on this error")[0].split())[:300]
        what = "cannot be opened" if opening else "failed"
        raise ConfigError(
            f"the study database {url} {what}: {type(exc).__name__}: {detail}. Accepted: a "
            "SQLAlchemy URL whose driver is installed (sqlite:///path/study.db, "
            "postgresql://..., mysql://...), a file this process can write that is empty or a "
            "study database",
            path="storage",
        ) from exc


def _run_remaining(
    study: Any, tune: TuneConfig, base: dict[str, Any], url: str, name: str,
    remaining: int, client: Any | None, quiet: bool,
) -> None:  # fmt: skip
    # deferred, optional: distributed (hepfpga[emulate/tune])
    from distributed import as_completed

    offset = len(study.get_trials(deepcopy=False))
    tasks = (
        _TrialTask(url, name, tune.strategy, tune.pruner, tune.objective, tune.seed + offset + i,
                   tune.space, base, tune.lut_weight)
        for i in range(remaining)
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        if client is None:  # no --scheduler: local workers for these trials only
            client = stack.enter_context(_dask_client(None, tune.workers))
        n_slots = max(len(client.scheduler_info().get("workers", {})), 1)
        with client.as_current(), _progress(remaining, quiet) as bar:
            pending = as_completed(
                [
                    client.submit(run_trial, next(tasks), pure=False)
                    for _ in range(min(n_slots, remaining))
                ]
            )
            for future in pending:
                with _database_errors(url, name):
                    number = future.result()
                _report_failure(study, number)
                bar.update(1)
                task = next(tasks, None)
                if task is not None:
                    pending.add(client.submit(run_trial, task, pure=False))


def _report_failure(study: Any, number: int) -> None:
    """Log the one-line reason of trial ``number`` if it failed (the workers keep optuna's
    own report, with its traceback, to themselves)."""
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number and trial.user_attrs.get("error"):
            log.warning("trial %d failed: %s", number, trial.user_attrs["error"])


def _results(study: Any, folder: Path, url: str, seconds: float) -> TuneResult:
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    states = optuna.trial.TrialState
    table = []
    for t in study.get_trials(deepcopy=False):
        table.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "default": bool(t.user_attrs.get("default")),
                "seconds": t.duration.total_seconds() if t.duration else None,
                **{k: v for k, v in t.params.items()},
            }
        )
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == states.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    default = [t for t in complete if t.user_attrs.get("default")]
    return TuneResult(
        folder=folder,
        storage=url,
        study=study.study_name,
        n_complete=len(complete),
        n_pruned=sum(t.state == states.PRUNED for t in study.get_trials(deepcopy=False)),
        n_failed=sum(t.state == states.FAIL for t in study.get_trials(deepcopy=False)),
        best_value=best.value if best else None,
        best_params=dict(best.params) if best else {},
        default_value=default[0].value if default else None,
        seconds=seconds,
        table=table,
        failures={
            t.number: str(
                t.user_attrs.get("error")
                or ("interrupted" if t.user_attrs.get("interrupted") else "no reason recorded")
            )
            for t in study.get_trials(deepcopy=False)
            if t.state == states.FAIL
        },
    )


def _write_outputs(result: TuneResult, study: Any, tune: TuneConfig, base: dict[str, Any]) -> None:

    folder = result.folder
    fixed = ("number", "state", "value", "default", "seconds")
    keys = [*fixed, *sorted({k for row in result.table for k in row} - set(fixed))]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(result.table)
    write_text_atomic(folder / "results.csv", buffer.getvalue())
    if result.best_params:
        best = copy.deepcopy(base)
        for dotted, value in result.best_params.items():
            dim = tune.space[dotted]
            _set(best, dotted, json.loads(value) if dim.choices is not None else value)
        write_text_atomic(folder / "best_config.yaml", yaml.safe_dump(best, sort_keys=False))
    write_json_atomic(folder / "tune_report.json", to_plain(vars(result)))
    _plot_objective(result, folder / "objective.png")
    _plot_importances(study, folder / "importances.png")


def _plot_objective(result: TuneResult, path: Path) -> None:
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    rows = [r for r in result.table if r["value"] is not None and r["state"] == "complete"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if rows:
        numbers = [r["number"] for r in rows]
        values = [r["value"] for r in rows]
        ax.plot(numbers, values, "o", label="trial")
        ax.step(numbers, np.maximum.accumulate(values), where="post", label="best so far")
        for r in rows:
            if r["default"]:
                ax.plot([r["number"]], [r["value"]], "s", color="black", label="default config")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective (validation)")
    ax.grid(True, alpha=0.3)
    if rows:  # no complete trial: nothing to label
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _plot_importances(study: Any, path: Path) -> None:
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly; optional: optuna (hepfpga[tune])
    import matplotlib.pyplot as plt
    import optuna

    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # too few complete trials, a single value...
        log.info("no parameter importances: %s", exc)
        return
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(importances) + 1.2))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (fANOVA)")
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
