"""Front ends of the inference service, found by name: ``http`` (KServe v2 REST with
Triton's extensions) and ``grpc`` (``inference.GRPCInferenceService``).

A front end decodes requests, calls :class:`~hepfpga.deploy.service.InferenceService` and
encodes answers; it owns only its listener and its connections. Another protocol plugs in
with :func:`register_front_end`::

    @register_front_end("myproto")
    class MyFrontEnd:
        def __init__(self, service, host, port, options): ...
        async def start(self) -> int: ...          # listen; the port bound
        def close_listener(self, grace_s) -> None: ...  # stop accepting (drain begins)
        @property
        def idle(self) -> bool: ...                # no answer owed on any connection
        async def stop(self, timeout_s: float) -> None: ...  # close what is left
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hepfpga.errors import ConfigError

if TYPE_CHECKING:
    from hepfpga.deploy.service import InferenceService

__all__ = [
    "FrontEnd",
    "FrontEndOptions",
    "ListenerBase",
    "front_end",
    "front_end_names",
    "register_front_end",
]


#: Largest request body (HTTP) or message (gRPC) accepted; Triton's HTTP default is 64 MiB.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
#: Seconds from a request's first byte to the end of its headers before the server answers
#: 408 and closes the connection.
DEFAULT_HEADER_TIMEOUT_S = 30.0
#: Seconds a connection may receive nothing while no answer is owed to it (an idle keep-alive
#: connection, or a request body that stopped arriving) before it is closed.
DEFAULT_IDLE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class FrontEndOptions:
    """Limits every front end applies to its connections."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S


class FrontEnd(Protocol):
    name: str

    async def start(self) -> int: ...

    def close_listener(self, grace_s: float) -> None: ...

    @property
    def idle(self) -> bool: ...

    async def stop(self, timeout_s: float) -> None: ...


class ListenerBase:
    """What every built-in front end keeps: the service, where to listen, its limits."""

    def __init__(
        self, service: InferenceService, host: str, port: int, options: FrontEndOptions
    ) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.options = options


FrontEndFactory = Callable[["InferenceService", str, int, FrontEndOptions], FrontEnd]

_FRONT_ENDS: dict[str, FrontEndFactory] = {}
#: built-in front ends, imported on first use (their dependencies come with the serve extra)
_BUILT_IN = {"http": "hepfpga.deploy.serve_http", "grpc": "hepfpga.deploy.serve_grpc"}


def register_front_end(name: str) -> Callable[[FrontEndFactory], FrontEndFactory]:
    def register(factory: FrontEndFactory) -> FrontEndFactory:
        _FRONT_ENDS[name] = factory
        return factory

    return register


def front_end_names() -> list[str]:
    return sorted(set(_FRONT_ENDS) | set(_BUILT_IN))


def front_end(name: str) -> FrontEndFactory:
    """The front end registered as ``name``."""
    if name not in _FRONT_ENDS and name in _BUILT_IN:
        importlib.import_module(_BUILT_IN[name])
    factory = _FRONT_ENDS.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown front end '{name}'; accepted: {', '.join(front_end_names())}",
            path="front_ends",
        )
    return factory
