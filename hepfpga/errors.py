"""The one exceptions module of hepfpga.

Every error raised on purpose by hepfpga derives from :class:`HepfpgaError`; its message says
what was wrong, where, and what is accepted. The CLI turns these into a one-line message and
exit status 2 (bad input) or 1 (a check that failed), never a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConversionError",
    "DataError",
    "ExportError",
    "HepfpgaError",
    "MissingDependencyError",
    "ModelFileError",
    "VerificationError",
]


class HepfpgaError(Exception):
    """Base class of all hepfpga errors."""

    #: exit status the CLI uses for this error
    exit_code: int = 2


class ConfigError(HepfpgaError, ValueError):
    """A configuration value or key is invalid.

    ``path`` is the dotted location in the config (``training.optimizer``), ``source`` the file
    it came from, if any.
    """

    def __init__(self, message: str, *, path: str = "", source: str | None = None) -> None:
        self.message = message
        self.path = path
        self.source = source
        where = f"{source}: " if source else ""
        at = f"at '{path}': " if path else ""
        super().__init__(f"{where}{at}{message}")


class DataError(HepfpgaError, ValueError):
    """Input data is missing, unreadable, of the wrong shape or contains NaN/Inf."""


class ModelFileError(HepfpgaError, ValueError):
    """A file given as a model is missing, corrupt, or not a Keras/QKeras model."""


class MissingDependencyError(HepfpgaError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""


class ConversionError(HepfpgaError):
    """A model cannot be converted (to QKeras, to an hls4ml project) or its C simulation
    does not compile; the message names the layer and what is supported."""


class ExportError(HepfpgaError):
    """ONNX export failed or the exported model does not reproduce the Keras model."""


class VerificationError(HepfpgaError):
    """A verification requirement (bit-exactness, tolerance) does not hold."""

    exit_code = 1
