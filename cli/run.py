"""``hepfpga run``: the whole pipeline of a config, and its summary."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from hepfpga.errors import disk_full_as_error
from hepfpga.pipeline.config import load_config
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.runner import run_pipeline

__all__ = ["COMMANDS", "run"]


@click.command()
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
    "--max-jets",
    type=click.IntRange(min=1),
    help="Use at most this many jets (stratified), for a quick run.",
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
    with disk_full_as_error("writing the run folder", Path(config.output_dir) / config.name):
        result = run_pipeline(config, config_path=config_file, overwrite=overwrite)
    _print_summary(RunReport.from_content(result.report), result.run_dir)
    if not result.passed:
        raise click.exceptions.Exit(1)


def _print_summary(report: RunReport, run_dir: Path) -> None:
    cmp = report.section("hls_vs_qkeras")
    tests = report.test_figures()
    accuracy = "accuracy: " + "  ".join(
        f"{report.model_label(m)} {test['accuracy']:.4f}"
        for m, test in tests.items()
        if "accuracy" in test
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
        "ONNX vs {}: max |diff| {:.3g} ({})".format(
            report.model_label("qkeras"), onnx["max_abs_diff"], onnx["provider"]
        ),
        "checks: "
        + ", ".join(
            f"{k} {({True: 'ok', False: 'FAILED', None: 'not measured'})[check.passed]}"
            for k, check in report.checks.items()
        ),
        f"status: {report.status} ({report.seconds:.0f} s)",
    ]
    click.echo("\n".join(lines))


COMMANDS = (run,)
