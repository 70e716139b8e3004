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
import contextlib
import functools
import json
import logging
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np

from hepfpga._optional import require
from hepfpga.artifacts import dumps_strict
from hepfpga.deploy.frontends import FrontEndOptions, ListenerBase, register_front_end
from hepfpga.deploy.metrics import render_prometheus
from hepfpga.deploy.protocol import ErrorCode, OutputRequest, RegionRef, RequestError, TensorInput
from hepfpga.errors import ConfigError

if TYPE_CHECKING:
    from hepfpga.deploy.serve_models import LoadedModel
    from hepfpga.deploy.service import InferenceService, OutputTensor

__all__ = ["HttpFrontEnd", "HttpProtocol", "dumps"]

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


class PendingInference:
    """The answer to an inference request, written once its model has run: ``build`` makes
    the bytes. Queued as it is (no future of its own): the connection writes it from the
    inference's done callback."""

    __slots__ = ("build", "future")

    def __init__(self, future: asyncio.Future[list[np.ndarray]], build: Callable[[], bytes]):
        self.future = future
        self.build = build


#: What a request is answered with: bytes now, or later (a future, an inference to finish).
Answer = bytes | asyncio.Future[bytes] | PendingInference


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, front: HttpFrontEnd) -> None:
        # deferred, optional: httptools (hepfpga[serve])
        import httptools

        self._server = front
        self._httptools = httptools
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._request = _Request()
        self._pending: deque[Answer] = deque()
        self._refused = False
        self._close_after: Answer | None = None
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
            # a PendingInference runs to its end (counted in flight); nobody reads it
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
            answer = self._server.dispatch(method, request, keep_alive)
        except Exception as exc:  # a bug must not take the connection's peers down
            log.exception("error answering %s %s", method, request.url)
            answer = _error(500, f"internal error: {exc}", keep_alive)
        self._queue(answer, close=not keep_alive)
        if not keep_alive:
            self._refused = True  # whatever follows `Connection: close` is ignored

    # -- answers in request order ---------------------------------------------------------

    def _queue(self, answer: Answer, close: bool = False) -> None:
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
        if isinstance(answer, PendingInference):
            answer.future.add_done_callback(self._flush)
        elif isinstance(answer, asyncio.Future):
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
            if isinstance(head, bytes):
                data = head
            elif isinstance(head, PendingInference):
                if not head.future.done():
                    break
                try:
                    data = head.build()
                except Exception as exc:  # a bug must not stall the connection's answers
                    log.exception("error answering an inference request")
                    data = _error(500, f"internal error: {exc}")
            else:
                if not head.done():
                    break
                data = _error(503, "request cancelled") if head.cancelled() else head.result()
            pending.popleft()
            transport.write(data)
            if head is self._close_after:
                transport.close()
                return
        if self._paused and len(pending) < _MAX_PIPELINED // 2 and transport is not None:
            self._paused = False
            if not self._write_blocked:
                transport.resume_reading()


# -- the front end -------------------------------------------------------------------------


