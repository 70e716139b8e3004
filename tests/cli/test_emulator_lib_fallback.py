"""``hepfpga emulator-lib`` on a model with a layer the C++ generator does not cover: the
package falls back to the hls4ml C-simulation sources and says so, on stderr, in its README
and in package.json, never silently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.cli import main


def tanh_model() -> Any:
    """QKeras 6 -> 4 -> tanh (hls4ml's table tanh: emulated exactly, no C++ generator)."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    tf.keras.utils.set_random_seed(7)
    x = keras.Input((6,), name="input")
    h = QActivation(quantized_bits(10, 3, alpha=1), name="input_quant")(x)
    h = QDense(
        4,
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="dense",
    )(h)
    out = keras.layers.Activation("tanh", name="tanh")(h)
    return keras.Model(x, out, name="tanhnet")


@pytest.mark.slow
def test_uncovered_step_falls_back_loudly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_file = tmp_path / "tanhnet.h5"
    tanh_model().save(model_file)
    events = tmp_path / "events.npy"
    np.save(events, np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32))
    out = tmp_path / "pkg"
    status = main(["emulator-lib", str(model_file), "--events", str(events), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "hls4ml C-simulation sources" in warning[0]
    assert "tanh" in warning[0] and "has no C++ generator" in warning[0], warning
    record = json.loads((out / "package.json").read_text())
    assert record["arithmetic"] == "hls4ml"
    assert "has no C++ generator" in record["fallback_reason"]
    readme = (out / "README.md").read_text()
    assert "Generated code was not used" in readme and record["fallback_reason"] in readme
    # the C-simulation sources are what was packaged
    assert (out / "NN" / "myproject.cpp").is_file() and not (out / "NN" / "model.h").exists()
