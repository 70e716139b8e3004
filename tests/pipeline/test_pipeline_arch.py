"""The staged pipeline for the other architectures, on small synthetic samples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.run import Check, Run, StageResult
from hepfpga.pipeline.runner import run_pipeline
from hepfpga.pipeline.stage_list import STAGES, Stage, register_stage
from hepfpga.pipeline.stages import DataResult
from hepfpga.train.io import save_sample


@pytest.fixture(scope="module")
def jets_file(tmp_path_factory: pytest.TempPathFactory, make_jets_module) -> Path:
    path = tmp_path_factory.mktemp("arch") / "jets.npz"
    save_sample(make_jets_module(400, seed=5), path)
    return path


def _config(base: Path, jets: Path, name: str, model: dict, **sections: Any):
    return parse_config(
        {
            "name": name,
            "output_dir": str(base),
            "seed": 1,
            "data": {"path": str(jets)},
            "model": model,
            "training": {"epochs": 2},
            "quantization": {"epochs": 1, "input_bits": 12, "input_integer": 2},
            "verification": {"max_accuracy_drop": 1.0, "testbench_events": 20},
            **sections,
        }
    )


CNN = {"architecture": "cnn", "image_pixels": 8, "filters": [2], "dense_units": [4]}


@pytest.mark.slow
def test_cnn_run_is_bit_exact_in_io_stream(tmp_path: Path, jets_file: Path) -> None:
    config = _config(tmp_path, jets_file, "cnn", CNN, firmware={"io_type": "io_stream"})
    result = run_pipeline(config)
    report = json.loads((result.run_dir / "report.json").read_text())
    assert result.passed and report["status"] == "passed"
    assert report["architecture"]["name"] == "cnn"
    assert report["data"]["input_shape"] == [8, 8, 1]
    assert report["checks"]["hls_logits_bit_exact"]["value"] == 1.0
    assert report["verification"]["layers"]  # verify_model's layer-by-layer comparison
    assert report["parameters"] > 0
    for name in ("firmware/verification.json", "inputs.json", "model.onnx", "roc.png"):
        assert (result.run_dir / name).is_file(), name
    assert not (result.run_dir / "scaler.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("io_type", ["io_stream", "io_parallel"])
def test_cnn_with_features_beside_the_image_is_bit_exact(
    tmp_path: Path, jets_file: Path, io_type: str
) -> None:
    """The image (angles scaled by the jet pT) and the groomed mass in one vector, split by
    Cropping1D and joined by Concatenate: QAT, ONNX and the firmware take the branched
    network, bit-exact."""
    model = {**CNN, "image_features": ["mass_mmdt", "multiplicity"], "image_pt_reference": 1e3}
    config = _config(tmp_path, jets_file, "cnn_mass", model, firmware={"io_type": io_type})
    result = run_pipeline(config)
    report = json.loads((result.run_dir / "report.json").read_text())
    assert result.passed and report["status"] == "passed"
    assert report["data"]["input_shape"] == [8 * 8 + 2]
    assert report["checks"]["hls_logits_bit_exact"]["value"] == 1.0
    scaler = json.loads((result.run_dir / "scaler.json").read_text())
    assert scaler["kind"] == "standard"
    assert scaler["feature_names"] == ["mass_mmdt", "multiplicity"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "layer"),
    [
        ({"architecture": "lstm", "n_constituents": 4, "units": 4, "dense_units": []}, "QLSTM"),
    ],
    ids=["lstm"],
)
def test_run_says_when_firmware_is_not_available(
    tmp_path: Path, jets_file: Path, model: dict, layer: str
) -> None:
    result = run_pipeline(_config(tmp_path, jets_file, model["architecture"], model))
    report = result.report
    if layer == "QLSTM":  # QLSTM/QGRU convert (table-based gates: judged on accuracy)
        assert report["firmware"]["status"] == "built"
    if report["firmware"]["status"] == "not available":  # until the firmware converts it
        assert report["status"] == "incomplete"
        assert layer in report["firmware"]["reason"]
        assert "hls" not in report and not (result.run_dir / "firmware").exists()
    else:
        checks = report["checks"]
        assert "hls_vs_qkeras_argmax_agreement" in checks and "hls_accuracy_drop" in checks
        assert "hls_logits_bit_exact" not in checks  # never claimed for table-based gates
        assert checks["hls_vs_qkeras_logits_max_abs_diff"]["value"] > 0
        assert "table-based sigmoid/tanh" in report["verification"]["requirement"]
        if layer == "QLSTM":  # hepfpga emulate reproduces the firmware bit for bit
            emulation = report["emulation"]
            assert emulation["engine"] == "fixed-point", emulation["fallback_reason"]
            assert emulation["fraction_identical_to_csim"] == 1.0
    assert result.passed  # nothing failed; the report says what is missing
    assert (result.run_dir / "model.onnx").is_file()


def test_firmware_that_cannot_unroll_is_refused_before_training(
    tmp_path: Path, jets_file: Path
) -> None:
    model = {**CNN, "image_pixels": 24, "filters": [8]}
    config = _config(tmp_path, jets_file, "big", model, firmware={"io_type": "io_parallel"})
    with pytest.raises(ConfigError, match=r"firmware\.io_type.*conv_1.*io_stream"):
        run_pipeline(config)
    assert not (tmp_path / "big").exists()


def test_bit_width_override_for_a_missing_layer_is_refused_before_training(
    tmp_path: Path, jets_file: Path
) -> None:
    config = _config(
        tmp_path,
        jets_file,
        "typo",
        {"hidden_units": [4]},
        quantization={"layers": {"dense_9": {"weight_bits": 8}}},
    )
    with pytest.raises(ConfigError, match=r"quantization\.layers\.dense_9"):
        run_pipeline(config)


@dataclass
class _CountResult(StageResult):
    n: int

    def report_items(self, run: Run) -> dict[str, Any]:
        return {"count": {"jets": self.n}}

    def checks(self, run: Run) -> dict[str, Check]:
        return {"enough_jets": Check(self.n, ">= 10**6", self.n >= 10**6)}


def test_a_registered_stage_reports_and_checks_without_editing_the_others(
    tmp_path: Path, jets_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hepfpga.pipeline.stage_list.STAGES", [STAGES[0]])
    register_stage(
        Stage("count", "counting", lambda run: _CountResult(len(run.get(DataResult).sample))),
        after="data",
    )
    result = run_pipeline(_config(tmp_path, jets_file, "count", {"hidden_units": [4]}))
    assert result.report["count"] == {"jets": 400}
    assert result.failed_checks == ["enough_jets"] and result.report["status"] == "failed"
    assert "count" in result.report["timings_s"]
    with pytest.raises(ValueError, match="already registered"):
        register_stage(Stage("count", "again", lambda run: None))


def test_max_events_keeps_every_class_of_a_class_ordered_file(tmp_path: Path, make_jets) -> None:
    import numpy as np

    from hepfpga.pipeline.stages import data_stage

    sample = make_jets(500, seed=3)
    ordered = sample.subset(np.argsort(sample.labels, kind="stable"))  # as the built-in file
    save_sample(ordered, tmp_path / "jets.npz")
    config = _config(
        tmp_path, tmp_path / "jets.npz", "n", {"hidden_units": [4]}, verification={"max_events": 40}
    )
    data = data_stage(Run(config=config, run_dir=tmp_path))
    counts = np.bincount(data.y_test, minlength=5)
    assert 35 <= counts.sum() <= 45 and (counts >= 6).all(), counts
    assert len(data.x_test) == len(data.y_test)
