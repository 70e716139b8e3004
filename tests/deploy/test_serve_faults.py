"""Faults of the models and of shared memory while serving (issue 19): onnxruntime refusing a
model at start or through the repository API, onnxruntime failing on a request, a shared
memory object shrunk under a registered region, a model with two inputs, and serve options
outside what the libraries accept. Every one: a status, one line, no traceback, and the
server keeps serving the other models."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("httptools")

import onnx
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from hepfpga.cli import main
from hepfpga.deploy.model_spec import DynamicBatching
from hepfpga.deploy.serve_models import LoadedModel
from hepfpga.deploy.serve_process import ServerProcess
from hepfpga.deploy.triton_repo import discover_models, export_triton_repository

CLIENTS = {"http": httpclient, "grpc": grpcclient}
W = np.arange(8, dtype=np.float32).reshape(4, 2) / 8
WA = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
WB = np.arange(4, dtype=np.float32).reshape(2, 2) - 1.5


def _save(path: Path, nodes, inputs, outputs, weights) -> Path:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _matmul(path: Path, op: str = "MatMul", k: str | int = "K") -> Path:
    """``y = x @ W`` with x of [N, K] (K variable unless given): onnxruntime fails on a K other
    than 4 while running, not at load. ``op="Bogus"``: a graph onnxruntime refuses to load."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    node = helper.make_node(op, ["x", "w"], ["y"])
    return _save(path, [node], [x], [y], [numpy_helper.from_array(W, "w")])


def _two_inputs(path: Path) -> Path:
    """``y = a @ WA + b @ WB``, inputs a [N, 3] and b [N, 2]."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    nodes = [
        helper.make_node("MatMul", ["a", "wa"], ["ya"]),
        helper.make_node("MatMul", ["b", "wb"], ["yb"]),
        helper.make_node("Add", ["ya", "yb"], ["y"]),
    ]
    weights = [numpy_helper.from_array(WA, "wa"), numpy_helper.from_array(WB, "wb")]
    return _save(path, nodes, [a, b], [y], weights)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``varK`` (fails at run time on a K other than 4), ``pair`` (two inputs), ``bogus``
    (refused by onnxruntime at load; only loaded through the repository API)."""
    root = tmp_path_factory.mktemp("faults")
    for name, make in (("varK", _matmul), ("pair", _two_inputs)):
        export_triton_repository(make(root / f"{name}.onnx"), root / "repo", max_batch_size=64)
    bogus = root / "repo" / "bogus" / "1"
    bogus.mkdir(parents=True)
    _matmul(bogus / "model.onnx", op="Bogus")
    return root / "repo"


@pytest.fixture(scope="module")
def server(repo: Path):  # type: ignore[no-untyped-def]
    args = ("--model-control-mode", "explicit", "--load-model", "varK", "--load-model", "pair")
    with ServerProcess(repo, *args) as process:
        yield process
    log = "".join(process.output)
    assert "Traceback" not in log, log
    assert process.process is not None and process.process.returncode == 0


def _client(server, protocol: str):  # type: ignore[no-untyped-def]
    url = server.http_url if protocol == "http" else server.grpc_url
    return CLIENTS[protocol].InferenceServerClient(url)


def _tensor(protocol: str, name: str, array: np.ndarray):  # type: ignore[no-untyped-def]
    tensor = CLIENTS[protocol].InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return tensor


def _status(exc: InferenceServerException) -> str:
    return str(exc.status())


