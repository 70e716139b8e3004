"""Comparison of a firmware's C simulation with the Keras/QKeras model it was written from.

:func:`verify_qkeras` compares the outputs and logits of a compiled project;
:func:`verify_model` does everything for a user's model: converts it, compiles (or takes the
compiled simulation from the cache), runs both, compares every layer and diagnoses the first
one that parts (:mod:`hepfpga.firmware.diagnose`).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.artifacts import write_json_atomic
from hepfpga.errors import DataError
from hepfpga.firmware.csim import predict_with_logits
from hepfpga.firmware.data import validate_events
from hepfpga.firmware.diagnose import Diagnosis, LayerComparison
from hepfpga.firmware.hls_config import logits_layer_name
from hepfpga.firmware.layers._base import traced_name
from hepfpga.firmware.layers.graph import (
    SPLIT_OUTPUT_SUFFIXES,
    input_names,
    layer_outputs,
    output_names,
)
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.project import VERIFICATION_FILE, FirmwareProject

log = logging.getLogger("hepfpga.firmware.verify")

__all__ = [
    "FLOAT_TOLERANCE",
    "Comparison",
    "VerificationReport",
    "check_events",
    "check_input_ranges",
    "compare_outputs",
    "plan_for_events",
    "record_verification",
    "verify_model",
    "verify_qkeras",
]


@dataclass(frozen=True)
class Comparison:
    """How closely the firmware reproduces the reference, over ``n_events`` events."""

    n_events: int
    #: fraction of events whose logits are all exactly equal
    logits_fraction_bit_exact: float
    logits_max_abs_diff: float
    probs_max_abs_diff: float
    #: fraction of events whose argmax of the probabilities agrees
    argmax_agreement: float
    #: largest gap between the reference's two highest probabilities among the events whose
    #: argmax differs (0 when none does): a flip needs a gap below 2 * probs_max_abs_diff,
    #: so a larger value points at a real error rather than a near-tie
    argmax_flip_max_gap: float = 0.0

    @property
    def logits_bit_exact(self) -> bool:
        return self.logits_fraction_bit_exact == 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _matrix(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, np.newaxis]
    if array.ndim != 2:
        raise DataError(f"{name} must be (n_events, n_outputs), got shape {np.shape(values)}")
    return array


def compare_outputs(
    reference_logits: Any, hls_logits: Any, reference_probs: Any, hls_probs: Any
) -> Comparison:
    """Compare logits (exactly) and probabilities (absolute difference, argmax) per event."""
    ref_logits = _matrix(reference_logits, "reference_logits")
    hls_logits_ = _matrix(hls_logits, "hls_logits")
    ref_probs = _matrix(reference_probs, "reference_probs")
    hls_probs_ = _matrix(hls_probs, "hls_probs")
    if ref_logits.shape != hls_logits_.shape or ref_probs.shape != hls_probs_.shape:
        raise DataError(
            f"shapes differ: logits {ref_logits.shape} vs {hls_logits_.shape}, "
            f"probabilities {ref_probs.shape} vs {hls_probs_.shape}"
        )
    if len(ref_logits) != len(ref_probs) or len(ref_logits) == 0:
        raise DataError("logits and probabilities must cover the same, non-zero number of events")
    flipped = ref_probs.argmax(axis=1) != hls_probs_.argmax(axis=1)
    top2 = (
        np.sort(ref_probs, axis=1)[:, -2:]
        if ref_probs.shape[1] > 1
        else np.zeros((len(ref_probs), 2))
    )
    gap = top2[:, 1] - top2[:, 0]
    return Comparison(
        n_events=len(ref_logits),
        logits_fraction_bit_exact=float(np.mean(np.all(ref_logits == hls_logits_, axis=1))),
        logits_max_abs_diff=float(np.max(np.abs(ref_logits - hls_logits_))),
        probs_max_abs_diff=float(np.max(np.abs(ref_probs - hls_probs_))),
        argmax_agreement=float(np.mean(~flipped)),
        argmax_flip_max_gap=float(gap[flipped].max()) if flipped.any() else 0.0,
    )


def keras_outputs_with_logits(model: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(outputs, logits)`` of a Keras model on ``x`` (as float32) in one pass; the logits
    are the output of the layer feeding the final softmax (:func:`logits_layer_name`)."""
    both = layer_outputs(
        model, x, [output_names(model)[0], logits_layer_name(model)], batch_size=4096
    )
    return both[output_names(model)[0]], both[logits_layer_name(model)]


