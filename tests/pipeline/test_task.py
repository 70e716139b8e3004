"""A task of the run layer is one object (:class:`hepfpga.pipeline.task.RunTask`): its stage list
is the base list with named replacements and removals, and a new task is one module plus its
test. The toy task below is that module: it registers its config (``hepfpga.train.tasks``), an
architecture that serves it, and its :class:`RunTask` (its own evaluation stage, two base stages
left out with their reasons, its figures, ROC section and compare overlay), and is run through
:func:`run_pipeline` on tiny data without touching any other file."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.cli.app import main
from hepfpga.errors import DataError
from hepfpga.pipeline.compare import draw_overlay, format_table, load_run
from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.figures import FigureTable, TaskFigures, Value
from hepfpga.pipeline.run import Check, Run, StageResult
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.runner import run_pipeline
from hepfpga.pipeline.stage_list import STAGES, Stage, derive_stages
from hepfpga.pipeline.stages import DataResult, QuantizedModelResult
from hepfpga.pipeline.summary import RunSummary, draw_panels, save_panels
from hepfpga.pipeline.task import RunTask, register_run_task
from hepfpga.pipeline.tasks import RUN_TASKS
from hepfpga.train.architectures import ARCHITECTURES, get_architecture, register_architecture
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.io import save_sample
from hepfpga.train.tasks import TASKS, ClassificationConfig, Task, register_task

# --- the toy task: what its module holds ------------------------------------------------------

TOY = "toy_tagging"


@dataclasses.dataclass(frozen=True)
class ToyConfig(ClassificationConfig):
    """``task: toy_tagging``: a classifier judged by how often its top class is right."""

    name: str = TOY


@dataclasses.dataclass(frozen=True)
class ToyMLPConfig(MLPConfig):
    architecture: str = "toy_mlp"


@dataclasses.dataclass
class ToyEvaluation(StageResult):
    """The toy's typed report section: the fraction of test jets each model gets right."""

    right: dict[str, float]

    def report_items(self, run: Run) -> dict[str, Any]:
        return {"toy": {"right": self.right}, "summary": [f"toy right: {self.right}"]}

    def checks(self, run: Run) -> dict[str, Check]:
        return {"toy_right": Check(self.right["qkeras"], ">= 0", self.right["qkeras"] >= 0)}


def toy_evaluation_stage(run: Run) -> ToyEvaluation:
    data = run.get(DataResult)
    probs = run.get(QuantizedModelResult).probs
    right = float(np.mean(np.argmax(probs, axis=1) == data.y_test))
    np.savez(run.run_dir / "scores.npz", labels=data.y_test, qkeras=probs)
    return ToyEvaluation({"qkeras": right})


def _headline(report: RunReport) -> dict[str, Value]:
    return {"qkeras": float(report.section("toy")["right"]["qkeras"])}


def _tables(report: RunReport) -> list[FigureTable]:
    right = report.section("toy")["right"]
    return [FigureTable("toy: fraction right", ("right",), {"QKeras": {"right": right["qkeras"]}})]


def _roc_section(report: RunReport, models: Mapping[str, np.ndarray], labels: np.ndarray) -> str:
    return f"<p>toy curves of {', '.join(models)} on {len(labels)} jets</p>"


def _overlay(runs: Sequence[RunSummary], path: Path) -> list[str]:
    fig, axes = draw_panels(["toy"])
    for run in runs:
        axes[0, 0].plot([0, 1], [0, run.headline["qkeras"] or 0], label=run.name)
    save_panels(fig, axes, ["toy"], path, "fraction right")
    return [run.name for run in runs]


TOY_TASK = RunTask(
    ToyConfig,
    TaskFigures("fraction right", _headline, _tables),
    replace={"evaluation": Stage("evaluation", "toy evaluation", toy_evaluation_stage)},
    remove={
        "onnx": "the toy is not served",
        "firmware": "the toy is judged on the QKeras model alone",
        "analysis": "no saliency for a toy",
    },
    roc=_roc_section,
    overlay=_overlay,
    data_rows={"classes": "toy classes"},
)


@pytest.fixture
def toy_task() -> Iterator[RunTask]:
    """The toy registered as its module would register it on import, and removed after."""
    register_task(Task(TOY, ToyConfig, "a toy classification judged by the top class"))
    mlp = get_architecture("mlp")
    register_architecture(
        dataclasses.replace(mlp, name="toy_mlp", config_class=ToyMLPConfig, task=TOY)
    )
    try:
        yield register_run_task(TOY_TASK)
    finally:
        RUN_TASKS.pop(TOY, None)
        ARCHITECTURES.pop("toy_mlp", None)
        TASKS.pop(TOY, None)


