"""The routes of the KServe v2 HTTP front end (Triton's), over one
:class:`~hepfpga.deploy.service.InferenceService`.

:func:`route` turns one received :class:`~hepfpga.deploy.http_codec.HttpRequest` into its
:data:`Answer`: bytes now, a future of bytes (model load and unload), or a
:class:`PendingInference` whose bytes are built when its model has run. The transport
(:mod:`hepfpga.deploy.serve_http`) writes the answers in request order.

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
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np

from hepfpga.deploy.http_codec import (
    CACHED_HEADERS,
    HttpRequest,
    decode_body,
    decode_inference_request,
    encode_inference_answer,
    error_response,
    json_response,
    parse_json,
    response,
)
from hepfpga.deploy.metrics import render_prometheus
from hepfpga.deploy.protocol import ErrorCode, RequestError

if TYPE_CHECKING:
    from hepfpga.deploy.service import InferenceService

__all__ = ["Answer", "PendingInference", "infer", "route"]

log = logging.getLogger("hepfpga.serve")


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


@functools.lru_cache(maxsize=CACHED_HEADERS)
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
    service: InferenceService, limit: int, method: bytes, request: HttpRequest, keep_alive: bool
) -> Answer:
    """The answer to one request: bytes, or a future of bytes (inference, model load)."""
    try:
        return _route(service, limit, method, request, keep_alive)
    except RequestError as exc:
        return error_response(exc.http_status, exc.message, keep_alive)


def _route(
    service: InferenceService, limit: int, method: bytes, request: HttpRequest, keep_alive: bool
) -> Answer:
    try:
        url_path, parts = _split_url(request.url)
    except ValueError:
        return error_response(400, f"invalid URL {request.url!r}", keep_alive)
    if parts and parts[0] == "v2":
        parts = parts[1:]
    elif parts == ("metrics",):
        if method != b"GET":
            return error_response(405, "use GET for /metrics", keep_alive)
        text = render_prometheus(m.stats for m in service.registry)
        return response(
            200, text.encode(), b"text/plain; version=0.0.4; charset=utf-8", keep_alive=keep_alive
        )
    else:
        return error_response(404, f"unknown URL '{url_path}'", keep_alive)

    if parts and parts[0] == "models" and len(parts) >= 2 and parts[1] != "stats":
        name = parts[1]
        rest = parts[2:]
        version = ""
        if len(rest) >= 2 and rest[0] == "versions":
            version = rest[1]
            rest = rest[2:]
        action = rest[0] if rest else ""
        if len(rest) > 1 or action not in ("", "ready", "config", "infer", "stats"):
            return error_response(404, f"unknown URL '{url_path}'", keep_alive)
        if action == "infer":
            if method != b"POST":
                return error_response(405, "use POST for inference", keep_alive)
            return infer(service, limit, name, version, request, keep_alive)
        if method != b"GET":
            return error_response(405, f"use GET for /{action or 'metadata'}", keep_alive)
        if action == "ready":
            # Triton answers an unknown model or version here with 400, not 404
            if not service.model_ready(name, version):
                return error_response(400, "Model version not ready", keep_alive)
            return response(200, b"", keep_alive=keep_alive)
        if action == "stats":
            return json_response(
                200, {"model_stats": service.statistics(name, version)}, keep_alive
            )
        model = service.model(name, version)
        if action == "config":
            return json_response(200, model.config_json(), keep_alive)
        return json_response(200, model.metadata(), keep_alive)

    path = "/".join(parts)
    if path == "health/live":
        return response(200, b"", keep_alive=keep_alive)
    if path == "health/ready":
        return response(200 if service.ready else 400, b"", keep_alive=keep_alive)
    if path == "":
        if method != b"GET":
            return error_response(405, "use GET for server metadata", keep_alive)
        return json_response(200, service.metadata(), keep_alive)
    if path == "models/stats":
        return json_response(200, {"model_stats": service.statistics()}, keep_alive)
    if parts and parts[0] == "repository":
        return _repository(service, limit, method, parts[1:], request, keep_alive, url_path)
    if parts and parts[0] in ("systemsharedmemory", "cudasharedmemory"):
        return _shared_memory(service, limit, method, parts, request, keep_alive, url_path)
    return error_response(404, f"unknown URL '{url_path}'", keep_alive)


def _json_body(request: HttpRequest, limit: int) -> dict[str, Any]:
    """The request's JSON object body; an empty body is an empty object."""
    body = decode_body(request, limit)
    return parse_json(body) if body.strip() else {}


