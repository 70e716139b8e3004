"""The plan of a verification: the checked events, the conversion plan built from them, and
what the firmware must reproduce (:func:`requirement`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hepfpga.errors import DataError
from hepfpga.firmware.data import validate_events
from hepfpga.firmware.hls_config import ConversionPlan, hls4ml_ready_model, plan_conversion
from hepfpga.firmware.layers import handler_for, model_graph
from hepfpga.firmware.layers.graph import input_names
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.precision import check_supported, is_quantized, profile_ranges
from hepfpga.firmware.verify_report import Comparison

__all__ = [
    "FLOAT_TOLERANCE",
    "Requirement",
    "approximate_bound",
    "bound_reason",
    "check_events",
    "check_input_ranges",
    "plan_for_events",
    "requirement",
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

    def met_by(self, comparisons: Iterable[Comparison]) -> bool:
        """Whether every output's comparison meets the requirement."""
        if self.bound is not None:
            return all(c.logits_max_abs_diff <= self.bound for c in comparisons)
        if self.tolerance is not None:
            return all(c.logits_max_abs_diff <= self.tolerance for c in comparisons)
        return all(
            c.logits_bit_exact and (not self.exact_outputs or c.probs_max_abs_diff == 0.0)
            for c in comparisons
        )


def requirement(
    plan: ConversionPlan, tolerance: float | None, *, exact_outputs: bool, on_grid: bool
) -> Requirement:
    """What the firmware of ``plan`` must reproduce.

    QKeras models need bit-exact logits (and outputs, when ``exact_outputs``) unless
    ``tolerance`` is given or a layer is never bit-exact by design (then the logits within
    that ``bound``); float models need logits within ``tolerance`` (default
    :data:`FLOAT_TOLERANCE`). ``on_grid``: the events were rounded to the input grid."""
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
