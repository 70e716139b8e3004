"""``hepfpga data``: generate and inspect jet samples."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from hepfpga.artifacts import check_destination
from hepfpga.train.generate import generate_sample
from hepfpga.train.io import builtin_sample_path, load_sample, save_sample

__all__ = ["COMMANDS", "data"]


@click.group()
def data() -> None:
    """Generate and inspect jet samples."""


@data.command("generate")
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Output file: .npz or .h5."
)
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=4000,
    show_default=True,
    help="Jets per class (q, g, W, Z, t).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 900_000_000),
    default=1,
    show_default=True,
    help="Pythia random seed (Pythia's range).",
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
    help="Worker processes (default: one per CPU); the jets do not depend on it.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def data_generate(
    out: Path,
    per_class: int,
    seed: int,
    constituents: int,
    workers: int | None,
    no_progress: bool,
    overwrite: bool,
) -> None:
    """Generate q/g/W/Z/t jets with Pythia 8 and fastjet (needs: pip install 'hepfpga[datagen]').

    pp at 13 TeV, pTHat 1000-1100 GeV, anti-kT R=0.8 jets with pT > 800 GeV and |eta| < 2.5
    matched to the truth parton/boson/top; the 16 hls4ml jet features and the leading
    constituents of each jet.
    """
    if out.suffix not in (".npz", ".h5", ".hdf5"):
        raise click.BadParameter(
            f"unknown suffix '{out.suffix}'; accepted: .npz, .h5, .hdf5", param_hint="--out"
        )
    check_destination(out, kind="file", overwrite=overwrite, option="--out")
    sample = generate_sample(
        per_class, seed=seed, n_constituents=constituents, progress=not no_progress, workers=workers
    )
    save_sample(sample, out)
    click.echo(f"wrote {len(sample)} jets to {out}")


@data.command("info")
@click.argument("path", type=click.Path(path_type=Path), required=False)
def data_info(path: Path | None) -> None:
    """Describe a jet sample file (default: the built-in sample)."""
    path = path or builtin_sample_path()
    sample = load_sample(path)
    click.echo(
        f"{path}: {len(sample)} jets, {sample.features.shape[1]} features, "
        f"constituents {sample.constituents.shape[1:]}"
    )
    for i, name in enumerate(sample.class_names):
        sel = sample.labels == i
        mass = (
            sample.features[sel, list(sample.feature_names).index("mass_mmdt")]
            if sel.any()
            else np.array([np.nan])
        )
        click.echo(
            f"  {name}: {int(sel.sum()):6d} jets, mean mass_mmdt {float(np.mean(mass)):7.1f} GeV"
        )


COMMANDS = (data,)
