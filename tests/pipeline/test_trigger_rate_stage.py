"""The ``trigger_rates`` stage without firmware: it says why instead of giving QKeras' numbers,
and it is left out where switched off or where the task has no trigger (generation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.emulation import trigger_rate_stage
from hepfpga.pipeline.run import Run
from hepfpga.pipeline.stage_list import STAGES
from hepfpga.pipeline.stages import FirmwareResult


def test_the_stage_follows_the_emulation_it_uses() -> None:
    names = [s.name for s in STAGES]
    assert names.index("trigger_rates") == names.index("emulation") + 1


def test_without_firmware_the_section_says_why(tmp_path: Path) -> None:
    run = Run(parse_config({}), tmp_path)
    # the task leaves the firmware stage out: nothing to measure, no missing result
    assert trigger_rate_stage(run) is None
    # the firmware stage ran but has no project for this model: the section says why
    run.results["firmware"] = FirmwareResult(None, 0, not_available="a layer without firmware")
    result = trigger_rate_stage(run)
    assert result is not None
    section = result.report_items(run)["trigger_rates"]
    assert section["status"] == "not available"
    assert "no firmware emulator" in section["reason"] and "not QKeras'" in section["reason"]
    assert result.checks(run) == {}


@pytest.mark.parametrize(
    "config",
    [
        {"task": {"name": "classification", "trigger_rates": {"enabled": False}}},
        {"task": {"name": "generation"}, "model": {"architecture": "gan"}},
    ],
    ids=["switched-off", "generation"],
)
def test_left_out_where_off_or_meaningless(tmp_path: Path, config: dict) -> None:
    assert trigger_rate_stage(Run(parse_config(config), tmp_path)) is None
