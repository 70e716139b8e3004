"""The one exceptions module of hepfpga.

Every error raised on purpose by hepfpga derives from :class:`HepfpgaError`; its message says
what was wrong, where, and what is accepted. The CLI turns these into a one-line message and
exit status 2 (bad input) or 1 (a check that failed), never a traceback.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
from collections.abc import Iterator

__all__ = [
    "ConfigError",
    "ConversionError",
    "DataError",
    "ExportError",
    "ExternalError",
    "FileSystemError",
    "HepfpgaError",
    "MissingDependencyError",
    "ModelFileError",
    "VerificationError",
    "causes",
    "disk_full",
    "disk_full_as_error",
    "file_system_error",
    "interrupted",
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


class FileSystemError(HepfpgaError):
    """A file or folder could not be read or written: the disk is full (or a file-size limit
    was reached), permission is denied, the file system is read-only... The message names
    the path and what to do; ``errno`` is the operating system's error number."""

    def __init__(self, message: str, *, errno: int | None = None, path: str | None = None):
        self.errno = errno
        self.path = path
        super().__init__(message)


class ExternalError(HepfpgaError):
    """A third-party component failed outside hepfpga's control: a database, a dask
    scheduler, onnxruntime, an HDF5 or zip reader, a compiler. The message names it, where,
    and what to do."""


class ToolTimeoutError(ExternalError):
    """An external tool (yosys, Verilator, g++) ran past its time limit and was stopped;
    ``tool`` names it, ``seconds`` is the limit. A stage that can do without the tool's
    figures keeps what it has and says which figures are missing."""

    def __init__(self, message: str, *, tool: str, seconds: float):
        self.tool = tool
        self.seconds = seconds
        super().__init__(message)