def _repository(
    service: InferenceService,
    limit: int,
    method: bytes,
    parts: tuple[str, ...],
    request: HttpRequest,
    keep_alive: bool,
    url_path: str,
) -> Answer:
    """``POST /v2/repository/index``, ``.../models/M/load``, ``.../models/M/unload``."""
    if method != b"POST":
        return error_response(405, "use POST for the model repository API", keep_alive)
    doc = _json_body(request, limit)
    if parts == ("index",):
        return json_response(200, service.index(bool(doc.get("ready", False))), keep_alive)
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
    return error_response(404, f"unknown URL '{url_path}'", keep_alive)


def _answer_when_done(coroutine: Any, keep_alive: bool) -> asyncio.Future[bytes]:
    """200 with an empty body when ``coroutine`` ends, the error otherwise."""
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def done(task: asyncio.Task[None]) -> None:
        if answer.done():
            return
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, RequestError):
            answer.set_result(error_response(exc.http_status, exc.message, keep_alive))
        elif exc is not None or task.cancelled():
            log.error("repository action failed", exc_info=exc)
            answer.set_result(error_response(500, f"internal error: {exc}", keep_alive))
        else:
            answer.set_result(response(200, b"", keep_alive=keep_alive))

    asyncio.ensure_future(coroutine).add_done_callback(done)
    return answer


def _shared_memory(
    service: InferenceService,
    limit: int,
    method: bytes,
    parts: tuple[str, ...],
    request: HttpRequest,
    keep_alive: bool,
    url_path: str,
) -> bytes:
    """``/v2/systemsharedmemory[/region/R]/status|register|unregister``."""
    region = ""
    rest = parts[1:]
    if len(rest) == 3 and rest[0] == "region":
        region, rest = rest[1], rest[2:]
    if len(rest) != 1 or rest[0] not in ("status", "register", "unregister"):
        return error_response(404, f"unknown URL '{url_path}'", keep_alive)
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
            return json_response(200, [], keep_alive)
        return response(200, b"", keep_alive=keep_alive)
    if action == "status":
        if method != b"GET":
            return error_response(405, "use GET for the shared memory status", keep_alive)
        return json_response(200, service.shm.status(region), keep_alive)
    if method != b"POST":
        return error_response(405, f"use POST to {action} shared memory", keep_alive)
    if action == "unregister":
        service.shm.unregister(region)
        return response(200, b"", keep_alive=keep_alive)
    if not region:
        return error_response(404, f"unknown URL '{url_path}'", keep_alive)
    doc = _json_body(request, limit)
    service.shm.register(region, doc.get("key"), doc.get("offset", 0), doc.get("byte_size"))  # type: ignore[arg-type]
    return response(200, b"", keep_alive=keep_alive)


def infer(
    service: InferenceService,
    limit: int,
    name: str,
    version: str,
    request: HttpRequest,
    keep_alive: bool,
) -> Answer:
    received = time.perf_counter_ns()
    try:
        body = decode_body(request, limit)
        header, inputs = decode_inference_request(body, request.header_length)
        request_id, outputs, binary = header.request_id, header.outputs, header.binary
    except RequestError as exc:
        # refused before the service saw it: counted on the model when there is one
        with contextlib.suppress(RequestError):
            service.model(name, version).stats.record_failure(
                "OTHER", time.perf_counter_ns() - received
            )
        return error_response(exc.http_status, exc.message, keep_alive)
    try:
        inference = service.infer(
            name, version, inputs, request_id, outputs, received, may_run_on_loop=True
        )
    except RequestError as exc:
        return error_response(exc.http_status, exc.message, keep_alive)
    gzip_ok = b"gzip" in request.accept
    deflate_ok = b"deflate" in request.accept

    def build() -> bytes:
        try:
            tensors = inference.result()
        except RequestError as exc:
            return error_response(exc.http_status, exc.message, keep_alive)
        return encode_inference_answer(
            inference.model, tensors, binary, request_id, keep_alive, gzip_ok, deflate_ok
        )

    return PendingInference(inference.future, build)
