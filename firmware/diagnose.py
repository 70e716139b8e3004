"""Layer-by-layer comparison of Keras and the C simulation, and the likely cause of a mismatch.

Every layer of a project written by hepfpga is traced in C simulation
(:func:`hepfpga.firmware.csim.predict_traces`). Each traced layer is compared with the output
of the Keras layer of the same name: the fraction of events whose values are all bit-exact,
the largest difference in units of the least significant bit (LSB) of that layer's hls4ml
result type, and the range of the Keras values against the type's range.

The first layer that should agree exactly but does not (table activations such as softmax and
sigmoid are approximate by design and never "first"; when it reads such a table that differs,
the table is named instead, see ``table_activation``) is diagnosed by :func:`diagnose` from
the values, the types and the layer kind, in this order:

``input_grid``
    the layer's input already differs because the firmware input type does not reproduce the
    model's input quantizer (or, for a model without one, the data are not on its grid);
``overflow``
    Keras values outside the range of the layer's result type: too few integer bits (the
    accumulator or result is too narrow);
``truncation_before_rounding`` / ``truncation``
    Keras values finer than the type's LSB: the exact sum is cut to too few fractional bits
    (``AP_TRN``), and if the next layer is a rounding quantizer the error shows there too;
``activation_mode``
    a quantized activation whose type rounds or saturates differently from its QKeras
    quantizer (e.g. ``AP_TRN`` where QKeras rounds half to even, ``AP_WRAP`` for clipping);
``float_batchnorm``
    a batch normalization, computed in float32 by Keras and exactly in firmware;
``sign_at_zero``
    a binary/ternary activation that maps an exact threshold value differently;
``table_activation``
    a table-based activation (softmax, sigmoid, tanh): the table itself, also when the first
    exact layer that differs is the one after it (which inherits the table's difference);
``unknown``
    none of the above: the message gives the numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hepfpga.firmware.layers import handler_for
from hepfpga.firmware.layers._base import traced_name
from hepfpga.firmware.layers.activation import is_table
from hepfpga.firmware.layers.graph import SPLIT_OUTPUT_SUFFIXES, model_graph
from hepfpga.firmware.precision import exact_layer
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation, from_quantizer

__all__ = ["CAUSES", "Diagnosis", "LayerComparison", "compare_layers", "diagnose", "hls_type"]

#: the causes :func:`diagnose` can name
CAUSES = (
    "input_grid",
    "overflow",
    "truncation_before_rounding",
    "truncation",
    "activation_mode",
    "float_batchnorm",
    "sign_at_zero",
    "table_activation",
    "unknown",
)

_ROUNDING_QUANTIZERS = ("quantized_relu", "quantized_bits")


@dataclass(frozen=True)
class LayerComparison:
    """Agreement of one layer's C simulation with Keras over the events."""

    name: str
    class_name: str
    #: the layer's hls4ml result type
    hls_type: str
    fraction_bit_exact: float
    max_abs_diff: float
    #: ``max_abs_diff`` in LSBs of ``hls_type``
    max_diff_lsb: float
    reference_min: float
    reference_max: float
    type_min: float
    type_max: float
    #: whether this layer is meant to be bit-exact (False: tables, float models)
    exact_expected: bool

    @property
    def bit_exact(self) -> bool:
        return self.fraction_bit_exact == 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Diagnosis:
    """The first layer where firmware and Keras part, and the likely cause in words."""

    layer: str
    #: one of :data:`CAUSES`
    cause: str
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"first diverging layer '{self.layer}' ({self.cause}): {self.explanation}"


def hls_type(hls_layer: Any) -> FixedType | None:
    """The :class:`FixedType` of an hls4ml layer's result (None for non-fixed types)."""
    precision = hls_layer.get_output_variable().type.precision
    width = getattr(precision, "width", None)
    integer = getattr(precision, "integer", None)
    if width is None or integer is None:
        return None
    rounding = getattr(precision, "rounding_mode", None)
    saturation = getattr(precision, "saturation_mode", None)
    return FixedType(
        int(width),
        int(integer),
        bool(getattr(precision, "signed", True)),
        Rounding[rounding.name] if rounding is not None else Rounding.TRN,
        Saturation[saturation.name] if saturation is not None else Saturation.WRAP,
    )


def _activation(layer: Any) -> str:
    activation = layer.get_config().get("activation")
    if isinstance(activation, dict):
        return str(activation.get("class_name"))
    text = str(activation)
    return text.split("(")[0]


def _is_table_layer(layer: Any) -> bool:
    return is_table(layer)


def _is_batchnorm(layer: Any) -> bool:
    return type(layer).__name__ in ("BatchNormalization", "QBatchNormalization")


