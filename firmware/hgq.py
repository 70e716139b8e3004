"""Firmware of HGQ models: hls4ml projects built from HGQ's proxy model, and their bit-exact
verification.

The proxy model (:func:`hepfpga.quantize.hgq.proxy_model`) carries every type: each
``FixedPointQuantizer`` holds the fixed-point type of every element it quantizes (per
weight, per activation), which hls4ml 1.3.0 fuses into the type of the layer before it
(its ``hgq_proxy_model`` passes); accumulators and weights get the ``auto`` types hls4ml
derives from them, wide enough to be exact. hepfpga therefore derives no type here: the
``hls_config`` is hls4ml's own (``granularity='name'``) with the run's strategy and reuse
factor. The firmware computes the proxy model's outputs bit for bit, wrapping (``AP_WRAP``)
where the proxy wraps; :func:`verify_hgq_model` checks exactly that on the given events.
"""

from __future__ import annotations

import shutil
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
from hepfpga.errors import ConversionError, HepfpgaError, disk_full, file_system_error
from hepfpga.firmware import csim
from hepfpga.firmware.hls_config import parsed_hls_config
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.project import CONFIG_FILE, FirmwareProject
from hepfpga.quantize.hgq import ebops, proxy_model

__all__ = ["HGQVerification", "hgq_hls_config", "verify_hgq_model", "write_hgq_project"]


def hgq_hls_config(proxy: Any, options: FirmwareOptions) -> dict[str, Any]:
    """hls4ml's ``hls_config`` of a proxy model: its own (types ``auto``, set from the
    ``FixedPointQuantizer`` layers), every layer traced (C simulation only), the strategy
    and reuse factor of ``options``."""
    config = parsed_hls_config(proxy, options, "the HGQ proxy model")
    for entry in config["LayerName"].values():
        entry["Trace"] = True
    return config


def write_hgq_project(
    model: Any,
    options: FirmwareOptions | None,
    out_dir: Path,
    *,
    calibration: Any = None,
    compile: bool = False,
    overwrite: bool = False,
) -> FirmwareProject:
    """Write (atomically, as :func:`hepfpga.firmware.project.write_project` does) the hls4ml
    project of the HGQ ``model`` (or of its proxy model) into ``out_dir``.

    ``calibration``: events whose activation ranges set the integer bits of the activation
    types (needed for a model loaded from a file, whose traced ranges are not saved).
    ``compile=True`` builds the C simulation in the final folder afterwards (hls4ml's build
    compiles the folder's absolute path in: the project stays where it was written). The
    returned project's ``keras_model`` is the proxy model, the reference of the firmware.
    """
    # deferred: hls4ml and TensorFlow load slowly
    import hls4ml

    options = options if options is not None else FirmwareOptions()
    out_dir = Path(out_dir).absolute()
    check_destination(out_dir, overwrite=overwrite)
    proxy = proxy_model(model, calibration)
    config = hgq_hls_config(proxy, options)
    tmp, created = make_partial_directory(out_dir)
    try:
        try:
            hls_model = hls4ml.converters.convert_from_keras_model(
                proxy,
                hls_config=config,
                output_dir=str(tmp),
                project_name=options.project_name,
                backend=options.backend.info.hls4ml_name,
                io_type=options.io_type.value,
                part=options.effective_part,
                clock_period=options.clock_period,
            )
            hls_model.config.trace_output = True
            hls_model.write()
        except HepfpgaError:
            raise
        except Exception as exc:  # hls4ml raises bare Exception
            if isinstance(exc, OSError) or disk_full(exc):
                raise file_system_error(
                    exc, doing="writing the firmware project", path=out_dir
                ) from exc
            raise ConversionError(f"hls4ml could not convert the HGQ proxy model: {exc}") from exc
        record = {
            "hls4ml_version": hls4ml.__version__,
            "quantization": "hgq (proxy model)",
            "ebops": ebops(model),
            "options": options.to_dict(),
            "hls_config": config,
            "logits_layer": str(hls_model.outputs[0]),
        }
        (tmp / CONFIG_FILE).write_text(dumps_strict(record, indent=2, sort_keys=True) + "\n")
        yml = tmp / "hls4ml_config.yml"
        if yml.is_file():
            yml.write_text(yml.read_text(encoding="utf-8").replace(str(tmp), str(out_dir)))
        check_destination(out_dir, overwrite=overwrite)
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
    project = FirmwareProject(
        path=out_dir,
        hls_model=hls_model,
        hls_config=config,
        options=options,
        logits_layer=str(hls_model.outputs[0]),
        quantized=True,
        keras_model=proxy,
    )
    if compile:
        compile_hgq_project(project)
    return project


