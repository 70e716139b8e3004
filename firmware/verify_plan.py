"""The plan of a verification: the checked events, the conversion plan built from them, and
what the firmware must reproduce (:func:`requirement`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError, DataError
from hepfpga.firmware.data import validate_events
from hepfpga.firmware.diagnose import LayerComparison
from hepfpga.firmware.emulate_tables import TABLE_KINDS
from hepfpga.firmware.hls_config import (
    ConversionPlan,
    hls4ml_ready_model,
    logits_layer_names,
    plan_conversion,
)
from hepfpga.firmware.layers import handler_for, model_graph
from hepfpga.firmware.layers.activation import activation_name, is_softmax, is_table
from hepfpga.firmware.layers.graph import input_names
from hepfpga.firmware.layers.tracers import quantized_weights
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.precision import check_supported, is_quantized, profile_ranges
from hepfpga.firmware.verify_bounds import (
    DEFAULT_TABLE_SIZE,
    QuartusSoftmaxTables,
    SoftmaxTables,
    TableBound,
    softmax_bound,
    table_bound,
)
from hepfpga.firmware.verify_report import Comparison
from hepfpga.fixed_point import FixedType, Rounding

__all__ = [
    "FLOAT_TOLERANCE",
    "Requirement",
    "approximate_bound",
    "bound_reason",
    "check_events",
    "check_input_ranges",
    "plan_for_events",
    "requirement",
    "softmax_bounds",
    "softmax_tables",
    "table_bounds",
    "tables_from_settings",
]

#: default tolerance on the logits of float (non-QKeras) models, in absolute units
FLOAT_TOLERANCE = 0.01


def check_events(model: Any, x: Any, name: str = "data") -> Any:
    """``x`` as float32 events of the model's input shape (a list of arrays, one per input,
    for a model with several inputs); DataError saying what is wrong
    (:func:`hepfpga.firmware.data.validate_events`)."""
    shapes = [tuple(int(d) for d in tensor.shape[1:]) for tensor in model.inputs]
    if len(shapes) == 1:
        return validate_events(x, shapes[0], name=name)
    if not isinstance(x, (list, tuple)) or len(x) != len(shapes):
        raise DataError(
            f"the model has {len(shapes)} inputs ({', '.join(input_names(model))}); give "
            f"{name} as a list of {len(shapes)} event arrays"
        )
    arrays = [
        validate_events(a, shape, name=f"{name} '{n}'")
        for a, shape, n in zip(x, shapes, input_names(model), strict=True)
    ]
    if len({len(a) for a in arrays}) > 1:
        raise DataError(
            f"the {len(arrays)} input arrays of {name} hold different numbers of events"
        )
    return arrays


def plan_for_events(
    model: Any, x: Any, options: FirmwareOptions | None = None, *, profile_events: int = 10000
) -> tuple[ConversionPlan, Any]:
    """``(plan, events)``: the checked events and the conversion plan :func:`verify_model`
    builds from them (float models: types from the ranges of the first ``profile_events``
    events; QKeras models: the inputs' ranges, which size a default input type)."""
    options = options if options is not None else FirmwareOptions()
    ready = hls4ml_ready_model(model)
    check_supported(ready)
    events = check_events(ready, x)
    per_input = events if isinstance(events, list) else [events]
    samples = [e[:profile_events] for e in per_input]
    names = input_names(ready)
    ranges = {n: (float(e.min()), float(e.max())) for n, e in zip(names, samples, strict=True)}
    check_input_ranges(ready, ranges)
    if not is_quantized(ready):
        ranges = profile_ranges(ready, samples if len(samples) > 1 else samples[0])
    return plan_conversion(ready, options, ranges=ranges), events


def check_input_ranges(model: Any, ranges: dict[str, tuple[float, float]]) -> None:
    """Refuse events some layer cannot read (``LayerHandler.check_inputs``), before Keras
    runs on them; ``ranges``: (min, max) per model input."""
    for node in model_graph(model):
        check = handler_for(node.layer).check_inputs
        if check is not None:
            check(node.layer, ranges)


def approximate_bound(model: Any) -> float | None:
    """The largest ``LayerHandler.bound`` of ``model``'s layers (None: none relaxes
    bit-exactness)."""
    bounds = [handler_for(layer).bound for layer in model.layers]
    given = [b for b in bounds if b is not None]
    return max(given) if given else None


def bound_reason(model: Any) -> str:
    """Which layers are never bit-exact and why, in words."""
    bounded = [layer for layer in model.layers if handler_for(layer).bound is not None]
    names = [f"'{layer.name}' ({type(layer).__name__})" for layer in bounded]
    reasons = sorted({handler_for(layer).bound_reason for layer in bounded})
    return f"{', '.join(names)} not bit-exact by design ({'; '.join(reasons)})"


def _param_type(plan: ConversionPlan, entry: dict[str, Any]) -> FixedType:
    """The layer's ``param_t``: its own precision entry, else the model's default type."""
    text = (
        entry.get("Precision", {}).get("param") or plan.hls_config["Model"]["Precision"]["default"]
    )
    return FixedType.parse(text if text.startswith("ap_") else f"ap_{text}")


def table_bounds(
    plan: ConversionPlan,
    *,
    on_grid: bool,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, TableBound]:
    """For every table activation of ``plan`` (sigmoid, tanh, softsign, softplus, elu, selu;
    softmax has its own statement, ``firmware.softmax``): the largest difference from the
    function the firmware can have for the layer's own input
    (:func:`~hepfpga.firmware.verify_bounds.table_bound`), from the table's size and types as
    written in the configuration. A layer reading a model input that Keras sees unrounded
    (``on_grid`` false) includes the input's rounding. ``ranges``: each layer's (min, max)
    over the checked events (the bound then covers the inputs of that range; else the input
    type's whole range)."""
    model = plan.model
    inputs = set(input_names(model))
    bounds = {}
    for node in model_graph(model):
        layer = node.layer
        kind = activation_name(layer).lower()
        if not is_table(layer) or is_softmax(layer) or kind not in TABLE_KINDS:
            continue
        entry = plan.hls_config["LayerName"][node.name]
        (feeding,) = node.inputs
        alpha = float(layer.get_config().get("alpha", 1.0)) if kind == "elu" else 1.0
        bounds[node.name] = table_bound(
            kind,
            int(entry.get("TableSize", DEFAULT_TABLE_SIZE)),
            FixedType.parse(entry["table_t"]),
            plan.precision[node.name].result,
            plan.precision[feeding].result,
            alpha=alpha,
            param_t=_param_type(plan, entry) if kind == "elu" else None,
            input_rounded=feeding in inputs and not on_grid,
            input_range=(ranges or {}).get(feeding),
        )
    return bounds


def softmax_tables(
    plan: ConversionPlan, name: str, backend: str = "vivado"
) -> SoftmaxTables | QuartusSoftmaxTables | str:
    """The types and table sizes of the softmax layer ``name`` as ``plan``'s configuration
    writes them for hls4ml's ``backend`` (see :func:`tables_from_settings`); for another
    implementation, backend or a key the configuration leaves to hls4ml, why no bound is
    derived, in words."""
    n = int(plan.model.get_layer(name).output_shape[-1])
    sources = {node.name: node.inputs for node in model_graph(plan.model)}.get(name, ())
    entry = plan.precision.get(sources[0]) if sources else None
    input_t = entry.result if entry is not None else None
    return tables_from_settings(plan.hls_config["LayerName"][name], n, backend, input_t)


def tables_from_settings(
    entry: Mapping[str, Any],
    n: int,
    backend: str = "vivado",
    input_t: FixedType | None = None,
) -> SoftmaxTables | QuartusSoftmaxTables | str:
    """:func:`softmax_tables` from a softmax layer's ``LayerName`` entry (the settings of
    :func:`~hepfpga.firmware.hls_config.softmax_settings`, after the backend's
    ``softmax_override``) over ``n`` classes whose input (the logits) has type ``input_t``.

    Vivado and Vitis (``nnet_activation.h``'s ``softmax_stable``): layer keys ``inp_norm_t``,
    ``exp_table_t``, ``inv_inp_t``, ``inv_table_t``; ``accum`` and ``result`` in
    ``Precision``. Quartus (its own ``softmax_stable``): ``exp_table_t``, ``inv_table_t`` and
    ``result``, with ``input_t``. Table sizes as hls4ml 1.3 writes them: ``exp_table_size`` /
    ``inv_table_size`` when the entry sets them, else ``TableSize`` cut by hls4ml's
    ``FixSoftmaxTableSize`` pass to ``2**min(W_in, W_inv)`` (``W_in``: the width of
    ``input_t``; ``W_inv``: ``inv_table_t``'s; one bit less on Quartus), e.g. 256 entries
    after an ``ap_fixed<8,3>`` input. Without ``input_t`` that cut is unknown and no bound is
    derived."""
    implementation = entry.get("Implementation", "stable")
    if entry.get("Skip"):
        return "the softmax is skipped (the outputs are the logits)"
    if implementation != "stable":
        return f"hls4ml's '{implementation}' softmax is not analysed (only 'stable' is)"
    builder = _SOFTMAX_TEMPLATES.get(backend.lower())
    if builder is None:
        return f"the {backend} backend's softmax templates are not analysed"
    precision = entry.get("Precision", {})
    found: dict[str, Any] = {key: entry.get(key) for key in builder.keys}
    found.update({key: precision.get(key.removesuffix("_t")) for key in builder.precision})
    missing = [key for key, value in found.items() if not isinstance(value, str)]
    if missing:
        return f"the configuration leaves {', '.join(missing)} to hls4ml"
    types = {
        key: FixedType.parse(value if value.startswith("ap_") else f"ap_{value}")
        for key, value in found.items()
    }
    size = int(entry.get("TableSize", DEFAULT_TABLE_SIZE))
    if "inv_table_size" not in entry:
        if input_t is None:
            return (
                "the input type of the softmax is unknown, so the table size hls4ml's "
                "FixSoftmaxTableSize pass chooses is too"
            )
        cut = min(input_t.width, types["inv_table_t"].width) - builder.size_bits_less
        size = min(size, 2**cut)
    return builder.build(entry, n, types, size, input_t)


def _vivado_tables(
    entry: Mapping[str, Any],
    n: int,
    types: Mapping[str, FixedType],
    size: int,
    input_t: FixedType | None,
) -> SoftmaxTables:
    del input_t  # only its width matters (the table size, cut by the caller)
    return SoftmaxTables(
        n=n,
        inp_norm_t=types["inp_norm_t"],
        exp_size=int(entry.get("exp_table_size", size)),
        exp_table_t=types["exp_table_t"],
        accum_t=types["accum_t"],
        inv_inp_t=types["inv_inp_t"],
        inv_size=int(entry.get("inv_table_size", size)),
        inv_table_t=types["inv_table_t"],
        result_t=types["result_t"],
    )


def _quartus_tables(
    entry: Mapping[str, Any],
    n: int,
    types: Mapping[str, FixedType],
    size: int,
    input_t: FixedType | None,
) -> QuartusSoftmaxTables | str:
    if input_t is None:
        return "the input type of the softmax is unknown (Quartus computes x - max in it)"
    del entry  # Quartus' template reads one table_size (TableSize), not exp/inv_table_size
    return QuartusSoftmaxTables(
        n=n,
        input_t=input_t,
        size=size,
        exp_table_t=types["exp_table_t"],
        inv_table_t=types["inv_table_t"],
        result_t=types["result_t"],
    )


@dataclass(frozen=True)
class _SoftmaxTemplate:
    """One backend family's ``stable`` softmax template: the layer keys and ``Precision``
    entries (``accum_t`` for ``accum``) its tables need, how many bits fewer than
    ``min(W_in, W_inv)`` hls4ml's ``FixSoftmaxTableSize`` gives its table address, and the
    function that makes its tables from the parsed types."""

    keys: tuple[str, ...]
    precision: tuple[str, ...]
    size_bits_less: int
    build: Callable[..., SoftmaxTables | QuartusSoftmaxTables | str]


_VIVADO_TEMPLATE = _SoftmaxTemplate(
    ("inp_norm_t", "exp_table_t", "inv_inp_t", "inv_table_t"),
    ("accum_t", "result_t"),
    0,
    _vivado_tables,
)
#: the analysed ``stable`` softmax template of each backend (lower-case hls4ml name)
_SOFTMAX_TEMPLATES: dict[str, _SoftmaxTemplate] = {
    "vivado": _VIVADO_TEMPLATE,
    "vitis": _VIVADO_TEMPLATE,
    # hls4ml 1.3's FixSoftmaxTableSize: "Intel want one extra bits for the table"
    "quartus": _SoftmaxTemplate(("exp_table_t", "inv_table_t"), ("result_t",), 1, _quartus_tables),
}


def _not_exact_before(model: Any, name: str) -> list[str]:
    """The layers before ``name`` (not itself) that are never bit-exact by design (tables,
    see ``LayerHandler.exact``)."""
    graph = {node.name: node for node in model_graph(model)}
    seen, todo, found = set(), list(graph[name].inputs), []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        layer = graph[current].layer
        if is_table(layer) or handler_for(layer).bound is not None:
            found.append(current)
        todo.extend(graph[current].inputs)
    return sorted(found)


def softmax_bounds(
    plan: ConversionPlan, *, on_grid: bool, backend: str = "vivado"
) -> dict[str, TableBound | str]:
    """For every table softmax of ``plan``: its derived bound
    (:func:`~hepfpga.firmware.verify_bounds.softmax_bound`, for logits spanning the feeding
    layer's whole type), or in words why none is derived. A bound needs exact logits (a
    QKeras model with no table before the softmax) or a model input as the logits (read
    within the input type's rounding when the events are not on its grid)."""
    model = plan.model
    inputs = set(input_names(model))
    found: dict[str, TableBound | str] = {}
    for node in model_graph(model):
        if not is_softmax(node.layer):
            continue
        entry = plan.hls_config["LayerName"].get(node.name, {})
        if entry.get("Skip") or entry.get("Implementation") == "argmax":
            continue  # no table: the logits, or the exact one-hot argmax
        (feeding,) = node.inputs
        logits_t = plan.precision[feeding].result
        error = 0.0
        before = _not_exact_before(model, node.name)
        if feeding in inputs:
            if not on_grid and not plan.quantized:
                error = logits_t.lsb / 2 if logits_t.rounding is not Rounding.TRN else logits_t.lsb
        elif not plan.quantized:
            found[node.name] = "its logits are a float model's profiled layer, not exact"
            continue
        elif before:
            found[node.name] = f"it reads the table layer(s) {', '.join(before)}"
            continue
        tables = softmax_tables(plan, node.name, backend)
        found[node.name] = (
            tables
            if isinstance(tables, str)
            else softmax_bound(
                tables,
                logits_t.max_value - logits_t.min_value,
                logit_error=error,
                logit_lsb=logits_t.lsb,
            )
        )
    return found


#: Keras' unit roundoff: float32 rounds each product and sum to 24 significant bits
_FLOAT32_UNIT = 2.0**-24
#: the layers a softmax's bound is carried through (linear maps of its error)
_CARRYING_CLASSES = ("Dense", "QDense")


def carried_bound(
    plan: ConversionPlan, softmax: str, bound: float, logits: str
) -> tuple[float, str] | str:
    """The bound on the layer ``logits`` (max |firmware - Keras| over its units) carried
    from the softmax ``softmax`` inside the model, whose traced output is judged within
    ``bound``; or in words why none is carried.

    Carried through a chain of Dense/QDense layers only (each reads the one before; the
    first reads the softmax). Such a layer computes ``y_i = sum_j W_ij x_j + b_i`` with the
    QKeras-quantized weights, exactly in its derived ``ap_fixed`` sum type in firmware and in
    float32 in Keras, so per unit

        t_i = sum_j |W_ij| t_j + lsb + (n + 1) u / (1 - (n + 1) u) * (sum_j |W_ij| a + |b_i|)

    where ``t_j`` is the bound on its input ``j`` (``bound`` for the softmax's outputs), the
    ``lsb`` of its result type covers a truncation (``AP_TRN``) should the type not hold the
    exact sum, the last term is float32's rounding of the ``n`` products and sums (``u =
    2**-24``; ``a`` the largest input magnitude: 1 after the softmax, else the range of the
    layer before's result type). The result is ``max_i t_i``. It holds on the events where the
    softmax meets ``bound`` (which the same requirement checks) and the result types do not
    overflow (hepfpga's derived sum types hold every sum of their input types). Any other
    layer on the way (an activation or quantizer, a merge) carries no bound: the reason says
    which."""
    graph = {node.name: node for node in model_graph(plan.model)}
    chain: list[str] = []
    current = logits
    while current != softmax:
        node = graph[current]
        if node.class_name not in _CARRYING_CLASSES or len(node.inputs) != 1:
            return (
                f"it passes through {node.class_name} '{current}'; a bound is carried through "
                "Dense/QDense layers only (a linear map of the softmax's error)"
            )
        chain.append(current)
        (current,) = node.inputs
    t = np.full(int(np.prod(plan.model.get_layer(softmax).output_shape[1:])), bound)
    largest = 1.0  # the softmax's outputs are in [0, 1]
    for name in reversed(chain):
        layer = graph[name].layer
        try:
            kernel, bias = quantized_weights(layer)
        except ConversionError as exc:
            return f"the weights of '{name}' are not quantized ({exc})"
        w = np.abs(np.asarray(kernel, dtype=np.float64))
        b = np.zeros(w.shape[1]) if bias is None else np.abs(np.asarray(bias, np.float64))
        n = w.shape[0] + 1
        gamma = n * _FLOAT32_UNIT / (1 - n * _FLOAT32_UNIT)
        result = plan.precision[name].result
        t = t @ w + result.lsb + gamma * (largest * w.sum(axis=0) + b)
        largest = max(abs(result.min_value), abs(result.max_value))
    through = ", ".join(f"'{name}'" for name in reversed(chain))
    carried = float(t.max())
    return carried, (
        f"{carried:.3g}, the bound carried from softmax '{softmax}' through {through} "
        f"(sum_j |W_ij| * bound + 1 lsb + float32 rounding, per unit)"
    )


def _input_fed(model: Any) -> set[str]:
    """Layers reading a model input directly."""
    inputs = set(input_names(model))
    return {node.name for node in model_graph(model) if set(node.inputs) & inputs}


@dataclass(frozen=True)
class Requirement:
    """What the firmware must reproduce: :attr:`text` in words, checked by :meth:`met_by`."""

    text: str
    #: the logits within this bound (layers never bit-exact by design); None: not this rule
    bound: float | None = None
    #: the logits within this tolerance (float models, or a given tolerance); None: exact
    tolerance: float | None = None
    #: the outputs must be exact too (no softmax, or an exact softmax choice)
    exact_outputs: bool = False
    #: output name -> the derived bound of the table activation that computes it (judged by
    #: that bound instead of the rule above; see :func:`table_bounds`)
    output_bounds: dict[str, float] = field(default_factory=dict)
    #: output name -> the derived bound of its final table softmax: the outputs (not the
    #: logits, which follow the rule above) within it (see :func:`softmax_bounds`)
    softmax_output_bounds: dict[str, float] = field(default_factory=dict)
    #: layer name -> the derived bound of a softmax inside the model: that layer's traced
    #: output within it (the outputs after it follow the rule above)
    layer_bounds: dict[str, float] = field(default_factory=dict)

    def met_by(
        self,
        comparisons: Iterable[Comparison] | Mapping[str, Comparison],
        layers: Iterable[LayerComparison] = (),
    ) -> bool:
        """Whether every output's comparison meets the requirement (``comparisons`` by
        output name for :attr:`output_bounds` and :attr:`softmax_output_bounds` to apply;
        ``layers``: the layer comparisons, for :attr:`layer_bounds`)."""
        by_layer = {layer.name: layer for layer in layers}
        for name, bound in self.layer_bounds.items():
            if name not in by_layer or by_layer[name].max_abs_diff > bound:
                return False
        if isinstance(comparisons, Mapping):
            for name, bound in self.softmax_output_bounds.items():
                if name in comparisons and comparisons[name].probs_max_abs_diff > bound:
                    return False
            bounded = {k: c for k, c in comparisons.items() if k in self.output_bounds}
            if not all(c.logits_max_abs_diff <= self.output_bounds[k] for k, c in bounded.items()):
                return False
            rest = [c for k, c in comparisons.items() if k not in bounded]
            return not rest or self._rule(rest)
        return self._rule(list(comparisons))

    def _rule(self, comparisons: list[Comparison]) -> bool:
        if self.bound is not None:
            return all(c.logits_max_abs_diff <= self.bound for c in comparisons)
        if self.tolerance is not None:
            return all(c.logits_max_abs_diff <= self.tolerance for c in comparisons)
        return all(
            c.logits_bit_exact and (not self.exact_outputs or c.probs_max_abs_diff == 0.0)
            for c in comparisons
        )


def requirement(
    plan: ConversionPlan,
    tolerance: float | None,
    *,
    exact_outputs: bool,
    on_grid: bool,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    backend: str = "vivado",
) -> Requirement:
    """What the firmware of ``plan`` must reproduce.

    QKeras models need bit-exact logits (and outputs, when ``exact_outputs``) unless
    ``tolerance`` is given or a layer is never bit-exact by design (then the logits within
    that ``bound``); float models need logits within ``tolerance`` (default
    :data:`FLOAT_TOLERANCE`). An output computed by a table activation (of a QKeras model,
    whose layers before it are exact, or of a float model's input: hls4ml's activation tests)
    is judged by the table's derived bound instead (:func:`table_bounds`, stated with its
    derivation) unless ``tolerance`` is given.
    ``on_grid``: the events were rounded to the input grid; ``ranges``: each layer's (min,
    max) over the events (:func:`table_bounds`).

    A table softmax (``stable``) is judged by its derived bound (:func:`softmax_bounds`): a
    final one's outputs (its logits by the rule above), one inside the model its own traced
    output (the outputs after it by the rule above: bit-exact for a QKeras model, which the
    table need not allow; the text says so). Where no bound is derived the text says why
    and which outputs are then not judged."""
    base = _requirement(plan, tolerance, exact_outputs=exact_outputs, on_grid=on_grid)
    if tolerance is not None:
        return base
    base = _with_softmax(base, plan, on_grid=on_grid, backend=backend)
    bounds = table_bounds(plan, on_grid=on_grid, ranges=ranges)
    fed = _input_fed(plan.model)
    logits = logits_layer_names(plan.model)
    judged = {
        output: bounds[name]
        for output, name in logits.items()
        # a QKeras model's layers before the table are exact (so its input agrees); a float
        # model's are profiled, so only a table reading a model input has a bound of its own
        if output == name and name in bounds and (plan.quantized or name in fed)
    }
    if not judged:
        return base
    stated = "; ".join(f"'{name}' ({b.how})" for name, b in judged.items())
    text = f"each output within its table's derived bound: {stated}"
    if len(judged) < len(logits):
        text = f"{base.text} (other outputs); {text}"
    return replace(
        base,
        text=text,
        output_bounds={**base.output_bounds, **{k: b.bound for k, b in judged.items()}},
    )


def _with_softmax(
    base: Requirement, plan: ConversionPlan, *, on_grid: bool, backend: str
) -> Requirement:
    """``base`` with every table softmax judged by its derived bound, or the reason there
    is none, stated (see :func:`requirement`)."""
    found = softmax_bounds(plan, on_grid=on_grid, backend=backend)
    if not found:
        return base
    logits_of = logits_layer_names(plan.model)
    finals = {output for output, logits in logits_of.items() if output != logits}
    outputs: dict[str, float] = {}
    layers: dict[str, float] = {}
    carried_bounds: dict[str, float] = {}
    said: list[str] = []
    for name, bound in found.items():
        final = name in finals
        if isinstance(bound, str):
            what = "outputs" if final else "traced output"
            said.append(f"softmax '{name}' {what} not judged: no bound derived ({bound})")
            continue
        (outputs if final else layers)[name] = bound.bound
        where = "outputs" if final else "(inside the model): its traced output"
        said.append(f"softmax '{name}' {where} within its derived bound ({bound.how})")
        if not final and plan.quantized and base.bound is None:
            after = [
                output
                for output, logits in logits_of.items()
                if name in _not_exact_before(plan.model, logits) or logits == name
            ]
            for output in after:
                carried = carried_bound(plan, name, bound.bound, logits_of[output])
                if isinstance(carried, str):
                    said.append(
                        f"output '{output}' after it: bit-exact, which the softmax's table "
                        f"need not allow (no bound is carried: {carried}; give a tolerance "
                        "to judge it by it)"
                    )
                    continue
                carried_bounds[output] = carried[0]
                said.append(f"output '{output}' after it: logits within {carried[1]}")
    return replace(
        base,
        text=f"{base.text}; {'; '.join(said)}",
        softmax_output_bounds=outputs,
        layer_bounds=layers,
        output_bounds={**base.output_bounds, **carried_bounds},
    )


def _requirement(
    plan: ConversionPlan, tolerance: float | None, *, exact_outputs: bool, on_grid: bool
) -> Requirement:
    where = " on the input grid" if on_grid else ""
    bound = approximate_bound(plan.model) if tolerance is None and plan.quantized else None
    if bound is not None:
        # layers that are never bit-exact (tables inside): the stated bound, not bit-exact
        text = f"logits within {bound:g} (max |diff|){where}: {bound_reason(plan.model)}"
        return Requirement(text, bound=bound)
    if tolerance is None and plan.quantized:
        outputs = " and outputs" if exact_outputs else ""
        return Requirement(f"bit-exact logits{outputs}{where}", exact_outputs=exact_outputs)
    tolerance = FLOAT_TOLERANCE if tolerance is None else float(tolerance)
    return Requirement(f"logits within {tolerance:g} (max |diff|){where}", tolerance=tolerance)
