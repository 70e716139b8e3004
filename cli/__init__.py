"""The ``hepfpga`` command line (top layer): one module per command area, each a thin layer
over the library functions, attached to the root group in :mod:`hepfpga.cli.app`.

The console entry point is ``hepfpga.cli:main``.
"""

from __future__ import annotations

import sys

try:
    from hepfpga.cli.app import cli, main
except KeyboardInterrupt:
    # Ctrl-C while the commands load (about two seconds: click, the pipeline, NumPy) exits
    # like Ctrl-C at any later moment (hepfpga.cli.app.main): status 130, no traceback
    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None

__all__ = ["cli", "main"]
