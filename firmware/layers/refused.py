"""Layers hls4ml 1.3 cannot convert (or converts wrongly), refused with what to use instead.

A Lambda layer's code is never executed: model files with one are refused before loading
(:mod:`hepfpga.quantize.model_io`), and a Lambda in a model built in Python is refused here.
"""

from __future__ import annotations

from hepfpga.firmware.layers._base import refuse

_DECONV = (
    "hls4ml 1.3 has no transposed convolution; for a decoder or generator use UpSampling{d} "
    "followed by Conv{d} (nearest-neighbour up-sampling, then a learned filter)"
)
refuse("Conv1DTranspose", _DECONV.format(d="1D"))
refuse("Conv2DTranspose", _DECONV.format(d="2D"))
refuse("Conv3DTranspose", _DECONV.format(d="3D"))
refuse(
    "Lambda",
    "a Lambda layer holds arbitrary Python code, which hepfpga never runs and hls4ml cannot "
    "convert; replace it with standard layers (e.g. Activation, Reshape, Add, Multiply)",
)
for _name in ("Conv3D", "MaxPooling3D", "AveragePooling3D", "UpSampling3D", "ZeroPadding3D"):
    refuse(_name, "hls4ml 1.3 has no 3D layers; reshape the data to 2D images or sequences")
for _name in ("BinaryDense", "TernaryDense"):
    refuse(
        _name,
        "a custom layer class (not Keras or QKeras), whose code hepfpga neither has nor runs; "
        "use QDense with kernel_quantizer=binary() or ternary() (bit-exact in firmware)",
    )
refuse(
    "QDepthwiseConv2DBatchnorm",
    "hls4ml 1.3 has no converter for QKeras' folded depthwise layer; use QDepthwiseConv2D "
    "followed by BatchNormalization (or fold the batch normalization into its weights); "
    "QConv2DBatchnorm is converted (folded as QKeras does at inference)",
)
refuse(
    "QDenseBatchnorm",
    "not a layer of the installed QKeras (0.9.0); use QDense followed by BatchNormalization, "
    "or QConv2DBatchnorm for convolutions (folded as QKeras does at inference)",
)
