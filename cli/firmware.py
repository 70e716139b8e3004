"""CLI commands of the firmware area (bring-your-own-model conversion, verification),
attached to the main group by :mod:`hepfpga.cli.app` (``COMMANDS``).

``hepfpga firmware MODEL --out DIR`` writes an hls4ml project; ``hepfpga verify MODEL`` converts,
compiles (or reuses the cached C simulation) and compares every layer with Keras. Both are thin
layers over :func:`hepfpga.firmware.write_project` and :func:`hepfpga.firmware.verify_model`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from hepfpga.artifacts import check_destination, write_json_atomic
from hepfpga.cli.params import FiniteFloat
from hepfpga.errors import ConfigError, VerificationError
from hepfpga.firmware import FirmwareOptions, plan_conversion, verify_model, write_project
from hepfpga.firmware.backends import BACKENDS
from hepfpga.firmware.cache import cache_dir as cache_folder
from hepfpga.firmware.data import load_events, random_events
from hepfpga.firmware.hgq import verify_hgq_model, write_hgq_project
from hepfpga.firmware.hls_config import hls4ml_ready_model
from hepfpga.firmware.layers.graph import UserNames, input_names
from hepfpga.firmware.options import IOType, Strategy
from hepfpga.firmware.precision import check_supported
from hepfpga.firmware.softmax import SOFTMAX_MODES
from hepfpga.firmware.verify import plan_for_events
from hepfpga.quantize.methods import method_of_model
from hepfpga.quantize.model_io import load_keras_model
from hepfpga.registry import Registry
from hepfpga.train.model_checks import check_model_inputs
from hepfpga.yaml_io import load_yaml

log = logging.getLogger("hepfpga.cli.firmware")


def _firmware_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by ``firmware`` and ``verify`` (the keys of the ``firmware:`` config)."""
    decorators = [
        click.option(
            "--weights",
            type=click.Path(path_type=Path),
            help="Weights .h5 when MODEL is a JSON architecture.",
        ),
        click.option(
            "--options",
            "options_file",
            type=click.Path(path_type=Path),
            help="YAML with firmware options (a pipeline config's 'firmware:' section or a bare "
            "mapping, e.g. layer_types); the flags below override it.",
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS.names(), case_sensitive=False),
            help="hls4ml backend [default: Vitis].",
        ),
        click.option(
            "--io-type",
            type=click.Choice([io.value for io in IOType]),
            help="Layer interface [default: io_parallel].",
        ),
        click.option(
            "--strategy",
            type=click.Choice([s.value.lower() for s in Strategy], case_sensitive=False),
            help="hls4ml strategy [default: latency].",
        ),
        click.option("--reuse-factor", type=click.IntRange(min=1), help="[default: 1]"),
        click.option("--part", help="FPGA part [default: the backend's]."),
        click.option(
            "--clock-period",
            type=FiniteFloat(min=0, min_open=True),
            help="Clock period in ns [default: 5].",
        ),
        click.option(
            "--softmax",
            type=click.Choice(SOFTMAX_MODES, case_sensitive=False),
            help="Final softmax: table (stable, tuned, latency), argmax, or none (logits) "
            "[default: stable]; see docs/firmware.md.",
        ),
        click.option(
            "--input-type",
            help="Hardware input type, e.g. 'ap_fixed<16,6,AP_RND_CONV,AP_SAT>' [default: from "
            "the input quantizer].",
        ),
        click.option(
            "--data",
            "data_file",
            type=click.Path(path_type=Path),
            help="Events from an .npz or HDF5 file (see --key).",
        ),
        click.option(
            "--key",
            help="Array of the --data file [default: its only array, or x]; for a model with "
            "several inputs, INPUT=ARRAY pairs separated by commas (default: arrays named as "
            "the inputs).",
        ),
        click.option(
            "--random",
            "n_random",
            type=click.IntRange(min=1),
            help="Use N standard-normal random events instead of --data.",
        ),
        click.option("--max-events", type=click.IntRange(min=1), help="Use at most N events."),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _build_options(options_file: Path | None, **flags: Any) -> Any:
    values: dict[str, Any] = {}
    if options_file is not None:
        loaded = load_yaml(options_file, what="firmware options file")
        if isinstance(loaded, dict) and isinstance(loaded.get("firmware"), dict):
            loaded = loaded["firmware"]
        if not isinstance(loaded, dict):
            raise ConfigError(
                "expected a mapping of firmware options (or a config with 'firmware:')",
                source=str(options_file),
            )
        values.update(loaded)
    values.update({k: v for k, v in flags.items() if v is not None})
    return FirmwareOptions.from_dict(values)


