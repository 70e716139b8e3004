"""``hepfpga compare``: one table and a ROC overlay of finished runs."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["register"]


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--plot",
    "plot",
    type=click.Path(path_type=Path),
    default=Path("roc_compare.png"),
    show_default=True,
    help="ROC overlay PNG to write (one panel per class, one curve per run).",
)
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), help="Also write the table as JSON."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --plot/--json file.")
def compare(run_dirs: tuple[Path, ...], plot: Path, json_out: Path | None, overwrite: bool) -> None:
    """Compare the runs in RUN_DIRS (e.g. runs/*): architecture, accuracy and per-class AUC of
    float / QKeras / HLS, parameters, firmware exactness; and an overlay of their ROC curves.

    Folders without report.json (e.g. a partial run) are an error naming the folder.
    """
    from hepfpga.artifacts import atomic_file, check_destination, write_json_atomic
    from hepfpga.compare import format_table, load_run, plot_roc_overlay

    check_destination(plot, overwrite=overwrite, kind="file", option="--plot")
    if json_out is not None:
        check_destination(json_out, overwrite=overwrite, kind="file", option="--json")
    runs = [load_run(d) for d in sorted(set(run_dirs))]
    click.echo(format_table(runs))
    with atomic_file(plot) as tmp:
        drawn = plot_roc_overlay(runs, tmp.with_suffix(".png") if tmp.suffix != ".png" else tmp)
    missing = [r.name for r in runs if r.name not in drawn]
    click.echo(
        f"\nROC overlay: {plot}" + (f" (no scores.npz: {', '.join(missing)})" if missing else "")
    )
    if json_out is not None:
        write_json_atomic(json_out, [r.to_dict() for r in runs])


def register(cli: click.Group, export: click.Group) -> None:
    cli.add_command(compare)
