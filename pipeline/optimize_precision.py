"""``hepfpga optimize-precision``: the precision search of a run or a model, its final points
in RTL (yosys), its chosen configuration proven by one C simulation, a Pareto plot.

:func:`optimize_precision` runs :func:`hepfpga.firmware.precision_search.search_precision`
and then, for the chosen configuration and up to ``synth_points`` points of the Pareto front:

* traces the whole candidate into da4ml RTL (:func:`~hepfpga.firmware.precision_search.trace_plan`),
  checks with da4ml's interpreter that it computes the engine's logits bit for bit, and runs
  yosys ``synth_xilinx`` on it (the **calibration**: yosys LUT / da4ml estimate per point,
  reported with its spread; the search ranks candidates by the estimate alone);
* writes the chosen hls4ml project, compiles its C simulation once and compares its logits
  on every event with the unconstrained firmware's (bit-exact constraint) or its accuracy
  (accuracy constraint).

**The LUT figures of the search are da4ml's estimate**, not a synthesis: every text this
module writes says so, with the calibration spread of the estimate against yosys: this
run's own (yosys on the final points, ``synth``) when it has at least two points, else
:data:`REFERENCE_CALIBRATION` (measured on the built-in jet MLP). With ``synth`` the chosen
configuration and the quantizer-derived types are both counted by yosys and reported side
by side; yosys runs under ``synth_timeout_s`` (a run's ``hardware.synthesis_timeout_s``):
past it that point keeps its estimate and the result's notes say its counts are missing.

Outputs in ``out_dir`` (written atomically): ``layer_types.yml`` (``firmware: layer_types:``,
loadable by ``hepfpga firmware --options``), ``search.json`` (every trial, the calibration, the
C-simulation check) and ``pareto.png``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hepfpga._schema import build, to_plain
from hepfpga.artifacts import atomic_directory, write_json_atomic, write_text_atomic
from hepfpga.errors import ConfigError, DataError
from hepfpga.firmware import FirmwareOptions, write_project
from hepfpga.firmware.csim import predict_logits
from hepfpga.firmware.precision_search import (
    DEFAULT_HOLDOUT,
    CandidateResult,
    Constraint,
    PrecisionSearch,
    PrecisionSearchResult,
    cost_of,
    search_precision,
    split_events,
    trace_plan,
)
from hepfpga.firmware.rtl.codegen import write_rtl
from hepfpga.firmware.rtl.config import HardwareConfig
from hepfpga.firmware.rtl.flow import DEFAULT_SYNTH_TIMEOUT_S, synthesized_resources
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.stages import rebuild_run_data, run_firmware_options
from hepfpga.quantize.model_io import load_keras_model

__all__ = [
    "REFERENCE_CALIBRATION",
    "Calibration",
    "FinalPoint",
    "OptimizeResult",
    "RunInputs",
    "optimize_precision",
    "plot_pareto",
    "run_inputs",
]

log = logging.getLogger("hepfpga.pipeline.optimize_precision")


@dataclass(frozen=True)
class Calibration:
    """yosys LUT / da4ml LUT estimate over some designs: the mean ratio and the largest
    relative deviation of a design's ratio from it (the spread)."""

    ratio: float
    spread: float
    points: int
    source: str

    def describe(self) -> str:
        return (
            f"yosys/da4ml = {self.ratio:.2f}, spread {self.spread:.0%} over {self.points} "
            f"designs ({self.source})"
        )


#: the estimate against yosys ``synth_xilinx`` on the built-in jet MLP (examples/jet_tagging.yaml,
#: 6-bit QKeras): quantizer-derived types 41,565 yosys / 45,146 estimated LUT, a narrowed
#: candidate 46,424 / 43,752 (ratios 0.921 and 1.061: mean 0.99, spread 7%). The estimate
#: can rank two designs that differ by less than the spread the wrong way round (that
#: narrowed candidate was estimated 3.1% cheaper and counted 11.7% dearer).
REFERENCE_CALIBRATION = Calibration(
    ratio=0.99,
    spread=0.07,
    points=2,
    source="measured on the built-in jet MLP; synthesize with --synth for this model's own",
)


