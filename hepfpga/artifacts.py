"""Run folders, manifests and atomic writes.

A run is written into a hidden temporary folder beside its destination and renamed into place
only when every artifact is complete, so ``runs/<name>/`` is either absent or whole. A failed
run leaves nothing behind. ``manifest.json`` records the inputs (with SHA-256 hashes), the
versions of the tools and a hash of every file the run wrote.
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
from collections.abc import Iterator
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
    "dumps_strict",
    "file_sha256",
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


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder that is renamed to ``path`` when the block
    succeeds and removed when it raises; the file gets the mode a plain ``open()`` gives.

    The temporary name keeps the suffix, so writers that choose a format by suffix (Keras,
    ``np.savez``) behave as for ``path`` itself.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~umask())  # mkstemp creates 0600; results are shared files
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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


def check_destination(destination: Path, *, overwrite: bool = False) -> None:
    """Refuse an existing output folder unless ``overwrite``; call it before long work."""
    if Path(destination).exists() and not overwrite:
        raise ConfigError(
            f"the output folder {destination} already exists; choose another run name "
            "(--name) or pass --overwrite to replace it once the new run is complete"
        )


@contextlib.contextmanager
def atomic_directory(destination: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``destination`` when the block succeeds.

    If the block raises, the temporary folder is removed and ``destination`` is untouched.
    An existing ``destination`` is refused unless ``overwrite`` is true, in which case it is
    replaced only after the new folder is complete.
    """
    destination = Path(destination)
    check_destination(destination, overwrite=overwrite)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    )
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.chmod(0o777 & ~umask())  # mkdtemp creates 0700
    old: Path | None = None
    if destination.exists():
        old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
        destination.rename(old)
    tmp.rename(destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
