"""``hepfpga compare``: one table and a ROC overlay of finished runs."""

from __future__ import annotations

from pathlib import Path

import click

from hepfpga.artifacts import atomic_file, check_destination, write_json_atomic
from hepfpga.pipeline.compare import draw_overlay, format_table, load_run, overlay_paths

__all__ = ["COMMANDS"]


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--plot",
    "plot",
    type=click.Path(path_type=Path),
    default=Path("roc_compare.png"),
    show_default=True,
    help="ROC overlay PNG to write (one panel per class, one curve per run); with runs of "
    "several tasks, the second task's overlay goes to <stem>_<task>.png beside it.",
)
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), help="Also write the tables as JSON."
)
@click.option("--overwrite", is_flag=True, help="Replace existing --plot/--json files.")
def compare(run_dirs: tuple[Path, ...], plot: Path, json_out: Path | None, overwrite: bool) -> None:
    """Compare the runs in RUN_DIRS (e.g. runs/*), one table per task: architecture,
    parameters, firmware exactness and the task's figures for float / QKeras / HLS
    (classification: accuracy and per-class AUC; anomaly detection: AUC and signal
    efficiency per signal class; generation: fidelity of the generated jets); and an overlay
    of their ROC curves (classification and anomaly detection).

    A folder that is not a finished run (no report.json, e.g. a partial run) is an error
    naming the folder.
    """
    runs = [load_run(d) for d in sorted(set(run_dirs))]
    paths = overlay_paths(runs, plot)
    for path in paths.values():
        check_destination(path, overwrite=overwrite, kind="file", option="--plot")
    if json_out is not None:
        check_destination(json_out, overwrite=overwrite, kind="file", option="--json")
    click.echo(format_table(runs))
    for task, path in paths.items():
        group = [r for r in runs if r.task == task]
        with atomic_file(path) as tmp:
            drawn = draw_overlay(
                task, group, tmp.with_suffix(".png") if tmp.suffix != ".png" else tmp
            )
        missing = [r.name for r in group if r.name not in drawn]
        click.echo(
            f"\n{task} ROC overlay: {path}"
            + (f" (no scores.npz: {', '.join(missing)})" if missing else "")
        )
    if not paths:
        click.echo("\nno ROC overlay: these runs have no curves (generation)")
    if json_out is not None:
        write_json_atomic(json_out, [r.to_dict() for r in runs])


COMMANDS = (compare,)