@dataclass
class FinalPoint:
    """A Pareto point built as RTL: da4ml's estimate of the whole network, yosys' count."""

    trial: int
    lut_estimate: float | None
    #: da4ml's estimate of the whole network traced at once (the search sums layers)
    lut_estimate_whole: float
    pipeline_stages: int
    #: da4ml's interpreter on the RTL network equals the engine's logits on every event
    rtl_matches_engine: bool
    yosys_lut: int | None = None
    yosys_ff: int | None = None
    yosys_seconds: float | None = None
    #: yosys ran past its time limit: no counts for this point
    yosys_timed_out: bool = False


@dataclass
class OptimizeResult:
    """What :func:`optimize_precision` wrote."""

    search: PrecisionSearchResult
    final: list[FinalPoint]
    #: yosys LUT / da4ml estimate on this run's final points: mean, and the largest
    #: relative deviation from the mean (None: fewer than two points counted by yosys)
    calibration_ratio: float | None
    calibration_error: float | None
    #: the chosen configuration's C simulation on every event: the share of events whose
    #: logits equal the unconstrained firmware's, and its accuracy (accuracy mode: on the
    #: held-out events, the constraint's judge, and on the search events)
    csim_fraction_identical: float | None
    csim_accuracy: float | None
    out_dir: Path
    csim_search_accuracy: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: the calibration the LUT estimates are quoted with: this run's, else the reference
    calibration: Calibration = REFERENCE_CALIBRATION
    #: yosys LUT of the chosen configuration and of the quantizer-derived types (``synth``)
    yosys_chosen_lut: int | None = None
    yosys_baseline_lut: int | None = None

    def lut_note(self) -> str:
        """What the LUT figures are: da4ml's estimate and its calibration against yosys
        (this run's, with the reference beside it: a few similar designs can show a spread
        far below the estimate's error on designs that differ more)."""
        note = f"LUT figures are da4ml's estimate ({self.calibration.describe()}"
        if self.calibration is not REFERENCE_CALIBRATION:
            note += f"; reference: {REFERENCE_CALIBRATION.describe()}"
        return note + ")"


@dataclass(frozen=True)
class RunInputs:
    """What the search of a finished run needs, made again from its folder."""

    model: Any
    events: np.ndarray
    labels: np.ndarray
    options: FirmwareOptions
    #: the run's ``hardware`` section (yosys' family and time limit)
    hardware: HardwareConfig


def run_inputs(run_dir: Path, scratch: Path) -> RunInputs:
    """A run's QKeras model, test inputs and labels (made again by the pipeline's data stage
    from the run's config: same seed, split and preprocessing), its firmware options and its
    ``hardware`` section."""
    model_file, report_file = run_dir / "qkeras_model.h5", run_dir / "report.json"
    if not model_file.is_file() or not report_file.is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder (expected qkeras_model.h5 and report.json); give a "
            "run folder of `hepfpga run` or a QKeras model file"
        )
    report = RunReport.read(report_file)
    config = report.section("config")
    data = rebuild_run_data(config, source=str(report_file), scratch=scratch)
    options = run_firmware_options(config.get("firmware") or {})
    hardware = build(HardwareConfig, config.get("hardware") or {}, "hardware", str(report_file))
    return RunInputs(load_keras_model(model_file), data.x_test, data.y_test, options, hardware)


def _final_point(
    search: PrecisionSearch,
    point: CandidateResult,
    folder: Path,
    synth: HardwareConfig | None,
    notes: list[str],
) -> FinalPoint:
    plan, tensor = search.engine(point.layer_types)
    net = trace_plan(plan, tensor)
    values = net.input_type.quantize(np.asarray(search.events, dtype=np.float64))
    rtl = np.asarray(net.comb.predict(values)).reshape(len(values), -1)
    matches = bool(np.array_equal(rtl, search.logits(plan, tensor)))
    project = write_rtl(net, folder)
    final = FinalPoint(
        trial=point.number,
        lut_estimate=point.lut_estimate,
        lut_estimate_whole=project.estimated_luts,
        pipeline_stages=project.n_stages,
        rtl_matches_engine=matches,
    )
    if synth is not None:
        seconds: dict[str, float] = {}
        resources = synthesized_resources(
            project,
            family=synth.family,
            part=search.options.effective_part,
            timeout_s=synth.synthesis_timeout_s,
            seconds=seconds,
            notes=notes,
        )
        final.yosys_seconds = seconds.get("synthesis")
        if resources is None:
            final.yosys_timed_out = True
        else:
            final.yosys_lut, final.yosys_ff = resources.lut, resources.ff
    return final