#: error numbers of a full disk: ENOSPC; EDQUOT (a quota); EFBIG (a file-size limit, e.g.
#: ``ulimit -f``, which the CLI reports like a full disk)
DISK_FULL_ERRNOS = frozenset(
    e for e in (_errno.ENOSPC, getattr(_errno, "EDQUOT", None), _errno.EFBIG) if e is not None
)
#: what libraries print when the disk fills under them (g++/as/ld, SQLite, HDF5); SQLite
#: reports a write refused by a file-size limit as a "disk I/O error"
_DISK_FULL_TEXTS = (
    "no space left on device",
    "file too large",
    "disk quota exceeded",
    "database or disk is full",
    "disk i/o error",
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (``__cause__`` and
    ``__context__``), nearest first, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, an interrupt (Ctrl-C, SIGINT).

    An interrupt that arrives inside an ``import`` (or inside a library's ``except
    Exception``) can surface as another exception, e.g. an ``ImportError`` whose cause is
    the ``KeyboardInterrupt``; the CLI still treats it as the interrupt it was."""
    return any(isinstance(e, KeyboardInterrupt) for e in causes(exc))


def disk_full(exc: BaseException | str) -> bool:
    """Whether ``exc`` (or a message, e.g. a compiler's output) says the disk is full or a
    file-size limit was reached, in it or in its causes."""
    if isinstance(exc, str):
        text = exc.lower()
        return any(t in text for t in _DISK_FULL_TEXTS)
    for e in causes(exc):
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return True
        if disk_full(str(e)):
            return True
    return False


def _os_error_in(exc: BaseException) -> OSError | None:
    return next((e for e in causes(exc) if isinstance(e, OSError) and e.errno), None)


def file_system_error(
    exc: BaseException, *, doing: str, path: str | os.PathLike[str] | None = None
) -> FileSystemError:
    """The :class:`FileSystemError` that explains ``exc`` (an ``OSError``, or an exception
    caused by one), raised while ``doing`` (e.g. ``"writing the study database"``) at
    ``path`` (default: the file the error names). Raise it ``from exc``.

    A full disk (ENOSPC, EDQUOT) or a file-size limit (EFBIG, ``ulimit -f``) says the disk is
    full at that path; EACCES/EPERM, EROFS, ENOENT, ENOTDIR/EISDIR, EMFILE/ENFILE say what to
    change; anything else gives the operating system's message."""
    os_error = _os_error_in(exc)
    number = os_error.errno if os_error is not None else None
    where = path if path is not None else getattr(os_error, "filename", None)
    at = f" {os.fspath(where)}" if where is not None else ""
    reason = (os_error.strerror if os_error is not None else None) or _first_line(exc)
    reason = reason.split("(Background on this error")[0].strip()  # SQLAlchemy's link
    if number in DISK_FULL_ERRNOS or (number is None and disk_full(exc)):
        if number == _errno.EFBIG:
            reason = "a file-size limit was reached (ulimit -f), as on a full disk"
        message = (
            f"{doing}{at} failed: the disk is full ({reason}); free space there or write "
            "somewhere else, then run the command again"
        )
    elif number in (_errno.EACCES, _errno.EPERM):
        message = f"{doing}{at} failed: permission denied; choose a path you can write to"
    elif number == _errno.EROFS:
        message = f"{doing}{at} failed: the file system is read-only; write somewhere else"
    elif number == _errno.ENOENT:
        message = f"{doing}{at} failed: no such file or folder ({reason})"
    elif number in (_errno.ENOTDIR, _errno.EISDIR):
        message = f"{doing}{at} failed: {reason}; a file and a folder are mixed up on the way"
    elif number in (_errno.EMFILE, _errno.ENFILE):
        message = f"{doing}{at} failed: too many open files; raise the limit (ulimit -n)"
    else:
        message = f"{doing}{at} failed: {reason}"
    return FileSystemError(
        message, errno=number, path=os.fspath(where) if where is not None else None
    )


@contextlib.contextmanager
def disk_full_as_error(doing: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a full disk (or a file-size limit) met inside the block, in whatever exception a
    library wraps it, into the :func:`file_system_error` naming ``path`` (the destination the
    user chose, e.g. ``--out``; the temporary twin the writer used is gone by then). Other
    exceptions pass unchanged."""
    try:
        yield
    except HepfpgaError:
        raise
    except Exception as exc:
        if disk_full(exc):
            raise file_system_error(exc, doing=doing, path=path) from exc
        raise


#: third-party families the CLI translates as a last resort: the top-level module of the
#: exception's class -> (what failed, what to do)
EXTERNAL_FAMILIES: dict[str, tuple[str, str]] = {
    "sqlalchemy": (
        "the database (SQLAlchemy)",
        "check the storage URL (e.g. sqlite:///path/study.db), that the database is reachable "
        "and writable, and that the file is a study database",
    ),
    "optuna": ("optuna", "check the study name and the storage"),
    "distributed": (
        "dask.distributed",
        "check the --scheduler address (tcp://HOST:PORT) and that its workers run",
    ),
    "dask": ("dask", "check the scheduler and its workers"),
    "onnxruntime": (
        "onnxruntime",
        "the ONNX model may be corrupt or use an operator this onnxruntime does not have",
    ),
    "h5py": ("HDF5 (h5py)", "the file may be corrupt, truncated or not HDF5"),
    "zipfile": ("a zip (.npz) file", "the file is corrupt or truncated; write it again"),
    "subprocess": ("a program hepfpga ran", "run it by hand in that folder to see its output"),
}


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.split(" (Background on this error")[0]  # SQLAlchemy's link to its docs
    return text if len(text) <= limit else text[: limit - 3] + "..."


def external_error(exc: BaseException) -> HepfpgaError | None:
    """The error to report for an exception no hepfpga code translated (the CLI's last
    resort), or None when it is not a known third-party or system failure (a bug).

    Operating-system errors become :func:`file_system_error`; exceptions of the libraries in
    :data:`EXTERNAL_FAMILIES` (their class's top-level module, in ``exc`` or its causes) an
    :class:`ExternalError` naming the library, the exception and what to check; running out
    of memory says so."""
    for e in causes(exc):
        if isinstance(e, HepfpgaError):
            return e
        if isinstance(e, MemoryError):
            return ExternalError(
                "out of memory: the input or an option asks for more memory than this machine "
                "has; use smaller inputs (e.g. --max-jets) or fewer events"
            )
        family = type(e).__module__.split(".")[0]
        if family in EXTERNAL_FAMILIES:
            if disk_full(e):
                return file_system_error(e, doing=f"writing ({EXTERNAL_FAMILIES[family][0]})")
            what, hint = EXTERNAL_FAMILIES[family]
            return ExternalError(f"{what} failed: {type(e).__name__}: {_first_line(e)}; {hint}")
        if isinstance(e, OSError) and (e.errno is not None or disk_full(e)):
            return file_system_error(e, doing="reading or writing")
    return None