def _serves_pair(server, protocol: str) -> None:  # type: ignore[no-untyped-def]
    a = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    b = np.linspace(2, -2, 8, dtype=np.float32).reshape(4, 2)
    answer = _client(server, protocol).infer(
        "pair", [_tensor(protocol, "b", b), _tensor(protocol, "a", a)]
    )
    session = ort.InferenceSession(
        str(server.path / "pair" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_array_equal(answer.as_numpy("y"), session.run(None, {"a": a, "b": b})[0])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_two_input_model_is_served_by_input_name(server, protocol: str) -> None:  # type: ignore[no-untyped-def]
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse(
        (server.path / "pair" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert [(t.name, list(t.dims)) for t in config.input] == [("a", [3]), ("b", [2])]
    meta = _client(server, protocol).get_model_metadata("pair")
    inputs = meta["inputs"] if protocol == "http" else [{"name": t.name} for t in meta.inputs]
    assert [t["name"] for t in inputs] == ["a", "b"]
    _serves_pair(server, protocol)
    with pytest.raises(InferenceServerException, match=r"missing required input\(s\) \['b'\]"):
        _client(server, protocol).infer(
            "pair", [_tensor(protocol, "a", np.zeros((1, 3), np.float32))]
        )


@pytest.mark.parametrize(("protocol", "status"), [("http", "500"), ("grpc", "StatusCode.INTERNAL")])
def test_onnxruntime_failure_is_one_line_and_the_model_keeps_serving(  # type: ignore[no-untyped-def]
    server, protocol: str, status: str
) -> None:
    client = _client(server, protocol)
    with pytest.raises(InferenceServerException) as info:
        client.infer("varK", [_tensor(protocol, "x", np.ones((2, 3), np.float32))])
    message = info.value.message()
    assert _status(info.value) == status
    assert message.startswith("onnxruntime failed on model 'varK' version 1: ")
    assert "dimension mismatch" in message and "\n" not in message
    x = np.ones((2, 4), np.float32)
    answer = client.infer("varK", [_tensor(protocol, "x", x)])
    np.testing.assert_allclose(answer.as_numpy("y"), x @ W)


def test_a_failure_nobody_waits_for_leaves_no_traceback(server) -> None:  # type: ignore[no-untyped-def]
    """The client sends a request the model fails on and goes away before the answer: the
    failure must not end in asyncio's "exception was never retrieved" (a traceback)."""
    body = b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}'
    request = b"POST /v2/models/varK/infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
            sock.sendall(request)
    assert _client(server, "http").is_model_ready("varK")
    assert "never retrieved" not in "".join(server.output)


@pytest.mark.parametrize(("protocol", "status"), [("http", "400"), ("grpc", "INVALID_ARGUMENT")])
def test_repository_load_of_a_broken_model_leaves_the_others_serving(  # type: ignore[no-untyped-def]
    server, protocol: str, status: str
) -> None:
    client = _client(server, protocol)
    with pytest.raises(InferenceServerException) as info:
        client.load_model("bogus")
    assert status in _status(info.value)
    message = info.value.message()
    assert "failed to load 'bogus': onnxruntime cannot load" in message
    assert "No Op registered for Bogus" in message and "\n" not in message
    assert not client.is_model_ready("bogus")
    assert client.is_model_ready("varK") and client.is_model_ready("pair")
    _serves_pair(server, protocol)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("where", ["input", "output"])
def test_shared_memory_shrunk_under_a_region_is_refused(  # type: ignore[no-untyped-def]
    server, protocol: str, where: str
) -> None:
    """The client truncates the object after registering it: the server used to die of
    SIGBUS on the next request touching the region."""
    client = _client(server, protocol)
    module = CLIENTS[protocol]
    name = f"shrink-{uuid.uuid4().hex[:8]}"
    key = f"/hepfpga-test-{name}"
    path = Path("/dev/shm") / key[1:]
    x = np.ones((4, 4), np.float32)
    path.write_bytes(x.tobytes() + bytes(64))  # the input, then room for the output
    try:
        client.register_system_shared_memory(name, key, 128)
        tensor = module.InferInput("x", [4, 4], "FP32")
        tensor.set_shared_memory(name, 64)
        output = module.InferRequestedOutput("y")
        output.set_shared_memory(name, 32, offset=64)
        answer = client.infer("varK", [tensor], outputs=[output])
        assert answer is not None
        written = np.frombuffer(path.read_bytes()[64:96], np.float32)
        np.testing.assert_allclose(written, (x @ W).ravel())
        # shrink under the region: the input (first 64 bytes) or only the output's bytes
        os.truncate(path, 0 if where == "input" else 80)
        with pytest.raises(InferenceServerException) as info:
            client.infer("varK", [tensor], outputs=[output])
        assert "400" in _status(info.value) or "INVALID_ARGUMENT" in _status(info.value)
        assert f"shared memory region '{name}'" in info.value.message()
        assert "shrank" in info.value.message()
        assert client.is_server_live()
        plain = client.infer("varK", [_tensor(protocol, "x", x)]).as_numpy("y")
        np.testing.assert_allclose(plain, x @ W)
        client.unregister_system_shared_memory(name)
    finally:
        path.unlink(missing_ok=True)


def test_a_batch_with_a_failing_request_still_answers_the_others(tmp_path: Path) -> None:
    """Dynamic batching joins queued requests: the one onnxruntime refuses (or that does not
    join the others) fails alone, the rest of its batch is answered."""
    path = _matmul(tmp_path / "varK.onnx")
    (version,) = discover_models(path)
    spec = version.spec
    spec = type(spec)(**{**spec.__dict__, "dynamic_batching": DynamicBatching((), 200_000)})
    model = LoadedModel(type(version)(spec, 1, path))

    async def run() -> list[object]:
        futures = []
        for k in (4, 3, 4, 4):  # the second request has K = 3: no MatMul, no concatenation
            arrays, batch = [np.full((1, k), k, np.float32)], 1
            futures.append(model.submit(arrays, batch, 0, may_run_on_loop=False))
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        results = asyncio.run(run())
    finally:
        model.close()
    assert isinstance(results[1], Exception) and "dimension mismatch" in str(results[1])
    for result in (results[0], results[2], results[3]):
        np.testing.assert_allclose(result[0], np.full((1, 4), 4, np.float32) @ W)  # type: ignore[index]
    assert model.stats.to_json()["inference_stats"]["fail"]["count"] == 1  # type: ignore[index]


def _labels_folder(root: Path) -> Path:
    """A repository whose model's labels file is not UTF-8 text."""
    export_triton_repository(_two_inputs(root / "m.onnx"), root / "repo", name="m")
    config = root / "repo" / "m" / "config.pbtxt"
    head, tail = config.read_text().split("output [", 1)
    tail = tail.replace("dims: [ 2 ]", 'dims: [ 2 ]\n    label_filename: "labels"', 1)
    config.write_text(head + "output [" + tail)
    (root / "repo" / "m" / "labels").write_bytes(b"q\ng\n\xff\xfe\n")
    return root / "repo"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: _matmul(root / "bogus.onnx", op="Bogus"), "onnxruntime cannot load"),
        (lambda root: _matmul(root / "neg.onnx", k=-5), "has the shape [-1, -5]"),
        (_labels_folder, "cannot read the labels of model 'm'"),
    ],
    ids=["unknown-op", "negative-dim", "labels-not-utf8"],
)
def test_serve_refuses_a_model_onnxruntime_cannot_load(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys: pytest.CaptureFixture, make, message: str
) -> None:
    path = make(tmp_path)
    code = main(["serve", str(path), "--http-port", "0", "--grpc-port", "0"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--drain-timeout", "inf", "--drain-timeout"),
        ("--drain-timeout", "nan", "not a finite number"),
        ("--header-timeout", "nan", "not a finite number"),
        ("--idle-timeout", "inf", "--idle-timeout"),
        ("--idle-timeout", "1e300", "0<x<=2147483"),
        ("--inline-max-us", "nan", "not a finite number"),
        ("--max-request-size", "99999999999", "1024<=x<=2147483647"),
    ],
)
def test_serve_options_outside_what_the_libraries_take(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys: pytest.CaptureFixture, option: str, value: str, message: str
) -> None:
    code = main(["serve", str(tmp_path), option, value])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out + err
    assert message in err and option in err


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("idle_timeout_s", float("nan")),
        ("header_timeout_s", float("inf")),
        ("header_timeout_s", 0.0),
        ("idle_timeout_s", 3e6),
        ("max_request_bytes", 2**31),
    ],
)
def test_front_end_options_are_checked_for_library_users(option: str, value: float) -> None:
    from hepfpga.deploy.frontends import FrontEndOptions
    from hepfpga.errors import ConfigError

    with pytest.raises(ConfigError, match=f"at '{option}': {option} is"):
        FrontEndOptions(**{option: value})  # type: ignore[arg-type]