@register_front_end("http")
class HttpFrontEnd(ListenerBase):
    """The HTTP/REST listener over an :class:`InferenceService`."""

    name = "http"

    def __init__(
        self, service: InferenceService, host: str, port: int, options: FrontEndOptions
    ) -> None:
        super().__init__(service, host, port, options)
        self.max_request_bytes = options.max_request_bytes
        self.connections: set[HttpProtocol] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> int:
        require("httptools", "serve", "the HTTP server")
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: HttpProtocol(self), self.host, self.port, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            raise bind_error("HTTP", self.host, self.port, exc.strerror or str(exc)) from None
        self._sweeper = loop.create_task(self._sweep_connections())
        return int(self._server.sockets[0].getsockname()[1])

    def close_listener(self, grace_s: float) -> None:
        if self._server is not None:
            self._server.close()

    @property
    def idle(self) -> bool:
        return all(c.idle for c in self.connections)

    async def stop(self, timeout_s: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), min(timeout_s, 1.0) or 0.01)

    async def _sweep_connections(self) -> None:
        """Close connections whose requests stall (see :meth:`HttpProtocol.check_timeouts`);
        one timer for all connections, so the request path pays nothing for it."""
        header_s = self.options.header_timeout_s
        idle_s = self.options.idle_timeout_s
        period = min(1.0, max(0.01, min(header_s, idle_s) / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.check_timeouts(now, header_s, idle_s)

    def dispatch(self, method: bytes, request: _Request, keep_alive: bool) -> Answer:
        return route(self.service, self.max_request_bytes, method, request, keep_alive)


def bind_error(what: str, host: str, port: int | None, reason: str) -> ConfigError:
    return ConfigError(
        f"cannot listen for {what} on {host}:{port}: {reason.lower()}; accepted: a free port "
        "(0 picks one), or -1 to turn this front end off",
        path=f"{what.lower()}_port",
    )


# -- routing ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_CACHED_HEADERS)
def _split_url(url: bytes) -> tuple[str, tuple[str, ...]]:
    """The path of ``url`` and its unquoted segments; ValueError for an invalid URL. Cached:
    clients ask the same few URLs over and over."""
    # deferred, optional: httptools (hepfpga[serve])
    import httptools

    try:
        path = httptools.parse_url(url).path.decode("latin-1")
    except httptools.HttpParserInvalidURLError as exc:
        raise ValueError(str(exc)) from exc
    return path, tuple(unquote(p) for p in path.strip("/").split("/"))


def route(
    service: InferenceService, limit: int, method: bytes, request: _Request, keep_alive: bool
) -> Answer:
    """The answer to one request: bytes, or a future of bytes (inference, model load)."""
    try:
        return _route(service, limit, method, request, keep_alive)
    except RequestError as exc:
        return _error(exc.http_status, exc.message, keep_alive)


def _route(
    service: InferenceService, limit: int, method: bytes, request: _Request, keep_alive: bool
) -> Answer:
    try:
        url_path, parts = _split_url(request.url)
    except ValueError:
        return _error(400, f"invalid URL {request.url!r}", keep_alive)
    if parts and parts[0] == "v2":
        parts = parts[1:]
    elif parts == ("metrics",):
        if method != b"GET":
            return _error(405, "use GET for /metrics", keep_alive)
        text = render_prometheus(m.stats for m in service.registry)
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
            return infer(service, limit, name, version, request, keep_alive)
        if method != b"GET":
            return _error(405, f"use GET for /{action or 'metadata'}", keep_alive)
        if action == "ready":
            # Triton answers an unknown model or version here with 400, not 404
            if not service.model_ready(name, version):
                return _error(400, "Model version not ready", keep_alive)
            return _response(200, b"", keep_alive=keep_alive)
        if action == "stats":
            return _json_response(
                200, {"model_stats": service.statistics(name, version)}, keep_alive
            )
        model = service.model(name, version)
        if action == "config":
            return _json_response(200, model.config_json(), keep_alive)
        return _json_response(200, model.metadata(), keep_alive)

    path = "/".join(parts)
    if path == "health/live":
        return _response(200, b"", keep_alive=keep_alive)
    if path == "health/ready":
        return _response(200 if service.ready else 400, b"", keep_alive=keep_alive)
    if path == "":
        if method != b"GET":
            return _error(405, "use GET for server metadata", keep_alive)
        return _json_response(200, service.metadata(), keep_alive)
    if path == "models/stats":
        return _json_response(200, {"model_stats": service.statistics()}, keep_alive)
    if parts and parts[0] == "repository":
        return _repository(service, limit, method, parts[1:], request, keep_alive, url_path)
    if parts and parts[0] in ("systemsharedmemory", "cudasharedmemory"):
        return _shared_memory(service, limit, method, parts, request, keep_alive, url_path)
    return _error(404, f"unknown URL '{url_path}'", keep_alive)


def _json_body(request: _Request, limit: int) -> dict[str, Any]:
    """The request's JSON object body; an empty body is an empty object."""
    body = _body(request, limit)
    return _parse_json(body) if body.strip() else {}


def _repository(
    service: InferenceService,
    limit: int,
    method: bytes,
    parts: tuple[str, ...],
    request: _Request,
    keep_alive: bool,
    url_path: str,
) -> Answer:
    """``POST /v2/repository/index``, ``.../models/M/load``, ``.../models/M/unload``."""
    if method != b"POST":
        return _error(405, "use POST for the model repository API", keep_alive)
    doc = _json_body(request, limit)
    if parts == ("index",):
        return _json_response(200, service.index(bool(doc.get("ready", False))), keep_alive)
    if len(parts) == 3 and parts[0] == "models" and parts[2] in ("load", "unload"):
        params = doc.get("parameters") or {}
        if isinstance(params, dict) and any(k == "config" or k.startswith("file:") for k in params):
            raise RequestError(
                ErrorCode.UNIMPLEMENTED,
                f"failed to load '{parts[1]}': a configuration or files sent with the load "
                "request are not supported; change the model repository and load again",
            )
        action = service.load if parts[2] == "load" else service.unload
        return _answer_when_done(action(parts[1]), keep_alive)
    return _error(404, f"unknown URL '{url_path}'", keep_alive)


def _answer_when_done(coroutine: Any, keep_alive: bool) -> asyncio.Future[bytes]:
    """200 with an empty body when ``coroutine`` ends, the error otherwise."""
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def done(task: asyncio.Task[None]) -> None:
        if answer.done():
            return
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, RequestError):
            answer.set_result(_error(exc.http_status, exc.message, keep_alive))
        elif exc is not None or task.cancelled():
            log.error("repository action failed", exc_info=exc)
            answer.set_result(_error(500, f"internal error: {exc}", keep_alive))
        else:
            answer.set_result(_response(200, b"", keep_alive=keep_alive))

    asyncio.ensure_future(coroutine).add_done_callback(done)
    return answer


def _shared_memory(
    service: InferenceService,
    limit: int,
    method: bytes,
    parts: tuple[str, ...],
    request: _Request,
    keep_alive: bool,
    url_path: str,
) -> bytes:
    """``/v2/systemsharedmemory[/region/R]/status|register|unregister``."""
    region = ""
    rest = parts[1:]
    if len(rest) == 3 and rest[0] == "region":
        region, rest = rest[1], rest[2:]
    if len(rest) != 1 or rest[0] not in ("status", "register", "unregister"):
        return _error(404, f"unknown URL '{url_path}'", keep_alive)
    action = rest[0]
    if parts[0] == "cudasharedmemory":
        # no CUDA regions are ever registered: status lists none, unregister has nothing
        # to do (clients such as perf_analyzer clean up both kinds), register is refused
        if action == "register":
            raise RequestError(
                ErrorCode.UNIMPLEMENTED,
                "CUDA shared memory is not supported; use system shared memory",
            )
        if action == "status":
            if region:
                raise RequestError(
                    ErrorCode.NOT_FOUND, f"Unable to find cuda shared memory region: '{region}'"
                )
            return _json_response(200, [], keep_alive)
        return _response(200, b"", keep_alive=keep_alive)
    if action == "status":
        if method != b"GET":
            return _error(405, "use GET for the shared memory status", keep_alive)
        return _json_response(200, service.shm.status(region), keep_alive)
    if method != b"POST":
        return _error(405, f"use POST to {action} shared memory", keep_alive)
    if action == "unregister":
        service.shm.unregister(region)
        return _response(200, b"", keep_alive=keep_alive)
    if not region:
        return _error(404, f"unknown URL '{url_path}'", keep_alive)
    doc = _json_body(request, limit)
    service.shm.register(region, doc.get("key"), doc.get("offset", 0), doc.get("byte_size"))  # type: ignore[arg-type]
    return _response(200, b"", keep_alive=keep_alive)


def _body(request: _Request, limit: int) -> bytes:
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


def _parse_json(head: bytes) -> dict[str, Any]:
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


class _Header:
    """A parsed, validated inference request header (the JSON part of the body): what every
    request with the same header bytes shares. Read-only: it may be cached."""

    __slots__ = ("binary", "doc", "inputs", "outputs", "request_id")

    def __init__(self, head: bytes) -> None:
        self.doc = doc = _parse_json(head)
        self.inputs = _tensor_specs(doc)
        request_id = doc.get("id", "")
        if not isinstance(request_id, str):
            raise RequestError(
                ErrorCode.INVALID_ARGUMENT,
                f"'id' must be a string, got {type(request_id).__name__}",
            )
        self.request_id: str = request_id
        self.outputs, self.binary = _requested_outputs(doc)


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
                ErrorCode.INVALID_ARGUMENT,
                f"Inference-Header-Content-Length {header_length} is outside the body of "
                f"{len(body)} bytes",
            )
        head, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        head, binary = body, memoryview(b"")
    header = _cached_header(head) if len(head) <= _CACHEABLE_HEADER_BYTES else _Header(head)
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


