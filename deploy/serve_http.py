"""The HTTP/REST front end of the KServe v2 protocol, with Triton's extensions.

A plain :class:`asyncio.Protocol` over ``httptools`` (the parser uvicorn uses): no framework
between the socket and the model, which keeps a batch-1 request well under a millisecond.
HTTP/1.1 keep-alive and pipelining (answers in request order), request bodies up to
``max_request_bytes``, gzip/deflate request and response bodies, and the binary tensor
extension: a body of ``Inference-Header-Content-Length`` bytes of JSON followed by the raw
tensors named by ``parameters.binary_data_size``.

Routes (Triton's):

================================================  =========================================
``GET /v2/health/live``, ``/v2/health/ready``     200 when live / ready
``GET /v2``                                       server metadata
``GET /v2/models/M[/versions/V]``                 model metadata
``GET /v2/models/M[/versions/V]/ready``           200 when loaded, 400 when not (Triton's)
``GET /v2/models/M[/versions/V]/config``          the model configuration as JSON
``POST /v2/models/M[/versions/V]/infer``          inference
``GET /v2/models[/M[/versions/V]]/stats``         statistics extension
``POST /v2/repository/index``                     the models and versions served
``GET /metrics``                                  Prometheus text (Triton's metric names)
================================================  =========================================
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np

from hepfpga.deploy.metrics import render_prometheus
from hepfpga.deploy.serve_models import LoadedModel, RequestError, TensorInput

if TYPE_CHECKING:
    from hepfpga.deploy.serve import InferenceServer

__all__ = ["HttpProtocol"]

log = logging.getLogger("hepfpga.serve")

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
_MAX_PIPELINED = 64  # answers waiting per connection before reading pauses
#: JSON headers of binary requests (and of binary answers) parsed / written once and reused:
#: clients send the same header for every request of the same shape.
_CACHED_HEADERS = 1024
_CACHEABLE_HEADER_BYTES = 4096


#: How an answer spells a non-finite float: JSON has no NaN or Infinity, so they are written
#: as these strings (protobuf's canonical JSON mapping, as every JSON file hepfpga writes).
#: ``float(s)`` and numpy (``tritonclient``'s ``as_numpy``) read them back.
NONFINITE_STRINGS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _strict(obj: object) -> object:
    """``obj`` with every non-finite float spelt as :data:`NONFINITE_STRINGS`."""
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return NONFINITE_STRINGS["nan" if obj != obj else "inf" if obj > 0 else "-inf"]
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    return obj


def dumps(obj: object) -> bytes:
    """Strict JSON (RFC 8259: never a bare ``NaN`` token), compact."""
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:  # a non-finite float somewhere: spell it out and encode again
        return json.dumps(_strict(obj), separators=(",", ":"), allow_nan=False).encode()


def _json_response(status: int, body: object, keep_alive: bool = True) -> bytes:
    payload = dumps(body)
    return _response(status, payload, b"application/json", keep_alive=keep_alive)


def _error(status: int, message: str, keep_alive: bool = True) -> bytes:
    return _json_response(status, {"error": message}, keep_alive)


def _response(
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


class _Request:
    __slots__ = ("accept", "body", "body_size", "encoding", "header_length", "method", "url")

    def __init__(self) -> None:
        self.url = b""
        self.method = b""
        self.body: list[bytes] = []
        self.body_size = 0
        self.header_length: int | None = None
        self.encoding = b""
        self.accept = b""


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: InferenceServer) -> None:
        import httptools

        self._server = server
        self._httptools = httptools
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._request = _Request()
        self._pending: deque[bytes | asyncio.Future[bytes]] = deque()
        self._refused = False
        self._close_after: bytes | asyncio.Future[bytes] | None = None
        self._paused = False  # reading paused: too many answers waiting in order
        self._write_blocked = False  # reading paused: the client does not read its answers
        self._last_active = time.monotonic()  # last bytes received
        self._request_began: float | None = None  # a request's first byte, until its headers end
        self._in_request = False  # a request is partly received

    # -- connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        for item in self._pending:
            if isinstance(item, asyncio.Future):
                item.cancel()
        self._pending.clear()
        self._transport = None

    def pause_writing(self) -> None:
        # the transport's buffer is over its high-water mark: stop taking new requests
        # from a client that does not read its answers, so memory stays bounded
        self._write_blocked = True
        if self._transport is not None and not self._paused:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_blocked = False
        if self._transport is not None and not self._paused:
            self._transport.resume_reading()

    @property
    def idle(self) -> bool:
        return not self._pending

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def check_timeouts(self, now: float, header_timeout_s: float, idle_timeout_s: float) -> None:
        """Close a connection whose request headers took longer than ``header_timeout_s``
        since the request's first byte (408), or that received nothing for
        ``idle_timeout_s`` with no answer owed (408 in the middle of a request, else
        silently): a half-sent request never holds a connection for ever."""
        if self._transport is None or self._refused:
            return
        began = self._request_began
        if began is not None and now - began > header_timeout_s:
            self._refuse(408, f"request headers not received within {header_timeout_s:g} s")
        elif not self._pending and now - self._last_active > idle_timeout_s:
            if self._in_request:
                self._refuse(408, f"no request data received for {idle_timeout_s:g} s")
            else:
                self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._last_active = time.monotonic()
        if self._refused:
            return
        try:
            self._parser.feed_data(data)
        except self._httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except self._httptools.HttpParserError as exc:
            if not self._refused:  # a callback may have refused the request already
                self._refuse(400, f"malformed HTTP request: {exc}")

    def _refuse(self, status: int, message: str) -> None:
        """Answer an unusable request and close the connection after earlier answers."""
        self._refused = True
        self._queue(_error(status, message, keep_alive=False), close=True)

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._request = _Request()
        self._request_began = self._last_active
        self._in_request = True

    def on_headers_complete(self) -> None:
        self._request_began = None

    def on_url(self, url: bytes) -> None:
        self._request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key == b"inference-header-content-length":
            try:
                self._request.header_length = int(value)
            except ValueError:
                self._request.header_length = -1
        elif key == b"content-length":
            try:
                size = int(value)
            except ValueError:
                size = 0
            if size > self._server.max_request_bytes:
                self._refuse(
                    400,
                    f"request body of {size} bytes exceeds the maximum allowed value of "
                    f"{self._server.max_request_bytes} bytes",
                )
                raise self._httptools.HttpParserError("body too large")
        elif key == b"content-encoding":
            self._request.encoding = value.lower().strip()
        elif key == b"accept-encoding":
            self._request.accept = value.lower()
        elif (
            key == b"expect"
            and value.lower() == b"100-continue"
            and self._transport
            and not self._pending
        ):
            # curl asks before sending a body over 1 KiB; say yes rather than make it wait
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        request = self._request
        request.body.append(body)
        request.body_size += len(body)
        if request.body_size > self._server.max_request_bytes and not self._refused:
            self._refuse(
                400,
                "request body exceeds the maximum allowed value of "
                f"{self._server.max_request_bytes} bytes",
            )
            raise self._httptools.HttpParserError("body too large")

    def on_message_complete(self) -> None:
        self._in_request = False
        if self._refused:
            return
        request = self._request
        method = self._parser.get_method()
        keep_alive = self._parser.should_keep_alive()
        try:
            answer = self._server.http_dispatch(self, method, request, keep_alive)
        except RequestError as exc:
            answer = _error(exc.status, exc.message, keep_alive)
        except Exception as exc:  # a bug must not take the connection's peers down
            log.exception("error answering %s %s", method, request.url)
            answer = _error(500, f"internal error: {exc}", keep_alive)
        self._queue(answer, close=not keep_alive)
        if not keep_alive:
            self._refused = True  # whatever follows `Connection: close` is ignored

    # -- answers in request order ---------------------------------------------------------

    def _queue(self, answer: bytes | asyncio.Future[bytes], close: bool = False) -> None:
        transport = self._transport
        if transport is None:
            return
        if close:
            self._close_after = answer
        if not self._pending and isinstance(answer, bytes):
            transport.write(answer)
            if close:
                transport.close()
            return
        self._pending.append(answer)
        if isinstance(answer, asyncio.Future):
            answer.add_done_callback(self._flush)
        else:
            self._flush()
        if len(self._pending) >= _MAX_PIPELINED and not self._paused:
            self._paused = True
            if not self._write_blocked:
                transport.pause_reading()

    def _flush(self, _: object = None) -> None:
        transport = self._transport
        pending = self._pending
        while pending and transport is not None:
            head = pending[0]
            if isinstance(head, asyncio.Future):
                if not head.done():
                    break
                data = _error(503, "request cancelled") if head.cancelled() else head.result()
            else:
                data = head
            pending.popleft()
            transport.write(data)
            if head is self._close_after:
                transport.close()
                return
        if self._paused and len(pending) < _MAX_PIPELINED // 2 and transport is not None:
            self._paused = False
            if not self._write_blocked:
                transport.resume_reading()


# -- routing ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_CACHED_HEADERS)
def _split_url(url: bytes) -> tuple[str, tuple[str, ...]]:
    """The path of ``url`` and its unquoted segments; ValueError for an invalid URL. Cached:
    clients ask the same few URLs over and over."""
    import httptools

    try:
        path = httptools.parse_url(url).path.decode("latin-1")
    except httptools.HttpParserInvalidURLError as exc:
        raise ValueError(str(exc)) from exc
    return path, tuple(unquote(p) for p in path.strip("/").split("/"))


def route(
    server: InferenceServer, method: bytes, request: _Request, keep_alive: bool
) -> bytes | asyncio.Future[bytes]:
    """The answer to one request: bytes, or a future of bytes for an inference."""
    try:
        url_path, parts = _split_url(request.url)
    except ValueError:
        return _error(400, f"invalid URL {request.url!r}", keep_alive)
    if parts and parts[0] == "v2":
        parts = parts[1:]
    elif parts == ("metrics",):
        if method != b"GET":
            return _error(405, "use GET for /metrics", keep_alive)
        text = render_prometheus(m.stats for m in server.registry)
        return _response(
            200, text.encode(), b"text/plain; version=0.0.4; charset=utf-8", keep_alive=keep_alive
        )
    else:
        return _error(404, f"unknown URL '{url_path}'", keep_alive)

    if parts and parts[0] == "models" and len(parts) >= 2 and parts[1] != "stats":
        name = parts[1]
        rest = parts[2:]
        version = ""
        if len(rest) >= 2 and rest[0] == "versions":
            version = rest[1]
            rest = rest[2:]
        action = rest[0] if rest else ""
        if len(rest) > 1 or action not in ("", "ready", "config", "infer", "stats"):
            return _error(404, f"unknown URL '{url_path}'", keep_alive)
        if action == "infer":
            if method != b"POST":
                return _error(405, "use POST for inference", keep_alive)
            return infer(server, name, version, request, keep_alive)
        if method != b"GET":
            return _error(405, f"use GET for /{action or 'metadata'}", keep_alive)
        if action == "ready":
            # Triton answers an unknown model or version here with 400, not 404
            try:
                server.registry.get(name, version)
            except RequestError:
                return _error(400, "Model version not ready", keep_alive)
            return _response(200, b"", keep_alive=keep_alive)
        if action == "stats":
            return _json_response(
                200, {"model_stats": server.registry.stats(name, version)}, keep_alive
            )
        model = server.registry.get(name, version)
        if action == "config":
            return _json_response(200, model.config_json(), keep_alive)
        return _json_response(200, model.metadata(), keep_alive)

    path = "/".join(parts)
    if path == "health/live":
        return _response(200, b"", keep_alive=keep_alive)
    if path == "health/ready":
        ready = server.ready
        return _response(200 if ready else 400, b"", keep_alive=keep_alive)
    if path == "":
        if method != b"GET":
            return _error(405, "use GET for server metadata", keep_alive)
        return _json_response(200, server.metadata(), keep_alive)
    if path == "models/stats":
        return _json_response(200, {"model_stats": server.registry.stats()}, keep_alive)
    if path == "repository/index":
        return _json_response(200, server.registry.index(), keep_alive)
    if path.startswith("repository/models/"):
        return _error(
            400,
            "explicit model load / unload is not allowed: models are loaded at start",
            keep_alive,
        )
    return _error(404, f"unknown URL '{url_path}'", keep_alive)


def _body(request: _Request, limit: int) -> bytes:
    body = request.body[0] if len(request.body) == 1 else b"".join(request.body)
    encoding = request.encoding
    if encoding in (b"", b"identity"):
        return body
    if encoding not in (b"gzip", b"deflate"):
        raise RequestError(
            400, f"unsupported Content-Encoding '{encoding.decode()}'; accepted: gzip, deflate"
        )
    try:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == b"gzip" else zlib.MAX_WBITS)
        out = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestError(
            400, f"cannot decompress the {encoding.decode()} request body: {exc}"
        ) from exc
    if not decoder.eof and len(out) <= limit:
        raise RequestError(
            400, f"cannot decompress the {encoding.decode()} request body: truncated"
        )
    if len(out) > limit:
        raise RequestError(
            400, f"the decompressed request body exceeds the maximum allowed value of {limit} bytes"
        )
    return out


def _parse_json(head: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"failed to parse the request JSON buffer: {exc}") from exc
    except RecursionError:  # arrays or objects nested thousands deep
        raise RequestError(
            400, "failed to parse the request JSON buffer: nested too deeply"
        ) from None
    if not isinstance(doc, dict):
        raise RequestError(400, "failed to parse the request JSON buffer: expected a JSON object")
    return doc


class _Header:
    """A parsed, validated inference request header (the JSON part of the body): what every
    request with the same header bytes shares. Read-only: it may be cached."""

    __slots__ = ("doc", "inputs")

    def __init__(self, head: bytes) -> None:
        self.doc = _parse_json(head)
        self.inputs = _tensor_specs(self.doc)


@functools.lru_cache(maxsize=_CACHED_HEADERS)
def _cached_header(head: bytes) -> _Header:
    """:class:`_Header` of ``head``, parsed once (errors are raised each time, never cached)."""
    return _Header(head)


def _request(body: bytes, header_length: int | None) -> tuple[_Header, list[TensorInput]]:
    """The header and the inputs of an inference request body: all JSON, or (binary tensor
    extension) ``header_length`` bytes of JSON followed by the tensors' bytes."""
    if header_length is not None:
        if not 0 <= header_length <= len(body):
            raise RequestError(
                400,
                f"Inference-Header-Content-Length {header_length} is outside the body of "
                f"{len(body)} bytes",
            )
        head, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        head, binary = body, memoryview(b"")
    header = _cached_header(head) if len(head) <= _CACHEABLE_HEADER_BYTES else _Header(head)
    return header, _tensor_inputs(header, binary)


