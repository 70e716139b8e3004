"""Vendor HLS reports (recorded files of Vitis HLS 2024.1 and Vivado HLS 2019.2) read into the
typed HardwareReport, and the vendor build's error when the tool is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hepfpga.errors import ConfigError, MissingDependencyError
from hepfpga.firmware.backends import build_project
from hepfpga.firmware.vendor import BuildSteps, read_reports

REPORTS = Path(__file__).parent.parent / "data" / "hls_reports"


def test_vitis_hls_csynth_report():
    report = read_reports(REPORTS / "vitis_2024")
    lat, res, timing = report.latency, report.resources, report.timing
    assert (lat.min_cycles, lat.max_cycles, lat.initiation_interval) == (12, 12, 1)
    assert lat.max_ns == 60.0 and "Vitis HLS 2024.1 C synthesis" in lat.source
    assert (res.lut, res.ff, res.dsp, res.bram) == (42160, 3199, 34, 0)
    assert res.part == "xcu250-figd2104-2L-e" and res.percent["dsp"] == pytest.approx(0.2767, 1e-3)
    assert res.lut_equivalent == 42160 + 55 * 34
    assert (timing.target_ns, timing.estimated_ns) == (5.0, 3.648)


def test_vivado_hls_reports_prefer_cosim_and_vivado_synthesis():
    report = read_reports(REPORTS / "vivado_2019")
    lat, res = report.latency, report.resources
    # co-simulation measured 9 cycles where the estimate said 9-10
    assert (lat.min_cycles, lat.max_cycles) == (9, 9) and "co-simulation" in lat.source
    # Vivado's synthesized counts replace the HLS estimate (61,873 LUT, 4 BRAM_18K)
    assert (res.lut, res.ff, res.dsp, res.bram) == (28541, 3011, 27, 2)
    assert "Vivado logic synthesis" in res.source
    assert report.timing.estimated_ns == 4.371


def test_hls_estimate_alone_when_no_cosim_or_vivado(tmp_path):
    project = shutil.copytree(REPORTS / "vivado_2019", tmp_path / "prj")
    (project / "vivado_synth.rpt").unlink()
    shutil.rmtree(project / "myproject_prj" / "solution1" / "sim")
    report = read_reports(project)
    assert (report.latency.min_cycles, report.latency.max_cycles) == (9, 10)
    assert (report.resources.lut, report.resources.dsp, report.resources.bram) == (61873, 27, 2)
    assert "Vivado HLS 2019.2 C synthesis estimate" in report.resources.source


def test_unbuilt_project_says_how_to_build(tmp_path):
    project = shutil.copytree(REPORTS / "vitis_2024", tmp_path / "prj")
    shutil.rmtree(project / "myproject_prj" / "solution1" / "syn")
    with pytest.raises(ConfigError, match="build the project first"):
        read_reports(project)


@pytest.mark.parametrize(
    "backend, tool", [("vitis_2024", "vitis_hls"), ("vivado_2019", "vivado_hls")]
)
def test_missing_vendor_tool_names_it(tmp_path, monkeypatch, backend, tool):
    project = shutil.copytree(REPORTS / backend, tmp_path / "prj")
    (project / "build_prj.tcl").write_text("# hls4ml build script\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MissingDependencyError, match=rf"{tool}.*settings64\.sh"):
        build_project(project, BuildSteps(csim=True, synth=True))


def test_build_steps_imply_synthesis():
    options = BuildSteps(synth=False, cosim=True).tcl_options()
    assert options["synth"] == 1 and options["cosim"] == 1 and options["export"] == 0
    assert BuildSteps(vsynth=True).tcl_options()["export"] == 1


def test_backends_are_registered_objects():
    from hepfpga.firmware.backends import BACKENDS
    from hepfpga.firmware.options import Backend

    assert tuple(BACKENDS) == tuple(b.value for b in Backend)
    for backend in Backend:
        assert backend.info is BACKENDS[backend.value]
    vitis = Backend.VITIS.info
    assert vitis.tools == ("vitis-run", "vitis_hls") and vitis.report_reader is not None
    quartus = Backend.QUARTUS.info
    settings = {"Precision": {"result": "ap_ufixed<16,0,AP_RND,AP_SAT>"}, "TableSize": 1024}
    assert quartus.softmax_settings(settings) == {
        "Precision": {"result": "ap_fixed<17,1,AP_RND,AP_SAT>"},
        "TableSize": 1024,
    }
    assert vitis.softmax_settings(settings) is settings


def test_backend_without_report_reader_says_so(tmp_path):
    from hepfpga.firmware.options import Backend

    with pytest.raises(ConfigError, match=r"not parsed by hepfpga.*catapult"):
        Backend.CATAPULT.info.build(tmp_path, BuildSteps())
