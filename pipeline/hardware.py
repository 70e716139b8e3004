"""The ``hardware`` stage of ``hepfpga run`` (``hardware.enabled: true``): RTL of the quantized
model with da4ml (an HGQ run: of its proxy model, its EBOPs beside the LUT count), Verilator
simulation of the test jets compared bit for bit with the model's logits and the ``hepfpga
emulate`` engine, latency, yosys resources (:func:`hepfpga.firmware.rtl.flow.build_hardware`).
Writes ``hardware/report.json`` and ``hardware/rtl/`` into the run folder, a ``hardware``
section into ``report.json`` and the figures into the firmware README."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from hepfpga.artifacts import write_json_atomic
from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
from hepfpga.firmware.rtl.flow import build_hardware
from hepfpga.firmware.rtl.report import HardwareReport
from hepfpga.pipeline.run import Check, Run, StageResult
from hepfpga.pipeline.stages import DataResult, FirmwareResult, QuantizedModelResult

__all__ = ["HardwareResult", "hardware_stage"]


@dataclass
class HardwareResult(StageResult):
    report: HardwareReport

    def report_items(self, run: Run) -> dict[str, Any]:
        return {"hardware": self.report.to_dict()}

    def checks(self, run: Run) -> dict[str, Check]:
        checks = self.report.exactness
        fraction = min(check.fraction_identical for check in checks) if checks else None
        return {"rtl_bit_exact": Check(fraction, 1.0, fraction == 1.0)}


def hardware_stage(run: Run) -> HardwareResult | None:
    """Build, simulate and synthesize the RTL when ``hardware.enabled``."""
    config = run.config.hardware
    if not config.enabled:
        return None
    data = run.get(DataResult)
    quantized = run.get(QuantizedModelResult)
    # HGQ: the proxy model the firmware is built from (ranges traced on the training set)
    qmodel = quantized.proxy if quantized.proxy is not None else quantized.model
    x = data.x_test if config.max_events is None else data.x_test[: config.max_events]
    emulator_logits = None
    firmware = run.find(FirmwareResult)
    if config.compare_emulator and firmware is not None and firmware.project is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmulationFallbackWarning)
            emulator = Emulator.from_project(firmware.project, x)
        emulator_logits = emulator.predict_logits(x)
    build = build_hardware(
        qmodel,
        x,
        run.run_dir / "hardware" / "rtl",
        emulator_logits=emulator_logits,
        clock_period_ns=float(run.config.firmware.clock_period),
        part=run.config.firmware.effective_part,
        latency_cutoff=config.latency_cutoff,
        synth=config.synthesize,
        family=config.family,
        ebops=quantized.ebops,
        synth_timeout_s=config.synthesis_timeout_s,
    )
    write_json_atomic(run.run_dir / "hardware" / "report.json", build.report.to_dict())
    if firmware is not None and firmware.project is not None:
        readme = firmware.project.path / "README.md"
        if readme.is_file():
            readme.write_text(
                readme.read_text().rstrip("\n")
                + "\n\n## Hardware figures without vendor tools (`hepfpga hardware`)\n\n"
                "The same network as da4ml RTL in `../hardware/rtl/` (not this HLS project):\n\n"
                + "".join(f"    {line}\n" for line in build.report.summary().splitlines())
            )
    return HardwareResult(build.report)