def _tensor_specs(doc: dict[str, Any]) -> list[tuple[str, str, list[int], int | None]]:
    """(name, datatype, shape, binary_data_size or None) of each input, validated."""
    items = doc.get("inputs")
    if not isinstance(items, list):
        raise RequestError(400, "inference request JSON must have an 'inputs' array")
    specs = []
    for item in items:
        if not isinstance(item, dict):
            raise RequestError(400, "each element of 'inputs' must be a JSON object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise RequestError(400, "each input needs a string 'name' and 'datatype'")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape
        ):
            raise RequestError(400, f"input '{name}' needs 'shape', a list of integers")
        params = item.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise RequestError(
                    400, f"input '{name}': binary_data_size {size!r} is not a byte count"
                )
        elif item.get("data") is None:
            raise RequestError(400, f"input '{name}' has neither 'data' nor binary_data_size")
        specs.append((name, datatype, shape, size))
    return specs


def _tensor_inputs(header: _Header, binary: memoryview) -> list[TensorInput]:
    inputs = []
    offset = 0
    items = header.doc["inputs"]
    for (name, datatype, shape, size), item in zip(header.inputs, items, strict=True):
        if size is not None:
            if offset + size > len(binary):
                raise RequestError(
                    400,
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
            400, f"{len(binary) - offset} bytes of binary data are not claimed by any input"
        )
    return inputs


