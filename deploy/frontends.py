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

__all__ = ["FrontEnd", "FrontEndOptions", "front_end", "front_end_names", "register_front_end"]


@dataclass(frozen=True)
class FrontEndOptions:
    """Limits every front end applies to its connections."""

    #: largest HTTP body / gRPC message accepted (Triton's HTTP default: 64 MiB)
    max_request_bytes: int = 64 * 1024 * 1024
    #: seconds from a request's first byte to the end of its headers
    header_timeout_s: float = 30.0
    #: seconds a connection may send nothing while no answer is owed to it
    idle_timeout_s: float = 300.0


class FrontEnd(Protocol):
    name: str

    async def start(self) -> int: ...

    def close_listener(self, grace_s: float) -> None: ...

    @property
    def idle(self) -> bool: ...

    async def stop(self, timeout_s: float) -> None: ...


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