def verify_qkeras(qmodel: Any, project: FirmwareProject, x: Any) -> Comparison:
    """Run ``qmodel`` (Keras, float32) and the project's C simulation on ``x`` and compare.

    The reference logits are the output of the layer feeding ``qmodel``'s softmax.
    """
    events = np.asarray(x, dtype=np.float32)
    ref_probs, ref_logits = keras_outputs_with_logits(qmodel, events)
    hls_probs, hls_logits = predict_with_logits(project, events)
    return compare_outputs(ref_logits, hls_logits, ref_probs, hls_probs)


def record_verification(project: FirmwareProject, comparison: Comparison) -> Path:
    """Write ``comparison`` as ``verification.json`` into the project folder (atomically)."""
    target = project.path / VERIFICATION_FILE
    write_json_atomic(target, comparison.to_dict())
    return target


#: default tolerance on the logits of float (non-QKeras) models, in absolute units
FLOAT_TOLERANCE = 0.01


@dataclass
class VerificationReport:
    """Everything :func:`verify_model` found, layer by layer; ``passed`` is the verdict."""

    model: str
    #: QKeras model (types from quantizers) or float model (profiled types)
    quantized: bool
    n_events: int
    #: what had to hold, in words
    requirement: str
    passed: bool
    outputs: Comparison
    #: per output (class): fraction of events with that logit bit-exact, the largest logit
    #: and output differences
    per_output: list[dict[str, float]]
    layers: list[LayerComparison]
    diagnosis: Diagnosis | None
    softmax: str
    #: the types of every layer (profiled ranges for float models)
    precision: dict[str, dict[str, Any]]
    project: str | None
    compile_seconds: float | None
    from_cache: bool
    seconds: dict[str, float]
    #: the firmware's input type and where it comes from (input quantizer, option, profile,
    #: or the default for a QKeras model without an input quantizer)
    input_type: str = ""
    input_type_source: str = ""
    #: with the default input type: the firmware on the events themselves against Keras on
    #: the events themselves (what rounding the inputs to the input grid costs); ``outputs``
    #: then compares on the events rounded to that grid
    input_rounding: Comparison | None = None
    #: for a model with several outputs: the comparison of each (output layer name ->
    #: comparison of that output and its logits); ``outputs`` is the first one's
    model_outputs: dict[str, Comparison] = field(default_factory=dict)
    #: the logits bound required instead of bit-exactness (None: bit-exact required, or a
    #: float model's tolerance); set for QKeras models with layers that are never bit-exact
    #: (recurrent gates from lookup tables), see ``LayerHandler.bound``
    bound: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "quantized": self.quantized,
            "n_events": self.n_events,
            "requirement": self.requirement,
            "passed": self.passed,
            "outputs": self.outputs.to_dict(),
            "per_output": self.per_output,
            "layers": [layer.to_dict() for layer in self.layers],
            "first_divergence": self.diagnosis.to_dict() if self.diagnosis else None,
            "softmax": self.softmax,
            "precision": self.precision,
            "project": self.project,
            "compile_seconds": self.compile_seconds,
            "from_cache": self.from_cache,
            "seconds": self.seconds,
            "input_type": self.input_type,
            "input_type_source": self.input_type_source,
            "input_rounding": self.input_rounding.to_dict() if self.input_rounding else None,
            "model_outputs": {k: c.to_dict() for k, c in self.model_outputs.items()},
            "bound": self.bound,
        }

    def summary(self) -> str:
        """A few lines for a terminal: verdict, outputs, a table of layers, the diagnosis."""
        out = self.outputs
        lines = [
            f"model '{self.model}' ({'QKeras' if self.quantized else 'float'}), "
            f"{self.n_events} events, softmax: {self.softmax}",
            f"logits: {out.logits_fraction_bit_exact:.2%} bit-exact, "
            f"max |diff| {out.logits_max_abs_diff:.3g}; outputs: max |diff| "
            f"{out.probs_max_abs_diff:.3g}, argmax agreement {out.argmax_agreement:.2%}",
            "per output: "
            + ", ".join(
                f"[{int(o['index'])}] {o['logits_fraction_bit_exact']:.1%} exact"
                + (f" (max {o['logits_max_abs_diff']:.2g})" if o["logits_max_abs_diff"] else "")
                for o in self.per_output
            ),
            f"{'layer':<20} {'type':<34} {'bit-exact':>9} {'max LSB':>9}  range",
        ]
        for layer in self.layers:
            lines.append(
                f"{layer.name:<20} {layer.hls_type:<34} {layer.fraction_bit_exact:>9.2%} "
                f"{layer.max_diff_lsb:>9.3g}  [{layer.reference_min:.4g}, "
                f"{layer.reference_max:.4g}] in [{layer.type_min:.4g}, {layer.type_max:.4g}]"
            )
        if self.diagnosis is not None:
            lines.append(str(self.diagnosis))
        for name, comparison in self.model_outputs.items():
            lines.append(
                f"output '{name}': logits {comparison.logits_fraction_bit_exact:.2%} bit-exact, "
                f"max |diff| {comparison.logits_max_abs_diff:.3g}; outputs max |diff| "
                f"{comparison.probs_max_abs_diff:.3g}"
            )
        if self.input_type:
            lines.append(f"input type: {self.input_type} ({self.input_type_source})")
        if self.input_rounding is not None:
            cost = self.input_rounding
            lines.append(
                "the results above are on the events rounded to that input grid; rounding the "
                f"events to it costs: logits max |diff| {cost.logits_max_abs_diff:.3g} "
                f"({cost.logits_fraction_bit_exact:.2%} of events unchanged), outputs max "
                f"|diff| {cost.probs_max_abs_diff:.3g}, argmax agreement "
                f"{cost.argmax_agreement:.2%}"
            )
        cached = "from cache" if self.from_cache else f"compiled in {self.compile_seconds:.1f} s"
        lines.append(f"C simulation {cached}")
        lines.append(f"{'PASSED' if self.passed else 'FAILED'}: {self.requirement}")
        return "\n".join(lines)


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


