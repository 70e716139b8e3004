"""System shared memory (tritonclient.utils.shared_memory as the client, HTTP and gRPC) and the
model repository API in explicit model control mode (index, load, unload, draining)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("httptools")

import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from hepfpga.deploy.serve_process import ServerProcess
from hepfpga.deploy.triton_repo import export_triton_repository

CLIENTS = {"http": httpclient, "grpc": grpcclient}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, write_tiny_onnx) -> Path:
    """``jets`` (16 -> 5, max_batch_size 64) and ``other`` (different weights)."""
    root = tmp_path_factory.mktemp("shmrepo")
    for seed, name in ((1, "jets"), (2, "other")):
        write_tiny_onnx(root / f"{name}.onnx", seed)
        export_triton_repository(root / f"{name}.onnx", root / "repo", name=name, max_batch_size=64)
    return root / "repo"


def reference(repo: Path, name: str, x: np.ndarray, version: str = "1") -> np.ndarray:
    path = repo / name / version / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.fixture(scope="module")
def server(repo: Path):  # type: ignore[no-untyped-def]
    with ServerProcess(repo) as process:
        yield process
    assert process.process is not None and process.process.returncode == 0
    assert "Traceback" not in "".join(process.output)


def client_for(server, protocol: str):  # type: ignore[no-untyped-def]
    url = server.http_url if protocol == "http" else server.grpc_url
    return CLIENTS[protocol].InferenceServerClient(url)


@pytest.fixture
def regions():  # type: ignore[no-untyped-def]
    """Creates POSIX shared memory objects; destroys them after the test."""
    made = []

    def create(byte_size: int) -> tuple[str, str, object]:
        name = f"hepfpga-test-{uuid.uuid4().hex[:12]}"
        handle = shm.create_shared_memory_region(name, "/" + name, byte_size)
        made.append(handle)
        return name, "/" + name, handle

    yield create
    for handle in made:
        shm.destroy_shared_memory_region(handle)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("output_in_shm", [True, False], ids=["out-shm", "out-sent"])
def test_inputs_and_outputs_by_region(  # type: ignore[no-untyped-def]
    server, repo: Path, regions, protocol: str, output_in_shm: bool
) -> None:
    client = client_for(server, protocol)
    module = CLIENTS[protocol]
    x = np.random.default_rng(3).normal(size=(32, 16)).astype(np.float32)
    in_name, in_key, in_handle = regions(x.nbytes + 64)
    out_name, out_key, out_handle = regions(32 * 5 * 4 + 64)
    shm.set_shared_memory_region(in_handle, [x], offset=64)
    client.register_system_shared_memory(in_name, in_key, x.nbytes + 64)
    client.register_system_shared_memory(out_name, out_key, 32 * 5 * 4, offset=64)
    try:
        tensor = module.InferInput("input", list(x.shape), "FP32")
        tensor.set_shared_memory(in_name, x.nbytes, offset=64)
        output = module.InferRequestedOutput("softmax")
        if output_in_shm:
            output.set_shared_memory(out_name, 32 * 5 * 4)
        result = client.infer("jets", [tensor], outputs=[output])
        if output_in_shm:
            got = shm.get_contents_as_numpy(out_handle, np.float32, [32, 5], offset=64)
        else:
            got = result.as_numpy("softmax")
        np.testing.assert_array_equal(got, reference(repo, "jets", x))
        status = client.get_system_shared_memory_status(in_name)
        if protocol == "http":
            assert status == [
                {"name": in_name, "key": in_key, "offset": 0, "byte_size": x.nbytes + 64}
            ]
        else:
            assert status.regions[in_name].byte_size == x.nbytes + 64
    finally:
        client.unregister_system_shared_memory()
    with pytest.raises(
        InferenceServerException, match=f"Unable to find shared memory region: '{in_name}'"
    ):
        client.infer("jets", [tensor])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_shared_memory_errors(server, regions, protocol: str) -> None:  # type: ignore[no-untyped-def]
    client = client_for(server, protocol)
    module = CLIENTS[protocol]
    name, key, _ = regions(256)
    with pytest.raises(InferenceServerException, match="Unable to open shared memory region"):
        client.register_system_shared_memory("r", "/hepfpga-no-such-region", 64)
    with pytest.raises(InferenceServerException, match="is not a POSIX shared memory name"):
        client.register_system_shared_memory("r", "/../../etc/passwd", 64)
    with pytest.raises(InferenceServerException, match="outside the 256 bytes"):
        client.register_system_shared_memory("r", key, 512)
    client.register_system_shared_memory(name, key, 256)
    try:
        with pytest.raises(InferenceServerException, match="already in manager"):
            client.register_system_shared_memory(name, key, 256)
        tensor = module.InferInput("input", [4, 16], "FP32")
        tensor.set_shared_memory(name, 256, offset=64)  # runs past the region
        with pytest.raises(InferenceServerException, match="outside the 256 bytes"):
            client.infer("jets", [tensor])
        tensor = module.InferInput("input", [4, 16], "FP32")
        tensor.set_shared_memory(name, 128)  # half the bytes a [4, 16] FP32 tensor needs
        with pytest.raises(InferenceServerException, match="unexpected total byte size 128"):
            client.infer("jets", [tensor])
        tensor.set_shared_memory(name, 256)
        output = module.InferRequestedOutput("softmax")
        output.set_shared_memory(name, 40)
        with pytest.raises(InferenceServerException, match="should be at least 80 bytes"):
            client.infer("jets", [tensor], outputs=[output])
    finally:
        client.unregister_system_shared_memory(name)
    with pytest.raises(InferenceServerException, match="Unable to find system shared memory"):
        client.get_system_shared_memory_status(name)


# -- model repository API --------------------------------------------------------------------


def test_load_and_unload_refused_without_explicit_mode(server) -> None:  # type: ignore[no-untyped-def]
    client = httpclient.InferenceServerClient(server.http_url)
    with pytest.raises(
        InferenceServerException, match="explicit model load / unload is not allowed"
    ):
        client.unload_model("jets")
    assert client.is_model_ready("jets")


def _index(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m["name"]: m.get("state", "") for m in client.get_model_repository_index()}


def test_explicit_mode_load_unload(repo: Path, tmp_path: Path) -> None:
    own = tmp_path / "repo"
    shutil.copytree(repo, own)
    with ServerProcess(own, "--model-control-mode", "explicit", "--load-model", "jets") as server:
        http = httpclient.InferenceServerClient(server.http_url)
        grpc = grpcclient.InferenceServerClient(server.grpc_url)
        assert _index(http) == {"jets": "READY", "other": "UNAVAILABLE"}
        assert not http.is_model_ready("other")
        x = np.random.default_rng(4).normal(size=(3, 16)).astype(np.float32)
        tensor = httpclient.InferInput("input", [3, 16], "FP32")
        tensor.set_data_from_numpy(x)

        grpc.load_model("other")
        assert http.is_model_ready("other")
        got = http.infer("other", [tensor]).as_numpy("softmax")
        np.testing.assert_array_equal(got, reference(own, "other", x))

        # a new version appears in the repository: a load serves it, without a restart and
        # without refusing any request sent meanwhile
        shutil.copytree(own / "jets" / "1", own / "jets" / "2")
        shutil.copyfile(own / "other" / "1" / "model.onnx", own / "jets" / "2" / "model.onnx")
        answers: list[object] = []
        stop = threading.Event()

        def keep_sending() -> None:
            sender = grpcclient.InferenceServerClient(server.grpc_url)
            t = grpcclient.InferInput("input", [3, 16], "FP32")
            t.set_data_from_numpy(x)
            while not stop.is_set():
                try:
                    answers.append(sender.infer("jets", [t]).as_numpy("softmax"))
                except InferenceServerException as exc:
                    answers.append(exc)

        sending = threading.Thread(target=keep_sending)
        sending.start()
        try:
            while len(answers) < 5:
                time.sleep(0.01)
            http.load_model("jets")
            seen = len(answers)
            while len(answers) < seen + 5:
                time.sleep(0.01)
        finally:
            stop.set()
            sending.join()
        assert http.get_model_metadata("jets")["versions"] == ["2"]
        old, new = reference(own, "jets", x), reference(own, "jets", x, version="2")
        assert not [a for a in answers if isinstance(a, Exception)]
        assert all(np.array_equal(a, old) or np.array_equal(a, new) for a in answers)  # type: ignore[arg-type]
        assert np.array_equal(answers[-1], new)  # type: ignore[arg-type]
        got = http.infer("jets", [tensor]).as_numpy("softmax")
        np.testing.assert_array_equal(got, reference(own, "jets", x, version="2"))

        http.unload_model("jets")
        assert _index(http)["jets"] == "UNAVAILABLE"
        with pytest.raises(InferenceServerException, match="'jets' has no available versions"):
            http.infer("jets", [tensor])
        with pytest.raises(InferenceServerException, match="no model folder 'nope'"):
            http.load_model("nope")
        (own / "other" / "config.pbtxt").write_text("max_batch_size: -5\n")
        with pytest.raises(InferenceServerException, match="max_batch_size is -5"):
            grpc.load_model("other")
        assert http.is_model_ready("other")  # a failed load keeps what was served
    assert "Traceback" not in "".join(server.output)


def test_unload_drains_the_requests_of_that_model(repo: Path, tmp_path: Path) -> None:
    """Requests queued before an unload are all answered; the unload returns after them."""
    own = tmp_path / "repo"
    shutil.copytree(repo, own)
    config = own / "jets" / "config.pbtxt"
    # a 200 ms queue delay keeps the requests waiting in the queue while the unload comes
    config.write_text(
        config.read_text().replace(
            "max_queue_delay_microseconds: 0",
            "max_queue_delay_microseconds: 200000\n  preferred_batch_size: [ 64 ]",
        )
    )
    with ServerProcess(own, "--model-control-mode", "explicit", "--load-model", "*") as server:
        x = np.random.default_rng(5).normal(size=(2, 16)).astype(np.float32)
        expected = reference(own, "jets", x)

        async def run() -> list[object]:
            import tritonclient.http.aio as httpaio

            client = httpaio.InferenceServerClient(server.http_url)
            try:
                tensor = httpaio.InferInput("input", [2, 16], "FP32")
                tensor.set_data_from_numpy(x)
                requests = [asyncio.ensure_future(client.infer("jets", [tensor])) for _ in range(8)]
                await asyncio.sleep(0.05)
                unloader = httpclient.InferenceServerClient(server.http_url)
                unload = asyncio.get_running_loop().run_in_executor(
                    None, unloader.unload_model, "jets"
                )
                answers = await asyncio.gather(*requests, return_exceptions=True)
                await unload
                return answers
            finally:
                await client.close()

        answers = asyncio.run(run())
        for answer in answers:
            assert not isinstance(answer, Exception), answer
            np.testing.assert_array_equal(answer.as_numpy("softmax"), expected)  # type: ignore[union-attr]
        index = _index(httpclient.InferenceServerClient(server.http_url))
        assert index == {"jets": "UNAVAILABLE", "other": "READY"}


# -- the field's benchmark client ------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("use_shm", [False, True], ids=["sent", "shm"])
def test_perf_analyzer_drives_the_server(server, protocol: str, use_shm: bool) -> None:  # type: ignore[no-untyped-def]
    """perf_analyzer (C++, from the tritonclient wheel) runs its requests against the server
    and reads the server's statistics, over both protocols, with and without system shared
    memory (it also cleans up CUDA shared memory, which must answer as an empty set)."""
    from hepfpga.deploy.perf_analyzer import perf_analyzer, perf_analyzer_command

    if perf_analyzer_command() is None:
        pytest.skip("perf_analyzer cannot run here (needs libb64-0d and libcudart.so.12)")
    url = server.http_url if protocol == "http" else server.grpc_url
    before = client_for(server, "http").get_inference_statistics("jets")["model_stats"][0]
    figures = perf_analyzer(url, protocol, "jets", 8, 2, 40, shm=use_shm)
    after = client_for(server, "http").get_inference_statistics("jets")["model_stats"][0]
    assert figures["throughput"] > 0 and 0 < figures["p50"] <= figures["p99"]
    assert int(after["inference_count"]) - int(before["inference_count"]) >= 40 * 8
    assert client_for(server, "http").get_system_shared_memory_status() == []
