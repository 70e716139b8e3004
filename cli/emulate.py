"""CLI commands of bulk emulation, attached to the main group by
:mod:`hepfpga.cli.app` (``COMMANDS``)."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hepfpga.artifacts import check_destination, write_json_atomic
from hepfpga.datafiles import ArrayWriter, check_input_path, open_array
from hepfpga.errors import ConfigError, disk_full_as_error
from hepfpga.firmware import FirmwareOptions, compile_project, write_project
from hepfpga.firmware.emulate import EmulationFallbackWarning, emulate_file
from hepfpga.firmware.hgq import write_hgq_project
from hepfpga.firmware.precision import is_quantized
from hepfpga.quantize.methods import method_of_model
from hepfpga.quantize.model_io import load_keras_model
from hepfpga.registry import Registry
from hepfpga.train.model_checks import check_model_inputs


@click.command()
@click.argument("model_file", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output file: .npz, .h5/.hdf5 or .parquet (written atomically).",
)
@click.option("--weights", type=click.Path(path_type=Path), help="Weights (.h5) for a JSON model.")
@click.option(
    "--key",
    help="Array (npz), dataset (HDF5) or TTree (ROOT) holding the inputs; for a model with "
    "several inputs, INPUT=ARRAY pairs separated by commas (default: arrays named as the "
    "inputs).",
)
@click.option(
    "--columns",
    help="Comma-separated input columns/branches, in the model's input order "
    "(parquet, ROOT, structured arrays).",
)
@click.option("--logits", is_flag=True, help="Also write the logits (the layer before softmax).")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Events per dask task.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="dask.distributed scheduler (e.g. tcp://host:8786); default: a local cluster. "
    "Workers must see DATA at the same path.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Workers of the local cluster (default: cores)."
)
@click.option(
    "--processes/--threads",
    default=False,
    show_default=True,
    help="Local cluster workers as processes or as threads of this process.",
)
@click.option(
    "--check-events",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Events of DATA compared with the C simulation before the fast engine is trusted.",
)
@click.option("--backend", default="Vitis", show_default=True, help="hls4ml backend.")
@click.option(
    "--io-type",
    default="io_parallel",
    show_default=True,
    help="io_parallel or io_stream (both run the fixed-point engine once proven).",
)
@click.option("--strategy", default="Latency", show_default=True, help="Latency or Resource.")
@click.option(
    "--report", type=click.Path(path_type=Path), help="Also write what was done as JSON here."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (and --report) file.")
def emulate(
    model_file: Path,
    data: Path,
    out: Path,
    weights: Path | None,
    key: str | None,
    columns: str | None,
    logits: bool,
    chunk_size: int,
    scheduler: str | None,
    workers: int | None,
    processes: bool,
    check_events: int,
    backend: str,
    io_type: str,
    strategy: str,
    report: Path | None,
    overwrite: bool,
) -> None:
    """Emulate the firmware of MODEL_FILE on every event of DATA, bit-identical to the hls4ml
    C simulation and ~100x faster.

    \b
    The model is converted and its C simulation compiled (g++, seconds); the fast fixed-point
    engine is compared with it bit for bit on the first --check-events events of DATA (plus
    events spread over the input range) and used only if every output is identical. Otherwise,
    or for layers it does not reproduce, the C simulation itself runs, with a warning.
    DATA: .npz, .h5/.hdf5, .parquet or .root.
    """

    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    keys = _input_keys(key)
    # cheap checks first: a misspelt key or a wrong suffix should not wait for g++
    check_destination(out, kind="file", overwrite=overwrite, option="--out")
    if report is not None:
        check_destination(report, kind="file", overwrite=overwrite, option="--report")
    check_input_path(data)
    ArrayWriter.check_path(out)
    options = FirmwareOptions.from_dict(
        {"backend": backend, "io_type": io_type, "strategy": strategy}
    )
    model = load_keras_model(model_file, weights=weights)
    check_model_inputs(model)
    if len(model.inputs) == 1:
        open_array(data, key=keys if not isinstance(keys, dict) else None, columns=names)
    build = _PROJECT_BUILDERS[method_of_model(model)]
    build(model, options, None, None, model_file)  # refuses what it cannot emulate, early
    with (
        tempfile.TemporaryDirectory(prefix="hepfpga-emulate-") as folder,
        warnings.catch_warnings(),
    ):
        # the fallback is logged and summed up below; Python's own warning line would repeat it
        warnings.simplefilter("ignore", EmulationFallbackWarning)

        def calibration() -> Any:  # the start of DATA (read only by the methods that need it)
            reader = open_array(
                data, key=keys if not isinstance(keys, dict) else None, columns=names
            )
            return reader.read(0, min(check_events, reader.n_events))

        project = build(model, options, Path(folder) / "firmware", calibration, model_file)
        with disk_full_as_error("writing the emulated outputs", out):
            result = emulate_file(
                project,
                data,
                out,
                key=keys,
                columns=names,
                logits=logits,
                chunk_size=chunk_size,
                scheduler=scheduler,
                n_workers=workers,
                processes=processes,
                check_events=check_events,
            )
    if report is not None:
        write_json_atomic(report, result.to_dict())
    check = result.check
    proof = (
        f"identical to the C simulation on {check.fraction_identical:.2%} of {check.n_events} "
        "check events"
        if check is not None
        else "no check"
    )
    click.echo(
        f"wrote {out}: {result.n_events} events with the {result.engine} engine in "
        f"{result.seconds:.1f} s ({result.events_per_second:,.0f} events/s); {proof}"
    )
    if result.fallback_reason is not None:
        click.echo(f"warning: fell back to the C simulation: {result.fallback_reason}", err=True)


def _input_keys(key: str | None) -> str | dict[str, str] | None:
    """``--key``: one name, or ``INPUT=ARRAY`` pairs (several inputs) as a mapping."""

    if key is None or "=" not in key:
        return key
    pairs: dict[str, str] = {}
    for item in key.split(","):
        name, sep, array = (part.strip() for part in item.partition("="))
        if not sep or not name or not array or name in pairs:
            raise ConfigError(
                f"--key {key!r}: expected INPUT=ARRAY pairs separated by commas, each input "
                f"once (e.g. jet=jets,event=events); bad item {item!r}"
            )
        pairs[name] = array
    return pairs


COMMANDS = (emulate,)


def _qkeras_project(
    model: Any, options: FirmwareOptions, folder: Path | None, calibration: Any, source: Path
) -> Any:
    """The compiled project of a QKeras model (``folder`` None: only check that it is one)."""
    if not is_quantized(model):
        raise ConfigError(
            f"{source} is a float (non-QKeras) model; emulate reproduces the firmware of "
            "QKeras models, whose types come from their quantizers. Quantize it with QKeras, "
            "or write and check a float model's profiled firmware with 'hepfpga firmware "
            "MODEL --data FILE' and 'hepfpga verify MODEL --data FILE'"
        )
    if folder is None:
        return None
    return compile_project(write_project(model, options, folder))


def _hgq_project(
    model: Any, options: FirmwareOptions, folder: Path | None, calibration: Any, source: Path
) -> Any:
    """The compiled project of an HGQ model's proxy model, its activation ranges traced on
    the start of DATA (``calibration()``: those events)."""
    if folder is None:
        return None
    return write_hgq_project(model, options, folder, calibration=calibration(), compile=True)


#: quantization method (:func:`hepfpga.quantize.methods.method_of_model`) -> ``(model,
#: options, folder, calibration, source) -> compiled project`` (folder None: the model's
#: checks only)
_PROJECT_BUILDERS = Registry[Callable[..., Any]](
    "quantization method", {"qkeras": _qkeras_project, "hgq": _hgq_project}
)
