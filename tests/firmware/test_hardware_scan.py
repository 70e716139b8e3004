"""``hepfpga scan``: bit widths -> accuracy, AUC, latency, LUT; Pareto front."""

from __future__ import annotations

import json

import pytest

from hepfpga.cli import main
from hepfpga.pipeline.scan import ScanPoint, _pareto


def _point(bits, lut, accuracy):
    return ScanPoint(bits, accuracy, 0.9, {}, 3, 15.0, lut, 0, "t", lut, 0.0)


def test_pareto_front_keeps_only_undominated_points():
    points = [
        _point(3, 100, 0.60),
        _point(4, 150, 0.58),
        _point(5, 200, 0.65),
        _point(6, 200, 0.64),
    ]
    assert _pareto(points) == (3, 5)


@pytest.mark.parametrize("text", ["3-x", "a,b"])
def test_bad_bit_list_exit_2(tmp_path, capsys, text):
    assert main(["scan", "nope.yaml", "--bits", text, "--out", str(tmp_path / "o")]) == 2
    assert "--bits" in capsys.readouterr().err


@pytest.mark.slow
def test_scan_small_config(tmp_path, capsys):
    pytest.importorskip("da4ml")
    config = tmp_path / "scan.yaml"
    config.write_text(
        "name: scan\nseed: 1\ndata: {max_jets: 1500}\nmodel: {hidden_units: [8]}\n"
        "training: {epochs: 2}\nquantization: {epochs: 1}\n"
    )
    out = tmp_path / "out"
    assert main(["scan", str(config), "--bits", "3,6", "--out", str(out)]) == 0
    result = json.loads((out / "scan.json").read_text())
    points = {p["bits"]: p for p in result["points"]}
    assert set(points) == {3, 6}
    assert points[3]["lut"] < points[6]["lut"]
    assert all(0 < p["accuracy"] <= 1 and p["latency_cycles"] >= 1 for p in points.values())
    assert set(result["pareto"]) <= {3, 6} and result["reference"]["lut_equivalent"] == 44_030
    assert (out / "pareto.png").stat().st_size > 0
    assert (
        "LUT-equivalent" in capsys.readouterr().out or result["smallest_within_tolerance"] is None
    )
