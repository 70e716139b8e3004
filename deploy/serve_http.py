"""The HTTP/REST front end of the KServe v2 protocol, with Triton's extensions.

A plain :class:`asyncio.Protocol` over ``httptools`` (the parser uvicorn uses): no framework
between the socket and the model, which keeps a batch-1 request well under a millisecond.
HTTP/1.1 keep-alive and pipelining (answers in request order), request bodies up to
``max_request_bytes``, gzip/deflate request and response bodies, and the binary tensor
extension: a body of ``Inference-Header-Content-Length`` bytes of JSON followed by the raw
tensors named by ``parameters.binary_data_size``.

This module is the transport: connections, parsing, answers written in request order, limits
and timeouts. The routes are :mod:`hepfpga.deploy.http_routes`; the JSON and tensor codec
:mod:`hepfpga.deploy.http_codec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from hepfpga._optional import require
from hepfpga.deploy.frontends import (
    FrontEndOptions,
    ListenerBase,
    bind_error,
    register_front_end,
)
from hepfpga.deploy.http_codec import HttpRequest, dumps, error_response
from hepfpga.deploy.http_routes import Answer, PendingInference, route

if TYPE_CHECKING:
    from hepfpga.deploy.service import InferenceService

__all__ = ["HttpFrontEnd", "HttpProtocol", "dumps"]

log = logging.getLogger("hepfpga.serve")

_MAX_PIPELINED = 64  # answers waiting per connection before reading pauses


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, front: HttpFrontEnd) -> None:
        # deferred, optional: httptools (hepfpga[serve])
        import httptools

        self._server = front
        self._httptools = httptools
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._request = HttpRequest()
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
        self._queue(error_response(status, message, keep_alive=False), close=True)

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._request = HttpRequest()
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
            answer = error_response(500, f"internal error: {exc}", keep_alive)
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
                    data = error_response(500, f"internal error: {exc}")
            else:
                if not head.done():
                    break
                data = (
                    error_response(503, "request cancelled") if head.cancelled() else head.result()
                )
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

    def dispatch(self, method: bytes, request: HttpRequest, keep_alive: bool) -> Answer:
        return route(self.service, self.max_request_bytes, method, request, keep_alive)
