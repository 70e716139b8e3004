"""An architecture is one module: a plugin registered from outside hepfpga (here a module
written by the test, imported in a fresh interpreter so the registries of this session stay
as they are) is selected by ``model.architecture``, validates its own keys and builds."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = """
from dataclasses import dataclass

from hepfpga.train.architectures import Architecture, register_architecture
from hepfpga.train.config import DataConfig, ModelConfig, check_widths
from hepfpga.train.representations import Features


@dataclass(frozen=True)
class ToyConfig(ModelConfig):
    architecture: str = "toy"
    width: int = 4

    def __post_init__(self) -> None:
        check_widths(self.width, "width")

    def input_representation(self, data: DataConfig) -> Features:
        return Features(scaling=data.scaling)


def build_toy(config, input_shape, n_classes, seed):
    return ("toy", config.width, input_shape, n_classes, seed)


register_architecture(
    Architecture("toy", ToyConfig, build_toy, "a toy network", "bit-exact logits: a toy")
)
"""

CHECK = """
import toy_plugin

from hepfpga._schema import build
from hepfpga.errors import ConfigError
from hepfpga.train.architectures import ARCHITECTURES, build_model
from hepfpga.train.config import DataConfig, ModelConfig
from hepfpga.train.tasks import ClassificationConfig, check_task_fits

config = build(ModelConfig, {"architecture": "toy", "width": 3})
assert type(config) is toy_plugin.ToyConfig, config
assert type(ModelConfig(architecture="toy")) is toy_plugin.ToyConfig
assert ARCHITECTURES.names()[-1] == "toy"
assert build_model(16, 5, config, seed=7) == ("toy", 3, (16,), 5, 7)
assert config.input_representation(DataConfig(scaling="minmax")).scaling == "minmax"
check_task_fits(ClassificationConfig(), config)
try:
    build(ModelConfig, {"architecture": "toy", "width": 0})
except ConfigError as exc:
    assert "width" in str(exc), exc
else:
    raise AssertionError("width 0 was accepted")
try:
    build(ModelConfig, {"architecture": "toyy"})
except ConfigError as exc:
    assert "toy" in str(exc), exc
else:
    raise AssertionError("an unknown architecture was accepted")
print("ok")
"""


def test_an_architecture_plugged_in_from_one_module(tmp_path: Path) -> None:
    # ``python -c`` puts its working folder first on the path: the plugin is importable
    (tmp_path / "toy_plugin.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
