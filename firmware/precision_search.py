"""Per-layer types of an hls4ml firmware chosen automatically, without vendor tools.

:func:`search_precision` searches the result/accumulator/weight widths of every layer of a
QKeras model's firmware (hls4ml ``firmware.layer_types`` overrides, see
:class:`~hepfpga.firmware.options.LayerTypes`) with Optuna, under one of two constraints
(:class:`Constraint`):

* ``bit-exact``: the logits of the candidate equal, bit for bit and on every event given,
  those of the *unconstrained firmware* (the types derived from the quantizers,
  :func:`hepfpga.firmware.hls_config.plan_conversion`);
* ``accuracy``: the classification accuracy (argmax of the logits against the labels) drops
  by at most ``epsilon`` from the unconstrained firmware's.

A candidate costs about a second, with no compiler and no vendor tool:

* its **outputs** come from hepfpga's bit-exact fixed-point engine
  (:mod:`hepfpga.firmware.emulate_engine`), built from the candidate's hls4ml ``ModelGraph``
  (converted, never written or compiled). The engine is proven against the C simulation
  elsewhere; the *chosen* configuration is proven again by the caller with one real C
  simulation (:mod:`hepfpga.pipeline.optimize_precision`).
* its **cost** comes from da4ml (:func:`trace_plan`): the candidate's arithmetic, taken from
  the very engine steps that computed its outputs, is traced into da4ml's adder graph; da4ml's
  LUT estimate and adder depth are the objectives. Layers are traced one at a time and cached
  on (layer, input type, weights, output types), so a search re-solves only the layers a
  trial changes. The estimate is calibrated against yosys on the final Pareto points by the
  caller (the ratio and its spread are reported).

The knobs (:func:`search_space`; ``ap_fixed<W,I>`` notation, see
:mod:`hepfpga.quantize.fixed`):

* **input** (the input layer and the input quantizer after it, one type): integer bits ``I``
  and fractional bits ``F``, rounding and saturation kept (``AP_RND_CONV, AP_SAT``: a float
  feature beyond the range saturates, never wraps);
* **Dense result and accumulator**: integer bits ``I`` shared by both, ``AP_TRN, AP_WRAP``.
  The accumulator keeps every fractional bit of the products (``F_in + F_w``), so no product
  is rounded; a sum beyond ``I`` bits **wraps** (modular arithmetic: the result equals the
  wide sum wrapped once, whatever the summation order). The result may drop low fractional
  bits (``AP_TRN``: truncation towards minus infinity);
* **Dense weights and biases are not searched**: hls4ml 1.3.0 stores a QKeras layer's
  weights in its quantizer's type whatever ``layer_types`` says (an override of ``weight``
  leaves the products as wide as before, measured on the jet tagger), so their widths are
  the quantizer's: train with narrower kernel quantizers (``hepfpga scan``) or with HGQ to
  change them;
* **quantized activations** (``quantized_relu``/``quantized_bits`` results): fractional bits
  dropped, integer bits, rounding and saturation kept.

**Bit-exact mode: proven widths, no trials** (:func:`proven_bounds`). The widths come from
a proof that holds for *every* input the input type can hold, not from the events:

* integer bits: interval arithmetic from the input type's range (``[min_value, max_value]``
  of the input quantizer's type, which saturates) through each layer's quantized weights and
  biases, neuron by neuron (``lo_j = b_j + sum_i min(w_ij lo_i, w_ij hi_i)``, ``hi_j``
  alike), then through each activation's own conversion (monotone: relu, rounding and
  saturation map the interval's ends). A Dense layer gets the fewest signed integer bits
  ``I`` with ``-2**(I-1) <= lo`` and ``hi < 2**(I-1)``: its sums never wrap, so its values
  equal the unconstrained firmware's for every input. The first layer's bound is attained
  (each input feature reaches either end of its range independently); deeper bounds are
  upper bounds (correlations between neurons are ignored), so they may keep a bit the
  events never use. The events' own need (the calibration) is reported beside it
  (:attr:`LayerBound.events_integer`) and is **not** used in this mode: narrower than the
  proof, a sum can wrap on an input the events do not contain;
* fractional bits: dropped only where they are provably zero for every input: a Dense
  result keeps the bits of its product grid (``F_in + f_w`` with ``f_w`` the fewest
  fractional bits that hold every quantized weight, and ``f_b`` likewise for the biases:
  ``max(F_in + f_w, f_b)``), an activation whose input grid is coarser than its type and
  that cannot saturate keeps its input's grid. The input's own type is kept (a float
  feature uses every bit).

With every knob fixed by the proof there is nothing left to search: the proven candidate is
the answer, Optuna is not run, and the result says so (:attr:`PrecisionSearchResult.proven`);
the candidate is still emulated on every event given and must match bit for bit (a mismatch
is a bug of the proof, raised as :class:`~hepfpga.errors.VerificationError`).
:attr:`PrecisionSearchResult.old_space_unproven_share` is the share of the former search
space (integer bits down to 1, up to 8 fractional bits dropped per knob) that the proof does
not cover: the expected fraction of uniformly drawn trials (how Optuna's TPE sampler draws
its first ten) that could break exactness on some input.

**Accuracy mode** (``epsilon``): Optuna searches the knobs (trial 0 is the unconstrained
firmware, trial 1 the proven candidate) on the *search* events; a share ``holdout`` of the
events given (drawn with the seed) is kept aside and never scored. The chosen candidate is
the cheapest whose accuracy drop on the **held-out** events is at most ``epsilon``
(candidates are checked in order of cost; those that fail are listed in
:attr:`PrecisionSearchResult.rejected_on_heldout`; the unconstrained firmware always
qualifies). Both accuracies are reported (:attr:`CandidateResult.accuracy` on the search
events, :attr:`CandidateResult.heldout_accuracy`).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hepfpga.errors import ConfigError, ConversionError, DataError, VerificationError
from hepfpga.firmware.emulate import Emulator
from hepfpga.firmware.emulate_engine.plan import Plan, build_plan
from hepfpga.firmware.emulate_engine.steps import ConvertStep, MatmulStep
from hepfpga.firmware.hls_config import ConversionPlan, plan_conversion
from hepfpga.firmware.layers.graph import model_graph
from hepfpga.firmware.layers.tracers import apply_elementwise
from hepfpga.firmware.options import FirmwareOptions, LayerTypes
from hepfpga.firmware.rtl.trace import DEFAULT_SOLVER_OPTIONS, TracedNetwork, round_half_even
from hepfpga.quantize.fixed import FixedType, Rounding, Saturation

__all__ = [
    "DEFAULT_HOLDOUT",
    "CandidateResult",
    "Constraint",
    "Knob",
    "LayerBound",
    "PrecisionSearch",
    "PrecisionSearchResult",
    "candidate_types",
    "cost_of",
    "proven_bounds",
    "proven_values",
    "search_precision",
    "search_space",
    "split_events",
    "trace_plan",
    "unproven_share",
]

log = logging.getLogger("hepfpga.firmware.precision_search")


class Constraint(enum.Enum):
    """What a candidate must keep from the unconstrained firmware."""

    #: the logits, bit for bit on every event
    BIT_EXACT = "bit-exact"
    #: the accuracy, within ``epsilon``
    ACCURACY = "accuracy"


#: share of the events the accuracy mode keeps aside to check its choice on
DEFAULT_HOLDOUT = 0.5

#: how many fractional bits a knob may drop at most (a wider search gains nothing: the
#: narrowest useful widths sit well within it on the networks tried)
MAX_DROPPED_BITS = 8


@dataclass(frozen=True)
class Knob:
    """One searched integer: ``layer``'s ``what`` in ``[low, high]``; ``high`` is the
    unconstrained firmware's value."""

    layer: str
    #: ``input_integer``, ``input_fractional``, ``integer`` (Dense result and accumulator),
    #: ``result_fractional``, ``activation_fractional``
    what: str
    low: int
    high: int

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.what}"


