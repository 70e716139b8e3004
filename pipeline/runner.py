"""The end-to-end run: data -> float model -> QKeras QAT -> ONNX + hls4ml firmware ->
verification -> evaluation -> report.

:func:`run_pipeline` runs the stage list of the config's task in order
(:meth:`hepfpga.pipeline.task.RunTask.stages`: the base list
:data:`hepfpga.pipeline.stage_list.STAGES` with the task's replacements and removals; each
stage a function returning a typed result that can be called alone) and composes the report
from their results. A new stage is one :func:`~hepfpga.pipeline.stage_list.register_stage`
call; a stage a task leaves out is listed with the reason under ``stages_left_out``.
Everything is written into a temporary folder renamed to ``<output_dir>/<name>/`` when
complete:

===========================  ===========================================================
``float_model.h5``           trained float Keras model (inputs: scaled features)
``qkeras_model.h5``          quantization-aware trained QKeras model (``method: hgq``:
                             ``hgq_model.h5``, and ``hgq_proxy_model.h5``, the proxy
                             model of its logits the firmware is built from; no ONNX)
``scaler.json``              the feature scaling fitted on the training jets (``features``
                             representation; else ``inputs.json`` describes the inputs)
``model.onnx``               the QKeras model exported with tf2onnx (scaler and classes in
                             its metadata)
``firmware/``                the hls4ml project (test bench from the test set, config,
                             README on building it, ``verification.json``); absent, and
                             the report says why, when the firmware stage cannot convert
                             the architecture yet
``report.json``              every number: data, fits, accuracies, AUCs, HLS vs QKeras,
                             ONNX vs QKeras, checks, versions, timings
``roc.png``                  per-class ROC curves of float, QKeras and HLS
``scores.npz``               test labels and class scores of each model (for
                             ``hepfpga compare``), the BDT's, and the float and QKeras
                             training-set scores (report.html's overtraining plot)
``report.html``              the self-contained report (``hepfpga report RUN`` rebuilds it)
``bdt_firmware/``            with ``bdt.enabled``: conifer's HLS project and C++ emulation
``manifest.json``            inputs with hashes, versions, hashes of every output
===========================  ===========================================================
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepfpga.artifacts import (
    atomic_directory,
    check_destination,
    tool_versions,
    write_json_atomic,
    write_manifest,
)
from hepfpga.pipeline.config import PipelineConfig, config_to_dict
from hepfpga.pipeline.report_html import write_report_html
from hepfpga.pipeline.run import Run
from hepfpga.pipeline.stages import DataResult
from hepfpga.pipeline.tasks import RUN_TASKS, RunTask
from hepfpga.train.layouts import sample_files

__all__ = ["RunResult", "run_pipeline"]

log = logging.getLogger("hepfpga")


def _data_inputs(path: Path | None) -> dict[str, Path | None]:
    """The manifest's data inputs: ``data`` for one file; ``data/<name>`` for each file of a
    folder of shards or a glob (each hashed: a folder has no hash of its own)."""
    if path is None:
        return {"data": None}
    files = sample_files(path)
    if files == [Path(path)]:
        return {"data": Path(path)}
    return {f"data/{p.name}": p for p in files}


@dataclass
class RunResult:
    """A finished run: its folder, its report and whether every required check held."""

    run_dir: Path
    report: dict[str, Any]
    passed: bool
    failed_checks: list[str] = field(default_factory=list)


def _merge(target: dict[str, Any], items: dict[str, Any]) -> None:
    for key, value in items.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _report(
    run: Run, task: RunTask, seconds: dict[str, float], total: float
) -> tuple[dict[str, Any], list[str]]:
    checks: dict[str, Any] = {}
    report: dict[str, Any] = {"name": run.config.name, "status": "", "checks": checks}
    for result in run.results.values():
        for name, check in result.checks(run).items():
            checks[name] = check.to_dict()
        _merge(report, result.report_items(run))
    failed = [name for name, check in checks.items() if check["passed"] is False]
    missing = [
        f"{name}: {item.get('reason')}"
        for name, item in report.items()
        if isinstance(item, dict) and item.get("status") == "not available"
    ]
    report["status"] = "failed" if failed else "incomplete" if missing else "passed"
    if missing:
        report["not_available"] = missing
    if task.remove:
        report["stages_left_out"] = dict(task.remove)
    report["timings_s"] = {**seconds, "total": round(total, 2)}
    report["versions"] = tool_versions()
    report["config"] = config_to_dict(run.config)
    return report, failed


def run_pipeline(
    config: PipelineConfig, *, config_path: Path | None = None, overwrite: bool = False
) -> RunResult:
    """Run every stage of ``config``'s task for ``config`` and return the finished run folder
    and report.

    ``report["status"]`` is ``passed`` (every check held), ``failed`` (a check did not hold;
    ``passed`` is False) or ``incomplete``: no check failed but a stage could not produce its
    result for this architecture (e.g. firmware not yet available); ``report["not_available"]``
    then says which and why, and ``passed`` is True only in the sense that nothing failed.
    """
    destination = Path(config.output_dir) / config.name
    check_destination(destination, overwrite=overwrite)
    total_start = time.perf_counter()
    seconds: dict[str, float] = {}
    with atomic_directory(destination, overwrite=overwrite) as run_dir:
        run = Run(config=config, run_dir=run_dir, config_path=config_path)
        task = RUN_TASKS.lookup(config.task.name, "task.name")
        for stage in task.stages():
            message = stage.describe(run)
            log.info("%s ...", message)
            start = time.perf_counter()
            result = stage.run(run)
            if result is not None:
                run.results[stage.name] = result
            seconds[stage.name] = round(time.perf_counter() - start, 2)
            log.info("%s done in %.1f s", message, seconds[stage.name])
        report, failed = _report(run, task, seconds, time.perf_counter() - total_start)
        write_json_atomic(run_dir / "report.json", report)
        write_report_html(run_dir)
        write_manifest(
            run_dir,
            inputs={"config": config_path, **_data_inputs(run.get(DataResult).path)},
            config=report["config"],
            extra={"status": report["status"]},
        )
    return RunResult(run_dir=destination, report=report, passed=not failed, failed_checks=failed)
