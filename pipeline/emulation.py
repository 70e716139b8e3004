"""The ``emulation`` stage of ``hepfpga run``: the bulk emulator (``hepfpga emulate``) of the
compiled firmware, proven bit for bit against its C simulation on the test jets plus stress
events spread over the input range. The report's ``emulation`` section says which engine
``hepfpga emulate`` uses for this firmware (``fixed-point``, or ``csim`` with the reason of the
fallback), on how many events it was identical, and its throughput on the test jets."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

from hepfpga.firmware.emulate import EmulationFallbackWarning, Emulator
from hepfpga.pipeline.run import Check, Run, StageResult
from hepfpga.pipeline.stages import DataResult, FirmwareResult

__all__ = ["EmulationStageResult", "emulation_stage"]

#: test jets the proof compares (all of them up to this many), plus the stress events
CHECK_EVENTS = 10_000


@dataclass
class EmulationStageResult(StageResult):
    engine: str
    fallback_reason: str | None
    n_events: int
    n_stress_events: int
    fraction_identical: float
    #: test jets per second through the emulator (after the proof)
    events_per_second: float

    def report_items(self, run: Run) -> dict[str, Any]:
        return {
            "emulation": {
                "engine": self.engine,
                "fallback_reason": self.fallback_reason,
                "n_events_compared": self.n_events,
                "n_stress_events": self.n_stress_events,
                "fraction_identical_to_csim": self.fraction_identical,
                "events_per_second": self.events_per_second,
            }
        }

    def checks(self, run: Run) -> dict[str, Check]:
        # the fallback is exact too (it is the C simulation): reported, not required
        reason = self.fallback_reason or "fixed-point engine, identical to the C simulation"
        return {"emulator_engine": Check(self.engine, None, True, reason=reason)}


def emulation_stage(run: Run) -> EmulationStageResult | None:
    """Prove the emulator of the compiled project on the test jets (no project: skipped)."""
    firmware = run.find(FirmwareResult)
    if firmware is None or firmware.project is None:
        return None
    # the firmware's inputs (another form of the test jets for a GarNet run)
    x = firmware.firmware_inputs(run.get(DataResult).x_test)
    n_events = len(x[0]) if isinstance(x, list) else len(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmulationFallbackWarning)
        emulator = Emulator.from_project(firmware.project, x, check_events=CHECK_EVENTS)
    start = time.perf_counter()
    emulator.predict(x)
    seconds = time.perf_counter() - start
    check = emulator.check
    return EmulationStageResult(
        engine=emulator.engine,
        fallback_reason=emulator.fallback_reason,
        n_events=check.n_events if check else 0,
        n_stress_events=check.n_stress_events if check else 0,
        fraction_identical=check.fraction_identical if check else 0.0,
        events_per_second=n_events / seconds if seconds > 0 else float("inf"),
    )