# -- the search space --------------------------------------------------------------------------
def _is_dense(types: Any) -> bool:
    return types.weight is not None and types.accum is not None


def _input_chain(plan: ConversionPlan) -> list[str]:
    """The input layer and the pass-through quantizers after it that share its type (one
    hardware type: hls4ml removes such a quantizer as a no-op cast)."""
    nodes = model_graph(plan.model)
    first = nodes[0]
    chain = [first.name]
    for node in nodes[1:]:
        types = plan.precision[node.name]
        if (
            tuple(node.inputs) == (chain[-1],)
            and not _is_dense(types)
            and types.result == plan.precision[first.name].result
        ):
            chain.append(node.name)
        else:
            break
    return chain


def search_space(plan: ConversionPlan) -> list[Knob]:
    """The knobs of the model of ``plan`` (see the module notes), for a chain of Dense
    layers and quantized activations with a final softmax; other layers are refused."""
    if not plan.quantized:
        raise ConversionError(
            "the precision search needs a QKeras model (the unconstrained types come from its "
            "quantizers); this model has float layers"
        )
    knobs: list[Knob] = []
    chain = _input_chain(plan)
    t_in = plan.precision[chain[0]].result
    knobs.append(Knob(chain[0], "input_integer", 1, t_in.integer))
    knobs.append(
        Knob(
            chain[0],
            "input_fractional",
            max(0, t_in.fractional - MAX_DROPPED_BITS),
            t_in.fractional,
        )
    )
    nodes = model_graph(plan.model)
    for node in nodes:
        if node.name in chain:
            continue
        types = plan.precision[node.name]
        kind = node.class_name
        if _is_dense(types):
            if types.scale is not None:
                raise ConversionError(f"layer '{node.name}' has a scale type; not searched")
            r = types.result
            knobs.append(Knob(node.name, "integer", 1, r.integer))
            knobs.append(
                Knob(
                    node.name,
                    "result_fractional",
                    max(0, r.fractional - MAX_DROPPED_BITS),
                    r.fractional,
                )
            )
        elif kind == "QActivation":
            r = types.result
            if r.fractional > 0:
                knobs.append(
                    Knob(
                        node.name,
                        "activation_fractional",
                        max(1, r.fractional - MAX_DROPPED_BITS),
                        r.fractional,
                    )
                )
        elif node.name == nodes[-1].name and node.name != plan.logits_layer:
            continue  # the final softmax: not searched (the logits are)
        else:
            raise ConversionError(
                f"layer '{node.name}' ({kind}) is not searched by the precision optimiser; "
                "it takes Dense/QDense layers, quantized activations and a final softmax"
            )
    return knobs


