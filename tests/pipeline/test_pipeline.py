"""End to end: a small pipeline run on a synthetic sample with the real schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.runner import run_pipeline
from hepfpga.train.io import save_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, make_jets_module):
    base = tmp_path_factory.mktemp("pipeline")
    data = base / "jets.npz"
    save_sample(make_jets_module(1500, seed=7), data)
    config = parse_config(
        {
            "name": "small",
            "output_dir": str(base / "runs"),
            "seed": 3,
            "data": {"path": str(data)},
            "model": {"hidden_units": [16, 8]},
            "training": {"epochs": 8},
            "quantization": {"epochs": 4, "input_bits": 12, "input_integer": 4},
            "verification": {"max_accuracy_drop": 1.0, "testbench_events": 50},
        }
    )
    return config, run_pipeline(config)


def test_run_folder_is_complete(small_run) -> None:
    config, result = small_run
    run_dir = result.run_dir
    assert run_dir == config.output_dir / "small"
    for name in (
        "float_model.h5",
        "qkeras_model.h5",
        "scaler.json",
        "model.onnx",
        "report.json",
        "roc.png",
        "manifest.json",
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "firmware" / "README.md").is_file()
    assert [p.name for p in run_dir.parent.iterdir()] == ["small"], "no temporary folder may remain"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "report.json" in manifest["outputs"] and manifest["inputs"]["data"]["sha256"]


def test_hls_logits_are_bit_exact_and_onnx_matches(small_run) -> None:
    _, result = small_run
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report == json.loads(json.dumps(result.report, default=str))
    cmp = report["hls_vs_qkeras"]
    assert cmp["n_events"] == report["data"]["split"]["test"]
    assert 290 <= cmp["n_events"] <= 310  # 20% of 1500, rounded per class
    assert cmp["logits_fraction_bit_exact"] == 1.0
    assert cmp["logits_max_abs_diff"] == 0.0
    # the softmax is table based: probabilities agree to the table's resolution (~2**-8), so
    # only near-ties of this barely trained model may flip
    assert cmp["probs_max_abs_diff"] < 5e-3
    assert cmp["argmax_flip_max_gap"] <= 2 * cmp["probs_max_abs_diff"]
    assert cmp["argmax_agreement"] >= 0.9
    assert report["onnx_vs_qkeras"]["max_abs_diff"] <= 1e-5
    assert result.passed and report["status"] == "passed"
    for model in ("float", "qkeras", "hls"):
        assert 0.2 < report[model]["test"]["accuracy"] <= 1.0
        assert set(report[model]["test"]["auc"]) == {"q", "g", "W", "Z", "t"}


def test_trigger_rates_say_why_the_test_jets_cannot_resolve_them(small_run) -> None:
    _, result = small_run
    report = json.loads((result.run_dir / "report.json").read_text())
    rates = report["trigger_rates"]
    assert rates["status"] == "measured" and rates["background"].startswith("the run's test")
    assert rates["background_classes"]["q"] == ["g", "W", "Z", "t"]
    n = rates["n_background"]["q"]
    assert n < 1000  # 300 test jets
    for acceptance in ("0.001", "0.0001", "1e-05"):
        cell = rates["efficiencies"]["q"][acceptance]
        assert cell["efficiency"] is None and cell["n_background"] == n
        assert cell["reason"].startswith(f"not resolved: {float(acceptance):g} x {n:,}")


def test_existing_run_is_refused_before_any_work(small_run) -> None:
    config, result = small_run
    before = sorted(p.name for p in result.run_dir.iterdir())
    with pytest.raises(ConfigError, match="already exists"):
        run_pipeline(config)
    assert sorted(p.name for p in result.run_dir.iterdir()) == before
    assert np.isfinite(
        json.loads((result.run_dir / "report.json").read_text())["float"]["test"]["accuracy"]
    )


def test_architecture_table_reads_every_column_from_a_finished_run(small_run) -> None:
    """benchmarks/architectures.py builds its rows from report.json: every column it reads
    exists in a real run's report, with the run's values."""
    import importlib.util  # the benchmark is a script, not a package
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "architectures.py"
    spec = importlib.util.spec_from_file_location("bench_architectures", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(bench)
    _, result = small_run
    report = json.loads((result.run_dir / "report.json").read_text())
    row = bench.row_from_report("mlp", report)
    assert None not in (
        row.parameters, row.train_jets, row.test_jets, row.float_epochs, row.qat_epochs,
        row.float_seconds, row.qat_seconds, row.total_seconds,
    )  # fmt: skip
    split = report["data"]["split"]
    assert (row.train_jets, row.test_jets) == (split["train"], split["test"])
    assert sum(split.values()) == 1500 and abs(row.train_jets - 900) <= 2  # 0.6 / 0.2 / 0.2
    assert row.status == "passed" and row.float_epochs <= 8 and row.qat_epochs <= 4
    assert (row.float_accuracy, row.qkeras_accuracy, row.hls_accuracy) == tuple(
        report[m]["test"]["accuracy"] for m in ("float", "qkeras", "hls")
    )
    line = bench.markdown([row]).splitlines()[-1]
    assert line.startswith(f"| MLP | {split['train']} | {split['test']} |")
    assert f"| {row.hls_accuracy:.3f} |" in line
