"""``hepfpga serve`` driven by the real tritonclient (HTTP JSON/binary, sync/aio; gRPC sync/aio).

Every answer is compared with in-process onnxruntime on the same inputs.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("httptools")

import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from hepfpga.deploy.serve_process import ServerProcess
from hepfpga.deploy.triton_repo import export_triton_repository


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, write_tiny_onnx) -> Path:
    """``jets`` versions 1 and 2 (different weights, dynamic batching with a 10 ms queue delay,
    both served) and ``plain`` (max_batch_size 8, no dynamic batching)."""
    root = tmp_path_factory.mktemp("serve")
    repo = root / "repo"
    for seed in (1, 2):
        run = root / f"run{seed}"
        run.mkdir()
        write_tiny_onnx(run / "model.onnx", seed)
        result = export_triton_repository(
            run, repo, name="jets", version=seed, max_batch_size=64, max_queue_delay_us=10_000
        )
    result.config_path.write_text(result.config_path.read_text() + "version_policy: { all { } }\n")
    export_triton_repository(
        root / "run1", repo, name="plain", max_batch_size=8, dynamic_batching=False
    )
    return repo


@pytest.fixture(scope="module")
def server(repo: Path):  # type: ignore[no-untyped-def]
    with ServerProcess(repo) as process:
        yield process
    assert process.process is not None and process.process.returncode == 0


@pytest.fixture(scope="module")
def reference(repo: Path):  # type: ignore[no-untyped-def]
    sessions = {
        (name, version): ort.InferenceSession(
            str(repo / name / version / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        for name, version in (("jets", "1"), ("jets", "2"), ("plain", "1"))
    }

    def predict(x: np.ndarray, name: str = "jets", version: str = "2") -> np.ndarray:
        return sessions[(name, version)].run(None, {"input": x})[0]

    return predict


def inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=2, size=(n, 16)).astype(np.float32)


# -- inference through every client ---------------------------------------------------------


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_http_sync_matches_onnxruntime(
    server, reference, binary_in: bool, binary_out: bool
) -> None:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(server.http_url)
    x = inputs(7)
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    out = httpclient.InferRequestedOutput("softmax", binary_data=binary_out)
    result = client.infer("jets", [tensor], outputs=[out], request_id="r7")
    np.testing.assert_array_equal(result.as_numpy("softmax"), reference(x))
    response = result.get_response()
    assert response["model_name"] == "jets" and response["model_version"] == "2"
    assert response["id"] == "r7"
    client.close()


def test_http_without_requested_outputs_returns_all_binary(server, reference) -> None:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(server.http_url)
    x = inputs(3, seed=5)
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("jets", [tensor], model_version="1")
    np.testing.assert_array_equal(result.as_numpy("softmax"), reference(x, version="1"))


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_http_compressed_bodies(server, reference, compression: str) -> None:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(server.http_url)
    x = inputs(4, seed=2)
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer(
        "jets",
        [tensor],
        request_compression_algorithm=compression,
        response_compression_algorithm=compression,
    )
    np.testing.assert_array_equal(result.as_numpy("softmax"), reference(x))


@pytest.mark.parametrize(("rows", "compressed"), [(2, False), (64, True)])
def test_http_compresses_only_answers_worth_it(server, rows: int, compressed: bool) -> None:  # type: ignore[no-untyped-def]
    """An answer under 1 KiB goes uncompressed even when gzip is accepted (aiohttp offers it
    on every request); a larger one is compressed."""
    x = inputs(rows, seed=3)
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [rows, 16],
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ],
            "outputs": [{"name": "softmax", "parameters": {"binary_data": True}}],
        }
    ).encode()
    connection = http.client.HTTPConnection(server.http_url, timeout=30)
    connection.request(
        "POST", "/v2/models/jets/infer", body=body, headers={"Accept-Encoding": "gzip, deflate, br"}
    )
    response = connection.getresponse()
    payload = response.read()
    assert response.status == 200
    assert (response.getheader("Content-Encoding") == "gzip") is compressed
    if compressed:
        payload = gzip.decompress(payload)
    length = int(response.getheader("Inference-Header-Content-Length"))
    assert np.frombuffer(payload[length:], np.float32).shape == (rows * 5,)


def test_http_aio_concurrent_requests_are_batched_and_split(server, reference) -> None:  # type: ignore[no-untyped-def]
    sizes = [1, 2, 3, 5, 8, 1, 4, 7] * 4

    async def run() -> list[np.ndarray]:
        client = httpaio.InferenceServerClient(server.http_url)
        try:

            async def one(i: int, n: int) -> np.ndarray:
                x = inputs(n, seed=100 + i)
                tensor = httpaio.InferInput("input", [n, 16], "FP32")
                tensor.set_data_from_numpy(x, binary_data=i % 2 == 0)
                result = await client.infer("jets", [tensor])
                return result.as_numpy("softmax")

            return await asyncio.gather(*(one(i, n) for i, n in enumerate(sizes)))
        finally:
            await client.close()

    before = _stats(server, "jets", "2")
    answers = asyncio.run(run())
    for i, (n, answer) in enumerate(zip(sizes, answers, strict=True)):
        np.testing.assert_array_equal(answer, reference(inputs(n, seed=100 + i)))
    after = _stats(server, "jets", "2")
    requests = int(after["inference_stats"]["success"]["count"]) - int(
        before["inference_stats"]["success"]["count"]
    )
    executions = int(after["execution_count"]) - int(before["execution_count"])
    assert requests == len(sizes)
    assert int(after["inference_count"]) - int(before["inference_count"]) == sum(sizes)
    assert executions < requests  # the 10 ms queue delay gathered concurrent requests


def test_grpc_sync_matches_onnxruntime(server, reference) -> None:  # type: ignore[no-untyped-def]
    client = grpcclient.InferenceServerClient(server.grpc_url)
    for version in ("1", "2"):
        x = inputs(9, seed=int(version))
        tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer(
            "jets",
            [tensor],
            model_version=version,
            outputs=[grpcclient.InferRequestedOutput("softmax")],
            request_id="g1",
        )
        np.testing.assert_array_equal(result.as_numpy("softmax"), reference(x, version=version))
        assert result.get_response().model_version == version
        assert result.get_response().id == "g1"
    client.close()


def test_grpc_aio_and_stream(server, reference) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        client = grpcaio.InferenceServerClient(server.grpc_url)
        try:
            xs = [inputs(n, seed=200 + n) for n in (1, 4, 16)]
            tensors = []
            for x in xs:
                t = grpcaio.InferInput("input", list(x.shape), "FP32")
                t.set_data_from_numpy(x)
                tensors.append(t)
            results = await asyncio.gather(*(client.infer("plain", [t]) for t in tensors[:2]))
            for x, r in zip(xs[:2], results, strict=True):
                np.testing.assert_array_equal(r.as_numpy("softmax"), reference(x, "plain", "1"))

            async def requests():  # type: ignore[no-untyped-def]
                for t in tensors:
                    yield {"model_name": "jets", "inputs": [t]}

            answers = []
            async for result, error in client.stream_infer(requests()):
                assert error is None
                answers.append(result.as_numpy("softmax"))
                if len(answers) == len(xs):
                    break
            for x, a in zip(xs, answers, strict=True):
                np.testing.assert_array_equal(a, reference(x))
        finally:
            await client.close()

    asyncio.run(run())


# -- metadata, health, configuration, statistics, metrics -----------------------------------


def test_http_metadata_health_config(server) -> None:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(server.http_url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("jets") and client.is_model_ready("jets", "1")
    assert not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("jets")
    assert meta["versions"] == ["2"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 16]}]
    assert meta["outputs"] == [{"name": "softmax", "datatype": "FP32", "shape": [-1, 5]}]
    config = json_format.ParseDict(client.get_model_config("plain"), model_config_pb2.ModelConfig())
    assert config.max_batch_size == 8 and not config.HasField("dynamic_batching")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    index = client.get_model_repository_index()
    assert {(m["name"], m["version"]) for m in index} == {
        ("jets", "1"),
        ("jets", "2"),
        ("plain", "1"),
    }


def test_grpc_metadata_health_config(server) -> None:  # type: ignore[no-untyped-def]
    client = grpcclient.InferenceServerClient(server.grpc_url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("jets", "1") and not client.is_model_ready("jets", "7")
    meta = client.get_model_metadata("jets", "1")
    assert meta.versions == ["1"] and list(meta.inputs[0].shape) == [-1, 16]
    config = client.get_model_config("jets").config
    assert config.dynamic_batching.max_queue_delay_microseconds == 10_000
    assert config.platform == "onnxruntime_onnx"
    stats = client.get_inference_statistics("jets")
    assert {s.version for s in stats.model_stats} == {"1", "2"}
    assert len(client.get_model_repository_index().models) == 3


def _stats(server, name: str, version: str) -> dict:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(server.http_url)
    (stats,) = client.get_inference_statistics(name, version)["model_stats"]
    return stats


def test_statistics_and_prometheus_metrics(server) -> None:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(server.http_url)
    x = inputs(3)
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    before = _stats(server, "plain", "1")
    for _ in range(4):
        client.infer("plain", [tensor])
    with pytest.raises(InferenceServerException):
        client.infer(
            "plain", [httpclient.InferInput("input", [1, 3], "FP32").set_data_from_numpy(x[:1, :3])]
        )
    after = _stats(server, "plain", "1")
    assert (
        int(after["inference_stats"]["success"]["count"])
        - int(before["inference_stats"]["success"]["count"])
        == 4
    )
    assert int(after["execution_count"]) - int(before["execution_count"]) == 4
    assert int(after["inference_count"]) - int(before["inference_count"]) == 12
    assert (
        int(after["inference_stats"]["fail"]["count"])
        - int(before["inference_stats"]["fail"]["count"])
        == 1
    )
    assert int(after["inference_stats"]["queue"]["ns"]) > 0
    assert any(b["batch_size"] == 3 for b in after["batch_stats"])

    connection = http.client.HTTPConnection(server.http_url)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/plain")
    metrics = _parse_metrics(response.read().decode())
    label = '{model="plain",version="1"}'
    assert metrics[f"nv_inference_request_success{label}"] == int(
        after["inference_stats"]["success"]["count"]
    )
    assert metrics[f"nv_inference_count{label}"] == int(after["inference_count"])
    assert metrics[f"nv_inference_exec_count{label}"] == int(after["execution_count"])
    assert sum(
        v for k, v in metrics.items() if k.startswith('nv_inference_request_failure{model="plain"')
    ) == int(after["inference_stats"]["fail"]["count"])
    for name in (
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_inference_pending_request_count",
    ):
        assert f"{name}{label}" in metrics
    assert metrics[f"nv_inference_pending_request_count{label}"] == 0


def _parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


# -- errors as Triton answers them ----------------------------------------------------------


def _post(server, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    connection = http.client.HTTPConnection(server.http_url, timeout=30)
    connection.request("POST", path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload)


def _request(name: str, shape: list, datatype: str = "FP32", data=None) -> bytes:  # type: ignore[no-untyped-def]
    n = int(np.prod([d for d in shape if isinstance(d, int)]))
    return json.dumps(
        {
            "inputs": [
                {"name": name, "shape": shape, "datatype": datatype, "data": data or [0.5] * n}
            ]
        }
    ).encode()


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", _request("input", [1, 16]), 404, "unknown model: 'nope'"),
        ("/v2/models/jets/versions/9/infer", _request("input", [1, 16]), 404, "version 9"),
        (
            "/v2/models/jets/infer",
            _request("input", [1, 16], "FP64"),
            400,
            "unexpected datatype TYPE_FP64",
        ),
        (
            "/v2/models/jets/infer",
            _request("input", [1, 15]),
            400,
            "unexpected shape for input 'input'",
        ),
        ("/v2/models/jets/infer", _request("input", [16]), 400, "unexpected shape"),
        ("/v2/models/plain/infer", _request("input", [9, 16]), 400, "batch-size must be <= 8"),
        (
            "/v2/models/jets/infer",
            _request("features", [1, 16]),
            400,
            "unexpected inference input 'features'",
        ),
        ("/v2/models/jets/infer", b'{"inputs": []}', 400, "missing required input(s) ['input']"),
        (
            "/v2/models/jets/infer",
            b'{"inputs": [{"name": "input"',
            400,
            "failed to parse the request JSON",
        ),
        ("/v2/models/jets/infer", b"", 400, "failed to parse the request JSON"),
        ("/v2/models/jets/infer", b"[1, 2]", 400, "expected a JSON object"),
        (
            "/v2/models/jets/infer",
            _request("input", [1, 16], data=[1.0] * 3),
            400,
            "number of elements",
        ),
        (
            "/v2/models/jets/infer",
            _request("input", [1, 16], data=["a"] * 16),
            400,
            "unable to parse",
        ),
        ("/v2/models/jets/infer", _request("input", [1, "x"]), 400, "list of integers"),
        ("/v2/models/jets/nothing", b"{}", 404, "unknown URL"),
    ],
)
def test_http_errors(server, path: str, body: bytes, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    code, answer = _post(server, path, body)
    assert code == status
    assert message in answer["error"]


def test_http_binary_errors(server) -> None:  # type: ignore[no-untyped-def]
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 16],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 128},
                }
            ]
        }
    ).encode()
    body = head + b"\0" * 100
    code, answer = _post(
        server, "/v2/models/jets/infer", body, {"Inference-Header-Content-Length": str(len(head))}
    )
    assert code == 400 and "binary_data_size 128 runs past" in answer["error"]
    code, answer = _post(
        server, "/v2/models/jets/infer", body, {"Inference-Header-Content-Length": "9999"}
    )
    assert code == 400 and "Inference-Header-Content-Length" in answer["error"]
    code, answer = _post(
        server, "/v2/models/jets/infer", gzip.compress(b"{}")[:5], {"Content-Encoding": "gzip"}
    )
    assert code == 400 and "decompress" in answer["error"]


def _binary_post(server, head: dict, x: np.ndarray) -> tuple[int, dict, bytes]:  # type: ignore[no-untyped-def]
    header = json.dumps(head).encode()
    connection = http.client.HTTPConnection(server.http_url, timeout=30)
    connection.request(
        "POST",
        "/v2/models/plain/infer",
        body=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    length = response.getheader("Inference-Header-Content-Length")
    if length is None:
        return response.status, json.loads(payload), b""
    return response.status, json.loads(payload[: int(length)]), payload[int(length) :]


def test_http_same_header_different_tensors(server, reference) -> None:  # type: ignore[no-untyped-def]
    """Clients send the same JSON header for every request of a shape (the server parses it
    once): each answer must still be the one for its own tensor, with its own id."""
    for seed in range(6):
        x = inputs(2, seed=100 + seed)
        head = {
            "id": f"r{seed % 2}",
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 16],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "softmax", "parameters": {"binary_data": seed % 3 != 0}}],
        }
        status, answer, blob = _binary_post(server, head, x)
        assert status == 200 and answer["id"] == f"r{seed % 2}"
        expected = reference(x, "plain", "1")
        output = answer["outputs"][0]
        assert output["shape"] == [2, 5]
        got = (
            np.frombuffer(blob, dtype=np.float32).reshape(2, 5)
            if seed % 3 != 0
            else np.asarray(output["data"], dtype=np.float32).reshape(2, 5)
        )
        np.testing.assert_array_equal(got, expected)
    bad = {"inputs": [{"name": "input", "shape": [2, 16], "datatype": "FP32"}]}
    for _ in range(2):  # a refused header is refused every time
        status, answer, _ = _binary_post(server, bad, inputs(2))
        assert status == 400 and "neither 'data' nor binary_data_size" in answer["error"]


@pytest.mark.parametrize(
    ("shape", "datatype", "code", "message"),
    [
        ([1, 15], "FP32", "StatusCode.INVALID_ARGUMENT", "unexpected shape"),
        ([1, 16], "INT32", "StatusCode.INVALID_ARGUMENT", "unexpected datatype TYPE_INT32"),
        ([9, 16], "FP32", "StatusCode.INVALID_ARGUMENT", "batch-size must be <= 8"),
    ],
)
def test_grpc_errors(server, shape: list, datatype: str, code: str, message: str) -> None:  # type: ignore[no-untyped-def]
    client = grpcclient.InferenceServerClient(server.grpc_url)
    tensor = grpcclient.InferInput("input", shape, datatype)
    tensor.set_data_from_numpy(
        np.zeros(shape, dtype=np.float32 if datatype == "FP32" else np.int32)
    )
    with pytest.raises(InferenceServerException) as info:
        client.infer("plain", [tensor])
    assert info.value.status() == code
    assert message in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.infer("nope", [tensor])
    assert info.value.status() == "StatusCode.NOT_FOUND"
    bad = grpcclient.InferInput("features", [1, 16], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 16), np.float32))
    with pytest.raises(InferenceServerException, match="unexpected inference input 'features'"):
        client.infer("plain", [bad])


def test_tritonclient_sees_http_status_and_message(server) -> None:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(server.http_url)
    tensor = httpclient.InferInput("input", [1, 16], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 16), np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("nope", [tensor])
    assert info.value.status() == "404"
    assert "Request for unknown model: 'nope' is not found" in info.value.message()


def _raw(server, data: bytes, wait_close: bool = True) -> bytes:  # type: ignore[no-untyped-def]
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        if wait_close:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_malformed_http_and_oversized_body(server) -> None:  # type: ignore[no-untyped-def]
    answer = _raw(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b'"error"' in answer
    huge = 10 * 1024**3
    answer = _raw(
        server, b"POST /v2/models/jets/infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n{" % huge
    )
    assert answer.startswith(b"HTTP/1.1 400") and b"exceeds the maximum" in answer
    assert httpclient.InferenceServerClient(server.http_url).is_server_live()  # still serving


def test_pipelined_requests_are_answered_in_order(server, reference) -> None:  # type: ignore[no-untyped-def]
    xs = [inputs(n, seed=300 + n) for n in (5, 1, 3)]
    data = b""
    for i, x in enumerate(xs):
        body = json.dumps(
            {
                "id": str(i),
                "inputs": [
                    {
                        "name": "input",
                        "shape": list(x.shape),
                        "datatype": "FP32",
                        "data": x.ravel().tolist(),
                    }
                ],
            }
        ).encode()
        close = b"Connection: close\r\n" if i == len(xs) - 1 else b""
        data += (
            b"POST /v2/models/jets/infer HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s"
            % (close, len(body), body)
        )
    data += b"GET /v2/health/live HTTP/1.1\r\n\r\n"  # after Connection: close: never answered
    answer = _raw(server, data)
    parts = answer.split(b"HTTP/1.1 ")[1:]
    assert len(parts) == 3
    for i, (part, x) in enumerate(zip(parts, xs, strict=True)):
        doc = json.loads(part.split(b"\r\n\r\n", 1)[1])
        assert doc["id"] == str(i)
        got = np.array(doc["outputs"][0]["data"], np.float32).reshape(doc["outputs"][0]["shape"])
        np.testing.assert_array_equal(got, reference(x))


# -- other ways to serve ----------------------------------------------------------------------


def test_model_ready_answers_like_triton(server) -> None:  # type: ignore[no-untyped-def]
    connection = http.client.HTTPConnection(server.http_url)
    connection.request("GET", "/v2/models/jets/versions/7/ready")
    response = connection.getresponse()
    assert response.status == 400
    assert json.loads(response.read()) == {"error": "Model version not ready"}


def test_serve_a_run_folder(repo: Path, reference) -> None:  # type: ignore[no-untyped-def]
    run = repo.parent / "run1"  # a folder with model.onnx, as `hepfpga run` leaves it
    with ServerProcess(run) as process:
        assert "model run1 version 1" in "".join(process.output)
        client = grpcclient.InferenceServerClient(process.grpc_url)
        x = inputs(2, seed=9)
        tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        answer = client.infer("run1", [tensor]).as_numpy("softmax")
        np.testing.assert_array_equal(answer, reference(x, version="1"))
    assert process.process is not None and process.process.returncode == 0


def test_in_process_server_api(repo: Path, reference) -> None:  # type: ignore[no-untyped-def]
    from hepfpga.deploy.serve import InferenceServer
    from hepfpga.deploy.triton_repo import discover_models

    async def run() -> None:
        server = InferenceServer(discover_models(repo), http_port=0, grpc_port=None)
        addresses = await server.start()
        assert addresses.grpc_port is None and addresses.http_port
        client = httpaio.InferenceServerClient(addresses.http_url)
        try:
            x = inputs(6, seed=11)
            tensor = httpaio.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            result = await client.infer("plain", [tensor])
            np.testing.assert_array_equal(result.as_numpy("softmax"), reference(x, "plain", "1"))
        finally:
            await client.close()
            await server.stop()
        assert server.in_flight == 0

    asyncio.run(run())


def test_front_ends_come_from_a_registry_over_one_service(repo: Path, reference) -> None:  # type: ignore[no-untyped-def]
    """A front end registered by name is started, drained and stopped by the server like
    HTTP and gRPC, and talks to the protocol-neutral service."""
    from hepfpga.deploy.frontends import front_end, register_front_end
    from hepfpga.deploy.protocol import ErrorCode, RequestError, TensorInput
    from hepfpga.deploy.serve import InferenceServer
    from hepfpga.deploy.triton_repo import discover_models
    from hepfpga.errors import ConfigError

    events: list[object] = []

    @register_front_end("test-in-process")
    class InProcess:
        def __init__(self, service, host: str, port: int, options) -> None:  # type: ignore[no-untyped-def]
            self.service = service

        async def start(self) -> int:
            events.append("start")
            return 4242

        def close_listener(self, grace_s: float) -> None:
            events.append(("close", self.service.draining))

        @property
        def idle(self) -> bool:
            return True

        async def stop(self, timeout_s: float) -> None:
            events.append("stop")

    x = inputs(3, seed=21)

    async def run() -> None:
        server = InferenceServer(
            discover_models(repo / "plain"), front_ends={"test-in-process": 0, "http": 0}
        )
        addresses = await server.start()
        assert set(server.front_ends) == {"test-in-process", "http"} and addresses.http_port
        service = server.front_ends["test-in-process"].service  # type: ignore[attr-defined]
        inference = service.infer("plain", "", [TensorInput("input", "FP32", [3, 16], x.tobytes())])
        await inference.future
        (output,) = inference.result()
        np.testing.assert_array_equal(output.array, reference(x, "plain", "1"))
        with pytest.raises(RequestError) as info:
            service.infer("plain", "", [TensorInput("input", "FP32", [3, 15], x.tobytes())])
        assert info.value.code is ErrorCode.INVALID_ARGUMENT and info.value.http_status == 400
        await server.stop()
        with pytest.raises(RequestError) as info:
            service.infer("plain", "", [TensorInput("input", "FP32", [3, 16], x.tobytes())])
        assert info.value.code is ErrorCode.UNAVAILABLE and info.value.http_status == 503

    asyncio.run(run())
    assert events == ["start", ("close", True), "stop"]
    with pytest.raises(ConfigError, match="unknown front end 'nope'; accepted: grpc, http"):
        front_end("nope")


def test_missing_extra_names_the_install_command(repo: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    from hepfpga.deploy.serve import InferenceServer
    from hepfpga.deploy.triton_repo import discover_models
    from hepfpga.errors import MissingDependencyError

    server = InferenceServer(discover_models(repo / "plain"), http_port=0, grpc_port=None)
    monkeypatch.setitem(sys.modules, "httptools", None)  # import httptools now fails
    try:
        with pytest.raises(MissingDependencyError, match=r"pip install 'hepfpga\[serve\]'"):
            asyncio.run(server.start())
    finally:
        server.registry.close()


def _allowed_cpus(pid: int) -> set[str]:
    """``Cpus_allowed_list`` of every thread of ``pid``."""
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                values.add(line.split()[1])
    return values


def test_serve_pinned_to_one_cpu(repo: Path, reference) -> None:  # type: ignore[no-untyped-def]
    cpu = min(os.sched_getaffinity(0))
    with ServerProcess(repo, "--cpus", str(cpu)) as process:
        assert f"pinned to CPUs {cpu}" in "".join(process.output)
        client = httpclient.InferenceServerClient(process.http_url)
        x = inputs(3, seed=12)
        tensor = httpclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        answer = client.infer("plain", [tensor]).as_numpy("softmax")
        np.testing.assert_array_equal(answer, reference(x, "plain", "1"))
        # the loop, the instance threads, gRPC's and onnxruntime's threads: all of them
        assert _allowed_cpus(process.pid) == {str(cpu)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "'x' is not a CPU number or range"),
        ("0,a-b", "'a-b' is not a CPU number or range"),
        ("3-1", "'3-1' is not a valid CPU range"),
        ("4096", "CPU 4096 (from '4096') is not available"),
        ("0-4096", "(from '0-4096') is not available"),
    ],
)
def test_cpu_list_errors_name_the_item(text: str, message: str) -> None:
    from hepfpga.deploy.serve import parse_cpu_list
    from hepfpga.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        parse_cpu_list(text)
    assert info.value.path == "cpus"
    assert "this machine has CPUs 0-" in str(info.value)


def test_cpu_list_syntax() -> None:
    from hepfpga.deploy.serve import parse_cpu_list

    last = (os.cpu_count() or 1) - 1
    assert parse_cpu_list("0") == {0}
    assert parse_cpu_list(f" 0-{last} ") == set(range(last + 1))
    assert parse_cpu_list(f"{last},0,{last}") == {0, last}


def test_cli_refuses_a_bad_cpu_list(repo: Path, capsys: pytest.CaptureFixture) -> None:
    from hepfpga.cli import main

    assert main(["serve", str(repo), "--cpus", "4096"]) == 2
    err = capsys.readouterr().err
    assert "cpus" in err and "CPU 4096" in err and "this machine has CPUs" in err