def candidate_types(plan: ConversionPlan, values: Mapping[str, int]) -> dict[str, LayerTypes]:
    """``firmware.layer_types`` of the candidate ``values`` (knob name -> value; a missing
    knob keeps the unconstrained value). Only layers that differ are listed."""
    types: dict[str, LayerTypes] = {}
    chain = _input_chain(plan)
    base_in = plan.precision[chain[0]].result
    i_in = values.get(f"{chain[0]}.input_integer", base_in.integer)
    f_in = values.get(f"{chain[0]}.input_fractional", base_in.fractional)
    t_in = replace(base_in, width=i_in + f_in, integer=i_in)
    if t_in != base_in:
        for name in chain:
            types[name] = LayerTypes(result=t_in)
    # the fractional bits each layer's output carries, for the exact accumulators
    frac: dict[str, int] = {name: t_in.fractional for name in chain}
    for node in model_graph(plan.model):
        if node.name in chain:
            continue
        base = plan.precision[node.name]
        incoming = frac.get(node.inputs[0], 0) if node.inputs else 0
        if _is_dense(base):
            i = values.get(f"{node.name}.integer", base.result.integer)
            f_r = values.get(f"{node.name}.result_fractional", base.result.fractional)
            assert base.weight is not None and base.accum is not None  # _is_dense
            f_acc = incoming + base.weight.fractional  # every product exact
            trn, wrap = Rounding.TRN, Saturation.WRAP
            accum = FixedType(i + f_acc, i, base.accum.signed, trn, wrap)
            result = FixedType(i + min(f_r, f_acc), i, base.result.signed, trn, wrap)
            if (result, accum) != (base.result, base.accum):
                types[node.name] = LayerTypes(result=result, accum=accum)
            frac[node.name] = result.fractional
        elif f"{node.name}.activation_fractional" in values:
            r = base.result
            f_a = values[f"{node.name}.activation_fractional"]
            result = replace(r, width=r.integer + f_a)
            if result != r:
                types[node.name] = LayerTypes(result=result)
            frac[node.name] = result.fractional
        else:
            frac[node.name] = base.result.fractional
    return types


# -- the cost: da4ml on the engine's steps -----------------------------------------------------
def _kif(t: FixedType) -> tuple[int, int, int]:
    return int(t.signed), t.integer - int(t.signed), t.fractional


def _accum_fractional(step: MatmulStep) -> int:
    """Fractional bits of the step's accumulator: its result conversion scales raw codes by
    ``2**(result fractional - accumulator fractional)``."""
    return step.out_type.fractional - round(math.log2(step.result.scale))


def _accum_type(step: MatmulStep) -> FixedType:
    """The accumulator type a wrapping sum is reduced to (``AP_TRN, AP_WRAP``)."""
    wrap = step.accum_wrap
    if wrap is None:
        raise ConversionError(f"layer '{step.name}': its sum never wraps")
    frac = _accum_fractional(step)
    return FixedType(wrap.width, wrap.width - frac, wrap.lo < 0, Rounding.TRN, Saturation.WRAP)


def _step_real_weights(step: MatmulStep, in_type: FixedType) -> tuple[np.ndarray, np.ndarray]:
    """The real-valued kernel and bias of a Dense step: its raw weights (scaled to the
    accumulator's raw codes for raw inputs) back in real units."""
    acc_frac = _accum_fractional(step)
    # the engine may have folded the next conversion's power-of-two scale into the weights
    unscale = 1.0 / step.output_scale
    w = np.asarray(step.w, dtype=np.float64) * unscale * 2.0 ** (in_type.fractional - acc_frac)
    b = np.asarray(step.b, dtype=np.float64) * unscale * 2.0**-acc_frac
    return w, b


def _variables(t: FixedType, n: int, options: dict[str, Any]) -> Any:
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.trace import FixedVariableArray, HWConfig

    k, i, f = _kif(t)
    return FixedVariableArray.from_kif(
        np.full(n, k),
        np.full(n, i),
        np.full(n, f),
        hwconf=HWConfig(1, -1, -1),
        solver_options=options,
    )


def _convert(x: Any, to: FixedType) -> Any:
    """``(to) x`` on da4ml variables: ``AP_TRN``/``AP_RND_CONV`` with ``AP_SAT``/``AP_WRAP``."""
    return apply_elementwise(x, lambda v: round_half_even(v, to))


def _trace_step(step: Any, x: Any, in_type: FixedType) -> Any:
    """One engine step on da4ml variables, the same arithmetic as the step's numpy code."""
    if isinstance(step, MatmulStep):
        if step.patches is not None or step.per_product is not None:
            raise ConversionError(
                f"layer '{step.name}': convolutions and rounded products are not traced by "
                "the precision search"
            )
        w, b = _step_real_weights(step, in_type)
        y = x @ w
        y = y + b
        if step.accum_wrap is not None:
            y = _convert(y, _accum_type(step))
        return _convert(y, step.out_type)
    if isinstance(step, ConvertStep):
        if len(step.shape) != 1:
            raise ConversionError(f"layer '{step.name}': a {len(step.shape)}-d conversion")
        if step.relu:
            x = apply_elementwise(x, lambda v: v.relu())
        return _convert(x, step.out_type)
    raise ConversionError(
        f"layer '{step.name}' ({type(step).__name__}) is not traced by the precision search; "
        "it takes Dense layers and activations"
    )


def _traced_steps(plan: Plan, until: str) -> list[Any]:
    steps = []
    for step in plan.steps:
        steps.append(step)
        if step.output == until:
            return steps
    raise ConversionError(f"the tensor '{until}' is not computed by the engine plan")


