"""Comparison of a firmware's C simulation with the Keras/QKeras model it was written from.

:func:`verify_qkeras` compares the outputs and logits of a compiled project;
:func:`verify_model` does everything for a user's model, in four steps: the plan (checked
events, conversion plan, :mod:`~hepfpga.firmware.verify_plan`), the run (the compiled
simulation, from the cache or built, on the events, :mod:`~hepfpga.firmware.verify_run`), the
comparison of every layer with Keras (here), and the report with the diagnosis of the first
layer that parts (:mod:`~hepfpga.firmware.verify_report`, :mod:`~hepfpga.firmware.diagnose`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.artifacts import write_json_atomic
from hepfpga.firmware.csim import predict_with_logits
from hepfpga.firmware.diagnose import LayerComparison, compare_layers, diagnose
from hepfpga.firmware.hls_config import ConversionPlan, logits_layer_name, logits_layer_names
from hepfpga.firmware.layers.graph import (
    UserNames,
    input_names,
    layer_outputs,
    output_names,
)
from hepfpga.firmware.options import FirmwareOptions, SoftmaxMode
from hepfpga.firmware.precision import LayerPrecision
from hepfpga.firmware.project import VERIFICATION_FILE, FirmwareProject
from hepfpga.firmware.verify_plan import (
    FLOAT_TOLERANCE,
    check_events,
    check_input_ranges,
    plan_for_events,
    requirement,
)
from hepfpga.firmware.verify_report import Comparison, VerificationReport, compare_outputs
from hepfpga.firmware.verify_run import Simulation, simulate

__all__ = [
    "FLOAT_TOLERANCE",
    "Comparison",
    "VerificationReport",
    "check_events",
    "check_input_ranges",
    "compare_outputs",
    "keras_outputs_with_logits",
    "plan_for_events",
    "record_verification",
    "verify_model",
    "verify_qkeras",
]


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
    (g++ then logs its own progress, :func:`hepfpga.firmware.project.build_progress`); a
    model that unrolls more than :data:`~hepfpga.firmware.hls_config.LARGE_UNROLLED`
    multiplications in io_parallel is logged with the advice to use io_stream / Resource.
    """
    options = options if options is not None else FirmwareOptions()
    start = time.perf_counter()
    plan, events = plan_for_events(model, x, options, profile_events=profile_events)
    seconds = {"plan": time.perf_counter() - start}
    run = simulate(
        plan,
        options,
        events,
        cache=cache,
        cache_directory=cache_directory,
        project=project,
        progress=progress,
    )
    seconds.update(run.seconds)
    found = _compare(plan, events, run, options.softmax)
    seconds["keras"] = found.keras_seconds
    required = requirement(
        plan,
        tolerance,
        exact_outputs=not found.has_softmax or options.softmax.info.exact,
        on_grid=found.on_grid,
        backend=options.backend.value,
        ranges={
            name: (float(values.min()), float(values.max()))
            for name, values in found.references.items()
            if values.size
        },
    )
    diagnosis = diagnose(
        plan.model,
        found.layers,
        found.references,
        run.traces,
        x=found.diagnosed_events,
        input_type=found.input_precision[0].result,
        tolerance=None if plan.quantized else required.tolerance,
    )
    report = VerificationReport(
        model=str(getattr(model, "name", "model")),
        quantized=plan.quantized,
        n_events=found.n_events,
        requirement=required.text,
        passed=required.met_by(found.model_outputs, found.layers),
        outputs=next(iter(found.model_outputs.values())),
        per_output=found.per_output,
        layers=found.layers,
        diagnosis=diagnosis,
        softmax=(
            options.softmax.value if found.has_softmax else "none (the model has no final softmax)"
        ),
        precision={name: types.to_dict() for name, types in plan.precision.items()},
        project=str(run.project.path) if cache or project is not None else None,
        compile_seconds=run.project.compile_seconds,
        from_cache=run.project.from_cache,
        seconds={k: round(v, 3) for k, v in seconds.items()},
        input_type=", ".join(t.result.to_hls() for t in found.input_precision),
        input_type_source=", ".join(sorted({t.source for t in found.input_precision})),
        input_rounding=found.input_rounding,
        model_outputs=found.model_outputs if len(found.model_outputs) > 1 else {},
        bound=required.bound,
    )
    return _in_user_names(report, UserNames.of(plan.model))


def _in_user_names(report: VerificationReport, names: UserNames) -> VerificationReport:
    """``report`` with the layers hepfpga renamed for hls4ml under the user's names
    (:class:`~hepfpga.firmware.layers.graph.UserNames`): every layer row, type, output and
    the quoted names in the texts."""
    if not names:
        return report
    diagnosis = report.diagnosis
    if diagnosis is not None:
        diagnosis = replace(
            diagnosis,
            layer=names.name(diagnosis.layer),
            explanation=names.text(diagnosis.explanation),
        )
    return replace(
        report,
        requirement=names.text(report.requirement),
        layers=[replace(layer, name=names.name(layer.name)) for layer in report.layers],
        diagnosis=diagnosis,
        precision=names.keys(report.precision),
        model_outputs=names.keys(report.model_outputs),
    )


