"""What every layer handler shares: the derived types of a layer, the context of the walk,
the type arithmetic of hls4ml's C++ and the registry itself.

A *layer handler* (:class:`LayerHandler`) owns one family of Keras/QKeras layer classes:

* ``derive(layer, ctx, inputs)`` returns the :class:`LayerPrecision` of the layer from the
  types of its inputs (QKeras models: exact types from the quantizers and hls4ml's exact
  arithmetic; float models: types proposed from profiled ranges);
* ``exact(layer, quantized)`` says whether the firmware reproduces Keras bit for bit for that
  layer (used by verification to decide what must agree exactly and what is approximate by
  design);
* ``exactness`` states, in words, what the firmware computes and how close it is; these
  sentences make the layer table of ``docs/firmware.md``;
* ``emulation`` (:class:`Emulation`) holds the steps of :mod:`hepfpga.firmware.emulate_engine`
  that reproduce the layer (by hls4ml class, io_parallel and io_stream, and by activation
  name), or says why none does (the emulator then falls back to the C simulation); the
  engine's dispatch tables are derived from the registered handlers;
* ``rtl`` names the RTL tracer of each class :mod:`hepfpga.firmware.rtl.trace` replays;
* ``qkeras`` (:class:`QKerasMapping`) names the float classes of the family that
  :func:`hepfpga.quantize.qat.quantize_model` maps (``LAYER_MAPPINGS``, defined in
  ``quantize``, which never imports ``firmware``), or why the others have none.

A family is one module: its handler, and the step builders it names (from the engine's step
modules, or its own). :func:`register` adds a handler to :data:`HANDLERS`; :func:`handler_for`
finds the one of a layer class or raises the specific :class:`~hepfpga.errors.ConversionError`
of that class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from hepfpga.errors import ConversionError
from hepfpga.firmware.emulate_engine.types import StepBuilder
from hepfpga.firmware.layers.tracers import Tracer
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation
from hepfpga.quantize.qat import LAYER_MAPPINGS, LayerMapping
from hepfpga.registry import Registry

__all__ = [
    "HANDLERS",
    "MAX_INTEGER_BITS",
    "MAX_WIDTH",
    "REFUSED",
    "BackendSupport",
    "DeriveContext",
    "Emulation",
    "LayerHandler",
    "LayerPrecision",
    "QKerasMapping",
    "Rewrite",
    "add_type",
    "check_backend",
    "count_type",
    "covering_type",
    "handler_for",
    "product_type",
    "register",
    "registered_handlers",
    "significant_type",
    "subtract_type",
    "sum_type",
    "traced_name",
    "union_type",
    "unregister",
]

#: integer bits (sign included) a profiled type may have: values up to 2**31 in magnitude.
#: Larger profiled ranges are refused (they point at unscaled inputs), because types that wide
#: give useless resolution at the float width and, once multiplied up in the sums, exceed what
#: ``ap_fixed`` allows (the C simulation aborts in ``ap_private.h``).
MAX_INTEGER_BITS = 32
#: widest type written into a firmware (``ap_fixed`` allows up to 1024 bits by default; the
#: C simulation of sums of such types is very slow long before that)
MAX_WIDTH = 256


class RoundSaturate(TypedDict):
    """The rounding and saturation keywords of a :class:`FixedType` (``**RND_SAT``)."""

    rounding: Rounding
    saturation: Saturation


#: round to nearest and saturate: the modes of every type the handlers choose themselves
RND_SAT: RoundSaturate = {"rounding": Rounding.RND, "saturation": Saturation.SAT}


@dataclass(frozen=True)
class LayerPrecision:
    """The derived types of one layer and where they come from."""

    name: str
    class_name: str
    result: FixedType
    accum: FixedType | None = None
    weight: FixedType | None = None
    bias: FixedType | None = None
    scale: FixedType | None = None
    #: how ``result`` was chosen, in words
    source: str = ""
    #: (min, max) of the layer's output on the profiling sample (float models)
    profiled: tuple[float, float] | None = None
    #: further hls4ml precision keys of the layer (``recurrent_weight``, ...)
    extra: tuple[tuple[str, FixedType], ...] = ()
    #: layer-level hls4ml keys chosen together with the types (e.g. a recurrent layer's
    #: ``TableSize`` and ``table_t``, sized to its input's lsb); applied after the handler's
    #: ``settings``
    settings: tuple[tuple[str, Any], ...] = ()

    def hls_types(self) -> dict[str, FixedType]:
        """Every type set, by hls4ml's ``Precision`` key."""
        out = {
            key: getattr(self, key)
            for key in ("result", "accum", "weight", "bias", "scale")
            if getattr(self, key) is not None
        }
        out.update(dict(self.extra))
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"class": self.class_name, "source": self.source}
        for key, value in self.hls_types().items():
            out[key] = value.to_hls()
        if self.profiled is not None:
            out["profiled_min"], out["profiled_max"] = self.profiled
            out["type_min"], out["type_max"] = self.result.min_value, self.result.max_value
        return out


