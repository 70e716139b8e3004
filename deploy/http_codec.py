"""The bytes of the KServe v2 protocol over HTTP: messages and the tensor codec.

What :mod:`hepfpga.deploy.serve_http` (the transport) and :mod:`hepfpga.deploy.http_routes`
(the routing) share: the request as received (:class:`HttpRequest`), HTTP/1.1 answers
(:func:`response`, :func:`json_response`, :func:`error_response`), strict JSON
(:func:`dumps`), request bodies decompressed (:func:`decode_body`), and the inference codec:
a body of JSON, or (binary tensor extension) ``Inference-Header-Content-Length`` bytes of JSON
followed by the raw tensors named by ``parameters.binary_data_size``, decoded into
:class:`~hepfpga.deploy.protocol.TensorInput` (:func:`decode_inference_request`); outputs
encoded the same way, gzip/deflate compressed when the client accepts it
(:func:`encode_inference_answer`).
"""

from __future__ import annotations

import functools
import json
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga.artifacts import dumps_strict
from hepfpga.deploy.protocol import ErrorCode, OutputRequest, RegionRef, RequestError, TensorInput

if TYPE_CHECKING:
    from hepfpga.deploy.serve_models import LoadedModel
    from hepfpga.deploy.service import OutputTensor

__all__ = [
    "CACHED_HEADERS",
    "HttpRequest",
    "decode_body",
    "decode_inference_request",
    "dumps",
    "encode_inference_answer",
    "error_response",
    "json_response",
    "parse_json",
    "response",
]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
#: JSON headers of binary requests (and of binary answers) parsed / written once and reused:
#: clients send the same header for every request of the same shape.
CACHED_HEADERS = 1024
_CACHEABLE_HEADER_BYTES = 4096
#: Answers shorter than this go uncompressed even when the client accepts gzip / deflate
#: (HTTP lets a server always answer identity): compressing a batch-1 answer costs more CPU
#: than its bytes cost on the wire, and clients such as aiohttp (tritonclient.http.aio)
#: offer gzip on every request without being asked to.
_MIN_COMPRESSED_BYTES = 1024


def dumps(obj: object) -> bytes:
    """Strict JSON (RFC 8259), compact: a non-finite float is spelt as the string ``"NaN"``,
    ``"Infinity"`` or ``"-Infinity"``, as in every JSON file hepfpga writes
    (:data:`hepfpga.artifacts.NONFINITE_STRINGS`); ``float(s)`` and numpy
    (``tritonclient``'s ``as_numpy``) read them back."""
    return dumps_strict(obj, separators=(",", ":")).encode()


def json_response(status: int, body: object, keep_alive: bool = True) -> bytes:
    payload = dumps(body)
    return response(status, payload, b"application/json", keep_alive=keep_alive)


def error_response(status: int, message: str, keep_alive: bool = True) -> bytes:
    return json_response(status, {"error": message}, keep_alive)


def response(
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    extra: bytes = b"",
    keep_alive: bool = True,
) -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
        status,
        _REASONS.get(status, "Error").encode(),
        content_type,
        len(body),
        extra,
        b"" if keep_alive else b"Connection: close\r\n",
    )
    return head + body


class HttpRequest:
    """One request as the transport received it: URL, method, body chunks, the headers the
    routes read."""

    __slots__ = ("accept", "body", "body_size", "encoding", "header_length", "method", "url")

    def __init__(self) -> None:
        self.url = b""
        self.method = b""
        self.body: list[bytes] = []
        self.body_size = 0
        self.header_length: int | None = None
        self.encoding = b""
        self.accept = b""


def decode_body(request: HttpRequest, limit: int) -> bytes:
    body = request.body[0] if len(request.body) == 1 else b"".join(request.body)
    encoding = request.encoding
    if encoding in (b"", b"identity"):
        return body
    if encoding not in (b"gzip", b"deflate"):
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            f"unsupported Content-Encoding '{encoding.decode()}'; accepted: gzip, deflate",
        )
    try:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == b"gzip" else zlib.MAX_WBITS)
        out = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            f"cannot decompress the {encoding.decode()} request body: {exc}",
        ) from exc
    if not decoder.eof and len(out) <= limit:
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            f"cannot decompress the {encoding.decode()} request body: truncated",
        )
    if len(out) > limit:
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            f"the decompressed request body exceeds the maximum allowed value of {limit} bytes",
        )
    return out


