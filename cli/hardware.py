"""``hepfpga hardware``: RTL, bit-exact RTL simulation and yosys figures of a run or a model."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from hepfpga._schema import to_plain
from hepfpga.artifacts import atomic_directory, check_destination, write_json_atomic
from hepfpga.cli.params import FiniteFloat
from hepfpga.errors import ConfigError, DataError, VerificationError
from hepfpga.firmware import FirmwareOptions, compile_project, write_project
from hepfpga.firmware.backends import build_project
from hepfpga.firmware.data import load_events, random_events, validate_events
from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
from hepfpga.firmware.hgq import write_hgq_project
from hepfpga.firmware.rtl.flow import DEFAULT_SYNTH_TIMEOUT_S, build_hardware
from hepfpga.firmware.rtl.sim import find_verilator
from hepfpga.firmware.rtl.synth import find_yosys
from hepfpga.firmware.vendor import BuildSteps, read_reports
from hepfpga.pipeline.config import load_config
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.scan import (
    parse_betas,
    parse_bits,
    plot_scan,
    precision_points,
    run_scan,
)
from hepfpga.pipeline.stages import rebuild_run_data, run_firmware_options
from hepfpga.quantize.methods import QUANTIZATION_METHODS, method_of_model
from hepfpga.quantize.model_io import load_keras_model
from hepfpga.registry import Registry
from hepfpga.train.model_checks import check_model_inputs


@click.command()
@click.argument("config_file", type=click.Path(path_type=Path))
@click.option("--bits", default="3-10", show_default=True, help="Bit widths: '3-10' or '4,6,8'.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New output folder.")
@click.option("--synth", is_flag=True, help="yosys counts per point (else da4ml estimates).")
@click.option(
    "--tolerance",
    type=FiniteFloat(0, 1),
    default=0.01,
    show_default=True,
    help="Accuracy below the float model's allowed for the smallest design (0.01 = 1 point).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option(
    "--precision",
    "precision_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="An output folder of `hepfpga optimize-precision` (repeatable): its quantizer-derived "
    "and optimised types drawn on the Pareto plot.",
)
@click.option(
    "--hgq-betas",
    default=None,
    metavar="LIST",
    help="Also train the HGQ counterpart (quantization.method: hgq) at each resource weight "
    "beta, e.g. '1e-6,1e-5,1e-4', measured and plotted beside the bit widths (mlp, cnn).",
)
def scan(
    config_file: Path,
    bits: str,
    out: Path,
    synth: bool,
    tolerance: float,
    overwrite: bool,
    precision_dirs: tuple[Path, ...],
    hgq_betas: str | None,
) -> None:
    """Accuracy, AUC, latency and LUT/FF of CONFIG's model over weight/activation bit
    widths; writes OUT/scan.json and OUT/pareto.png and names the smallest design within
    --tolerance of the float accuracy, next to the hls4ml tutorial reference. With
    --hgq-betas, the HGQ counterpart trained at each beta joins the table, the JSON and the
    Pareto front; with --precision, the optimiser's points are drawn on the same plot. The
    plot marks the published QKeras and HGQ results of this network (on the hls4ml LHC jet
    data, another data set)."""

    widths = parse_bits(bits)
    betas = parse_betas(hgq_betas) if hgq_betas is not None else []
    check_destination(out, overwrite=overwrite)
    overlays = tuple(p for folder in precision_dirs for p in precision_points(folder))
    config = load_config(config_file)
    result = run_scan(config, widths, synthesize=synth, tolerance=tolerance, hgq_betas=betas)

    with atomic_directory(out, overwrite=overwrite) as folder:
        drawn = plot_scan(result, folder / "pareto.png", overlays)
        write_json_atomic(
            folder / "scan.json",
            {
                **to_plain(result),
                "overlays": to_plain(list(overlays)),
                # what pareto.png shows, marker by marker (the published ones included)
                "plot": to_plain(drawn),
            },
        )
    click.echo(f"float accuracy {result.float_accuracy:.4f}")
    click.echo("| design | accuracy | mean AUC | cycles | ns | LUT | FF | EBOPs |")
    click.echo("|---|---|---|---|---|---|---|---|")
    for p in result.all_points:
        cost = "-" if p.ebops is None else f"{p.ebops:,.0f}"
        click.echo(
            f"| {p.label} | {p.accuracy:.4f} | {p.mean_auc:.4f} | {p.latency_cycles} | "
            f"{p.latency_ns:g} | {p.lut:,} | {p.ff:,} | {cost} |"
        )
    click.echo(f"Pareto front (LUT, accuracy): {', '.join(result.front)}")
    ref = result.reference
    if result.smallest_within_tolerance is None:
        click.echo(f"no bit width within {tolerance:.2%} of the float accuracy")
    else:
        best = next(p for p in result.points if p.bits == result.smallest_within_tolerance)
        click.echo(
            f"smallest within {tolerance:.2%} of float: {best.bits} bits, LUT-equivalent "
            f"{best.lut_equivalent:,} ({best.lut_source}; no DSP) vs {ref['lut_equivalent']:,} "
            f"({ref['source']}: {ref['lut']:,} LUT + 55 x {ref['dsp']} DSP)"
        )
    for o in overlays:
        click.echo(f"{o.label}: accuracy {o.accuracy:.4f}, {o.lut:,.0f} LUT (da4ml estimate)")
    click.echo(f"wrote {out}/scan.json and {out}/pareto.png")


_STEPS = tuple(step.name for step in fields(BuildSteps))


def _vendor(project: Path, steps: str | None, out: Path | None, overwrite: bool) -> None:
    """Read (after building, if asked) the vendor reports of an hls4ml project."""

    destination = out or project / "hardware_report.json"
    check_destination(destination, overwrite=overwrite)
    if steps is None:
        report = read_reports(project)
    else:
        chosen = [s.strip() for s in steps.split(",") if s.strip()]
        unknown = sorted(set(chosen) - set(_STEPS))
        if unknown or not chosen:
            raise ConfigError(
                f"unknown --vendor steps {unknown or steps!r}; accepted: {', '.join(_STEPS)}"
            )
        report = build_project(project, BuildSteps(**{s: s in chosen for s in _STEPS}))
    write_json_atomic(destination, report.to_dict())
    click.echo(report.summary())
    click.echo(f"wrote {destination}")


#: quantization method -> ``(model, options, folder, events) -> compiled hls4ml project``:
#: QKeras models as they are, HGQ models from their proxy model (ranges traced on the
#: events, as the RTL reference is)
_PROJECT_WRITERS = Registry[Callable[[Any, FirmwareOptions, Path, Any], Any]](
    "quantization method",
    {
        "qkeras": lambda model, options, folder, events: compile_project(
            write_project(model, options, folder)
        ),
        "hgq": lambda model, options, folder, events: write_hgq_project(
            model, options, folder, calibration=np.asarray(events, np.float32), compile=True
        ),
    },
)


def _emulator_logits(model: Any, events: Any, firmware: Mapping[str, Any], folder: Path) -> Any:
    """Logits of the ``hepfpga emulate`` engine (proven against the C simulation)."""

    options = run_firmware_options(firmware)
    writer = _PROJECT_WRITERS[method_of_model(model)]
    project = writer(model, options, folder / "hls4ml", events)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulationFallbackWarning)
        emulator = Emulator.from_project(project, events)
    return emulator.predict_logits(events)


@click.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--data",
    "data_file",
    type=click.Path(path_type=Path),
    help="Events (npz/HDF5/parquet/ROOT) for a MODEL; a run uses its test jets.",
)
@click.option("--key", help="Array/dataset/TTree holding the events in --data.")
@click.option(
    "--events", "max_events", type=click.IntRange(min=1), help="Simulate at most this many events."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output folder [default: RUN/hardware, or MODEL's folder/hardware].",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option(
    "--clock-period",
    type=FiniteFloat(min=0, min_open=True),
    help="Clock period in ns [default: the run's firmware.clock_period, else 5].",
)
@click.option("--part", help="FPGA part for the shares [default: the run's, else xcvu13p].")
@click.option(
    "--latency-cutoff",
    type=FiniteFloat(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="da4ml adder delays per pipeline stage.",
)
@click.option(
    "--synth/--no-synth",
    default=True,
    show_default=True,
    help="Run yosys synth_xilinx for resource counts.",
)
@click.option(
    "--synth-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_SYNTH_TIMEOUT_S,
    show_default=True,
    metavar="SECONDS",
    help="yosys' time limit; past it the report keeps the RTL, its simulation and the "
    "latency, and says the resource counts are missing.",
)
@click.option(
    "--emulate/--no-emulate",
    default=True,
    show_default=True,
    help="Also compare with the hepfpga emulate engine (builds the hls4ml C sim).",
)
@click.option(
    "--vendor",
    "vendor_steps",
    metavar="STEPS",
    help="For an hls4ml PROJECT: run the vendor tool with these comma-separated steps "
    "(csim,synth,cosim,export,vsynth) before reading its reports.",
)
def hardware(
    target: Path,
    data_file: Path | None,
    key: str | None,
    max_events: int | None,
    out: Path | None,
    overwrite: bool,
    clock_period: float | None,
    part: str | None,
    latency_cutoff: float,
    synth: bool,
    synth_timeout: float,
    emulate: bool,
    vendor_steps: str | None,
) -> None:
    """RTL of a QKeras or HGQ model, simulated bit-exact, with latency and yosys resources.

    \b
    TARGET is a run folder (from `hepfpga run`: its quantized model and test jets), a
    QKeras or HGQ model file (.h5/.keras; events from --data, else 2,000 random ones), or an
    hls4ml project folder: then the vendor reports (Vitis/Vivado HLS, after a build or
    with --vendor STEPS to build it now) are read into the same report.
    Writes OUT/report.json (the HardwareReport), OUT/rtl/ (Verilog, test bench, yosys
    script) and prints the figures. Resources are yosys figures, not Vivado P&R.
    HGQ models are traced through their proxy model (a model file: its activation ranges
    traced on the events; a run: the proxy model it wrote), their EBOPs printed beside the
    LUT count.
    Exit status 1 if the RTL outputs differ from the model on any event.
    """

    if (target / "build_prj.tcl").is_file():
        _vendor(target, vendor_steps, out, overwrite)
        return
    if vendor_steps is not None:
        raise ConfigError(f"--vendor needs an hls4ml project folder; {target} is not one")
    firmware: Mapping[str, Any] = {}
    run_report: RunReport | None = None
    ebops: float | None = None
    if target.is_dir():
        report_file = target / "report.json"
        run_report = RunReport.read(report_file) if report_file.is_file() else None
        method = QUANTIZATION_METHODS.get(
            run_report.quantization_method if run_report is not None else "qkeras"
        )
        # the model the firmware is built from (HGQ: the proxy model the run wrote)
        name = method.firmware_model_file if method is not None else "qkeras_model.h5"
        model_file = target / name
        if run_report is None or not model_file.is_file():
            raise ConfigError(
                f"{target} is not a run folder (expected {name} and report.json); "
                "give a run folder of `hepfpga run` or a quantized model file"
            )
        firmware = _firmware_section(run_report, report_file)
        estimate = run_report.section("qkeras").get("ebops")
        ebops = float(estimate) if isinstance(estimate, (int, float)) else None
        destination = out or target / "hardware"
    elif target.is_file():
        model_file = target
        destination = out or target.parent / "hardware"
    else:
        raise ConfigError(f"{target} does not exist; give a run folder or a model file")
    # everything that can be refused is, before any work: the destination, the tools, the data
    check_destination(destination, overwrite=overwrite, option="--out" if out else None)
    find_verilator()
    if synth:
        find_yosys()
    if data_file is not None:
        events: Any = load_events(data_file, key, max_events)  # NaN/inf refused here
    model = load_keras_model(model_file)
    check_model_inputs(model)
    if data_file is not None:
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        events = validate_events(events, shape, name=f"{data_file} events")
    elif run_report is None:
        events = random_events(model, 2000)
    clock = clock_period or float(firmware.get("clock_period") or 5.0)
    part_name = part or str(firmware.get("part") or "xcvu13p-flga2577-2-e")
    # the work folder is the destination's .partial twin: a killed run leaves it to the next
    # one, which removes it (hepfpga.artifacts.clean_stale_partials)
    with atomic_directory(destination, overwrite=overwrite) as work:
        if data_file is None and run_report is not None:
            events = rebuild_run_data(
                run_report.section("config"),
                source=str(target / "report.json"),
                scratch=work / "data",
            ).x_test
        if max_events is not None:
            events = events[:max_events]
        emulator_logits = None
        if emulate:
            emulator_logits = _emulator_logits(model, events, firmware, work)
            shutil.rmtree(work / "hls4ml", ignore_errors=True)
        build = build_hardware(
            model,
            events,
            work / "rtl",
            emulator_logits=emulator_logits,
            clock_period_ns=clock,
            part=part_name,
            latency_cutoff=latency_cutoff,
            synth=synth,
            ebops=ebops,
            synth_timeout_s=synth_timeout,
        )
        write_json_atomic(work / "report.json", build.report.to_dict())
    report = replace(build.report)
    click.echo(report.summary())
    click.echo(f"wrote {destination}/report.json and the RTL in {destination}/rtl")
    if not report.exact:
        raise VerificationError("the RTL outputs differ from the reference on some events")


def _firmware_section(report: RunReport, where: Path) -> Mapping[str, Any]:
    """The run's ``config.firmware`` section (empty when absent), checked to be a mapping."""
    config = report.section("config")
    firmware = config.get("firmware") or {}
    if not isinstance(firmware, Mapping):
        raise DataError(
            f"{where}: not a hepfpga run report ('config.firmware' is a "
            f"{type(firmware).__name__}, not an object)"
        )
    return firmware


COMMANDS = (
    hardware,
    scan,
)