@dataclass
class DeriveContext:
    """What a handler may read while types are derived, layer after layer."""

    options: FirmwareOptions
    #: QKeras model (exact types from quantizers) or float model (profiled types)
    quantized: bool
    #: (min, max) of every layer's output on the profiling events (float models; may be None
    #: for QKeras models)
    ranges: Mapping[str, tuple[float, float]] | None

    @property
    def width(self) -> int:
        """Total width of profiled types (``firmware.float_width``)."""
        return self.options.float_width

    def profiled(self, name: str) -> FixedType:
        """The covering type of the profiled output range of layer ``name``."""
        if self.ranges is None or name not in self.ranges:
            raise ConversionError(
                f"layer '{name}': no profiled range; a float model needs events to choose its "
                "types (--data FILE or --random N)"
            )
        lo, hi = self.ranges[name]
        return covering_type([lo, hi], self.width, where=f"layer '{name}'")

    def profile(self, name: str) -> tuple[float, float] | None:
        return None if self.ranges is None else self.ranges.get(name)


@dataclass(frozen=True)
class Emulation:
    """How the fixed-point engine (:mod:`hepfpga.firmware.emulate_engine`) reproduces a family.

    The engine dispatches on tables derived from every registered handler's ``Emulation``;
    two families may name the same builder for an hls4ml class (both pooling families make
    ``Pooling2D``), never two different ones.
    """

    #: the steps in words, or why the emulator falls back to the C simulation
    summary: str
    #: hls4ml layer class -> step builder, of the hls4ml layers the family becomes
    steps: Mapping[str, StepBuilder] = field(default_factory=dict)
    #: hls4ml layer class -> step builder, of the layers only io_stream makes of the family
    #: (a ``Reshape`` becomes ``Repack``)
    stream_steps: Mapping[str, StepBuilder] = field(default_factory=dict)
    #: activation name (lower case) of an hls4ml ``Activation`` layer -> step builder
    activations: Mapping[str, StepBuilder] = field(default_factory=dict)
    #: activation name of an hls4ml ``ParametrizedActivation`` layer (whose ``param_t``
    #: parameter, e.g. LeakyReLU's alpha, the step reads) -> step builder
    parametrised: Mapping[str, StepBuilder] = field(default_factory=dict)


@dataclass(frozen=True)
class QKerasMapping:
    """The family's float classes that QAT maps to QKeras (:data:`LAYER_MAPPINGS`, defined in
    :mod:`hepfpga.quantize.qat`), and why its other classes have no mapping."""

    #: float Keras class names, keys of ``LAYER_MAPPINGS``
    classes: tuple[str, ...] = ()
    #: why the family's other classes have none (they are QKeras layers themselves, QAT has no
    #: counterpart for them yet, ...); required when some class is not in ``classes``
    reason: str = ""

    def mappings(self) -> dict[str, LayerMapping]:
        """Float class name -> its :class:`~hepfpga.quantize.qat.LayerMapping`."""
        return {name: LAYER_MAPPINGS[name] for name in self.classes}


@dataclass(frozen=True)
class Rewrite:
    """An equivalent layer (same name, same function) hls4ml converts better, applied by
    :func:`~hepfpga.firmware.layers.graph.ready_model`."""

    #: ``layer -> replacement``, or None to keep that layer
    layer: Callable[[Any], Any]
    #: the weights of the replacement (None: the original layer's weights), e.g. the
    #: QKeras-quantized weights a float twin must hold
    weights: Callable[[Any], list[Any]] | None = None


