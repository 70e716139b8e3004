"""Hostile and careless requests and start-ups: every one answered with a clear status, never
a 500 with a traceback in the server's log, never a connection held for ever (issue 9)."""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("httptools")

import tritonclient.http as httpclient

from hepfpga.cli import main
from hepfpga.deploy.serve_process import ServerProcess
from hepfpga.deploy.triton_repo import export_triton_repository

HEADER_TIMEOUT_S = 0.5
IDLE_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, write_tiny_onnx) -> Path:
    root = tmp_path_factory.mktemp("bad")
    write_tiny_onnx(root / "model.onnx", 1)
    export_triton_repository(root / "model.onnx", root / "repo", name="jets", max_batch_size=8)
    return root / "repo"


@pytest.fixture(scope="module")
def server(repo: Path):  # type: ignore[no-untyped-def]
    args = ("--header-timeout", str(HEADER_TIMEOUT_S), "--idle-timeout", str(IDLE_TIMEOUT_S))
    with ServerProcess(repo, *args) as process:
        yield process
    log = "".join(process.output)
    assert "Traceback" not in log, log
    assert process.process is not None and process.process.returncode == 0


def _strict_json(payload: bytes) -> object:
    def refuse(token: str) -> None:
        raise AssertionError(f"bare {token} in the answer: not JSON")

    return json.loads(payload, parse_constant=refuse)


def _exchange(server, raw: bytes, timeout: float = 30) -> bytes:  # type: ignore[no-untyped-def]
    """Send ``raw``, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _post(body: bytes, path: bytes = b"/v2/models/jets/infer") -> bytes:
    return b"POST %s HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (
        path,
        len(body),
        body,
    )


def _infer(data: str, shape: str = "[1, 16]", extra: str = "") -> bytes:
    tensor = f'{{"name": "input", "shape": {shape}, "datatype": "FP32", "data": {data}}}'
    return f'{{"inputs": [{tensor}]{extra}}}'.encode()


_ZEROS = "[" + ",".join(["0"] * 16) + "]"
_BIG = str(10**400)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_infer("[" + ",".join([_BIG] * 16) + "]"), "unable to parse 'data'"),
        (_infer(_ZEROS, shape=f"[1, {_BIG}]"), "unexpected shape"),
        (_infer(_ZEROS, shape=f"[{_BIG}, 16]"), "batch-size must be <= 8"),
        (_infer(_ZEROS, extra=', "id": 7'), "'id' must be a string"),
        (b"[" * 100_000, "nested too deeply"),
        (_infer("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (b'{"inputs": ' + b"[" * 50_000, "failed to parse the request JSON"),
        (_infer("[" + "1" * 5000 + "]"), "failed to parse the request JSON"),
    ],
    ids=["int-10e400", "shape-10e400", "batch-10e400", "id-not-string", "nested-body",
         "nested-data", "nested-unclosed", "int-5000-digits"],
)  # fmt: skip
def test_hostile_json_is_answered_400(server, body: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    answer = _exchange(server, _post(body))
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:300]
    assert message in _strict_json(payload)["error"]


def test_non_finite_outputs_are_strict_json(server) -> None:  # type: ignore[no-untyped-def]
    x = np.zeros((2, 16), np.float32)
    x[0, 3] = np.nan
    tensor = {"name": "input", "shape": [2, 16], "datatype": "FP32", "data": ["NaN"] + [0] * 31}
    body = json.dumps(
        {"inputs": [tensor], "outputs": [{"name": "softmax", "parameters": {"binary_data": False}}]}
    ).encode()
    head, _, payload = _exchange(server, _post(body)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    (output,) = _strict_json(payload)["outputs"]
    assert output["data"][:5] == ["NaN"] * 5  # the documented spelling
    assert all(isinstance(v, float) and math.isfinite(v) for v in output["data"][5:])
    # tritonclient reads the strings back as floats
    client = httpclient.InferenceServerClient(server.http_url)
    tensor = httpclient.InferInput("input", [2, 16], "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    out = httpclient.InferRequestedOutput("softmax", binary_data=False)
    result = client.infer("jets", [tensor], outputs=[out]).as_numpy("softmax")
    assert np.isnan(result[0]).all() and np.isfinite(result[1]).all()


@pytest.mark.parametrize(
    ("value", "spelt"),
    [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"), (1.5, 1.5)],
)
def test_answer_encoding_of_non_finite_floats(value: float, spelt: object) -> None:
    from hepfpga.deploy.serve_http import dumps

    doc = _strict_json(dumps({"data": [value, 2.0], "nested": {"x": (value,)}}))
    assert doc == {"data": [spelt, 2.0], "nested": {"x": [spelt]}}
    assert float(spelt) == value or math.isnan(value)


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (b"POST /v2/models/jets/infer HTTP/1.1\r\nContent-Le", b"408"),  # headers never end
        (b"GET /v2/health/li", b"408"),  # nor the request line
        (b'POST /v2/models/jets/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"in', b"408"),
        (b"", b""),  # an idle connection is closed without a word
    ],
    ids=["headers", "request-line", "body", "idle"],
)
def test_half_sent_requests_do_not_hold_connections(server, sent: bytes, status: bytes) -> None:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    answer = _exchange(server, sent, timeout=30)
    waited = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 " + status) if status else answer == b""
    assert waited < 20
    # a client that keeps sending is served
    assert httpclient.InferenceServerClient(server.http_url).is_server_live()


def test_slow_but_steady_client_is_served(server) -> None:  # type: ignore[no-untyped-def]
    """The idle timeout counts silence, not the length of a request."""
    body = _infer(_ZEROS)
    raw = _post(body)
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        step = max(1, len(raw) // 4)
        for i in range(0, len(raw), step):
            sock.sendall(raw[i : i + step])
            time.sleep(IDLE_TIMEOUT_S * 0.4)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("front_end", ["http", "grpc", "same"])
def test_serve_refuses_ports_it_cannot_have(
    repo: Path, capsys: pytest.CaptureFixture, front_end: str
) -> None:
    with _listening_socket() as busy:
        port = str(busy.getsockname()[1])
        args = {
            "http": ["--http-port", port, "--grpc-port", "-1"],
            "grpc": ["--http-port", "0", "--grpc-port", port],
            "same": ["--http-port", "8123", "--grpc-port", "8123"],
        }[front_end]
        assert main(["serve", str(repo / "jets"), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    if front_end == "same":
        assert "the HTTP and gRPC ports are both 8123" in line
    else:
        name = "HTTP" if front_end == "http" else "gRPC"
        assert f"cannot listen for {name} on 127.0.0.1:{port}" in line
        assert "address already in use" in line
