"""The io_parallel convolutions' ``fill_buffer`` as a table (:mod:`hepfpga.firmware.fill_buffer`).

hls4ml 1.3 spells out each io_parallel convolution's im2col as one C++ statement per buffer
element (``nnet_code_gen.h``), which g++ compiles super-linearly slowly (issue 20: the
three-layer Conv1D tagger of hls4ml's example models). hepfpga keeps those statements for
synthesis (``#ifdef __SYNTHESIS__``) and gives the C simulation a table of the same
statements. Before/after: the patched and the unpatched C simulation of the same project give
bit for bit the same outputs and traced layers, and ``verify`` stays bit-exact.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions
from hepfpga.firmware.fill_buffer import (
    CODE_GEN_HEADER,
    UNASSIGNED,
    ZERO,
    parse_fill_buffer,
    tabulate_fill_buffers,
)

#: one generated class as hls4ml 1.3 writes it (2 partitions of one pixel, 3 elements)
GENERATED = """\
template<class data_T, typename CONFIG_T>
class fill_buffer_2 : public nnet::FillConv1DBuffer<data_T, CONFIG_T> {
    public:
    static void fill_buffer(
        data_T data[CONFIG_T::in_width * CONFIG_T::n_chan],
        data_T buffer[CONFIG_T::n_pixels][CONFIG_T::filt_width * CONFIG_T::n_chan],
        const unsigned partition
    ) {
        if (partition ==   0) {
            buffer[0][0] =          0; buffer[0][1] =    data[0]; buffer[0][2] =    data[1];

        }
        if (partition ==   1) {
            buffer[0][0] =    data[0]; buffer[0][1] =    data[1]; buffer[0][2] =          0;

        }
    }
};
"""

_PATCHED = re.compile(
    r"// hepfpga\.firmware\.fill_buffer:[^\n]*\n#ifdef __SYNTHESIS__\n(.*?)#else\n.*?#endif\n",
    re.DOTALL,
)


def _unpatched(text: str) -> str:
    """The header as hls4ml wrote it: the generated classes without the tables."""
    return _PATCHED.sub(r"\1", text)


def test_parse_reads_every_statement() -> None:
    body = GENERATED.split(") {\n", 1)[1].rsplit("\n    }\n};\n", 1)[0]
    table = parse_fill_buffer("fill_buffer_2", body)
    assert table is not None and table.shape == (2, 1, 3)
    assert table.source == (((ZERO, 0, 1),), ((0, 1, ZERO),))
    # a partition that leaves an element alone, then something the generator never writes
    partial = body.replace("buffer[0][2] =          0;", "")
    assert parse_fill_buffer("f", partial).source[1] == ((0, 1, UNASSIGNED),)  # type: ignore[union-attr]
    assert parse_fill_buffer("f", body.replace("data[1];", "data[1] + 1;")) is None
    assert parse_fill_buffer("f", body + body) is None  # a partition twice


def test_patch_keeps_the_generated_code_for_synthesis(tmp_path: Path) -> None:
    header = tmp_path / CODE_GEN_HEADER
    header.parent.mkdir(parents=True)
    tabulate_fill_buffers(None, tmp_path / "absent")  # no header: nothing to do
    original = f"namespace nnet {{\n{GENERATED}}}\n"
    header.write_text(original)
    tabulate_fill_buffers(None, tmp_path)
    patched = header.read_text()
    assert f"#ifdef __SYNTHESIS__\n{GENERATED}#else\n" in patched
    assert "static const int source[2][1][3] = {\n-1,0,1,\n0,1,-1,\n" in patched
    assert _unpatched(patched) == original
    tabulate_fill_buffers(None, tmp_path)  # after every write(): unchanged the second time
    assert header.read_text() == patched


def _conv1d() -> Any:
    """(20, 3) -> QConv1D(8, 5, 'same') relu -> QConv1D(4, 3, 'valid', strides 2) -> QDense(3)."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(7)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((20, 3), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="inq")(x)
    h = QConv1D(8, 5, padding="same", kernel_quantizer=q, bias_quantizer=q, name="c1")(h)
    h = QActivation(quantized_relu(6, 2), name="r1")(h)
    h = QConv1D(4, 3, strides=2, kernel_quantizer=q, bias_quantizer=q, name="c2")(h)
    h = keras.layers.Flatten(name="flat")(h)
    return keras.Model(x, QDense(3, kernel_quantizer=q, bias_quantizer=q, name="logits")(h))


def _conv2d() -> Any:
    """(6, 6, 2) -> QConv2D(4, 3x3, 'same') relu -> QConv2D(3, 3x2, strides (2, 1)) -> QDense(3)."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(8)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((6, 6, 2), name="x")
    h = QActivation(quantized_bits(8, 3, alpha=1), name="inq")(x)
    h = QConv2D(4, 3, padding="same", kernel_quantizer=q, bias_quantizer=q, name="c1")(h)
    h = QActivation(quantized_relu(6, 2), name="r1")(h)
    h = QConv2D(3, (3, 2), strides=(2, 1), kernel_quantizer=q, bias_quantizer=q, name="c2")(h)
    h = keras.layers.Flatten(name="flat")(h)
    return keras.Model(x, QDense(3, kernel_quantizer=q, bias_quantizer=q, name="logits")(h))


def test_write_project_patches_the_convolutions(tmp_path: Path) -> None:
    from hepfpga.firmware.project import write_project

    project = write_project(_conv1d(), FirmwareOptions(io_type="io_parallel"), tmp_path / "p")
    text = (project.path / CODE_GEN_HEADER).read_text()
    assert text.count("#ifdef __SYNTHESIS__") == 2 == text.count("static const int source[")
    assert "buffer[0][0] =          0;" in text  # the generated statements, for synthesis
    assert "class fill_buffer_" in _unpatched(text) and "source[" not in _unpatched(text)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "shape"), [(_conv1d, (20, 3)), (_conv2d, (6, 6, 2))], ids=["conv1d", "conv2d"]
)
def test_table_simulates_bit_for_bit_as_the_generated_code(
    tmp_path: Path, make: Any, shape: tuple[int, ...]
) -> None:
    """The same project built with the tables and with hls4ml's statements: identical
    outputs and traced layers on 300 events (and bit-exact against QKeras in verify)."""
    from hepfpga.firmware import verify_model
    from hepfpga.firmware.csim import predict_outputs_and_traces
    from hepfpga.firmware.project import _build_library, _load_library, write_project

    model = make()
    x = np.random.default_rng(0).normal(0, 2, size=(300, *shape)).astype(np.float32)
    options = FirmwareOptions(io_type="io_parallel")
    project = write_project(model, options, tmp_path / "prj", compile=True)
    header = project.path / CODE_GEN_HEADER
    patched = header.read_text()
    assert "#ifdef __SYNTHESIS__" in patched
    (outputs,), traces = predict_outputs_and_traces(project, x)
    report = verify_model(model, x, options, project=project)
    assert report.passed and report.outputs.logits_bit_exact, report.summary()

    header.write_text(_unpatched(patched))
    assert _build_library(project.path) is not None
    _load_library(project)
    (reference,), reference_traces = predict_outputs_and_traces(project, x)
    assert np.array_equal(outputs, reference)
    assert traces.keys() == reference_traces.keys() and {"c1", "c2"} <= traces.keys()
    for name, values in traces.items():
        assert np.array_equal(values, reference_traces[name]), name