def _tensor_inputs(header: _Header, binary: memoryview) -> list[TensorInput]:
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


def infer(
    service: InferenceService,
    limit: int,
    name: str,
    version: str,
    request: _Request,
    keep_alive: bool,
) -> Answer:
    received = time.perf_counter_ns()
    try:
        body = _body(request, limit)
        header, inputs = _request(body, request.header_length)
        request_id, outputs, binary = header.request_id, header.outputs, header.binary
    except RequestError as exc:
        # refused before the service saw it: counted on the model when there is one
        with contextlib.suppress(RequestError):
            service.model(name, version).stats.record_failure(
                "OTHER", time.perf_counter_ns() - received
            )
        return _error(exc.http_status, exc.message, keep_alive)
    try:
        inference = service.infer(
            name, version, inputs, request_id, outputs, received, may_run_on_loop=True
        )
    except RequestError as exc:
        return _error(exc.http_status, exc.message, keep_alive)
    gzip_ok = b"gzip" in request.accept
    deflate_ok = b"deflate" in request.accept

    def build() -> bytes:
        try:
            tensors = inference.result()
        except RequestError as exc:
            return _error(exc.http_status, exc.message, keep_alive)
        return _infer_response(
            inference.model, tensors, binary, request_id, keep_alive, gzip_ok, deflate_ok
        )

    return PendingInference(inference.future, build)


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


def _infer_response(
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
    return _response(200, body, content_type, extra, keep_alive)
