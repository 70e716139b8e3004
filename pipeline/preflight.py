"""The ``preflight`` stage: what the config cannot do, refused before any training.

Per-layer bit widths naming no layer of the model, and a model the firmware cannot unroll
(:func:`firmware_fit_problem`), are :class:`~hepfpga.errors.ConfigError` s at their config path
from the untrained model the architecture builds. With ``hardware.enabled``, the RTL flow's
tools (Verilator, and yosys with ``hardware.synthesize``) must be installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError
from hepfpga.firmware.options import IOType, Strategy
from hepfpga.firmware.rtl.sim import find_verilator
from hepfpga.firmware.rtl.synth import find_yosys
from hepfpga.pipeline.run import Run, StageResult
from hepfpga.pipeline.stages import DataResult
from hepfpga.quantize.methods import check_method_architecture, check_method_model
from hepfpga.train.architectures import build_model

__all__ = ["UNROLL_LIMIT", "PreflightResult", "firmware_fit_problem", "preflight_stage"]


#: loops HLS unrolls completely in the Latency strategy must stay at or below this many
#: multiplications (Vivado/Vitis HLS refuse to unroll beyond it; hls4ml's documented limit)
UNROLL_LIMIT = 4096


@dataclass
class PreflightResult(StageResult):
    """The untrained float model's size, after the checks that need no training."""

    parameters: int

    def report_items(self, run: Run) -> dict[str, Any]:
        return {"parameters": self.parameters}


def _unrolled_multiplications(layer: Any) -> int | None:
    kind = type(layer).__name__
    if kind == "Dense":
        return int(layer.input_shape[-1]) * int(layer.units)
    if kind in ("Conv1D", "Conv2D"):
        kernel = int(np.prod(layer.kernel_size)) * int(layer.input_shape[-1]) * layer.filters
        return kernel * int(np.prod(layer.output_shape[1:-1]))
    return None


def firmware_fit_problem(model: Any, options: Any) -> ConfigError | None:
    """A :class:`ConfigError` naming the firmware option that cannot hold ``model``, or None.

    With the ``Latency`` strategy HLS unrolls each layer's multiplications: a Dense layer's
    ``n_in * n_out``, and with ``io_parallel`` a convolution's over the whole image (with
    ``io_stream`` a convolution computes one pixel at a time, ``kernel * channels * filters``).
    More than :data:`UNROLL_LIMIT` cannot be built.
    """
    if options.strategy is not Strategy.LATENCY:
        return None
    for layer in model.layers:
        n = _unrolled_multiplications(layer)
        if n is None:
            continue
        conv = type(layer).__name__.startswith("Conv")
        if conv and options.io_type is IOType.STREAM:
            n //= int(np.prod(layer.output_shape[1:-1]))
        if n > UNROLL_LIMIT:
            where, fix = (
                (
                    "firmware.io_type",
                    "use io_type: io_stream (one pixel at a time) or a smaller image",
                )
                if conv and options.io_type is IOType.PARALLEL
                else ("firmware.strategy", "use strategy: Resource, or fewer inputs/units")
            )
            return ConfigError(
                f"layer '{layer.name}' ({type(layer).__name__}, output "
                f"{tuple(layer.output_shape[1:])}) needs {n} multiplications unrolled, more "
                f"than the {UNROLL_LIMIT} HLS unrolls with {options.io_type.value} and the "
                f"Latency strategy; {fix}",
                path=where,
            )
    return None


def preflight_stage(run: Run) -> PreflightResult:
    """Refuse, before any training, what the config cannot do: a quantization method without a
    counterpart of some layer, per-layer bit widths naming no layer of the model, a model the
    firmware cannot unroll, a hardware stage without its tools. Builds the untrained model."""
    data = run.get(DataResult)
    config = run.config
    model = build_model(data.inputs.input_shape, len(data.classes), config.model, seed=config.seed)
    check_method_architecture(config.quantization.method, config.model.architecture)
    check_method_model(config.quantization.method, model)
    try:
        config.quantization.check_layer_names(model)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=f"quantization.{exc.path}") from exc
    problem = firmware_fit_problem(model, config.firmware)
    if problem is not None:
        raise problem
    if config.hardware.enabled:  # found now, not after training (the hardware stage)
        find_verilator()
        if config.hardware.synthesize:
            find_yosys()
    return PreflightResult(int(model.count_params()))
