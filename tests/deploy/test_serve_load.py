"""Load and shutdown: many concurrent tritonclient clients on loopback, every answer checked,
server memory stable; SIGTERM answers the requests in flight before the process exits."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("httptools")

import onnxruntime as ort
import tritonclient.grpc.aio as grpcaio
import tritonclient.http.aio as httpaio

from hepfpga.deploy.onnx_export import export_onnx
from hepfpga.deploy.serve_process import ServerProcess
from hepfpga.deploy.triton_repo import export_triton_repository


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(16,)),
            tf.keras.layers.Dense(32, activation="relu", name="hidden"),
            tf.keras.layers.Dense(5, activation="softmax", name="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("load") / "model.onnx"
    export_onnx(model, path)
    return path


@pytest.fixture(scope="module")
def load_repo(onnx_file: Path) -> Path:
    repo = onnx_file.parent / "repo"
    export_triton_repository(onnx_file, repo, name="jets", max_batch_size=256)
    return repo


class Pool:
    """Inputs of mixed batch sizes and their in-process onnxruntime answers."""

    def __init__(self, onnx_file: Path, sizes: tuple[int, ...] = (1, 1, 1, 2, 3, 8, 17, 64, 256)):
        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        self.inputs = [rng.normal(size=(n, 16)).astype(np.float32) for n in sizes * 4]
        self.expected = [session.run(None, {"input": x})[0] for x in self.inputs]


def run_load(server: ServerProcess, pool: Pool, n_requests: int, clients: int) -> dict[str, float]:
    """``clients`` concurrent clients (half gRPC, half HTTP binary), ``n_requests`` in all;
    returns counts of failures and wrong answers and the elapsed time."""
    failures = 0
    wrong = 0

    async def main() -> None:
        nonlocal failures, wrong
        grpc_client = grpcaio.InferenceServerClient(server.grpc_url)
        http_client = httpaio.InferenceServerClient(server.http_url, conn_limit=clients)
        try:

            async def worker(w: int) -> None:
                nonlocal failures, wrong
                use_grpc = w % 2 == 0
                module = grpcaio if use_grpc else httpaio
                client = grpc_client if use_grpc else http_client
                for i in range(w, n_requests, clients):
                    k = (i * 7 + w) % len(pool.inputs)
                    x = pool.inputs[k]
                    tensor = module.InferInput("input", list(x.shape), "FP32")
                    tensor.set_data_from_numpy(x)
                    try:
                        result = await client.infer("jets", [tensor])
                    except Exception:
                        failures += 1
                        continue
                    if not np.array_equal(result.as_numpy("softmax"), pool.expected[k]):
                        wrong += 1

            await asyncio.gather(*(worker(w) for w in range(clients)))
        finally:
            await grpc_client.close()
            await http_client.close()

    start = time.perf_counter()
    asyncio.run(main())
    return {"failures": failures, "wrong": wrong, "seconds": time.perf_counter() - start}


def _check_load(load_repo: Path, onnx_file: Path, n_requests: int) -> None:
    pool = Pool(onnx_file)
    with ServerProcess(load_repo) as server:
        warm = run_load(server, pool, 2000, 64)
        assert warm["failures"] == 0 and warm["wrong"] == 0
        rss_before = server.rss_bytes()
        result = run_load(server, pool, n_requests, 64)
        rss_after = server.rss_bytes()
        growth_mb = (rss_after - rss_before) / 2**20
        print(
            f"\n{n_requests} requests from 64 clients in {result['seconds']:.1f} s "
            f"({n_requests / result['seconds']:.0f} req/s); server RSS "
            f"{rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB"
        )
        assert result["failures"] == 0
        assert result["wrong"] == 0
        assert growth_mb < 20, f"server RSS grew by {growth_mb:.1f} MiB"
    assert server.process is not None and server.process.returncode == 0


def test_load_small(load_repo: Path, onnx_file: Path) -> None:
    _check_load(load_repo, onnx_file, 6000)


@pytest.mark.slow
def test_load_100k_requests_from_64_clients(load_repo: Path, onnx_file: Path) -> None:
    _check_load(load_repo, onnx_file, 100_000)


# -- SIGTERM drains ---------------------------------------------------------------------------


def _metric(server: ServerProcess, name: str) -> float:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    for line in data.decode().splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_sigterm_drains_requests_in_flight(onnx_file: Path, tmp_path: Path) -> None:
    # a long queue delay keeps the requests waiting in the server when SIGTERM arrives
    repo = tmp_path / "repo"
    export_triton_repository(
        onnx_file,
        repo,
        name="jets",
        max_batch_size=256,
        preferred_batch_sizes=(256,),
        max_queue_delay_us=1_500_000,
    )
    pool = Pool(onnx_file, sizes=(1, 2, 3))
    server = ServerProcess(repo).start()
    results: dict[str, object] = {}

    def clients() -> None:
        results.update(run_load(server, pool, 12, 12))

    thread = threading.Thread(target=clients)
    try:
        thread.start()
        deadline = time.monotonic() + 20
        pending = 'nv_inference_pending_request_count{model="jets",version="1"}'
        while _metric(server, pending) < 12:
            assert time.monotonic() < deadline, "requests never reached the server"
            time.sleep(0.01)
        sent = time.monotonic()
        server.process.terminate()  # type: ignore[union-attr]
        # the listeners close at once; the queued requests are still answered
        refused = False
        while not refused and time.monotonic() - sent < 1.0:
            try:
                socket.create_connection(("127.0.0.1", server.http_port), timeout=1).close()
                time.sleep(0.01)
            except OSError:
                refused = True
        thread.join(30)
        code = server.process.wait(30)  # type: ignore[union-attr]
    finally:
        server.kill()
    assert refused
    assert results == {"failures": 0, "wrong": 0, "seconds": results["seconds"]}
    assert code == 0
    assert "stopped" in "".join(server.output)


def test_repository_errors_exit_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "jets").mkdir()
    (tmp_path / "jets" / "config.pbtxt").write_text("max_batch_sise: 4\n")
    with pytest.raises(Exception, match="max_batch_sise"):
        ServerProcess(tmp_path, startup_timeout_s=30).start()