# --- the built-in tasks ------------------------------------------------------------------------


def test_every_task_config_has_a_run_task() -> None:
    assert set(RUN_TASKS) == set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_base_stage_reaches_every_task_unless_it_opts_out_with_a_reason(name: str) -> None:
    task = RUN_TASKS[name]
    stages = [s.name for s in task.stages()]
    base = [s.name for s in STAGES]
    assert [n for n in base if n not in stages] == list(task.remove)
    assert all(reason.strip() for reason in task.remove.values())
    assert "emulation" in stages and "hardware" in stages
    for stage_name, stage in task.replace.items():
        assert stage in task.stages() and stage.name == stage_name


def test_a_stage_list_names_what_it_changes() -> None:
    base = [Stage("a", "a", lambda run: None), Stage("b", "b", lambda run: None)]
    other = Stage("b", "another b", lambda run: None)
    assert derive_stages(base, {"b": other}, {}) == [base[0], other]
    assert derive_stages(base, {}, {"a": "why"}) == [base[1]]
    with pytest.raises(ValueError, match="no stage named c; stages: a, b"):
        derive_stages(base, {}, {"c": "why"})
    with pytest.raises(ValueError, match="both replaced and removed"):
        derive_stages(base, {"b": other}, {"b": "why"})
    with pytest.raises(ValueError, match="give it the same name"):
        derive_stages(base, {"a": other}, {})


def test_a_run_task_needs_a_task_config_and_a_new_name() -> None:
    with pytest.raises(ValueError, match=r"no task has the config ToyConfig: register it with"):
        register_run_task(TOY_TASK)
    with pytest.raises(ValueError, match="task 'classification' is already registered"):
        register_run_task(dataclasses.replace(RUN_TASKS["classification"]))


def test_a_malformed_report_is_named() -> None:
    with pytest.raises(DataError, match=r"where\.json: not a hepfpga run report"):
        RunReport.from_content({"data": {}, "checks": {"c": {"value": 1}}}, "where.json")
    report = RunReport.from_content({"data": {"classes": ["q", "g"]}, "checks": {}})
    assert report.task == "classification" and report.architecture == "mlp"
    assert report.classes == ("q", "g") and report.status is None


# --- the toy, run ------------------------------------------------------------------------------


@pytest.mark.slow  # trains (about 15 s on an idle machine)
def test_a_toy_task_is_one_module(
    toy_task: RunTask, tmp_path: Path, make_jets, capsys: pytest.CaptureFixture[str]
) -> None:
    jets = tmp_path / "jets.npz"
    save_sample(make_jets(300, seed=4), jets)
    config = parse_config(
        {
            "name": "toy",
            "output_dir": str(tmp_path / "runs"),
            "task": TOY,
            "data": {"path": str(jets)},
            "model": {"architecture": "toy_mlp", "hidden_units": [4]},
            "training": {"epochs": 1},
            "quantization": {"epochs": 1},
        }
    )
    result = run_pipeline(config)
    report = json.loads((result.run_dir / "report.json").read_text())
    assert result.passed and report["status"] == "passed"
    # the stage list: the base list with the toy's evaluation, less what it left out
    assert list(report["timings_s"])[:-1] == [s.name for s in toy_task.stages()]
    assert "firmware" not in report["timings_s"] and "csim" in report["timings_s"]
    assert report["stages_left_out"] == dict(toy_task.remove)
    # its typed report section and checks, read back by its figures
    assert report["toy"]["right"]["qkeras"] == report["checks"]["toy_right"]["value"]
    page = (result.run_dir / "report.html").read_text()
    assert "toy curves of QKeras on" in page and "toy: fraction right" in page
    assert "toy classes" in page and "no saliency for a toy" in page
    # compare: its group, its table, its overlay
    run = load_run(result.run_dir)
    assert run.task == TOY and run.headline_name == "fraction right"
    assert "toy: fraction right" in format_table([run])
    assert draw_overlay(TOY, [run], tmp_path / "toy.png") == ["toy"]
    assert (tmp_path / "toy.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["compare", str(result.run_dir), "--plot", str(tmp_path / "c.png")]) == 0
    assert f"{TOY} ROC overlay: {tmp_path / 'c.png'}" in capsys.readouterr().out
