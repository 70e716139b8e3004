"""End to end: a generation run on a synthetic sample; the generator is deployed."""

from __future__ import annotations

import json

import pytest

from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.runner import run_pipeline
from hepfpga.train.io import save_sample

pytestmark = pytest.mark.slow


def test_gan_run(tmp_path, make_jets) -> None:
    data = tmp_path / "jets.npz"
    save_sample(make_jets(1000, seed=6), data)
    config = parse_config(
        {
            "name": "gan_small",
            "output_dir": str(tmp_path / "runs"),
            "task": {"name": "generation", "target_class": "W"},
            "data": {"path": str(data)},
            "model": {
                "architecture": "gan",
                "latent_dim": 3,
                "generator_units": [8],
                "discriminator_units": [8],
            },
            "training": {"epochs": 3, "batch_size": 32},
            "quantization": {"epochs": 1, "batch_size": 32, "input_bits": 12, "input_integer": 3},
            "verification": {"testbench_events": 10},
        }
    )
    result = run_pipeline(config)
    run_dir = result.run_dir
    for name in (
        "float_model.h5",
        "qkeras_model.h5",
        "float_discriminator.h5",
        "model.onnx",
        "feature_overlays.png",
        "generated.npz",
        "report.json",
        "report.html",
        "manifest.json",
    ):
        assert (run_dir / name).is_file(), name
    report = json.loads((run_dir / "report.json").read_text())
    assert report["data"]["target_class"] == "W"
    quality = report["generation"]["quality"]
    assert list(quality) == [
        "real (half A), baseline",
        "float generated",
        "QKeras generated",
        "HLS generated",
    ]
    n = report["data"]["real_test_halves"][1]
    assert all(row["n_jets"] == n for row in quality.values())
    for row in quality.values():
        assert 0.0 <= row["mean_ks"] <= 1.0 and 0.0 <= row["classifier_auc"] <= 1.0
    # the generator is a chain of QDense/QActivation: the firmware generates the same jets
    assert report["hls_vs_qkeras"]["logits_fraction_bit_exact"] == 1.0
    assert quality["HLS generated"] == quality["QKeras generated"]
    # the shared emulation stage reaches the task: the bulk emulator is proven on the generator
    assert report["emulation"]["fraction_identical_to_csim"] == 1.0
    assert set(report["stages_left_out"]) == {"bdt", "analysis"}
    assert report["onnx_vs_qkeras"]["max_abs_diff"] <= 1e-5
    assert result.passed and report["status"] == "passed"
    # compared and reported as a generation run: its fidelity, no ROC curves
    from hepfpga.pipeline.compare import format_table, load_run

    summary = load_run(run_dir)
    assert summary.task == "generation" and "HLS generated" in format_table([summary])
    assert "classifier AUC" in (run_dir / "report.html").read_text()
    # what a fast-simulation service serves: latent vectors in, one jet's features out
    from hepfpga.deploy.triton_repo import export_triton_repository

    export = export_triton_repository(run_dir, tmp_path / "repo")
    assert [t.dims for t in export.spec.inputs] == [(3,)]
    assert [t.dims for t in export.spec.outputs] == [(16,)]