def compile_hgq_project(project: FirmwareProject) -> FirmwareProject:
    """Build and load the C simulation of an HGQ project (hls4ml's ``compile()``, in the
    project folder); the time taken is stored in ``project.compile_seconds``."""
    start = time.perf_counter()
    try:
        project.hls_model.compile()
    except Exception as exc:
        if isinstance(exc, OSError) or disk_full(exc):
            raise file_system_error(
                exc, doing="compiling the C simulation in", path=project.path
            ) from exc
        raise ConversionError(
            f"compiling the C simulation of {project.path} failed: {exc}. "
            "Run ./build_lib.sh in that folder to see the compiler output."
        ) from exc
    project.compile_seconds = time.perf_counter() - start
    return project


@dataclass
class HGQVerification:
    """The C simulation of an HGQ model's firmware against its proxy model, output by output.

    Bit-exact means equal as numbers: both are values of the output's fixed-point type."""

    model: str
    n_events: int
    #: events whose every output the C simulation reproduces exactly
    n_exact: int
    #: largest |C simulation - proxy model| over all outputs
    max_difference: float
    #: HGQ's EBOPs of the model (its resource estimate)
    ebops: float
    project: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.n_events > 0 and self.n_exact == self.n_events

    @property
    def requirement(self) -> str:
        return "bit-exact outputs against the HGQ proxy model"

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}: {self.model} (HGQ, {self.ebops:,.0f} EBOPs): C simulation bit-exact "
            f"with the proxy model on {self.n_exact} of {self.n_events} events "
            f"(largest difference {self.max_difference:g}); requirement: {self.requirement}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "quantization": "hgq",
            "n_events": self.n_events,
            "n_exact": self.n_exact,
            "max_difference": self.max_difference,
            "ebops": self.ebops,
            "project": self.project,
            "passed": self.passed,
            "requirement": self.requirement,
            "seconds": dict(self.seconds),
        }


def verify_hgq_model(
    model: Any,
    x: Any,
    options: FirmwareOptions | None = None,
    *,
    out_dir: Path,
    calibrate: bool = True,
    project: FirmwareProject | None = None,
) -> HGQVerification:
    """Build (into ``out_dir``) and compile the firmware of the HGQ ``model``, run its C
    simulation and the proxy model on the events ``x`` and count the events whose outputs
    are identical. ``calibrate``: trace the activation ranges on ``x`` first (needed for a
    model loaded from a file); ``project``: an already compiled project of ``model``."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if project is None:
        project = write_hgq_project(
            model, options, out_dir, calibration=x if calibrate else None, compile=True
        )
    elif not project.compiled:
        compile_hgq_project(project)
    seconds["build"] = time.perf_counter() - start
    start = time.perf_counter()
    reference = np.asarray(project.keras_model.predict(x, verbose=0), dtype=np.float64)
    seconds["keras"] = time.perf_counter() - start
    start = time.perf_counter()
    firmware = np.asarray(csim.predict(project, x), dtype=np.float64).reshape(reference.shape)
    seconds["csim"] = time.perf_counter() - start
    difference = np.abs(firmware - reference).reshape(len(x), -1)
    return HGQVerification(
        model=str(getattr(model, "name", "model")),
        n_events=len(x),
        n_exact=int(np.sum(np.all(difference == 0, axis=1))),
        max_difference=float(difference.max()) if difference.size else 0.0,
        ebops=ebops(model),
        project=str(project.path),
        seconds=seconds,
    )
