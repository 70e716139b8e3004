"""``hepfpga optimize-precision``: per-layer firmware types searched against da4ml/yosys
figures under a bit-exact or an accuracy constraint (thin over
:func:`hepfpga.pipeline.optimize_precision.optimize_precision`).

A command of its own rather than a ``scan`` mode: ``scan`` sweeps one uniform bit width and
retrains a model per point, this one keeps the trained model and searches many per-layer
widths of its firmware, with its own constraint and outputs.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import click

from hepfpga.artifacts import check_destination
from hepfpga.cli.params import FiniteFloat
from hepfpga.errors import ConfigError, VerificationError
from hepfpga.firmware.data import load_events
from hepfpga.firmware.precision_search import DEFAULT_HOLDOUT, Constraint
from hepfpga.firmware.rtl.config import HardwareConfig
from hepfpga.firmware.rtl.synth import find_yosys
from hepfpga.pipeline.optimize_precision import optimize_precision, run_inputs
from hepfpga.quantize.model_io import load_keras_model


@click.command("optimize-precision")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New output folder.")
@click.option(
    "--constraint",
    type=click.Choice([c.value for c in Constraint]),
    default=Constraint.BIT_EXACT.value,
    show_default=True,
    help="bit-exact: logits identical to the quantizer-derived firmware on every event; "
    "accuracy: accuracy drop at most --epsilon.",
)
@click.option(
    "--epsilon",
    type=FiniteFloat(0, 1),
    help="Accuracy drop allowed with --constraint accuracy (0.01 = one point).",
)
@click.option(
    "--trials",
    type=click.IntRange(min=2),
    default=40,
    show_default=True,
    help="Optuna trials of --constraint accuracy (bit-exact needs none: its widths are proven).",
)
@click.option(
    "--holdout",
    type=FiniteFloat(0, 1, min_open=True, max_open=True),
    default=DEFAULT_HOLDOUT,
    show_default=True,
    help="With --constraint accuracy: share of the events kept aside (never scored by the "
    "search) on which the choice must keep --epsilon.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the Optuna sampler and of the held-out split.",
)
@click.option(
    "--data",
    "data_file",
    type=click.Path(path_type=Path),
    help="Events (npz/HDF5) for a MODEL; a run uses its test jets.",
)
@click.option("--key", help="Array of the --data file holding the events.")
@click.option("--labels-key", help="Array of the --data file holding the labels (accuracy).")
@click.option("--max-events", type=click.IntRange(min=1), help="Use at most N events.")
@click.option(
    "--synth-points",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Pareto points built as RTL (the chosen one first), with the quantizer-derived types.",
)
@click.option(
    "--synth/--no-synth",
    default=True,
    show_default=True,
    help="Count the final points (the chosen types and the quantizer-derived ones) with "
    "yosys; without it the LUT figures are da4ml's estimate only.",
)
@click.option(
    "--synth-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="yosys' time limit per point [default: the run's hardware.synthesis_timeout_s, "
    "else 1800]; past it the point keeps its estimate and the output says so.",
)
@click.option(
    "--csim/--no-csim",
    default=True,
    show_default=True,
    help="Prove the chosen configuration with one hls4ml C simulation.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def optimize_precision_command(
    target: Path,
    out: Path,
    constraint: str,
    epsilon: float | None,
    trials: int,
    holdout: float,
    seed: int,
    data_file: Path | None,
    key: str | None,
    labels_key: str | None,
    max_events: int | None,
    synth_points: int,
    synth: bool,
    synth_timeout: float | None,
    csim: bool,
    overwrite: bool,
) -> None:
    """Per-layer result/accumulator widths of TARGET's firmware (a run folder or a QKeras
    model with --data): bit-exact, the widths proven for every input (no search); accuracy,
    chosen by Optuna against da4ml's LUT estimate and checked on held-out events.

    \b
    Writes OUT/layer_types.yml (for `hepfpga firmware MODEL --options`), OUT/search.json
    and OUT/pareto.png. Exit status 1 if the chosen configuration's C simulation breaks the
    constraint.
    """
    chosen = Constraint(constraint)
    if chosen is Constraint.ACCURACY and epsilon is None:
        raise ConfigError("--constraint accuracy needs --epsilon (e.g. 0.01 for one point)")
    if chosen is Constraint.BIT_EXACT and epsilon is not None:
        raise ConfigError("--epsilon applies to --constraint accuracy only")
    check_destination(out, overwrite=overwrite, option="--out")
    labels = None
    options = None
    hardware = HardwareConfig()
    if target.is_dir():
        scratch = Path(tempfile.mkdtemp(prefix="hepfpga-optimize-")) / "data"
        try:
            inputs = run_inputs(target, scratch)
        finally:
            shutil.rmtree(scratch.parent, ignore_errors=True)
        model, events, labels = inputs.model, inputs.events, inputs.labels
        options, hardware = inputs.options, inputs.hardware
    elif target.is_file():
        if data_file is None:
            raise ConfigError(f"{target} is a model file: give its events with --data")
        model = load_keras_model(target)
        events = load_events(data_file, key, None)
        if labels_key is not None:
            labels = load_events(data_file, labels_key, None)
    else:
        raise ConfigError(f"{target} does not exist; give a run folder or a QKeras model file")
    if chosen is Constraint.ACCURACY and labels is None:
        raise ConfigError("--constraint accuracy needs labels: a run folder, or --labels-key")
    if max_events is not None:
        events = events[:max_events]
        labels = None if labels is None else labels[:max_events]
    if synth and synth_points > 0:
        find_yosys()  # refused before the search when missing
    result = optimize_precision(
        model,
        events,
        out,
        labels=labels,
        constraint=chosen,
        epsilon=epsilon,
        n_trials=trials,
        seed=seed,
        options=options,
        synth_points=synth_points,
        synth=synth,
        csim=csim,
        overwrite=overwrite,
        holdout=holdout,
        hardware=(
            hardware
            if synth_timeout is None
            else replace(hardware, synthesis_timeout_s=synth_timeout)
        ),
    )
    s = result.search
    if s.proven:
        click.echo(
            "bit-exact widths proven for every input the input type holds (interval "
            "arithmetic over the quantized weights): no search needed, 0 of "
            f"{s.trials_requested} trials spent; the former search space would have spent "
            f"{s.trials_wasted_before:.0f} of them on candidates not proven exact. Checked on "
            f"{s.n_events} events ({s.seconds:.0f} s)"
        )
    else:
        click.echo(
            f"{s.trials_spent} trials on {s.n_events} events ({s.da4ml_solves} da4ml layer "
            f"solves, {s.seconds:.0f} s); constraint {s.constraint.value}"
        )
    click.echo(
        f"quantizer-derived types: {s.baseline.lut_estimate:,.0f} LUT; chosen "
        f"(trial {s.best.number}): {s.best.lut_estimate:,.0f} LUT. {result.lut_note()}"
    )
    for p in result.final:
        yosys = f", yosys {p.yosys_lut:,} LUT {p.yosys_ff:,} FF" if p.yosys_lut else ""
        yosys = ", yosys timed out" if p.yosys_timed_out else yosys
        name = "quantizer-derived types" if p.trial == s.baseline.number else f"trial {p.trial}"
        click.echo(
            f"  {name}: estimate {p.lut_estimate_whole:,.0f} LUT, "
            f"{p.pipeline_stages} stages{yosys}, RTL = engine: {p.rtl_matches_engine}"
        )
    if result.yosys_chosen_lut is not None and result.yosys_baseline_lut is not None:
        change = result.yosys_chosen_lut / result.yosys_baseline_lut - 1.0
        click.echo(
            f"yosys: chosen {result.yosys_chosen_lut:,} LUT vs quantizer-derived "
            f"{result.yosys_baseline_lut:,} LUT ({change:+.1%})"
        )
    for note in result.notes:
        click.echo(f"note: {note}")
    if s.constraint is Constraint.ACCURACY:
        click.echo(
            f"accuracy (emulated): unconstrained {s.baseline.accuracy:.4f} on the "
            f"{s.n_events} search events, {s.heldout_baseline_accuracy:.4f} on the "
            f"{s.n_heldout} held-out events; chosen {s.best.accuracy:.4f} and "
            f"{s.best.heldout_accuracy:.4f}"
        )
        if s.rejected_on_heldout:
            click.echo(
                f"{len(s.rejected_on_heldout)} cheaper candidates kept --epsilon on the search "
                "events but not on the held-out ones (trials "
                + ", ".join(str(n) for n in s.rejected_on_heldout)
                + ")"
            )
    if result.csim_fraction_identical is not None:
        accuracy = ""
        if result.csim_accuracy is not None:
            where = "on the held-out events" if s.constraint is Constraint.ACCURACY else ""
            accuracy = f", accuracy {result.csim_accuracy:.4f} {where}".rstrip()
        click.echo(
            f"C simulation of the chosen types: logits identical on "
            f"{result.csim_fraction_identical:.2%} of events{accuracy}"
        )
    click.echo(f"wrote {out}/layer_types.yml, search.json, pareto.png")
    broken = result.csim_fraction_identical is not None and (
        (chosen is Constraint.BIT_EXACT and result.csim_fraction_identical < 1.0)
        or (
            chosen is Constraint.ACCURACY
            and result.csim_accuracy is not None
            and s.heldout_baseline_accuracy is not None
            and s.heldout_baseline_accuracy - result.csim_accuracy > (epsilon or 0.0)
        )
    )
    if broken:
        raise VerificationError("the chosen configuration's C simulation breaks the constraint")


COMMANDS = (optimize_precision_command,)