def _events(
    model: Any,
    data_file: Path | None,
    key: str | None,
    n_random: int | None,
    max_events: int | None,
    options: FirmwareOptions | None = None,
) -> Any:
    if data_file is not None and n_random is not None:
        raise ConfigError("give either --data or --random, not both")
    events: Any
    if data_file is not None:
        names = input_names(model)
        if len(names) > 1:  # one array per input
            arrays = _input_arrays(key, names)
            events = [load_events(data_file, arrays[name], max_events) for name in names]
        else:
            events = load_events(data_file, key, max_events)
    elif n_random is not None:
        events = random_events(model, n_random, options=options)
    else:
        return None
    if max_events is None:
        return events
    return [e[:max_events] for e in events] if isinstance(events, list) else events[:max_events]


def _input_arrays(key: str | None, names: list[str]) -> dict[str, str]:
    """``--key`` for a model with several inputs: input name -> array of the data file, from
    ``INPUT=ARRAY`` pairs separated by commas (default: each input's own name)."""

    if key is None:
        return {name: name for name in names}
    pairs: dict[str, str] = {}
    for item in key.split(","):
        name, sep, array = (part.strip() for part in item.partition("="))
        if not sep or not name or not array or name in pairs:
            raise ConfigError(
                f"--key {key!r}: the model has {len(names)} inputs ({', '.join(names)}); "
                "expected INPUT=ARRAY pairs separated by commas, each input once (e.g. "
                f"{','.join(f'{n}={n}' for n in names)}); bad item {item!r}"
            )
        pairs[name] = array
    if set(pairs) != set(names):
        raise ConfigError(
            f"--key {key!r} names the inputs {', '.join(sorted(pairs))}; the model's inputs "
            f"are {', '.join(names)}: give one INPUT=ARRAY pair for each"
        )
    return pairs


def _flags(**kwargs: Any) -> dict[str, Any]:
    return {
        "backend": kwargs["backend"],
        "io_type": kwargs["io_type"],
        "strategy": kwargs["strategy"],
        "reuse_factor": kwargs["reuse_factor"],
        "part": kwargs["part"],
        "clock_period": kwargs["clock_period"],
        "softmax": kwargs["softmax"],
        "input_type": kwargs["input_type"],
    }


@click.command("firmware")
@click.argument("model_file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New project folder.")
@_firmware_options
@click.option(
    "--compile", "compile_", is_flag=True, help="Also build the C-simulation library (g++)."
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing --out once the new one is complete."
)
def firmware_cmd(
    model_file: Path,
    out: Path,
    overwrite: bool,
    weights: Path | None,
    options_file: Path | None,
    data_file: Path | None,
    key: str | None,
    n_random: int | None,
    max_events: int | None,
    compile_: bool,
    **kwargs: Any,
) -> None:
    """Write the hls4ml project of a Keras/QKeras MODEL into --out (atomically).

    MODEL is a full .h5/.keras file, a JSON architecture with --weights, or a SavedModel
    folder. QKeras models get every type from their quantizers (exact logits); float
    models need events (--data or --random) to profile their ranges. Events given
    become the project's test bench (at most 1000).
    """

    check_destination(out, overwrite=overwrite, option="--out")
    options = _build_options(options_file, **_flags(**kwargs))
    loaded = load_keras_model(model_file, weights=weights)
    check_model_inputs(loaded)
    writer = _PROJECT_WRITERS[method_of_model(loaded)]
    writer(
        loaded,
        options,
        out,
        lambda model: _events(model, data_file, key, n_random, max_events, options),
        compile_=compile_,
        overwrite=overwrite,
        model_file=model_file,
    )


