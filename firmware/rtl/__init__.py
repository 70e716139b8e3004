"""hepfpga.firmware.rtl: hardware figures without vendor tools.

QKeras model -> da4ml adder-graph RTL (:mod:`.trace`, :mod:`.codegen`) -> Verilator
simulation compared bit for bit with QKeras (:mod:`.sim`) -> yosys resource counts
(:mod:`.synth`) -> :class:`HardwareReport` (:mod:`.report`); :func:`build_hardware`
(:mod:`.flow`) runs them all. Needs ``pip install 'hepfpga[hardware]'``.
"""

from hepfpga.firmware.rtl.report import HardwareReport, Latency, Resources, Timing

__all__ = ["HardwareReport", "Latency", "Resources", "Timing"]
