"""What hls4ml 1.3 writes wrongly on the ac_fixed backends (Quartus, Catapult) and hepfpga
cannot correct, refused before any build in one line that names what works instead (no g++;
the compiled families are in ``test_byo_ac_backends.py``), and the corrections of Catapult's
templates that hepfpga writes into its projects (:mod:`hepfpga.firmware.catapult_templates`).

* sigmoid, tanh, softsign, softplus, elu, selu: their bound is derived from the Vivado
  templates' tables; Quartus writes half-range tables mirrored for x < 0, Catapult computes
  them with ac_math's piecewise-linear functions.
* Cropping1D/2D: neither backend has a template; hls4ml writes no call for the layer.
* Depthwise and separable convolutions: no Quartus template; Catapult's one-dimensional ones
  in io_parallel include a header it does not ship.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hepfpga.errors import ConversionError
from hepfpga.firmware import FirmwareOptions
from hepfpga.firmware.catapult_templates import REPLACEMENTS, fix_templates


def _options(backend: str, io_type: str) -> FirmwareOptions:
    softmax = {} if backend == "Quartus" else {"softmax": "logits"}
    return FirmwareOptions(backend=backend, io_type=io_type, **softmax)  # type: ignore[arg-type]


def _table_model(activation: str) -> Any:
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((4,), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="x_q")(x)
    h = QDense(4, kernel_quantizer=q, bias_quantizer=q, name="dense")(h)
    h = keras.layers.Activation(activation, name=activation)(h)
    return keras.Model(x, QDense(2, kernel_quantizer=q, bias_quantizer=q, name="logits")(h))


def _plan(model: Any, backend: str, io_type: str = "io_parallel") -> None:
    from hepfpga.firmware.hls_config import plan_conversion

    plan_conversion(model, _options(backend, io_type))


@pytest.mark.parametrize("backend", ["Quartus", "Catapult"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softsign", "softplus", "elu", "selu"])
def test_table_activations_are_refused(backend: str, activation: str) -> None:
    model = _table_model(activation)
    with pytest.raises(ConversionError) as refused:
        _plan(model, backend)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"layer '{activation}' (Activation) on {backend}: ")
    assert "tables its bound is derived from" in message
    assert message.endswith(
        "use --backend Vitis, or QKeras quantized_tanh / quantized_sigmoid (exact on every backend)"
    )
    _plan(model, "Vivado")  # planned as before on the Vivado templates


@pytest.mark.parametrize("backend", ["Quartus", "Catapult"])
def test_cropping_is_refused(backend: str, byo_models: Any) -> None:
    with pytest.raises(
        ConversionError,
        match=rf"^layer 'crop' \(Cropping1D\): hls4ml 1.3 implements Cropping1D in the Vitis, "
        rf"Vivado backends only, not {backend}; use --backend Vitis, or crop the events "
        r"before the model$",
    ):
        _plan(byo_models.qconv1d_reshaping(), backend)


def _separable_1d() -> Any:
    import tensorflow as tf
    from qkeras import QActivation, QSeparableConv1D, quantized_bits
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((6, 2), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="x_q")(x)
    sep = QSeparableConv1D(
        2, 3, depthwise_quantizer=q, pointwise_quantizer=q, bias_quantizer=q, name="sep"
    )
    return keras.Model(x, sep(h))


def test_depthwise_is_refused_where_hls4ml_has_no_template(byo_models: Any) -> None:
    with pytest.raises(
        ConversionError,
        match=r"^layer 'dw' \(QDepthwiseConv2D\): hls4ml 1.3 implements QDepthwiseConv2D in "
        r"the Vitis, Vivado, Catapult backends only, not Quartus; use --backend Vitis, or a "
        r"QConv2D \(every backend\)$",
    ):
        _plan(byo_models.qconv2d_families(), "Quartus")
    with pytest.raises(
        ConversionError,
        match=r"^layer 'sep' \(QSeparableConv1D\): hls4ml 1.3 implements QSeparableConv1D in "
        r"the Vitis, Vivado, Catapult \(io_stream\) backends only, not Catapult io_parallel; "
        r"use --backend Vitis, or --io-type io_stream with Catapult",
    ):
        _plan(_separable_1d(), "Catapult")
    _plan(_separable_1d(), "Catapult", "io_stream")
    _plan(byo_models.qconv2d_families(), "Catapult")


def test_hls4ml_writes_the_catapult_templates_that_are_corrected() -> None:
    import hls4ml

    folder = Path(hls4ml.__file__).parent / "templates" / "catapult" / "nnet_utils"
    for header, original, fixed in REPLACEMENTS:
        text = (folder / header.name).read_text(encoding="utf-8")
        assert text.count(original) == 1, header
        assert "0.2;" not in fixed  # the slope the template fixed instead of the layer's


def test_catapult_templates_patch_once_and_refuse_another_template(tmp_path: Path) -> None:
    import shutil

    import hls4ml

    fix_templates(None, tmp_path)  # no headers: nothing to do
    source = Path(hls4ml.__file__).parent / "templates" / "catapult" / "nnet_utils"
    for header in {header for header, _, _ in REPLACEMENTS}:
        (tmp_path / header).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / header.name, tmp_path / header)
    fix_templates(None, tmp_path)
    patched = {header: (tmp_path / header).read_text() for header, _, _ in REPLACEMENTS}
    fix_templates(None, tmp_path)  # idempotent
    for header, original, fixed in REPLACEMENTS:
        text = (tmp_path / header).read_text()
        assert text == patched[header] and fixed in text and original not in text
    depthwise = tmp_path / REPLACEMENTS[-1][0]
    depthwise.write_text(REPLACEMENTS[-1][2].replace("pad_top", "pad_bottom"))
    with pytest.raises(ConversionError, match=r"not hls4ml 1\.3\.0's"):
        fix_templates(None, tmp_path)


@pytest.mark.parametrize("backend", ["Quartus", "Catapult"])
def test_global_average_pooling_1d_is_refused(backend: str, byo_models: Any) -> None:
    with pytest.raises(
        ConversionError,
        match=rf"^layer 'global_avg' \(GlobalAveragePooling1D\) on {backend}: hls4ml 1.3's "
        r"Quartus and Catapult global average pooling is not the average QKeras computes",
    ):
        _plan(byo_models.qconv1d_reshaping(crop=False), backend)
