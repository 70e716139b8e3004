"""hepfpga: a trigger neural network from Keras training to ONNX serving and FPGA firmware.

This folder is the core (errors, artifacts, the config schema, registries, optional imports,
YAML, data files, fixed point) and this lazy public facade. The stage subpackages live in
top-level folders of the source tree (``train/``, ``quantize/``, ``deploy/``, ``firmware/``),
as do the run layer (``pipeline/``) and the command line (``cli/``); they are installed as
``hepfpga.train`` and so on through setuptools' ``package-dir`` mapping.
"""

from __future__ import annotations

import importlib as _importlib
from pathlib import Path as _Path
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any


def _add_source_checkout_stages() -> None:
    # Running from a source checkout without an install (or with a plain install while the
    # checkout is the working directory) finds this folder first; the stage packages are then
    # its siblings. Add the checkout root to the package path so ``hepfpga.train`` resolves
    # to ``train/`` exactly as the package-dir mapping does. Only done when the sibling
    # pyproject.toml is hepfpga's, so an unrelated top-level ``train`` is never picked up.
    root = _Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if (
        (root / "train" / "__init__.py").is_file()
        and pyproject.is_file()
        and 'name = "hepfpga"' in pyproject.read_text(encoding="utf-8")
        and str(root) not in __path__
    ):
        __path__.append(str(root))


_add_source_checkout_stages()

from hepfpga._version import __version__  # noqa: E402
from hepfpga.reproducibility import pin_numerics as _pin_numerics  # noqa: E402

# before any TensorFlow product: the same bits on every x86-64 machine (see reproducibility)
_pin_numerics()
from hepfpga.errors import (  # noqa: E402
    ConfigError,
    ConversionError,
    DataError,
    ExportError,
    HepfpgaError,
    MissingDependencyError,
    ModelFileError,
    VerificationError,
)

__all__ = [
    "ConfigError",
    "ConversionError",
    "DataError",
    "ExportError",
    "HepfpgaError",
    "MissingDependencyError",
    "ModelFileError",
    "PipelineConfig",
    "RunResult",
    "VerificationError",
    "__version__",
    "load_config",
    "parse_config",
    "run_pipeline",
]

# The run config and the pipeline are the top layer: they import every stage, so they load on
# first use. ``import hepfpga.train`` (which imports this package first) then loads no
# firmware, deployment or quantization code.
_LAZY = {
    "PipelineConfig": "hepfpga.pipeline.config",
    "load_config": "hepfpga.pipeline.config",
    "parse_config": "hepfpga.pipeline.config",
    "RunResult": "hepfpga.pipeline.runner",
    "run_pipeline": "hepfpga.pipeline.runner",
}

if _TYPE_CHECKING:
    from hepfpga.pipeline.config import PipelineConfig, load_config, parse_config
    from hepfpga.pipeline.runner import RunResult, run_pipeline


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hepfpga' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