@dataclass(frozen=True)
class BackendSupport:
    """The ``firmware.backend`` values whose hls4ml 1.3 templates implement a family (or the
    layers of it that ``applies`` selects); the others are refused naming these
    (:func:`check_backend`)."""

    names: tuple[str, ...]
    #: what to use instead on the other backends (ends the refusal)
    hint: str = ""
    #: the layers of the family the rule is about (None: all of them)
    applies: Callable[[Any], bool] | None = None
    #: backend of ``names`` -> the io_types it implements the layers in (absent: every one)
    io_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: why the other backends are refused, when they have a template that computes something
    #: else (None: "hls4ml 1.3 implements <class> in <names> only")
    reason: str | None = None


@dataclass(frozen=True)
class LayerHandler:
    """Types, exactness and emulation of one family of Keras/QKeras layer classes."""

    #: the family, as named in docs/firmware.md (``dense``, ``merge``, ...)
    family: str
    #: Keras/QKeras class names handled
    classes: tuple[str, ...]
    derive: Callable[[Any, DeriveContext, list[FixedType]], LayerPrecision]
    #: what the firmware computes and how exactly, in words
    exactness: str
    #: the engine's steps of the family, or why the emulator falls back
    emulation: Emulation
    #: the family's place in QAT (its QKeras mappings)
    qkeras: QKerasMapping = field(default_factory=QKerasMapping)
    #: Keras/QKeras class -> its RTL tracer (:mod:`~hepfpga.firmware.layers.tracers`), for
    #: the classes :func:`hepfpga.firmware.rtl.trace.trace_model` replays
    rtl: Mapping[str, Tracer] = field(default_factory=dict)
    #: whether the firmware reproduces the layer bit for bit in a QKeras model (a callable
    #: for families where it depends on the layer's settings)
    exact: Callable[[Any], bool] = field(default=lambda layer: True)
    #: the equivalent layer hls4ml converts better (None: the layer is kept)
    rewrite: Rewrite | None = None
    #: further hls4ml settings of the layer's ``LayerName`` entry (e.g. ``TableSize``)
    settings: Callable[[Any], dict[str, Any]] | None = None
    #: the bound on the logits (max |difference|) that verification requires of a QKeras
    #: model holding this layer, for layers never bit-exact by design (lookup tables inside
    #: the layer); None: the layer does not relax the bit-exact requirement
    bound: float | None = None
    #: why the layer is never bit-exact, in words (with ``bound``)
    bound_reason: str = "table-based sigmoid/tanh"
    #: input index -> the largest value, of the inputs that are counts (GarNet's vertex
    #: count): such a model input gets an exact unsigned integer type (:func:`count_type`),
    #: and random events draw integers from 0 to that value
    counts: Callable[[Any], dict[int, int]] | None = None
    #: edits of the sources hls4ml generates for the layer, applied to the project folder
    #: after every ``write()`` (e.g. a rounding mode hls4ml's template fixes); None: none
    patch_sources: Callable[[Path], None] | None = None
    #: multiplications the layer unrolls in io_parallel (the size that drives g++ time)
    multiplications: Callable[[Any], int] = field(default=lambda layer: 0)
    #: ``(layer, types, input types) -> {hls4ml layer name: LayerName entry}``: entries of
    #: the layers hls4ml makes of this one besides its own (TimeDistributed's wrapped layer
    #: and end marker), and replacements of top-level keys of its own entry; None: none
    hls_entries: (
        Callable[[Any, LayerPrecision, list[FixedType]], dict[str, dict[str, Any]]] | None
    ) = None
    #: the hls4ml layer whose (traced) output is the Keras layer's output, when hls4ml names
    #: it differently (TimeDistributed: ``<name>_end``); None: the layer's own name
    traced_as: Callable[[Any], str] | None = None
    #: ``(layer, input ranges) -> None``: refuses events a layer cannot read (e.g. no
    #: indices for an Embedding), called with the (min, max) of every model input before
    #: Keras runs on them; None: any finite events
    check_inputs: Callable[[Any, Mapping[str, tuple[float, float]]], None] | None = None
    #: the backends whose hls4ml 1.3 templates implement the layer (None: every offered
    #: backend; several rules for layers of the family that differ)
    backends: BackendSupport | tuple[BackendSupport, ...] | None = None


