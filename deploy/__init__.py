"""hepfpga.deploy: ONNX export and onnxruntime sessions."""

from hepfpga.deploy.onnx_export import OnnxExport, OnnxParity, check_onnx, export_onnx, onnx_session

__all__ = ["OnnxExport", "OnnxParity", "check_onnx", "export_onnx", "onnx_session"]
