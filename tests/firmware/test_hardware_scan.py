"""``hepfpga scan``: bit widths and HGQ betas -> accuracy, AUC, latency, LUT; Pareto front;
the published reference markers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hepfpga.cli import main
from hepfpga.pipeline.scan import (
    PUBLISHED,
    PUBLISHED_LABEL,
    ScanPoint,
    ScanResult,
    _front,
    _pareto,
    parse_betas,
    plot_scan,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _point(bits, lut, accuracy, **kw):
    return ScanPoint(bits, accuracy, 0.9, {}, 3, 15.0, lut, 0, "t", lut, 0.0, **kw)


def test_pareto_front_keeps_only_undominated_points():
    points = [
        _point(3, 100, 0.60),
        _point(4, 150, 0.58),
        _point(5, 200, 0.65),
        _point(6, 200, 0.64),
    ]
    assert _pareto(points) == (3, 5)


def test_front_spans_qkeras_and_hgq_points():
    hgq = [
        _point(0, 80, 0.62, method="hgq", beta=1e-4),
        _point(0, 300, 0.63, method="hgq", beta=1e-6),
    ]
    qkeras = [_point(3, 100, 0.60), _point(5, 200, 0.65)]
    assert [p.label for p in _front(qkeras + hgq)] == ["HGQ beta=0.0001", "5 b"]


@pytest.mark.parametrize("text", ["3-x", "a,b"])
def test_bad_bit_list_exit_2(tmp_path, capsys, text):
    assert main(["scan", "nope.yaml", "--bits", text, "--out", str(tmp_path / "o")]) == 2
    assert "--bits" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0", "-1e-5", "2", "x", "nan", "inf", ",", "1e-5,1e-5"])
def test_bad_hgq_betas_exit_2(tmp_path, capsys, text):
    config = EXAMPLES / "jet_tagging.yaml"
    out = tmp_path / "o"
    assert main(["scan", str(config), "--hgq-betas", text, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --hgq-betas") and err.count("\n") == 1
    assert not out.exists()


def test_parse_betas_keeps_the_order_given():
    assert parse_betas("1e-4, 1e-6,1e-5") == [1e-4, 1e-6, 1e-5]


@pytest.mark.parametrize(
    ("example", "reason"),
    [("jet_deepsets.yaml", "global pooling"), ("jet_lstm.yaml", "recurrent")],
)
def test_hgq_betas_refused_for_an_architecture_without_hgq_counterpart(
    tmp_path, capsys, example, reason
):
    out = tmp_path / "o"
    status = main(["scan", str(EXAMPLES / example), "--hgq-betas", "1e-5", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "quantization.method" in err and "hgq" in err and reason in err
    assert not out.exists()


def test_published_markers_are_drawn_from_the_cited_table(tmp_path):
    result = ScanResult(
        float_accuracy=0.7,
        tolerance=0.01,
        points=(_point(3, 1000, 0.66), _point(6, 4000, 0.7)),
        pareto=(3, 6),
        smallest_within_tolerance=6,
        reference={},
        hgq_points=(_point(0, 900, 0.69, method="hgq", beta=1e-5, ebops=3e3),),
    )
    drawn = plot_scan(result, tmp_path / "p.png")
    published = [m for m in drawn if m.kind == "published"]
    assert [(m.label, m.accuracy, m.lut_low, m.lut_high) for m in published] == [
        (p.label, p.accuracy, p.lut_low, p.lut_high) for p in PUBLISHED
    ]
    # the figures: QKeras 6-bit ~0.76 at 40-63k LUT, HGQ 76.4% at ~6k LUT and 30 ns,
    # HGQ2 + da4ml ~75% at 6-11k LUT; each with its paper's arXiv id
    by_label = {p.label: p for p in PUBLISHED}
    assert (by_label["QKeras 6-bit"].lut_low, by_label["QKeras 6-bit"].lut_high) == (40e3, 63e3)
    assert by_label["HGQ"].accuracy == 0.764 and by_label["HGQ"].latency_ns == 30
    assert by_label["HGQ2 + da4ml"].lut_high == 11e3
    assert all("arXiv:" in p.citation for p in PUBLISHED)
    assert [m.label for m in drawn if m.kind == "hgq"] == ["HGQ beta=1e-05"]
    assert {m.label for m in drawn if m.kind == "qkeras"} == {"3 b", "6 b"}
    assert "another data set" in PUBLISHED_LABEL
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One tiny scan shared by the slow tests: bit widths 3 and 6 and HGQ at two betas."""
    pytest.importorskip("da4ml")
    pytest.importorskip("HGQ")
    folder = tmp_path_factory.mktemp("scan")
    config = folder / "scan.yaml"
    config.write_text(
        "name: scan\nseed: 1\ndata: {max_jets: 1500}\nmodel: {hidden_units: [8]}\n"
        # 2 x 16 steps of QAT: enough for HGQ's bit widths to follow their beta
        "training: {epochs: 2}\nquantization: {epochs: 2, batch_size: 64, learning_rate: 0.01}\n"
        # --synth with a limit yosys cannot meet: every point keeps da4ml's estimate, and the
        # scan goes on (a slow synthesis costs no point)
        "hardware: {synthesis_timeout_s: 0.01}\n"
    )
    out = folder / "out"
    args = ["--bits", "3,6", "--hgq-betas", "1e-6,1e-4", "--synth", "--out", str(out)]
    status = main(["scan", str(config), *args])
    assert status == 0
    return json.loads((out / "scan.json").read_text()), out


@pytest.mark.slow
def test_scan_small_config(scanned):
    result, out = scanned
    points = {p["bits"]: p for p in result["points"]}
    assert set(points) == {3, 6}
    assert points[3]["lut"] < points[6]["lut"]
    assert all(0 < p["accuracy"] <= 1 and p["latency_cycles"] >= 1 for p in points.values())
    assert all(p["lut"] == p["lut_estimate"] for p in points.values())
    assert set(result["pareto"]) <= {3, 6} and result["reference"]["lut_equivalent"] == 44_030
    assert (out / "pareto.png").stat().st_size > 0


@pytest.mark.slow
def test_scan_hgq_points_by_beta(scanned):
    result, out = scanned
    hgq = {p["beta"]: p for p in result["hgq_points"]}
    assert list(hgq) == [1e-6, 1e-4]
    for p in hgq.values():
        assert p["method"] == "hgq" and p["ebops"] > 0 and p["lut"] == p["lut_estimate"] > 0
        assert 0 < p["accuracy"] <= 1 and p["latency_cycles"] >= 1 and len(p["auc"]) == 5
        assert p["lut_source"] == "da4ml estimate (yosys past 0.01 s)"
    # a larger resource weight trains a cheaper model (same seed, same float weights)
    assert hgq[1e-4]["ebops"] < hgq[1e-6]["ebops"]
    labels = {"3 b", "6 b", "HGQ beta=1e-06", "HGQ beta=0.0001"}
    assert result["front"] and set(result["front"]) <= labels
    plotted = {(m["label"], m["kind"]) for m in result["plot"]}
    assert {("HGQ beta=1e-06", "hgq"), ("HGQ beta=0.0001", "hgq")} <= plotted
    assert {(p.label, "published") for p in PUBLISHED} <= plotted
    assert [p["label"] for p in result["published"]] == [p.label for p in PUBLISHED]
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