def check_backend(layer: Any, handler: LayerHandler, options: FirmwareOptions) -> None:
    """Refuse ``layer`` when ``options.backend`` (in ``options.io_type``) has no hls4ml
    template for it, or one that computes something else, naming the backends that do
    (``LayerHandler.backends``: one rule or several)."""
    rules = handler.backends
    for support in rules if isinstance(rules, tuple) else (rules,):
        if support is not None and (support.applies is None or support.applies(layer)):
            _check_rule(layer, support, options)


def _check_rule(layer: Any, support: BackendSupport, options: FirmwareOptions) -> None:
    backend, io_type = options.backend.value, options.io_type.value
    if backend in support.names and io_type in support.io_types.get(backend, (io_type,)):
        return
    kind = type(layer).__name__
    where = f"{backend}" if backend not in support.names else f"{backend} {io_type}"
    works = ", ".join(
        f"{name} ({' or '.join(support.io_types[name])})" if name in support.io_types else name
        for name in support.names
    )
    hint = f"use --backend {support.names[0]}" + (f", or {support.hint}" if support.hint else "")
    if support.reason is not None:
        raise ConversionError(f"layer '{layer.name}' ({kind}) on {where}: {support.reason}; {hint}")
    raise ConversionError(
        f"layer '{layer.name}' ({kind}): hls4ml 1.3 implements {kind} in the {works} backend"
        f"{'s' if len(support.names) > 1 else ''} only, not {where}; {hint}"
    )


#: Keras/QKeras layer class -> its family's handler
HANDLERS: Registry[LayerHandler] = Registry("layer class")
#: layer class -> why it is refused and what to use instead
REFUSED: Registry[str] = Registry("refused layer class")


def register(handler: LayerHandler) -> LayerHandler:
    """Add ``handler`` to :data:`HANDLERS` (one handler per class name)."""
    for name in handler.classes:
        if name in HANDLERS:
            raise ValueError(f"layer class {name} has two handlers")
    stray = [name for name in handler.rtl if name not in handler.classes]
    if stray:
        raise ValueError(f"layer family {handler.family}: RTL tracers of {stray}, not its classes")
    missing = [name for name in handler.qkeras.classes if name not in LAYER_MAPPINGS]
    if missing:
        raise ValueError(f"layer family {handler.family}: no QKeras mapping of {missing}")
    for name in handler.classes:
        HANDLERS.register(name, handler)
    return handler


def unregister(handler: LayerHandler) -> None:
    """Remove ``handler`` from :data:`HANDLERS` (a family registered for a while, e.g. by a
    test module)."""
    for name in handler.classes:
        if HANDLERS.get(name) is handler:
            del HANDLERS[name]


def traced_name(layer: Any) -> str:
    """The hls4ml layer whose traced output is ``layer``'s output (``LayerHandler.traced_as``)."""
    handler = HANDLERS.get(type(layer).__name__)
    if handler is None or handler.traced_as is None:
        return str(layer.name)
    return handler.traced_as(layer)


def refuse(class_name: str, reason: str) -> None:
    """Record that ``class_name`` is refused, with ``reason`` (what to use instead)."""
    REFUSED.register(class_name, reason)


def registered_handlers() -> dict[str, LayerHandler]:
    """Class name -> handler, for every supported class."""
    return dict(HANDLERS)


def refused_classes() -> dict[str, str]:
    """Class name -> the reason it is refused."""
    return dict(REFUSED)


def handler_for(layer: Any) -> LayerHandler:
    """The handler of ``layer``'s class, or a :class:`ConversionError` naming the layer."""
    kind = type(layer).__name__
    handler = HANDLERS.get(kind)
    if handler is not None:
        return handler
    if kind in REFUSED:
        raise ConversionError(f"layer '{layer.name}' ({kind}): {REFUSED[kind]}")
    raise ConversionError(
        f"layer '{layer.name}' ({kind}) is not supported; supported: "
        f"{', '.join(sorted(HANDLERS))} (tfmot pruning wrappers are stripped)"
    )


# -- type arithmetic ---------------------------------------------------------------------------
def count_type(largest: int) -> FixedType:
    """``ap_ufixed<B,B,AP_TRN,AP_SAT>`` (an unsigned integer) holding the counts 0..largest."""
    bits = max(int(largest), 1).bit_length()
    return FixedType(bits, bits, False, Rounding.TRN, Saturation.SAT)


