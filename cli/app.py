"""The ``hepfpga`` command line: a thin layer over the library functions.

Errors raised on purpose (:class:`hepfpga.errors.HepfpgaError`) print one line, ``error: ...``,
and exit with status 2 for bad input or 1 for a failed check; no traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import click

from hepfpga._version import __version__
from hepfpga.cli import (
    compare,
    config,
    data,
    deploy,
    emulate,
    emulator_lib,
    export,
    firmware,
    hardware,
    report,
    tune,
)
from hepfpga.cli import run as run_area
from hepfpga.errors import HepfpgaError

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


# Each command area is one module holding its click commands and groups at module level
# (``COMMANDS``; ``EXPORT_COMMANDS``: subcommands of ``hepfpga export``); they are attached here.
for _area in (
    run_area,
    data,
    config,
    export,
    firmware,
    emulate,
    emulator_lib,
    deploy,
    compare,
    hardware,
    report,
    tune,
):
    for _command in _area.COMMANDS:
        cli.add_command(_command)
for _command in deploy.EXPORT_COMMANDS:
    export.export.add_command(_command)


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
