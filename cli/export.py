"""``hepfpga export``: trained models to ONNX (``export onnx``); the deployment area adds
``export triton`` (:data:`hepfpga.cli.deploy.EXPORT_COMMANDS`)."""

from __future__ import annotations

from pathlib import Path

import click

from hepfpga.artifacts import check_destination
from hepfpga.cli.params import FiniteFloat
from hepfpga.deploy.onnx_export import export_checked_onnx, random_inputs
from hepfpga.errors import disk_full_as_error
from hepfpga.quantize.model_io import load_keras_model

__all__ = ["COMMANDS", "export"]


@click.group()
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
    with disk_full_as_error("writing the ONNX model", out):
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


COMMANDS = (export,)
