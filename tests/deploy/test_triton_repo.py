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
