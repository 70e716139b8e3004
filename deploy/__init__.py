"""hepfpga.deploy: ONNX export and onnxruntime sessions, the KServe v2 / Triton inference
server (``hepfpga serve``) and Triton model repositories (``hepfpga export triton``).

The server's own dependencies (httptools, grpcio, tritonclient protos) come with the
``serve`` extra and are imported only when a server starts.
"""

from hepfpga.deploy.onnx_export import OnnxExport, OnnxParity, check_onnx, export_onnx, onnx_session
from hepfpga.deploy.serve import InferenceServer, serve
from hepfpga.deploy.serve_process import ServerProcess
from hepfpga.deploy.service import InferenceService
from hepfpga.deploy.triton_repo import discover_models, export_triton_repository

__all__ = [
    "InferenceServer",
    "InferenceService",
    "OnnxExport",
    "OnnxParity",
    "ServerProcess",
    "check_onnx",
    "discover_models",
    "export_onnx",
    "export_triton_repository",
    "onnx_session",
    "serve",
]
