"""hepfpga.firmware: Keras/QKeras model -> hls4ml project -> bit-accurate C simulation ->
verification, layer by layer, with a diagnosis of the first layer that parts."""

from hepfpga.firmware.csim import predict, predict_logits, predict_traces
from hepfpga.firmware.diagnose import Diagnosis, LayerComparison
from hepfpga.firmware.emulate import EmulationResult, Emulator, emulate_file
from hepfpga.firmware.hls_config import build_hls_config, plan_conversion
from hepfpga.firmware.options import Backend, FirmwareOptions, SoftmaxMode
from hepfpga.firmware.precision import LayerPrecision, profile_ranges
from hepfpga.firmware.project import FirmwareProject, compile_project, synthesize, write_project
from hepfpga.firmware.verify import (
    Comparison,
    VerificationReport,
    record_verification,
    verify_model,
    verify_qkeras,
)

__all__ = [
    "Backend",
    "Comparison",
    "Diagnosis",
    "EmulationResult",
    "Emulator",
    "FirmwareOptions",
    "FirmwareProject",
    "LayerComparison",
    "LayerPrecision",
    "SoftmaxMode",
    "VerificationReport",
    "build_hls_config",
    "compile_project",
    "emulate_file",
    "plan_conversion",
    "predict",
    "predict_logits",
    "predict_traces",
    "profile_ranges",
    "record_verification",
    "synthesize",
    "verify_model",
    "verify_qkeras",
    "write_project",
]
