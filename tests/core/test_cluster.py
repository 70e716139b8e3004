"""hepfpga.cluster.dask_client, the one opener of dask clients (data generate, tune): a
scheduler address is checked and reached on entering the block, and each way it can fail is
one line naming the option, at once (no waiting out a connect timeout)."""

from __future__ import annotations

import socket

import pytest

from hepfpga.cluster import check_scheduler_address, dask_client
from hepfpga.errors import DataError

pytest.importorskip("distributed")


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("address", "needles"),
    [
        ("garbage!!", ("'garbage!!' is not a scheduler address", "tcp://HOST:PORT")),
        ("http://127.0.0.1:1", ("unknown scheme 'http'", "accepted: tcp, tls")),
        ("tcp://127.0.0.1:70000", ("is not a scheduler address",)),
        ("tcp://127.0.0.1:{closed}", ("cannot reach the dask scheduler", "refused")),
        ("nosuchhost.invalid:8786", ("cannot reach the dask scheduler", "nosuchhost.invalid")),
    ],
)
@pytest.mark.parametrize("option", ["--scheduler", "--cluster"])
def test_a_scheduler_that_cannot_be_used_is_one_line_naming_the_option(
    address: str, needles: tuple[str, ...], option: str
) -> None:
    address = address.format(closed=_closed_port())
    with (
        pytest.raises(DataError) as error,
        dask_client(address, None, extra="tune", purpose="a test", option=option),
    ):
        pytest.fail("the block must not run")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{option}: "), message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("address", ["tcp://10.0.0.1:8786", "127.0.0.1:8786", "tls://[::1]:1"])
def test_scheduler_addresses_of_the_accepted_forms_pass_the_check(address: str) -> None:
    assert check_scheduler_address(address) == address


def test_a_running_scheduler_is_reached_and_runs_the_work() -> None:
    """A scheduler of one worker thread (no processes: cheap) on tcp, reached by its address."""
    import distributed

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=":0"
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        with dask_client(address, None, extra="tune", purpose="a test") as client:
            assert client.submit(sum, [1, 2, 3]).result() == 6