def parse_json(head: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT, f"failed to parse the request JSON buffer: {exc}"
        ) from exc
    except RecursionError:  # arrays or objects nested thousands deep
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT, "failed to parse the request JSON buffer: nested too deeply"
        ) from None
    if not isinstance(doc, dict):
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            "failed to parse the request JSON buffer: expected a JSON object",
        )
    return doc


class InferenceHeader:
    """A parsed, validated inference request header (the JSON part of the body): what every
    request with the same header bytes shares. Read-only: it may be cached."""

    __slots__ = ("binary", "doc", "inputs", "outputs", "request_id")

    def __init__(self, head: bytes) -> None:
        self.doc = doc = parse_json(head)
        self.inputs = _tensor_specs(doc)
        request_id = doc.get("id", "")
        if not isinstance(request_id, str):
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"'id' must be a string, got {type(request_id).__name__}",
            )
        self.request_id: str = request_id
        self.outputs, self.binary = _requested_outputs(doc)


@functools.lru_cache(maxsize=CACHED_HEADERS)
def _cached_header(head: bytes) -> InferenceHeader:
    """:class:`InferenceHeader` of ``head``, parsed once (errors are raised each time, never
    cached)."""
    return InferenceHeader(head)


def decode_inference_request(
    body: bytes, header_length: int | None
) -> tuple[InferenceHeader, list[TensorInput]]:
    """The header and the inputs of an inference request body: all JSON, or (binary tensor
    extension) ``header_length`` bytes of JSON followed by the tensors' bytes."""
    if header_length is not None:
        if not 0 <= header_length <= len(body):
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"Inference-Header-Content-Length {header_length} is outside the body of "
                f"{len(body)} bytes",
            )
        head, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        head, binary = body, memoryview(b"")
    header = _cached_header(head) if len(head) <= _CACHEABLE_HEADER_BYTES else InferenceHeader(head)
    return header, _tensor_inputs(header, binary)


def _tensor_specs(
    doc: dict[str, Any],
) -> list[tuple[str, str, list[int], int | None, RegionRef | None]]:
    """(name, datatype, shape, binary_data_size or None, shared memory region or None) of
    each input, validated."""
    items = doc.get("inputs")
    if not isinstance(items, list):
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT, "inference request JSON must have an 'inputs' array"
        )
    specs = []
    for item in items:
        if not isinstance(item, dict):
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT, "each element of 'inputs' must be a JSON object"
            )
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT, "each input needs a string 'name' and 'datatype'"
            )
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape
        ):
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT, f"input '{name}' needs 'shape', a list of integers"
            )
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            params = {}
        region = _region(params, f"input '{name}'")
        size = params.get("binary_data_size")
        if region is not None:
            size = None
        elif size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise RequestError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"input '{name}': binary_data_size {size!r} is not a byte count",
                )
        elif item.get("data") is None:
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"input '{name}' has neither 'data' nor binary_data_size",
            )
        specs.append((name, datatype, shape, size, region))
    return specs


def _tensor_inputs(header: InferenceHeader, binary: memoryview) -> list[TensorInput]:
    inputs = []
    offset = 0
    items = header.doc["inputs"]
    for (name, datatype, shape, size, region), item in zip(header.inputs, items, strict=True):
        if region is not None:
            inputs.append(TensorInput(name, datatype, shape, None, region))
            continue
        if size is not None:
            if offset + size > len(binary):
                raise RequestError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"input '{name}': binary_data_size {size} runs past the {len(binary)} bytes "
                    "of binary data after the JSON header",
                )
            data: Any = binary[offset : offset + size]
            offset += size
        else:
            data = item.get("data")
        inputs.append(TensorInput(name, datatype, shape, data))
    if offset != len(binary):
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            f"{len(binary) - offset} bytes of binary data are not claimed by any input",
        )
    return inputs


