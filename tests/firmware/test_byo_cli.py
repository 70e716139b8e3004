"""``hepfpga firmware`` and ``hepfpga verify`` end to end: output, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, small_tagger: Any, inputs_factory: Any) -> Any:
    from tensorflow import keras

    from hepfpga.quantize.model_io import save_keras_model

    folder = tmp_path_factory.mktemp("byo_cli")
    save_keras_model(small_tagger, folder / "tagger.h5")
    np.savez(folder / "events.npz", x=inputs_factory(200, seed=5))
    np.savez(folder / "short.npz", x=inputs_factory(20)[:, :15])
    nan = inputs_factory(20)
    nan[3, 2] = np.inf
    np.savez(folder / "nan.npz", x=nan)
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(folder / "lambda.h5")
    (folder / "corrupt.h5").write_bytes(b"\x89HDF\r\n garbage")
    unsupported = keras.Model(inputs, keras.layers.RepeatVector(2)(inputs))
    save_keras_model(unsupported, folder / "repeat.h5")
    float_model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    save_keras_model(float_model, folder / "float.h5")
    return folder


@pytest.mark.parametrize("command", [["firmware"], ["verify"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0
    assert "--data" in out and "--softmax" in out and "--backend" in out


def test_firmware_writes_the_project(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = files / "fw"
    code, out, err = run_cli(
        [
            "firmware",
            str(files / "tagger.h5"),
            "--out",
            str(out_dir),
            "--backend",
            "vivado",
            "--io-type",
            "io_stream",
            "--strategy",
            "resource",
            "--reuse-factor",
            "2",
            "--clock-period",
            "4",
            "--data",
            str(files / "events.npz"),
        ],
        capsys,
    )
    assert code == 0, err
    assert f"wrote {out_dir} (Vivado, io_stream, Resource, part xcvu13p-flga2577-2-e" in out
    assert "dense_1" in out and "exact sum" in out
    record = json.loads((out_dir / "hepfpga_hls_config.json").read_text())
    assert record["options"]["reuse_factor"] == 2
    assert record["precision"]["relu_1"]["result"] == "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>"
    assert len(np.load(out_dir / "tb_data/tb_input_features.npy")) == 200
    code, _, err = run_cli(["firmware", str(files / "tagger.h5"), "--out", str(out_dir)], capsys)
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("lambda.h5", [], "Lambda layer"),
        ("corrupt.h5", [], "not an HDF5 file"),
        ("missing.h5", [], "model file not found"),
        ("repeat.h5", [], "(RepeatVector) is not supported; supported: Activation, Add"),
        ("float.h5", [], "needs events to profile its ranges"),
        ("tagger.h5", ["--backend", "oneAPI"], "Invalid value for '--backend'"),
        (
            "tagger.h5",
            ["--data", "short.npz"],
            "has shape (20, 15); the model takes shape (n_events, 16)",
        ),
        (
            "tagger.h5",
            ["--data", "nan.npz"],
            "1 NaN or infinite values in 1 events (first: event 3 input 2)",
        ),
        ("tagger.h5", ["--data", "events.npz", "--random", "5"], "either --data or --random"),
        ("tagger.h5", ["--input-type", "ap_fixed<16>"], "template arguments"),
    ],
)
@pytest.mark.parametrize("command", ["firmware", "verify"])
def test_bad_input_exits_2_with_a_specific_message(
    command: str,
    model: str,
    extra: list[str],
    message: str,
    files: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if command == "verify" and model == "float.h5":
        pytest.skip("verify draws --random 1000 events when none are given")
    extra = [str(files / e) if e.endswith(".npz") else e for e in extra]
    out = ["--out", str(tmp_path / "fw")] if command == "firmware" else []
    code, _, err = run_cli([command, str(files / model), *out, *extra], capsys)
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.slow
def test_verify_passes_and_writes_a_report(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    args = ["verify", str(files / "tagger.h5"), "--data", str(files / "events.npz")]
    code, out, err = run_cli([*args, "--report", str(report)], capsys)
    assert code == 0, err
    assert "logits: 100.00% bit-exact" in out
    assert "PASSED: bit-exact logits" in out
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["n_events"] == 200
    assert [layer["name"] for layer in data["layers"]][:2] == ["dense_1", "relu_1"]
    # a second run takes the compiled simulation from the cache
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "C simulation from cache" in out


@pytest.mark.slow
def test_verify_exits_1_naming_the_first_diverging_layer(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = tmp_path / "wrong.yaml"
    options.write_text("firmware:\n  layer_types:\n    dense_2: {result: 'ap_fixed<12,4>'}\n")
    args = ["verify", str(files / "tagger.h5"), "--data", str(files / "events.npz")]
    code, out, err = run_cli([*args, "--options", str(options)], capsys)
    assert code == 1
    assert "FAILED: bit-exact logits" in out
    assert "first diverging layer 'dense_2' (truncation_before_rounding)" in err


@pytest.mark.slow
def test_verify_a_sequential_json_model_without_input_quantizer(
    tmp_path: Path, byo_models: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 8's first case as a user types it: a keras.Sequential QKeras model saved as JSON +
    weights, with built-in activations and no input quantizer. (Same model, events and options
    as a case of test_byo_layers.py, so the two share one compiled simulation.)"""
    model = byo_models.sequential_qkeras_no_input_quantizer(bits=6)
    (tmp_path / "model.json").write_text(model.to_json())
    model.save_weights(tmp_path / "weights.h5")
    np.savez(tmp_path / "events.npz", x=byo_models.events((12,), 300, seed=3))
    report = tmp_path / "report.json"
    args = [
        "verify",
        str(tmp_path / "model.json"),
        "--weights",
        str(tmp_path / "weights.h5"),
        "--data",
        str(tmp_path / "events.npz"),
        "--backend",
        "Vivado",
        "--report",
        str(report),
    ]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "PASSED: bit-exact logits on the input grid" in out
    assert "input type: ap_fixed<16,4,AP_RND_CONV,AP_SAT> (default: no input quantizer" in out
    assert "rounding the events to it costs: logits max |diff|" in out
    assert "C simulation of " in err  # progress before the build
    data = json.loads(report.read_text())
    names = [layer["name"] for layer in data["layers"]]
    assert names[:2] == ["dense_1", "dense_1_quantized_relu"]
    assert data["input_rounding"]["argmax_agreement"] >= 0.99
