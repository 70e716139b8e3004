"""Serving benchmark: ``hepfpga serve`` against in-process onnxruntime, measured in one run.

    python benchmarks/serving.py [--model runs/jet_tagging] [--seconds 5]

Prints batch-1 latency (p50/p99) over HTTP with binary tensors and over gRPC, throughput at
batch 256 with 8 concurrent gRPC clients, and the gain of dynamic batching with 64 concurrent
batch-1 clients; each next to in-process onnxruntime on the same model and session options
(one intra-op thread, as the server uses). The server runs in a child process; the clients
are ``tritonclient`` (the library users have), plus a raw keep-alive socket / raw gRPC call
with pre-built requests that shows the server's share without the client library's.

Without ``--model`` the pipeline's jet tagger (QKeras MLP 16-64-32-32-5, untrained: the cost
of a forward pass does not depend on the weights) is exported to a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hepfpga.deploy.serve_models import make_session
from hepfpga.deploy.serve_process import ServerProcess
from hepfpga.deploy.triton_repo import discover_models, export_triton_repository

TARGETS = {"latency_ms": 0.3, "events_per_s": 1e6, "batching_gain": 5.0}


def build_default_model(folder: Path) -> Path:
    """The pipeline's QKeras jet tagger, exported to ``folder/model.onnx``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hepfpga.config import ModelConfig
    from hepfpga.deploy.onnx_export import export_onnx
    from hepfpga.quantize.qat import QuantizationSpec, quantize_model
    from hepfpga.train.models import build_model

    model = quantize_model(build_model(16, 5, ModelConfig()), QuantizationSpec())
    export_onnx(model, folder / "model.onnx")
    return folder / "model.onnx"


