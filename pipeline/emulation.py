"""The ``emulation`` stage of ``hepfpga run``: the bulk emulator (``hepfpga emulate``) of the
compiled firmware, proven bit for bit against its C simulation on the test jets plus stress
events spread over the input range. The report's ``emulation`` section says which engine
``hepfpga emulate`` uses for this firmware (``fixed-point``, or ``csim`` with the reason of the
fallback), on how many events it was identical, and its throughput on the test jets.

The ``trigger_rates`` stage then runs that emulator (the firmware's own numbers, not QKeras')
over a background sample (``task.trigger_rates.background``, or the run's held-out test jets)
and reports the signal efficiency at fixed background acceptances with its uncertainties
(:mod:`hepfpga.train.trigger_rates`); :func:`trigger_rate_tables` reads it back for
``report.html`` and ``hepfpga compare``."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepfpga._schema import to_plain
from hepfpga.errors import ConfigError, DataError
from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
from hepfpga.pipeline.figures import FigureTable, value
from hepfpga.pipeline.run import Check, Run, StageResult
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.stages import DataResult, FirmwareResult, split_run_sample
from hepfpga.train.dataset import stratified_subsample
from hepfpga.train.io import load_sample
from hepfpga.train.jets import JetSample
from hepfpga.train.trigger_rates import TriggerRateConfig, TriggerRates, trigger_rates

__all__ = [
    "EmulationStageResult",
    "TriggerRateResult",
    "emulation_stage",
    "trigger_rate_stage",
    "trigger_rate_tables",
]

#: test jets the proof compares (all of them up to this many), plus the stress events
CHECK_EVENTS = 10_000


@dataclass
class EmulationStageResult(StageResult):
    engine: str
    fallback_reason: str | None
    n_events: int
    n_stress_events: int
    fraction_identical: float
    #: test jets per second through the emulator (after the proof)
    events_per_second: float
    #: the proven emulator (for the trigger rates; not in the report)
    emulator: Emulator | None = field(default=None, repr=False)

    def report_items(self, run: Run) -> dict[str, Any]:
        return {
            "emulation": {
                "engine": self.engine,
                "fallback_reason": self.fallback_reason,
                "n_events_compared": self.n_events,
                "n_stress_events": self.n_stress_events,
                "fraction_identical_to_csim": self.fraction_identical,
                "events_per_second": self.events_per_second,
            }
        }

    def checks(self, run: Run) -> dict[str, Check]:
        # the fallback is exact too (it is the C simulation): reported, not required
        reason = self.fallback_reason or "fixed-point engine, identical to the C simulation"
        return {"emulator_engine": Check(self.engine, None, True, reason=reason)}


def emulation_stage(run: Run) -> EmulationStageResult | None:
    """Prove the emulator of the compiled project on the test jets (no project: skipped)."""
    firmware = run.find(FirmwareResult)
    if firmware is None or firmware.project is None:
        return None
    # the firmware's inputs (another form of the test jets for a GarNet run)
    x = firmware.firmware_inputs(run.get(DataResult).x_test)
    n_events = len(x[0]) if isinstance(x, list) else len(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulationFallbackWarning)
        emulator = Emulator.from_project(firmware.project, x, check_events=CHECK_EVENTS)
    start = time.perf_counter()
    emulator.predict(x)
    seconds = time.perf_counter() - start
    check = emulator.check
    return EmulationStageResult(
        engine=emulator.engine,
        fallback_reason=emulator.fallback_reason,
        n_events=check.n_events if check else 0,
        n_stress_events=check.n_stress_events if check else 0,
        fraction_identical=check.fraction_identical if check else 0.0,
        events_per_second=n_events / seconds if seconds > 0 else float("inf"),
        emulator=emulator,
    )


# --- trigger rates through the emulator ---------------------------------------------------

log = logging.getLogger("hepfpga")

#: background jets prepared and emulated at a time (bounds the memory of a large sample)
CHUNK_JETS = 200_000


@dataclass
class TriggerRateResult(StageResult):
    """The ``trigger_rates`` section: measured (:class:`TriggerRates`) or why not."""

    rates: TriggerRates | None
    not_available: str | None = None
    seconds: float = 0.0

    def report_items(self, run: Run) -> dict[str, Any]:
        if self.rates is None:
            return {"trigger_rates": {"status": "not available", "reason": self.not_available}}
        return {
            "trigger_rates": {"status": "measured", "seconds": round(self.seconds, 2)}
            | to_plain(self.rates)
        }


def _background_sample(
    run: Run, settings: TriggerRateConfig, data: DataResult
) -> tuple[JetSample, str]:
    if settings.background is not None:
        jets, where = load_sample(settings.background), str(settings.background)
    else:
        jets = split_run_sample(run, data.sample).test
        where = "the run's test jets (all of them; task.trigger_rates.background: none)"
    if settings.max_background_jets is not None:
        jets = stratified_subsample(jets, settings.max_background_jets, run.config.seed)
    return jets, where


def _network_inputs(run: Run, data: DataResult, jets: JetSample) -> np.ndarray:
    """The representation of ``jets`` as the run's network sees it: the scaler fitted on the
    run's training jets where the representation has one, else the representation itself
    (which then depends on each jet alone)."""
    representation = run.config.model.input_representation(run.config.data)
    return np.ascontiguousarray(representation.encode(jets, data.inputs.scaler), np.float32)


def _emulated_scores(
    run: Run, data: DataResult, emulator: Emulator, firmware: FirmwareResult, jets: JetSample
) -> np.ndarray:
    parts = []
    for start in range(0, len(jets), CHUNK_JETS):
        chunk = jets.subset(np.arange(start, min(start + CHUNK_JETS, len(jets))))
        x = firmware.firmware_inputs(_network_inputs(run, data, chunk))
        parts.append(np.asarray(emulator.predict(x), dtype=np.float64))
    return np.concatenate(parts) if parts else np.zeros((0, 1))


def _class_index(classes: tuple[str, ...], name: str, path: str) -> int:
    if name not in classes:
        raise ConfigError(
            f"the sample has no class '{name}'; its classes: {', '.join(classes)}", path=path
        )
    return classes.index(name)


def trigger_rate_stage(run: Run) -> TriggerRateResult | None:
    """Signal efficiencies at ``task.trigger_rates.acceptances`` of the background, both
    scored by the firmware's bulk emulator (proven by the ``emulation`` stage).

    Anomaly detection: the score is the firmware's one output; signals are the task's signal
    classes among the test jets, the background the ``background_classes`` (default: the
    task's background) of the background sample. Classification: the score of class ``c``
    is the firmware's output ``c`` (its softmax as the firmware computes it); each class's
    test jets are its signal, the other classes of the background sample (or only the
    ``background_classes``) its background."""
    settings = getattr(run.config.task, "trigger_rates", None)
    if not isinstance(settings, TriggerRateConfig) or not settings.enabled:
        return None
    emulation = run.find(EmulationStageResult)
    firmware = run.find(FirmwareResult)
    if firmware is None:
        # the task leaves the firmware out (report.json's stages_left_out says why): there is
        # no firmware whose rates to measure, which is not a missing result
        return None
    if emulation is None or emulation.emulator is None:
        return TriggerRateResult(
            None,
            "no firmware emulator for this run: the trigger rates are the firmware's own "
            "numbers (bulk emulator), not QKeras'",
        )
    start = time.perf_counter()
    data = run.get(DataResult)
    classes = data.classes
    try:
        jets, where = _background_sample(run, settings, data)
        if tuple(jets.class_names) != classes:
            raise DataError(
                f"its classes {', '.join(jets.class_names)} are not the run's "
                f"({', '.join(classes)})"
            )
    except DataError as exc:
        # the run's models stand without it: the report says why there are no trigger rates
        reason = f"task.trigger_rates.background {settings.background}: {exc}"
        log.warning("no trigger rates: %s", reason)
        return TriggerRateResult(None, reason)
    emulator = emulation.emulator
    background_scores = _emulated_scores(run, data, emulator, firmware, jets)
    test_scores = np.asarray(
        emulator.predict(firmware.firmware_inputs(data.x_test)), dtype=np.float64
    )
    chosen = [
        _class_index(classes, n, f"task.trigger_rates.background_classes[{i}]")
        for i, n in enumerate(settings.background_classes)
    ]
    anomaly = getattr(data, "signals", None)
    signals = list(anomaly) if anomaly is not None else list(range(len(classes)))
    default_background = getattr(data, "background", None)
    signal_scores, bkg_scores, bkg_classes = {}, {}, {}
    for c in signals:
        if chosen:
            background = [b for b in chosen if b != c]
        elif default_background is not None:
            background = list(default_background)
        else:
            background = [b for b in range(len(classes)) if b != c]
        column = 0 if anomaly is not None else c
        name = classes[c]
        signal_scores[name] = test_scores[data.y_test == c, column]
        bkg_scores[name] = background_scores[np.isin(jets.labels, background), column]
        bkg_classes[name] = [classes[b] for b in background]
    rates = trigger_rates(
        signal_scores,
        bkg_scores,
        settings.acceptances,
        scores=f"firmware outputs through the bulk emulator ({emulator.engine} engine)"
        + ("" if anomaly is not None else ": the output of the signal class"),
        background=where,
        background_classes=bkg_classes,
        confidence=settings.confidence,
        min_background_passing=settings.min_background_passing,
    )
    return TriggerRateResult(rates, seconds=time.perf_counter() - start)


def _pick(cells: dict[str, Any], key: str, index: int | None = None) -> dict[str, float | None]:
    """``cells[signal][key]`` (its ``index``-th bound for an interval) per signal."""
    out = {}
    for signal, cell in cells.items():
        item = cell.get(key)
        out[signal] = value(item if index is None or item is None else item[index])
    return out


def trigger_rate_tables(report: RunReport) -> list[FigureTable]:
    """One table per acceptance of the report's ``trigger_rates`` section: rows efficiency,
    its Clopper-Pearson bounds and its range from the threshold's uncertainty, a column per
    signal class; an unresolved acceptance says why in its title."""
    section = report.section("trigger_rates")
    efficiencies = section.get("efficiencies")
    if section.get("status") != "measured" or not isinstance(efficiencies, dict):
        return []
    signals = tuple(efficiencies)
    acceptances = list(dict.fromkeys(a for per in efficiencies.values() for a in per))
    level = f"{100 * float(section.get('confidence', 0.6827)):.4g}% CL"
    tables = []
    for acceptance in sorted(acceptances, key=float, reverse=True):
        cells = {s: efficiencies[s].get(acceptance, {}) for s in signals}
        reasons = {c.get("reason") for c in cells.values() if c.get("efficiency") is None}
        title = f"trigger: signal efficiency at background acceptance {acceptance} (firmware)"
        if reasons - {None}:
            title += f": {'; '.join(sorted(r for r in reasons if r))}"

        rows = {
            "efficiency": _pick(cells, "efficiency"),
            f"{level} low (Clopper-Pearson)": _pick(cells, "efficiency_interval", 0),
            f"{level} high (Clopper-Pearson)": _pick(cells, "efficiency_interval", 1),
            "threshold uncertainty low": _pick(cells, "threshold_interval_efficiency", 0),
            "threshold uncertainty high": _pick(cells, "threshold_interval_efficiency", 1),
            "realised background acceptance": _pick(cells, "background_acceptance"),
        }
        tables.append(FigureTable(title, signals, rows))
    return tables
