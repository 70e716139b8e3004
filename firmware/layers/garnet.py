"""GarNet and GarNetStack (hls4ml.contrib): converted in hls4ml's form, approximate, measured.

**Accepted form** (what hls4ml 1.3's Vivado/Vitis ``nnet_garnet.h`` implements):
``input_format='xn'`` (two inputs: the vertices' features ``(V, F)`` and the vertex count
``(1,)``; the first ``n`` vertices are the present ones), ``simplified=True``,
``output_activation=None``/``'linear'``, ``collapse='mean'``, ``mean_by_nvert=False``, ``V`` a
power of two (the means are right shifts by ``log2(V)``) divisible by the reuse factor,
``io_parallel``, the Vivado or Vitis backend. Float transforms, or quantized ones
(``quantize_transforms=True``). Everything else is refused with the reason (see
:data:`ACCEPTED`).

**Quantized GarNet**: hls4ml reads ``quantize_transforms=True`` as hls4ml's own *ternary*
GarNet and would ternarize the ``quantized_bits`` weights; hepfpga instead gives hls4ml a twin
of the layer (same class name, same computation in Keras, :func:`firmware_twin`) that holds
the QKeras-quantized weights and tells hls4ml to store them as they are.

**Numeric semantics** (``nnet_garnet.h``; ``V`` vertices, ``n`` present): per vertex, the
aggregator distances ``d = S(x)`` are summed in ``ap_fixed<12,4,AP_RND,AP_SAT>`` (width fixed
by hls4ml's template: 8 fractional bits, ``|d| < 8``; each product rounded to nearest, where
hls4ml's template truncates: :func:`round_distances`); the edge
weights ``exp(-d^2)`` come from a table with one entry per distance code, in ``edge_weight_t``;
the products ``x * exp(-d^2)`` are rounded to the *input* type; their sums over the vertices
and the means (right shifts by ``log2 V``) are in ``aggr_t`` / ``edge_weight_aggr_t``. hls4ml
folds the input and output transforms into one kernel (``FLR_kernel @ Fout_kernel``) and
stores every weight with 10 fractional bits (its ``_add_variable``, not configurable). The
collapsed output ``mean_v(Fout(...))`` is accumulated in the result type, without QKeras'
per-vertex output rounding. hepfpga chooses ``edge_weight_t`` (:data:`EDGE_WEIGHT_BITS`
fractional bits), and ``edge_weight_aggr_t`` and ``aggr_t`` wide enough that the sums and
shifts never round or overflow (bounds from the weights and the input type); the result
type has the output quantizer's integer bits and ``log2 V`` more fractional bits (the exact
mean of ``V`` values on its grid) for quantized layers, the profiled range for float ones.

So the firmware is **not bit-exact** (the 8-bit distances, the table, the 10-bit folded
weights, the missing per-vertex output rounding); verification requires the logits within
:data:`QKERAS_BOUND` and reports the measured max |difference| and argmax agreement
(docs/firmware.md has the measured numbers).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.layers._base import (
    RND_SAT,
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    Rewrite,
    covering_type,
    int_bits,
    register,
)
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation
from hepfpga.train.garnet_layers import garnet_classes

__all__ = [
    "ACCEPTED",
    "EDGE_WEIGHT_BITS",
    "QKERAS_BOUND",
    "firmware_twin",
    "round_distances",
    "vertex_count",
]

#: what hepfpga converts, in words (the end of every refusal)
ACCEPTED = (
    "hepfpga converts GarNet/GarNetStack as hls4ml 1.3's Vivado/Vitis templates implement "
    "them: input_format='xn' (inputs [features (V, F), vertex count (1,)]), simplified=True, "
    "output_activation=None, collapse='mean', mean_by_nvert=False, V a power of two, "
    "io_parallel"
)
#: fractional bits of the edge weights exp(-d^2) in [0, 1] (hls4ml's default: 10, truncated)
EDGE_WEIGHT_BITS = 12
#: the logits bound (max |difference|) verification requires of a QKeras model with a GarNet
#: layer instead of bit-exactness. Measured (docs/firmware.md): 0.0017 (GarNet) and 0.006
#: (GarNetStack) on the small random test models, 0.138 on the trained jet GarNet of
#: examples/jet_garnet.yaml (0.384 with hls4ml's truncated distances); the report always
#: gives the measured max |difference| and argmax agreement.
QKERAS_BOUND = 0.5
#: the distance type: width and integer bits fixed by hls4ml's template (``distance_width =
#: 12``, ``distance_nint = 4``), rounded to nearest by hepfpga (:func:`round_distances`)
DISTANCE_TYPE = FixedType(12, 4, True, Rounding.RND, Saturation.SAT)
#: hls4ml 1.3's distance typedef (truncating) in the generated parameters.h
_DISTANCE_TRUNCATED = "AP_TRN, AP_SAT> distance_t;"
#: widest internal sum type chosen here (beyond, the sums are rounded at the lsb)
_MAX_SUM_WIDTH = 64
#: backends whose hls4ml templates implement GarNet
_BACKENDS = ("Vivado", "Vitis")


def _is_stack(layer: Any) -> bool:
    return type(layer).__name__ == "GarNetStack"


def _refuse(layer: Any, what: str) -> ConversionError:
    return ConversionError(f"layer '{layer.name}' ({type(layer).__name__}) {what}; {ACCEPTED}")


def _quantized(layer: Any) -> bool:
    """Whether the layer's transforms are quantized (read from the layer: a twin's config
    says ``quantize_transforms=False`` to hls4ml)."""
    return bool(layer._quantize_transforms)


def _n_vertices(layer: Any) -> int:
    shapes = layer.input_shape
    return int(shapes[0][1])


def check_form(layer: Any) -> None:
    """Refuse the forms hls4ml 1.3 does not convert (or converts wrongly), naming the reason."""
    config = layer.get_config()
    if config.get("input_format") != "xn":
        raise _refuse(
            layer,
            f"has input_format='{config.get('input_format')}'; hls4ml 1.3 converts the "
            "two-input form 'xn' only (the vertex mask of 'x', channel 3 != 0, has no firmware "
            "twin): build it with inputs [features, keras.Input((1,), dtype='uint16')] "
            "holding the number of leading present vertices (a model of hepfpga's garnet "
            "architecture: hepfpga.train.architectures.garnet.firmware_form(model).model)",
        )
    if not config.get("simplified"):
        raise _refuse(layer, "has simplified=False; hls4ml's GarNet is the simplified one")
    if config.get("output_activation") not in (None, "linear"):
        raise _refuse(
            layer,
            f"has output_activation='{config.get('output_activation')}'; hls4ml's GarNet has "
            "a linear output (add an activation layer after it)",
        )
    if config.get("collapse") != "mean":
        raise _refuse(
            layer,
            f"has collapse={config.get('collapse')!r}; hls4ml 1.3's template collapses by "
            "'mean' only (it writes 'sum' as no collapse, has no 'max', and leaves the outputs "
            "of absent vertices unwritten without a collapse)",
        )
    if config.get("mean_by_nvert"):
        raise _refuse(
            layer,
            "has mean_by_nvert=True; hls4ml.contrib's Keras layer then collapses by a sum "
            "while the firmware takes the mean over present vertices",
        )
    vertices = _n_vertices(layer)
    if vertices < 2 or vertices & (vertices - 1):
        raise _refuse(
            layer,
            f"has {vertices} vertices; hls4ml's GarNet divides by 2**int(log2 V) (right "
            "shifts), which is the mean only for a power of two: pad the vertices to "
            f"{1 << max(vertices - 1, 1).bit_length()}",
        )


def _check_options(layer: Any, ctx: DeriveContext) -> None:
    options = ctx.options
    if options.backend.info.hls4ml_name not in _BACKENDS:
        raise ConversionError(
            f"layer '{layer.name}' ({type(layer).__name__}): hls4ml 1.3 implements GarNet for "
            f"the {' and '.join(_BACKENDS)} backends only, not {options.backend.value}"
        )
    if options.io_type.value != "io_parallel":
        raise ConversionError(
            f"layer '{layer.name}' ({type(layer).__name__}): hls4ml 1.3's GarNet exists in "
            f"io_parallel only, not {options.io_type.value}; use --io-type io_parallel"
        )
    reuse = options.reuse_factor
    vertices = _n_vertices(layer)
    if reuse & (reuse - 1) or vertices % reuse:
        raise ConversionError(
            f"layer '{layer.name}' ({type(layer).__name__}): the reuse factor {reuse} must be "
            f"a power of two dividing the {vertices} vertices (hls4ml's GarNet splits the "
            "vertex loop by it with shifts)"
        )


# -- the quantized twin hls4ml converts --------------------------------------------------------
def _quantizers(layer: Any) -> dict[str, Any]:
    """Weight variable name -> the QKeras quantizer applied to it (None: float)."""
    out: dict[str, Any] = {}
    for sub in layer._sublayers:
        for variable in sub.weights:
            key = (
                "kernel_quantizer_internal"
                if "kernel" in variable.name
                else "bias_quantizer_internal"
            )
            out[variable.name] = getattr(sub, key, None)
    return out


def quantized_weights(layer: Any) -> list[np.ndarray]:
    """The weights a quantized GarNet multiplies with (its transforms' quantizers applied),
    in ``layer.weights`` order; float weights (``S``, ``Fout``'s bias) unchanged."""
    quantizers = _quantizers(layer)
    out = []
    for variable, value in zip(layer.weights, layer.get_weights(), strict=True):
        quantizer = quantizers.get(variable.name)
        out.append(value if quantizer is None else np.asarray(quantizer(value), dtype=np.float32))
    return out


@functools.cache
def _twin_classes() -> dict[str, Any]:
    twins: dict[str, Any] = {}
    for name, base in garnet_classes().items():

        def get_config(self: Any, _base: Any = base) -> dict[str, Any]:
            config: dict[str, Any] = _base.get_config(self)
            # hls4ml reads quantize_transforms=True as its ternary GarNet; this twin holds the
            # quantized weights already, which hls4ml must store as they are
            config["quantize_transforms"] = False
            config["hepfpga_prequantized"] = True
            return config

        def from_config(cls: type, config: dict[str, Any]) -> Any:
            config = dict(config)
            config.pop("hepfpga_prequantized", None)
            config["quantize_transforms"] = True
            return cls(**config)

        twins[name] = type(
            name,
            (base,),
            {
                "__doc__": f"A quantized {name} as hls4ml must read it: the QKeras computation, "
                "the quantized weights, and a config without hls4ml's ternary flag.",
                "__module__": __name__,
                "get_config": get_config,
                "from_config": classmethod(from_config),
            },
        )
    return twins


def _is_twin(layer: Any) -> bool:
    return type(layer) in _twin_classes().values()


def firmware_twin(layer: Any) -> Any:
    """The layer hls4ml converts for a quantized GarNet (None: keep ``layer``). Same name,
    same settings and, holding :func:`quantized_weights`, the same function in Keras."""
    check_form(layer)
    if _is_twin(layer) or not _quantized(layer):
        return None
    config = layer.get_config()
    config.setdefault("total_bits", layer._total_bits)
    config.setdefault("int_bits", layer._int_bits)
    config.pop("n_sublayers", None)
    return _twin_classes()[type(layer).__name__].from_config(config)


# -- types ---------------------------------------------------------------------------------------
def _sublayer_weights(layer: Any) -> list[dict[str, np.ndarray]]:
    """Per sublayer: FLR/S/Fout kernels and biases as hls4ml reads them (the values stored)."""
    values = quantized_weights(layer) if _quantized(layer) else layer.get_weights()
    names = [v.name.split("/")[-1].split(":")[0] for v in layer.weights]
    by_name = dict(zip(names, values, strict=True))
    n = len(layer._transform_layers) if _is_stack(layer) else 1
    out = []
    for i in range(n):
        suffix = str(i) if _is_stack(layer) else ""
        out.append(
            {
                key: np.asarray(by_name[f"{part}{suffix}_{kind}"], dtype=np.float64)
                for key, part, kind in (
                    ("flr_k", "FLR", "kernel"),
                    ("flr_b", "FLR", "bias"),
                    ("s_k", "S", "kernel"),
                    ("s_b", "S", "bias"),
                    ("out_k", "Fout", "kernel"),
                    ("out_b", "Fout", "bias"),
                )
            }
        )
    return out


def _output_bound(weights: dict[str, np.ndarray], magnitude: float) -> tuple[float, float]:
    """``(max |output base|, max |output|)`` of one GarNet sublayer whose inputs are at most
    ``magnitude``: edge weights lie in [0, 1], so the weighted feature means are at most
    ``magnitude``."""
    n_prop = weights["flr_k"].shape[1]
    n_aggr = weights["s_k"].shape[1]
    fout = weights["out_k"].reshape(n_aggr, n_prop, -1)  # (a, p, o)
    kernel = np.einsum("xp,apo->oax", weights["flr_k"], fout)
    bias = np.einsum("p,apo->oa", weights["flr_b"], fout)
    base = np.abs(kernel).sum(axis=2) * magnitude + np.abs(bias)  # (o, a)
    out = np.abs(weights["out_b"]) + base.sum(axis=1)
    return float(base.max()), float(out.max())


def _unsigned(integer: int, fractional: int) -> FixedType:
    width = min(integer + fractional, _MAX_SUM_WIDTH)
    return FixedType(width, integer, False, **RND_SAT)


def _signed(integer: int, fractional: int) -> FixedType:
    width = min(integer + fractional, _MAX_SUM_WIDTH)
    return FixedType(width, integer, True, **RND_SAT)


def _garnet(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    check_form(layer)
    _check_options(layer, ctx)
    kind = type(layer).__name__
    name = layer.name
    x = inputs[0]
    vertices = _n_vertices(layer)
    log2v = int(math.log2(vertices))
    quantized = _quantized(layer)
    total_bits, integer_bits = layer._total_bits, layer._int_bits
    # the sublayers' output bounds, from the weights and the input type's range
    magnitude = max(abs(x.min_value), abs(x.max_value))
    base_bound, inner = 0.0, magnitude
    intermediate = 0.0
    sublayers = _sublayer_weights(layer)
    for i, weights in enumerate(sublayers):
        base, out = _output_bound(weights, inner)
        base_bound = max(base_bound, base, vertices * float(np.max(np.abs(weights["out_b"]))))
        if quantized:
            out = min(out, 2.0**integer_bits)
        if i < len(sublayers) - 1:
            intermediate = max(intermediate, out)
        inner = out
    if quantized:
        integer = integer_bits + 1
        fractional = total_bits - integer + log2v
        result = FixedType(integer + fractional, integer, True, **RND_SAT)
        source = "output quantizer's integer bits, log2(V) more fractional bits (approximate)"
    else:
        result = ctx.profiled(name)
        if intermediate:
            result = covering_type(
                [ctx.profile(name) or (0.0, 0.0), (-intermediate, intermediate)],
                ctx.width,
                where=f"layer '{name}'",
            )
        source = "profiled (approximate)"
    # aggr_t holds the sums of up to V products x * edge weight (each rounded to the data
    # type: the input, or the result type inside a stack), their means (shifted by log2 V),
    # the output bases (means times the 10-bit folded weights) and the output biases times
    # the vertex count
    frac_data = max(x.fractional, result.fractional if len(sublayers) > 1 else 0, 0)
    aggr = _signed(
        max(int_bits(vertices * max(magnitude, intermediate), True), int_bits(base_bound, True)),
        max(frac_data, EDGE_WEIGHT_BITS) + log2v + 10,
    )
    edge_weight = FixedType(EDGE_WEIGHT_BITS, 0, False, **RND_SAT)
    edge_weight_aggr = _unsigned(log2v + 1, EDGE_WEIGHT_BITS + log2v)
    return LayerPrecision(
        name,
        kind,
        result,
        source=source,
        profiled=ctx.profile(name),
        extra=(
            ("edge_weight", edge_weight),
            ("edge_weight_aggr", edge_weight_aggr),
            ("aggr", aggr),
        ),
    )


def round_distances(folder: Path) -> None:
    """Make the generated ``distance_t`` round to nearest (``AP_RND``) instead of truncating.

    hls4ml's template sums the aggregator distances in ``ap_fixed<12,4,AP_TRN,AP_SAT>``,
    truncating every product: a systematic shift of up to ``(F + 1) / 256`` towards minus
    infinity for ``F`` input features. Measured on the trained jet GarNet of
    ``examples/jet_garnet.yaml`` (1,000 test jets): GarNet's output off QKeras by up to 0.079
    truncated, 0.021 rounded; logits 0.384 and 0.127. The table of ``exp(-d^2)`` is indexed
    by the distance's bits, so it is unchanged; one adder per conversion in hardware.
    """
    path = folder / "firmware" / "parameters.h"
    text = path.read_text(encoding="utf-8")
    if "distance_t;" not in text:
        return
    if _DISTANCE_TRUNCATED not in text and "AP_RND, AP_SAT> distance_t;" not in text:
        raise ConversionError(
            f"{path}: hls4ml's GarNet distance type is not the one hls4ml 1.3 writes "
            f"('ap_fixed<12, 4, {_DISTANCE_TRUNCATED}'); hepfpga pins hls4ml 1.3"
        )
    path.write_text(
        text.replace(_DISTANCE_TRUNCATED, "AP_RND, AP_SAT> distance_t;"), encoding="utf-8"
    )


def vertex_count(layer: Any) -> dict[int, int]:
    """GarNet's input 1 is the number of present vertices, 0..V."""
    return {1: _n_vertices(layer)}


def _multiplications(layer: Any) -> int:
    vertices = _n_vertices(layer)
    total = 0
    for weights in _sublayer_weights(layer):
        n_in, n_aggr = weights["s_k"].shape
        n_out = weights["out_b"].shape[0]
        # distances and weighted features per vertex, outputs per (aggregator, feature)
        total += vertices * n_aggr * 2 * n_in + n_out * n_aggr * (n_in + 1)
    return total


register(
    LayerHandler(
        family="graph",
        classes=("GarNet", "GarNetStack"),
        derive=_garnet,
        exactness="hls4ml.contrib GarNet/GarNetStack in the 'xn' form (simplified, linear "
        "output, collapse='mean', V a power of two): edge weights exp(-d^2) from a table "
        "addressed by a 12-bit distance (rounded by hepfpga, truncated by hls4ml), weights "
        "stored with 10 fractional bits: "
        "approximate (measured); quantized transforms written as the QKeras-quantized weights",
        emulation=Emulation(
            "C simulation (GarNet's exp table and truncated distances are not in the engine)",
        ),
        qkeras=QKerasMapping(("GarNet",), "GarNetStack has no QAT counterpart yet"),
        exact=lambda layer: False,
        rewrite=Rewrite(firmware_twin, quantized_weights),
        bound=QKERAS_BOUND,
        bound_reason="edge weights exp(-d^2) from a lookup table",
        counts=vertex_count,
        patch_sources=round_distances,
        multiplications=_multiplications,
    )
)
