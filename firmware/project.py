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

import contextlib
import ctypes
import errno
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga._version import __version__
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
    disk_full,
    file_system_error,
)
from hepfpga.firmware.data import validate_events
from hepfpga.firmware.hls_config import ConversionPlan, plan_conversion
from hepfpga.firmware.layers import handler_for
from hepfpga.firmware.layers.graph import UserNames
from hepfpga.firmware.options import Backend, FirmwareOptions
from hepfpga.firmware.precision import LayerPrecision
from hepfpga.firmware.rtl.report import HardwareReport
from hepfpga.firmware.vendor import BuildSteps

__all__ = ["FirmwareProject", "compile_project", "synthesize", "write_project"]

log = logging.getLogger("hepfpga.firmware.project")

#: seconds between two progress lines while g++ builds a C simulation
BUILD_PROGRESS_SECONDS = 15.0

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


def _readme(
    project_name: str,
    options: FirmwareOptions,
    hls_model: Any,
    logits: str,
    inputs: str = "",
    names: UserNames | None = None,
) -> str:
    # deferred: hls4ml and TensorFlow load slowly
    import hls4ml

    names = names if names is not None else UserNames({})
    rows = []
    for layer in hls_model.get_layers():
        types = ", ".join(
            f"{name}=`{t.precision}`"
            for name, t in layer.types.items()
            if name in ("result_t", "accum_t", "weight_t", "bias_t", "exp_table_t", "inv_table_t")
        )
        own = names.name(layer.name)
        label = own if own == layer.name else f"{own} (`{layer.name}` in the C++)"
        rows.append(f"| {label} | {layer.class_name} | {types} |")
    renamed = (
        "\nLayers whose names hls4ml cannot use (C++ identifiers, weight names found by "
        "substring) are renamed in the C++; the table names them as in the Keras model, "
        f"and `{CONFIG_FILE}` maps them (`user_names`).\n"
        if names
        else ""
    )
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

Input type: {inputs}.

The types are derived by hepfpga (`hepfpga.firmware.precision`, recorded per layer in
`{CONFIG_FILE}`). For a QKeras model they make the C simulation reproduce the logits (the
output of layer `{names.name(logits)}`) bit for bit: the input type rounds half to even and
saturates like the QKeras input quantizer, weights hold the QKeras-quantized values, sums are
exact and the quantized activations round and saturate as in QKeras. A float model's types are
proposed from profiled ranges and approximate it. Final softmax: `{options.softmax.value}`,
{options.softmax.info.outputs}. Every layer is traced in C simulation:
`hepfpga verify MODEL` (or `hepfpga.firmware.verify_model`) compares each with Keras and names
the first that parts; `record_verification` stores a comparison as `{VERIFICATION_FILE}` here.