def _write_hgq_project(
    loaded: Any,
    options: FirmwareOptions,
    out: Path,
    events_of: Callable[[Any], Any],
    *,
    compile_: bool,
    overwrite: bool,
    model_file: Path,
) -> None:
    """``firmware`` of an HGQ model: its proxy model's project (types from its
    FixedPointQuantizer layers, activation ranges traced on the events)."""
    events = events_of(loaded)
    if events is None:
        raise ConfigError(
            f"{model_file} is an HGQ model: give events (--data FILE or --random N) to "
            "trace its activation ranges, which set the integer bits of its types"
        )
    project = write_hgq_project(
        loaded, options, out, calibration=events, compile=compile_, overwrite=overwrite
    )
    click.echo(
        f"wrote {project.path} ({options.backend.value}; HGQ proxy model: types "
        "from its FixedPointQuantizer layers)"
    )


def _write_general_project(
    loaded: Any,
    options: FirmwareOptions,
    out: Path,
    events_of: Callable[[Any], Any],
    *,
    compile_: bool,
    overwrite: bool,
    model_file: Path,
) -> None:
    """``firmware`` of a QKeras model (types from its quantizers) or a float model (types
    profiled on the events)."""
    model = hls4ml_ready_model(loaded)
    check_supported(model)
    events = events_of(model)
    tb_in = tb_out = None
    if events is None:
        plan = plan_conversion(model, options)
    else:
        plan, events = plan_for_events(model, events, options)
        if len(model.outputs) == 1:
            # hls4ml's test bench reads one output array (and the inputs one after the
            # other on each line)
            tb_in = [e[:1000] for e in events] if isinstance(events, list) else events[:1000]
            tb_out = np.asarray(model.predict(tb_in, verbose=0))
    advice = plan.size_advice(options)
    if advice is not None:
        click.echo(f"warning: {advice}", err=True)
    if compile_:  # progress: on stderr, quiet under -q
        log.info(
            "building the C simulation of %s multiplications per event with g++ (seconds for "
            "small models, minutes for large ones)",
            f"{plan.multiplications:,}",
        )
    project = write_project(
        plan.model,
        options,
        out,
        testbench_inputs=tb_in,
        testbench_outputs=tb_out,
        plan=plan,
        compile=compile_,
        overwrite=overwrite,
    )
    kind = "QKeras: types from the quantizers" if project.quantized else "float: profiled"
    click.echo(
        f"wrote {project.path} ({options.backend.value}, {options.io_type.value}, "
        f"{options.strategy.value}, part {options.effective_part}; {kind})"
    )
    names = UserNames.of(project.keras_model)
    for name, types in names.keys(project.precision).items():
        click.echo(f"  {name:<24} {types.result.to_hls():<36} {types.source}")
    if compile_:  # built in the temporary folder, before the rename
        click.echo(f"compiled the C simulation in {project.compile_seconds:.1f} s")


