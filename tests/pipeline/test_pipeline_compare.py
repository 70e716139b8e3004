"""hepfpga compare: one table and a ROC overlay of run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.pipeline.compare import format_table, load_run

CLASSES = ["q", "g", "W"]


def _write_run(
    folder: Path, name: str, architecture: str, *, hls: bool, seed: int, method: str = "qkeras"
) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=300)
    scores = rng.uniform(size=(300, 3)) + 2.0 * np.eye(3)[labels]
    scores /= scores.sum(axis=1, keepdims=True)
    folder.mkdir(parents=True)
    models = {"float": scores, "qkeras": scores[:, ::-1]} | ({"hls": scores} if hls else {})
    np.savez(folder / "scores.npz", labels=labels, class_names=np.asarray(CLASSES), **models)
    report = {
        "name": name,
        "status": "passed" if hls else "incomplete",
        "architecture": {"name": architecture},
        "data": {"representation": "jet_image" if architecture == "cnn" else "features"},
        "parameters": 1234,
        "firmware": {"status": "built"} if hls else {"status": "not available"},
        "timings_s": {"total": 61.0},
        "config": {"quantization": {"method": method}},
    }
    for model, s in models.items():
        report[model] = {
            "test": {
                "accuracy": float(np.mean(s.argmax(axis=1) == labels)),
                "auc": {c: 0.5 + i / 10 for i, c in enumerate(CLASSES)},
            }
        }
    if hls:
        report["hls_vs_qkeras"] = {
            "logits_fraction_bit_exact": 1.0,
            "logits_max_abs_diff": 0.0,
            "argmax_agreement": 1.0,
        }
    (folder / "report.json").write_text(json.dumps(report))


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    _write_run(tmp_path / "runs" / "a", "a", "cnn", hls=True, seed=1)
    _write_run(tmp_path / "runs" / "b", "b", "lstm", hls=False, seed=2)
    return [tmp_path / "runs" / "a", tmp_path / "runs" / "b"]


@pytest.mark.parametrize(("method", "label"), [("qkeras", "QKeras"), ("hgq", "HGQ")])
def test_overlay_names_the_quantization_method(
    tmp_path: Path, method: str, label: str, capsys
) -> None:
    folder = tmp_path / "runs" / "h"
    _write_run(folder, "h", "mlp", hls=False, seed=3, method=method)
    run = load_run(folder)
    # the overlay's legend: "<run> <architecture> <model label>", the quantized model's curve
    assert run.quantization_method == method
    assert [run.model_label(m) for m in ("float", "qkeras", "hls")] == ["float", label, "HLS"]
    if method != "qkeras":  # QKeras runs' overlays are drawn by the tests below
        plot = tmp_path / "roc.png"
        assert main(["compare", str(folder), "--plot", str(plot)]) == 0
        assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("methods", "label"),
    [(("qkeras", "qkeras"), "QKeras"), (("hgq", "hgq"), "HGQ"), (("qkeras", "hgq"), "HGQ/QKeras")],
)
def test_table_headers_name_the_quantization_method(
    tmp_path: Path, methods: tuple[str, str], label: str
) -> None:
    """The run table's quantized-model columns are named by the runs' method."""
    folders = [tmp_path / "runs" / name for name in ("a", "b")]
    for seed, (folder, method) in enumerate(zip(folders, methods, strict=True)):
        _write_run(folder, folder.name, "mlp", hls=True, seed=seed, method=method)
    header = format_table([load_run(f) for f in folders]).splitlines()[0]
    assert f"accuracy {label}" in header and f"firmware vs {label}" in header, header
    assert ("QKeras" in header) == ("qkeras" in methods), header


def test_table_has_one_row_per_run_and_auc_per_model(two_runs: list[Path]) -> None:
    runs = [load_run(p) for p in two_runs]
    assert runs[0].firmware == "bit-exact logits" and runs[1].firmware == "not available"
    text = format_table(runs)
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:4] == ["run", "architecture", "inputs", "params"]
    row_b = next(line for line in lines if line.startswith("b ") and "lstm" in line)
    assert "not available" in row_b and " - " in row_b  # no HLS accuracy for b
    auc_header = next(line for line in lines if line.startswith("run ") and "model" in line)
    assert auc_header.split()[2:] == CLASSES
    assert sum(1 for line in lines if line.startswith("a ") and "0.7000" in line) == 3


def test_cli_writes_the_overlay_and_json(two_runs: list[Path], tmp_path: Path, capsys) -> None:
    plot, table = tmp_path / "roc.png", tmp_path / "cmp.json"
    status = main(["compare", *map(str, two_runs), "--plot", str(plot), "--json", str(table)])
    assert status == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(table.read_text())
    assert [r["architecture"] for r in rows] == ["cnn", "lstm"]
    assert "ROC overlay" in capsys.readouterr().out
    # the plot exists now: refused without --overwrite, exit status 2
    assert main(["compare", *map(str, two_runs), "--plot", str(plot)]) == 2


def test_a_folder_without_report_is_named(tmp_path: Path, capsys) -> None:
    (tmp_path / "partial").mkdir()
    status = main(["compare", str(tmp_path / "partial"), "--plot", str(tmp_path / "r.png")])
    assert status == 2
    assert "partial: not a run folder" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()


# -- anomaly-detection and generation runs ------------------------------------------------------

ALL_CLASSES = ["q", "g", "W", "Z", "t"]
BACKGROUND, SIGNALS = ["q", "g"], ["W", "Z", "t"]
ACCEPTANCES = (0.1, 0.01, 1e-4)


def _write_anomaly_run(folder: Path, name: str, seed: int, *, hls: bool = True) -> None:
    """An anomaly run folder whose figures come from the task's own evaluate_anomaly."""
    from hepfpga.train.tasks.anomaly import evaluate_anomaly

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=600)
    # signals score higher on average: AUC > 0.5
    scores = {
        m: rng.normal(size=600) + (labels >= 2) * (1.0 + 0.1 * i)
        for i, m in enumerate(["float", "qkeras", "hls"][: 3 if hls else 2])
    }
    folder.mkdir(parents=True)
    np.savez(folder / "scores.npz", labels=labels, **scores)
    report = {
        "name": name,
        "status": "passed",
        "architecture": {"name": "ae", "task": "anomaly_detection"},
        "data": {
            "representation": "features",
            "classes": ALL_CLASSES,
            "background_classes": BACKGROUND,
            "signal_classes": SIGNALS,
        },
        "parameters": 99,
        "firmware": {"status": "built"} if hls else {"status": "not available"},
        "anomaly": {"plots": ["roc.png", "score_distributions.png"]},
    }
    for model, s in scores.items():
        metrics = evaluate_anomaly(s, labels, ALL_CLASSES, [0, 1], [2, 3, 4], ACCEPTANCES)
        report[model] = {"test": metrics.to_dict()}
    if hls:
        report["hls_vs_qkeras"] = {
            "logits_fraction_bit_exact": 1.0,
            "logits_max_abs_diff": 0.0,
            "argmax_agreement": 1.0,
        }
    (folder / "report.json").write_text(json.dumps(report))


