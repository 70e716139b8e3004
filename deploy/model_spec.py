"""What a served model is, whatever file describes it: tensors, batching, instances, versions.

The runtime (:mod:`hepfpga.deploy.serve_models`, :mod:`hepfpga.deploy.batching`) depends on
these types only; :mod:`hepfpga.deploy.triton_repo` reads and writes them as Triton's
``config.pbtxt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from hepfpga.registry import Registry

__all__ = [
    "DATATYPES",
    "KINDS",
    "DynamicBatching",
    "InstanceKind",
    "ModelSpec",
    "ModelVersion",
    "TensorSpec",
]

#: KServe v2 tensor datatypes served here and their numpy types (BYTES is not: these models
#: take numeric tensors).
DATATYPES: Registry[np.dtype] = Registry(
    "datatype",
    {
        name: np.dtype(t)
        for name, t in {
            "BOOL": np.bool_,
            "UINT8": np.uint8,
            "UINT16": np.uint16,
            "UINT32": np.uint32,
            "UINT64": np.uint64,
            "INT8": np.int8,
            "INT16": np.int16,
            "INT32": np.int32,
            "INT64": np.int64,
            "FP16": np.float16,
            "FP32": np.float32,
            "FP64": np.float64,
        }.items()
    },
)

InstanceKind = Literal["KIND_AUTO", "KIND_CPU", "KIND_GPU"]
KINDS: tuple[InstanceKind, ...] = get_args(InstanceKind)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: v2 datatype (``FP32``) and dims without the batch dimension
    (``-1`` for a variable size)."""

    name: str
    datatype: str
    dims: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return DATATYPES[self.datatype]

    def to_json(self, max_batch_size: int) -> dict[str, object]:
        shape = [-1, *self.dims] if max_batch_size > 0 else list(self.dims)
        return {"name": self.name, "datatype": self.datatype, "shape": shape}


@dataclass(frozen=True)
class DynamicBatching:
    """Triton's ``dynamic_batching``: requests queued within ``max_queue_delay_us`` of the
    oldest are run together; a batch goes at once when it reaches a preferred size.

    With a delay of 0 (Triton's default) nothing waits: a lone request runs at once, and
    requests that queue while an instance is busy are batched together.
    """

    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """What a ``config.pbtxt`` says about one model (the fields hepfpga uses)."""

    name: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dynamic_batching: DynamicBatching | None = DynamicBatching()
    instance_count: int = 1
    instance_kind: InstanceKind = "KIND_AUTO"
    #: ``latest`` keeps the ``latest_versions`` highest versions, ``all`` every version,
    #: ``specific`` those in ``versions`` (Triton's ``version_policy``).
    version_policy: Literal["latest", "all", "specific"] = "latest"
    latest_versions: int = 1
    versions: tuple[int, ...] = ()
    default_model_filename: str = "model.onnx"
    intra_op_threads: int = 1
    label_filename: str | None = None
    platform: str = "onnxruntime_onnx"
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """One servable version of a model: its ONNX file and configuration."""

    spec: ModelSpec
    version: int
    path: Path
    class_names: tuple[str, ...] = ()
