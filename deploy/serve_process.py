"""``hepfpga serve`` in a child process, for tests, benchmarks and notebooks.

Example::

    with ServerProcess("runs/jet_tagging") as server:
        client = tritonclient.http.InferenceServerClient(server.http_url)
        ...
    # leaving the block sends SIGTERM, which drains requests in flight

The child binds free ports on 127.0.0.1 (``--http-port 0 --grpc-port 0``) and reports them on
its standard output, so two servers never race for a port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

from hepfpga.errors import HepfpgaError

__all__ = ["ServerProcess"]

_HTTP = re.compile(r"^HTTP\s+http://(\S+):(\d+)")
_GRPC = re.compile(r"^gRPC\s+(\S+):(\d+)")


class ServerProcess:
    """A ``hepfpga serve PATH`` child process on free loopback ports."""

    def __init__(
        self,
        path: Path | str,
        *args: str,
        startup_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.args = list(args)
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self.output: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_bytes(self) -> int:
        """The child's resident memory (Linux ``/proc``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise HepfpgaError("VmRSS not found in /proc status")  # pragma: no cover

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "hepfpga", "serve", str(self.path)]
        if not any(a.startswith("--http-port") for a in self.args):
            command += ["--http-port", "0"]
        if not any(a.startswith("--grpc-port") for a in self.args):
            command += ["--grpc-port", "0"]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        self.process = subprocess.Popen(
            command + self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
        ready = threading.Event()
        started: list[bool] = []

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                if m := _HTTP.match(line):
                    self.http_port = int(m.group(2))
                elif m := _GRPC.match(line):
                    self.grpc_port = int(m.group(2))
                elif line.startswith("ready"):
                    started.append(True)
                    ready.set()
            ready.set()  # end of output: the child exited

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(self.startup_timeout_s) or not started:
            self.kill()
            self._reader.join(5)
            raise HepfpgaError("hepfpga serve did not start:\n" + "".join(self.output[-30:]))
        return self

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (drain), wait, and return the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            code = -9
        if self._reader is not None:
            self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
