"""report.html: built by a real (tiny) run with the BDT, opened in headless Chromium, rebuilt by
`hepfpga report`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.errors import DataError
from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.report_html import SECTIONS, render_report_html, write_report_html
from hepfpga.pipeline.runner import run_pipeline
from hepfpga.train.io import save_sample

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def bdt_run(tmp_path_factory: pytest.TempPathFactory, make_jets_module):
    pytest.importorskip("conifer")
    base = tmp_path_factory.mktemp("report")
    data = base / "jets.npz"
    save_sample(make_jets_module(800, seed=11), data)
    config = parse_config(
        {
            "name": "tiny",
            "output_dir": str(base / "runs"),
            "seed": 5,
            "data": {"path": str(data)},
            "model": {"hidden_units": [8]},
            "training": {"epochs": 5, "schedule": {"name": "step", "step_epochs": 2}},
            "quantization": {"epochs": 3},
            "verification": {"max_accuracy_drop": 1.0, "testbench_events": 20},
            "bdt": {"enabled": True, "n_estimators": 6, "max_depth": 2},
        }
    )
    return run_pipeline(config)


def _chromium(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.slow
def test_run_writes_the_report_sections(bdt_run) -> None:
    report = bdt_run.report
    run_dir = bdt_run.run_dir
    assert (run_dir / "report.html").is_file() and (run_dir / "scores.npz").is_file()
    history = report["float"]["fit"]["history"]
    assert len(history["loss"]) == report["float"]["fit"]["epochs_run"]
    lr = history["lr"]
    assert lr[:4] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4])  # the step schedule
    assert len(report["qkeras"]["fit"]["history"]["val_accuracy"]) >= 1
    for model in ("float", "qkeras"):
        ks = report["overtraining"][model]
        assert set(ks["classes"]) == set(report["data"]["classes"])
        assert 0.0 <= ks["min_p_value"] <= 1.0
    assert set(report["saliency"]["float"]["t"]) == set(report["data"]["features"])
    bdt = report["bdt"]
    assert bdt["verification"]["fraction_identical_decisions"] == 1.0
    assert report["checks"]["bdt_emulation_identical"]["passed"]
    assert (run_dir / bdt["hls_project"] / "firmware").is_dir()
    assert 0.2 < bdt["test"]["accuracy"] <= 1.0
    layers = report["firmware"]["layer_types"]
    assert [row["layer"] for row in layers][-1] in ("softmax", "logits") or layers
    with np.load(run_dir / "scores.npz") as scores:
        assert {"labels", "float", "qkeras", "hls", "bdt", "train_float"} <= set(scores.files)
        assert len(scores["labels"]) == report["data"]["split"]["test"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(bdt_run, tmp_path) -> None:
    page = (bdt_run.run_dir / "report.html").resolve()
    html = page.read_text()
    assert "http://" not in html and "https://" not in html, "the page must load nothing"
    done = _chromium(["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], tmp_path)
    assert "CONSOLE" not in done.stderr, done.stderr
    dom = done.stdout
    assert 'data-images="ok"' in dom, "an embedded image did not decode"
    for sid, title in SECTIONS:
        assert f'id="{sid}"' in dom and title in dom
    assert len(re.findall(r"<img ", dom)) >= 5  # curves, 2 x overtraining, ROC, saliency
    assert "BDT" in dom and "conifer" in dom
    shot = tmp_path / "report.png"
    _chromium(["--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()], tmp_path)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (3000, 1200)
    assert pixels[..., :3].std() > 0.05, "the screenshot is blank"


@pytest.mark.slow
def test_hepfpga_report_rebuilds_the_page(bdt_run, tmp_path, capsys) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(bdt_run.run_dir, run_dir, ignore=shutil.ignore_patterns("bdt_firmware"))
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    rebuilt = (run_dir / "report.html").read_text()
    assert rebuilt == (bdt_run.run_dir / "report.html").read_text()
    (run_dir / "scores.npz").unlink()  # without the scores: the plots say they are missing
    write_report_html(run_dir)
    assert "no scores.npz in the run folder" in (run_dir / "report.html").read_text()


def test_a_folder_without_report_json_is_refused(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "has no report.json" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        write_report_html(tmp_path)


def test_minimal_report_renders_every_section_with_notes() -> None:
    report = {
        "name": "<b>x</b>",
        "status": "failed",
        "checks": {"c": {"value": 0.5, "required": 1.0, "passed": False}},
        "hardware": {"latency_cycles": 12, "resources": {"LUT": 1500}},
        "timings_s": {"total": 3.0},
        "versions": {"python": "3.11"},
    }
    page = render_report_html(report, {})
    for sid, _ in SECTIONS:
        assert f'id="{sid}"' in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page and "&amp;lt;" not in page
    assert "FAILED" in page and "resources.LUT" in page
    assert json.dumps(report)  # plain data in, no mutation needed
