"""Float Keras models: :func:`build_model` over the architecture plugins of
:mod:`hepfpga.train.architectures` (kept as the short import path)."""

from __future__ import annotations

from hepfpga.train.architectures import ARCHITECTURES, build_model, register_architecture
from hepfpga.train.architectures.mlp import MLPConfig, build_mlp

__all__ = ["ARCHITECTURES", "MLPConfig", "build_mlp", "build_model", "register_architecture"]
