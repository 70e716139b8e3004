"""Writing, compiling and synthesizing hls4ml projects.

A project folder is written atomically: hls4ml writes into a hidden temporary folder next to
the destination, which is renamed into place only once every file is there. hls4ml records
absolute paths in ``hls4ml_config.yml`` and in its in-memory config (``OutputDir``, testbench
files); both are pointed at the final folder before and after the rename, so
:func:`compile_project` (which regenerates the sources in place and runs ``build_lib.sh``)
works in the final folder. The C-simulation library itself is built only by
:func:`compile_project`, never copied, because ``build_lib.sh`` compiles the folder's absolute
path into it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.artifacts import (
    check_destination,
    dumps_strict,
    make_partial_directory,
    move_into_place,
    remove_empty_parents,
)
from hepfpga.errors import (
    ConversionError,
    DataError,
    HepfpgaError,
    MissingDependencyError,
)
from hepfpga.firmware.data import validate_events
from hepfpga.firmware.hls_config import ConversionPlan, plan_conversion
from hepfpga.firmware.options import Backend, FirmwareOptions
from hepfpga.firmware.precision import LayerPrecision

__all__ = ["FirmwareProject", "compile_project", "synthesize", "write_project"]

#: the exact hls4ml configuration used, next to hls4ml's own files
CONFIG_FILE = "hepfpga_hls_config.json"
#: written by hepfpga.firmware.verify.record_verification
VERIFICATION_FILE = "verification.json"
TB_INPUTS = "tb_data/tb_input_features.npy"
TB_OUTPUTS = "tb_data/tb_output_predictions.npy"


@dataclass
class FirmwareProject:
    """An hls4ml project folder and the hls4ml ``ModelGraph`` it was written from."""

    path: Path
    #: the hls4ml ``ModelGraph``; its ``OutputDir`` is ``path``
    hls_model: Any
    #: the ``hls_config`` dict given to hls4ml (also saved in ``CONFIG_FILE``)
    hls_config: dict[str, Any]
    options: FirmwareOptions
    #: hls4ml name of the layer whose output are the logits (traced in C simulation)
    logits_layer: str
    #: seconds the last :func:`compile_project` took; None until compiled
    compile_seconds: float | None = field(default=None)
    #: the derived types per layer (see :mod:`hepfpga.firmware.precision`)
    precision: dict[str, LayerPrecision] = field(default_factory=dict)
    #: whether the model was a QKeras model (exact types) or a float one (profiled types)
    quantized: bool = True
    #: the model hls4ml converted (pruning stripped, reserved names renamed)
    keras_model: Any = None
    #: whether the compiled library came from the cache (:mod:`hepfpga.firmware.cache`)
    from_cache: bool = False

    @property
    def backend(self) -> Backend:
        return self.options.backend

    @property
    def compiled(self) -> bool:
        return self.compile_seconds is not None


def _check_array(values: np.ndarray | None, name: str, width: int) -> np.ndarray | None:
    if values is None:
        return None
    return validate_events(values, width, name=name, flat=True)


def _readme(project_name: str, options: FirmwareOptions, hls_model: Any, logits: str) -> str:
    import hls4ml

    from hepfpga import __version__

    rows = []
    for layer in hls_model.get_layers():
        types = ", ".join(
            f"{name}=`{t.precision}`"
            for name, t in layer.types.items()
            if name in ("result_t", "accum_t", "weight_t", "bias_t", "exp_table_t", "inv_table_t")
        )
        rows.append(f"| {layer.name} | {layer.class_name} | {types} |")
    info = options.backend.info
    build = "\n".join(info.build_commands)
    return f"""# {project_name}: hls4ml firmware written by hepfpga

Written by hepfpga {__version__} with hls4ml {hls4ml.__version__}.

- backend {options.backend.value}, {options.io_type.value}, strategy {options.strategy.value}
- part `{options.effective_part}`, clock period {options.clock_period} ns
- reuse factor {options.reuse_factor}

