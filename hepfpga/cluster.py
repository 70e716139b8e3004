"""A dask.distributed client: a LocalCluster for one call, or an existing scheduler.

``dask[distributed]`` is optional (the ``datagen``, ``emulate`` and ``tune`` extras); it is
imported when a client is opened.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

from hepfpga._optional import require
from hepfpga.errors import DataError

__all__ = ["SCHEDULER_FORM", "check_scheduler_address", "dask_client"]

#: What ``--scheduler`` accepts, in words.
SCHEDULER_FORM = "an address like tcp://HOST:PORT (or HOST:PORT, tls://HOST:PORT)"
_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")
_ADDRESS = re.compile(
    rf"^(?:(?:{'|'.join(_SCHEMES)})://)?[A-Za-z0-9_.\-\[\]:]*[A-Za-z0-9\]]:\d{{1,5}}$"
)


def check_scheduler_address(address: str, option: str = "--scheduler") -> str:
    """``address`` if it has the form of a dask scheduler address, else a one-line
    :class:`~hepfpga.errors.DataError` naming ``option`` and the accepted form."""
    port = address.rsplit(":", 1)[-1]
    if not _ADDRESS.match(address) or not 0 < int(port or 0) < 65536:
        scheme = address.split("://", 1)[0] if "://" in address else None
        why = (
            f" (unknown scheme {scheme!r}; accepted: {', '.join(_SCHEMES)})"
            if scheme is not None and scheme not in _SCHEMES
            else ""
        )
        raise DataError(
            f"{option}: {address!r} is not a scheduler address{why}; expected {SCHEDULER_FORM}"
        )
    return address


def _connect(distributed: Any, address: str, timeout: float, option: str) -> Any:
    """A client of the scheduler at ``address`` (checked with
    :func:`check_scheduler_address`), or a one-line :class:`DataError`: a tcp address whose
    port refuses (or whose host is unknown) fails at once, a scheduler that does not answer
    after ``timeout`` seconds."""
    check_scheduler_address(address, option)
    unreachable = (
        f"{option}: cannot reach the dask scheduler at {address!r}: {{}}; expected the address "
        f"a running scheduler prints, {SCHEDULER_FORM}, or leave {option} out to start local "
        "workers"
    )
    try:
        scheme, location = distributed.comm.parse_address(address)
        if scheme == "tcp":
            host, port = distributed.comm.parse_host_port(location)
            with socket.create_connection((host, port), timeout=timeout):
                pass  # refused or unknown hosts fail here at once, not after the timeout
    except (OSError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(unreachable.format(reason)) from exc
    try:
        return distributed.Client(address, set_as_default=False, timeout=timeout)
    except OSError as exc:
        raise DataError(
            unreachable.format(f"no answer within {timeout:g} s ({type(exc).__name__})")
        ) from exc


@contextlib.contextmanager
def dask_client(
    scheduler: str | None,
    n_workers: int | None,
    *,
    extra: str,
    purpose: str,
    processes: bool = True,
    connect_timeout: float = 20.0,
    option: str = "--scheduler",
) -> Iterator[Any]:
    """A ``distributed.Client`` for the block: on the scheduler at ``scheduler``, or on a
    LocalCluster of ``n_workers`` single-threaded workers (default: one per CPU; worker
    processes unless ``processes=False``) that is closed after the block. The client is
    connected (and the cluster started) on entering the block, so a caller that must know
    the scheduler answers before any work enters it first and keeps it open throughout.

    A scheduler address of the wrong form, a port that refuses, an unknown host or a
    scheduler that does not answer within ``connect_timeout`` seconds is a one-line
    :class:`~hepfpga.errors.DataError` naming ``option`` (the command-line option the address
    came from); without dask, a :class:`~hepfpga.errors.MissingDependencyError` naming
    ``extra``.
    """
    distributed = require("distributed", extra, purpose)
    cluster = None
    chatter = logging.getLogger("distributed")
    level = chatter.level
    try:
        if scheduler is None:
            # a cluster for this call only: no dashboard, and its start/stop chatter kept out
            chatter.setLevel(logging.WARNING)
            cluster = distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=processes,
                # ':0': a free port for the scheduler's HTTP server (8787 may be taken)
                dashboard_address=":0",
                worker_dashboard_address=None,
                scheduler_kwargs={"dashboard": False},
                # workers busy with a task when the cluster closes are killed: not news
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster, set_as_default=False)
        else:
            client = _connect(distributed, scheduler, connect_timeout, option)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
        chatter.setLevel(level)
