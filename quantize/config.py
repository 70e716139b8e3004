"""The quantization stage's config section (``quantization``): the method (``qkeras``, the
default, or ``hgq``), QKeras bit widths, HGQ's settings and the quantization-aware
fine-tuning settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from hepfpga.errors import ConfigError
from hepfpga.quantize.hgq import HGQSettings
from hepfpga.quantize.methods import QUANTIZATION_METHODS
from hepfpga.quantize.qat import QuantizationSpec
from hepfpga.train.config import FitConfig

__all__ = ["QuantizationConfig"]


@dataclass(frozen=True)
class QuantizationConfig(FitConfig, QuantizationSpec):
    """Quantization-aware training with QKeras, starting from the float weights: the bit
    widths of :class:`~hepfpga.quantize.qat.QuantizationSpec` (whose docstring gives the
    ap_fixed type of each) and the fine-tuning settings of
    :class:`~hepfpga.train.config.FitConfig`. ``method`` picks the quantization family
    (:data:`~hepfpga.quantize.methods.QUANTIZATION_METHODS`); ``hgq`` holds HGQ's settings
    (:class:`~hepfpga.quantize.hgq.HGQSettings`), used with ``method: hgq``, whose bit widths
    are trained rather than the ``*_bits`` given here."""

    epochs: int = 60
    learning_rate: float = 5.0e-4
    method: str = "qkeras"
    hgq: HGQSettings = field(default_factory=HGQSettings)

    def __post_init__(self) -> None:
        QUANTIZATION_METHODS.lookup(self.method, "method")
        QuantizationSpec.__post_init__(self)
        FitConfig.__post_init__(self)
        if self.method == "hgq" and self.hgq.ramp_epochs > self.epochs:
            # HGQSettings.beta_at reaches beta at epoch ramp_epochs - 1 (0-based)
            raise ConfigError(
                f"ramp_epochs ({self.hgq.ramp_epochs}) is more than quantization.epochs "
                f"({self.epochs}): beta would never reach {self.hgq.beta:g}; set "
                f"hgq.ramp_epochs to at most {self.epochs} or raise quantization.epochs",
                path="hgq.ramp_epochs",
            )