def _requested_outputs(doc: dict[str, Any], model: LoadedModel) -> list[tuple[int, bool]]:
    """(index of the model output, binary) for each output to return."""
    params = doc.get("parameters") or {}
    default_binary = (
        bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    )
    requested = doc.get("outputs")
    names = [t.name for t in model.spec.outputs]
    if not requested:
        return [(i, default_binary) for i in range(len(names))]
    if not isinstance(requested, list):
        raise RequestError(400, "'outputs' must be an array")
    out = []
    for item in requested:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in names:
            raise RequestError(
                400, f"unexpected inference output '{name}' for model '{model.spec.name}'"
            )
        p = item.get("parameters") or {}
        if isinstance(p, dict) and "class_count" in p:
            raise RequestError(400, "the classification extension (class_count) is not supported")
        binary = (
            bool(p.get("binary_data", default_binary)) if isinstance(p, dict) else default_binary
        )
        out.append((names.index(name), binary))
    return out


def infer(
    server: InferenceServer, name: str, version: str, request: _Request, keep_alive: bool
) -> bytes | asyncio.Future[bytes]:
    received = time.perf_counter_ns()
    model = server.registry.get(name, version)
    try:
        if server.draining:
            raise RequestError(503, "Server is shutting down: no new inference requests")
        body = _body(request, server.max_request_bytes)
        header, inputs = _request(body, request.header_length)
        doc = header.doc
        request_id = doc.get("id", "")
        if not isinstance(request_id, str):
            raise RequestError(400, f"'id' must be a string, got {type(request_id).__name__}")
        arrays, batch = model.prepare(inputs, str(request_id))
        outputs = _requested_outputs(doc, model)
        result = model.submit(arrays, batch, received)
    except RequestError as exc:
        model.stats.record_failure(
            "OTHER" if exc.status != 503 else "REJECTED", time.perf_counter_ns() - received
        )
        return _error(exc.status, exc.message, keep_alive)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()
    server.in_flight += 1
    gzip_ok = b"gzip" in request.accept
    deflate_ok = b"deflate" in request.accept

    def done(future: asyncio.Future[list[np.ndarray]]) -> None:
        server.in_flight -= 1
        if answer.done():
            return
        if future.cancelled():
            answer.set_result(_error(503, "request cancelled", keep_alive))
            return
        exc = future.exception()
        if exc is not None:
            answer.set_result(
                _error(500, f"onnxruntime failed on model '{name}': {exc}", keep_alive)
            )
            return
        answer.set_result(
            _infer_response(
                model, future.result(), outputs, request_id, keep_alive, gzip_ok, deflate_ok
            )
        )

    result.add_done_callback(done)
    return answer


