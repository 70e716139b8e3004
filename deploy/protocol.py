"""What the inference service and its front ends say to each other, protocol-neutral.

A front end (HTTP, gRPC) decodes a request into :class:`TensorInput` and
:class:`OutputRequest` items, calls :class:`hepfpga.deploy.service.InferenceService`, and maps
a :class:`RequestError`'s :class:`ErrorCode` to its own status (``HTTP_STATUS`` here; the gRPC
front end maps to ``grpc.StatusCode`` of the same names). The messages keep Triton 2.51's
wording, so clients and scripts written against Triton read the same text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["HTTP_STATUS", "ErrorCode", "OutputRequest", "RegionRef", "RequestError", "TensorInput"]


class ErrorCode(enum.Enum):
    """Why a request was refused or failed; the names are gRPC's status codes."""

    NOT_FOUND = "NOT_FOUND"  #: unknown model, version or shared memory region
    INVALID_ARGUMENT = "INVALID_ARGUMENT"  #: the request does not fit the model or protocol
    ALREADY_EXISTS = "ALREADY_EXISTS"  #: a shared memory region registered twice
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"  #: a body or message over the size limit
    UNAVAILABLE = "UNAVAILABLE"  #: the server is draining, or the model is being unloaded
    UNIMPLEMENTED = "UNIMPLEMENTED"  #: not offered (or not in this model control mode)
    INTERNAL = "INTERNAL"  #: the model failed while running


#: Triton's HTTP status for each code (it answers 400 for most refusals).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.ALREADY_EXISTS: 400,
    ErrorCode.RESOURCE_EXHAUSTED: 400,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.UNIMPLEMENTED: 400,
    ErrorCode.INTERNAL: 500,
}


class RequestError(Exception):
    """A request the service refuses or could not answer: ``code`` says why (each front end
    maps it to its status), ``message`` is Triton's wording."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


@dataclass(frozen=True)
class RegionRef:
    """``byte_size`` bytes at ``offset`` of a registered shared memory region (Triton's
    ``shared_memory_region`` / ``shared_memory_byte_size`` / ``shared_memory_offset``)."""

    region: str
    byte_size: int
    offset: int = 0


@dataclass
class TensorInput:
    """An input as a front end decoded it: ``data`` is raw little-endian bytes or a JSON list;
    with ``region`` the bytes are in shared memory and ``data`` is None."""

    name: str
    datatype: str
    shape: list[int]
    data: bytes | bytearray | memoryview | list[object] | None
    region: RegionRef | None = None


@dataclass(frozen=True)
class OutputRequest:
    """An output the client asks for; with ``region`` it is written to shared memory instead
    of being sent back."""

    name: str
    region: RegionRef | None = None
