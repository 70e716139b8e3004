"""The ``hepfpga`` command line: a thin layer over the library functions.

Errors raised on purpose (:class:`hepfpga.errors.HepfpgaError`) print one line, ``error: ...``,
and exit with status 2 for bad input or 1 for a failed check; no traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import yaml

from hepfpga._version import __version__
from hepfpga.artifacts import check_destination
from hepfpga.cli import compare as cli_compare
from hepfpga.cli import deploy as cli_deploy
from hepfpga.cli import emulate as cli_emulate
from hepfpga.cli import firmware as cli_firmware
from hepfpga.cli import hardware as cli_hardware
from hepfpga.cli import report as cli_report
from hepfpga.cli import tune as cli_tune
from hepfpga.cli.params import FiniteFloat
from hepfpga.deploy.onnx_export import export_checked_onnx, random_inputs
from hepfpga.errors import HepfpgaError
from hepfpga.pipeline.config import config_to_dict, load_config
from hepfpga.pipeline.run import MODELS
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.runner import run_pipeline
from hepfpga.quantize.model_io import load_keras_model
from hepfpga.train.generate import generate_sample
from hepfpga.train.io import builtin_sample_path, load_sample, save_sample

# Before TensorFlow is first imported: its C++ start-up messages (CUDA plugin registration,
# CPU instruction sets) are noise for a command-line user; -vv shows them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S"))
    logger = logging.getLogger("hepfpga")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    if verbose >= 2:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        # Keras' notes on saving QKeras quantizers in HDF5 and similar library chatter
        warnings.filterwarnings(
            "ignore", category=UserWarning, module=r"(keras|tensorflow|qkeras|hls4ml)"
        )
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        try:
            # deferred: TensorFlow loads slowly
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover - absl comes with TensorFlow
            pass


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hepfpga")
@click.option(
    "-v", "--verbose", count=True, help="More output (-vv: debug, with TensorFlow's logs)."
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """hepfpga: a trigger neural network from Keras training to ONNX serving and
    bit-accurate hls4ml FPGA firmware.

    \b
    Start with the built-in jet-tagging example (real Pythia jets ship with hepfpga):
      hepfpga run examples/jet_tagging.yaml
    which writes runs/jet_tagging/ with the models, model.onnx, the firmware project and
    report.json.
    """
    _setup_logging(-1 if quiet else verbose)


@cli.command()
@click.argument("config_file", type=click.Path(path_type=Path))
@click.option("--name", help="Run name (folder under the output dir); overrides the config's name.")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    help="Where run folders go (config: output_dir, default runs/).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing run folder of the same name once the new run is complete.",
)
@click.option(
    "--max-jets", type=int, help="Use at most this many jets (stratified), for a quick run."
)
def run(
    config_file: Path,
    name: str | None,
    output_dir: Path | None,
    overwrite: bool,
    max_jets: int | None,
) -> None:
    """Run the whole pipeline described by CONFIG_FILE (YAML).

    Trains the float model, fine-tunes its QKeras counterpart, exports ONNX, converts with
    hls4ml, runs the C simulation on the test set and writes runs/<name>/ with report.json.
    Exit status: 0 when every check passes (bit-exact HLS logits, ONNX parity, accuracy drop),
    1 when a check fails (the run folder is still written), 2 for bad input.
    """
    config = load_config(config_file)
    if name is not None:
        config = replace(config, name=name)
    if output_dir is not None:
        config = replace(config, output_dir=output_dir)
    if max_jets is not None:
        config = replace(config, data=replace(config.data, max_jets=max_jets))
    result = run_pipeline(config, config_path=config_file, overwrite=overwrite)
    _print_summary(RunReport.from_content(result.report), result.run_dir)
    if not result.passed:
        raise click.exceptions.Exit(1)


def _print_summary(report: RunReport, run_dir: Path) -> None:
    cmp = report.section("hls_vs_qkeras")
    tests = report.test_figures()
    accuracy = "accuracy: " + "  ".join(
        f"{MODELS[m]} {test['accuracy']:.4f}" for m, test in tests.items() if "accuracy" in test
    )
    split = report.data.get("split", {})
    lines = [
        f"run folder: {run_dir}",
        f"architecture: {report.architecture} ({report.representation})",
        f"test jets: {split['test']}",
        *(report.summary if report.summary is not None else [accuracy]),
    ]
    if cmp and report.summary is not None:
        lines.append(
            "HLS vs QKeras output: {:.2%} bit-exact, max |diff| {:.3g}".format(
                cmp["logits_fraction_bit_exact"], cmp["logits_max_abs_diff"]
            )
        )
    elif cmp:
        lines += [
            "HLS vs QKeras logits: {:.2%} bit-exact, max |diff| {:.3g}".format(
                cmp["logits_fraction_bit_exact"], cmp["logits_max_abs_diff"]
            ),
            "HLS vs QKeras softmax (table based): max |diff| {:.3g}, argmax agreement "
            "{:.2%}{}".format(
                cmp["probs_max_abs_diff"],
                cmp["argmax_agreement"],
                f" (flips only where the top two differ by <= {cmp['argmax_flip_max_gap']:.2g})"
                if cmp["argmax_agreement"] < 1
                else "",
            ),
        ]
    lines += [f"not available: {item}" for item in report.not_available]
    onnx = report.section("onnx_vs_qkeras")
    lines += [
        "ONNX vs QKeras: max |diff| {:.3g} ({})".format(onnx["max_abs_diff"], onnx["provider"]),
        "checks: "
        + ", ".join(
            f"{k} {({True: 'ok', False: 'FAILED', None: 'not measured'})[check.passed]}"
            for k, check in report.checks.items()
        ),
        f"status: {report.status} ({report.seconds:.0f} s)",
    ]
    click.echo("\n".join(lines))


@cli.group()
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


@cli.group("config")
def config_group() -> None:
    """Check pipeline configurations."""


@config_group.command("check")
@click.argument("config_file", type=click.Path(path_type=Path))
def config_check(config_file: Path) -> None:
    """Validate CONFIG_FILE and print it with every default filled in."""
    config = load_config(config_file)
    click.echo(yaml.safe_dump(config_to_dict(config), sort_keys=False))


@cli.group()
def export() -> None:
    """Export trained models."""


@export.command("onnx")
@click.argument("model_file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output .onnx file.")
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    help="Weights .h5 when MODEL_FILE is a JSON architecture.",
)
@click.option("--opset", type=click.IntRange(9, 21), default=13, show_default=True)
@click.option(
    "--check-events",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Random inputs used to check onnxruntime against Keras.",
)
@click.option(
    "--tolerance",
    type=FiniteFloat(min=0),
    default=1e-4,
    show_default=True,
    help="Largest |onnxruntime - Keras| accepted, relative to max(1, largest |output|); a "
    "model that differs more is not written (exit status 1).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def export_onnx_cmd(
    model_file: Path,
    out: Path,
    weights: Path | None,
    opset: int,
    check_events: int,
    tolerance: float,
    overwrite: bool,
) -> None:
    """Export a Keras/QKeras model to ONNX (tf2onnx) and check it with onnxruntime.

    The model is checked (onnx checker, then onnxruntime against Keras on --check-events
    random inputs, every output) before it is renamed into place: a model that fails is not
    written. Exit status 2 for bad input, 1 when onnxruntime differs by more than --tolerance.
    """
    check_destination(out, kind="file", overwrite=overwrite, option="--out")
    model = load_keras_model(model_file, weights=weights)
    x = random_inputs(model, check_events)
    _, parity = export_checked_onnx(
        model, out, x, opset=opset, tolerance=tolerance, overwrite=overwrite
    )
    click.echo(
        f"wrote {out}; onnxruntime ({parity.provider}) vs Keras on {check_events} random inputs: "
        f"max |diff| {parity.max_abs_diff:.3g}"
        + (
            f", argmax agreement {parity.argmax_agreement:.2%}"
            if parity.argmax_agreement is not None
            else ""
        )
        + (f" ({len(parity.per_output)} outputs)" if len(parity.per_output) > 1 else "")
    )


# Each area keeps its commands in its own module; they are attached here, once.
for _area in (
    cli_firmware,
    cli_emulate,
    cli_deploy,
    cli_compare,
    cli_hardware,
    cli_report,
    cli_tune,
):
    _area.register(cli, export)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    try:
        # without standalone mode click *returns* the status of ``raise Exit(n)`` / ctx.exit(n)
        # instead of raising it; a command that returns normally gives None (status 0)
        status = cli.main(args=argv, prog_name="hepfpga", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except HepfpgaError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