@click.command("verify")
@click.argument("model_file", type=click.Path(path_type=Path))
@_firmware_options
@click.option(
    "--tolerance",
    type=FiniteFloat(min=0),
    help="Pass when the logits differ by at most this (default: bit-exact for QKeras "
    "models, 0.01 for float models).",
)
@click.option(
    "--report", type=click.Path(path_type=Path), help="Also write the report as JSON here."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --report file.")
@click.option("--no-cache", is_flag=True, help="Compile afresh; do not use the cache.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    help="Cache of compiled simulations [default: $HEPFPGA_CACHE or ~/.cache/hepfpga].",
)
def verify_cmd(
    model_file: Path,
    weights: Path | None,
    options_file: Path | None,
    data_file: Path | None,
    key: str | None,
    n_random: int | None,
    max_events: int | None,
    tolerance: float | None,
    report: Path | None,
    overwrite: bool,
    no_cache: bool,
    cache_dir: Path | None,
    **kwargs: Any,
) -> None:
    """Check that the firmware of MODEL computes what Keras/QKeras computes.

    Converts MODEL, compiles its C simulation (cached), runs both on the events (--data
    FILE or --random N; default --random 1000) and compares every layer: fraction
    bit-exact, largest difference in LSBs of the layer's type, and the first layer where
    they part with the likely cause. Exit status 0 when the requirement holds (bit-exact
    logits for QKeras models, --tolerance for float models), 1 when it does not, 2 for
    bad input.
    """

    if report is not None:
        check_destination(report, kind="file", overwrite=overwrite, option="--report")
    if not no_cache:
        check_destination(
            cache_folder(cache_dir),
            exist_ok=True,
            option="the cache ($HEPFPGA_CACHE, --cache-dir)",
        )
    options = _build_options(options_file, **_flags(**kwargs))
    model = load_keras_model(model_file, weights=weights)
    check_model_inputs(model)
    if data_file is None and n_random is None:
        n_random = 1000
    events = _events(model, data_file, key, n_random, max_events, options)
    verifier = _VERIFIERS[method_of_model(model)]
    verifier(
        model, events, options, report, tolerance=tolerance, no_cache=no_cache, cache_dir=cache_dir
    )


def _verify_general(
    model: Any,
    events: Any,
    options: Any,
    report: Path | None,
    *,
    tolerance: float | None,
    no_cache: bool,
    cache_dir: Path | None,
) -> None:
    """``verify`` of a QKeras or float model: every layer of the C simulation against Keras
    (:func:`hepfpga.firmware.verify_model`)."""
    result = verify_model(
        model,
        events,
        options,
        tolerance=tolerance,
        cache=not no_cache,
        cache_directory=cache_dir,
        progress=lambda line: log.info("%s", line),  # on stderr, quiet under -q
    )
    click.echo(result.summary())
    if report is not None:
        write_json_atomic(report, result.to_dict())
        click.echo(f"report: {report}")
    if not result.passed:
        reason = str(result.diagnosis) if result.diagnosis else result.requirement
        raise VerificationError(f"verification failed: {reason}")


def _verify_hgq(model: Any, events: Any, options: Any, report: Path | None, **general: Any) -> None:
    """``verify`` of an HGQ model: its proxy model's firmware, calibrated on the events,
    compiled in a temporary folder and compared bit for bit (:mod:`hepfpga.firmware.hgq`;
    bit-exact is the requirement: ``--tolerance`` and the cache options do not apply)."""
    if isinstance(events, list):
        raise ConfigError("HGQ models with several inputs are not supported yet")
    click.echo("building the C simulation of the HGQ proxy model with g++", err=True)
    with tempfile.TemporaryDirectory(prefix="hepfpga-hgq-") as folder:
        result = verify_hgq_model(model, events, options, out_dir=Path(folder) / "firmware")
    click.echo(result.summary())
    if report is not None:
        write_json_atomic(report, result.to_dict())
        click.echo(f"report: {report}")
    if not result.passed:
        raise VerificationError(f"verification failed: {result.summary()}")


#: quantization method of the model (:func:`hepfpga.quantize.methods.method_of_model`;
#: float models are ``qkeras``: hls4ml's general path) -> how ``firmware`` writes its project
_PROJECT_WRITERS = Registry[Callable[..., None]](
    "quantization method", {"qkeras": _write_general_project, "hgq": _write_hgq_project}
)
#: quantization method of the model -> how ``verify`` checks its firmware
_VERIFIERS = Registry[Callable[..., None]](
    "quantization method", {"qkeras": _verify_general, "hgq": _verify_hgq}
)

COMMANDS = (firmware_cmd, verify_cmd)
