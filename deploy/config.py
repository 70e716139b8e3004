"""The deployment stage's config section (``onnx``)."""

from __future__ import annotations

from dataclasses import dataclass

from hepfpga.errors import ConfigError

__all__ = ["OnnxConfig"]


@dataclass(frozen=True)
class OnnxConfig:
    """ONNX export of the quantized model with tf2onnx; checked with onnxruntime on the test
    set: ``tolerance`` bounds the largest absolute difference of the outputs from QKeras."""

    opset: int = 13
    tolerance: float = 1.0e-5

    def __post_init__(self) -> None:
        if not 9 <= self.opset <= 21:
            raise ConfigError(f"expected an opset in 9..21, got {self.opset}", path="opset")
        if self.tolerance < 0:
            raise ConfigError(f"expected a number >= 0, got {self.tolerance!r}", path="tolerance")