`{CONFIG_FILE}` holds the exact configuration given to hls4ml;
`hls4ml_config.yml` is hls4ml's own record of it.

## Build

C simulation library (what hepfpga uses to verify the firmware; needs only g++):

    ./build_lib.sh

Synthesis with the vendor tool ({" or ".join(info.tools)} on PATH), in this folder:

    {build.replace(chr(10), chr(10) + "    ")}

For Vitis the steps run (csim, synth, cosim, ...) are switched in `build_opt.tcl`.
`tb_data/` holds the testbench inputs and the reference (QKeras) outputs that the
C/RTL co-simulation compares against, as `.dat` for the testbench and `.npy`.

## What is verified

The types are derived by hepfpga (`hepfpga.firmware.precision`, recorded per layer in
`{CONFIG_FILE}`). For a QKeras model they make the C simulation reproduce the logits (the
output of layer `{logits}`) bit for bit: the input type rounds half to even and saturates like
the QKeras input quantizer, weights hold the QKeras-quantized values, sums are exact and the
quantized activations round and saturate as in QKeras. A float model's types are proposed from
profiled ranges and approximate it. Final softmax: `{options.softmax.value}`,
{options.softmax.info.outputs}. Every layer is traced in C simulation:
`hepfpga verify MODEL` (or `hepfpga.firmware.verify_model`) compares each with Keras and names
the first that parts; `record_verification` stores a comparison as `{VERIFICATION_FILE}` here.

## Types