def _references(ready: Any, events: Any) -> dict[str, np.ndarray]:
    """Every layer's Keras output on ``events``, flattened per event (float64)."""
    outputs = layer_outputs(ready, events)
    n_events = len(events[0]) if isinstance(events, list) else len(events)
    return {
        name: np.asarray(value, dtype=np.float64).reshape(n_events, -1)
        for name, value in outputs.items()
    }


#: seconds between two progress lines while the C simulation is built
HEARTBEAT_SECONDS = 15.0


@contextlib.contextmanager
def _heartbeat(progress: Callable[[str], None] | None, what: str) -> Iterator[None]:
    """Report ``what`` now and the elapsed time every :data:`HEARTBEAT_SECONDS` until done."""
    if progress is None:
        yield
        return

    progress(what)
    done = threading.Event()
    start = time.perf_counter()

    def beat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            progress(f"... still building the C simulation ({time.perf_counter() - start:.0f} s)")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def plan_for_events(
    model: Any, x: Any, options: FirmwareOptions | None = None, *, profile_events: int = 10000
) -> tuple[Any, Any]:
    """``(plan, events)``: the checked events and the conversion plan :func:`verify_model`
    builds from them (float models: types from the ranges of the first ``profile_events``
    events; QKeras models: the inputs' ranges, which size a default input type)."""
    from hepfpga.firmware.hls_config import hls4ml_ready_model, plan_conversion
    from hepfpga.firmware.precision import check_supported, is_quantized, profile_ranges

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
    from hepfpga.firmware.layers import handler_for, model_graph

    for node in model_graph(model):
        check = handler_for(node.layer).check_inputs
        if check is not None:
            check(node.layer, ranges)


