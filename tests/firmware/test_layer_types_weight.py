"""A ``firmware.layer_types`` weight override of a QKeras layer is refused (hls4ml 1.3.0
keeps the kernel quantizer's type whatever it says), naming the path, the value and what is
accepted; the quantizer's own type and the other keys still pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hepfpga.cli import main
from hepfpga.errors import ConfigError
from hepfpga.firmware.hls_config import plan_conversion
from hepfpga.firmware.options import FirmwareOptions


@pytest.fixture(scope="module")
def qmodel() -> Any:
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="inputs")
    h = QActivation(quantized_bits(10, 3, alpha=1), name="input_quant")(x)
    h = QDense(
        3,
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="dense_1",
    )(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))


@pytest.mark.parametrize(
    ("types", "refused"),
    [
        ({"weight": "ap_fixed<4,1>"}, True),
        ({"weight": "ap_fixed<8,2>", "result": "ap_fixed<16,6>"}, True),
        ({"weight": "ap_fixed<6,1>"}, False),  # the quantizer's own type
        ({"result": "ap_fixed<16,6>", "accum": "ap_fixed<16,6>"}, False),
    ],
    ids=["narrower", "wider-with-result", "quantizer-type", "no-weight"],
)
def test_weight_override_of_a_qkeras_layer(qmodel: Any, types: dict, refused: bool) -> None:
    options = FirmwareOptions(layer_types={"dense_1": types})
    if not refused:
        plan = plan_conversion(qmodel, options)
        assert plan.precision["dense_1"].weight is not None
        assert plan.precision["dense_1"].weight.width == 6
        return
    with pytest.raises(ConfigError) as info:
        plan_conversion(qmodel, options)
    assert info.value.path == "firmware.layer_types.dense_1.weight"
    message = str(info.value)
    assert types["weight"] in message and "ap_fixed<6,1" in message
    assert "Accepted: no weight override" in message and "kernel_quantizer" in message


def test_hepfpga_firmware_refuses_it_in_one_line(
    qmodel: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_file = tmp_path / "q.h5"
    qmodel.save(model_file)
    options = tmp_path / "types.yml"
    options.write_text("firmware:\n  layer_types:\n    dense_1:\n      weight: ap_fixed<4,1>\n")
    code = main(
        [
            "-q",
            "firmware",
            str(model_file),
            "--options",
            str(options),
            "--out",
            str(tmp_path / "fw"),
        ]
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 2 and len(lines) == 1, err
    assert "firmware.layer_types.dense_1.weight" in lines[0] and "ap_fixed<4,1>" in lines[0]
    assert not (tmp_path / "fw").exists()
