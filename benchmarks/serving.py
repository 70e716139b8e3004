"""Serving benchmark: ``hepfpga serve`` against in-process onnxruntime, measured in one run.

    python benchmarks/serving.py [--model runs/jet_tagging] [--seconds 5]

Prints batch-1 latency (p50/p99) over HTTP with binary tensors and over gRPC, throughput at
batch 256 with 8 concurrent gRPC clients, and the gain of dynamic batching with 64 concurrent
batch-1 clients; each next to in-process onnxruntime on the same model and session options
(one intra-op thread, as the server uses). The server runs in a child process; the clients
are ``tritonclient`` (the library users have), plus a raw keep-alive socket / raw gRPC call
with pre-built requests that shows the server's share without the client library's.

With ``--ceilings`` (the default) the same clients also run against servers that do no work
at all (a canned answer from a uvloop + httptools HTTP server, from an empty ``grpc.aio``
server and from an empty thread-pool ``grpc`` server, each in its own process): what this
machine allows any Python server of that kind to reach, the bound under which each target
has to fit.

Without ``--model`` the pipeline's jet tagger (QKeras MLP 16-64-32-32-5, untrained: the cost
of a forward pass does not depend on the weights) is exported to a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from hepfpga.deploy.perf_analyzer import perf_analyzer, perf_analyzer_command
from hepfpga.deploy.serve_models import make_session
from hepfpga.deploy.serve_process import ServerProcess
from hepfpga.deploy.triton_repo import discover_models, export_triton_repository

TARGETS = {"latency_ms": 0.3, "events_per_s": 1e6, "batching_gain": 5.0}


def build_default_model(folder: Path) -> Path:
    """The pipeline's QKeras jet tagger, exported to ``folder/model.onnx``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hepfpga.deploy.onnx_export import export_onnx
    from hepfpga.quantize.qat import QuantizationSpec, quantize_model
    from hepfpga.train.architectures.mlp import MLPConfig
    from hepfpga.train.models import build_model

    model = quantize_model(build_model(16, 5, MLPConfig()), QuantizationSpec())
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


async def _closed_loop(
    call: Callable[[], Awaitable[object]], clients: int, seconds: float
) -> float:
    """Calls per second from ``clients`` concurrent callers, each sending its next request as
    soon as its last one is answered (after a warm-up)."""
    count = 0
    stop = False

    async def worker() -> None:
        nonlocal count
        while not stop:
            await call()
            count += 1

    tasks = [asyncio.create_task(worker()) for _ in range(clients)]
    await asyncio.sleep(min(1.0, seconds / 4))  # warm up
    count = 0
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    done = count
    elapsed = time.perf_counter() - start
    stop = True
    await asyncio.gather(*tasks)
    return done / elapsed


async def concurrent_grpc(
    url: str, model: str, x: np.ndarray, clients: int, seconds: float
) -> float:
    """Requests per second from ``clients`` concurrent tritonclient gRPC aio callers."""
    import tritonclient.grpc.aio as grpcaio

    client = grpcaio.InferenceServerClient(url)
    tensor = grpcaio.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    try:
        return await _closed_loop(lambda: client.infer(model, [tensor]), clients, seconds)
    finally:
        await client.close()


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
        return await _closed_loop(lambda: call(payload), clients, seconds)


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


