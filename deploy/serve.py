"""``hepfpga serve``: ONNX models over the KServe v2 / Triton protocol, HTTP and gRPC.

One process, one asyncio event loop (uvloop when installed) carrying both front ends
(:mod:`hepfpga.deploy.serve_http`, :mod:`hepfpga.deploy.serve_grpc`); the models run on
instance threads fed by :mod:`hepfpga.deploy.batching`, so the loop never waits for
onnxruntime. SIGTERM or SIGINT drains: the listeners close, requests already received are
answered (up to ``drain_timeout_s``), then the process exits.

Example::

    from hepfpga.deploy.serve import InferenceServer, serve
    serve("runs/jet_tagging", http_port=8000, grpc_port=8001)   # blocks until SIGTERM
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepfpga import __version__
from hepfpga._optional import require
from hepfpga.deploy.serve_models import ModelRegistry
from hepfpga.deploy.triton_repo import ModelVersion, discover_models
from hepfpga.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "InferenceServer",
    "ServerAddresses",
    "parse_cpu_list",
    "serve",
]

log = logging.getLogger("hepfpga.serve")

#: Largest request body (HTTP) or message (gRPC) accepted; Triton's HTTP default is 64 MiB.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
#: Seconds from a request's first byte to the end of its headers before the server answers
#: 408 and closes the connection.
DEFAULT_HEADER_TIMEOUT_S = 30.0
#: Seconds a connection may receive nothing while no answer is owed to it (an idle keep-alive
#: connection, or a request body that stopped arriving) before it is closed.
DEFAULT_IDLE_TIMEOUT_S = 300.0

_EXTENSIONS = [
    "binary_tensor_data",
    "model_configuration",
    "model_repository(index)",
    "statistics",
    "parameters",
]


@dataclass(frozen=True)
class ServerAddresses:
    """Where a started server listens (ports resolved when 0 was asked for)."""

    host: str
    http_port: int | None
    grpc_port: int | None

    @property
    def http_url(self) -> str | None:
        return f"{self.host}:{self.http_port}" if self.http_port is not None else None

    @property
    def grpc_url(self) -> str | None:
        return f"{self.host}:{self.grpc_port}" if self.grpc_port is not None else None


class InferenceServer:
    """The HTTP and gRPC front ends over a set of loaded models.

    ``http_port`` / ``grpc_port`` of 0 pick a free port, None disables that front end.
    """

    def __init__(
        self,
        models: Sequence[ModelVersion] | ModelRegistry,
        *,
        host: str = "127.0.0.1",
        http_port: int | None = 8000,
        grpc_port: int | None = 8001,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        drain_timeout_s: float = 30.0,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        if http_port is not None and http_port > 0 and http_port == grpc_port:
            raise ConfigError(
                f"the HTTP and gRPC ports are both {http_port}; accepted: two different ports "
                "(0 picks a free one, -1 turns that front end off)",
                path="grpc_port",
            )
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._sweeper: asyncio.Task[None] | None = None
        self.registry = models if isinstance(models, ModelRegistry) else ModelRegistry(models)
        self.host = host
        self.max_request_bytes = max_request_bytes
        self.drain_timeout_s = drain_timeout_s
        self.draining = False
        self.in_flight = 0
        self.connections: set[Any] = set()
        self._want_http = http_port
        self._want_grpc = grpc_port
        self._http: asyncio.AbstractServer | None = None
        self._grpc: Any = None
        self.addresses = ServerAddresses(host, None, None)
        from hepfpga.deploy.serve_http import route

        self._route = route

    @property
    def ready(self) -> bool:
        return not self.draining

    def metadata(self) -> dict[str, Any]:
        return {"name": "hepfpga", "version": __version__, "extensions": _EXTENSIONS}

    def http_dispatch(self, conn: Any, method: bytes, request: Any, keep_alive: bool) -> Any:
        return self._route(self, method, request, keep_alive)

    async def start(self) -> ServerAddresses:
        """Open the listeners on the running loop."""
        http_port = grpc_port = None
        if self._want_http is not None:
            require("httptools", "serve", "the HTTP server")
            from hepfpga.deploy.serve_http import HttpProtocol

            loop = asyncio.get_running_loop()
            try:
                self._http = await loop.create_server(
                    lambda: HttpProtocol(self),
                    self.host,
                    self._want_http,
                    reuse_address=True,
                    backlog=1024,
                )
            except OSError as exc:
                raise _bind_error("HTTP", self.host, self._want_http, exc.strerror) from None
            http_port = self._http.sockets[0].getsockname()[1]
            self._sweeper = loop.create_task(self._sweep_connections())
        if self._want_grpc is not None:
            grpc = require("grpc", "serve", "the gRPC server")
            pb_grpc = require("tritonclient.grpc.service_pb2_grpc", "serve", "the gRPC server")
            from hepfpga.deploy.serve_grpc import make_servicer

            limit = self.max_request_bytes
            self._grpc = grpc.aio.server(
                options=[
                    ("grpc.max_receive_message_length", limit),
                    ("grpc.max_send_message_length", limit),
                    ("grpc.so_reuseport", 0),
                    # connections with no call in flight are closed after the idle timeout
                    ("grpc.max_connection_idle_ms", int(self.idle_timeout_s * 1000)),
                ]
            )
            pb_grpc.add_GRPCInferenceServiceServicer_to_server(make_servicer(self), self._grpc)
            try:
                grpc_port = self._grpc.add_insecure_port(f"{self.host}:{self._want_grpc}")
            except RuntimeError:  # grpc says only "Failed to bind to address"
                grpc_port = 0
            if not grpc_port:
                raise _bind_error("gRPC", self.host, self._want_grpc, "address already in use")
            await self._grpc.start()
        self.addresses = ServerAddresses(self.host, http_port, grpc_port)
        return self.addresses

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop accepting, answer what was received (up to ``timeout_s``), close."""
        timeout_s = self.drain_timeout_s if timeout_s is None else timeout_s
        self.draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._http is not None:
            self._http.close()
        grpc_stop = self._grpc.stop(timeout_s) if self._grpc is not None else None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (
            self.in_flight > 0 or any(not c.idle for c in self.connections)
        ):
            await asyncio.sleep(0.005)
        for conn in list(self.connections):
            conn.close()
        if grpc_stop is not None:
            await grpc_stop
        if self._http is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http.wait_closed(), 1.0)
        await asyncio.get_running_loop().run_in_executor(None, self.registry.close)

    async def _sweep_connections(self) -> None:
        """Close HTTP connections whose requests stall (see ``HttpProtocol.check_timeouts``);
        one timer for all connections, so the request path pays nothing for it."""
        period = min(1.0, max(0.01, min(self.header_timeout_s, self.idle_timeout_s) / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.check_timeouts(now, self.header_timeout_s, self.idle_timeout_s)

    async def run_until_signal(
        self, on_ready: Callable[[ServerAddresses], None] | None = None
    ) -> None:
        """Start, wait for SIGTERM/SIGINT, drain and stop."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            addresses = await self.start()
            if on_ready is not None:
                on_ready(addresses)
            await stop.wait()
            log.info("draining %d requests in flight", self.in_flight)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()


def _bind_error(what: str, host: str, port: int | None, reason: str) -> ConfigError:
    return ConfigError(
        f"cannot listen for {what} on {host}:{port}: {reason.lower()}; accepted: a free port "
        "(0 picks one), or -1 to turn this front end off",
        path=f"{what.lower()}_port",
    )


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # plain asyncio works, a little slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def parse_cpu_list(text: str) -> frozenset[int]:
    """CPUs written as Linux writes them (``0``, ``0,2``, ``0-3,6``), each one of this
    machine's (``0`` to ``os.cpu_count() - 1``). Raises :class:`ConfigError` naming the bad
    item and the CPUs there are."""
    count = os.cpu_count() or 1
    available = f"this machine has CPUs 0-{count - 1}"
    cpus: set[int] = set()
    for item in text.split(","):
        first, _, last = item.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if last else low
        except ValueError:
            raise ConfigError(
                f"'{item}' is not a CPU number or range (e.g. 0 or 0-3); {available}", path="cpus"
            ) from None
        if low < 0 or high < low:
            raise ConfigError(f"'{item}' is not a valid CPU range; {available}", path="cpus")
        if high >= count:
            raise ConfigError(
                f"CPU {max(low, count)} (from '{item}') is not available; {available}", path="cpus"
            )
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def _pin_process(cpus: frozenset[int]) -> None:
    """Pin every thread of this process (numpy's BLAS pool started at import included) and,
    through inheritance, every thread started later."""
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:  # e.g. CPUs outside this container's cpuset
        raise ConfigError(
            f"cannot pin the server to CPUs {sorted(cpus)}: {exc.strerror}; this process may "
            f"use CPUs {sorted(os.sched_getaffinity(0))}",
            path="cpus",
        ) from None
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)


def serve(
    path: Path | str,
    *,
    host: str = "127.0.0.1",
    http_port: int | None = 8000,
    grpc_port: int | None = 8001,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    drain_timeout_s: float = 30.0,
    cpus: frozenset[int] | None = None,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    on_ready: Callable[[InferenceServer, ServerAddresses], None] | None = None,
) -> None:
    """Serve every model under ``path`` (a Triton model repository, a run folder or an
    ``.onnx`` file) until SIGTERM/SIGINT; blocks.

    ``cpus`` pins the process to those CPUs before any thread starts (event loop, instance
    threads, gRPC's and onnxruntime's threads all inherit it), as ``taskset`` would: on one
    CPU the hand-off loop -> instance thread -> loop needs no cross-CPU wake-up, which makes
    unbatched serving of a small model about 2.5x faster on a VM (see docs/serving.md), at the
    price of onnxruntime never running beside the protocol work on another core.
    """
    models = discover_models(Path(path))
    if cpus:
        _pin_process(cpus)
    server = InferenceServer(
        models,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        max_request_bytes=max_request_bytes,
        drain_timeout_s=drain_timeout_s,
        header_timeout_s=header_timeout_s,
        idle_timeout_s=idle_timeout_s,
    )
    _event_loop_policy()
    try:
        asyncio.run(
            server.run_until_signal(
                (lambda addresses: on_ready(server, addresses)) if on_ready else None
            )
        )
    finally:
        asyncio.set_event_loop_policy(None)
