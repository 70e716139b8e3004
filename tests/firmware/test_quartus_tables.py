"""The Quartus backend's softmax tables (:mod:`hepfpga.firmware.quartus_tables`).

hls4ml 1.3's Quartus writer computes the softmax's exp and 1/x tables from the layer named
``softmax`` only, and from default types for any other name; the C++ addresses them with the
softmax's own types. hepfpga writes them again for the project's softmax: the tables of a
softmax named ``sm`` must equal those hls4ml writes when the same layer is named ``softmax``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError
from hepfpga.firmware import FirmwareOptions

TABLES = ("exp_table", "invert_table", "exp_table_latency", "invert_table_latency")


def _chain(softmax_name: str, input_bits: tuple[int, int] = (8, 3)) -> Any:
    """A 4-6-3 QKeras chain ending in a softmax named ``softmax_name``; its logits are
    ``ap_fixed<14,7>``-ish (not hls4ml's default ``ap_fixed<16,6>``), so tables computed
    for the default type are addressed wrongly."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(3)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((4,), name="x")
    h = QActivation(quantized_bits(*input_bits, alpha=1), name="inq")(x)
    h = QDense(6, kernel_quantizer=q, bias_quantizer=q, name="d1")(h)
    h = QActivation(quantized_relu(6, 2), name="r1")(h)
    h = QDense(3, kernel_quantizer=q, bias_quantizer=q, name="d2")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name=softmax_name)(h))


def _tables(folder: Path) -> dict[str, str]:
    where = folder / "firmware" / "nnet_utils" / "activation_tables"
    return {name: (where / f"{name}.tb").read_text() for name in TABLES}


def test_tables_are_those_of_a_layer_named_softmax(tmp_path: Path) -> None:
    """The tables of the softmax 'sm' equal hls4ml's own for the same layer named 'softmax'
    (and differ from what hls4ml alone writes for 'sm': its default types)."""
    from hepfpga.firmware.project import write_project

    options = FirmwareOptions(backend="Quartus")
    named = write_project(_chain("softmax"), options, tmp_path / "named")
    other = write_project(_chain("sm"), options, tmp_path / "sm")
    assert _tables(other.path) == _tables(named.path)

    import hls4ml

    plain = hls4ml.converters.convert_from_keras_model(
        other.hls_model.config.config["KerasModel"],
        hls_config=other.hls_config,
        output_dir=str(tmp_path / "plain"),
        backend="Quartus",
    )
    plain.write()  # hls4ml alone: the default types' tables for 'sm'
    assert _tables(tmp_path / "plain")["exp_table"] != _tables(named.path)["exp_table"]


def test_vitis_projects_get_no_table_files(tmp_path: Path) -> None:
    """Only the Quartus writer shares one set of table files; Vitis computes its tables in
    the C++ per layer, and no table file is added to its project."""
    from hepfpga.firmware.project import write_project

    project = write_project(_chain("sm"), FirmwareOptions(), tmp_path / "fw")
    assert not list(project.path.rglob("*.tb"))


@pytest.mark.parametrize("n_classes", [2, 3, 5, 10, 100])
def test_quartus_exp_table_type_holds_the_sum(n_classes: int) -> None:
    """Quartus adds the exponentials up in ``exp_table_t``: it holds ``n`` (every logit
    equal) with the fractional bits of the Vitis type, and stays signed."""
    from hepfpga.firmware.hls_config import softmax_settings
    from hepfpga.quantize.fixed import FixedType

    logits = FixedType.parse("ap_fixed<14,7>")
    vitis = softmax_settings(FirmwareOptions(), n_classes, logits)
    quartus = softmax_settings(FirmwareOptions(backend="Quartus"), n_classes, logits)
    exp_t = FixedType.parse(quartus["exp_table_t"])
    assert exp_t.signed and exp_t.max_value >= n_classes
    assert exp_t.fractional == FixedType.parse(vitis["exp_table_t"]).fractional


def test_softmaxes_needing_different_tables_are_refused(tmp_path: Path) -> None:
    """Two softmax layers with different input types cannot share the project's one set of
    tables on Quartus: refused naming both, nothing written."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    from hepfpga.firmware.project import write_project

    tf.keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="inq")(x)
    wide = quantized_bits(8, 2, alpha=1)
    narrow = quantized_bits(4, 0, alpha=1)
    a = QDense(3, kernel_quantizer=wide, bias_quantizer=wide, name="da")(h)
    b = QDense(3, kernel_quantizer=narrow, bias_quantizer=narrow, name="db")(h)
    model = keras.Model(
        x,
        [
            keras.layers.Activation("softmax", name="sa")(a),
            keras.layers.Activation("softmax", name="sb")(b),
        ],
    )
    with pytest.raises(ConversionError, match=r"one set of softmax tables.*'sa'.*'sb'"):
        write_project(model, FirmwareOptions(backend="Quartus"), tmp_path / "fw")
    assert not (tmp_path / "fw").exists()


@pytest.mark.slow
def test_quartus_softmax_outputs_follow_keras(tmp_path: Path) -> None:
    """Compiled (one g++ build): the outputs of the softmax 'sm' are judged by the bound
    derived from the Quartus template and its ``ac_fixed<16,8>`` tables (0.0203 here) and meet
    it (measured 0.014; before the tables were written for the layer's own types and the sum
    had room in ``exp_table_t``: off by up to 0.99, the probabilities summing to about 0.02),
    and the logits stay bit-exact: verify passes."""
    from hepfpga.firmware import verify_model

    model = _chain("sm")
    x = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32)
    report = verify_model(model, x, FirmwareOptions(backend="Quartus"), cache=False)
    assert report.outputs.logits_bit_exact
    assert "within its derived bound (Quartus softmax over 3" in report.requirement
    assert 0.0 < report.outputs.probs_max_abs_diff <= 0.0203, report.outputs
    assert report.passed, report.requirement


@pytest.mark.parametrize("command", ["verify", "emulate", "firmware"])
def test_quartus_io_stream_simulation_is_refused_in_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hls4ml 1.3's Quartus io_stream top function traces every layer from the output stream
    (the C simulation died with a segmentation fault): verify, emulate and firmware --compile
    refuse before building, exit 2, one line naming io_parallel, nothing written."""
    from hepfpga.cli import main
    from hepfpga.quantize.model_io import save_keras_model

    save_keras_model(_chain("sm"), tmp_path / "model.h5")
    np.savez(tmp_path / "x.npz", x=np.zeros((20, 4), dtype=np.float32))
    args = {
        "verify": ["--random", "20"],
        "emulate": [str(tmp_path / "x.npz"), "--out", str(tmp_path / "out.npz")],
        "firmware": ["--compile", "--random", "20", "--out", str(tmp_path / "fw")],
    }[command]
    model = str(tmp_path / "model.h5")
    code = main([command, model, "--backend", "quartus", "--io-type", "io_stream", *args])
    captured = capsys.readouterr()
    assert code == 2, captured
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "io_parallel" in errors[0], captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "fw").exists() and not (tmp_path / "out.npz").exists()