def _calibration(final: list[FinalPoint]) -> tuple[float | None, float | None]:
    ratios = [p.yosys_lut / p.lut_estimate for p in final if p.yosys_lut and p.lut_estimate]
    if len(ratios) < 2:  # one point has no spread
        return None, None
    mean = float(np.mean(ratios))
    return mean, float(max(abs(r / mean - 1.0) for r in ratios))


def _csim_check(
    model: Any,
    options: FirmwareOptions,
    best: CandidateResult,
    search: PrecisionSearch,
    reference: np.ndarray,
    folder: Path,
    split: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[float, float | None, float | None]:
    """(share of events identical to ``reference``, accuracy, accuracy on the search
    events): the accuracy on every event, or with ``split`` (search, held-out indices) on
    the held-out events."""
    chosen = replace(options, layer_types=dict(best.layer_types))
    project = write_project(model, chosen, folder, compile=True)
    logits = predict_logits(project, search.events)
    same = float(np.mean(np.all(logits == reference, axis=1)))
    if split is None:
        return same, search.accuracy(logits), None
    pick, held = split
    assert search.labels is not None
    truth = search.labels.argmax(axis=1) if search.labels.ndim == 2 else search.labels
    correct = logits.argmax(axis=1) == truth
    return same, float(np.mean(correct[held])), float(np.mean(correct[pick]))


def plot_pareto(result: OptimizeResult, path: Path) -> None:
    """Every trial's da4ml LUT estimate against its adder depth (feasible or not), the
    feasible Pareto front, the unconstrained firmware and the yosys counts of the final
    points (scaled back by the calibration ratio)."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    s = result.search
    fig, ax = plt.subplots(figsize=(6, 4))
    n_bad = sum(1 for t in s.trials if not t.feasible)
    good = [cost_of(t) for t in s.trials if t.feasible]
    front = [cost_of(t) for t in s.pareto]
    ax.scatter(
        [c[0] for c in good],
        [c[1] for c in good],
        color="C0",
        s=16,
        label=f"feasible ({n_bad} of {len(s.trials)} trials break {s.constraint.value})",
    )
    ax.plot(
        [c[0] for c in front],
        [c[1] for c in front],
        color="C1",
        marker="o",
        label="Pareto front",
    )
    base_lut, base_depth = cost_of(s.baseline)  # the quantizer-derived types are costed
    ax.scatter(
        [base_lut],
        [base_depth],
        marker="*",
        s=140,
        color="k",
        label="quantizer-derived types",
        zorder=5,
    )
    for p in result.final:
        if p.yosys_lut is not None:
            depth = next(cost_of(t)[1] for t in [s.baseline, *s.trials] if t.number == p.trial)
            ax.scatter([p.yosys_lut], [depth], marker="x", color="C3", zorder=6)
            ax.annotate(
                f"yosys {p.yosys_lut:,}",
                (p.yosys_lut, depth),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
    ax.set_xlabel(
        f"LUT, da4ml estimate (spread {result.calibration.spread:.0%} against yosys); x: yosys"
    )
    ax.set_ylabel("adder depth (da4ml delay units)")
    ax.set_title(
        f"precision search, {s.constraint.value}"
        + (f" (epsilon {s.epsilon:g})" if s.epsilon is not None else ""),
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def optimize_precision(
    model: Any,
    events: np.ndarray,
    out_dir: Path,
    *,
    labels: np.ndarray | None = None,
    constraint: Constraint = Constraint.BIT_EXACT,
    epsilon: float | None = None,
    n_trials: int = 40,
    seed: int = 0,
    options: FirmwareOptions | None = None,
    synth_points: int = 2,
    synth: bool = True,
    csim: bool = True,
    overwrite: bool = False,
    holdout: float = DEFAULT_HOLDOUT,
    hardware: HardwareConfig | None = None,
) -> OptimizeResult:
    """Search, build the final points, prove the chosen one and write ``out_dir`` (see the
    module notes). ``synth_points``: Pareto points (the chosen one first) traced into RTL with
    the unconstrained firmware (trial -1); with ``synth``, yosys counts them all (the
    calibration), with ``hardware``'s family and ``synthesis_timeout_s`` (default: xcup,
    :data:`~hepfpga.firmware.rtl.flow.DEFAULT_SYNTH_TIMEOUT_S`)."""
    if synth_points < 0:
        raise ConfigError(f"synth_points must be >= 0. Received: {synth_points}")
    events = np.asarray(events, dtype=np.float32)
    if events.ndim != 2:
        raise DataError(f"expected events x features, got shape {events.shape}")
    start = time.perf_counter()
    options = options if options is not None else FirmwareOptions()
    result = search_precision(
        model,
        events,
        constraint=constraint,
        labels=labels,
        epsilon=epsilon,
        n_trials=n_trials,
        seed=seed,
        options=options,
        holdout=holdout,
    )
    search = PrecisionSearch(model, events, labels, options)
    try:
        plan, tensor = search.engine({})
        reference = search.logits(plan, tensor)
        with atomic_directory(out_dir, overwrite=overwrite) as work:
            points = [result.best] + [p for p in result.pareto if p is not result.best]
            points = points[:synth_points]
            if points and all(p is not result.baseline for p in points):
                # the unconstrained firmware: the reference (and a calibration point)
                points.append(result.baseline)
            notes: list[str] = []
            yosys = (
                hardware or HardwareConfig(synthesis_timeout_s=DEFAULT_SYNTH_TIMEOUT_S)
                if synth
                else None
            )
            final = [
                _final_point(search, p, work / "rtl" / f"trial_{p.number}", yosys, notes)
                for p in points
            ]
            shutil.rmtree(work / "rtl", ignore_errors=True)  # RTL can be made again; kept small
            ratio, error = _calibration(final)
            same = accuracy = search_accuracy = None
            if csim:
                split = (
                    split_events(len(events), holdout, seed)
                    if result.constraint is Constraint.ACCURACY
                    else None
                )
                same, accuracy, search_accuracy = _csim_check(
                    model, options, result.best, search, reference, work / "hls4ml", split
                )
                shutil.rmtree(work / "hls4ml", ignore_errors=True)
            out = OptimizeResult(
                search=result,
                final=final,
                calibration_ratio=ratio,
                calibration_error=error,
                csim_fraction_identical=same,
                csim_accuracy=accuracy,
                csim_search_accuracy=search_accuracy,
                out_dir=Path(out_dir),
                seconds=time.perf_counter() - start,
                notes=notes,
            )
            if ratio is not None and error is not None:
                out.calibration = Calibration(
                    ratio, error, sum(1 for p in final if p.yosys_lut), "this run's yosys points"
                )
            counted = {p.trial: p.yosys_lut for p in final}
            out.yosys_chosen_lut = counted.get(result.best.number)
            out.yosys_baseline_lut = counted.get(result.baseline.number)
            layer_types = {"firmware": {"layer_types": result.best.plain_types()}}
            header = (
                f"# hepfpga optimize-precision: trial {result.best.number}, constraint "
                f"{result.constraint.value}; use with: hepfpga firmware MODEL --options THIS\n"
                f"# {out.lut_note()}\n"
            )
            write_text_atomic(
                work / "layer_types.yml", header + yaml.safe_dump(layer_types, sort_keys=False)
            )
            write_json_atomic(work / "search.json", to_plain(out))
            plot_pareto(out, work / "pareto.png")
    finally:
        search.close()
    return out
