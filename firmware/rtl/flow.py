"""The open-tool hardware flow: QKeras model -> RTL -> bit-exact RTL simulation -> yosys.

:func:`build_hardware` is the library function behind ``hepfpga hardware``: it traces the
model (:mod:`~hepfpga.firmware.rtl.trace`), writes the pipelined Verilog
(:mod:`~hepfpga.firmware.rtl.codegen`), simulates the events with Verilator
(:mod:`~hepfpga.firmware.rtl.sim`) and compares every output bit for bit with the QKeras logits
(and, when given, with the ``hepfpga emulate`` engine's logits), measures the latency from the
simulation, and synthesizes with yosys (:mod:`~hepfpga.firmware.rtl.synth`). The result is a
:class:`~hepfpga.firmware.rtl.report.HardwareReport`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import DataError, ToolTimeoutError
from hepfpga.firmware.rtl.codegen import DEFAULT_LATENCY_CUTOFF, RTLProject, write_rtl
from hepfpga.firmware.rtl.hgq import trace_hgq_model
from hepfpga.firmware.rtl.report import HardwareReport, Latency, Resources, RTLCheck, Timing
from hepfpga.firmware.rtl.sim import build_simulator, check_rtl, measured_latency
from hepfpga.firmware.rtl.synth import synthesize
from hepfpga.firmware.rtl.trace import TracedNetwork, trace_model
from hepfpga.firmware.verify import keras_outputs_with_logits
from hepfpga.quantize.hgq import ebops, proxy_model
from hepfpga.quantize.methods import method_of_model
from hepfpga.registry import Registry

__all__ = [
    "DEFAULT_SYNTH_TIMEOUT_S",
    "RTL_METHODS",
    "HardwareBuild",
    "RTLMethod",
    "build_hardware",
    "stress_events",
    "synthesized_resources",
]

log = logging.getLogger("hepfpga.firmware.rtl")


@dataclass
class HardwareBuild:
    """What :func:`build_hardware` made: the report, the traced network and the RTL project."""

    report: HardwareReport
    network: TracedNetwork
    project: RTLProject
    #: RTL outputs (logits) of the simulated events, aligned with them
    outputs: np.ndarray


@dataclass(frozen=True)
class RTLMethod:
    """How the RTL flow handles the models of one quantization method."""

    #: ``(model, calibration events) -> the model the RTL reproduces`` (its reference)
    reference: Callable[[Any, Any], Any]
    #: ``reference model -> TracedNetwork``
    trace: Callable[[Any], TracedNetwork]
    #: what the RTL outputs are compared with, for the report
    label: str
    #: ``(model, reference) -> the method's own resource estimate`` (None: it has none)
    estimate: Callable[[Any, Any], float | None] = lambda model, reference: None


def _hgq_estimate(model: Any, reference: Any) -> float | None:
    cost = ebops(model)  # after proxy_model's trace_minmax; 0 for a loaded proxy model
    return cost if cost > 0 else None


#: quantization method (:data:`hepfpga.quantize.methods.QUANTIZATION_METHODS`) -> its RTL
#: handling: QKeras models are traced as they are; HGQ models through their proxy model,
#: its activation ranges traced on the simulated events (a loaded proxy model as it is)
RTL_METHODS = Registry[RTLMethod](
    "quantization method",
    {
        "qkeras": RTLMethod(lambda model, events: model, trace_model, "QKeras logits"),
        "hgq": RTLMethod(
            lambda model, events: proxy_model(model, np.asarray(events, dtype=np.float32)),
            trace_hgq_model,
            "HGQ proxy model logits",
            _hgq_estimate,
        ),
    },
)


def stress_events(net: TracedNetwork, n: int, seed: int = 0) -> np.ndarray:
    """``n`` events spread uniformly over the input type's whole range (plus a margin that
    saturates), which reach rounding ties and saturation in every layer."""
    rng = np.random.default_rng(seed)
    t = net.input_type
    span = t.max_value - t.min_value
    return rng.uniform(
        t.min_value - 0.05 * span, t.max_value + 0.05 * span, size=(n, *net.input_shape)
    )


#: yosys' time limit in seconds (``hardware.synthesis_timeout_s``): a large network with the
#: PyPI (WebAssembly) yosys on a loaded 2-core machine took 19 minutes
DEFAULT_SYNTH_TIMEOUT_S = 1800.0


def synthesized_resources(
    project: RTLProject,
    *,
    family: str,
    part: str,
    timeout_s: float,
    seconds: dict[str, float],
    notes: list[str],
) -> Resources | None:
    """yosys' resource counts of ``project``, or None with a note in ``notes`` when yosys ran
    past ``timeout_s`` (the figures are missing; nothing else of the build is lost)."""
    try:
        result = synthesize(project, family=family, timeout_s=timeout_s)
    except ToolTimeoutError as exc:
        seconds["synthesis"] = exc.seconds
        notes.append(
            f"no resource counts: {exc}; the RTL, its simulation and the latency are kept "
            "(give yosys longer with hardware.synthesis_timeout_s / --synth-timeout, or run "
            "it on a quieter machine)"
        )
        log.warning("%s: the hardware report has no resource counts", exc)
        return None
    seconds["synthesis"] = result.seconds
    return Resources(
        lut=result.lut,
        ff=result.ff,
        dsp=result.dsp,
        bram=result.bram,
        part=part,
        carry=result.carry,
        source=f"{result.tool} (yosys figures, not Vivado place-and-route)",
    )


def build_hardware(
    model: Any,
    events: Any,
    out_dir: str | Path,
    *,
    emulator_logits: np.ndarray | None = None,
    clock_period_ns: float = 5.0,
    part: str = "xcvu13p-flga2577-2-e",
    latency_cutoff: float = DEFAULT_LATENCY_CUTOFF,
    synth: bool = True,
    family: str = "xcup",
    top: str = "hepfpga_model",
    ebops: float | None = None,
    synth_timeout_s: float = DEFAULT_SYNTH_TIMEOUT_S,
) -> HardwareBuild:
    """RTL of ``model`` in ``out_dir`` (created), simulated on ``events`` (float inputs as the
    model takes them, ``n x input_shape``), compared with QKeras' logits (and with
    ``emulator_logits`` if given), synthesized with yosys unless ``synth`` is False.

    An HGQ model is traced through its proxy model (:data:`RTL_METHODS`; a model that is not
    a proxy yet gets its activation ranges traced on ``events``), compared with the proxy
    model's logits, and its EBOPs (``ebops``, else HGQ's figure after that calibration) are
    reported beside the yosys LUT count. yosys running past ``synth_timeout_s`` leaves the
    report without resource counts, with a note saying so (see
    :func:`synthesized_resources`); the RTL, its simulation and the latency are kept."""

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    method = RTL_METHODS[method_of_model(model)]
    x = np.asarray(events, dtype=np.float64)
    reference = method.reference(model, x) if x.ndim >= 2 and x.shape[0] else model
    net = method.trace(reference)
    if x.ndim < 2 or tuple(x.shape[1:]) != net.input_shape or x.shape[0] == 0:
        raise DataError(
            f"expected events of shape (n>0, {', '.join(map(str, net.input_shape))}), got {x.shape}"
        )
    project = write_rtl(
        net,
        out_dir,
        top=top,
        latency_cutoff=latency_cutoff,
        clock_period_ns=clock_period_ns,
        part=part,
    )
    seconds["rtl"] = round(time.perf_counter() - start, 2)
    log.info(
        "RTL: %d pipeline stages, da4ml estimate %.0f LUT", project.n_stages, project.estimated_luts
    )

    start = time.perf_counter()
    simulator = build_simulator(project)
    seconds["simulation_build"] = round(time.perf_counter() - start, 2)
    codes = np.ldexp(net.quantize_inputs(x), project.inputs.fractional)
    trace, seconds["simulation"] = simulator.run(codes.reshape(len(x), -1).astype(np.int64))
    seconds["simulation"] = round(seconds["simulation"], 3)

    _, logits = keras_outputs_with_logits(reference, x)
    logits = np.asarray(logits, dtype=np.float64).reshape(len(x), -1)
    latency_cycles = measured_latency(trace, logits)
    shift = project.n_stages if latency_cycles is None else latency_cycles
    outputs = trace[shift : shift + len(x)]
    checks: list[RTLCheck] = [check_rtl(outputs, logits, method.label)]
    if emulator_logits is not None:
        checks.append(check_rtl(outputs, emulator_logits, "hepfpga emulate (hls4ml) logits"))
    notes = [
        f"latency measured by the Verilator test bench: {latency_cycles} cycles "
        f"(da4ml pipeline: {project.n_stages} stages)"
        if latency_cycles is not None
        else "latency not identifiable from the events (all answers equal); pipeline stages used"
    ]
    latency = Latency(
        min_cycles=shift,
        max_cycles=shift,
        initiation_interval=project.initiation_interval,
        clock_period_ns=clock_period_ns,
        source="da4ml pipeline, confirmed by the Verilator test bench",
    )
    resources = None
    if synth:
        resources = synthesized_resources(
            project,
            family=family,
            part=part,
            timeout_s=synth_timeout_s,
            seconds=seconds,
            notes=notes,
        )
    report = HardwareReport(
        design=f"da4ml RTL (Verilog, {project.n_stages} pipeline stages, no DSP: "
        "constant multiplications as adder graphs)",
        latency=latency,
        resources=resources,
        timing=Timing(
            target_ns=clock_period_ns,
            estimated_ns=None,
            source=f"da4ml delay model ({latency_cutoff:g} adder delays per stage); "
            "no timing analysis here",
        ),
        exactness=tuple(checks),
        ebops=ebops if ebops is not None else method.estimate(model, reference),
        seconds=seconds,
        notes=tuple(notes),
    )
    return HardwareBuild(report=report, network=net, project=project, outputs=outputs)