def verify_model(
    model: Any,
    x: Any,
    options: FirmwareOptions | None = None,
    *,
    tolerance: float | None = None,
    cache: bool = True,
    cache_directory: str | Path | None = None,
    profile_events: int = 10000,
    project: FirmwareProject | None = None,
    progress: Callable[[str], None] | None = None,
) -> VerificationReport:
    """Convert ``model``, compile its C simulation, run both on ``x`` and compare every layer.

    The requirement: QKeras models need bit-exact logits (and exact outputs for the
    ``argmax``/``logits`` softmax choices) unless ``tolerance`` is given; float models need
    logits within ``tolerance`` (default :data:`FLOAT_TOLERANCE`), with types proposed from the
    ranges of the first ``profile_events`` events of ``x``. The compiled simulation is taken
    from / stored in the cache (:mod:`hepfpga.firmware.cache`) unless ``cache`` is false;
    ``project``: an already written project of ``model`` with the same ``options`` (a run
    folder's ``firmware/``), compiled here if needed, used instead of the cache.

    ``progress`` (e.g. ``print``) gets a line before the C simulation is looked up or built
    and one every :data:`HEARTBEAT_SECONDS` while g++ runs; a model that unrolls more than
    :data:`~hepfpga.firmware.hls_config.LARGE_UNROLLED` multiplications in io_parallel is
    logged with the advice to use io_stream / Resource.
    """

    from hepfpga.firmware.cache import cached_project
    from hepfpga.firmware.csim import predict_outputs_and_traces
    from hepfpga.firmware.diagnose import compare_layers, diagnose
    from hepfpga.firmware.hls_config import logits_layer_names
    from hepfpga.firmware.options import SoftmaxMode
    from hepfpga.firmware.project import compile_project, write_project

    options = options if options is not None else FirmwareOptions()
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    plan, events = plan_for_events(model, x, options, profile_events=profile_events)
    ready = plan.model
    n_events = len(events[0]) if isinstance(events, list) else len(events)
    quantized = plan.quantized
    inputs = input_names(ready)
    per_input = events if isinstance(events, list) else [events]
    input_precision = [plan.precision[name] for name in inputs]
    defaulted = any(t.source.startswith("default") for t in input_precision)
    seconds["plan"] = time.perf_counter() - start

    start = time.perf_counter()
    given = project
    advice = plan.size_advice(options)
    if advice is not None and given is None:
        log.warning("%s", advice)
    with (
        tempfile.TemporaryDirectory(prefix="hepfpga-verify-") as tmp,
        _heartbeat(
            progress if given is None else None,
            f"C simulation of {plan.multiplications:,} multiplications per event: from the "
            "cache or built with g++",
        ),
    ):
        if given is not None:  # the caller's project of this model (e.g. a run's firmware/)
            if not given.compiled:
                compile_project(given)
            project = given
        elif cache:
            project = cached_project(plan, options, cache_directory)
        else:
            project = write_project(ready, options, Path(tmp) / "project", plan=plan)
            compile_project(project)
        seconds["build"] = time.perf_counter() - start

        start = time.perf_counter()
        hls_all, traces = predict_outputs_and_traces(project, events)
        seconds["csim"] = time.perf_counter() - start
        # hls4ml splits a linear built-in activation off as '<name>_linear', and a separable
        # convolution into '<name>_depthwise' and '<name>_pointwise'; the output of the last
        # part is the layer's output
        for layer in ready.layers:
            for suffix in SPLIT_OUTPUT_SUFFIXES:
                if f"{layer.name}{suffix}" in traces:
                    traces[layer.name] = traces.pop(f"{layer.name}{suffix}")
            # TimeDistributed's output is that of its end marker '<name>_end'
            alias = traced_name(layer)
            if alias != layer.name and alias in traces:
                traces[layer.name] = traces.pop(alias)
        hls_model = project.hls_model

    start = time.perf_counter()
    # a model without an input quantizer is exact for inputs on the firmware's input grid:
    # Keras sees the events rounded to it, as the firmware does; what that rounding costs on
    # the events themselves is measured separately below
    grid = [
        t.result.quantize(e).astype(np.float32)
        for t, e in zip(input_precision, per_input, strict=True)
    ]
    grid_events = grid if len(grid) > 1 else grid[0]
    if not defaulted:
        grid_events = events
    references = _references(ready, grid_events)
    seconds["keras"] = time.perf_counter() - start
    mode = options.softmax

    def compare(refs: dict[str, np.ndarray], index: int, output: str, logits: str) -> Comparison:
        ref_logits = refs[logits]
        hls_outputs = hls_all[index]
        hls_logits = traces.get(logits, hls_outputs)
        return compare_outputs(
            ref_logits, hls_logits, _reference_output(refs, output, logits, mode), hls_outputs
        )

    logits_names = logits_layer_names(ready)
    model_outputs = {
        output: compare(references, i, output, logits)
        for i, (output, logits) in enumerate(logits_names.items())
    }
    for output, logits in logits_names.items():
        references[output] = _reference_output(references, output, logits, mode)
    output_name, logits_name = next(iter(logits_names.items()))
    outputs = model_outputs[output_name]
    input_rounding = None
    if defaulted:
        raw = _references(ready, events)
        input_rounding = compare(raw, 0, output_name, logits_name)
    ref_logits = references[logits_name]
    hls_logits = traces.get(logits_name, hls_all[0])
    ref_outputs = references[output_name]
    hls_outputs = hls_all[0]
    per_output = [
        {
            "index": i,
            "logits_fraction_bit_exact": float(np.mean(ref_logits[:, i] == hls_logits[:, i])),
            "logits_max_abs_diff": float(np.max(np.abs(ref_logits[:, i] - hls_logits[:, i]))),
            "outputs_max_abs_diff": float(np.max(np.abs(ref_outputs[:, i] - hls_outputs[:, i]))),
        }
        for i in range(ref_logits.shape[1])
    ]

    layers = compare_layers(ready, hls_model, references, traces, quantized=quantized)
    has_softmax = any(output != logits for output, logits in logits_names.items())
    exact_outputs = not has_softmax or mode in (SoftmaxMode.ARGMAX, SoftmaxMode.LOGITS)
    on_grid = " on the input grid" if defaulted else ""
    bound = approximate_bound(ready) if tolerance is None and quantized else None
    if bound is not None:
        # layers that are never bit-exact (tables inside): the stated bound, not bit-exact
        requirement = f"logits within {bound:g} (max |diff|){on_grid}: {bound_reason(ready)}"
        passed = all(c.logits_max_abs_diff <= bound for c in model_outputs.values())
    elif tolerance is None and quantized:
        requirement = "bit-exact logits" + (" and outputs" if exact_outputs else "") + on_grid
        passed = all(
            c.logits_bit_exact and (not exact_outputs or c.probs_max_abs_diff == 0.0)
            for c in model_outputs.values()
        )
    else:
        tolerance = FLOAT_TOLERANCE if tolerance is None else float(tolerance)
        requirement = f"logits within {tolerance:g} (max |diff|){on_grid}"
        passed = all(c.logits_max_abs_diff <= tolerance for c in model_outputs.values())
    diagnosis = diagnose(
        ready,
        layers,
        references,
        traces,
        x=grid[0] if defaulted else per_input[0],
        input_type=input_precision[0].result,
        tolerance=None if quantized else tolerance,
    )
    return VerificationReport(
        model=str(getattr(model, "name", "model")),
        quantized=quantized,
        n_events=n_events,
        requirement=requirement,
        passed=bool(passed),
        outputs=outputs,
        per_output=per_output,
        layers=layers,
        diagnosis=diagnosis,
        softmax=mode.value if has_softmax else "none (the model has no final softmax)",
        precision={name: types.to_dict() for name, types in plan.precision.items()},
        project=str(project.path) if cache or given is not None else None,
        compile_seconds=project.compile_seconds,
        from_cache=project.from_cache,
        seconds={k: round(v, 3) for k, v in seconds.items()},
        input_type=", ".join(t.result.to_hls() for t in input_precision),
        input_type_source=", ".join(sorted({t.source for t in input_precision})),
        input_rounding=input_rounding,
        model_outputs=model_outputs if len(model_outputs) > 1 else {},
        bound=bound,
    )


