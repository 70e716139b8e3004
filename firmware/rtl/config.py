"""The ``hardware:`` section of a run config (the open-tool hardware stage)."""

from __future__ import annotations

from dataclasses import dataclass

from hepfpga.errors import ConfigError

__all__ = ["HardwareConfig"]


@dataclass(frozen=True)
class HardwareConfig:
    """RTL, bit-exact RTL simulation and yosys figures of the QKeras model in ``hepfpga run``.

    ``enabled``: run the stage (off by default: it adds 1-5 minutes, mostly the Verilator
    build and yosys). ``synthesize``: run yosys for resource counts. ``compare_emulator``:
    also compare the RTL with the ``hepfpga emulate`` engine on the run's firmware.
    ``latency_cutoff``: da4ml adder delays per pipeline stage (5 at a 5 ns clock, da4ml's
    default). ``family``: yosys ``synth_xilinx -family`` (``xcup`` = UltraScale+).
    ``max_events``: simulate at most this many test jets (None: all).
    ``synthesis_timeout_s``: yosys' time limit; past it the stage keeps the RTL, its
    simulation and the latency, and the report says the resource counts are missing.
    The clock period and the part are the firmware section's.
    """

    enabled: bool = False
    synthesize: bool = True
    compare_emulator: bool = True
    latency_cutoff: float = 5.0
    family: str = "xcup"
    max_events: int | None = None
    synthesis_timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        if not self.latency_cutoff > 0:
            raise ConfigError(
                f"expected a positive number, got {self.latency_cutoff!r}", path="latency_cutoff"
            )
        if self.family not in ("xcup", "xcu", "xc7"):
            raise ConfigError(
                f"unknown yosys family {self.family!r}; accepted: xcup, xcu, xc7", path="family"
            )
        if not self.synthesis_timeout_s > 0:
            raise ConfigError(
                f"expected a positive number of seconds, got {self.synthesis_timeout_s!r}",
                path="synthesis_timeout_s",
            )
        if self.max_events is not None and self.max_events < 1:
            raise ConfigError(
                f"expected a positive integer, got {self.max_events}", path="max_events"
            )
