"""``hepfpga optimize-precision``: bad arguments refused with one line (exit 2, nothing
written), and a small search end to end whose layer_types.yml ``hepfpga firmware`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hepfpga.cli import main

pytest.importorskip("optuna")
pytest.importorskip("da4ml")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="input")
    h = QActivation(quantized_bits(10, 3, alpha=1), name="input_quant")(x)
    h = QDense(
        6,
        kernel_quantizer=quantized_bits(5, 0, alpha=1),
        bias_quantizer=quantized_bits(5, 0, alpha=1),
        name="dense_1",
    )(h)
    h = QActivation(quantized_relu(5), name="relu_1")(h)
    h = QDense(
        3,
        kernel_quantizer=quantized_bits(5, 0, alpha=1),
        bias_quantizer=quantized_bits(5, 0, alpha=1),
        name="logits",
    )(h)
    model = keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))
    folder = tmp_path_factory.mktemp("optimize")
    model.save(folder / "tiny.h5")
    rng = np.random.default_rng(0)
    events = rng.normal(size=(300, 4)).astype(np.float32)
    np.savez(folder / "events.npz", x=events, y=rng.integers(0, 3, size=300))
    (folder / "not_a_run").mkdir()
    return {
        "model": folder / "tiny.h5",
        "events": folder / "events.npz",
        "not_a_run": folder / "not_a_run",
    }


def _snapshot(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


CASES = {
    "accuracy-without-epsilon": (
        [
            "MODEL",
            "--data",
            "EVENTS",
            "--key",
            "x",
            "--labels-key",
            "y",
            "--constraint",
            "accuracy",
        ],
        ("--epsilon",),
    ),
    "epsilon-with-bit-exact": (
        ["MODEL", "--data", "EVENTS", "--key", "x", "--epsilon", "0.01"],
        ("--epsilon", "accuracy"),
    ),
    "accuracy-without-labels": (
        [
            "MODEL",
            "--data",
            "EVENTS",
            "--key",
            "x",
            "--constraint",
            "accuracy",
            "--epsilon",
            "0.01",
        ],
        ("labels",),
    ),
    "model-without-data": (["MODEL"], ("--data",)),
    "missing-target": (["TMP/nowhere.h5"], ("does not exist",)),
    "not-a-run": (["NOT_A_RUN"], ("not a run folder",)),
    "epsilon-2": (["MODEL", "--data", "EVENTS", "--epsilon", "2"], ("--epsilon",)),
    "one-trial": (["MODEL", "--data", "EVENTS", "--trials", "1"], ("--trials",)),
    "bad-constraint": (["MODEL", "--data", "EVENTS", "--constraint", "exact"], ("--constraint",)),
    "holdout-0": (["MODEL", "--data", "EVENTS", "--holdout", "0"], ("--holdout",)),
    "holdout-1": (["MODEL", "--data", "EVENTS", "--holdout", "1"], ("--holdout",)),
    "holdout-nan": (["MODEL", "--data", "EVENTS", "--holdout", "nan"], ("--holdout",)),
}


@pytest.mark.parametrize("what", ["missing", "not-an-output"])
def test_scan_refuses_a_precision_folder_that_is_not_one_before_training(
    what: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Path(__file__).resolve().parents[2] / "examples" / "jet_tagging.yaml"
    folder = tmp_path / "nowhere" if what == "missing" else files["not_a_run"]
    code = main(
        ["-q", "scan", str(config), "--bits", "4", "--precision", str(folder), "--out",
         str(tmp_path / "scan")]
    )  # fmt: skip
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 2 and len(lines) == 1, err
    assert "--precision" in lines[0] and "search.json" in lines[0]
    assert not (tmp_path / "scan").exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arguments_give_one_line_and_exit_2(
    case: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, needles = CASES[case]
    names = {"MODEL": files["model"], "EVENTS": files["events"], "NOT_A_RUN": files["not_a_run"]}
    argv = [str(names.get(a, a)).replace("TMP", str(tmp_path)) for a in args]
    before = _snapshot(tmp_path)
    code = main(["-q", "optimize-precision", *argv, "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    assert code == 2, err
    assert _snapshot(tmp_path) == before


def test_search_writes_types_that_hepfpga_firmware_reads(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepfpga.cli.firmware import _build_options

    out = tmp_path / "out"
    code = main(
        [
            "-q",
            "optimize-precision",
            str(files["model"]),
            "--data",
            str(files["events"]),
            "--key",
            "x",
            "--trials",
            "3",
            "--synth-points",
            "0",
            "--no-synth",
            "--no-csim",
            "--out",
            str(out),
        ]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "proven for every input" in stdout and "0 of 3 trials spent" in stdout
    assert {p.name for p in out.iterdir()} == {"layer_types.yml", "search.json", "pareto.png"}
    options = _build_options(out / "layer_types.yml")
    record = json.loads((out / "search.json").read_text())
    best = record["search"]["best"]
    assert best["feasible"] and best["fraction_identical"] == 1.0
    assert {name for name in options.layer_types} == set(best["layer_types"])
    assert best["lut_estimate"] <= record["search"]["baseline"]["lut_estimate"]


def test_accuracy_mode_reports_the_held_out_events(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "-q",
            "optimize-precision",
            str(files["model"]),
            "--data",
            str(files["events"]),
            "--key",
            "x",
            "--labels-key",
            "y",
            "--constraint",
            "accuracy",
            "--epsilon",
            "0.02",
            "--holdout",
            "0.4",
            "--trials",
            "2",
            "--synth-points",
            "0",
            "--no-synth",
            "--no-csim",
            "--out",
            str(out),
        ]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "on the 120 held-out events" in stdout and "180 search events" in stdout
    search = json.loads((out / "search.json").read_text())["search"]
    assert (search["n_events"], search["n_heldout"]) == (180, 120)
    assert search["trials_spent"] == 2 and not search["proven"]
    drop = search["heldout_baseline_accuracy"] - search["best"]["heldout_accuracy"]
    assert drop <= 0.02
    # hepfpga scan --precision OUT draws these two designs on its Pareto plot
    from hepfpga.pipeline.scan import ScanPoint, ScanResult, plot_scan, precision_points

    base, chosen = precision_points(out)
    assert (base.kind, chosen.kind) == ("quantizer-derived", "optimised")
    assert base.accuracy == search["heldout_baseline_accuracy"]
    assert chosen.accuracy == search["best"]["heldout_accuracy"]
    assert chosen.lut == search["best"]["lut_estimate"]
    point = ScanPoint(6, 0.5, 0.6, {"a": 0.6}, 3, 15.0, 900, 300, "da4ml estimate", 900, 1.0)
    scan = ScanResult(0.55, 0.01, (point,), (6,), None, {})
    drawn = plot_scan(scan, tmp_path / "pareto.png", (base, chosen))
    assert [(m.kind, m.lut) for m in drawn if m.kind in ("quantizer-derived", "optimised")] == [
        ("quantizer-derived", base.lut),
        ("optimised", chosen.lut),
    ]
    assert (tmp_path / "pareto.png").stat().st_size > 0


@pytest.mark.parametrize(
    "timeout",
    [
        pytest.param(None, id="counted", marks=pytest.mark.slow),  # two yosys runs
        pytest.param("0.01", id="timed-out"),
    ],
)
def test_synth_counts_the_chosen_and_the_quantizer_derived_types(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], timeout: str | None
) -> None:
    """The LUT figures are labelled as da4ml's estimate with a calibration spread; with
    --synth yosys counts the chosen and the quantizer-derived designs (a tiny one), and a
    yosys past --synth-timeout leaves the estimate with a note, not a failure."""
    from hepfpga.errors import MissingDependencyError
    from hepfpga.firmware.rtl.synth import find_yosys

    try:
        find_yosys()
    except MissingDependencyError:
        pytest.skip("yosys is not installed")
    out = tmp_path / "out"
    extra = [] if timeout is None else ["--synth-timeout", timeout]
    code = main(
        [
            "-q",
            "optimize-precision",
            str(files["model"]),
            "--data",
            str(files["events"]),
            "--key",
            "x",
            "--synth-points",
            "1",
            "--no-csim",
            *extra,
            "--out",
            str(out),
        ]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads((out / "search.json").read_text())
    assert "LUT figures are da4ml's estimate" in stdout
    assert "da4ml's estimate" in (out / "layer_types.yml").read_text()
    if timeout is None:
        chosen, baseline = record["yosys_chosen_lut"], record["yosys_baseline_lut"]
        assert chosen > 0 and baseline > 0
        assert f"yosys: chosen {chosen:,} LUT vs quantizer-derived {baseline:,} LUT" in stdout
        assert record["calibration"]["source"] == "this run's yosys points"
        assert record["calibration"]["points"] == 2
        assert "reference: yosys/da4ml = 0.99, spread 7%" in stdout
    else:
        assert record["yosys_chosen_lut"] is None and record["yosys_baseline_lut"] is None
        assert all(p["yosys_timed_out"] for p in record["final"])
        assert "no resource counts" in stdout and "yosys timed out" in stdout
        assert "measured on the built-in jet MLP" in stdout
