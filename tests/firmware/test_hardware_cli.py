"""``hepfpga hardware``: run/model/project targets, errors with exit status 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hepfpga.cli import main

REPORTS = Path(__file__).parent.parent / "data" / "hls_reports"


def test_reads_a_built_hls4ml_project(tmp_path, capsys):
    project = shutil.copytree(REPORTS / "vitis_2024", tmp_path / "prj")
    (project / "build_prj.tcl").write_text("# hls4ml build script\n")
    assert main(["hardware", str(project)]) == 0
    shown = capsys.readouterr().out
    assert "12 cycles = 60 ns" in shown and "LUT 42,160" in shown
    written = json.loads((project / "hardware_report.json").read_text())
    assert written["resources"]["dsp"] == 34 and written["latency"]["max_ns"] == 60.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["does-not-exist"], "does not exist"),
        (["{tmp}"], "is not a run folder"),
        (["{tmp}", "--vendor", "synth"], "--vendor needs an hls4ml project"),
    ],
)
def test_bad_targets_exit_2(tmp_path, capsys, args, message):
    argv = ["hardware", *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_vendor_step_exit_2(tmp_path, capsys):
    project = shutil.copytree(REPORTS / "vivado_2019", tmp_path / "prj")
    (project / "build_prj.tcl").write_text("# hls4ml build script\n")
    assert main(["hardware", str(project), "--vendor", "synth,place"]) == 2
    assert "accepted: csim, synth, cosim, export, vsynth" in capsys.readouterr().err


@pytest.mark.slow
def test_model_file_end_to_end(tmp_path, capsys):
    pytest.importorskip("da4ml")
    import numpy as np
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    from hepfpga.quantize.model_io import save_keras_model

    tf.keras.utils.set_random_seed(5)
    x = keras.Input((4,), name="features")
    h = QActivation(quantized_bits(8, 2, alpha=1), name="input_quant")(x)
    h = QDense(
        4,
        kernel_quantizer=quantized_bits(3, 0, alpha=1),
        bias_quantizer=quantized_bits(3, 0, alpha=1),
        name="dense_1",
    )(h)
    h = QActivation(quantized_relu(3, 1), name="relu_1")(h)
    h = QDense(
        2,
        kernel_quantizer=quantized_bits(3, 0, alpha=1),
        bias_quantizer=quantized_bits(3, 0, alpha=1),
        name="logits",
    )(h)
    model = keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))
    save_keras_model(model, tmp_path / "model.h5")
    np.savez(tmp_path / "events.npz", x=np.random.default_rng(0).normal(size=(300, 4)))
    out = tmp_path / "hw out"  # a space in the path: make must not see it
    argv = [
        "hardware",
        str(tmp_path / "model.h5"),
        "--data",
        str(tmp_path / "events.npz"),
        "--out",
        str(out),
        "--no-synth",
        "--no-emulate",
        "--clock-period",
        "2.5",
    ]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["exact"] is True and report["exactness"][0]["n_events"] == 300
    assert report["latency"]["max_ns"] == 2.5 * report["latency"]["max_cycles"]
    assert (out / "rtl" / "src" / "hepfpga_model.v").is_file()
    assert "identical (100.00%)" in capsys.readouterr().out
    assert main(argv) == 2  # the output folder exists now