def measure(
    server: ServerProcess, session: object, seconds: float, requests: int
) -> dict[str, float]:
    """One pass over every measurement; each served number is preceded by its in-process
    baseline so that both see the same machine load."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    x1 = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
    x256 = np.random.default_rng(1).normal(size=(256, 16)).astype(np.float32)

    def local(x: np.ndarray) -> Callable[[], object]:
        return lambda: session.run(None, {"input": x})  # type: ignore[attr-defined]

    out: dict[str, float] = {}
    http = httpclient.InferenceServerClient(server.http_url)
    output = http.get_model_metadata("model")["outputs"][0]["name"]
    tin = httpclient.InferInput("input", [1, 16], "FP32")
    tin.set_data_from_numpy(x1, binary_data=True)
    requested = [httpclient.InferRequestedOutput(output, binary_data=True)]
    got = http.infer("model", [tin], outputs=requested).as_numpy(output)
    if not np.array_equal(got, local(x1)()[0]):  # type: ignore[index]
        raise RuntimeError("server and in-process onnxruntime answers differ")
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    gin = grpcclient.InferInput("input", [1, 16], "FP32")
    gin.set_data_from_numpy(x1)

    out["local_p50"], out["local_p99"] = percentiles(local(x1), requests)
    out["http_p50"], out["http_p99"] = percentiles(
        lambda: http.infer("model", [tin], outputs=requested), requests
    )
    out["raw_p50"], out["raw_p99"] = percentiles(raw_http_call(server.http_port, x1), requests)
    out["grpc_p50"], out["grpc_p99"] = percentiles(lambda: grpc.infer("model", [gin]), requests)

    out["local_256"] = rate(local(x256), seconds) * 256
    out["grpc_256"] = asyncio.run(concurrent_grpc(server.grpc_url, "model", x256, 8, seconds)) * 256
    out["raw_grpc_256"] = (
        asyncio.run(concurrent_raw_grpc(server.grpc_url, "model", x256, 8, seconds)) * 256
    )

    out["local_1"] = rate(local(x1), seconds)
    for front, run in (
        ("grpc", lambda m: asyncio.run(concurrent_grpc(server.grpc_url, m, x1, 64, seconds))),
        ("http", lambda m: _run_uv(concurrent_raw_http(server.http_port, m, x1, 64, seconds))),
    ):
        out[f"{front}_on"] = run("model")
        out[f"{front}_off"] = run("unbatched")
        out[f"{front}_gain"] = out[f"{front}_on"] / out[f"{front}_off"]
    out["http_1x64_tc"] = _run_uv(concurrent_http(server.http_url, "model", x1, 64, seconds))
    x4096 = np.random.default_rng(2).normal(size=(4096, 16)).astype(np.float32)
    out["local_4096"] = rate(local(x4096), seconds) * 4096
    for key, use_shm in (("noshm_4096", False), ("shm_4096", True)):
        per_second, out[f"{key}_p50"], out[f"{key}_p99"] = shm_rate(
            server.http_url, x4096, seconds, use_shm
        )
        out[key] = per_second * 4096
    if perf_analyzer_command() is not None:
        n = max(int(seconds * 300), 300)
        for key, args, shm in (
            ("pa_http_1", (server.http_url, "http", "model", 1, 1, n * 2), False),
            ("pa_grpc_256", (server.grpc_url, "grpc", "model", 256, 8, n), False),
            ("pa_http_1x64", (server.http_url, "http", "model", 1, 64, n * 20), False),
            ("pa_http_4096", (server.http_url, "http", "model", 4096, 1, n // 3), False),
            ("pa_http_4096_shm", (server.http_url, "http", "model", 4096, 1, n // 3), True),
        ):
            try:
                figures = perf_analyzer(*args, shm=shm, timeout_s=180)  # type: ignore[misc]
            except RuntimeError as exc:  # a stalled run loses its row, not the benchmark
                print(f"perf_analyzer {key}: {exc}", file=sys.stderr)
                figures = dict.fromkeys(
                    ("throughput", "p50", "p99", "queue_us", "compute_us"), np.nan
                )
            for name, value in figures.items():
                out[f"{key}_{name}"] = value
    stats = http.get_inference_statistics("model")["model_stats"][0]
    out["mean_batch"] = int(stats["inference_count"]) / max(int(stats["execution_count"]), 1)
    http.close()
    grpc.close()
    return out


# -- perf_analyzer (the C++ client in the tritonclient wheel) and shared memory ---------------


def shm_rate(url: str, x: np.ndarray, seconds: float, use_shm: bool) -> tuple[float, float, float]:
    """One tritonclient HTTP client sending ``x`` (binary tensors), with inputs and outputs
    in system shared memory or in the request and answer: requests per second run back to
    back, and the p50 / p99 latency in ms of 200 more (on a loaded machine the rate is
    dominated by stalls of other processes; the median is not)."""
    import tritonclient.http as httpclient
    import tritonclient.utils.shared_memory as shm

    client = httpclient.InferenceServerClient(url)
    meta = client.get_model_metadata("model")
    per_event = int(np.prod(meta["outputs"][0]["shape"][1:]))
    out_bytes = x.shape[0] * per_event * 4
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    output = httpclient.InferRequestedOutput(meta["outputs"][0]["name"], binary_data=True)
    handles = []
    try:
        if use_shm:
            tag = f"hepfpga-bench-{os.getpid()}"
            h_in = shm.create_shared_memory_region(tag + "-in", f"/{tag}-in", x.nbytes)
            h_out = shm.create_shared_memory_region(tag + "-out", f"/{tag}-out", out_bytes)
            handles = [h_in, h_out]
            shm.set_shared_memory_region(h_in, [x])
            client.register_system_shared_memory(tag + "-in", f"/{tag}-in", x.nbytes)
            client.register_system_shared_memory(tag + "-out", f"/{tag}-out", out_bytes)
            tensor.set_shared_memory(tag + "-in", x.nbytes)
            output.set_shared_memory(tag + "-out", out_bytes)

            def call() -> object:
                client.infer("model", [tensor], outputs=[output])
                return shm.get_contents_as_numpy(h_out, np.float32, [x.shape[0], per_event])

        else:
            tensor.set_data_from_numpy(x, binary_data=True)

            def call() -> object:
                return client.infer("model", [tensor], outputs=[output]).as_numpy(
                    meta["outputs"][0]["name"]
                )

        per_second = rate(call, seconds)
        p50, p99 = percentiles(call, 200, warmup=20)
        return per_second, p50, p99
    finally:
        if handles:
            client.unregister_system_shared_memory()
            for handle in handles:
                shm.destroy_shared_memory_region(handle)
        client.close()


async def concurrent_http(
    url: str, model: str, x: np.ndarray, clients: int, seconds: float
) -> float:
    """Requests per second from ``clients`` concurrent tritonclient HTTP aio callers."""
    import tritonclient.http.aio as httpaio

    client = httpaio.InferenceServerClient(url, conn_limit=clients)
    tensor = httpaio.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    try:
        return await _closed_loop(lambda: client.infer(model, [tensor]), clients, seconds)
    finally:
        await client.close()


# -- ceilings: servers that do no work ------------------------------------------------------


def _canned_http(port: int, ready: object) -> None:
    """An HTTP server answering every request with one pre-built inference response."""
    import httptools
    import uvloop

    head = json.dumps(
        {
            "model_name": "model",
            "model_version": "1",
            "outputs": [
                {
                    "name": "output",
                    "datatype": "FP32",
                    "shape": [1, 5],
                    "parameters": {"binary_data_size": 20},
                }
            ],
        }
    ).encode()
    body = head + bytes(20)
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n"
        b"Inference-Header-Content-Length: %d\r\n\r\n" % (len(body), len(head)) + body
    )

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.transport.write(answer)  # type: ignore[attr-defined]

    async def run() -> None:
        await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", port)
        ready.set()  # type: ignore[attr-defined]
        await asyncio.Event().wait()

    uvloop.run(run())


def _empty_grpc(port: int, ready: object, kind: str, batch: int) -> None:
    """A gRPC server (``aio`` or thread-pool ``sync``) answering ModelInfer with a canned
    response of ``batch`` x 5 floats."""
    from concurrent import futures

    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    answer = service_pb2.ModelInferResponse(model_name="model", model_version="1")
    answer.outputs.add(name="output", datatype="FP32", shape=[batch, 5])
    answer.raw_output_contents.append(bytes(batch * 5 * 4))
    options = [("grpc.so_reuseport", 0)]

    if kind == "sync":

        class Sync(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
            def ModelInfer(self, request: object, context: object) -> object:  # noqa: N802
                return answer

        server = grpc.server(futures.ThreadPoolExecutor(4), options=options)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Sync(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        ready.set()  # type: ignore[attr-defined]
        server.wait_for_termination()
        return

    class Aio(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
        async def ModelInfer(self, request: object, context: object) -> object:  # noqa: N802
            return answer

    async def run() -> None:
        server = grpc.aio.server(options=options)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Aio(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()  # type: ignore[attr-defined]
        await server.wait_for_termination()

    import uvloop

    uvloop.run(run())


def _run_pinned(cpus: frozenset[int] | None, target: Callable[..., None], *args: object) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    target(*args)


class _Spawned:
    """``target(port, ready, *args)`` in a fresh (spawned: gRPC does not survive a fork)
    process on a free loopback port; the target sets ``ready`` once it listens."""

    def __init__(
        self, target: Callable[..., None], *args: object, cpus: frozenset[int] | None = None
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        context = multiprocessing.get_context("spawn")
        self.ready = context.Event()
        self.process = context.Process(
            target=_run_pinned, args=(cpus, target, self.port, self.ready, *args), daemon=True
        )

    def __enter__(self) -> _Spawned:
        self.process.start()
        if not self.ready.wait(60):
            self.process.kill()
            raise RuntimeError(f"{self.process.name} did not start listening within 60 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.join(5)


def measure_ceilings(
    seconds: float, requests: int, cpus: frozenset[int] | None = None
) -> dict[str, float]:
    """The clients of :func:`measure` against servers that do no work."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    x1 = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
    x256 = np.random.default_rng(1).normal(size=(256, 16)).astype(np.float32)
    out: dict[str, float] = {}
    with _Spawned(_canned_http, cpus=cpus) as canned:
        http = httpclient.InferenceServerClient(f"127.0.0.1:{canned.port}")
        tin = httpclient.InferInput("input", [1, 16], "FP32")
        tin.set_data_from_numpy(x1, binary_data=True)
        requested = [httpclient.InferRequestedOutput("output", binary_data=True)]
        out["http_p50"], out["http_p99"] = percentiles(
            lambda: http.infer("model", [tin], outputs=requested), requests
        )
        http.close()
        out["raw_p50"], out["raw_p99"] = percentiles(raw_http_call(canned.port, x1), requests)
        out["http_1x64"] = _run_uv(concurrent_raw_http(canned.port, "model", x1, 64, seconds))
        out["http_1x64_tc"] = _run_uv(
            concurrent_http(f"127.0.0.1:{canned.port}", "model", x1, 64, seconds)
        )
    for kind in ("aio", "sync"):
        with _Spawned(_empty_grpc, kind, 1, cpus=cpus) as empty:
            grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{empty.port}")
            gin = grpcclient.InferInput("input", [1, 16], "FP32")
            gin.set_data_from_numpy(x1)
            p50, p99 = percentiles(lambda c=grpc, t=gin: c.infer("model", [t]), requests)
            out[f"grpc_{kind}_p50"], out[f"grpc_{kind}_p99"] = p50, p99
            grpc.close()
        with _Spawned(_empty_grpc, kind, 256, cpus=cpus) as empty:
            url = f"127.0.0.1:{empty.port}"
            out[f"grpc_{kind}_256"] = (
                asyncio.run(concurrent_grpc(url, "model", x256, 8, seconds)) * 256
            )
            out[f"raw_grpc_{kind}_256"] = (
                asyncio.run(concurrent_raw_grpc(url, "model", x256, 8, seconds)) * 256
            )
    return out


