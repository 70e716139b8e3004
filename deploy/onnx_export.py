"""ONNX export of Keras/QKeras models with tf2onnx, checked with onnxruntime.

A QKeras model is exported as the float graph its quantizers compute in TensorFlow (the
quantize/dequantize arithmetic appears as ordinary float ops: ``Round``, ``Clip``, ``Mul``),
so onnxruntime reproduces the QKeras outputs to float32 rounding.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga.artifacts import atomic_file
from hepfpga.errors import ExportError

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["OnnxExport", "OnnxParity", "check_onnx", "export_onnx", "onnx_session"]


@dataclass(frozen=True)
class OnnxExport:
    """An exported ONNX file and its input/output tensor names."""

    path: Path
    input_name: str
    output_name: str
    opset: int
    seconds: float


@dataclass(frozen=True)
class OnnxParity:
    """onnxruntime against Keras on the same inputs."""

    n_events: int
    max_abs_diff: float
    argmax_agreement: float
    provider: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_events": self.n_events,
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "provider": self.provider,
        }


def export_onnx(
    model: keras.Model, path: Path, *, opset: int = 13, metadata: dict[str, Any] | None = None
) -> OnnxExport:
    """Export ``model`` to ``path`` with a dynamic batch dimension.

    ``metadata`` is stored as JSON strings in the model's ``metadata_props`` (e.g. the feature
    scaler and class names, so a server can describe its inputs). Written through a temporary
    file and a rename.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx

    path = Path(path)
    input_name = "input"
    spec = (tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name=input_name),)
    start = time.perf_counter()
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as exc:  # tf2onnx raises many unrelated types
        raise ExportError(f"tf2onnx could not convert model '{model.name}': {exc}") from exc
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
    proto.producer_name = "hepfpga"
    with atomic_file(path) as tmp:
        onnx.save(proto, str(tmp))
    onnx.checker.check_model(str(path))
    return OnnxExport(
        path=path,
        input_name=proto.graph.input[0].name,
        output_name=proto.graph.output[0].name,
        opset=opset,
        seconds=time.perf_counter() - start,
    )


def onnx_session(path: Path, providers: list[str] | None = None) -> Any:
    """An onnxruntime session, on CUDA when available and asked for, else CPU.

    onnxruntime silently falls back to CPU when a CUDA provider cannot load; the provider
    really in use is ``session.get_providers()[0]``.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = providers or [
        p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
    ]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=wanted)


def check_onnx(
    export: OnnxExport, model: keras.Model, x: np.ndarray, *, batch_size: int = 4096
) -> OnnxParity:
    """Run the ONNX model and the Keras model on ``x`` and compare the outputs."""
    session = onnx_session(export.path)
    x = np.ascontiguousarray(x, dtype=np.float32)
    onnx_out = np.concatenate(
        [
            session.run(None, {export.input_name: x[i : i + batch_size]})[0]
            for i in range(0, len(x), batch_size)
        ]
    )
    keras_out = model.predict(x, batch_size=batch_size, verbose=0)
    if onnx_out.shape != keras_out.shape:
        raise ExportError(
            f"ONNX output shape {onnx_out.shape} differs from Keras {keras_out.shape}"
        )
    return OnnxParity(
        n_events=len(x),
        max_abs_diff=float(np.max(np.abs(onnx_out.astype(np.float64) - keras_out))),
        argmax_agreement=float(np.mean(onnx_out.argmax(1) == keras_out.argmax(1))),
        provider=session.get_providers()[0],
    )