def trace_plan(
    plan: Plan, logits_tensor: str, options: dict[str, Any] | None = None
) -> TracedNetwork:
    """The whole candidate, from its input codes to its logits, as one da4ml network (for
    the RTL of the final points; the search itself costs layer by layer, :class:`_LayerCosts`)."""
    # deferred, optional: da4ml (hepfpga[hardware])
    from da4ml.trace import comb_trace

    spec = plan.inputs[0]
    n_in = int(math.prod(spec.shape))
    x_in = _variables(spec.type, n_in, dict(options or DEFAULT_SOLVER_OPTIONS))
    x, t = x_in, spec.type
    types = {spec.tensor: spec.type}
    names = []
    for step in _traced_steps(plan, logits_tensor):
        t = types[step.inputs[0]]
        x = _trace_step(step, x, t)
        types[step.output] = step.out_type
        names.append(step.name)
    out = x.ravel()
    return TracedNetwork(
        comb=comb_trace(x_in.ravel(), out),
        input_type=spec.type,
        input_shape=tuple(spec.shape),
        output_layer=names[-1],
        n_outputs=int(out.size),
        layers=tuple(names),
    )


class _LayerCosts:
    """da4ml's LUT estimate and adder depth per engine step, cached on what determines them."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or DEFAULT_SOLVER_OPTIONS)
        self.cache: dict[str, tuple[float, float]] = {}
        self.solves = 0

    def _key(self, step: Any, in_type: FixedType) -> str:
        h = hashlib.sha1()
        h.update(f"{type(step).__name__}|{step.name}|{in_type}|{step.out_type}".encode())
        if isinstance(step, MatmulStep):
            wrapped = _accum_type(step) if step.accum_wrap is not None else None
            h.update(f"{_accum_fractional(step)}|{wrapped}".encode())
            h.update(np.ascontiguousarray(step.w, dtype=np.float64).tobytes())
            h.update(np.ascontiguousarray(step.b, dtype=np.float64).tobytes())
        else:
            h.update(f"{step.relu}".encode())
        return h.hexdigest()

    def step_cost(self, step: Any, in_type: FixedType) -> tuple[float, float]:
        key = self._key(step, in_type)
        if key not in self.cache:
            # deferred, optional: da4ml (hepfpga[hardware])
            from da4ml.trace import comb_trace

            n = int(math.prod(step.shape)) if isinstance(step, ConvertStep) else step.w.shape[0]
            x = _variables(in_type, n, self.options)
            y = _trace_step(step, x, in_type)
            comb = comb_trace(x.ravel(), y.ravel())
            self.cache[key] = (float(comb.cost), float(comb.latency[1]))
            self.solves += 1
        return self.cache[key]

    def plan_cost(self, plan: Plan, logits_tensor: str) -> tuple[float, float]:
        """(LUT estimate, adder depth) of the candidate: sums over its layers."""
        types = {plan.inputs[0].tensor: plan.inputs[0].type}
        luts = depth = 0.0
        for step in _traced_steps(plan, logits_tensor):
            lut, d = self.step_cost(step, types[step.inputs[0]])
            luts, depth = luts + lut, depth + d
            types[step.output] = step.out_type
        return luts, depth


# -- the proof of the bit-exact widths ---------------------------------------------------------
@dataclass(frozen=True)
class LayerBound:
    """What every input of the input type's range can make a layer's result reach (see the
    module notes, *Bit-exact mode*); real units."""

    layer: str
    #: the proven range of the layer's result over every input (the unconstrained firmware)
    lo: float
    hi: float
    #: signed integer bits that hold ``[lo, hi]`` (Dense: result and accumulator; the input
    #: and the activations keep their own type's)
    integer: int
    #: fractional bits that may be non-zero for some input (the rest are provably zero)
    fractional: int
    #: the unconstrained firmware's integer and fractional bits
    base_integer: int
    base_fractional: int
    #: the integer bits the events given need (calibration; reported, not used by the proof)
    events_integer: int | None = None


def _grid(values: np.ndarray, limit: int) -> int:
    """The fewest fractional bits (``<= limit``) that hold every value exactly."""
    for f in range(limit + 1):
        scaled = np.ldexp(np.asarray(values, dtype=np.float64), f)
        if np.array_equal(scaled, np.floor(scaled)):
            return f
    return limit


def _signed_integer_bits(lo: float, hi: float) -> int:
    """The fewest signed integer bits ``I >= 1`` with ``-2**(I-1) <= lo`` and
    ``hi < 2**(I-1)`` (the values are on the type's grid, so ``hi`` then fits)."""
    bits = 1
    while not (-(2.0 ** (bits - 1)) <= lo and hi < 2.0 ** (bits - 1)):
        bits += 1
    return bits


def _convert_interval(lo: np.ndarray, hi: np.ndarray, to: FixedType) -> tuple[Any, Any]:
    """``(to) x`` on an interval, element by element: rounding and saturation are monotone,
    so the ends convert alone; a wrap is not, so a type that may wrap gives its whole range."""
    if to.saturation is Saturation.WRAP:
        top = to.max_value if to.rounding is Rounding.TRN else to.max_value - to.lsb
        if np.any(lo < to.min_value) or np.any(hi > top):
            return np.full_like(lo, to.min_value), np.full_like(hi, to.max_value)
        to = replace(to, saturation=Saturation.SAT)
    return to.quantize(lo), to.quantize(hi)


def proven_bounds(plan: Plan, logits_tensor: str, base: ConversionPlan) -> dict[str, LayerBound]:
    """Interval arithmetic over the unconstrained firmware's engine ``plan`` (its quantized
    weights, its types), from the input type's whole range to the logits: per layer, the
    range every input can reach and the fractional bits that can be non-zero (see the
    module notes, *Bit-exact mode*). Dense layers and elementwise conversions only."""
    spec = plan.inputs[0]
    n_in = int(math.prod(spec.shape))
    t_in = spec.type
    lo = np.full(n_in, t_in.min_value)
    hi = np.full(n_in, t_in.max_value)
    chain = _input_chain(base)
    bounds = {
        chain[0]: LayerBound(
            chain[0],
            float(lo.min()),
            float(hi.max()),
            t_in.integer,
            t_in.fractional,
            t_in.integer,
            t_in.fractional,
        )
    }
    state: dict[str, tuple[np.ndarray, np.ndarray, int, FixedType]] = {
        spec.tensor: (lo, hi, t_in.fractional, t_in)
    }
    for step in _traced_steps(plan, logits_tensor):
        lo, hi, grid, in_type = state[step.inputs[0]]
        out = step.out_type
        if isinstance(step, MatmulStep):
            if step.patches is not None or step.per_product is not None:
                raise ConversionError(
                    f"layer '{step.name}': convolutions and rounded products are not bounded "
                    "by the precision search"
                )
            w, b = _step_real_weights(step, in_type)
            acc_frac = _accum_fractional(step)
            s_lo = b + np.minimum(w * lo[:, None], w * hi[:, None]).sum(axis=0)
            s_hi = b + np.maximum(w * lo[:, None], w * hi[:, None]).sum(axis=0)
            if step.accum_wrap is not None:
                raise ConversionError(
                    f"layer '{step.name}': the unconstrained firmware's sum may wrap; its "
                    "widths cannot be proven"
                )
            # products on the grid of the input's grid plus the weights'; the bias on its own
            grid = min(max(grid + _grid(w, acc_frac), _grid(b, acc_frac)), acc_frac)
            integer = _signed_integer_bits(float(s_lo.min()), float(s_hi.max()))
            new_lo, new_hi = _convert_interval(s_lo, s_hi, out)
            grid = min(grid, out.fractional)
            bounds[step.name] = LayerBound(
                step.name,
                float(s_lo.min()),
                float(s_hi.max()),
                integer,
                grid,
                out.integer,
                out.fractional,
            )
        elif isinstance(step, ConvertStep):
            if len(step.shape) != 1:
                raise ConversionError(f"layer '{step.name}': a {len(step.shape)}-d conversion")
            r_lo, r_hi = (np.maximum(lo, 0.0), np.maximum(hi, 0.0)) if step.relu else (lo, hi)
            saturates = bool(np.any(r_lo < out.min_value) or np.any(r_hi > out.max_value))
            new_lo, new_hi = _convert_interval(r_lo, r_hi, out)
            grid = out.fractional if saturates or grid > out.fractional else grid
            bounds[step.name] = LayerBound(
                step.name,
                float(new_lo.min()),
                float(new_hi.max()),
                out.integer,
                grid,
                out.integer,
                out.fractional,
            )
        else:
            raise ConversionError(
                f"layer '{step.name}' ({type(step).__name__}) is not bounded by the precision "
                "search; it takes Dense layers and activations"
            )
        state[step.output] = (np.asarray(new_lo), np.asarray(new_hi), grid, out)
    return bounds


def proven_values(knobs: Sequence[Knob], bounds: Mapping[str, LayerBound]) -> dict[str, int]:
    """Knob values of the proven candidate: the input's type kept, each Dense layer's integer
    bits and result fractional bits and each activation's fractional bits the proven ones."""
    values: dict[str, int] = {}
    for knob in knobs:
        bound = bounds.get(knob.layer)
        if knob.what in ("input_integer", "input_fractional") or bound is None:
            values[knob.name] = knob.high
        elif knob.what == "integer":
            values[knob.name] = min(bound.integer, knob.high)
        elif knob.what == "result_fractional":
            values[knob.name] = min(bound.fractional, knob.high)
        elif knob.what == "activation_fractional":
            # ap_(u)fixed needs a width of at least one bit
            values[knob.name] = min(max(bound.fractional, 1 - bound.base_integer), knob.high)
        else:
            values[knob.name] = knob.high
    return values


def unproven_share(knobs: Sequence[Knob], values: Mapping[str, int]) -> float:
    """The share of the knob space (uniform over each knob's ``[low, high]``) outside the
    proven region (each knob at least its proven value): candidates that may break
    exactness on some input."""
    inside = 1.0
    for knob in knobs:
        span = knob.high - knob.low + 1
        safe = knob.high - max(values.get(knob.name, knob.high), knob.low) + 1
        inside *= safe / span
    return 1.0 - inside


# -- evaluating a candidate --------------------------------------------------------------------
@dataclass
class CandidateResult:
    """One evaluated candidate."""

    number: int
    layer_types: dict[str, LayerTypes]
    #: fraction of events whose logits equal the unconstrained firmware's
    fraction_identical: float
    accuracy: float | None
    #: da4ml's LUT estimate, summed over the layers (None: not costed, the candidate breaks
    #: the constraint)
    lut_estimate: float | None
    #: da4ml's adder depth (delay units of one carry-chain adder), summed over the layers
    adder_depth: float | None
    feasible: bool
    seconds: float
    #: accuracy on the held-out events (accuracy mode: the events the search never scored)
    heldout_accuracy: float | None = None

    def plain_types(self) -> dict[str, dict[str, str]]:
        """``firmware.layer_types`` as a YAML/JSON mapping of hls4ml type strings."""
        return {
            layer: {key: t.to_hls() for key, t in types.items()}
            for layer, types in self.layer_types.items()
        }


@dataclass
class PrecisionSearchResult:
    """What :func:`search_precision` found."""

    constraint: Constraint
    epsilon: float | None
    n_events: int
    baseline: CandidateResult
    trials: list[CandidateResult]
    #: the feasible candidate of lowest LUT estimate (ties: lower depth)
    best: CandidateResult
    #: feasible candidates on the (LUT estimate, adder depth) Pareto front, by LUT
    pareto: list[CandidateResult]
    knobs: list[Knob]
    seed: int
    #: layers traced by da4ml (the rest came from the cache)
    da4ml_solves: int = 0
    seconds: float = 0.0
    baseline_accuracy: float | None = field(default=None)
    #: the trials asked for, and those Optuna ran (bit-exact mode: 0, the proof decides)
    trials_requested: int = 0
    trials_spent: int = 0
    #: bit-exact mode: the answer is the proven candidate (no search was needed)
    proven: bool = False
    #: per layer: the proven range and widths, and the events' integer bits
    bounds: list[LayerBound] = field(default_factory=list)
    #: bit-exact mode: share of the former search space the proof does not cover (the
    #: expected share of uniformly drawn trials that could break exactness on some input)
    old_space_unproven_share: float | None = None
    #: accuracy mode: events held out of the search, their accuracy of the unconstrained
    #: firmware, and the trials cheaper than the chosen one that broke epsilon on them
    n_heldout: int = 0
    heldout_baseline_accuracy: float | None = None
    rejected_on_heldout: list[int] = field(default_factory=list)

    #: ``trials_requested * old_space_unproven_share``: the trials the former search space
    #: would have spent, in expectation, on candidates the proof does not cover
    trials_wasted_before: float | None = None


class PrecisionSearch:
    """Evaluates candidates of one model on fixed events (see the module notes)."""

    def __init__(
        self,
        model: Any,
        events: np.ndarray,
        labels: np.ndarray | None = None,
        options: FirmwareOptions | None = None,
    ) -> None:
        self.options = options if options is not None else FirmwareOptions()
        if self.options.io_type.value != "io_parallel":
            raise ConfigError(
                "the precision search emulates io_parallel firmware; got "
                f"{self.options.io_type.value}",
                path="firmware.io_type",
            )
        self.model = model
        self.events = np.asarray(events, dtype=np.float32)
        if self.events.ndim != 2 or not len(self.events):
            raise DataError(
                f"expected events as a non-empty 2-d array, got shape {self.events.shape}"
            )
        self.labels = None if labels is None else np.asarray(labels)
        if self.labels is not None and len(self.labels) != len(self.events):
            raise DataError(
                f"{len(self.labels)} labels for {len(self.events)} events; give one per event"
            )
        self.base_plan = plan_conversion(model, replace(self.options, layer_types={}))
        self.knobs = search_space(self.base_plan)
        self.costs = _LayerCosts()
        self._scratch = tempfile.TemporaryDirectory(prefix="hepfpga-precision-")
        self.reference_logits: np.ndarray | None = None

    def close(self) -> None:
        self._scratch.cleanup()

    def engine(self, layer_types: Mapping[str, LayerTypes]) -> tuple[Plan, str]:
        """The engine plan of a candidate and the tensor of its logits."""
        # deferred: hls4ml loads slowly
        import hls4ml

        options = replace(self.options, layer_types=dict(layer_types))
        conversion = plan_conversion(self.model, options)
        try:
            graph = hls4ml.converters.convert_from_keras_model(
                conversion.model,
                hls_config=conversion.hls_config,
                output_dir=self._scratch.name,
                project_name=options.project_name,
                backend=options.backend.info.hls4ml_name,
                io_type=options.io_type.value,
                part=options.effective_part,
                clock_period=options.clock_period,
            )
        except Exception as exc:  # hls4ml raises bare Exception
            raise ConversionError(f"hls4ml could not convert the candidate: {exc}") from exc
        plan = build_plan(graph)
        return plan, plan.layer_outputs[conversion.logits_layer]

    def logits(self, plan: Plan, tensor: str) -> np.ndarray:
        logits_layer = next(name for name, t in plan.layer_outputs.items() if t == tensor)
        n_out = plan.width_of(plan.outputs[0])
        emulator = Emulator(
            plan,
            project=None,
            logits_layer=logits_layer,
            n_inputs=self.events.shape[1],
            n_outputs=n_out,
        )
        return emulator.predict_logits(self.events)

    def accuracy(self, logits: np.ndarray) -> float | None:
        if self.labels is None:
            return None
        truth = self.labels.argmax(axis=1) if self.labels.ndim == 2 else self.labels
        return float(np.mean(logits.argmax(axis=1) == truth))

    def evaluate(
        self,
        layer_types: Mapping[str, LayerTypes],
        number: int,
        feasible: Callable[[float, float | None], bool],
    ) -> CandidateResult:
        start = time.perf_counter()
        plan, tensor = self.engine(layer_types)
        logits = self.logits(plan, tensor)
        if self.reference_logits is None:
            self.reference_logits = logits
        same = float(np.mean(np.all(logits == self.reference_logits, axis=1)))
        accuracy = self.accuracy(logits)
        ok = feasible(same, accuracy)
        # da4ml is the expensive part: a candidate that breaks the constraint is not costed
        lut, depth = self.costs.plan_cost(plan, tensor) if ok else (None, None)
        return CandidateResult(
            number=number,
            layer_types=dict(layer_types),
            fraction_identical=same,
            accuracy=accuracy,
            lut_estimate=lut,
            adder_depth=depth,
            feasible=ok,
            seconds=time.perf_counter() - start,
        )

    def range_candidate(self) -> dict[str, int]:
        """Knob values with each Dense integer width (and the input's) the narrowest that
        holds every value the events reach in the unconstrained firmware; fractional bits
        kept. Bit-exact on the events by construction (no value wraps or saturates)."""
        plan, _ = self.engine({})
        keep = tuple(name for name in plan.layer_outputs if name in self.base_plan.precision)
        ranges: dict[str, float] = {}
        for start in range(0, len(self.events), 4096):
            raw = plan.run(self.events[start : start + 4096], keep=keep)
            for name in keep:
                tensor = plan.layer_outputs[name]
                if tensor not in raw:
                    continue
                t = plan.type_of(tensor) if tensor != plan.inputs[0].tensor else plan.inputs[0].type
                real = np.ldexp(np.asarray(raw[tensor], dtype=np.float64), -t.fractional)
                lo, hi = float(real.min()), float(real.max())
                ranges[name] = max(ranges.get(name, 0.0), -lo, hi + 2.0**-t.fractional)
        values: dict[str, int] = {}
        x = np.asarray(self.events, dtype=np.float64)
        ranges.setdefault(_input_chain(self.base_plan)[0], float(np.abs(x).max()))
        for knob in self.knobs:
            if knob.what in ("integer", "input_integer") and knob.layer in ranges:
                # signed: I bits hold [-2**(I-1), 2**(I-1)); the input keeps its saturation
                need = max(1, math.ceil(math.log2(max(ranges[knob.layer], 2.0**-20))) + 1)
                if knob.what == "input_integer":
                    need = knob.high if ranges[knob.layer] >= 2.0 ** (knob.high - 1) else need
                values[knob.name] = min(max(need, knob.low), knob.high)
        return values


def cost_of(candidate: CandidateResult) -> tuple[float, float]:
    """(LUT estimate, adder depth) of a costed (feasible) candidate."""
    if candidate.lut_estimate is None or candidate.adder_depth is None:
        raise ValueError(f"trial {candidate.number} was not costed (it breaks the constraint)")
    return candidate.lut_estimate, candidate.adder_depth


def _pareto(points: Sequence[CandidateResult]) -> list[CandidateResult]:
    front: list[CandidateResult] = []
    for p in sorted(points, key=cost_of):
        if not front or cost_of(p)[1] < cost_of(front[-1])[1]:
            front.append(p)
    return front


def split_events(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (sorted) of the search events and of the held-out ones among ``n``: a share
    ``holdout`` (rounded to the nearest event) drawn by a permutation seeded with ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = round(n * holdout)
    if n_held < 1 or n_held >= n:
        raise DataError(
            f"{n} events cannot be split {1 - holdout:.0%} search / {holdout:.0%} held out; "
            "give more events or another holdout share"
        )
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def search_precision(
    model: Any,
    events: np.ndarray,
    *,
    constraint: Constraint = Constraint.BIT_EXACT,
    labels: np.ndarray | None = None,
    epsilon: float | None = None,
    n_trials: int = 40,
    seed: int = 0,
    options: FirmwareOptions | None = None,
    holdout: float = DEFAULT_HOLDOUT,
) -> PrecisionSearchResult:
    """Per-layer types of ``model``'s firmware under ``constraint`` (see the module notes).

    ``bit-exact``: the proven widths (:func:`proven_bounds`), no Optuna trial; emulated on
    every event of ``events`` as a check. ``accuracy``: ``labels`` (one-hot or class
    indices) and ``epsilon`` (an accuracy fraction, 0.01 = one point) are needed; Optuna's
    TPE sampler (seeded with ``seed``: the same model, events and arguments give the same
    trials) scores ``n_trials`` candidates on a share ``1 - holdout`` of the events and the
    choice is checked on the other share (split drawn with ``seed``)."""
    constraint = Constraint(constraint)
    if constraint is Constraint.ACCURACY:
        if labels is None:
            raise DataError("the accuracy constraint needs the events' labels")
        if epsilon is None or not 0 <= epsilon < 1:
            raise ConfigError(
                f"epsilon must be an accuracy fraction in [0, 1). Received: {epsilon!r}",
                path="epsilon",
            )
        if not 0 < holdout < 1:
            raise ConfigError(
                f"holdout must be a share of the events in (0, 1). Received: {holdout!r}",
                path="holdout",
            )
    elif epsilon is not None:
        raise ConfigError("epsilon applies to the accuracy constraint only", path="epsilon")
    if n_trials < 2:
        raise ConfigError(f"n_trials must be at least 2. Received: {n_trials}", path="n_trials")
    start = time.perf_counter()
    events = np.asarray(events, dtype=np.float32)
    if constraint is Constraint.BIT_EXACT:
        search = PrecisionSearch(model, events, labels, options)
        try:
            result = _proven_search(search, n_trials, seed)
        finally:
            search.close()
    else:
        assert labels is not None and epsilon is not None
        labels = np.asarray(labels)
        if len(labels) != len(events):
            raise DataError(f"{len(labels)} labels for {len(events)} events; give one per event")
        pick, held = split_events(len(events), holdout, seed)
        search = PrecisionSearch(model, events[pick], labels[pick], options)
        check = PrecisionSearch(model, events[held], labels[held], options)
        try:
            result = _accuracy_search(search, check, epsilon, n_trials, seed)
        finally:
            search.close()
            check.close()
    result.seconds = time.perf_counter() - start
    return result


def _bounds_with_events(search: PrecisionSearch) -> dict[str, LayerBound]:
    plan, tensor = search.engine({})
    bounds = proven_bounds(plan, tensor, search.base_plan)
    events = search.range_candidate()
    return {
        name: replace(b, events_integer=events.get(f"{name}.integer")) for name, b in bounds.items()
    }


def _proven_search(search: PrecisionSearch, n_trials: int, seed: int) -> PrecisionSearchResult:
    """The bit-exact answer: the proven candidate, checked on every event, no Optuna."""

    def exact(same: float, accuracy: float | None) -> bool:
        return same == 1.0

    baseline = search.evaluate({}, -1, exact)
    bounds = _bounds_with_events(search)
    values = proven_values(search.knobs, bounds)
    chosen = search.evaluate(candidate_types(search.base_plan, values), 0, exact)
    if not chosen.feasible:
        raise VerificationError(
            "the proven widths give logits that differ from the unconstrained firmware on "
            f"{1 - chosen.fraction_identical:.2%} of the events: a bug of the precision "
            "search's proof, please report it with the model"
        )
    share = unproven_share(search.knobs, values)
    log.info(
        "bit-exact widths proven for every input: no search needed (%d trials asked for)",
        n_trials,
    )
    return PrecisionSearchResult(
        constraint=Constraint.BIT_EXACT,
        epsilon=None,
        n_events=len(search.events),
        baseline=baseline,
        trials=[chosen],
        best=chosen,
        pareto=_pareto([chosen]),
        knobs=search.knobs,
        seed=seed,
        da4ml_solves=search.costs.solves,
        baseline_accuracy=baseline.accuracy,
        trials_requested=n_trials,
        trials_spent=0,
        proven=True,
        bounds=list(bounds.values()),
        old_space_unproven_share=share,
        trials_wasted_before=n_trials * share,
    )


def _accuracy_search(
    search: PrecisionSearch,
    check: PrecisionSearch,
    epsilon: float,
    n_trials: int,
    seed: int,
) -> PrecisionSearchResult:
    """Optuna on ``search``'s events; the choice checked on ``check``'s (held out)."""
    # deferred, optional: optuna (hepfpga[tune])
    import optuna

    baseline_holder: list[CandidateResult] = []

    def feasible(same: float, accuracy: float | None) -> bool:
        base = baseline_holder[0].accuracy if baseline_holder else accuracy
        assert accuracy is not None and base is not None
        return base - accuracy <= epsilon

    baseline = search.evaluate({}, -1, feasible)
    baseline_holder.append(baseline)
    bounds = _bounds_with_events(search)
    trials: list[CandidateResult] = []
    by_knob = {k.name: k for k in search.knobs}

    def objective(trial: Any) -> tuple[float, float]:
        values = {
            name: trial.suggest_int(name, knob.low, knob.high) for name, knob in by_knob.items()
        }
        result = search.evaluate(candidate_types(search.base_plan, values), trial.number, feasible)
        trials.append(result)
        # Optuna's constraint: <= 0 is feasible
        violation = (baseline.accuracy or 0.0) - (result.accuracy or 0.0) - epsilon
        trial.set_constraint(Constraint.ACCURACY.value, violation)
        # not costed: the baseline's cost (the constraint ranks it below feasible ones)
        return cost_of(result) if result.feasible else cost_of(baseline)

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, n_trials))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.enqueue_trial({k.name: k.high for k in search.knobs})
    proven = proven_values(search.knobs, bounds)
    study.enqueue_trial(
        {n: min(max(v, by_knob[n].low), by_knob[n].high) for n, v in proven.items()}
    )
    study.optimize(objective, n_trials=n_trials)

    # the choice: the cheapest candidate that also keeps epsilon on the held-out events
    base_check = check.evaluate({}, -1, lambda same, accuracy: True)
    baseline.heldout_accuracy = base_check.accuracy
    rejected: list[int] = []
    best: CandidateResult | None = None
    for candidate in sorted(
        (t for t in trials if t.feasible), key=lambda t: (*cost_of(t), t.number)
    ):
        held = check.evaluate(candidate.layer_types, candidate.number, lambda s, a: True)
        candidate.heldout_accuracy = held.accuracy
        assert held.accuracy is not None and base_check.accuracy is not None
        if base_check.accuracy - held.accuracy <= epsilon:
            best = candidate
            break
        rejected.append(candidate.number)
    if best is None:  # every candidate broke epsilon on the held-out events
        best = baseline
    accepted = [t for t in trials if t.feasible and t.number not in rejected]
    return PrecisionSearchResult(
        constraint=Constraint.ACCURACY,
        epsilon=epsilon,
        n_events=len(search.events),
        baseline=baseline,
        trials=trials,
        best=best,
        pareto=_pareto(accepted) if accepted else [],
        knobs=search.knobs,
        seed=seed,
        da4ml_solves=search.costs.solves,
        baseline_accuracy=baseline.accuracy,
        trials_requested=n_trials,
        trials_spent=len(trials),
        bounds=list(bounds.values()),
        n_heldout=len(check.events),
        heldout_baseline_accuracy=base_check.accuracy,
        rejected_on_heldout=rejected,
    )
