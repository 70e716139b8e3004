"""The base stage list of a run, and how a task derives its own from it.

:data:`STAGES` is every stage in order; a task (:class:`hepfpga.pipeline.task.RunTask`)
runs it with *named* replacements (its own data, training or evaluation stage under the
base stage's name) and removals (each with the reason the report gives under
``stages_left_out``), so a stage added here, or with :func:`register_stage`, reaches every
task unless a task opts out of it by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hepfpga.pipeline.analysis import analysis_stage, bdt_stage
from hepfpga.pipeline.emulation import emulation_stage, trigger_rate_stage
from hepfpga.pipeline.hardware import hardware_stage
from hepfpga.pipeline.preflight import preflight_stage
from hepfpga.pipeline.run import Run, StageResult
from hepfpga.pipeline.stages import (
    data_stage,
    evaluation_stage,
    firmware_stage,
    float_training_stage,
    onnx_stage,
    qat_stage,
    verification_stage,
)
from hepfpga.quantize.methods import QUANTIZATION_METHODS

__all__ = ["STAGES", "Stage", "derive_stages", "register_stage"]


@dataclass(frozen=True)
class Stage:
    """One step of a run: ``run(run) -> result`` (None: nothing to add), timed as ``name``.
    ``message`` is logged when the stage starts and ends; ``{method}`` in it stands for the
    run's quantization method (:meth:`describe`)."""

    name: str
    message: str
    run: Callable[[Run], StageResult | None]

    def describe(self, run: Run) -> str:
        """``message`` with ``{method}`` replaced by the display name of ``run``'s
        quantization method (``QKeras``, ``HGQ``)."""
        method = QUANTIZATION_METHODS[run.config.quantization.method].display_name
        return self.message.replace("{method}", method)


#: The stages of a run, in order.
STAGES: list[Stage] = [
    Stage("data", "loading and splitting the jets", data_stage),
    Stage("preflight", "checking the model against the firmware options", preflight_stage),
    Stage("float_training", "training the float model", float_training_stage),
    Stage("qat", "quantization-aware training ({method})", qat_stage),
    Stage("onnx", "exporting to ONNX and checking with onnxruntime", onnx_stage),
    Stage("firmware", "hls4ml conversion and C simulation build", firmware_stage),
    Stage("csim", "verifying the C simulation against {method}", verification_stage),
    Stage("emulation", "proving the bulk emulator against the C simulation", emulation_stage),
    Stage(
        "trigger_rates",
        "signal efficiency at fixed background acceptance (bulk emulator)",
        trigger_rate_stage,
    ),
    Stage("hardware", "RTL, RTL simulation and yosys figures (hardware.enabled)", hardware_stage),
    Stage("evaluation", "evaluating accuracies, ROC curves and AUCs", evaluation_stage),
    Stage("bdt", "DNN vs BDT: boosted trees, conifer emulation and HLS project", bdt_stage),
    Stage("analysis", "overtraining check, saliency, layer types", analysis_stage),
]


def register_stage(stage: Stage, *, after: str | None = None) -> Stage:
    """Add ``stage`` to :data:`STAGES` after the stage named ``after`` (default: at the end)."""
    names = [s.name for s in STAGES]
    if stage.name in names:
        raise ValueError(f"a stage named {stage.name!r} is already registered")
    if after is None:
        STAGES.append(stage)
    elif after not in names:
        raise ValueError(f"no stage named {after!r}; stages: {', '.join(names)}")
    else:
        STAGES.insert(names.index(after) + 1, stage)
    return stage


def derive_stages(
    base: Sequence[Stage], replace: Mapping[str, Stage], remove: Mapping[str, str]
) -> list[Stage]:
    """``base`` with the stages named in ``replace`` swapped for the given ones and those named
    in ``remove`` left out; a ``ValueError`` names a stage that is not in ``base`` (a task
    written against a stage that was renamed) or that is both replaced and removed."""
    names = [s.name for s in base]
    unknown = [n for n in [*replace, *remove] if n not in names]
    if unknown:
        raise ValueError(f"no stage named {', '.join(unknown)}; stages: {', '.join(names)}")
    both = set(replace) & set(remove)
    if both:
        raise ValueError(f"stages both replaced and removed: {', '.join(sorted(both))}")
    for name, stage in replace.items():
        if stage.name != name:
            raise ValueError(f"stage {stage.name!r} replaces {name!r}: give it the same name")
    return [replace.get(s.name, s) for s in base if s.name not in remove]
