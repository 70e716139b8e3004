"""A cache of compiled C simulations, so a repeated verification does not recompile.

Entries live in ``$HEPFPGA_CACHE`` (default ``~/.cache/hepfpga``) under ``csim/<key>/``, where
the key is the SHA-256 of

* the model: its architecture (JSON of the converted model) and every weight's bytes,
* the hls4ml configuration hepfpga derived (all types, so profiled float models too) and the
  :class:`~hepfpga.firmware.options.FirmwareOptions`,
* the tool versions: hepfpga, hls4ml, TensorFlow, QKeras, numpy and the ``g++ --version`` line,
* hepfpga's own firmware code: the SHA-256 of every ``.py`` file of :mod:`hepfpga.firmware`
  (:func:`firmware_code_digest`). The project hepfpga writes is hls4ml's plus hepfpga's
  patches of its sources (a corrected template, a rewritten table), which change without a
  version number; a library compiled before such a change is never served after it.

An entry is ``project/`` (the hls4ml project, compiled in place, because ``build_lib.sh``
bakes the folder's absolute path into the library) and ``complete.json``, written last, after
a successful compilation. A hit converts the model again with hls4ml (a fraction of a second;
no file is written) and loads the existing library instead of running g++. A folder without
``complete.json`` (an interrupted build) is removed and rebuilt. Each entry is built under an
exclusive ``flock`` on ``csim/<key>.lock``, so concurrent processes (pytest-xdist workers)
build it once. A build that g++ refuses leaves no entry; its project (with the compiler's
whole output, ``build_lib.log``) is moved to ``csim/failed/<key>/``, the folder the error
names. Remove the cache folder at any time to reclaim the space.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from hepfpga.artifacts import check_destination, tool_versions, write_json_atomic
from hepfpga.errors import ConversionError
from hepfpga.firmware.hls_config import ConversionPlan
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.project import FirmwareProject, compile_project, write_project

__all__ = ["cache_dir", "cache_key", "cached_project", "firmware_code_digest"]

_MARKER = "complete.json"
#: where the project of a failed build is kept (``csim/failed/<key>``), named by the error
FAILED_DIR = "failed"
_VERSIONED = ("hepfpga", "hls4ml", "tensorflow", "qkeras", "numpy")


def cache_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$HEPFPGA_CACHE``, else ``~/.cache/hepfpga``."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("HEPFPGA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hepfpga"


@lru_cache(maxsize=1)
def _compiler_version() -> str:
    try:
        result = subprocess.run(
            ["g++", "--version"], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return "g++ not found"
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


@lru_cache(maxsize=1)
def firmware_code_digest() -> str:
    """SHA-256 (hex) of the ``.py`` files of :mod:`hepfpga.firmware` (path relative to the
    package and bytes, in path order): what writes, patches and builds the projects."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(plan: ConversionPlan, options: FirmwareOptions) -> str:
    """SHA-256 (hex) of model architecture and weights, hls4ml config, options, tools and
    hepfpga's firmware code (see the module docstring)."""
    digest = hashlib.sha256()
    digest.update(plan.model.to_json().encode())
    for weights in plan.model.get_weights():
        digest.update(str((weights.dtype, weights.shape)).encode())
        digest.update(weights.tobytes())
    digest.update(json.dumps(plan.hls_config, sort_keys=True, default=str).encode())
    digest.update(json.dumps(options.to_dict(), sort_keys=True, default=str).encode())
    versions = tool_versions()
    digest.update(json.dumps({k: versions.get(k) for k in _VERSIONED}, sort_keys=True).encode())
    digest.update(_compiler_version().encode())
    digest.update(firmware_code_digest().encode())
    return digest.hexdigest()


def _load(plan: ConversionPlan, options: FirmwareOptions, folder: Path) -> FirmwareProject | None:
    # deferred: hls4ml and TensorFlow load slowly
    import hls4ml

    record = json.loads((folder / _MARKER).read_text())
    library = folder / "project" / record["library"]
    if not library.is_file():
        return None
    try:
        hls_model = hls4ml.converters.convert_from_keras_model(
            plan.model,
            hls_config=plan.hls_config,
            output_dir=str(folder / "project"),
            project_name=options.project_name,
            backend=options.backend.info.hls4ml_name,
            io_type=options.io_type.value,
            part=options.effective_part,
            clock_period=options.clock_period,
        )
        hls_model.config.trace_output = True
        hls_model._top_function_lib = ctypes.cdll.LoadLibrary(str(library))
    except Exception as exc:  # a stale or foreign entry: rebuild it
        raise ConversionError(f"cached C simulation in {folder} cannot be loaded: {exc}") from exc
    return FirmwareProject(
        path=folder / "project",
        hls_model=hls_model,
        hls_config=plan.hls_config,
        options=options,
        logits_layer=plan.logits_layer,
        compile_seconds=float(record["compile_seconds"]),
        precision=plan.precision,
        quantized=plan.quantized,
        keras_model=plan.model,
        from_cache=True,
    )


def cached_project(
    plan: ConversionPlan, options: FirmwareOptions, directory: str | Path | None = None
) -> FirmwareProject:
    """The compiled project of ``plan``: loaded from the cache, or written, compiled and stored.

    ``project.from_cache`` says which; ``project.compile_seconds`` is the time the original
    compilation took.
    """
    base = cache_dir(directory)
    check_destination(
        base, exist_ok=True, option="the C-simulation cache ($HEPFPGA_CACHE or --cache-dir)"
    )
    root = base / "csim"
    folder = root / cache_key(plan, options)[:32]
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{folder.name}.lock"):
        return _lookup_or_build(plan, options, folder)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``: one process builds an entry, the others then load it."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lookup_or_build(
    plan: ConversionPlan, options: FirmwareOptions, folder: Path
) -> FirmwareProject:
    if (folder / _MARKER).is_file():
        try:
            project = _load(plan, options, folder)
        except ConversionError:
            project = None
        if project is not None:
            os.utime(folder / _MARKER)  # last use, for whoever prunes the cache
            return project
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        # compiled in place: the entry is complete only once complete.json is written
        project = write_project(plan.model, options, folder / "project", plan=plan)
        compile_project(project)
        libraries = sorted((folder / "project" / "firmware").glob(f"{options.project_name}-*.so"))
        if not libraries:
            raise ConversionError(f"no compiled library found in {folder / 'project'}")
        write_json_atomic(
            folder / _MARKER,
            {
                "library": str(libraries[-1].relative_to(folder / "project")),
                "compile_seconds": project.compile_seconds,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "options": options.to_dict(),
            },
        )
    except ConversionError as exc:
        kept = _keep_failed(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if kept is None:
            raise
        raise ConversionError(
            str(exc).replace(str(folder / "project"), str(kept)) + f" (project kept in {kept})"
        ) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return project


def _keep_failed(folder: Path) -> Path | None:
    """Move the project of a failed cache entry to ``<cache>/csim/failed/<key>`` (replacing
    an older failure of the same key), so that the error can name a folder that exists; the
    entry itself is removed. None when there is no project to keep."""
    project = folder / "project"
    if not project.is_dir():
        return None
    kept = folder.parent / FAILED_DIR / folder.name
    shutil.rmtree(kept, ignore_errors=True)
    kept.parent.mkdir(parents=True, exist_ok=True)
    try:
        project.rename(kept)
    except OSError:
        return None
    return kept
