"""Run folders, manifests and atomic writes.

A run is written into a hidden temporary folder beside its destination and renamed into place
only when every artifact is complete, so ``runs/<name>/`` is either absent or whole. A failed
run leaves nothing behind. ``manifest.json`` records the inputs (with SHA-256 hashes), the
versions of the tools and a hash of every file the run wrote.

Every output of every command goes through the same three pieces:

* :func:`check_destination`, before any work: one overwrite rule (refused unless
  ``overwrite``), file-versus-folder, writable, sane name;
* :func:`atomic_file` / :func:`atomic_directory` (and
  :func:`hepfpga.firmware.write_project`): a ``.NAME.HOST-PID-N.partial`` twin, checked
  before it is renamed into place; twins left by killed processes are removed by the next
  write (:func:`clean_stale_partials`);
* :func:`dumps_strict`: strict JSON, non-finite numbers as ``"NaN"``/``"Infinity"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from hepfpga.errors import ConfigError

__all__ = [
    "TOOL_PACKAGES",
    "atomic_directory",
    "atomic_file",
    "check_destination",
    "clean_stale_partials",
    "dumps_strict",
    "file_sha256",
    "make_partial_directory",
    "move_into_place",
    "partial_name",
    "remove_empty_parents",
    "strict_plain",
    "tool_versions",
    "write_json_atomic",
    "write_manifest",
    "write_text_atomic",
]

#: Distributions whose versions are recorded in every report and manifest.
TOOL_PACKAGES = (
    "hepfpga",
    "tensorflow",
    "keras",
    "qkeras",
    "tensorflow-model-optimization",
    "hls4ml",
    "onnx",
    "tf2onnx",
    "onnxruntime",
    "numpy",
)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tool_versions() -> dict[str, str | None]:
    """Installed versions of :data:`TOOL_PACKAGES` (None where not installed) and Python."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in TOOL_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


#: How every JSON file hepfpga writes spells a non-finite float. JSON has no NaN or Infinity
#: (``json.dumps`` writes bare ``NaN`` tokens that strict parsers reject), so they are written
#: as these strings, the convention of protobuf's canonical JSON mapping. A reader turns them
#: back with ``float(value)``, which accepts all three spellings.
NONFINITE_STRINGS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _nonfinite(value: float) -> str:
    if value != value:  # NaN
        return NONFINITE_STRINGS["nan"]
    return NONFINITE_STRINGS["inf"] if value > 0 else NONFINITE_STRINGS["-inf"]


def strict_plain(obj: Any) -> Any:
    """``obj`` as plain JSON data with non-finite floats spelt as :data:`NONFINITE_STRINGS`.

    Mappings, lists, tuples, numpy scalars and arrays and paths are converted; anything else
    JSON cannot hold raises ``TypeError``.
    """
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else _nonfinite(obj)
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): strict_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_plain(v) for v in obj]
    return strict_plain(_json_default(obj))


