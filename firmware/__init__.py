"""hepfpga.firmware: QKeras model -> hls4ml project -> bit-accurate C simulation -> verification."""

from hepfpga.firmware.csim import predict, predict_logits
from hepfpga.firmware.hls_config import build_hls_config
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.project import FirmwareProject, compile_project, synthesize, write_project
from hepfpga.firmware.verify import Comparison, record_verification, verify_qkeras

__all__ = [
    "Comparison",
    "FirmwareOptions",
    "FirmwareProject",
    "build_hls_config",
    "compile_project",
    "predict",
    "predict_logits",
    "record_verification",
    "synthesize",
    "verify_qkeras",
    "write_project",
]