def compare_layers(
    keras_model: Any,
    hls_model: Any,
    references: dict[str, np.ndarray],
    traces: dict[str, np.ndarray],
    *,
    quantized: bool,
) -> list[LayerComparison]:
    """One :class:`LayerComparison` per traced layer that has a Keras twin, in model order."""
    hls_layers = {layer.name: layer for layer in hls_model.get_layers()}
    for name in list(hls_layers):  # the part of a split layer that writes its output
        for suffix in SPLIT_OUTPUT_SUFFIXES:
            if name.endswith(suffix):
                hls_layers.setdefault(name[: -len(suffix)], hls_layers[name])
    out = []
    for layer in keras_model.layers:
        name = layer.name
        if name not in traces or name not in references:
            continue
        ref = references[name]
        got = traces[name]
        fixed = hls_type(hls_layers[traced_name(layer)])
        diff = np.abs(ref - got)
        max_diff = float(diff.max()) if diff.size else 0.0
        out.append(
            LayerComparison(
                name=name,
                class_name=type(layer).__name__,
                hls_type=fixed.to_hls() if fixed is not None else "?",
                fraction_bit_exact=float(np.mean(np.all(ref == got, axis=1))),
                max_abs_diff=max_diff,
                max_diff_lsb=max_diff / fixed.lsb if fixed is not None else float("nan"),
                reference_min=float(ref.min()),
                reference_max=float(ref.max()),
                type_min=fixed.min_value if fixed is not None else float("nan"),
                type_max=fixed.max_value if fixed is not None else float("nan"),
                # what each layer handler promises (tables and batch normalization are not
                # bit-exact by design, see hepfpga.firmware.layers)
                exact_expected=exact_layer(layer, quantized),
            )
        )
    return out


def _inbound(model: Any, layer: Any) -> Any:
    """The (first) layer feeding ``layer`` in ``model``'s graph, or None for an input."""
    for node in model_graph(model):
        if node.name == layer.name:
            return model.get_layer(node.inputs[0]) if node.inputs else None
    return None


def _consumer(model: Any, layer: Any) -> Any:
    for node in model_graph(model):
        if node.inputs and node.inputs[0] == layer.name:
            return node.layer
    return None


def _differing_table_before(
    model: Any, layer: Any, layers: list[LayerComparison]
) -> LayerComparison | None:
    """The table activation (softmax, sigmoid, tanh... tables) feeding ``layer`` whose traced
    output differs from Keras, if any: ``layer`` then inherits its difference."""
    compared = {comparison.name: comparison for comparison in layers}
    for node in model_graph(model):
        if node.name != layer.name:
            continue
        for name in node.inputs:
            comparison = compared.get(name)
            if (
                comparison is not None
                and not comparison.bit_exact
                and _is_table_layer(model.get_layer(name))
            ):
                return comparison
    return None


def _pct(fraction: float) -> str:
    return f"{fraction:.1%}"


