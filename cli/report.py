"""``hepfpga report RUN``: rebuild a run folder's self-contained ``report.html``."""

from __future__ import annotations

from pathlib import Path

import click

from hepfpga.pipeline.report_html import write_report_html


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Rebuild RUN_DIR/report.html from its report.json and scores.npz.

    The page is self-contained (every plot embedded, nothing loaded from the network): summary
    and checks, data, learning curves, the train-vs-test overtraining check, ROC curves of
    float / QKeras / HLS / BDT, confusion matrices, DNN vs BDT, saliency, per-layer types,
    firmware exactness, hardware figures when present, timings and versions.
    """
    out = write_report_html(run_dir)
    click.echo(f"wrote {out}")


COMMANDS = (report,)
