"""``hepfpga data``: generate and inspect jet samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import numpy as np

from hepfpga.artifacts import check_destination
from hepfpga.cluster import check_scheduler_address
from hepfpga.errors import DataError
from hepfpga.train.generate import (
    BUILTIN_PHYSICS,
    DEFAULT_PHYSICS,
    PHYSICS_SETTINGS,
    check_classes,
)
from hepfpga.train.generate_shards import ShardRun, generate_shards, merge_shards
from hepfpga.train.io import WRITE_SUFFIXES, builtin_sample_path, load_sample, save_sample
from hepfpga.train.jets import CLASS_NAMES

__all__ = ["COMMANDS", "data"]


@click.group()
def data() -> None:
    """Generate and inspect jet samples."""


@data.command("generate")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="A folder (no suffix): one HDF5 shard per chunk plus manifest.json, resumable; or one "
    "file (.npz, .h5, .hdf5): the shards merged into it.",
)
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=4000,
    show_default=True,
    help="Jets per class. A shard folder grows: run again with more and only the missing "
    "chunks are made.",
)
@click.option(
    "--classes",
    default=",".join(CLASS_NAMES),
    show_default=True,
    help="The classes to generate, comma-separated. A shard is the same file (name, Pythia "
    "seed, jets) whatever the classes: the q,g shards of an all-class folder and of a q,g "
    "folder of the same --seed can be hard-linked between them; a folder keeps the classes "
    "a run does not name.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 900_000_000),
    default=1,
    show_default=True,
    help="Pythia random seed (Pythia's range).",
)
@click.option(
    "--physics",
    type=click.Choice(PHYSICS_SETTINGS.names()),
    default=DEFAULT_PHYSICS,
    show_default=True,
    help=f"Where the W and Z jets come from: a 2.1 TeV W' decaying to longitudinal W Z "
    f"(heavy-resonance), or ffbar -> WW/ZZ ({BUILTIN_PHYSICS}, the built-in sample's).",
)
@click.option(
    "--constituents",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Leading constituents kept per jet.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes of the local dask cluster (default: one per CPU); the jets do not "
    "depend on it.",
)
@click.option(
    "--scheduler",
    help="dask.distributed scheduler to run the chunks on (e.g. tcp://host:8786; its workers "
    "must see --out); default: a local cluster of --workers processes.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def data_generate(
    out: Path,
    per_class: int,
    classes: str,
    seed: int,
    physics: str,
    constituents: int,
    workers: int | None,
    scheduler: str | None,
    no_progress: bool,
    overwrite: bool,
) -> None:
    """Generate q/g/W/Z/t jets with Pythia 8 and fastjet on dask (needs: pip install
    'hepfpga[datagen]').

    pp at 13 TeV, pTHat 1000-1100 GeV (q, g, t), anti-kT R=0.8 jets with pT > 800 GeV and
    |eta| < 2.5 matched to the truth parton/boson/top; the 16 hls4ml jet features and the
    leading constituents of each jet. Every chunk of 250 jets is one dask task writing one
    shard (named by its seed); run the same command again after an interruption and only the
    missing shards are made, bit-identical to an uninterrupted run.
    """
    names = tuple(c.strip() for c in classes.split(","))
    try:
        names = check_classes(names)
    except DataError as exc:
        raise click.BadParameter(str(exc), param_hint="--classes") from exc
    if scheduler is not None:
        check_scheduler_address(scheduler)
        if workers is not None:
            raise click.UsageError(
                "--workers sets the size of the local cluster; with --scheduler the cluster's "
                "own workers run the chunks: give one of the two"
            )

    def run_into(folder: Path) -> ShardRun:
        return generate_shards(
            folder,
            per_class,
            classes=names,
            seed=seed,
            n_constituents=constituents,
            physics=physics,
            scheduler=scheduler,
            workers=workers,
            progress=not no_progress,
        )

    if out.suffix.lower() in WRITE_SUFFIXES:
        check_destination(out, kind="file", overwrite=overwrite, option="--out")
        shards = out.with_name(out.name + ".shards")
        run = run_into(shards)
        save_sample(merge_shards(shards), out)
        shutil.rmtree(shards)  # made by this command (or an interrupted run of it)
        click.echo(f"wrote {run.summary()}; merged into {out}")
        return
    if out.suffix:
        raise click.BadParameter(
            f"unknown suffix '{out.suffix}'; accepted: a folder name without a suffix (shards) "
            f"or a file {', '.join(WRITE_SUFFIXES)}",
            param_hint="--out",
        )
    if overwrite:
        raise click.BadParameter(
            "--overwrite replaces a file; a shard folder is resumed (its missing shards are "
            "made) or, for other settings, refused: remove it yourself to start again",
            param_hint="--out",
        )
    run = run_into(out)
    click.echo(f"wrote {run.summary()}")


@data.command("info")
@click.argument("path", type=click.Path(path_type=Path), required=False)
def data_info(path: Path | None) -> None:
    """Describe a jet sample file (default: the built-in sample)."""
    path = path or builtin_sample_path()
    sample = load_sample(path)
    missing = sample.metadata.get("missing", {})
    missing = missing if isinstance(missing, dict) else {}
    features = (
        "no substructure features"
        if "features" in missing
        else f"{sample.features.shape[1]} features"
    )
    constituents = (
        "no constituents"
        if "constituents" in missing
        else f"constituents {sample.constituents.shape[1:]}"
    )
    click.echo(f"{path}: {len(sample)} jets, {features}, {constituents}")
    for reason in missing.values():
        click.echo(f"  ({reason})")
    # the groomed (mMDT) mass where the file has the 16 features, else the ungroomed jet mass
    if "features" in missing:
        label, column = "mean jet mass", sample.jet_mass
    else:
        label = "mean mass_mmdt"
        column = sample.features[:, list(sample.feature_names).index("mass_mmdt")]
    for i, name in enumerate(sample.class_names):
        sel = sample.labels == i
        mean = float(np.mean(column[sel])) if sel.any() else float("nan")
        click.echo(f"  {name}: {int(sel.sum()):6d} jets, {label} {mean:7.1f} GeV")


COMMANDS = (data,)
