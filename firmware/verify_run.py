"""The run of a verification: the project of the plan (the caller's, the cache's, or written
and compiled here) and its C simulation of the events, every traced layer included.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.firmware.cache import cached_project
from hepfpga.firmware.csim import predict_outputs_and_traces
from hepfpga.firmware.hls_config import ConversionPlan
from hepfpga.firmware.layers._base import traced_name
from hepfpga.firmware.layers.graph import SPLIT_OUTPUT_SUFFIXES
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.project import FirmwareProject, compile_project, write_project

log = logging.getLogger("hepfpga.firmware.verify")

__all__ = ["Simulation", "simulate"]


@dataclass
class Simulation:
    """The C simulation of the events by the project of a plan."""

    project: FirmwareProject
    #: every output of the firmware, ``(events, size)`` per model output
    outputs: list[np.ndarray]
    #: every traced layer's output, by the Keras layer's name
    traces: dict[str, np.ndarray]
    #: hls4ml's model of the project (its layers' types)
    hls_model: Any
    #: seconds of the ``build`` (or cache look-up) and of the ``csim``
    seconds: dict[str, float]


def simulate(
    plan: ConversionPlan,
    options: FirmwareOptions,
    events: Any,
    *,
    cache: bool = True,
    cache_directory: str | Path | None = None,
    project: FirmwareProject | None = None,
    progress: Callable[[str], None] | None = None,
) -> Simulation:
    """Run the C simulation of ``plan`` on ``events``: with ``project`` (the caller's project
    of the model, compiled here if needed), else the cache's (:mod:`hepfpga.firmware.cache`)
    unless ``cache`` is false, else a project written and compiled in a temporary folder.
    ``progress``: see :func:`~hepfpga.firmware.verify.verify_model`."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    given = project
    advice = plan.size_advice(options)
    if advice is not None and given is None:
        log.warning("%s", advice)
    if progress is not None and given is None:
        # the build itself logs its progress (hepfpga.firmware.project.build_progress)
        progress(
            f"C simulation of {plan.multiplications:,} multiplications per event: from the "
            "cache or built with g++"
        )
    with tempfile.TemporaryDirectory(prefix="hepfpga-verify-") as tmp:
        if given is not None:  # the caller's project of this model (e.g. a run's firmware/)
            if not given.compiled:
                compile_project(given)
            project = given
        elif cache:
            project = cached_project(plan, options, cache_directory)
        else:
            project = write_project(plan.model, options, Path(tmp) / "project", plan=plan)
            compile_project(project)
        seconds["build"] = time.perf_counter() - start

        start = time.perf_counter()
        outputs, traces = predict_outputs_and_traces(project, events)
        seconds["csim"] = time.perf_counter() - start
        _name_traces_by_layer(plan.model, traces)
        hls_model = project.hls_model
    return Simulation(project, outputs, traces, hls_model, seconds)


def _name_traces_by_layer(ready: Any, traces: dict[str, np.ndarray]) -> None:
    # hls4ml splits a linear built-in activation off as '<name>_linear', and a separable
    # convolution into '<name>_depthwise' and '<name>_pointwise'; the output of the last
    # part is the layer's output
    for layer in ready.layers:
        for suffix in SPLIT_OUTPUT_SUFFIXES:
            if f"{layer.name}{suffix}" in traces:
                traces[layer.name] = traces.pop(f"{layer.name}{suffix}")
        # TimeDistributed's output is that of its end marker '<name>_end'
        alias = traced_name(layer)
        if alias != layer.name and alias in traces:
            traces[layer.name] = traces.pop(alias)
