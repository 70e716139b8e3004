"""CLI command writing the trigger emulator library of a run or a model
(:mod:`hepfpga.firmware.emulator_lib`), attached by :mod:`hepfpga.cli.app` (``COMMANDS``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hepfpga._schema import build
from hepfpga.artifacts import check_destination
from hepfpga.datafiles import check_input_path, open_array
from hepfpga.errors import ConfigError
from hepfpga.firmware import FirmwareOptions
from hepfpga.firmware.emulator_lib import (
    ARITHMETIC_GENERATED,
    ARITHMETICS,
    check_package,
    write_emulator_package,
)
from hepfpga.firmware.emulator_lib_bdt import RunBdt
from hepfpga.firmware.precision import is_quantized
from hepfpga.quantize.model_io import load_keras_model
from hepfpga.train.bdt import PROJECT, BdtConfig

#: in a run folder: the QKeras model, the firmware options and the test-bench events
RUN_MODEL = "qkeras_model.h5"
RUN_OPTIONS = "firmware/hepfpga_hls_config.json"
RUN_EVENTS = "firmware/tb_data/tb_input_features.npy"
#: in a run folder: the conifer cpp-backend project of the BDT stage
RUN_BDT = "bdt_firmware/emulation"


def run_bdt(run_dir: Path) -> tuple[RunBdt | None, str | None]:
    """The run's BDT to package, or None and why there is none (its config, its report)."""
    manifest_file, report_file = run_dir / "manifest.json", run_dir / "report.json"
    config = (
        json.loads(manifest_file.read_text()).get("config", {}) if manifest_file.is_file() else {}
    )
    section = config.get("bdt") or {}
    if not section.get("enabled"):
        return None, "the run has no BDT (bdt.enabled is not set in its config)"
    report = json.loads(report_file.read_text()).get("bdt", {}) if report_file.is_file() else {}
    for part in (report, report.get("emulation", {})):
        if part.get("status") == "not available":
            return None, f"the run's BDT stage wrote no firmware: {part.get('reason')}"
    emulation = run_dir / RUN_BDT
    if not (emulation / f"{PROJECT}.json").is_file():
        return None, (
            f"the run's BDT stage wrote no conifer project ({RUN_BDT}/{PROJECT}.json): it "
            "failed or did not finish"
        )
    return RunBdt(emulation, build(BdtConfig, section, path="bdt", source=str(manifest_file))), None


@click.command("emulator-lib")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Package folder to write."
)
@click.option(
    "--events",
    type=click.Path(path_type=Path),
    help="Test events (.npz, .npy, .h5/.hdf5, .parquet); default for a run: its test-bench "
    f"events ({RUN_EVENTS}).",
)
@click.option("--key", help="Array (npz) or dataset (HDF5) of --events holding the inputs.")
@click.option(
    "--max-events",
    type=click.IntRange(min=1),
    default=4000,
    show_default=True,
    help="Test events written to events.bin.",
)
@click.option(
    "--arithmetic",
    type=click.Choice(ARITHMETICS),
    default=ARITHMETIC_GENERATED,
    show_default=True,
    help="generated: integer C++ generated from hepfpga's fixed-point engine (falls back to "
    "the hls4ml sources, with a warning, for steps it does not cover); hls4ml: the hls4ml "
    "C-simulation sources.",
)
@click.option("--name", help="Model name (C++ identifier); default: the Keras model's name.")
@click.option("--version", "version", default="v1", show_default=True, help="Model version.")
@click.option(
    "--check", is_flag=True, help="Build the package (cmake, g++) and run its test program."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
def emulator_lib(
    source: Path,
    out: Path,
    events: Path | None,
    key: str | None,
    max_events: int,
    name: str | None,
    version: str,
    arithmetic: str,
    check: bool,
    overwrite: bool,
) -> None:
    """Write the firmware of SOURCE (a run folder or a QKeras model file) as a C++ trigger
    emulator library: the firmware's arithmetic (integer C++ generated from hepfpga's
    fixed-point engine, or the hls4ml C simulation where the generator does not cover a
    layer) behind the hls4mlEmulator::Model interface (CMSSW), every symbol in a namespace of
    its own, only create_model/destroy_model exported, with a CMake build, a BuildFile.xml and
    a test program that compares every output with `hepfpga emulate` bit for bit.

    A run's BDT (conifer's C++ emulation) becomes a second library in the package,
    lib<name>_bdt_<version>.so, checked against conifer's compiled emulation on the same
    events; a run without one says why in the package's README and package.json.
    """
    check_destination(out, overwrite=overwrite, option="--out")
    bdt: RunBdt | None = None
    bdt_reason: str | None = None
    if source.is_dir():
        model_file = source / RUN_MODEL
        if not model_file.is_file():
            raise ConfigError(
                f"{source} is a folder without {RUN_MODEL}: give a run folder written by "
                "'hepfpga run' or a QKeras model file (.h5, .keras, .json)"
            )
        options_file = source / RUN_OPTIONS
        options = (
            FirmwareOptions.from_dict(json.loads(options_file.read_text())["options"])
            if options_file.is_file()
            else FirmwareOptions()
        )
        if events is None and (source / RUN_EVENTS).is_file():
            events = source / RUN_EVENTS
        bdt, bdt_reason = run_bdt(source)
    elif source.exists():
        model_file, options = source, FirmwareOptions()
    else:
        raise ConfigError(f"{source} does not exist: give a run folder or a QKeras model file")
    if events is None:
        raise ConfigError(
            f"no test events for {source}: give --events FILE (.npz, .npy, .h5, .parquet)"
        )
    check_input_path(events)
    reader = open_array(events, key=key)
    x = reader.read(0, min(max_events, reader.n_events))
    model = load_keras_model(model_file)
    if not is_quantized(model):
        raise ConfigError(
            f"{model_file} is a float (non-QKeras) model; the emulator library packs the "
            "firmware of QKeras models, whose types come from their quantizers"
        )
    package = write_emulator_package(
        model,
        x,
        out,
        name=name,
        version=version,
        options=options,
        source=str(source),
        overwrite=overwrite,
        arithmetic=arithmetic,
        bdt=bdt,
        bdt_reason=bdt_reason,
    )
    click.echo(
        f"wrote {out}: lib{package.name}_{package.version}.so in namespace {package.namespace}, "
        f"{package.n_events} test events"
    )
    if package.fallback_reason is not None:
        click.echo(
            "warning: the package holds the hls4ml C-simulation sources (much slower), not "
            f"generated code: {package.fallback_reason}",
            err=True,
        )
    else:
        what = (
            "generated integer C++"
            if package.arithmetic == ARITHMETIC_GENERATED
            else "the hls4ml C-simulation sources"
        )
        click.echo(f"arithmetic: {what}")
    if package.bdt is not None:
        click.echo(
            f"the run's BDT: {package.bdt.library_name} in namespace {package.bdt.namespace}"
        )
    elif bdt is not None:
        click.echo(f"warning: no BDT library: {package.bdt_reason}", err=True)
    elif package.bdt_reason is not None:
        click.echo(f"no BDT library: {package.bdt_reason}")
    if check:
        run = check_package(out)
        click.echo(run.output.strip())


COMMANDS = (emulator_lib,)
