"""Stage messages name the run's quantization method (an HGQ run does not say QKeras)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hepfpga.pipeline.config import load_config
from hepfpga.pipeline.run import Run
from hepfpga.pipeline.stage_list import STAGES
from hepfpga.pipeline.tasks import RUN_TASKS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jet_tagging.yaml"


@pytest.mark.parametrize(("method", "label"), [("qkeras", "QKeras"), ("hgq", "HGQ")])
def test_stage_messages_name_the_quantization_method(
    method: str, label: str, tmp_path: Path
) -> None:
    config = load_config(EXAMPLE)
    config = replace(config, quantization=replace(config.quantization, method=method))
    run = Run(config=config, run_dir=tmp_path)
    stages = {s.name: s for s in STAGES}
    assert stages["qat"].describe(run) == f"quantization-aware training ({label})"
    assert stages["csim"].describe(run) == f"verifying the C simulation against {label}"
    other = "HGQ" if label == "QKeras" else "QKeras"
    for task in RUN_TASKS:
        for stage in RUN_TASKS[task].stages():
            text = stage.describe(run)
            assert "{method}" not in text and other not in text, (task, text)
