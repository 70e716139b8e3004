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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The built-in front ends register themselves on import (their servers' own dependencies are
# imported when they start).
from hepfpga.deploy import serve_grpc, serve_http  # noqa: F401
from hepfpga.deploy.frontends import (
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_REQUEST_BYTES,
    FrontEnd,
    FrontEndOptions,
    front_end,
)
from hepfpga.deploy.model_spec import ModelVersion
from hepfpga.deploy.serve_models import DEFAULT_INLINE_MAX_US, ModelRegistry
from hepfpga.deploy.service import InferenceService, ModelControl
from hepfpga.deploy.triton_repo import (
    discover_models,
    repository_model,
    repository_model_names,
)
from hepfpga.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "InferenceServer",
    "ServerAddresses",
    "parse_cpu_list",
    "serve",
]

log = logging.getLogger("hepfpga.serve")


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
    """Front ends (HTTP, gRPC: :mod:`hepfpga.deploy.frontends`) over one
    :class:`~hepfpga.deploy.service.InferenceService`.

    ``http_port`` / ``grpc_port`` of 0 pick a free port, None disables that front end;
    ``front_ends`` (name -> port, any registered front end) replaces both. ``models`` is what
    to serve, or a ready service (e.g. one in explicit model control mode).
    """

    def __init__(
        self,
        models: Sequence[ModelVersion] | ModelRegistry | InferenceService,
        *,
        host: str = "127.0.0.1",
        http_port: int | None = 8000,
        grpc_port: int | None = 8001,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        drain_timeout_s: float = 30.0,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        front_ends: Mapping[str, int | None] | None = None,
    ) -> None:
        self._ports: dict[str, int | None] = (
            dict(front_ends) if front_ends is not None else {"http": http_port, "grpc": grpc_port}
        )
        _check_ports(self._ports)
        self.service = models if isinstance(models, InferenceService) else InferenceService(models)
        self.host = host
        self.drain_timeout_s = drain_timeout_s
        self.options = FrontEndOptions(
            max_request_bytes=max_request_bytes,
            header_timeout_s=header_timeout_s,
            idle_timeout_s=idle_timeout_s,
        )
        self.front_ends: dict[str, FrontEnd] = {}
        self.addresses = ServerAddresses(host, None, None)

    @property
    def registry(self) -> ModelRegistry:
        return self.service.registry

    @property
    def in_flight(self) -> int:
        return self.service.in_flight

    @property
    def draining(self) -> bool:
        return self.service.draining

    async def start(self) -> ServerAddresses:
        """Open the listeners on the running loop."""
        bound: dict[str, int] = {}
        for name, port in self._ports.items():
            if port is None:
                continue
            front = front_end(name)(self.service, self.host, port, self.options)
            self.front_ends[name] = front
            bound[name] = await front.start()
        self.addresses = ServerAddresses(self.host, bound.get("http"), bound.get("grpc"))
        return self.addresses

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop accepting, answer what was received (up to ``timeout_s``), close."""
        timeout_s = self.drain_timeout_s if timeout_s is None else timeout_s
        self.service.draining = True
        for front in self.front_ends.values():
            front.close_listener(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (
            self.service.in_flight > 0 or not all(f.idle for f in self.front_ends.values())
        ):
            await asyncio.sleep(0.005)
        for front in self.front_ends.values():
            await front.stop(max(deadline - time.monotonic(), 0.0))
        await asyncio.get_running_loop().run_in_executor(None, self.service.close)

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


def _check_ports(ports: Mapping[str, int | None]) -> None:
    """Two front ends never ask for the same fixed port."""
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port is None or port <= 0:
            continue
        if port in seen:
            first = seen[port]
            what = (
                "the HTTP and gRPC ports"
                if {first, name} == {"http", "grpc"}
                else (f"the {first} and {name} ports")
            )
            raise ConfigError(
                f"{what} are both {port}; accepted: different ports (0 picks a free one, -1 "
                "turns that front end off)",
                path=f"{name}_port",
            )
        seen[port] = name


def _explicit_start(repo: Path, names: Sequence[str]) -> list[ModelVersion]:
    if not repo.is_dir() or (repo / "config.pbtxt").is_file() or (repo / "model.onnx").is_file():
        raise ConfigError(
            f"{repo} is not a model repository; explicit model control serves a folder of "
            "<name>/config.pbtxt and <name>/<version>/model.onnx",
            path="model_control_mode",
        )
    wanted = repository_model_names(repo) if "*" in names else list(dict.fromkeys(names))
    return [version for name in wanted for version in repository_model(repo, name)]


def _event_loop_policy() -> None:
    try:
        # deferred, optional: uvloop (hepfpga[serve])
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
    model_control: ModelControl = "none",
    load_models: Sequence[str] = (),
    on_ready: Callable[[InferenceServer, ServerAddresses], None] | None = None,
    inline_max_us: float = DEFAULT_INLINE_MAX_US,
) -> None:
    """Serve every model under ``path`` (a Triton model repository, a run folder or an
    ``.onnx`` file) until SIGTERM/SIGINT; blocks.

    ``cpus`` pins the process to those CPUs before any thread starts (event loop, instance
    threads, gRPC's and onnxruntime's threads all inherit it), as ``taskset`` would: on one
    CPU the hand-off loop -> instance thread -> loop needs no cross-CPU wake-up, which makes
    unbatched serving of a small model about 2.5x faster on a VM (see docs/serving.md), at the
    price of onnxruntime never running beside the protocol work on another core.

    ``model_control="explicit"`` (``path`` must be a model repository) starts with only the
    models named in ``load_models`` (``*``: all) and lets clients load and unload models
    through the repository API while serving.

    ``inline_max_us`` is the on-loop budget: a batch whose model call took at most this many
    microseconds at load may run on the event loop when every instance is idle (0: never;
    see :mod:`hepfpga.deploy.batching`).
    """
    if model_control == "explicit":
        models = _explicit_start(Path(path), load_models)
    else:
        if load_models:
            raise ConfigError(
                "models to load at start are chosen only in explicit model control mode; "
                "accepted: --model-control-mode explicit with --load-model",
                path="load_model",
            )
        models = discover_models(Path(path))
    if cpus:
        _pin_process(cpus)
    _check_ports({"http": http_port, "grpc": grpc_port})  # before any session is made
    service = InferenceService(
        models,
        repository=Path(path) if model_control == "explicit" else None,
        model_control=model_control,
        inline_max_us=inline_max_us,
    )
    server = InferenceServer(
        service,
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