| layer | class | types |
|---|---|---|
{chr(10).join(rows)}
"""


def write_project(
    model: Any,
    options: FirmwareOptions | None,
    out_dir: Path,
    *,
    testbench_inputs: np.ndarray | None = None,
    testbench_outputs: np.ndarray | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
    plan: ConversionPlan | None = None,
    compile: bool = False,
    overwrite: bool = False,
) -> FirmwareProject:
    """Convert a QKeras model with hls4ml and write the project folder ``out_dir`` atomically.

    Float (non-QKeras) models need ``ranges`` (profiled, see
    :func:`hepfpga.firmware.precision.profile_ranges`) to choose their types; ``plan`` (from
    :func:`hepfpga.firmware.hls_config.plan_conversion`) skips deriving the types again.

    ``out_dir`` must not exist or be an empty folder unless ``overwrite`` (then it is replaced
    once the new project is complete); missing parents are created
    (:func:`hepfpga.artifacts.check_destination`). On any failure, or a kill, nothing is left
    at ``out_dir``; a kill leaves a ``.NAME.*.partial`` folder beside it that the next write
    removes. ``compile=True`` builds the C-simulation library in the temporary folder before
    the rename (as :func:`compile_project` would), so a compiled project appears whole or not
    at all. ``testbench_inputs`` (events x
    inputs, rounded to float32 as Keras does) and ``testbench_outputs`` (events x outputs, the
    reference predictions) become the testbench data in ``tb_data/``. The folder holds
    hls4ml's project, ``CONFIG_FILE`` and a ``README.md``. The C-simulation library is not
    built; call :func:`compile_project`.
    """
    import hls4ml

    options = options if options is not None else FirmwareOptions()
    out_dir = Path(out_dir).absolute()
    check_destination(out_dir, overwrite=overwrite)
    n_inputs = int(np.prod(model.inputs[0].shape[1:]))
    n_outputs = int(np.prod(model.outputs[0].shape[1:]))
    tb_inputs = _check_array(_flat(testbench_inputs), "testbench_inputs", n_inputs)
    tb_outputs = _check_array(_flat(testbench_outputs), "testbench_outputs", n_outputs)
    if tb_outputs is not None and (tb_inputs is None or len(tb_inputs) != len(tb_outputs)):
        raise DataError("testbench_outputs need testbench_inputs with the same number of events")

    plan = plan if plan is not None else plan_conversion(model, options, ranges=ranges)
    hls_config, ready, logits = plan.hls_config, plan.model, plan.logits_layer

    tmp, created = make_partial_directory(out_dir)
    compile_seconds: float | None = None
    try:
        tb_paths = {}
        for key, array, rel in (
            ("InputData", tb_inputs, TB_INPUTS),
            ("OutputPredictions", tb_outputs, TB_OUTPUTS),
        ):
            if array is not None:
                (tmp / rel).parent.mkdir(exist_ok=True)
                # float32 is what the Keras model computes with; its shortest decimal form,
                # which hls4ml writes to the .dat files, reads back to the same value
                np.save(tmp / rel, np.asarray(array, dtype=np.float32))
                tb_paths[key] = rel
        try:
            hls_model = hls4ml.converters.convert_from_keras_model(
                ready,
                hls_config=hls_config,
                output_dir=str(tmp),
                project_name=options.project_name,
                backend=options.backend.info.hls4ml_name,
                io_type=options.io_type.value,
                part=options.effective_part,
                clock_period=options.clock_period,
                input_data_tb=str(tmp / TB_INPUTS) if "InputData" in tb_paths else None,
                output_data_tb=str(tmp / TB_OUTPUTS) if "OutputPredictions" in tb_paths else None,
            )
            # hls4ml reads TraceOutput from its top-level config only (the hls_config's
            # Model.TraceOutput is ignored): compile the trace code of the layers marked Trace
            # (the logits), which is C-simulation only (#ifndef __SYNTHESIS__)
            hls_model.config.trace_output = True
            hls_model.write()
        except HepfpgaError:
            raise
        except Exception as exc:  # hls4ml raises bare Exception
            raise ConversionError(f"hls4ml could not convert the model: {exc}") from exc

        _write_metadata(tmp, options, hls_config, hls_model, logits, plan.precision)
        yml = tmp / "hls4ml_config.yml"
        if yml.is_file():
            yml.write_text(yml.read_text(encoding="utf-8").replace(str(tmp), str(out_dir)))
        if compile and _can_build_for(tmp):
            compile_seconds = _build_library(tmp, out_dir)
        check_destination(out_dir, overwrite=overwrite)  # again: it may have appeared meanwhile
        move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty_parents(created)
        raise

    hls_model.config.config["OutputDir"] = str(out_dir)
    for key, rel in tb_paths.items():
        hls_model.config.config[key] = str(out_dir / rel)
    project = FirmwareProject(
        path=out_dir,
        hls_model=hls_model,
        hls_config=hls_config,
        options=options,
        logits_layer=logits,
        precision=plan.precision,
        quantized=plan.quantized,
        keras_model=ready,
    )
    if compile:
        if compile_seconds is None:  # a backend whose build script cannot target out_dir
            return compile_project(project)
        _load_library(project)
        project.compile_seconds = compile_seconds
    return project


def _can_build_for(folder: Path) -> bool:
    """Whether ``folder``'s ``build_lib.sh`` takes its base folder from one ``BASEDIR=`` line
    (hls4ml's Vivado/Vitis template), so it can be built for another path."""
    script = folder / "build_lib.sh"
    return script.is_file() and script.read_text().count("\nBASEDIR=") == 1


def _build_library(folder: Path, final: Path) -> float:
    """Run ``folder``'s ``build_lib.sh`` as if the project were already at ``final``.

    The library reads its weights at run time from ``WEIGHTS_DIR``, which the script sets to
    the absolute path of its own folder; pointing ``BASEDIR`` at ``final`` instead makes the
    library built here right once the folder is renamed there. Returns the seconds taken.
    """
    script = (folder / "build_lib.sh").read_text()
    lines = [
        f"BASEDIR={shlex.quote(str(final))}" if line.startswith("BASEDIR=") else line
        for line in script.split("\n")
    ]
    build = folder / ".hepfpga_build_lib.sh"
    build.write_text("\n".join(lines))
    start = time.perf_counter()
    try:
        result = subprocess.run(
            ["bash", build.name],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    finally:
        build.unlink(missing_ok=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-20:])
        raise ConversionError(
            f"compiling the C simulation for {final} failed (g++ status {result.returncode}):"
            f"\n{tail}"
        )
    return time.perf_counter() - start


def _load_library(project: FirmwareProject) -> None:
    """Load the library :func:`_build_library` built into the hls4ml model, as its
    ``compile()`` does after building."""
    import ctypes

    config = project.hls_model.config
    library = (
        project.path
        / "firmware"
        / f"{config.get_project_name()}-{config.get_config_value('Stamp')}.so"
    )
    if not library.is_file():
        raise ConversionError(f"the compiled C simulation {library} is missing")
    project.hls_model._top_function_lib = ctypes.cdll.LoadLibrary(str(library))


def _flat(values: np.ndarray | None) -> np.ndarray | None:
    """Events as rows: an image or sequence input (n, ...) becomes (n, prod(...))."""
    if values is None:
        return None
    array = np.asarray(values)
    return array.reshape(len(array), -1) if array.ndim > 2 else array


def _write_metadata(
    folder: Path,
    options: FirmwareOptions,
    hls_config: dict[str, Any],
    hls_model: Any,
    logits: str,
    precision: dict[str, LayerPrecision],
) -> None:
    import hls4ml

    record = {
        "hls4ml_version": hls4ml.__version__,
        "options": options.to_dict(),
        "hls_config": hls_config,
        "logits_layer": logits,
        "precision": {name: types.to_dict() for name, types in precision.items()},
    }
    (folder / CONFIG_FILE).write_text(dumps_strict(record, indent=2, sort_keys=True) + "\n")
    (folder / "README.md").write_text(_readme(options.project_name, options, hls_model, logits))


def compile_project(project: FirmwareProject) -> FirmwareProject:
    """Build the C-simulation library of ``project`` with g++ and load it.

    hls4ml regenerates the sources in the project folder (identical content) before building.
    The time taken is stored in ``project.compile_seconds``.
    """
    if Path(project.hls_model.config.get_output_dir()) != project.path:
        raise ConversionError(
            f"the hls4ml model writes to {project.hls_model.config.get_output_dir()}, "
            f"not to the project folder {project.path}"
        )
    start = time.perf_counter()
    try:
        project.hls_model.compile()
    except Exception as exc:
        raise ConversionError(
            f"compiling the C simulation of {project.path} failed: {exc}. "
            "Run ./build_lib.sh in that folder to see the compiler output."
        ) from exc
    project.compile_seconds = time.perf_counter() - start
    return project


def synthesize(project: FirmwareProject) -> dict[str, Any]:
    """Run HLS synthesis with the vendor tool and return hls4ml's parsed report.

    Needs ``vitis-run`` or ``vitis_hls`` (Vitis backend) or ``vivado_hls`` (Vivado) on PATH;
    raises :class:`~hepfpga.errors.MissingDependencyError` otherwise. Logs go to
    ``build_stdout.log`` in the project folder.
    """
    info = project.backend.info
    available = [
        command
        for tool, command in zip(info.tools, info.build_commands, strict=True)
        if shutil.which(tool)
    ]
    if not available:
        raise MissingDependencyError(
            f"synthesis for the {project.backend.value} backend needs {' or '.join(info.tools)} "
            "on PATH, and none is there; install AMD/Xilinx "
            f"{'Vitis' if project.backend is Backend.VITIS else 'Vivado'} HLS and source its "
            "settings64.sh"
        )
    command = available[0]
    if project.backend is Backend.VITIS:
        (project.path / "build_opt.tcl").write_text(
            "array set opt {\n    reset 1\n    csim 0\n    synth 1\n    cosim 0\n"
            "    validation 0\n    export 0\n    vsynth 0\n    fifo_opt 0\n}\n"
        )
    log = project.path / "build_stdout.log"
    with log.open("w") as stream:
        result = subprocess.run(
            command, shell=True, cwd=project.path, stdout=stream, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        raise ConversionError(f"'{command}' failed with status {result.returncode}; see {log}")
    from hls4ml.report import parse_vivado_report

    return parse_vivado_report(str(project.path)) or {}
