"""Triton model repositories: config.pbtxt parsed by Triton's own ModelConfig message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc.model_config_pb2")

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from hepfpga.cli import main
from hepfpga.deploy.triton_repo import (
    DynamicBatching,
    discover_models,
    export_triton_repository,
    parse_config,
    spec_from_onnx,
)
from hepfpga.errors import ConfigError, ModelFileError
from hepfpga.train.jets import CLASS_NAMES

CLASSES = list(CLASS_NAMES)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, write_tiny_onnx) -> Path:
    """A run folder as the pipeline leaves it (model.onnx with class names in metadata)."""
    run = tmp_path_factory.mktemp("runs") / "jets"
    run.mkdir()
    write_tiny_onnx(run / "model.onnx", 0)
    return run


def read_config(path: Path) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse(path.read_text(), config)  # raises on any unknown field or bad value
    return config


def test_export_writes_a_config_triton_parses(run_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    result = export_triton_repository(
        run_dir,
        repo,
        max_batch_size=256,
        preferred_batch_sizes=(64, 128),
        max_queue_delay_us=500,
        instance_count=2,
        instance_kind="KIND_CPU",
    )
    assert result.config_path == repo / "jets" / "config.pbtxt"
    assert (repo / "jets" / "1" / "model.onnx").read_bytes() == (
        run_dir / "model.onnx"
    ).read_bytes()
    config = read_config(result.config_path)
    assert config.name == "jets"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 256
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("input", model_config_pb2.TYPE_FP32, [16])
    ]
    assert [(t.data_type, list(t.dims)) for t in config.output] == [
        (model_config_pb2.TYPE_FP32, [5])
    ]
    assert config.output[0].label_filename == "labels.txt"
    assert (repo / "jets" / "labels.txt").read_text().split() == CLASSES
    assert list(config.dynamic_batching.preferred_batch_size) == [64, 128]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.count, g.kind) for g in config.instance_group] == [
        (2, model_config_pb2.ModelInstanceGroup.KIND_CPU)
    ]
    assert config.parameters["intra_op_thread_count"].string_value == "1"
    # what the server reads back is what was written
    spec, _ = parse_config(result.config_path, expected_name="jets")
    assert spec == result.spec
    assert not list(repo.rglob(".*"))  # no temporary leftovers


def test_no_dynamic_batching_and_unbatched_models(run_dir: Path, tmp_path: Path) -> None:
    result = export_triton_repository(
        run_dir, tmp_path, name="plain", max_batch_size=8, dynamic_batching=False
    )
    config = read_config(result.config_path)
    assert not config.HasField("dynamic_batching")
    assert config.max_batch_size == 8
    whole = export_triton_repository(run_dir, tmp_path, name="whole", max_batch_size=0)
    config = read_config(whole.config_path)
    assert config.max_batch_size == 0
    assert list(config.input[0].dims) == [-1, 16]  # the batch dimension is part of the shape


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_batch_sise: 8", "max_batch_sise"),
        ('platform: "tensorflow_savedmodel"', "onnxruntime_onnx"),
        ("instance_group [ { kind: KIND_MODEL } ]", "KIND_MODEL"),
        ('name: "other"', "differs from its folder"),
    ],
)
def test_config_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    model_dir = tmp_path / "jets"
    model_dir.mkdir()
    (model_dir / "config.pbtxt").write_text(text)
    with pytest.raises(ConfigError, match=message):
        parse_config(model_dir / "config.pbtxt", expected_name="jets")


def test_config_must_match_the_onnx_model(run_dir: Path, tmp_path: Path) -> None:
    result = export_triton_repository(run_dir, tmp_path)
    text = result.config_path.read_text().replace('name: "input"', 'name: "features"')
    result.config_path.write_text(text)
    with pytest.raises(ConfigError, match="'features' is not in the ONNX model"):
        discover_models(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # a 16-input model described with 15 features: refused at load, not on every request
        (
            ("dims: [ 16 ]", "dims: [ 15 ]"),
            r"input 'input' is TYPE_FP32 \[15\] in the config but TYPE_FP32 \[16\]",
        ),
        (("dims: [ 5 ]", "dims: [ 4 ]"), r"output 'softmax' is TYPE_FP32 \[4\]"),
        (("TYPE_FP32", "TYPE_FP64"), "TYPE_FP64 \\[16\\] in the config"),
        (("max_batch_size: 4096", "max_batch_size: -5"), "max_batch_size is -5; accepted: 0"),
        (("count: 1", "count: -2"), "instance_group count is -2"),
        (
            (
                "max_queue_delay_microseconds: 0",
                "max_queue_delay_microseconds: 0\n  preferred_batch_size: [ 8, 9000 ]",
            ),
            r"preferred_batch_size \[9000\] is outside 1..max_batch_size \(4096\)",
        ),
        (('string_value: "1"', 'string_value: "-3"'), "intra_op_thread_count is '-3'"),
    ],
    ids=["input-dims", "output-dims", "datatype", "negative-max-batch", "negative-count",
         "preferred-over-max", "threads"],
)  # fmt: skip
def test_config_is_checked_against_the_onnx_model_at_load(
    run_dir: Path, tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    result = export_triton_repository(run_dir, tmp_path)
    text = result.config_path.read_text()
    assert edit[0] in text
    result.config_path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError, match=message) as info:
        discover_models(tmp_path)
    assert str(result.config_path) in str(info.value)


def test_cli_serve_refuses_a_config_that_does_not_fit_the_model(
    run_dir: Path, tmp_path: Path
) -> None:
    result = export_triton_repository(run_dir, tmp_path)
    result.config_path.write_text(result.config_path.read_text().replace("[ 16 ]", "[ 15 ]"))
    command = [sys.executable, "-m", "hepfpga", "serve", str(tmp_path), "--http-port", "0"]
    # in a child with a time limit: a config accepted by mistake would serve for ever
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "[15] in the config but TYPE_FP32 [16] in the ONNX model" in done.stderr
    assert "Traceback" not in done.stderr


def test_versions_and_policies(run_dir: Path, tmp_path: Path) -> None:
    export_triton_repository(run_dir, tmp_path, version=1)
    second = export_triton_repository(run_dir, tmp_path, version=2)
    assert [m.version for m in discover_models(tmp_path)] == [2]  # Triton's default: latest 1
    config = second.config_path.read_text() + "version_policy: { all { } }\n"
    second.config_path.write_text(config)
    models = discover_models(tmp_path)
    assert [m.version for m in models] == [1, 2]
    assert models[0].class_names == tuple(CLASSES)
    with pytest.raises(ConfigError, match="already exists"):
        export_triton_repository(run_dir, tmp_path, version=2)
    export_triton_repository(run_dir, tmp_path, version=2, overwrite=True)


def test_config_without_tensors_is_completed_from_onnx(run_dir: Path, tmp_path: Path) -> None:
    version_dir = tmp_path / "jets" / "3"
    version_dir.mkdir(parents=True)
    (version_dir / "model.onnx").write_bytes((run_dir / "model.onnx").read_bytes())
    (tmp_path / "jets" / "config.pbtxt").write_text(
        'platform: "onnxruntime_onnx"\nmax_batch_size: 32\n'
    )
    (model,) = discover_models(tmp_path)
    assert model.version == 3
    assert model.spec.max_batch_size == 32
    assert [t.dims for t in model.spec.inputs] == [(16,)]
    assert model.spec.dynamic_batching is None  # not asked for in the config


def test_run_folder_and_onnx_file_are_served_directly(run_dir: Path) -> None:
    (from_run,) = discover_models(run_dir)
    (from_file,) = discover_models(run_dir / "model.onnx")
    assert from_run.spec.name == "jets" and from_file.spec.name == "model"
    assert from_run.spec.dynamic_batching == DynamicBatching()
    assert from_run.class_names == tuple(CLASSES)
    spec, _ = spec_from_onnx(run_dir / "model.onnx", "x")
    assert spec.outputs[0].dims == (5,) and spec.outputs[0].dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"preferred_batch_sizes": (0,)}, ConfigError, "outside 1..max_batch_size"),
        ({"preferred_batch_sizes": (9,), "max_batch_size": 8}, ConfigError, "outside"),
        ({"version": 0}, ConfigError, "version=0"),
        ({"name": "a/b"}, ConfigError, "invalid model name"),
        ({"instance_count": 0}, ConfigError, "instance_count=0"),
    ],
)
def test_export_arguments_are_checked(
    run_dir: Path, tmp_path: Path, kwargs: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        export_triton_repository(run_dir, tmp_path, **kwargs)


def test_export_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"no model\.onnx"):
        export_triton_repository(tmp_path, tmp_path / "repo")
    with pytest.raises(ModelFileError, match="has no models"):
        discover_models(tmp_path)


def test_cli_export_triton(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        [
            "export",
            "triton",
            str(run_dir),
            "--repo",
            str(tmp_path),
            "--name",
            "tagger",
            "--max-batch-size",
            "64",
            "--preferred-batch-size",
            "16",
            "--preferred-batch-size",
            "32",
            "--max-queue-delay-us",
            "100",
        ]
    )
    assert code == 0
    assert "tagger/config.pbtxt" in capsys.readouterr().out
    config = read_config(tmp_path / "tagger" / "config.pbtxt")
    assert list(config.dynamic_batching.preferred_batch_size) == [16, 32]
    assert main(["export", "triton", str(tmp_path / "nothing"), "--repo", str(tmp_path)]) == 2


# -- names and existing repositories (issue 19) ----------------------------------------------


def _tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and modification time (ns)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _graph_with_names(path: Path, input_name: str, output_name: str, width: int = 3) -> Path:
    from onnx import TensorProto, helper, numpy_helper, save

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 2])
    w = numpy_helper.from_array(np.ones((width, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [input_name, "w"], [output_name])], "g", [x], [y], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, path)
    return path


@pytest.mark.parametrize(
    "name", ['quoted "name"', "back\\slash", "it's", "jet tagger v2", "étiqueteur"]
)
def test_names_are_escaped_in_config_pbtxt(tmp_path: Path, name: str) -> None:
    """Names with quotes, backslashes, spaces and non-ASCII letters are written escaped: Triton's
    parser reads back the same names, and the repository serves under them."""
    source = _graph_with_names(tmp_path / "m.onnx", f"in {name}\n\t", f'out "{name}"')
    result = export_triton_repository(source, tmp_path / "repo", name=name)
    config = read_config(result.config_path)
    assert config.name == name
    assert [t.name for t in config.input] == [f"in {name}\n\t"]
    assert [t.name for t in config.output] == [f'out "{name}"']
    (served,) = discover_models(tmp_path / "repo")
    assert served.spec.name == name and served.spec.inputs[0].name == f"in {name}\n\t"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (".hidden", "starts with '.'"),
        ("a/b", "contains '/'"),
        ("two\nlines", r"contains '\n'"),
        ("nul\x00", r"contains '\x00'"),
        ("x" * 256, "256 bytes long"),
    ],
    ids=["hidden", "slash", "newline", "nul", "too-long"],
)
def test_invalid_names_are_refused_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, name: str, reason: str
) -> None:
    code = main(["export", "triton", str(run_dir), "--repo", str(tmp_path / "r"), "--name", name])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "invalid model name" in lines[0] and reason in lines[0], err
    assert not (tmp_path / "r").exists()


def test_negative_onnx_dims_are_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", -4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", -4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    save(helper.make_model(graph), tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match=r"has the shape \[-1, -4\]"):
        export_triton_repository(tmp_path / "m.onnx", tmp_path / "repo")


def test_a_new_version_never_touches_the_others(run_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    export_triton_repository(run_dir, repo, name="jets", max_batch_size=8)
    before = _tree(repo / "jets")
    export_triton_repository(run_dir, repo, name="jets", version=2)
    after = _tree(repo / "jets")
    assert {k: v for k, v in after.items() if not k.startswith("2/")} == before
    assert after["2/model.onnx"][0] == (run_dir / "model.onnx").read_bytes()
    assert read_config(repo / "jets" / "config.pbtxt").max_batch_size == 8  # kept as written
    assert [m.version for m in discover_models(repo)] == [2]  # latest policy: served
    spec, _ = parse_config(repo / "jets" / "config.pbtxt")
    assert spec.max_batch_size == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 16}, "max_batch_size 8, which every version is served with"),
        ({"instance_count": 3}, "instances 1"),
        ({"dynamic_batching": False}, "dynamic batching"),
        ({"other_model": True}, "does not fit the config of model 'jets'"),
        ({"version": 1}, "already exists"),
    ],
    ids=["max-batch-size", "instances", "batching", "other-inputs", "same-version"],
)
def test_clashes_with_an_existing_model_are_refused(
    run_dir: Path, tmp_path: Path, kwargs: dict, message: str
) -> None:
    repo = tmp_path / "repo"
    export_triton_repository(run_dir, repo, name="jets", max_batch_size=8)
    before = _tree(repo)
    source = run_dir
    if kwargs.pop("other_model", False):
        source = _graph_with_names(tmp_path / "other.onnx", "input", "softmax", width=7)
    kwargs.setdefault("version", 2)
    with pytest.raises(ConfigError, match=message):
        export_triton_repository(source, repo, name="jets", **kwargs)
    assert _tree(repo) == before
    assert [m.version for m in discover_models(repo)] == [1]


def test_a_config_is_not_written_over_versions_it_does_not_fit(
    run_dir: Path, tmp_path: Path
) -> None:
    """A model folder without config.pbtxt: the versions already there must fit the one the
    new version brings, or they would stop being served."""
    repo = tmp_path / "repo"
    (repo / "jets" / "1").mkdir(parents=True)
    _graph_with_names(repo / "jets" / "1" / "model.onnx", "input", "softmax", width=7)
    before = _tree(repo)
    with pytest.raises(ConfigError, match="version 1 of model 'jets'"):
        export_triton_repository(run_dir, repo, name="jets", version=2)
    assert _tree(repo) == before
