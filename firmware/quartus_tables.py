"""The Quartus backend's softmax tables, written for the softmax the project really has.

hls4ml 1.3's Quartus writer fills ``activation_tables/exp_table.tb`` and ``invert_table.tb``
(and their ``_latency`` / ``_legacy`` twins) once per project, from the types of the layer
*named* ``softmax`` — of any other name it falls back to ``ap_fixed<16,6>`` for the input
and ``ap_fixed<18,8>`` for ``exp_table_t``. The C++ (``nnet_activation.h``) addresses the exp
table with the top ``log2(TableSize)`` bits of ``x - max`` in the softmax's *own* input
type, and the 1/x table with the top bits of the sum in its own ``exp_table_t``. A softmax
named otherwise, with another input type, reads entries computed for another binary point:
on a 3-class QKeras chain (input ``ap_fixed<14,7>`` after a 6-bit Dense) the outputs were off
by up to 0.99, probabilities summing to about 0.02.

:func:`rewrite_softmax_tables` writes those tables again with hls4ml's own writer, as it
writes them for a layer named ``softmax``, from the project's softmax layer. The tables are
shared by every softmax of the project, so softmax layers with different input types,
``exp_table_t`` or table sizes cannot all be right: refused, naming them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hepfpga.errors import ConversionError

#: the writer's private methods that fill the softmax tables (all read the layer named
#: ``softmax``; see the module docstring)
_SOFTMAX_TABLE_WRITERS = (
    "exp_table",
    "invert_table",
    "exp_table_latency",
    "invert_table_latency",
    "exp_table_legacy",
    "invert_table_legacy",
)


class _AsSoftmax:
    """A softmax layer of the hls4ml graph presented under the name ``softmax`` (what the
    Quartus writer looks the types up by); every other attribute is the layer's own."""

    name = "softmax"

    def __init__(self, layer: Any) -> None:
        self._layer = layer

    def __getattr__(self, key: str) -> Any:
        return getattr(self._layer, key)


class _OnlyLayer:
    """The hls4ml model as the writer's table functions see it: this one layer."""

    def __init__(self, layer: Any) -> None:
        self._layer = layer

    def get_layers(self) -> list[Any]:
        return [self._layer]


def _signature(layer: Any) -> tuple[str, str, int]:
    """What the shared tables depend on: input type, ``exp_table_t`` and table size."""
    exp_t = layer.get_attr("exp_table_t")
    return (
        str(layer.get_input_variable().type.precision),
        str(exp_t.precision if exp_t is not None else None),
        int(layer.get_attr("table_size") or 1024),
    )


def rewrite_softmax_tables(hls_model: Any, folder: Path) -> None:
    """Write the softmax tables of the Quartus project ``folder`` (written by ``hls_model``)
    for its softmax layer's own types (see the module docstring); nothing for a model
    without softmax, or a softmax hls4ml's writer found by name already. The Quartus
    backend's ``patch_project`` (:mod:`hepfpga.firmware.backends`).

    Raises :class:`~hepfpga.errors.ConversionError` for softmax layers whose tables differ
    (one set of tables per project)."""
    softmaxes = [layer for layer in hls_model.get_layers() if layer.class_name == "Softmax"]
    if len({_signature(layer) for layer in softmaxes}) > 1:
        raise _differing(softmaxes)
    if not softmaxes or any(layer.name == "softmax" for layer in softmaxes):
        return
    # deferred: hls4ml loads slowly
    from hls4ml.writer.quartus_writer import QuartusWriter

    writer = QuartusWriter()
    model = _OnlyLayer(_AsSoftmax(softmaxes[0]))
    path = Path(folder) / "firmware" / "nnet_utils" / "activation_tables"
    for table in _SOFTMAX_TABLE_WRITERS:
        getattr(writer, f"_QuartusWriter__write_{table}")(model, str(path))


def _differing(softmaxes: list[Any]) -> ConversionError:
    kinds = "; ".join(
        f"'{layer.name}': input {sig[0]}, exp_table_t {sig[1]}, {sig[2]} entries"
        for layer, sig in ((layer, _signature(layer)) for layer in softmaxes)
    )
    return ConversionError(
        "the Quartus backend writes one set of softmax tables per project, and these softmax "
        f"layers need different ones ({kinds}); give them the same input type and table "
        "settings, or use the Vitis or Vivado backend (a table per layer)"
    )
