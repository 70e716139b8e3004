"""write_project: folder contents, atomic write, refusals (hls4ml conversion, no compilation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConfigError, ConversionError, DataError, MissingDependencyError
from hepfpga.firmware import FirmwareOptions, predict, synthesize, write_project
from hepfpga.firmware import project as project_module


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, small_tagger: Any) -> Any:
    x = np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32)
    out = tmp_path_factory.mktemp("written") / "firmware"
    return write_project(
        small_tagger,
        FirmwareOptions(),
        out,
        testbench_inputs=x,
        testbench_outputs=small_tagger.predict(x, verbose=0),
    )


def test_folder_holds_project_config_readme_and_testbench(written: Any) -> None:
    path: Path = written.path
    assert sorted(p.name for p in path.parent.iterdir()) == ["firmware"]  # no temporary left
    for name in (
        "README.md",
        "hepfpga_hls_config.json",
        "hls4ml_config.yml",
        "build_prj.tcl",
        "build_lib.sh",
        "firmware/myproject.cpp",
        "tb_data/tb_input_features.dat",
        "tb_data/tb_output_predictions.dat",
        "tb_data/tb_input_features.npy",
    ):
        assert (path / name).is_file(), name
    assert len((path / "tb_data/tb_input_features.dat").read_text().splitlines()) == 20
    record = json.loads((path / "hepfpga_hls_config.json").read_text())
    assert record["hls_config"] == written.hls_config
    assert record["options"]["backend"] == "Vitis"
    yml = (path / "hls4ml_config.yml").read_text()
    assert f"OutputDir: {path}\n" in yml and ".partial" not in yml
    readme = (path / "README.md").read_text()
    assert "vitis_hls -f build_prj.tcl" in readme and "bit for bit" in readme
    assert written.hls_model.config.get_output_dir() == str(path)
    assert not written.compiled


def test_hls4ml_model_has_the_derived_types(written: Any) -> None:
    layers = {layer.name: layer for layer in written.hls_model.get_layers()}
    assert "input_quant" not in layers  # same type as the input: removed as a no-op
    assert (
        str(layers["input_layer"].get_output_variable().type.precision)
        == "fixed<16,6,RND_CONV,SAT,0>"
    )
    assert (
        str(layers["relu_1"].get_output_variable().type.precision) == "ufixed<6,0,RND_CONV,SAT,0>"
    )
    softmax = layers["softmax"]
    expected = {
        "exp_table_t": "ufixed<18,1,RND,SAT,0>",
        "inv_table_t": "ufixed<18,1,RND,SAT,0>",
        "inv_inp_t": "ufixed<10,3,RND,SAT,0>",
        "inp_norm_t": "ufixed<10,3,RND,SAT,0>",
        "accum_t": "ufixed<20,3,RND,SAT,0>",
        "result_t": "ufixed<16,0,RND,SAT,0>",
    }
    assert {key: str(softmax.get_attr(key).precision) for key in expected} == expected
    # auto-inferred dense types are wide enough never to round or overflow
    dense = layers["dense_1"]
    accum = dense.get_attr("accum_t").precision
    assert (accum.width, accum.integer) == (27, 12)
    assert str(accum) == str(dense.get_output_variable().type.precision)


def test_existing_non_empty_folder_is_refused(tmp_path: Path, small_tagger: Any) -> None:
    out = tmp_path / "firmware"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        write_project(small_tagger, FirmwareOptions(), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firmware"]


def test_existing_empty_folder_is_used(tmp_path: Path, small_tagger: Any) -> None:
    out = tmp_path / "firmware"
    out.mkdir()
    project = write_project(small_tagger, None, out)
    assert (project.path / "README.md").is_file()
    assert not (project.path / "tb_data" / "tb_input_features.npy").exists()


def test_failure_midway_leaves_nothing_behind(
    tmp_path: Path, small_tagger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(project_module, "_write_metadata", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_project(small_tagger, FirmwareOptions(), tmp_path / "deep" / "firmware")
    assert list(tmp_path.iterdir()) == [], "not even the folders it created"


@pytest.mark.parametrize(
    ("inputs", "outputs", "message"),
    [
        (np.zeros((4, 15)), None, r"shape \(n_events, 16\)"),
        (np.full((4, 16), np.nan), None, "finite"),
        (np.zeros((4, 16)), np.zeros((3, 5)), "same number of events"),
        (None, np.zeros((3, 5)), "same number of events"),
    ],
)
def test_bad_testbench_data_is_refused(
    tmp_path: Path, small_tagger: Any, inputs: Any, outputs: Any, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        write_project(
            small_tagger, None, tmp_path / "fw", testbench_inputs=inputs, testbench_outputs=outputs
        )
    assert list(tmp_path.iterdir()) == []


def test_predict_needs_a_compiled_project(written: Any) -> None:
    with pytest.raises(ConversionError, match="compile_project"):
        predict(written, np.zeros((1, 16)))


def test_synthesize_without_vendor_tools(
    written: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match=r"vitis-run or vitis_hls.*PATH"):
        synthesize(written)


def test_build_progress_logs_what_ticks_and_the_end(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The g++ build's progress: what is built, a line every BUILD_PROGRESS_SECONDS while it
    runs (here a 0.3 s sleep, lines every 0.05 s), the time it took; INFO, so ``-q`` (WARNING)
    hides it."""
    import logging
    import time

    monkeypatch.setattr(project_module, "BUILD_PROGRESS_SECONDS", 0.05)
    with (
        caplog.at_level(logging.INFO, logger="hepfpga.firmware.project"),
        project_module.build_progress("g++ -O1: compiling"),
    ):
        time.sleep(0.3)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "g++ -O1: compiling" and lines[-1].startswith("g++ finished in ")
    assert any(line.startswith("... g++ still building (") for line in lines[1:-1]), lines
    assert all(record.levelno == logging.INFO for record in caplog.records)