def dumps_strict(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes ``NaN``/``Infinity`` tokens (strict JSON, RFC 8259).

    Non-finite floats become the strings of :data:`NONFINITE_STRINGS`; numpy values and paths
    are converted. ``kwargs`` go to ``json.dumps`` (``indent``, ``separators``, ...). Data
    without non-finite floats is encoded in one pass.
    """
    try:
        return json.dumps(data, allow_nan=False, default=_json_default, **kwargs)
    except ValueError:  # a non-finite float somewhere: spell it out and encode again
        return json.dumps(strict_plain(data), allow_nan=False, **kwargs)


def umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: longest output name accepted (bytes): a temporary name beside it
#: (``.NAME.HOST-PID-RANDOM.partial.SUFFIX``) must still fit the usual 255-byte limit
MAX_NAME_BYTES = 200
#: a partial output of another host (or without a readable owner) is removed after this long
STALE_AFTER_S = 7 * 24 * 3600

_HOST = hashlib.sha256(platform.node().encode()).hexdigest()[:6]


def _fail(path: Path, option: str | None, problem: str) -> ConfigError:
    where = f"{option} {path}" if option else str(path)
    return ConfigError(f"cannot write {where}: {problem}")


def _probe_writable(folder: Path, path: Path, option: str | None) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root and
    read-only file systems."""
    try:
        fd, name = tempfile.mkstemp(prefix=".hepfpga-write-check.", dir=folder)
    except OSError as exc:
        raise _fail(
            path, option, f"the folder {folder} is not writable ({exc.strerror or exc})"
        ) from exc
    os.close(fd)
    Path(name).unlink(missing_ok=True)


def check_destination(
    destination: Path,
    *,
    overwrite: bool = False,
    kind: str = "folder",
    option: str | None = None,
    exist_ok: bool = False,
) -> Path:
    """The one check of an output path, made before any work; returns the path.

    ``kind`` is ``"folder"`` (a run folder, a firmware project) or ``"file"``. The rules, the
    same for every command:

    * an existing output is refused unless ``overwrite`` (``--overwrite``); it is then replaced
      only once the new one is complete. An empty folder counts as absent. ``exist_ok``
      accepts an existing folder as it is (a cache).
    * a folder where a file is expected, a file where a folder is expected, or a device, pipe
      or socket where a file is expected (``--out /dev/null``) is refused;
    * missing parent folders are created when the output is written (like ``mkdir -p``), so
      the nearest existing one must be a folder this process can write into;
    * the name must be at most :data:`MAX_NAME_BYTES` bytes.

    Errors are :class:`~hepfpga.errors.ConfigError` naming ``option`` (e.g. ``--out``), the
    path and the problem.
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', not {kind!r}")  # programming error
    path = Path(destination)
    name = path.absolute().name
    if not name or name in (".", ".."):
        raise _fail(path, option, f"expected a {kind} name, got '{path}'")
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise _fail(
            path, option, f"the name is {len(os.fsencode(name))} bytes; at most {MAX_NAME_BYTES}"
        )
    try:
        exists = path.exists()
        if exists:
            if kind == "folder" and not path.is_dir():
                raise _fail(path, option, "it is a file, and a folder is expected here")
            if kind == "file" and path.is_dir():
                raise _fail(
                    path,
                    option,
                    f"it is a folder, and a file is expected here (e.g. {path / 'output'})",
                )
            if kind == "file" and not path.is_file():
                # the rename would replace the device (as root: /dev/null) with a file
                raise _fail(path, option, "it is not a regular file (a device, pipe or socket)")
            empty = kind == "folder" and not any(path.iterdir())
            if not (overwrite or exist_ok or empty):
                raise _fail(
                    path,
                    option,
                    "it already exists; refusing to overwrite it. Choose another name or pass "
                    "--overwrite to replace it once the new output is complete",
                )
        ancestor = path.absolute().parent
        while not ancestor.exists():
            ancestor = ancestor.parent
    except OSError as exc:  # e.g. a folder on the way that cannot be searched
        raise _fail(path, option, exc.strerror or str(exc)) from exc
    if not ancestor.is_dir():
        raise _fail(path, option, f"{ancestor} is a file, not a folder")
    _probe_writable(path if exists and kind == "folder" and exist_ok else ancestor, path, option)
    return path


def _partial_prefix(destination: Path) -> str:
    return f".{destination.name}."


def partial_name(destination: Path) -> str:
    """A fresh name for the temporary twin of ``destination``, in its folder:
    ``.NAME.HOST-PID-RANDOM.partial`` (files keep their suffix after it, because Keras and
    NumPy choose the format by suffix). The host and process id let
    :func:`clean_stale_partials` know whose it is."""
    destination = Path(destination)
    return (
        f"{_partial_prefix(destination)}{_HOST}-{os.getpid()}-{os.urandom(4).hex()}.partial"
        f"{destination.suffix}"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_partials(destination: Path) -> list[Path]:
    """Remove the temporary twins of ``destination`` that a killed process left behind.

    A twin (``.NAME.HOST-PID-RANDOM.partial[SUFFIX]``, or ``.NAME.old-PID`` left between the
    two renames of an overwrite) is removed when it was made on this host by a process that
    no longer runs, or when it is older than :data:`STALE_AFTER_S` (another host's, whose
    process cannot be asked). Twins of live processes are left alone. Returns what was removed.
    """
    destination = Path(destination)
    folder = destination.parent
    prefix = _partial_prefix(destination)
    removed: list[Path] = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for candidate in candidates:
        rest = candidate.name[len(prefix) :]
        host, pid = None, None
        if rest.startswith("old-") and rest[4:].isdigit():
            host, pid = _HOST, int(rest[4:])
        elif ".partial" in rest:
            fields = rest.split(".partial", 1)[0].split("-")
            if len(fields) == 3 and fields[1].isdigit():
                host, pid = fields[0], int(fields[1])
        else:
            continue  # not ours (e.g. '.NAME.notes')
        try:
            age = now - candidate.lstat().st_mtime
        except OSError:
            continue
        mine = host == _HOST and pid is not None
        if pid == os.getpid() and mine:
            continue
        if (mine and pid is not None and not _pid_alive(pid)) or age > STALE_AFTER_S:
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_file(
    path: Path, *, check: Callable[[Path], None] | None = None, overwrite: bool = True
) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder that is renamed to ``path`` when the block
    succeeds and removed when it raises; the file gets the mode a plain ``open()`` gives.

    The temporary name keeps the suffix, so writers that choose a format by suffix (Keras,
    ``np.savez``) behave as for ``path`` itself. ``check(tmp)``, if given, runs on the
    complete temporary file before the rename: an output that fails its check never reaches
    ``path``. Missing parent folders are created; stale temporary files of killed processes
    are removed (:func:`clean_stale_partials`). ``overwrite=False`` refuses an existing
    ``path`` (checked again just before the rename).
    """
    path = Path(path)
    created = _make_parents(path)
    clean_stale_partials(path)
    tmp = path.parent / partial_name(path)
    try:
        tmp.touch(mode=0o600, exist_ok=False)
        yield tmp
        if check is not None:
            check(tmp)
        tmp.chmod(0o666 & ~umask())  # created private; results are shared files
        if not overwrite and path.exists():
            check_destination(path, kind="file")  # raises the usual message
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_empty_parents(created)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented strict JSON (see :func:`dumps_strict`) to ``path`` through a
    temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, dumps_strict(data, indent=2) + "\n")


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parent folders of ``path``; return them, deepest first."""
    missing = []
    parent = Path(path).absolute().parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    Path(path).absolute().parent.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty_parents(created: list[Path]) -> None:
    """Remove the folders :func:`make_partial_directory` created for a failed output, if they
    are still empty (deepest first), so a failure leaves nothing behind."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def make_partial_directory(destination: Path) -> tuple[Path, list[Path]]:
    """Create the temporary twin folder of ``destination`` (and missing parents), after
    removing stale twins of killed processes; mode as a plain ``mkdir`` gives.

    Returns the twin and the parent folders created (for :func:`remove_empty_parents`).
    """
    destination = Path(destination)
    created = _make_parents(destination)
    clean_stale_partials(destination)
    tmp = destination.parent / partial_name(destination)
    try:
        tmp.mkdir(mode=0o777 & ~umask())
    except BaseException:
        remove_empty_parents(created)
        raise
    return tmp, created


