"""``hepfpga tune TUNE_FILE``: hyper-parameter search (Optuna, dask.distributed)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from hepfpga.errors import VerificationError
from hepfpga.pipeline.tune import MAX_TRIALS, MAX_WORKERS, load_tune_config, run_tune


@click.command()
@click.argument("tune_file", type=click.Path(path_type=Path))
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="dask.distributed scheduler to run the trials on (default: a LocalCluster of the "
    "tune file's `workers` processes).",
)
@click.option(
    "--trials",
    type=click.IntRange(1, MAX_TRIALS),
    help="Overrides the tune file's `trials`.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    help="Overrides the tune file's `workers` (local worker processes).",
)
@click.option("--storage", help="SQLAlchemy URL of the study database (default: SQLite file).")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    help="Where the study folder goes (tune file: output_dir, default runs/).",
)
def tune(
    tune_file: Path,
    scheduler: str | None,
    trials: int | None,
    workers: int | None,
    storage: str | None,
    output_dir: Path | None,
) -> None:
    """Search hyper-parameters of a run config: grid, random or Bayesian (Optuna's TPE).

    TUNE_FILE names the base run config, the search space over dotted config paths, the
    objective and the strategy (see examples/jet_tagging_tune.yaml). The study is kept in a
    database, so running the same command again after an interruption (even kill -9)
    resumes without repeating finished trials; raising --trials extends a finished search.
    Writes <output_dir>/<study>/: results.csv, best_config.yaml, tune_report.json,
    objective.png, importances.png (and study.db). Every value the space can take is checked
    against the run config schema before the first trial. Exit status: 0 when at least one
    trial completed, 1 when every trial failed, 2 for bad input.
    """
    config, base = load_tune_config(tune_file)
    changes: dict[str, Any] = {
        "trials": trials,
        "workers": workers,
        "storage": storage,
        "output_dir": output_dir,
    }
    config = replace(config, **{k: v for k, v in changes.items() if v is not None})
    quiet = logging.getLogger("hepfpga").level > logging.INFO
    result = run_tune(config, base, name=tune_file.stem, scheduler=scheduler, quiet=quiet)
    lines = [
        f"study {result.study} in {result.storage}",
        f"trials: {result.n_complete} complete, {result.n_pruned} pruned, "
        f"{result.n_failed} failed ({result.seconds:.0f} s this time)",
    ]
    if result.best_value is not None:
        lines.append(f"best {config.objective}: {result.best_value:.4f} with {result.best_params}")
    if result.default_value is not None:
        lines.append(f"default config: {result.default_value:.4f}")
    lines.append(f"results: {result.folder}")
    click.echo("\n".join(lines))
    if result.n_complete == 0 and result.n_failed:
        number, reason = min(result.failures.items())
        raise VerificationError(
            f"every trial of the study '{result.study}' failed ({result.n_failed}); trial "
            f"{number}: {reason}"
        )


COMMANDS = (tune,)
