"""hepfpga.quantize: QKeras counterparts of float models, QAT, and the ap_fixed types their
quantizers stand for."""

from hepfpga.quantize.fixed import FixedType, Rounding, Saturation, from_quantizer
from hepfpga.quantize.qat import QuantizationSpec, qkeras_custom_objects, quantize_model

__all__ = [
    "FixedType",
    "QuantizationSpec",
    "Rounding",
    "Saturation",
    "from_quantizer",
    "qkeras_custom_objects",
    "quantize_model",
]