def move_into_place(tmp: Path, destination: Path) -> None:
    """Rename the complete folder ``tmp`` to ``destination``, replacing an existing one (an
    empty folder, or one the caller was allowed to overwrite) only after the rename is sure
    to happen; the old folder is removed afterwards."""
    destination = Path(destination)
    old: Path | None = None
    if destination.exists() or destination.is_symlink():
        old = destination.with_name(f"{_partial_prefix(destination)}old-{os.getpid()}")
        destination.rename(old)
    try:
        tmp.rename(destination)
    except BaseException:
        if old is not None:
            old.rename(destination)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(destination: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``destination`` when the block succeeds.

    If the block raises, the temporary folder is removed and ``destination`` is untouched.
    An existing ``destination`` is refused unless ``overwrite`` is true, in which case it is
    replaced only after the new folder is complete (see :func:`check_destination`).
    """
    destination = Path(destination)
    check_destination(destination, overwrite=overwrite)
    tmp, created = make_partial_directory(destination)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty_parents(created)
        raise
    move_into_place(tmp, destination)


def write_manifest(
    run_dir: Path,
    *,
    inputs: dict[str, Path | None],
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``manifest.json`` in ``run_dir``: inputs with hashes, versions, output hashes.

    Paths of outputs are relative to the run folder, so the manifest stays true after the
    folder is renamed into place or moved.
    """
    run_dir = Path(run_dir)
    outputs = {
        str(p.relative_to(run_dir)): file_sha256(p)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    manifest = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
        "versions": tool_versions(),
        "inputs": {
            name: ({"path": str(p), "sha256": file_sha256(p)} if p is not None else None)
            for name, p in inputs.items()
        },
        "config": config,
        "outputs": outputs,
        **(extra or {}),
    }
    write_json_atomic(run_dir / "manifest.json", manifest)
    return manifest