## Types
{renamed}
| layer | class | types |
|---|---|---|
{chr(10).join(rows)}
"""


def write_project(
    model: Any,
    options: FirmwareOptions | None,
    out_dir: Path,
    *,
    testbench_inputs: np.ndarray | list[np.ndarray] | None = None,
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
    the rename (as :func:`compile_project` does, for wherever the folder ends up), so a
    compiled project appears whole or not at all. ``testbench_inputs`` (events x
    inputs, rounded to float32 as Keras does; a list of such arrays for a model with several
    inputs) and ``testbench_outputs`` (events x outputs, the reference predictions) become
    the testbench data in ``tb_data/``. The folder holds
    hls4ml's project, ``CONFIG_FILE`` and a ``README.md``. The C-simulation library is not
    built; call :func:`compile_project`.
    """
    # deferred: hls4ml and TensorFlow load slowly
    import hls4ml

    options = options if options is not None else FirmwareOptions()
    out_dir = Path(out_dir).absolute()
    check_destination(out_dir, overwrite=overwrite)
    n_inputs = sum(int(np.prod(tensor.shape[1:])) for tensor in model.inputs)
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
            _unshare_result_type(hls_model)
            hls_model.write()
            patch_sources(tmp, ready, hls_model, options)
        except HepfpgaError:
            raise
        except Exception as exc:  # hls4ml raises bare Exception
            if isinstance(exc, OSError) or disk_full(exc):  # the disk, not the model
                raise file_system_error(
                    exc, doing="writing the firmware project", path=out_dir
                ) from exc
            raise ConversionError(f"hls4ml could not convert the model: {exc}") from exc

        _write_metadata(
            tmp, options, hls_config, hls_model, logits, plan.precision, UserNames.of(ready)
        )
        yml = tmp / "hls4ml_config.yml"
        if yml.is_file():
            yml.write_text(yml.read_text(encoding="utf-8").replace(str(tmp), str(out_dir)))
        if compile:
            options.backend.info.check_simulation(options.io_type.value)
            compile_seconds = _build_library(tmp)
        check_destination(out_dir, overwrite=overwrite)  # again: it may have appeared meanwhile
        move_into_place(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty_parents(created)
        if isinstance(exc, OSError):
            raise file_system_error(
                exc, doing="writing the firmware project", path=out_dir
            ) from exc
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
        if compile_seconds is None:  # a backend whose build script hepfpga does not adapt
            return compile_project(project)
        _load_library(project)
        project.compile_seconds = compile_seconds
    return project


def _unshare_result_type(hls_model: Any) -> None:
    """Give ``result_t`` back to the model output alone.

    hls4ml names the type of the model's (single) output variable ``result_t`` when the
    layer writing it is created; an optimizer that then inserts layers after that layer (the
    TimeDistributed expansion: a wrapped layer and an end marker after the start marker)
    leaves two variables of different precisions under that one name, and g++ fails with
    "cannot convert 'layer4_t*' to 'ap_fixed<...>*'". A variable that is no model output gets
    hls4ml's usual name ``layer<index>_t`` back; precisions are unchanged.
    """
    outputs = set(hls_model.outputs)
    renamed = False
    for node in hls_model.get_layers():
        for name in node.outputs:
            variable = node.get_output_variable(output_name=name)
            if variable is not None and name not in outputs and variable.type.name == "result_t":
                variable.type.name = f"layer{node.index}_t"
                renamed = True
    if renamed:
        # the layers' C++ calls were formatted with the old name: format them again
        backend = hls_model.config.backend.name.lower()
        hls_model.apply_flow(f"{backend}:apply_templates", reapply="single")


#: the compiler's output of a failed C-simulation build, in the project folder
BUILD_LOG = "build_lib.log"

#: written into ``firmware/`` of a project hepfpga builds: the C simulation reads its weights
#: at run time (``nnet::load_weights_from_txt``, C simulation only) from ``WEIGHTS_DIR``, which
#: hls4ml's ``build_lib.sh`` sets to the absolute path of the folder it was built in; a
#: library built in a temporary folder, or in a folder moved since, then ends the process
#: (``exit(1)``) on its first call. This makes ``WEIGHTS_DIR`` the ``weights/`` folder next
#: to the loaded library, wherever the project now is.
WEIGHTS_DIR_HEADER = "hepfpga_weights_dir.h"
_WEIGHTS_DIR_CODE = """\
// Written by hepfpga: the C simulation finds its weights next to this library (see
// hepfpga.firmware.project). Not used in synthesis.
#ifndef HEPFPGA_WEIGHTS_DIR_H_
#define HEPFPGA_WEIGHTS_DIR_H_
#include <dlfcn.h>
#include <string>
static inline std::string hepfpga_weights_dir() {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&hepfpga_weights_dir), &info) && info.dli_fname) {
        std::string library(info.dli_fname);
        std::string::size_type slash = library.rfind('/');
        if (slash != std::string::npos) return library.substr(0, slash) + "/weights";
    }
    return "firmware/weights";
}
#endif
"""


#: the optimisation level of the C-simulation build (hls4ml's script: ``-O3``). The library
#: computes with ``ap_fixed`` integer arithmetic and IEEE float/double table set-up (no
#: ``-ffast-math``, ISO C++: no contraction), which every level compiles to the same values;
#: the level only trades g++ time against the simulation's speed. Measured on the example
#: runs' projects with ``benchmarks/build_time.py --project`` (same run, outputs bit for bit
#: identical at every level): see docs/firmware.md, "Build time".
BUILD_OPT_LEVEL = "O1"
_HLS4ML_CFLAGS = 'CFLAGS="-O3 -fPIC"'


def _relocatable_script(folder: Path, level: str = BUILD_OPT_LEVEL) -> str | None:
    """``folder``'s ``build_lib.sh`` with ``WEIGHTS_DIR`` found at run time and ``-<level>``
    for hls4ml's ``-O3``, or None when the script is not hls4ml's Vivado/Vitis template (one
    ``WEIGHTS_DIR=`` line)."""
    script = folder / "build_lib.sh"
    if not script.is_file():
        return None
    lines = script.read_text().split("\n")
    index = [i for i, line in enumerate(lines) if line.startswith("WEIGHTS_DIR=")]
    if len(index) != 1:
        return None
    lines[index[0]] = (
        f'WEIGHTS_DIR="hepfpga_weights_dir()"\nCFLAGS+=" -include firmware/{WEIGHTS_DIR_HEADER}"'
    )
    lines = [f'CFLAGS="-{level} -fPIC"' if line == _HLS4ML_CFLAGS else line for line in lines]
    return "\n".join(_parallel_units(lines))


def _parallel_units(lines: list[str]) -> list[str]:
    """The script's two translation units (the model, the ctypes bridge) compiled at once.

    The same commands and flags (the same object code), the model's in the background; with
    ``set -e`` a failure of either stops the script (``wait`` returns the job's status).
    Unchanged when the script is not hls4ml's template (one ``-c`` line for each unit).
    """
    model = [i for i, line in enumerate(lines) if "-c firmware/${PROJECT}.cpp" in line]
    bridge = [i for i, line in enumerate(lines) if "-c ${PROJECT}_bridge.cpp" in line]
    if len(model) != 1 or len(bridge) != 1 or bridge[0] < model[0] or "set -e" not in lines:
        return lines
    out = list(lines)
    out[bridge[0]] = f"{lines[bridge[0]]}\nwait $HEPFPGA_MODEL_UNIT"
    out[model[0]] = f"{lines[model[0]]} &\nHEPFPGA_MODEL_UNIT=$!"
    return out


@contextlib.contextmanager
def build_progress(what: str) -> Iterator[None]:
    """Log ``what`` (INFO, on stderr from the CLI; quiet under ``-q``), then the elapsed time
    every :data:`BUILD_PROGRESS_SECONDS` until the block ends, then the time it took. A
    thread that sleeps between the lines: the build itself is not touched."""
    log.info("%s", what)
    done = threading.Event()
    start = time.perf_counter()
    interval = BUILD_PROGRESS_SECONDS

    def tick() -> None:
        while not done.wait(interval):
            log.info("... g++ still building (%.0f s)", time.perf_counter() - start)

    thread = threading.Thread(target=tick, name="hepfpga-build-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    log.info("g++ finished in %.1f s", time.perf_counter() - start)


def _build_library(folder: Path) -> float | None:
    """Build the C-simulation library of the project in ``folder`` so that it works wherever
    the folder is moved afterwards; returns the seconds taken, or None if the project's build
    script is not one this can adapt (then hls4ml builds it)."""
    script = _relocatable_script(folder)
    if script is None:
        return None
    (folder / "firmware" / WEIGHTS_DIR_HEADER).write_text(_WEIGHTS_DIR_CODE)
    build = folder / ".hepfpga_build_lib.sh"
    build.write_text(script)
    start = time.perf_counter()
    try:
        with build_progress(
            f"g++ -{BUILD_OPT_LEVEL}: compiling the model and its ctypes bridge (two units at "
            "once), then linking the C simulation"
        ):
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
    if result.returncode != 0 and disk_full(result.stdout):
        raise file_system_error(
            OSError(errno.ENOSPC, "the compiler could not write its output"),
            doing="compiling the C simulation in",
            path=folder.parent,
        )
    if result.returncode != 0:
        # the whole compiler output, for whoever opens the project
        (folder / BUILD_LOG).write_text(result.stdout, encoding="utf-8")
        lines = result.stdout.strip().splitlines()
        # the compiler's first errors say what is wrong; its last lines are often warnings
        errors = [line for line in lines if " error: " in line][:3]
        tail = " | ".join(errors or lines[-8:])
        raise ConversionError(
            f"compiling the C simulation in {folder} failed (status {result.returncode}; "
            f"compiler output in {BUILD_LOG}): {tail}"
        )
    return time.perf_counter() - start


def _load_library(project: FirmwareProject) -> None:
    """Load the project's library into its hls4ml model, as hls4ml's ``compile()`` does
    (closing a library loaded before from the same path, which ``dlopen`` would reuse)."""

    config = project.hls_model.config
    stamp = config.get_config_value("Stamp")
    library = project.path / "firmware" / f"{config.get_project_name()}-{stamp}.so"
    if not library.is_file():
        raise ConversionError(f"the compiled C simulation {library} is missing")
    old = getattr(project.hls_model, "_top_function_lib", None)
    if old is not None:
        dlclose = ctypes.CDLL(None).dlclose
        dlclose.argtypes = [ctypes.c_void_p]
        dlclose(old._handle)
    project.hls_model._top_function_lib = ctypes.cdll.LoadLibrary(str(library))


def patch_sources(folder: Path, model: Any, hls_model: Any, options: FirmwareOptions) -> None:
    """Apply the layer handlers' edits of the sources ``hls_model`` wrote into ``folder`` for
    the layers of ``model`` (``LayerHandler.patch_sources``), then the backend's own
    (``HLSBackend.patch_project``: the convolutions' ``fill_buffer`` tables of Vivado, Vitis
    and Catapult, Quartus' softmax tables, Catapult's io_stream Concatenate); hls4ml
    rewrites the sources on every ``write()``, so this follows each one."""
    patches = []
    for layer in model.layers:
        patch = handler_for(layer).patch_sources
        if patch is not None and patch not in patches:
            patches.append(patch)
    for patch in patches:
        patch(Path(folder))
    for backend_patch in options.backend.info.patch_project:
        backend_patch(hls_model, Path(folder))


def _flat(values: Any) -> np.ndarray | None:
    """Events as rows: an image or sequence input (n, ...) becomes (n, prod(...)); the arrays
    of a model with several inputs (a list) are joined per event in input order, as hls4ml's
    test bench reads them (one line per event, the inputs one after the other)."""
    if values is None:
        return None
    if isinstance(values, (list, tuple)):
        rows = [np.asarray(a).reshape(len(a), -1) for a in values]
        return np.concatenate(rows, axis=1) if rows else None
    array = np.asarray(values)
    return array.reshape(len(array), -1) if array.ndim > 2 else array


def _write_metadata(
    folder: Path,
    options: FirmwareOptions,
    hls_config: dict[str, Any],
    hls_model: Any,
    logits: str,
    precision: dict[str, LayerPrecision],
    names: UserNames,
) -> None:
    # deferred: hls4ml and TensorFlow load slowly
    import hls4ml

    record = {
        "hls4ml_version": hls4ml.__version__,
        "options": options.to_dict(),
        "hls_config": hls_config,
        "logits_layer": logits,
        "precision": {name: types.to_dict() for name, types in precision.items()},
        # hls4ml name -> the user's, for the layers renamed for hls4ml (UserNames)
        "user_names": names.renamed,
    }
    (folder / CONFIG_FILE).write_text(dumps_strict(record, indent=2, sort_keys=True) + "\n")
    inputs = "; ".join(
        f"`{names.name(name)}` `{types.result.to_hls()}` ({types.source})"
        for name, types in precision.items()
        if types.class_name == "InputLayer"
    )
    (folder / "README.md").write_text(
        _readme(options.project_name, options, hls_model, logits, inputs, names)
    )


def compile_project(project: FirmwareProject) -> FirmwareProject:
    """Build the C-simulation library of ``project`` with g++ and load it.

    hls4ml regenerates the sources in the project folder (identical content) before building,
    as its ``compile()`` does. For the Vivado/Vitis build script the library finds its weights
    next to itself (:data:`WEIGHTS_DIR_HEADER`), so the folder may be moved or renamed
    afterwards (a run folder is); other backends are built by hls4ml for their folder as it is.
    The time taken is stored in ``project.compile_seconds``.
    """
    if Path(project.hls_model.config.get_output_dir()) != project.path:
        raise ConversionError(
            f"the hls4ml model writes to {project.hls_model.config.get_output_dir()}, "
            f"not to the project folder {project.path}"
        )
    project.options.backend.info.check_simulation(project.options.io_type.value)
    start = time.perf_counter()
    try:
        project.hls_model.write()
        patch_sources(project.path, project.keras_model, project.hls_model, project.options)
        built = _build_library(project.path)
        if built is None:
            with build_progress(f"hls4ml builds the C simulation of {project.path.name} (g++)"):
                # hls4ml 1.3's compile() is write() + _compile(): writing again would undo
                # patch_sources (the Quartus softmax tables, GarNet's distances)
                project.hls_model._compile()
        else:
            _load_library(project)
    except HepfpgaError:
        raise
    except Exception as exc:
        if isinstance(exc, OSError) or disk_full(exc):  # the disk, not the model
            raise file_system_error(
                exc, doing="compiling the C simulation in", path=project.path
            ) from exc
        raise ConversionError(
            f"compiling the C simulation of {project.path} failed: {exc}. "
            "Run ./build_lib.sh in that folder to see the compiler output."
        ) from exc
    project.compile_seconds = time.perf_counter() - start
    return project


def synthesize(project: FirmwareProject, steps: BuildSteps | None = None) -> HardwareReport:
    """Run the vendor HLS flow (default: C synthesis only) and return its typed report.

    The backend's registered tools are used (:mod:`hepfpga.firmware.backends`, e.g.
    ``vitis-run``/``vitis_hls`` for Vitis, ``vivado_hls`` for Vivado); without one on PATH
    :class:`~hepfpga.errors.MissingDependencyError` names them. Logs go to
    ``build_stdout.log`` in the project folder.
    """
    return project.backend.info.build(project.path, steps or BuildSteps())