def _requested_outputs(doc: dict[str, Any]) -> tuple[list[OutputRequest] | None, list[bool]]:
    """The outputs asked for (None: all of them) and whether each goes back binary (for all
    outputs: one flag, the default)."""
    params = doc.get("parameters") or {}
    default_binary = (
        bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    )
    requested = doc.get("outputs")
    if not requested:
        return None, [default_binary]
    if not isinstance(requested, list):
        raise RequestError(ErrorCode.INVALID_ARGUMENT, "'outputs' must be an array")
    out = []
    binary = []
    for item in requested:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "each output needs a string 'name'")
        p = item.get("parameters") or {}
        if not isinstance(p, dict):
            p = {}
        if "class_count" in p:
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                "the classification extension (class_count) is not supported",
            )
        out.append(OutputRequest(item["name"], _region(p, f"output '{item['name']}'")))
        binary.append(bool(p.get("binary_data", default_binary)))
    return out, binary


def _region(params: dict[str, Any], what: str) -> RegionRef | None:
    """The shared memory region named in ``params`` (Triton's parameter names), if any."""
    region = params.get("shared_memory_region")
    if region is None:
        return None
    size = params.get("shared_memory_byte_size")
    offset = params.get("shared_memory_offset", 0)
    if not isinstance(region, str) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (size, offset)
    ):
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            f"{what}: shared_memory_region needs a string name and non-negative integers "
            "shared_memory_byte_size and shared_memory_offset",
        )
    return RegionRef(region, size, offset)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=CACHED_HEADERS)
def _binary_answer_header(
    name: str,
    version: str,
    request_id: str,
    outputs: tuple[tuple[str, str, tuple[int, ...], int], ...],
) -> bytes:
    """The JSON header of an answer whose outputs are all binary (name, datatype, shape,
    byte size each): the same for every answer of the same shapes, so written once."""
    head: dict[str, Any] = {"model_name": name, "model_version": version}
    if request_id:
        head["id"] = request_id
    head["outputs"] = [
        {
            "name": output,
            "datatype": datatype,
            "shape": list(shape),
            "parameters": {"binary_data_size": size},
        }
        for output, datatype, shape, size in outputs
    ]
    return dumps(head)


def _answer_header(
    model: LoadedModel, tensors: list[OutputTensor], binary: list[bool], request_id: str
) -> tuple[bytes, list[bytes]]:
    """The JSON header of an answer with some outputs as JSON data or in shared memory, and
    the binary ones."""
    described = []
    blobs = []
    for i, tensor in enumerate(tensors):
        array = tensor.array
        entry: dict[str, Any] = {
            "name": tensor.spec.name,
            "datatype": tensor.spec.datatype,
            "shape": list(array.shape),
        }
        if tensor.region is not None:
            pass  # written to shared memory: name, datatype and shape only, as Triton answers
        elif binary[i if len(binary) > 1 else 0]:
            blob = np.ascontiguousarray(array).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.ravel().tolist()
        described.append(entry)
    head: dict[str, Any] = {"model_name": model.spec.name, "model_version": model.version}
    if request_id:
        head["id"] = request_id
    head["outputs"] = described
    return dumps(head), blobs


def encode_inference_answer(
    model: LoadedModel,
    tensors: list[OutputTensor],
    binary: list[bool],
    request_id: str,
    keep_alive: bool,
    gzip_ok: bool,
    deflate_ok: bool,
) -> bytes:
    if all(binary) and all(t.region is None for t in tensors):
        blobs = [np.ascontiguousarray(t.array).tobytes() for t in tensors]
        header = _binary_answer_header(
            model.spec.name,
            model.version,
            request_id,
            tuple(
                (t.spec.name, t.spec.datatype, t.array.shape, len(blob))
                for t, blob in zip(tensors, blobs, strict=True)
            ),
        )
    else:
        header, blobs = _answer_header(model, tensors, binary, request_id)
    extra = b""
    if blobs:
        body = header + b"".join(blobs)
        content_type = b"application/octet-stream"
        extra = b"Inference-Header-Content-Length: %d\r\n" % len(header)
    else:
        body = header
        content_type = b"application/json"
    if (gzip_ok or deflate_ok) and len(body) >= _MIN_COMPRESSED_BYTES:
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS if gzip_ok else zlib.MAX_WBITS)
        body = compressor.compress(body) + compressor.flush()
        extra += b"Content-Encoding: %s\r\n" % (b"gzip" if gzip_ok else b"deflate")
    return response(200, body, content_type, extra, keep_alive)