def percentiles(fn: Callable[[], object], n: int, warmup: int = 300) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` run back to back."""
    for _ in range(50):
        fn()
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def raw_http_call(port: int, x: np.ndarray) -> Callable[[], bytes]:
    request = _infer_request("model", x)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call() -> bytes:
        sock.sendall(request)
        data = sock.recv(65536)
        # the answer of a batch-1 request fits one read; check it is complete
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        return data

    return call


async def concurrent_grpc(
    url: str, model: str, x: np.ndarray, clients: int, seconds: float
) -> float:
    """Requests per second from ``clients`` concurrent tritonclient gRPC aio callers."""
    import tritonclient.grpc.aio as grpcaio

    client = grpcaio.InferenceServerClient(url)
    tensor = grpcaio.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    count = 0
    stop = False

    async def worker() -> None:
        nonlocal count
        while not stop:
            await client.infer(model, [tensor])
            count += 1

    try:
        tasks = [asyncio.create_task(worker()) for _ in range(clients)]
        await asyncio.sleep(min(1.0, seconds / 4))  # warm up
        count = 0
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        done = count
        elapsed = time.perf_counter() - start
        stop = True
        await asyncio.gather(*tasks)
    finally:
        await client.close()
    return done / elapsed


async def concurrent_raw_grpc(
    url: str, model: str, x: np.ndarray, clients: int, seconds: float
) -> float:
    """As :func:`concurrent_grpc` with a pre-serialised request on a raw ``grpc.aio`` channel."""
    import grpc
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    payload = request.SerializeToString()
    async with grpc.aio.insecure_channel(url) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        count = 0
        stop = False

        async def worker() -> None:
            nonlocal count
            while not stop:
                await call(payload)
                count += 1

        tasks = [asyncio.create_task(worker()) for _ in range(clients)]
        await asyncio.sleep(min(1.0, seconds / 4))
        count = 0
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        done = count
        elapsed = time.perf_counter() - start
        stop = True
        await asyncio.gather(*tasks)
    return done / elapsed


def _infer_request(model: str, x: np.ndarray) -> bytes:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    body = head + x.tobytes()
    return (
        b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: b\r\n"
        b"Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
        % (model.encode(), len(head), len(body))
        + body
    )


class _ClosedLoopClient(asyncio.Protocol):
    """One keep-alive connection with one request outstanding at a time (a batch-1 client
    that sends its next event as soon as the answer to the last one arrives)."""

    def __init__(self, request: bytes, state: dict[str, int]) -> None:
        self.request = request
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            start = head.find(b"Content-Length: ") + 16
            length = int(head[start : head.find(b"\r\n", start)])
            if len(self.buffer) < end + 4 + length:
                return
            if not head.startswith(b"HTTP/1.1 200"):
                self.state["errors"] += 1
            self.buffer = self.buffer[end + 4 + length :]
            self.state["done"] += 1
            if self.state["running"]:
                self.transport.write(self.request)  # type: ignore[union-attr]


async def concurrent_raw_http(
    port: int, model: str, x: np.ndarray, clients: int, seconds: float
) -> float:
    """Requests per second from ``clients`` closed-loop keep-alive HTTP connections."""
    loop = asyncio.get_running_loop()
    state = {"done": 0, "errors": 0, "running": 1}
    request = _infer_request(model, x)
    connections = [
        await loop.create_connection(lambda: _ClosedLoopClient(request, state), "127.0.0.1", port)
        for _ in range(clients)
    ]
    await asyncio.sleep(min(1.0, seconds / 4))
    start_count = state["done"]
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    done = state["done"] - start_count
    elapsed = time.perf_counter() - start
    state["running"] = 0
    await asyncio.sleep(0.2)
    for transport, _ in connections:
        transport.close()
    if state["errors"]:
        raise RuntimeError(f"{state['errors']} requests failed")
    return done / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="run folder or .onnx file")
    parser.add_argument("--seconds", type=float, default=4.0, help="per throughput measurement")
    parser.add_argument("--requests", type=int, default=3000, help="per latency measurement")
    args = parser.parse_args(argv)

    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx_path = (
            build_default_model(folder)
            if args.model is None
            else discover_models(args.model)[0].path
        )
        repo = folder / "repo"
        export_triton_repository(onnx_path, repo, name="model", max_batch_size=1024)
        export_triton_repository(
            onnx_path, repo, name="unbatched", max_batch_size=1024, dynamic_batching=False
        )
        session, provider = make_session(onnx_path, "KIND_AUTO", 1)
        x1 = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
        x256 = np.random.default_rng(1).normal(size=(256, 16)).astype(np.float32)

        def local(x: np.ndarray) -> Callable[[], object]:
            return lambda: session.run(None, {"input": x})

        rows: list[tuple[str, str, str, str]] = []
        load = os.getloadavg()[0]
        local_p50, local_p99 = percentiles(local(x1), args.requests)
        local_256 = rate(local(x256), args.seconds) * 256
        local_1 = rate(local(x1), args.seconds)

        with ServerProcess(repo) as server:
            http = httpclient.InferenceServerClient(server.http_url)
            tin = httpclient.InferInput("input", [1, 16], "FP32")
            tin.set_data_from_numpy(x1, binary_data=True)
            out = [httpclient.InferRequestedOutput(_output(http), binary_data=True)]
            expected = session.run(None, {"input": x1})[0]
            got = http.infer("model", [tin], outputs=out).as_numpy(out[0].name())
            assert np.array_equal(got, expected), "server and in-process answers differ"
            http_p50, http_p99 = percentiles(
                lambda: http.infer("model", [tin], outputs=out), args.requests
            )
            raw_p50, raw_p99 = percentiles(raw_http_call(server.http_port, x1), args.requests)

            grpc = grpcclient.InferenceServerClient(server.grpc_url)
            gin = grpcclient.InferInput("input", [1, 16], "FP32")
            gin.set_data_from_numpy(x1)
            grpc_p50, grpc_p99 = percentiles(lambda: grpc.infer("model", [gin]), args.requests)

            tput = asyncio.run(concurrent_grpc(server.grpc_url, "model", x256, 8, args.seconds))
            tput_raw = asyncio.run(
                concurrent_raw_grpc(server.grpc_url, "model", x256, 8, args.seconds)
            )
            batched = asyncio.run(concurrent_grpc(server.grpc_url, "model", x1, 64, args.seconds))
            unbatched = asyncio.run(
                concurrent_grpc(server.grpc_url, "unbatched", x1, 64, args.seconds)
            )
            http_batched = _run_uv(
                concurrent_raw_http(server.http_port, "model", x1, 64, args.seconds)
            )
            http_unbatched = _run_uv(
                concurrent_raw_http(server.http_port, "unbatched", x1, 64, args.seconds)
            )
            stats = http.get_inference_statistics("model")["model_stats"][0]
            executions = int(stats["execution_count"])
            inferences = int(stats["inference_count"])

        def ms(p50: float, p99: float) -> str:
            return f"{p50:.3f} / {p99:.3f} ms"

        local_lat = ms(local_p50, local_p99)
        target_lat = f"p50 <= {TARGETS['latency_ms']} ms"
        rows += [
            (
                "batch-1 latency p50/p99, HTTP binary (tritonclient)",
                ms(http_p50, http_p99),
                local_lat,
                target_lat,
            ),
            (
                "batch-1 latency p50/p99, HTTP binary (raw socket)",
                ms(raw_p50, raw_p99),
                local_lat,
                target_lat,
            ),
            (
                "batch-1 latency p50/p99, gRPC (tritonclient)",
                ms(grpc_p50, grpc_p99),
                local_lat,
                target_lat,
            ),
            (
                "batch 256, 8 gRPC clients (tritonclient aio), events/s",
                f"{tput * 256:,.0f}",
                f"{local_256:,.0f}",
                f">= {TARGETS['events_per_s']:,.0f}",
            ),
            (
                "batch 256, 8 gRPC clients (raw grpc.aio), events/s",
                f"{tput_raw * 256:,.0f}",
                f"{local_256:,.0f}",
                f">= {TARGETS['events_per_s']:,.0f}",
            ),
            (
                "64 batch-1 gRPC clients, dynamic batching on, req/s",
                f"{batched:,.0f}",
                f"{local_1:,.0f}",
                "",
            ),
            (
                "64 batch-1 gRPC clients, dynamic batching off, req/s",
                f"{unbatched:,.0f}",
                f"{local_1:,.0f}",
                "",
            ),
            (
                "dynamic batching gain (on / off)",
                f"{batched / unbatched:.2f}x",
                "",
                f">= {TARGETS['batching_gain']:.0f}x",
            ),
        ]
        rows += [
            (
                "64 batch-1 HTTP clients (raw), dynamic batching on, req/s",
                f"{http_batched:,.0f}",
                f"{local_1:,.0f}",
                "",
            ),
            (
                "64 batch-1 HTTP clients (raw), dynamic batching off, req/s",
                f"{http_unbatched:,.0f}",
                f"{local_1:,.0f}",
                "",
            ),
            (
                "dynamic batching gain over HTTP (on / off)",
                f"{http_batched / http_unbatched:.2f}x",
                "",
                f">= {TARGETS['batching_gain']:.0f}x",
            ),
        ]
        width = max(len(r[0]) for r in rows)
        print(
            f"hepfpga serve vs in-process onnxruntime ({provider}, 1 intra-op thread); "
            f"model {args.model or 'jet tagger QKeras 16-64-32-32-5'}; {os.cpu_count()} CPUs, "
            f"load average {load:.2f} at start; Python {sys.version.split()[0]}"
        )
        header = ("measurement", "hepfpga serve", "in-process onnxruntime", "target")
        print(f"{header[0]:<{width}}  {header[1]:>22}  {header[2]:>22}  {header[3]}")
        for name, served, local_value, target in rows:
            print(f"{name:<{width}}  {served:>22}  {local_value:>22}  {target}")
        print(
            f"mean dynamic batch during the benchmark: {inferences / max(executions, 1):.1f} "
            f"({inferences} inferences in {executions} executions)"
        )
    return 0


def _run_uv(coroutine: object) -> float:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]


def _output(client: object) -> str:
    meta = client.get_model_metadata("model")  # type: ignore[attr-defined]
    return meta["outputs"][0]["name"]


if __name__ == "__main__":
    sys.exit(main())
