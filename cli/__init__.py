"""The ``hepfpga`` command line (top layer): one module per command area, each a thin layer
over the library functions, attached to the root group in :mod:`hepfpga.cli.app`.

The console entry point is ``hepfpga.cli:main``.
"""

from __future__ import annotations

from hepfpga.cli.app import cli, main

__all__ = ["cli", "main"]
