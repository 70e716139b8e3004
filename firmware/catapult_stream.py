"""The Catapult backend's io_stream Concatenate, packed as the next layer reads it.

hls4ml 1.3's Catapult ``nnet_utils/nnet_merge_stream.h`` (``concatenate1d``, the template
of a Concatenate of two flat vectors in ``io_stream``) writes one ``res_T`` word per *input*
word, filling each with ``res_T::size`` entries of that input word: for ``a`` and ``b`` of 4
entries (one ``nnet::array<..., 4>`` word each) it writes two ``nnet::array<..., 8>`` words,
the second half of each read past the end of its 4-entry input word, where the next layer
reads one word of ``a`` then ``b``. The extra word stays in the top function's ``static``
``ac_channel`` and is what the next layer reads first on the next call: every output depends
on the event before it, and none is right. On ``test_byo_matrix``'s branched QKeras CNN two
``predict()`` calls on the same 50 events differed from each other by up to 4.7 and from
QKeras by up to 4.9; on a Dense, Dense, Concatenate, Dense MLP (64 events) by 8.8 and 7.2.
g++ ``-fsanitize=address`` stops at the read past the input word (``out_data[j] =
in_data1[j]``, line 362 of the header), a stack-buffer-overflow. hls4ml's Vivado template of
the same function is right: each input's entries go at its offset (``n_elem1_0`` for the
second) in one ``res_T`` word, written once.

:func:`fix_concatenate_stream` writes that packing into the Catapult project's copy of the
header, after every ``write()`` (the Catapult backend's ``patch_project``); afterwards the
same CNN is bit-exact against QKeras at every layer and repeatable from one call to the next.
The two- and three-dimensional concatenations and the other merges are as in the Vivado
templates and are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hepfpga.firmware.catapult_templates import replace_template

__all__ = ["fix_concatenate_stream"]

#: the header holding the template, in a Catapult project folder
MERGE_STREAM_HEADER = Path("firmware") / "nnet_utils" / "nnet_merge_stream.h"

_SIGNATURE = (
    "void concatenate1d(ac_channel<input1_T> &data1, ac_channel<input2_T> &data2, "
    "ac_channel<res_T> &res) {\n"
)

#: hls4ml 1.3's Catapult ``concatenate1d`` (see the module docstring)
HLS4ML_CONCATENATE1D = (
    _SIGNATURE
    + """\
    res_T out_data;
//#pragma HLS DATA_PACK variable=out_data
ConcatLoop1:
    for (int i = 0; i < CONFIG_T::n_elem1_0 / input1_T::size; i++) {
        //#pragma HLS PIPELINE
        input1_T in_data1 = data1.read();
    ConcatPack1:
        for (int j = 0; j < res_T::size; j++) {
            // #pragma HLS UNROLL
            out_data[j] = in_data1[j];
        }
        res.write(out_data);
    }
ConcatLoop2:
    for (int i = 0; i < CONFIG_T::n_elem2_0 / input2_T::size; i++) {
        //#pragma HLS PIPELINE
        input2_T in_data2 = data2.read();
    ConcatPack2:
        for (int j = 0; j < res_T::size; j++) {
            // #pragma HLS UNROLL
            out_data[j] = in_data2[j];
        }
        res.write(out_data);
    }
}
"""
)

#: the packing of hls4ml 1.3's Vivado ``concatenate1d``, on ``ac_channel``
FIXED_CONCATENATE1D = (
    _SIGNATURE
    + """\
    // hepfpga: hls4ml's Vivado packing, one res_T word holding both inputs
    // (hepfpga.firmware.catapult_stream)
    res_T out_data;
//#pragma HLS DATA_PACK variable=out_data
ConcatLoop1:
    for (int i = 0; i < CONFIG_T::n_elem1_0 / input1_T::size; i++) {
        //#pragma HLS PIPELINE
        input1_T in_data1 = data1.read();
    ConcatPack1:
        for (int j = 0; j < input1_T::size; j++) {
            // #pragma HLS UNROLL
            out_data[j + (i * input1_T::size)] = in_data1[j];
        }
    }
ConcatLoop2:
    for (int i = 0; i < CONFIG_T::n_elem2_0 / input2_T::size; i++) {
        //#pragma HLS PIPELINE
        input2_T in_data2 = data2.read();
    ConcatPack2:
        for (int j = 0; j < input2_T::size; j++) {
            // #pragma HLS UNROLL
            out_data[j + (i * input2_T::size) + (CONFIG_T::n_elem1_0)] = in_data2[j];
        }
    }
    res.write(out_data);
}
"""
)


def fix_concatenate_stream(hls_model: Any, folder: Path) -> None:
    """Replace hls4ml 1.3's Catapult ``concatenate1d`` in the project ``folder`` by the
    packing its Vivado template has (see the module docstring; nothing when the header is
    absent, already fixed or without ``concatenate1d``). The Catapult backend's
    ``patch_project`` (:mod:`hepfpga.firmware.backends`); ``hls_model`` is not read: the
    header is the same for every model, and unused in ``io_parallel``.

    Raises :class:`~hepfpga.errors.ConversionError` when the header holds a
    ``concatenate1d`` that is neither hls4ml 1.3's nor the fixed one (another hls4ml)."""
    replace_template(
        Path(folder) / MERGE_STREAM_HEADER,
        HLS4ML_CONCATENATE1D,
        FIXED_CONCATENATE1D,
        __name__,
        anchor="void concatenate1d(",
    )
