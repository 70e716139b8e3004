"""The Catapult backend's io_parallel templates that compute something else than the layer.

*Hard sigmoid and hard tanh.* hls4ml 1.3's Catapult ``nnet_utils/nnet_activation.h``
computes ``hard_sigmoid`` (what hepfpga writes for QKeras' ``quantized_sigmoid``,
:mod:`hepfpga.firmware.layers.activation`) with a slope of ``0.2`` and a shift of ``0.5``
fixed in the template, both in the *input* type, and the product rounded back to the input
type: the layer's own ``slope`` and ``shift`` (``0.5`` and ``0.5`` for QKeras,
``CONFIG_T::slope`` / ``CONFIG_T::shift`` in ``parameters.h``) are never read. Its
io_parallel ``hard_tanh`` clips a variable it then does not use (``2 * sigmoid - 1`` of the
unclipped value), and its io_stream ``hard_sigmoid`` (``nnet_activation_stream.h``) has the
same fixed slope. On a 6-bit QKeras chain (``quantized_sigmoid(6)`` after a QDense) 97% of
the events differed, by up to 19 LSB (e.g. ``-1.199`` gave ``0.266``, QKeras ``0``).
hls4ml's Vivado and Quartus templates compute ``CONFIG_T::slope * x + CONFIG_T::shift`` at
full precision, clip it to ``[0, 1]`` and convert it to the result type once (bit-exact
against QKeras on the same chain); those bodies are written instead. The io_stream
``hard_tanh`` is already right.

*Depthwise convolution.* The Catapult io_parallel ``depthwise_conv_2d_cl``
(``nnet_sepconv2d.h``, a ``DepthwiseConv2D`` and the depthwise half of a
``SeparableConv2D``) loops over the ``in - filt + 1`` positions of a stride-1 'valid'
convolution whatever the layer's padding and strides: with ``padding='same'`` the input was
read unpadded and the border outputs never written (a QKeras ``QDepthwiseConv2D(3,
padding='same')`` on a 6x6x2 image: every event wrong, by up to 1.4e9 LSB, uninitialised
memory). The loop is written over the output positions, reading input ``(h * stride - pad_top
+ i, w * stride - pad_left + j)`` and skipping the padding (zeros), summing in ``res_T`` as
before (hepfpga types the depthwise result as the exact sum).

:func:`fix_templates` writes these into the Catapult project's copies of the headers after
every ``write()`` (part of the Catapult backend's ``patch_project``,
:mod:`hepfpga.firmware.backends`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hepfpga.errors import ConversionError

__all__ = ["fix_templates", "replace_template"]

_NNET = Path("firmware") / "nnet_utils"

_PARALLEL_SIGMOID = (
    "template <class data_T, class res_T, typename CONFIG_T>\n"
    "void hard_sigmoid(data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in]) {\n"
    "    //#pragma HLS PIPELINE\n\n"
)
_PARALLEL_TANH = (
    "template <class data_T, class res_T, typename CONFIG_T>\n"
    "void hard_tanh(data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in]) {\n"
    "    //#pragma HLS PIPELINE\n\n"
)
_STREAM_SIGMOID = (
    "template <class data_T, class res_T, typename CONFIG_T> void hard_sigmoid(ac_channel<data_T>"
    " &data, ac_channel<res_T> &res) {\n"
)

#: (header, hls4ml 1.3's text, the corrected text) for each function (module docstring)
REPLACEMENTS: tuple[tuple[Path, str, str], ...] = (
    (
        _NNET / "nnet_activation.h",
        _PARALLEL_SIGMOID
        + """\
    data_T datareg;
    data_T slope = (data_T)0.2;
    data_T shift = (data_T)0.5;
    for (int ii = 0; ii < CONFIG_T::n_in; ii++) {
        datareg = slope * data[ii] + shift;
        if (datareg > 1)
            datareg = 1;
        else if (datareg < 0)
            datareg = 0;
        res[ii] = datareg;
    }
}
""",
        _PARALLEL_SIGMOID
        + """\
    for (int ii = 0; ii < CONFIG_T::n_in; ii++) {
        auto datareg = CONFIG_T::slope * data[ii] + CONFIG_T::shift;
        if (datareg > 1)
            datareg = 1;
        else if (datareg < 0)
            datareg = 0;
        res[ii] = datareg;
    }
}
""",
    ),
    (
        _NNET / "nnet_activation.h",
        _PARALLEL_TANH
        + """\
    data_T datareg;
    data_T slope = (data_T)0.2;
    data_T shift = (data_T)0.5;
    for (int ii = 0; ii < CONFIG_T::n_in; ii++) {
        auto sigmoid = CONFIG_T::slope * data[ii] + CONFIG_T::shift;
        if (sigmoid > 1)
            datareg = 1;
        else if (sigmoid < 0)
            datareg = 0;
        res[ii] = 2 * sigmoid - 1;
    }
}
""",
        _PARALLEL_TANH
        + """\
    for (int ii = 0; ii < CONFIG_T::n_in; ii++) {
        auto sigmoid = CONFIG_T::slope * data[ii] + CONFIG_T::shift;
        if (sigmoid > 1)
            sigmoid = 1;
        else if (sigmoid < 0)
            sigmoid = 0;
        res[ii] = 2 * sigmoid - 1;
    }
}
""",
    ),
    (
        _NNET / "nnet_activation_stream.h",
        _STREAM_SIGMOID
        + """\
    typename data_T::value_type slope = (typename data_T::value_type)0.2;
    typename data_T::value_type shift = (typename data_T::value_type)0.5;
