"""The ``hepfpga`` command line: a thin layer over the library functions.

Errors raised on purpose (:class:`hepfpga.errors.HepfpgaError`) print one line, ``error: ...``,
and exit with status 2 for bad input or 1 for a failed check; no traceback. :func:`main` is
the one boundary for the rest: an interrupt (Ctrl-C, even one that surfaced inside an import as
another exception) exits 130; failures of the operating system (a full disk, permissions) and
of the third-party libraries hepfpga drives (:data:`hepfpga.errors.EXTERNAL_FAMILIES`) that no
code nearer to them translated become one line and status 2; anything else is a bug in
hepfpga: one ``internal error`` line and status 1, with the traceback under ``-v``.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
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
    optimize_precision,
    report,
    tune,
)
from hepfpga.cli import run as run_area
from hepfpga.errors import external_error, interrupted

# Before TensorFlow is first imported: its C++ start-up messages (CUDA plugin registration,
# CPU instruction sets) are noise for a command-line user; -vv shows them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


#: the verbosity of the command being run (``-v`` count; -1 with ``-q``), for :func:`main`
_verbosity = {"level": 0}


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
    _verbosity["level"] = -1 if quiet else verbose
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
    optimize_precision,
    report,
    tune,
):
    for _command in _area.COMMANDS:
        cli.add_command(_command)
for _command in deploy.EXPORT_COMMANDS:
    export.export.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 1 a failed check or an internal
    error, 2 bad input or a failure outside hepfpga, 130 interrupted)."""
    _verbosity["level"] = 0
    try:
        # without standalone mode click *returns* the status of ``raise Exit(n)`` / ctx.exit(n)
        # instead of raising it; a command that returns normally gives None (status 0)
        status = cli.main(args=argv, prog_name="hepfpga", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C in a command into Abort (after an empty line)
        click.echo("interrupted" if interrupted(exc) else "aborted", err=True)
        return 130
    except BaseException as exc:
        return _report_failure(exc)
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def _report_failure(exc: BaseException) -> int:
    if interrupted(exc):
        click.echo("interrupted", err=True)
        return 130
    if isinstance(exc, SystemExit | GeneratorExit):
        raise exc
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code
    error = external_error(exc)
    if error is not None:
        click.echo(f"error: {error}", err=True)
        if _verbosity["level"] >= 2 and error is not exc:
            traceback.print_exception(exc, file=sys.stderr)
        return error.exit_code
    if _verbosity["level"] >= 1:
        raise exc
    click.echo(
        f"error: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
        "(a bug in hepfpga: run the command again with -v to see where, and report it)",
        err=True,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