# -- issue 14's targets: the same client against hepfpga serve and a no-work server,
# -- alternating in rounds, with the split of the served request that bounds each ratio -----


def cpu_ns(pid: int) -> int:
    """CPU time used so far by every thread of process ``pid`` (ns, from /proc schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total


class _StatsDelta:
    """The server's statistics of one model over a block of requests: per request, the
    time in its queue and in onnxruntime, and the server's CPU time."""

    def __init__(self, url: str, model: str, pid: int) -> None:
        import tritonclient.http as httpclient

        self.client = httpclient.InferenceServerClient(url)
        self.model, self.pid = model, pid

    def _now(self) -> tuple[dict[str, object], int]:
        stats = self.client.get_inference_statistics(self.model)["model_stats"][0]
        return stats, cpu_ns(self.pid)

    def __enter__(self) -> _StatsDelta:
        self.before = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        (a, cpu_a), (b, cpu_b) = self.before, self._now()

        def ns(stats: dict[str, object], key: str) -> int:
            return int(stats["inference_stats"][key]["ns"])  # type: ignore[index]

        def count(stats: dict[str, object], key: str) -> int:
            return int(stats["inference_stats"][key]["count"])  # type: ignore[index]

        n = max(count(b, "success") - count(a, "success"), 1)
        self.requests = n
        self.queue_us = (ns(b, "queue") - ns(a, "queue")) / n / 1e3
        self.infer_us = (ns(b, "compute_infer") - ns(a, "compute_infer")) / n / 1e3
        self.server_us = (ns(b, "success") - ns(a, "success")) / n / 1e3
        self.cpu_us = (cpu_b - cpu_a) / n / 1e3
        self.mean_batch = (int(b["inference_count"]) - int(a["inference_count"])) / max(
            int(b["execution_count"]) - int(a["execution_count"]), 1
        )


