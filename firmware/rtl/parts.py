"""FPGA devices and their resources, for the shares (%) of a hardware report.

:data:`PARTS` maps a device name prefix (``xcvu13p``) to its :class:`PartCapacity`; a part
such as ``xcvu13p-flga2577-2-e`` is looked up by prefix (:func:`part_capacity`). A new device
is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from hepfpga.registry import Registry

__all__ = ["PARTS", "PartCapacity", "part_capacity"]


@dataclass(frozen=True)
class PartCapacity:
    """Resources of an FPGA device (from the vendor's product tables)."""

    family: str
    lut: int
    ff: int
    dsp: int
    #: 36 Kb block RAMs
    bram: int


#: device name prefix -> capacity (AMD/Xilinx UltraScale+ data sheets DS890/DS962)
PARTS = Registry[PartCapacity](
    "part",
    {
        "xcvu13p": PartCapacity("xcup", 1_728_000, 3_456_000, 12_288, 2_688),
        "xcu250": PartCapacity("xcup", 1_728_000, 3_456_000, 12_288, 2_688),
        "xcvu9p": PartCapacity("xcup", 1_182_240, 2_364_480, 6_840, 2_160),
        "xcu200": PartCapacity("xcup", 1_182_240, 2_364_480, 6_840, 2_160),
        "xcku115": PartCapacity("xcu", 663_360, 1_326_720, 5_520, 2_160),
        "xczu9eg": PartCapacity("xcup", 274_080, 548_160, 2_520, 912),
    },
)


def part_capacity(part: str) -> PartCapacity | None:
    """The capacity of ``part`` (e.g. ``xcvu13p-flga2577-2-e``), or ``None`` if not listed."""
    name = part.lower()
    for prefix, capacity in PARTS.items():
        if name.startswith(prefix):
            return capacity
    return None
