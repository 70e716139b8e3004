"""End to end: an anomaly-detection run on a synthetic sample (the signal classes are shifted
in a few features, so an autoencoder trained on q and g finds them)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.runner import run_pipeline
from hepfpga.train.io import save_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory: pytest.TempPathFactory, make_jets_module):
    base = tmp_path_factory.mktemp("anomaly")
    data = base / "jets.npz"
    save_sample(make_jets_module(1000, seed=5), data)
    # a larger background sample for the trigger rates (~4,800 q and g jets of 12,000)
    save_sample(make_jets_module(12_000, seed=6), base / "background.npz")
    config = parse_config(
        {
            "name": "ae_small",
            "output_dir": str(base / "runs"),
            "seed": 4,
            "task": {
                "name": "anomaly_detection",
                "background_acceptances": [0.1, 0.01, 1e-4],
                "trigger_rates": {
                    "background": str(base / "background.npz"),
                    "acceptances": [1e-2, 1e-3, 1e-5],
                },
            },
            "data": {"path": str(data)},
            "model": {"architecture": "ae", "encoder_units": [8], "latent_dim": 2},
            "training": {"epochs": 6, "batch_size": 64},
            "quantization": {"epochs": 3, "batch_size": 64},
            "verification": {"testbench_events": 30},
        }
    )
    return run_pipeline(config)


def test_anomaly_run_folder_and_report(ae_run) -> None:
    run_dir = ae_run.run_dir
    for name in (
        "float_autoencoder.h5",
        "qkeras_autoencoder.h5",
        "float_model.h5",
        "qkeras_model.h5",
        "scaler.json",
        "model.onnx",
        "report.json",
        "roc.png",
        "score_distributions.png",
        "scores.npz",
        "manifest.json",
    ):
        assert (run_dir / name).is_file(), name
    report = json.loads((run_dir / "report.json").read_text())
    assert report["data"]["background_classes"] == ["q", "g"]
    assert report["data"]["signal_classes"] == ["W", "Z", "t"]
    assert report["architecture"]["task"] == "anomaly_detection"
    # trained on background only: 60% of the ~400 q and g jets
    assert 220 <= report["data"]["split"]["train"] <= 260
    for model in ("float", "qkeras"):
        test = report[model]["test"]
        assert set(test["auc"]) == {"W", "Z", "t"}
        # the synthetic signals are shifted by 2 sigma in one feature each
        assert min(test["auc"].values()) > 0.6, test["auc"]
        assert set(test["signal_efficiency"]["t"]) == {"0.1", "0.01", "0.0001"}
        assert test["signal_efficiency"]["t"]["0.0001"] is None  # ~400 background jets
    assert report["onnx_vs_qkeras"]["max_abs_diff"] <= 1e-5
    trigger = report["anomaly"]["trigger"]
    assert trigger["acceptance"] == 0.01 and trigger["threshold"] > 0
    # the shared emulation stage reaches the task: the bulk emulator is proven on the score
    assert report["emulation"]["fraction_identical_to_csim"] == 1.0
    assert report["checks"]["emulator_engine"]["passed"] is True
    assert set(report["stages_left_out"]) == {"bdt", "analysis"}
    scores = np.load(run_dir / "scores.npz")
    assert scores["qkeras"].shape == scores["labels"].shape


def test_anomaly_score_on_chip(ae_run) -> None:
    """The firmware computes the score itself; where the firmware stage cannot convert merge
    layers yet, the run says so (status incomplete) instead of claiming a result."""
    report = ae_run.report
    if report["firmware"]["status"] == "built":
        assert report["hls_vs_qkeras"]["logits_fraction_bit_exact"] == 1.0
        assert report["anomaly"]["trigger"]["identical_decisions_qkeras_hls"] == 1.0
        assert report["checks"]["identical_trigger_decisions"]["passed"] is True
        assert report["hls"]["test"]["auc"] == report["qkeras"]["test"]["auc"]
        assert report["status"] == "passed" and ae_run.passed
    else:
        assert "Subtract" in report["firmware"]["reason"]
        assert report["status"] == "incomplete" and ae_run.passed
        assert report["checks"]["identical_trigger_decisions"]["passed"] is None


def test_trigger_rates_are_the_firmwares_on_the_background_sample(ae_run) -> None:
    report = ae_run.report
    rates = report["trigger_rates"]
    if report["firmware"]["status"] != "built":
        assert rates["status"] == "not available" and "no firmware" in rates["reason"]
        return
    assert rates["status"] == "measured"
    assert rates["background"].endswith("background.npz")
    assert rates["background_classes"]["t"] == ["q", "g"]
    n_background = rates["n_background"]["t"]
    assert 4400 < n_background < 5200  # the q and g jets of the 12,000
    scores = np.load(ae_run.run_dir / "scores.npz")
    t_index = report["data"]["classes"].index("t")
    hls_t = scores["hls"][scores["labels"] == t_index]  # the C simulation's test scores
    for per_acceptance in rates["efficiencies"].values():
        resolved = per_acceptance["0.01"]
        low, high = resolved["efficiency_interval"]
        assert low <= resolved["efficiency"] <= high
        t_low, t_high = resolved["threshold_interval_efficiency"]
        assert t_low <= resolved["efficiency"] <= t_high
        assert resolved["n_background_passing"] <= 0.01 * n_background
        # 0.001 x ~4,800 = ~4.8 jets expected above it: fewer than 10
        for acceptance, needs in (("0.001", "10,000"), ("1e-05", "1,000,000")):
            unresolved = per_acceptance[acceptance]
            assert unresolved["efficiency"] is None
            assert f"needs >= {needs} background jets" in unresolved["reason"]
    # the emulator's threshold applied to the C simulation's own scores gives its efficiency
    t = rates["efficiencies"]["t"]["0.01"]
    assert float(np.mean(hls_t > t["threshold"])) == t["efficiency"]
    page = (ae_run.run_dir / "report.html").read_text()
    assert "trigger: signal efficiency at background acceptance 0.01 (firmware)" in page
    assert "needs &gt;= 1,000,000 background jets" in page or "needs >= 1,000,000" in page


def test_triton_repository_serves_the_score(ae_run, tmp_path) -> None:
    from hepfpga.deploy.triton_repo import export_triton_repository

    export = export_triton_repository(ae_run.run_dir, tmp_path / "repo")
    assert [(t.datatype, t.dims) for t in export.spec.inputs] == [("FP32", (16,))]
    assert [(t.name, t.dims) for t in export.spec.outputs] == [("score", (1,))]
    assert export.spec.label_filename is None  # a score, not class probabilities


def test_onnx_metadata_names_the_score_not_classes(ae_run) -> None:
    import onnx

    meta = {
        p.key: json.loads(p.value) for p in onnx.load(ae_run.run_dir / "model.onnx").metadata_props
    }
    assert "class_names" not in meta  # one score per jet, not a probability per class
    assert meta["task"] == "anomaly_detection"
    assert meta["background_classes"] == ["q", "g"] and meta["signal_classes"] == ["W", "Z", "t"]
    assert meta["outputs"].startswith("anomaly score, larger is more anomalous: ")
    assert meta["scaler"]["kind"] == "standard"


def test_report_html_and_compare_of_the_run(ae_run, tmp_path) -> None:
    from hepfpga.cli import main

    page = (ae_run.run_dir / "report.html").read_text()
    assert "mean signal AUC" in page and "score_distributions.png" in page
    plot = tmp_path / "roc.png"
    assert main(["compare", str(ae_run.run_dir), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