@functools.lru_cache(maxsize=_CACHED_HEADERS)
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
    model: LoadedModel,
    arrays: list[np.ndarray],
    outputs: list[tuple[int, bool]],
    request_id: object,
) -> tuple[bytes, list[bytes]]:
    """The JSON header of an answer with some outputs as JSON data, and the binary ones."""
    specs = model.spec.outputs
    described = []
    blobs = []
    for index, binary in outputs:
        array = arrays[index]
        entry: dict[str, Any] = {
            "name": specs[index].name,
            "datatype": specs[index].datatype,
            "shape": list(array.shape),
        }
        if binary:
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


def _infer_response(
    model: LoadedModel,
    arrays: list[np.ndarray],
    outputs: list[tuple[int, bool]],
    request_id: object,
    keep_alive: bool,
    gzip_ok: bool,
    deflate_ok: bool,
) -> bytes:
    specs = model.spec.outputs
    if isinstance(request_id, str) and all(binary for _, binary in outputs):
        blobs = [np.ascontiguousarray(arrays[index]).tobytes() for index, _ in outputs]
        header = _binary_answer_header(
            model.spec.name,
            model.version,
            request_id,
            tuple(
                (specs[index].name, specs[index].datatype, arrays[index].shape, len(blob))
                for (index, _), blob in zip(outputs, blobs, strict=True)
            ),
        )
    else:
        header, blobs = _answer_header(model, arrays, outputs, request_id)
    extra = b""
    if blobs:
        body = header + b"".join(blobs)
        content_type = b"application/octet-stream"
        extra = b"Inference-Header-Content-Length: %d\r\n" % len(header)
    else:
        body = header
        content_type = b"application/json"
    if gzip_ok or deflate_ok:
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS if gzip_ok else zlib.MAX_WBITS)
        body = compressor.compress(body) + compressor.flush()
        extra += b"Content-Encoding: %s\r\n" % (b"gzip" if gzip_ok else b"deflate")
    return _response(200, body, content_type, extra, keep_alive)
