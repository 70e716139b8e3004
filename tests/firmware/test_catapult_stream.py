"""The Catapult backend's io_stream Concatenate (:mod:`hepfpga.firmware.catapult_stream`).

hls4ml 1.3's Catapult ``concatenate1d`` writes one output word per input word, the extra one
left in a static channel for the next call: the same events gave other outputs from one
``predict()`` to the next (issue 20). hepfpga writes the Vivado template's packing into the
project; the smallest model that shows it (two Dense branches joined by a Concatenate) must
then give the same outputs on every call, bit-exact against QKeras.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError
from hepfpga.firmware import FirmwareOptions
from hepfpga.firmware.catapult_stream import (
    FIXED_CONCATENATE1D,
    HLS4ML_CONCATENATE1D,
    MERGE_STREAM_HEADER,
    fix_concatenate_stream,
)


def _concatenated_branches() -> Any:
    """x(5) -> input quantizer -> QDense a(4) and QDense b(3) -> Concatenate -> QDense(2)."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits
    from tensorflow import keras

    tf.keras.utils.set_random_seed(4)

    def dense(n: int, name: str) -> Any:
        q = quantized_bits(6, 0, alpha=1)
        return QDense(n, kernel_quantizer=q, bias_quantizer=q, name=name)

    x = keras.Input((5,), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="inq")(x)
    joined = keras.layers.Concatenate(name="concat")([dense(4, "a")(h), dense(3, "b")(h)])
    return keras.Model(x, dense(2, "logits")(joined))


def test_hls4ml_writes_the_template_that_is_corrected() -> None:
    """The installed hls4ml's Catapult header holds the concatenate1d the patch replaces."""
    import hls4ml

    template = (
        Path(hls4ml.__file__).parent / "templates" / "catapult" / "nnet_utils"
    ) / MERGE_STREAM_HEADER.name
    assert HLS4ML_CONCATENATE1D in template.read_text(encoding="utf-8")


def test_patch_replaces_once_and_refuses_another_template(tmp_path: Path) -> None:
    header = tmp_path / MERGE_STREAM_HEADER
    header.parent.mkdir(parents=True)
    fix_concatenate_stream(None, tmp_path)  # no header: nothing to do
    header.write_text(f"namespace nnet {{\n{HLS4ML_CONCATENATE1D}}}\n")
    fix_concatenate_stream(None, tmp_path)
    fixed = header.read_text()
    assert FIXED_CONCATENATE1D in fixed and HLS4ML_CONCATENATE1D not in fixed
    fix_concatenate_stream(None, tmp_path)  # after every write(): unchanged the second time
    assert header.read_text() == fixed
    header.write_text("void concatenate1d(int x) {}\n")
    with pytest.raises(ConversionError, match=r"not hls4ml 1\.3\.0's.*1\.3\.0"):
        fix_concatenate_stream(None, tmp_path)


def test_concatenate_stream_is_repeatable_and_bit_exact(tmp_path: Path) -> None:
    """Two predict() calls on the same events agree and equal QKeras (unpatched: up to 8.8
    apart, 7.2 from QKeras), and verify passes bit-exact at every layer."""
    from hepfpga.firmware import verify_model
    from hepfpga.firmware.csim import predict
    from hepfpga.firmware.project import write_project

    model = _concatenated_branches()
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    options = FirmwareOptions(backend="Catapult", io_type="io_stream")
    project = write_project(model, options, tmp_path / "prj", compile=True)
    assert FIXED_CONCATENATE1D in (project.path / MERGE_STREAM_HEADER).read_text()

    first, second = predict(project, x), predict(project, x)
    assert np.array_equal(first, second)
    assert np.array_equal(first, model.predict(x, verbose=0).astype(np.float64))

    report = verify_model(model, x, options, project=project)
    assert report.passed and report.outputs.logits_bit_exact, report.summary()
    assert {"a", "b", "concat", "logits"} <= {layer.name for layer in report.layers}
    assert all(layer.fraction_bit_exact == 1.0 for layer in report.layers if layer.exact_expected)