def _tc_http_latency(url: str, output: str, x: np.ndarray, n: int) -> float:
    """p50 in ms of ``n`` batch-1 requests from one tritonclient HTTP client (binary)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    requested = [httpclient.InferRequestedOutput(output, binary_data=True)]
    try:
        return percentiles(lambda: client.infer("model", [tensor], outputs=requested), n, 100)[0]
    finally:
        client.close()


def _with_cpu(pids: list[int], fn: Callable[[], float]) -> tuple[float, list[int]]:
    before = [cpu_ns(p) for p in pids]
    value = fn()
    return value, [cpu_ns(p) - b for p, b in zip(pids, before, strict=True)]


def measure_targets(
    server: ServerProcess, rounds: int, seconds: float, requests: int, session: object
) -> list[dict[str, float]]:
    """Issue 14's four ratios, ``rounds`` times: in each round the same client runs against
    hepfpga serve and then against the no-work server (both up all along), so both numbers
    of a ratio see the same machine load; with each, what the served request was made of."""
    import tritonclient.http as httpclient

    x1 = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
    x256 = np.random.default_rng(1).normal(size=(256, 16)).astype(np.float32)
    x4096 = np.random.default_rng(2).normal(size=(4096, 16)).astype(np.float32)
    output = httpclient.InferenceServerClient(server.http_url).get_model_metadata("model")[
        "outputs"
    ][0]["name"]
    me = os.getpid()
    out: list[dict[str, float]] = []
    with (
        _Spawned(_canned_http) as canned,
        _Spawned(_empty_grpc, "aio", 256) as empty,
    ):
        canned_url = f"127.0.0.1:{canned.port}"
        for _ in range(rounds):
            r: dict[str, float] = {"load": os.getloadavg()[0]}
            # batch-1 p50, HTTP binary, one tritonclient client
            with _StatsDelta(server.http_url, "model", server.pid) as split:
                r["b1_serve"] = _tc_http_latency(server.http_url, output, x1, requests)
            r["b1_canned"] = _tc_http_latency(canned_url, "output", x1, requests)
            raw_cpu = cpu_ns(server.pid)
            r["b1_raw_serve"] = percentiles(raw_http_call(server.http_port, x1), requests)[0]
            r["b1_raw_cpu_us"] = (cpu_ns(server.pid) - raw_cpu) / (requests + 300) / 1e3
            r["b1_raw_canned"] = percentiles(raw_http_call(canned.port, x1), requests)[0]
            r["b1_local"] = percentiles(
                lambda: session.run(None, {"input": x1}),  # type: ignore[attr-defined]
                requests,
            )[0]
            r["b1_queue_us"], r["b1_infer_us"] = split.queue_us, split.infer_us
            r["b1_server_us"], r["b1_cpu_us"] = split.server_us, split.cpu_us
            # 64 concurrent batch-1 tritonclient HTTP aio clients
            with _StatsDelta(server.http_url, "model", server.pid) as split64:
                r["c64_serve"], (client_ns, server_ns) = _with_cpu(
                    [me, server.pid],
                    lambda: _run_uv(concurrent_http(server.http_url, "model", x1, 64, seconds)),
                )
            r["c64_canned"], (canned_client_ns, canned_ns) = _with_cpu(
                [me, canned.process.pid],  # type: ignore[list-item]
                lambda: _run_uv(concurrent_http(canned_url, "model", x1, 64, seconds)),
            )
            served = max(split64.requests, 1)
            n_canned = max(r["c64_canned"] * seconds, 1)
            r["c64_client_us"] = client_ns / served / 1e3
            r["c64_server_us"] = server_ns / served / 1e3
            r["c64_canned_client_us"] = canned_client_ns / n_canned / 1e3
            r["c64_canned_server_us"] = canned_ns / n_canned / 1e3
            r["c64_mean_batch"] = split64.mean_batch
            # batch 256, 8 concurrent tritonclient gRPC aio clients
            r["g256_serve"] = (
                asyncio.run(concurrent_grpc(server.grpc_url, "model", x256, 8, seconds)) * 256
            )
            r["g256_empty"] = (
                asyncio.run(concurrent_grpc(f"127.0.0.1:{empty.port}", "model", x256, 8, seconds))
                * 256
            )
            # batch 4096, one tritonclient HTTP client, shared memory or not
            for key, use_shm in (("shm", True), ("noshm", False)):
                with _StatsDelta(server.http_url, "model", server.pid) as split4k:
                    per_s, r[f"{key}_p50"], _ = shm_rate(server.http_url, x4096, seconds, use_shm)
                r[key] = per_s * 4096
                r[f"{key}_infer_us"] = split4k.infer_us
                r[f"{key}_server_us"] = split4k.server_us
            r["local_4096_ms"] = percentiles(
                lambda: session.run(None, {"input": x4096}),  # type: ignore[attr-defined]
                20,
                3,
            )[0]
            out.append(r)
    return out


def print_target_rounds(rounds: list[dict[str, float]], note: str = "") -> None:
    """The four ratios per round and their median, then what bounds each one."""

    def med(key: str) -> float:
        return float(np.median([r[key] for r in rounds]))

    ratios = [
        ("batch-1 p50, HTTP binary, tritonclient: serve / canned", "b1_serve", "b1_canned",
         "<= 1.5x", False),
        ("batch 256 x 8 gRPC tritonclient aio: serve / empty grpc.aio", "g256_serve",
         "g256_empty", ">= 0.8x", True),
        ("batch 4096 events/s, HTTP tritonclient: shared memory / without", "shm", "noshm",
         ">= 1.5x", True),
        ("  same, at the median latency (without / with)", "noshm_p50", "shm_p50", "", True),
        ("64 batch-1 clients, tritonclient HTTP aio: serve / canned", "c64_serve",
         "c64_canned", ">= 0.9x", True),
    ]  # fmt: skip
    width = max(len(r[0]) for r in ratios)
    print()
    print(
        f"targets (issue 14): the same client against hepfpga serve and a no-work server, "
        f"alternating, {len(rounds)} round(s){note}; load average per round: "
        + ", ".join(f"{r['load']:.1f}" for r in rounds)
    )
    print(f"{'ratio':<{width}}  {'per round':>24}  {'median':>7}  target")
    for name, num, den, target, _ in ratios:
        per = [r[num] / r[den] for r in rounds]
        per_text = " ".join(f"{v:.2f}" for v in per)
        print(f"{name:<{width}}  {per_text:>24}  {float(np.median(per)):>6.2f}x  {target}")
    b1 = med("b1_serve"), med("b1_canned"), med("b1_local")
    print()
    print("what each served request is made of (medians over the rounds):")
    print(
        f"- batch 1, HTTP: tritonclient p50 {b1[0]:.3f} ms against {b1[1]:.3f} ms canned "
        f"(raw socket {med('b1_raw_serve'):.3f} vs {med('b1_raw_canned'):.3f} ms). The "
        f"server holds a request {med('b1_server_us'):.0f} us from parse to result (queue "
        f"{med('b1_queue_us'):.0f} us, onnxruntime {med('b1_infer_us'):.0f} us) and uses "
        f"{med('b1_cpu_us'):.0f} us of CPU per request ({med('b1_raw_cpu_us'):.0f} us with "
        f"the raw socket's requests back to back: between a slower client's requests the "
        f"server's caches go cold); the model call alone, hot, in process, "
        f"is {b1[2] * 1e3:.0f} us. Even with no protocol work at all the ratio could not go "
        f"below (canned + model call) / canned = {(b1[1] + b1[2]) / b1[1]:.2f}x."
    )
    c64_bound = (med("c64_canned_client_us") + med("c64_canned_server_us")) / max(
        med("c64_client_us") + med("c64_server_us"), 1e-9
    )
    print(
        f"- 64 batch-1 clients: {med('c64_serve'):,.0f} vs {med('c64_canned'):,.0f} "
        f"requests/s (mean batch {med('c64_mean_batch'):.1f}); CPU per request: clients "
        f"{med('c64_client_us'):.0f} us + server {med('c64_server_us'):.0f} us served, "
        f"clients {med('c64_canned_client_us'):.0f} us + server "
        f"{med('c64_canned_server_us'):.0f} us canned. On 2 shared cores the rate is about "
        f"cores / CPU per request, so the ratio is near (canned client + server) / (served "
        f"client + server) = "
        f"{c64_bound:.2f}x."
    )
    print(
        f"- batch 4096: {med('shm'):,.0f} events/s with shared memory, {med('noshm'):,.0f} "
        f"without (p50 {med('shm_p50'):.2f} vs {med('noshm_p50'):.2f} ms); onnxruntime takes "
        f"{med('shm_infer_us') / 1e3:.2f} / {med('noshm_infer_us') / 1e3:.2f} ms of them in the "
        f"server ({med('local_4096_ms'):.2f} ms in process). Shared memory can only take away "
        f"what is not the model call: at most without / model call = "
        f"{med('noshm_p50') / med('local_4096_ms'):.2f}x at the median."
    )
    print(f"- batch 256 x 8 gRPC: {med('g256_serve'):,.0f} vs {med('g256_empty'):,.0f} events/s.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="run folder or .onnx file")
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    parser.add_argument("--requests", type=int, default=3000, help="per latency measurement")
    parser.add_argument("--repeat", type=int, default=1, help="passes; the table shows medians")
    parser.add_argument(
        "--server-cpus",
        metavar="LIST",
        help="pin the servers to these CPUs (hepfpga serve --cpus), e.g. 0; clients get the rest",
    )
    parser.add_argument(
        "--inline-max-us",
        help="hepfpga serve --inline-max-us for the served model (0: no on-loop runs)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the issue-14 target ratios (serve and no-work server alternating)",
    )
    parser.add_argument(
        "--targets-only",
        action="store_true",
        help="only the target ratios (skip the full tables and perf_analyzer)",
    )
    parser.add_argument(
        "--ceilings",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the same clients against servers that do no work",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx_path = (
            build_default_model(folder)
            if args.model is None
            else discover_models(args.model)[0].path
        )
        repo = folder / "repo"
        export_triton_repository(onnx_path, repo, name="model", max_batch_size=4096)
        export_triton_repository(
            onnx_path, repo, name="unbatched", max_batch_size=1024, dynamic_batching=False
        )
        session, provider = make_session(onnx_path, "KIND_AUTO", 1)
        load = os.getloadavg()[0]
        passes = []
        server_args = ["--cpus", args.server_cpus] if args.server_cpus else []
        if args.inline_max_us is not None:
            server_args += ["--inline-max-us", args.inline_max_us]
        server_cpus = None
        with ServerProcess(repo, *server_args) as server:
            if args.server_cpus:
                from hepfpga.deploy.serve import parse_cpu_list

                server_cpus = parse_cpu_list(args.server_cpus)
                others = os.sched_getaffinity(0) - server_cpus
                if others:  # the clients keep off the server's CPUs
                    os.sched_setaffinity(0, others)
            for _ in range(0 if args.targets_only else args.repeat):
                result = measure(server, session, args.seconds, args.requests)
                if args.ceilings:
                    ceilings = measure_ceilings(args.seconds, args.requests, server_cpus)
                    result.update({f"ceiling_{k}": v for k, v in ceilings.items()})
                passes.append(result)
            rounds = (
                measure_targets(server, args.rounds, args.seconds, args.requests, session)
                if args.rounds > 0
                else []
            )
    note = f", serve --inline-max-us {args.inline_max_us}" if args.inline_max_us else ""
    if not passes:
        if rounds:
            print_target_rounds(rounds, note)
        return 0
    m = {key: float(np.median([p[key] for p in passes])) for key in passes[0]}

    def ms(key: str) -> str:
        return f"{m[key + '_p50']:.3f} / {m[key + '_p99']:.3f} ms"

    lat = f"p50 <= {TARGETS['latency_ms']} ms"
    ev = f">= {TARGETS['events_per_s'] / 1e6:.0f}M ev/s"
    gain = f">= {TARGETS['batching_gain']:.0f}x"
    rows = [
        ("batch-1 latency p50/p99, HTTP binary, tritonclient", ms("http"), ms("local"), lat),
        ("batch-1 latency p50/p99, HTTP binary, raw socket", ms("raw"), ms("local"), lat),
        ("batch-1 latency p50/p99, gRPC, tritonclient", ms("grpc"), ms("local"), lat),
        (
            "batch 256, 8 gRPC clients (tritonclient aio), events/s",
            f"{m['grpc_256']:,.0f}",
            f"{m['local_256']:,.0f}",
            ev,
        ),
        (
            "batch 256, 8 gRPC clients (raw grpc.aio), events/s",
            f"{m['raw_grpc_256']:,.0f}",
            f"{m['local_256']:,.0f}",
            ev,
        ),
    ]
    for front, label in (("grpc", "gRPC, tritonclient aio"), ("http", "HTTP, raw keep-alive")):
        rows += [
            (
                f"64 batch-1 clients ({label}), batching on, events/s",
                f"{m[front + '_on']:,.0f}",
                f"{m['local_1']:,.0f}",
                "",
            ),
            (
                f"64 batch-1 clients ({label}), batching off, events/s",
                f"{m[front + '_off']:,.0f}",
                f"{m['local_1']:,.0f}",
                "",
            ),
            (f"dynamic batching gain on/off ({label})", f"{m[front + '_gain']:.2f}x", "", gain),
        ]
    width = max(len(r[0]) for r in rows)
    print(
        f"hepfpga serve vs in-process onnxruntime ({provider}, 1 intra-op thread); model "
        f"{args.model or 'jet tagger QKeras 16-64-32-32-5'}; {os.cpu_count()} CPUs, load "
        f"average {load:.2f} at start; medians of {args.repeat} pass(es)"
        + (f"; server pinned to CPUs {args.server_cpus}" if args.server_cpus else "")
    )
    header = ("measurement", "hepfpga serve", "in-process", "target")
    print(f"{header[0]:<{width}}  {header[1]:>20}  {header[2]:>20}  {header[3]}")
    for name, served, local_value, target in rows:
        print(f"{name:<{width}}  {served:>20}  {local_value:>20}  {target}")
    print(f"mean dynamic batch of 'model' over the run: {m['mean_batch']:.1f}")
    if args.ceilings:
        print_ceilings(m)
    if "pa_http_1_p50" in m:
        print_perf_analyzer(m)
    if rounds:
        print_target_rounds(rounds, note)
    return 0


def print_perf_analyzer(m: dict[str, float]) -> None:
    """perf_analyzer's own figures against hepfpga serve, from the same run."""
    print()
    print(
        "perf_analyzer (C++ client from the tritonclient wheel) against hepfpga serve; server "
        "queue / compute from the server's statistics, per request:"
    )
    header = ("run", "infer/s", "p50 / p99 ms", "queue us", "compute us")
    rows = [
        ("HTTP, batch 1, 1 client", "pa_http_1"),
        ("gRPC, batch 256, 8 clients", "pa_grpc_256"),
        ("HTTP, batch 1, 64 clients", "pa_http_1x64"),
        ("HTTP, batch 4096, 1 client", "pa_http_4096"),
        ("HTTP, batch 4096, 1 client, system shared memory", "pa_http_4096_shm"),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"{header[0]:<{width}}  {header[1]:>12}  {header[2]:>16}  {header[3]:>9}  {header[4]:>10}"
    )
    for name, key in rows:
        print(
            f"{name:<{width}}  {m[key + '_throughput']:>12,.0f}  "
            f"{m[key + '_p50']:>7.3f} / {m[key + '_p99']:<6.3f}  {m[key + '_queue_us']:>9.0f}  "
            f"{m[key + '_compute_us']:>10.0f}"
        )
    print(
        f"in-process onnxruntime, same run: batch 1 p50 {m['local_p50']:.3f} ms; "
        f"batch 256 {m['local_256']:,.0f} events/s; batch 4096 {m['local_4096']:,.0f} events/s"
    )


