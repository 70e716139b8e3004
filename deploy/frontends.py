"""Front ends of the inference service, found by name in :data:`FRONT_ENDS`: ``http`` (KServe
v2 REST with Triton's extensions, :mod:`hepfpga.deploy.serve_http`) and ``grpc``
(``inference.GRPCInferenceService``, :mod:`hepfpga.deploy.serve_grpc`), registered by their
modules, which :mod:`hepfpga.deploy.serve` imports. Their own dependencies (httptools,
grpcio, tritonclient's protos) are imported when a front end starts, not when it registers.

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hepfpga.errors import ConfigError
from hepfpga.registry import Registry

if TYPE_CHECKING:
    from hepfpga.deploy.service import InferenceService

__all__ = [
    "FRONT_ENDS",
    "MAX_REQUEST_BYTES",
    "MAX_TIMEOUT_S",
    "FrontEnd",
    "FrontEndOptions",
    "ListenerBase",
    "bind_error",
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


#: gRPC holds its message sizes and its idle time (in milliseconds) as 32-bit signed
#: integers: the largest request size and timeout (s) a front end accepts.
MAX_REQUEST_BYTES = 2**31 - 1
MAX_TIMEOUT_S = MAX_REQUEST_BYTES // 1000


@dataclass(frozen=True)
class FrontEndOptions:
    """Limits every front end applies to its connections: a request size of 1 to
    :data:`MAX_REQUEST_BYTES` bytes, finite timeouts over 0 and up to :data:`MAX_TIMEOUT_S`
    seconds (a :class:`ConfigError` naming the option otherwise)."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 < self.max_request_bytes <= MAX_REQUEST_BYTES:
            raise ConfigError(
                f"max_request_bytes is {self.max_request_bytes}; accepted: 1 to "
                f"{MAX_REQUEST_BYTES} (gRPC's 32-bit limit)",
                path="max_request_bytes",
            )
        for name in ("header_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            # "not <=" also refuses NaN, which compares false with every bound
            if not 0 < value <= MAX_TIMEOUT_S:
                raise ConfigError(
                    f"{name} is {value}; accepted: a finite number of seconds over 0 and up "
                    f"to {MAX_TIMEOUT_S} (gRPC's 32-bit milliseconds)",
                    path=name,
                )


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

#: Front ends by the name ``hepfpga serve`` and :class:`~hepfpga.deploy.serve.InferenceServer`
#: take (``front_ends={"http": 8000, ...}``).
FRONT_ENDS: Registry[FrontEndFactory] = Registry("front end")


def register_front_end(name: str) -> Callable[[FrontEndFactory], FrontEndFactory]:
    """Class decorator: register a front end as ``name`` (a name must be new)."""
    return FRONT_ENDS.decorator(name)


def front_end_names() -> list[str]:
    return sorted(FRONT_ENDS)


def front_end(name: str) -> FrontEndFactory:
    """The front end registered as ``name``; a :class:`ConfigError` at ``front_ends`` naming
    the closest and every registered one otherwise."""
    # the accepted names listed sorted, as front_end_names() gives them
    return Registry(FRONT_ENDS.what, dict(sorted(FRONT_ENDS.items()))).lookup(name, "front_ends")


def bind_error(what: str, host: str, port: int | None, reason: str) -> ConfigError:
    """The error of a front end (``what``: ``HTTP``, ``gRPC``) that cannot listen."""
    return ConfigError(
        f"cannot listen for {what} on {host}:{port}: {reason.lower()}; accepted: a free port "
        "(0 picks one), or -1 to turn this front end off",
        path=f"{what.lower()}_port",
    )
