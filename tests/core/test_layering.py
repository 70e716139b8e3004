"""The layering: stage packages do not load the stages after them, nor the run config."""

from __future__ import annotations

import subprocess
import sys

import pytest

# (module imported, modules that must stay unloaded)
CASES = [
    ("hepfpga", ["hepfpga.pipeline", "hepfpga.cli", "hepfpga.train", "hepfpga.firmware"]),
    (
        "hepfpga.train",
        ["hepfpga.firmware", "hepfpga.quantize", "hepfpga.deploy", "hepfpga.pipeline"],
    ),
    ("hepfpga.train.config", ["hepfpga.firmware", "hepfpga.quantize", "hepfpga.pipeline"]),
    # the BDT stage needs the fixed-point arithmetic only: hepfpga.fixed_point, not quantize
    ("hepfpga.train.bdt", ["hepfpga.firmware", "hepfpga.quantize", "hepfpga.deploy"]),
    ("hepfpga.fixed_point", ["hepfpga.train", "hepfpga.quantize", "hepfpga.firmware"]),
    ("hepfpga.quantize", ["hepfpga.firmware", "hepfpga.deploy", "hepfpga.pipeline"]),
    ("hepfpga.deploy.config", ["hepfpga.firmware", "hepfpga.quantize", "hepfpga.pipeline"]),
    ("hepfpga.pipeline.config", ["hepfpga.cli", "hepfpga.pipeline.runner"]),
]


@pytest.mark.parametrize(("module", "absent"), CASES)
def test_importing_a_stage_loads_no_later_stage(module: str, absent: list[str]) -> None:
    code = (
        f"import sys, {module}\n"
        f"loaded = [m for m in {absent!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"


def test_the_run_config_composes_the_stage_sections() -> None:
    from hepfpga.deploy.config import OnnxConfig
    from hepfpga.firmware.options import FirmwareOptions
    from hepfpga.pipeline.config import PipelineConfig
    from hepfpga.quantize.config import QuantizationConfig
    from hepfpga.train.config import DataConfig, TrainingConfig

    config = PipelineConfig()
    assert isinstance(config.data, DataConfig)
    assert isinstance(config.training, TrainingConfig)
    assert isinstance(config.quantization, QuantizationConfig)
    assert isinstance(config.onnx, OnnxConfig)
    assert isinstance(config.firmware, FirmwareOptions)


def test_lazy_top_level_names_resolve() -> None:
    import hepfpga

    for name in ("PipelineConfig", "load_config", "parse_config", "RunResult", "run_pipeline"):
        assert name in dir(hepfpga)
        assert callable(getattr(hepfpga, name))
    with pytest.raises(AttributeError):
        _ = hepfpga.no_such_name  # type: ignore[attr-defined]


def test_no_training_module_imports_a_later_stage() -> None:
    """Every module of hepfpga.train, imported on its own, loads no later stage (the
    parametrized cases above check the packages; this walks every module)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import hepfpga.train as train\n"
        "bad = {}\n"
        "for info in pkgutil.walk_packages(train.__path__, 'hepfpga.train.'):\n"
        "    importlib.import_module(info.name)\n"
        "    later = [m for m in ('hepfpga.quantize', 'hepfpga.firmware', 'hepfpga.deploy')\n"
        "             if m in sys.modules]\n"
        "    if later:\n"
        "        bad[info.name] = later\n"
        "        break\n"
        "print(bad or '')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "", f"first module loading a later stage: {out.stdout.strip()}"