def diagnose(
    keras_model: Any,
    layers: list[LayerComparison],
    references: dict[str, np.ndarray],
    traces: dict[str, np.ndarray],
    *,
    x: np.ndarray,
    input_type: FixedType | None,
    tolerance: float | None = None,
) -> Diagnosis | None:
    """The first diverging layer and its likely cause; None when every layer agrees.

    A layer diverges when it is meant to be exact and is not, or (``tolerance`` given, float
    models) when its values differ by more than ``tolerance``. Layers after one that is never
    bit-exact by design (``LayerHandler.bound``: recurrent gates from tables) inherit its
    difference, so no later layer is named as the cause.
    """
    first = None
    for comparison in layers:
        if comparison.exact_expected and not comparison.bit_exact:
            first = comparison
            break
        if (
            tolerance is not None
            and not comparison.exact_expected
            and comparison.max_abs_diff > tolerance
            and comparison.class_name != "Activation"
        ):
            first = comparison
            break
        # what follows a layer never bit-exact by design inherits its difference
        if (
            not comparison.bit_exact
            and handler_for(keras_model.get_layer(comparison.name)).bound is not None
        ):
            break
    if first is None:
        return None
    layer = keras_model.get_layer(first.name)
    kind = type(layer).__name__
    fixed = FixedType.parse(first.hls_type) if first.hls_type != "?" else None
    ref = references[first.name]
    got = traces[first.name]
    wrong = ~np.all(ref == got, axis=1)
    share = f"{_pct(float(np.mean(wrong)))} of events differ, by up to {first.max_diff_lsb:.3g} LSB"

    table = _differing_table_before(keras_model, layer, layers)
    if table is not None:
        return Diagnosis(
            table.name,
            "table_activation",
            f"{_activation(keras_model.get_layer(table.name))} is computed from lookup tables "
            "in firmware and approximates Keras by design "
            f"({_pct(1 - table.fraction_bit_exact)} of events differ, by up to "
            f"{table.max_abs_diff:.3g}); '{first.name}' after it is the first layer meant to be "
            f"exact that differs ({share}): it inherits the table's difference, its own "
            "arithmetic is not the cause",
        )

    # the input of the layer: was it already different?
    source = _inbound(keras_model, layer)
    if source is not None and source.name not in traces:
        source_ref = references.get(source.name)
        if source_ref is not None and input_type is not None:
            firmware_input = input_type.quantize(x.reshape(len(x), -1))
            if source_ref.shape == firmware_input.shape and not np.array_equal(
                source_ref, firmware_input
            ):
                differ = float(np.mean(~np.all(source_ref == firmware_input, axis=1)))
                quantized_input = type(source).__name__ == "QActivation"
                what = (
                    f"the model's input quantizer '{source.name}' and the firmware input type "
                    f"{input_type.to_hls()} disagree"
                    if quantized_input
                    else f"the data are not on the grid of the firmware input type "
                    f"{input_type.to_hls()} (lsb {input_type.lsb:g}, range "
                    f"[{input_type.min_value:g}, {input_type.max_value:g}])"
                )
                return Diagnosis(
                    first.name,
                    "input_grid",
                    f"the input is not on the input grid: {what} on {_pct(differ)} of events; "
                    "derive the input type from a QActivation(quantized_bits) after the input or "
                    "set firmware.input_type to match the data",
                )

    if _is_table_layer(layer):
        return Diagnosis(
            first.name,
            "table_activation",
            f"{_activation(layer)} is computed from lookup tables in firmware and approximates "
            f"Keras by design; {share}",
        )
    if fixed is not None and (
        first.reference_max > fixed.max_value or first.reference_min < fixed.min_value
    ):
        return Diagnosis(
            first.name,
            "overflow",
            f"Keras values reach [{first.reference_min:.6g}, {first.reference_max:.6g}], beyond "
            f"the range [{fixed.min_value:g}, {fixed.max_value:g}] of its type {fixed.to_hls()}: "
            f"the accumulator/result is too narrow (too few integer bits); {share}",
        )
    if _is_batchnorm(layer) or (source is not None and _is_batchnorm(source)):
        batchnorm = layer.name if _is_batchnorm(layer) else source.name
        return Diagnosis(
            first.name,
            "float_batchnorm",
            f"Keras computes the batch normalization '{batchnorm}' "
            "in float32 while the firmware computes x * scale + bias exactly; they part where "
            "float32 rounding moves a value across a rounding boundary of this layer; "
            f"{share}",
        )
    if kind == "QActivation":
        quantizer = layer.get_config()["activation"]
        name = _activation(layer)
        if name in ("binary", "ternary", "binary_tanh"):
            return Diagnosis(
                first.name,
                "sign_at_zero",
                f"the {name} activation maps values at its threshold (e.g. exactly 0) "
                f"differently in firmware and QKeras; {share}",
            )
        expected = from_quantizer(quantizer)
        if fixed is not None and fixed != expected:
            return Diagnosis(
                first.name,
                "activation_mode",
                f"its type {fixed.to_hls()} does not match the quantizer {name}, whose twin "
                f"is {expected.to_hls()} (QKeras rounds half to even and saturates); {share}",
            )
    if fixed is not None and not fixed.can_represent(ref):
        consumer = _consumer(keras_model, layer)
        rounding_next = (
            consumer is not None
            and type(consumer).__name__ == "QActivation"
            and _activation(consumer) in _ROUNDING_QUANTIZERS
        )
        trn = fixed.rounding is Rounding.TRN
        if rounding_next and trn:
            return Diagnosis(
                first.name,
                "truncation_before_rounding",
                f"its type {fixed.to_hls()} has {fixed.fractional} fractional bits, fewer than "
                f"the exact Keras values need, and truncates (AP_TRN) before the rounding "
                f"activation '{consumer.name}': the result is truncated where QKeras rounds "
                f"the exact value; widen its fractional bits; {share}",
            )
        return Diagnosis(
            first.name,
            "truncation",
            f"its type {fixed.to_hls()} (lsb {fixed.lsb:g}) is coarser than the exact Keras "
            f"values: too few fractional bits, so results are "
            f"{'truncated' if trn else 'rounded'}; {share}",
        )
    return Diagnosis(
        first.name,
        "unknown",
        f"{share}; the Keras values fit its type {first.hls_type}, and its input agrees",
    )