""",
        _STREAM_SIGMOID,
    ),
    (
        _NNET / "nnet_activation_stream.h",
        """\
            typename data_T::value_type datareg = slope * in_data[j] + shift;
""",
        """\
            auto datareg = CONFIG_T::slope * in_data[j] + CONFIG_T::shift;
""",
    ),
    (
        _NNET / "nnet_sepconv2d.h",
        """\
    for (int h = 0; h < in_height - filt_height + 1; h++) {
        //#pragma HLS PIPELINE II=CONFIG_T::reuse_factor rewind
        for (int w = 0; w < in_width - filt_width + 1; w++) {
            //#pragma HLS UNROLL
            for (int c = 0; c < n_chan; c++) {
                //#pragma HLS UNROLL
                res_T sum = depthwise_biases[c];

                // Apply the filter
                for (int i = 0; i < filt_height; i++) {
                    //#pragma HLS UNROLL
                    for (int j = 0; j < filt_width; j++) {
                        //#pragma HLS UNROLL
                        int data_idx = (h + i) * in_width * n_chan + (w + j) * n_chan + c;
""",
        """\
    for (int h = 0; h < out_height; h++) {
        //#pragma HLS PIPELINE II=CONFIG_T::reuse_factor rewind
        for (int w = 0; w < out_width; w++) {
            //#pragma HLS UNROLL
            for (int c = 0; c < n_chan; c++) {
                //#pragma HLS UNROLL
                res_T sum = depthwise_biases[c];

                // Apply the filter
                for (int i = 0; i < filt_height; i++) {
                    //#pragma HLS UNROLL
                    for (int j = 0; j < filt_width; j++) {
                        //#pragma HLS UNROLL
                        int in_h = h * (int)CONFIG_T::stride_height + i - (int)CONFIG_T::pad_top;
                        int in_w = w * (int)CONFIG_T::stride_width + j - (int)CONFIG_T::pad_left;
                        if (in_h < 0 || in_h >= in_height || in_w < 0 || in_w >= in_width)
                            continue; // padding: zeros
                        int data_idx = in_h * in_width * n_chan + in_w * n_chan + c;
""",
    ),
)


def replace_template(
    header: Path, original: str, fixed: str, owner: str, *, anchor: str | None = None
) -> None:
    """Replace hls4ml 1.3's text ``original`` by ``fixed`` in the project's ``header``;
    nothing when the header is absent, already fixed, or (with ``anchor``) does not hold the
    function at all. ``owner`` names the hepfpga module that corrects it, for the error.

    Raises :class:`~hepfpga.errors.ConversionError` when the header holds neither text
    (another hls4ml)."""
    if not header.is_file():
        return
    text = header.read_text(encoding="utf-8")
    if original in text:
        header.write_text(text.replace(original, fixed, 1), encoding="utf-8")
    elif fixed not in text and (anchor is None or anchor in text):
        raise ConversionError(
            f"{header} holds a template that is not hls4ml 1.3.0's, which hepfpga corrects "
            f"for the Catapult backend ({owner}); use the hls4ml version hepfpga pins (1.3.0)"
        )


def fix_templates(hls_model: Any, folder: Path) -> None:
    """Write the corrected ``hard_sigmoid``, ``hard_tanh`` and ``depthwise_conv_2d_cl`` into
    the Catapult project ``folder`` (see the module docstring; :func:`replace_template` for
    each). ``hls_model`` is not read: the headers are the same for every model."""
    for relative, original, fixed in REPLACEMENTS:
        replace_template(Path(folder) / relative, original, fixed, __name__)