def _write_generation_run(folder: Path, name: str) -> None:
    """A generation run folder whose quality rows are the task's own GenerationQuality."""
    from hepfpga.train.tasks.generation import GenerationQuality

    def row(shift: float) -> dict:
        quality = GenerationQuality(
            {"mass": 0.1 + shift, "pt": 0.3 + shift},
            {"mass": 0.05 + shift, "pt": 0.15},
            0.5 + shift,
            40,
        )
        return quality.to_dict()

    folder.mkdir(parents=True)
    report = {
        "name": name,
        "status": "passed",
        "architecture": {"name": "gan", "task": "generation"},
        "data": {"representation": "features", "target_class": "t"},
        "parameters": 77,
        "firmware": {"status": "built"},
        "generation": {
            "quality": {
                "real (half A), baseline": row(0.0),
                "float generated": row(0.2),
                "QKeras generated": row(0.3),
                "HLS generated": row(0.3),
            },
            "plot": "feature_overlays.png",
        },
    }
    (folder / "report.json").write_text(json.dumps(report))


@pytest.fixture
def mixed_runs(tmp_path: Path) -> list[Path]:
    runs = tmp_path / "runs"
    _write_anomaly_run(runs / "ae1", "ae1", seed=3)
    _write_anomaly_run(runs / "ae2", "ae2", seed=4, hls=False)
    _write_generation_run(runs / "gan", "gan")
    _write_run(runs / "mlp", "mlp", "mlp", hls=True, seed=5)
    return sorted(runs.iterdir())


def test_mixed_runs_are_grouped_by_task_with_the_task_figures(mixed_runs: list[Path]) -> None:
    runs = [load_run(p) for p in mixed_runs]
    assert {r.name: r.task for r in runs} == {
        "ae1": "anomaly_detection",
        "ae2": "anomaly_detection",
        "gan": "generation",
        "mlp": "classification",
    }
    text = format_table(runs)
    banners = [line for line in text.splitlines() if line.startswith("== ")]
    # registry order: classification, anomaly detection, generation
    assert banners == [
        "== classification: 1 run ==",
        "== anomaly_detection: 2 runs ==",
        "== generation: 1 run ==",
    ]
    anomaly = text[text.index(banners[1]) : text.index(banners[2])]
    assert (
        "mean signal AUC float" in anomaly and "AUC (background vs each signal class):" in anomaly
    )
    for acceptance in ("0.1", "0.01"):
        assert f"signal efficiency at background acceptance {acceptance}:" in anomaly
    # below one background jet of ~240: not measured, said so instead of a table of dashes
    assert "background acceptance 0.0001: not measured" in anomaly
    ae1 = next(r for r in runs if r.name == "ae1")
    auc = next(t for t in ae1.tables if t.title.startswith("AUC"))
    assert auc.columns == tuple(SIGNALS) and all(v > 0.5 for v in auc.rows["QKeras"].values())
    assert ae1.headline["qkeras"] == pytest.approx(np.mean(list(auc.rows["QKeras"].values())))
    ae2_row = next(
        line for line in anomaly.splitlines() if line.startswith("ae2 ") and "ae" in line
    )
    assert "not available" in ae2_row and " - " in ae2_row  # no HLS model
    generation = text[text.index(banners[2]) :]
    assert "classifier AUC QKeras" in generation
    fidelity = [line for line in generation.splitlines() if line.startswith("gan ")]
    assert [line.split("  ")[1].strip() for line in fidelity[1:]] == [
        "real (half A), baseline",
        "float generated",
        "QKeras generated",
        "HLS generated",
    ]
    assert "0.8000" in fidelity[-1]  # the HLS sample's classifier AUC


