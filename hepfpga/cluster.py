"""A dask.distributed client: a LocalCluster for one call, or an existing scheduler.

``dask[distributed]`` is optional (the ``datagen``, ``emulate`` and ``tune`` extras); it is
imported when a client is opened.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from hepfpga._optional import require
from hepfpga.errors import DataError

__all__ = ["SCHEDULER_FORM", "check_scheduler_address", "dask_client"]

#: What ``--scheduler`` accepts, in words.
SCHEDULER_FORM = "an address like tcp://HOST:PORT (or HOST:PORT, tls://HOST:PORT)"
_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss)://)?[A-Za-z0-9_.\-\[\]:]*[A-Za-z0-9\]]:\d{1,5}$")


def check_scheduler_address(address: str, option: str = "--scheduler") -> str:
    """``address`` if it has the form of a dask scheduler address, else a one-line
    :class:`~hepfpga.errors.DataError` naming ``option`` and the accepted form."""
    port = address.rsplit(":", 1)[-1]
    if not _ADDRESS.match(address) or not 0 < int(port or 0) < 65536:
        raise DataError(
            f"{option}: {address!r} is not a scheduler address; expected {SCHEDULER_FORM}"
        )
    return address


@contextlib.contextmanager
def dask_client(
    scheduler: str | None,
    n_workers: int | None,
    *,
    extra: str,
    purpose: str,
    processes: bool = True,
    connect_timeout: float = 20.0,
) -> Iterator[Any]:
    """A ``distributed.Client`` for the block: on the scheduler at ``scheduler``, or on a
    LocalCluster of ``n_workers`` single-threaded workers (default: one per CPU; worker
    processes unless ``processes=False``) that is closed after the block.

    An unreachable scheduler is a :class:`~hepfpga.errors.DataError` after
    ``connect_timeout`` seconds; without dask, a
    :class:`~hepfpga.errors.MissingDependencyError` naming ``extra``.
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
            check_scheduler_address(scheduler)
            try:
                client = distributed.Client(
                    scheduler, set_as_default=False, timeout=connect_timeout
                )
            except OSError as exc:
                raise DataError(
                    f"--scheduler: no dask scheduler answered at {scheduler!r} within "
                    f"{connect_timeout:g} s ({exc.__class__.__name__})"
                ) from exc
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
        chatter.setLevel(level)
