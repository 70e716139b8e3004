"""Merge layers: element-wise Add, Subtract, Multiply, Average, Maximum, Minimum; Concatenate;
Dot. hls4ml merges two inputs at a time (Keras' three-input Add becomes a chain is *not*
done by hls4ml 1.3: such layers are refused).

``ap_fixed`` arithmetic on two values is exact before the result is converted to ``res_T``:

* Add/Subtract: the exact sum type (one more integer bit than the wider input);
* Multiply: the exact product type (widths and integer bits add);
* Average: ``(a + b) * 0.5``: the sum type with one more fractional bit;
* Maximum/Minimum, Concatenate: the union of both input types (each value kept exactly);
* Dot (of two vectors): the exact sum of ``n`` products.

So in QKeras models merges are exact. Float models: the profiled range for the arithmetic
ones (approximate), the union of the input types for the selecting ones (exact).
"""

from __future__ import annotations

from typing import Any

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_engine.steps import MergeStep
from hepfpga.firmware.layers._base import (
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    add_type,
    product_type,
    register,
    subtract_type,
    sum_type,
    union_type,
)
from hepfpga.firmware.options import IOType
from hepfpga.quantize.fixed import FixedType


def _exact_type(layer: Any, inputs: list[FixedType]) -> tuple[FixedType, FixedType | None]:
    kind = type(layer).__name__
    a, b = inputs
    if kind == "Add":
        return add_type(a, b), None
    if kind == "Subtract":
        return subtract_type(a, b), None
    if kind == "Multiply":
        return product_type(a, b), None
    if kind == "Average":
        total = add_type(a, b)
        return FixedType(total.width + 1, total.integer, total.signed), None
    if kind in ("Maximum", "Minimum", "Concatenate"):
        return union_type([a, b]), None
    # Dot of two vectors of n values
    n = int(layer.input_shape[0][-1])
    exact = sum_type(a, b, None, n)
    return exact, exact


def _merge(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    kind = type(layer).__name__
    if len(inputs) != 2:
        raise ConversionError(
            f"layer '{layer.name}' ({kind}) merges {len(inputs)} inputs; hls4ml 1.3 merges two: "
            f"chain two-input {kind} layers instead"
        )
    if kind == "Dot":
        shapes = layer.input_shape
        if any(len(shape) != 2 for shape in shapes):
            raise ConversionError(
                f"layer '{layer.name}' (Dot) of inputs {shapes}; hls4ml 1.3 computes the dot "
                "product of two flat vectors only"
            )
        if ctx.options.io_type is IOType.STREAM:
            # its io_stream graph calls the io_parallel dot1d on streams: g++ fails
            raise ConversionError(
                f"layer '{layer.name}' (Dot): hls4ml 1.3 has no io_stream Dot (the C++ it "
                "writes does not compile); use --io-type io_parallel"
            )
    exact, accum = _exact_type(layer, inputs)
    if ctx.quantized or kind in ("Maximum", "Minimum", "Concatenate"):
        return LayerPrecision(layer.name, kind, exact, accum=accum, source="exact")
    return LayerPrecision(
        layer.name,
        kind,
        ctx.profiled(layer.name),
        accum=accum,
        source="profiled",
        profiled=ctx.profile(layer.name),
    )


MERGE_CLASSES = (
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dot",
)

register(
    LayerHandler(
        family="merge",
        classes=MERGE_CLASSES,
        derive=_merge,
        exactness="two inputs; exact result types (sum, product, average, union, dot): "
        "bit-exact in QKeras models; float models: profiled (Concatenate/Maximum/Minimum exact)",
        emulation=Emulation(
            "C simulation (merge layers are not in the engine)",
            steps={"Merge": MergeStep, "Concatenate": MergeStep, "Dot": MergeStep},
        ),
        qkeras=QKerasMapping(
            ("Concatenate",),
            "QAT maps Concatenate (exact: the union of its inputs' types); the arithmetic "
            "merges have no QAT counterpart yet",
        ),
    )
)