@dataclass
class _Compared:
    """What the comparison of a simulation with Keras found."""

    n_events: int
    #: the precision of each model input
    input_precision: list[LayerPrecision]
    #: the inputs' types are defaults: Keras ran on the events rounded to the input grid
    on_grid: bool
    #: every layer's Keras output (and each output's expected firmware output), per event
    references: dict[str, np.ndarray]
    #: output layer name -> comparison of that output and its logits
    model_outputs: dict[str, Comparison]
    per_output: list[dict[str, float]]
    layers: list[LayerComparison]
    #: the model ends in a softmax (the outputs are not the logits)
    has_softmax: bool
    input_rounding: Comparison | None
    #: the first input's events as the firmware read them, for the diagnosis
    diagnosed_events: np.ndarray
    keras_seconds: float


def _compare(plan: ConversionPlan, events: Any, run: Simulation, mode: SoftmaxMode) -> _Compared:
    """Run Keras on ``events`` and compare every output and every layer with ``run``."""
    start = time.perf_counter()
    ready = plan.model
    per_input = events if isinstance(events, list) else [events]
    input_precision = [plan.precision[name] for name in input_names(ready)]
    defaulted = any(t.source.startswith("default") for t in input_precision)
    # a model without an input quantizer is exact for inputs on the firmware's input grid:
    # Keras sees the events rounded to it, as the firmware does; what that rounding costs on
    # the events themselves is measured separately below
    grid = [
        t.result.quantize(e).astype(np.float32)
        for t, e in zip(input_precision, per_input, strict=True)
    ]
    grid_events = (grid if len(grid) > 1 else grid[0]) if defaulted else events
    references = _references(ready, grid_events)
    keras_seconds = time.perf_counter() - start
    # an input is no traced layer: what the firmware holds there is the events as it read
    # them, rounded and saturated to the input type (a softmax applied to the input has the
    # input as its logits)
    logits_names = logits_layer_names(ready)
    traces = dict(run.traces)
    for name, t, e in zip(input_names(ready), input_precision, per_input, strict=True):
        if name in logits_names.values():
            traces[name] = t.result.quantize(np.asarray(e, dtype=np.float64)).reshape(len(e), -1)

    def compare(refs: dict[str, np.ndarray], index: int, output: str, logits: str) -> Comparison:
        hls_outputs = run.outputs[index]
        return compare_outputs(
            refs[logits],
            traces.get(logits, hls_outputs),
            _reference_output(refs, output, logits, mode),
            hls_outputs,
        )

    model_outputs = {
        output: compare(references, i, output, logits)
        for i, (output, logits) in enumerate(logits_names.items())
    }
    for output, logits in logits_names.items():
        references[output] = _reference_output(references, output, logits, mode)
    output_name, logits_name = next(iter(logits_names.items()))
    input_rounding = None
    if defaulted:
        input_rounding = compare(_references(ready, events), 0, output_name, logits_name)
    return _Compared(
        n_events=len(per_input[0]),
        input_precision=input_precision,
        on_grid=defaulted,
        references=references,
        model_outputs=model_outputs,
        per_output=_per_output(
            references[logits_name],
            traces.get(logits_name, run.outputs[0]),
            references[output_name],
            run.outputs[0],
        ),
        layers=compare_layers(ready, run.hls_model, references, traces, quantized=plan.quantized),
        has_softmax=any(output != logits for output, logits in logits_names.items()),
        input_rounding=input_rounding,
        diagnosed_events=grid[0] if defaulted else per_input[0],
        keras_seconds=keras_seconds,
    )


def _per_output(
    ref_logits: np.ndarray, hls_logits: np.ndarray, ref_outputs: np.ndarray, hls_outputs: np.ndarray
) -> list[dict[str, float]]:
    """Per output (class): the fraction of events with that logit bit-exact, the largest
    logit and output differences."""
    return [
        {
            "index": i,
            "logits_fraction_bit_exact": float(np.mean(ref_logits[:, i] == hls_logits[:, i])),
            "logits_max_abs_diff": float(np.max(np.abs(ref_logits[:, i] - hls_logits[:, i]))),
            "outputs_max_abs_diff": float(np.max(np.abs(ref_outputs[:, i] - hls_outputs[:, i]))),
        }
        for i in range(ref_logits.shape[1])
    ]


def _references(ready: Any, events: Any) -> dict[str, np.ndarray]:
    """Every layer's Keras output on ``events``, flattened per event (float64)."""
    outputs = layer_outputs(ready, events)
    n_events = len(events[0]) if isinstance(events, list) else len(events)
    return {
        name: np.asarray(value, dtype=np.float64).reshape(n_events, -1)
        for name, value in outputs.items()
    }


def _reference_output(
    refs: dict[str, np.ndarray], output: str, logits: str, mode: SoftmaxMode
) -> np.ndarray:
    """What the firmware's output should be: the Keras output, or what the final softmax's
    mode makes of it (``argmax``: the one-hot argmax, ``logits``: the logits themselves)."""
    if output == logits:
        return refs[output]
    return mode.info.expected(refs[logits], refs[output])