def test_cli_draws_one_overlay_per_task_with_curves(
    mixed_runs: list[Path], tmp_path: Path, capsys
) -> None:
    plot, table = tmp_path / "out" / "roc.png", tmp_path / "cmp.json"
    status = main(["compare", *map(str, mixed_runs), "--plot", str(plot), "--json", str(table)])
    assert status == 0, capsys.readouterr().err
    anomaly_plot = tmp_path / "out" / "roc_anomaly_detection.png"
    for path in (plot, anomaly_plot):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert f"classification ROC overlay: {plot}" in out
    assert f"anomaly_detection ROC overlay: {anomaly_plot}" in out
    rows = json.loads(table.read_text())
    assert {r["name"]: r["task"] for r in rows}["gan"] == "generation"
    gan = next(r for r in rows if r["name"] == "gan")
    assert gan["headline"] == {"float": 0.7, "qkeras": 0.8, "hls": 0.8}
    # anomaly runs alone: their overlay takes --plot itself
    alone = tmp_path / "alone.png"
    ae = [p for p in mixed_runs if p.name.startswith("ae")]
    assert main(["compare", *map(str, ae), "--plot", str(alone)]) == 0
    assert alone.is_file()
    # generation alone: no curves, said so
    assert main(["compare", str(mixed_runs[2]), "--plot", str(tmp_path / "none.png")]) == 0
    assert "no ROC overlay" in capsys.readouterr().out
    assert not (tmp_path / "none.png").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("x"), "not a run folder (a file)"),
        (lambda p: None, "not a run folder (no such folder)"),
        (lambda p: p.mkdir(), "not a run folder (no report.json"),
        (
            lambda p: (p.mkdir(), (p / "report.json").write_text("[1, 2]")),
            "not a hepfpga run report",
        ),
        (
            lambda p: (
                p.mkdir(),
                (p / "report.json").write_text(
                    json.dumps({"data": {}, "architecture": {"task": "regression"}})
                ),
            ),
            "a run of task 'regression', which hepfpga cannot summarise; known tasks: "
            "anomaly_detection, classification, generation",
        ),
    ],
    ids=["file", "missing", "empty", "not-an-object", "unknown-task"],
)
def test_what_is_not_a_run_is_named(tmp_path: Path, capsys, make, message: str) -> None:
    target = tmp_path / "thing"
    make(target)
    status = main(["compare", str(target), "--plot", str(tmp_path / "r.png")])
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "thing" in err and "Traceback" not in err
    assert not (tmp_path / "r.png").exists()


def test_every_registered_task_has_figures() -> None:
    from hepfpga.pipeline.tasks import RUN_TASKS
    from hepfpga.train.tasks import TASKS

    assert set(RUN_TASKS) == set(TASKS)


@pytest.mark.parametrize("kind", ["anomaly", "generation"])
def test_report_html_of_anomaly_and_generation_runs(tmp_path: Path, kind: str) -> None:
    from hepfpga.pipeline.report_html import SECTIONS, write_report_html

    folder = tmp_path / kind
    if kind == "anomaly":
        _write_anomaly_run(folder, kind, seed=2)
        plot = "score_distributions.png"
    else:
        _write_generation_run(folder, kind)
        plot = "feature_overlays.png"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    (folder / plot).write_bytes(png)
    page = write_report_html(folder).read_text()
    for sid, _ in SECTIONS:
        assert f'id="{sid}"' in page
    summary = page[page.index('id="summary"') : page.index('id="data"')]
    task = page[page.index('id="task-plots"') : page.index('id="confusion"')]
    roc = page[page.index('id="roc"') : page.index('id="task-plots"')]
    assert f"<h3>{plot}</h3>" in task and "data:image/png;base64," in task
    if kind == "anomaly":
        assert (
            "mean signal AUC" in summary
            and "signal efficiency at background acceptance 0.1" in summary
        )
        assert "data:image/png;base64," in roc  # background vs each signal class, drawn here
        assert "one score per jet" in page  # no confusion matrix of a score
    else:
        assert "classifier AUC" in summary and "HLS generated" in summary
        assert "has no ROC curves" in roc