def print_ceilings(m: dict[str, float]) -> None:
    """The second table: the same clients against servers that do no work."""

    def ms(key: str) -> str:
        return f"{m[key + '_p50']:.3f} / {m[key + '_p99']:.3f} ms"

    def ev(key: str) -> str:
        return f"{m[key]:,.0f}"

    rows = [
        (
            "batch-1 p50/p99, HTTP binary, tritonclient; canned answer",
            ms("ceiling_http"),
            ms("http"),
        ),
        ("batch-1 p50/p99, HTTP binary, raw socket; canned answer", ms("ceiling_raw"), ms("raw")),
        ("batch-1 p50/p99, gRPC, tritonclient; empty grpc.aio", ms("ceiling_grpc_aio"), ms("grpc")),
        (
            "batch-1 p50/p99, gRPC, tritonclient; empty thread-pool grpc",
            ms("ceiling_grpc_sync"),
            "",
        ),
        (
            "batch 256 x 8 clients, tritonclient aio; empty grpc.aio, ev/s",
            ev("ceiling_grpc_aio_256"),
            ev("grpc_256"),
        ),
        (
            "batch 256 x 8 clients, raw grpc.aio; empty grpc.aio, ev/s",
            ev("ceiling_raw_grpc_aio_256"),
            ev("raw_grpc_256"),
        ),
        (
            "batch 256 x 8 clients, tritonclient aio; empty thread-pool grpc, ev/s",
            ev("ceiling_grpc_sync_256"),
            "",
        ),
        (
            "batch 256 x 8 clients, raw grpc.aio; empty thread-pool grpc, ev/s",
            ev("ceiling_raw_grpc_sync_256"),
            "",
        ),
        (
            "64 batch-1 clients, HTTP raw keep-alive; canned answer, ev/s",
            ev("ceiling_http_1x64"),
            ev("http_on"),
        ),
        (
            "bound on the HTTP dynamic batching gain (canned / batching off)",
            f"{m['ceiling_http_1x64'] / m['http_off']:.2f}x",
            f"{m['http_gain']:.2f}x",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print("the same clients against servers that do no work (one process each, same machine):")
    header = ("measurement", "no-work server", "hepfpga serve")
    print(f"{header[0]:<{width}}  {header[1]:>20}  {header[2]:>20}")
    for name, ceiling, served in rows:
        print(f"{name:<{width}}  {ceiling:>20}  {served:>20}")


def _run_uv(coroutine: object) -> float:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