def int_bits(magnitude: float, signed: bool) -> int:
    """Integer bits (sign included when signed) that hold ``magnitude``, one bit of headroom."""
    if magnitude <= 0 or not math.isfinite(magnitude):
        return 1
    return math.floor(math.log2(magnitude)) + 1 + (1 if signed else 0) + 1


def covering_type(
    values: Any, width: int, *, signed: bool = True, where: str = "a profiled value"
) -> FixedType:
    """``ap_fixed<width, I, AP_RND, AP_SAT>`` with ``I`` the bits of ``max|values|`` + 1.

    Raises :class:`ConversionError` when ``I`` would exceed :data:`MAX_INTEGER_BITS`.
    """
    array = np.asarray(values, dtype=np.float64)
    magnitude = float(np.max(np.abs(array))) if array.size else 0.0
    integer = int_bits(magnitude, signed)
    if integer > MAX_INTEGER_BITS:
        raise ConversionError(
            f"{where}: values reach {magnitude:.3g} in magnitude, which needs {integer} integer "
            f"bits; profiled types are bounded to {MAX_INTEGER_BITS} (|values| < 2**31) at "
            f"{width} bits in all. Standardise the inputs (or the events given), or set the "
            "type by hand with firmware.layer_types"
        )
    return FixedType(width, integer, signed, **RND_SAT)


def significant_type(values: Any, significant: int) -> FixedType:
    """A signed type holding every value of ``values`` to ``significant`` significant bits."""
    array = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    nonzero = array[array > 0]
    if not nonzero.size:
        return FixedType(2, 1, True, **RND_SAT)
    integer = math.floor(math.log2(float(nonzero.max()))) + 2
    smallest = math.floor(math.log2(float(nonzero.min())))
    fractional = min(max(significant - 1 - smallest, 0), 48 - integer)
    return FixedType(integer + fractional, integer, True, **RND_SAT)


def sum_type(x: FixedType, w: FixedType, b: FixedType | None, n_ops: int) -> FixedType:
    """hls4ml's exact type of ``sum(x * w) + b`` over ``n_ops`` products (never rounds)."""
    extra = math.ceil(math.log2(n_ops)) if n_ops > 1 else 0
    width = w.width + x.width + extra
    integer = w.integer + x.integer + extra
    signed = w.signed or x.signed
    if b is not None:
        frac = width - integer
        integer = max(integer + (b.signed and not signed), b.integer + (signed and not b.signed))
        integer += 1
        width = integer + max(frac, b.fractional)
        signed = signed or b.signed
    return FixedType(width, integer, signed)


def add_type(a: FixedType, b: FixedType) -> FixedType:
    """The exact type of ``a + b`` (or ``a - b``) in ``ap_fixed`` arithmetic."""
    signed = a.signed or b.signed
    integer = max(a.integer + (b.signed and not a.signed), b.integer + (a.signed and not b.signed))
    integer += 1
    return FixedType(integer + max(a.fractional, b.fractional), integer, signed)


def subtract_type(a: FixedType, b: FixedType) -> FixedType:
    """The exact type of ``a - b``: signed even when both are unsigned."""
    integer = max(a.integer + (not a.signed), b.integer + (not b.signed)) + 1
    return FixedType(integer + max(a.fractional, b.fractional), integer, True)


def product_type(a: FixedType, b: FixedType) -> FixedType:
    """The exact type of ``a * b``."""
    return FixedType(a.width + b.width, a.integer + b.integer, a.signed or b.signed)


def union_type(types: list[FixedType]) -> FixedType:
    """The narrowest type holding every value of every type in ``types`` exactly."""
    signed = any(t.signed for t in types)
    integer = max(t.integer + (signed and not t.signed) for t in types)
    fractional = max(t.fractional for t in types)
    return FixedType(integer + fractional, integer, signed)


def check_width(types: LayerPrecision) -> LayerPrecision:
    """``types`` itself, or a :class:`ConversionError` when one is wider than MAX_WIDTH."""
    for key, value in types.hls_types().items():
        if value.width > MAX_WIDTH:
            raise ConversionError(
                f"layer '{types.name}' ({types.class_name}): its {key} type {value.to_hls()} "
                f"would be {value.width} bits wide; hepfpga writes at most {MAX_WIDTH}. "
                "Narrow the quantizers before it, or set the type with firmware.layer_types"
            )
    return types
