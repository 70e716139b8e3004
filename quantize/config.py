"""The quantization stage's config section (``quantization``): QKeras bit widths and the
quantization-aware fine-tuning settings."""

from __future__ import annotations

from dataclasses import dataclass

from hepfpga.quantize.qat import QuantizationSpec
from hepfpga.train.config import FitConfig

__all__ = ["QuantizationConfig"]


@dataclass(frozen=True)
class QuantizationConfig(FitConfig, QuantizationSpec):
    """Quantization-aware training with QKeras, starting from the float weights: the bit
    widths of :class:`~hepfpga.quantize.qat.QuantizationSpec` (whose docstring gives the
    ap_fixed type of each) and the fine-tuning settings of
    :class:`~hepfpga.train.config.FitConfig`."""

    epochs: int = 60
    learning_rate: float = 5.0e-4

    def __post_init__(self) -> None:
        QuantizationSpec.__post_init__(self)
        FitConfig.__post_init__(self)