def approximate_bound(model: Any) -> float | None:
    """The largest ``LayerHandler.bound`` of ``model``'s layers (None: none relaxes
    bit-exactness)."""
    from hepfpga.firmware.layers import handler_for

    bounds = [handler_for(layer).bound for layer in model.layers]
    given = [b for b in bounds if b is not None]
    return max(given) if given else None


def bound_reason(model: Any) -> str:
    """Which layers are never bit-exact and why, in words."""
    from hepfpga.firmware.layers import handler_for

    bounded = [layer for layer in model.layers if handler_for(layer).bound is not None]
    names = [f"'{layer.name}' ({type(layer).__name__})" for layer in bounded]
    reasons = sorted({handler_for(layer).bound_reason for layer in bounded})
    return f"{', '.join(names)} not bit-exact by design ({'; '.join(reasons)})"


def _reference_output(
    refs: dict[str, np.ndarray], output: str, logits: str, mode: Any
) -> np.ndarray:
    """What the firmware's output should be: the Keras output, or for a final softmax built
    as ``argmax``/``logits`` the one-hot argmax or the logits themselves."""
    from hepfpga.firmware.options import SoftmaxMode

    if output == logits:
        return refs[output]
    if mode is SoftmaxMode.ARGMAX:
        return np.eye(refs[logits].shape[1])[np.argmax(refs[logits], axis=1)]
    if mode is SoftmaxMode.LOGITS:
        return refs[logits]
    return refs[output]
