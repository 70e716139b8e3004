"""Event arrays in files: the one safe reader (npz, npy, HDF5, parquet, ROOT) and the npz/HDF5/
parquet writers.

Readers are opened with :func:`open_array` and read **by event range**, so a file larger than
memory is processed chunk by chunk (and each chunk can be read on a dask worker: a reader
pickles as its path and selection, not its data):

========== ============================================ =====================================
format     ``key``                                      ``columns``
========== ============================================ =====================================
``.npz``   the array (default: the only one, or ``x``,  field names of a structured array
           ``X``, ``features``, ``inputs``)
``.npy``   -- (the file is one array)                   field names of a structured array
``.h5``    the dataset path (same default rule)         field names of a compound dataset
``.parquet`` --                                         column names (default: every numeric
                                                        column)
``.root``  the TTree (default: the only one)            branch names (default: every branch
                                                        holding one number per event)
========== ============================================ =====================================

Every event becomes a row of ``n_features`` numbers; arrays with more axes per event are
flattened in C order. Writers (:class:`ArrayWriter`) take named 2-D arrays chunk by chunk in
event order and rename the finished file into place; parquet gets columns ``<name>_<i>``.
Errors are :class:`~hepfpga.errors.DataError` naming the file, the key or column and what
is accepted.

What a file may make hepfpga do is bounded **before** anything is read:

* the shape and dtype an array *declares* are checked first: it must be numbers (no Python
  objects, strings or complex values as inputs; in a structured array, each field taken as a
  column), and what it declares must fit in what the file holds (a forged or truncated
  header is refused, not read into a ``MemoryError``);
* one read allocates and decompresses at most :attr:`ReadLimits.max_bytes` (default: half of
  this machine's memory, or ``HEPFPGA_MAX_READ_BYTES``), and only the events asked for are
  decompressed: the first ten events of a deflate bomb inflate about ten events' worth of
  bytes (each reader counts them in ``inflated_bytes``);
* HDF5 files whose values live elsewhere are refused as a whole, with one line: external
  links, external (raw) storage, virtual datasets and user-defined links
  (:func:`open_hdf5` is the one way hepfpga opens an HDF5 data file);
* values read as event inputs must be finite: NaN and infinities are refused with their count
  and first place, before any work is done on them.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga._optional import require
from hepfpga.artifacts import atomic_file, check_destination
from hepfpga.errors import ConfigError, DataError
from hepfpga.registry import Registry

__all__ = [
    "DEFAULT_OPEN_FILES",
    "READ_FORMATS",
    "WRITE_FORMATS",
    "ArrayReader",
    "ArrayWriter",
    "HDF5Dataset",
    "HDF5File",
    "NpzArchive",
    "ReadLimits",
    "check_finite",
    "check_input_path",
    "held_hdf5_count",
    "hold_hdf5_files",
    "open_array",
    "open_hdf5",
    "open_npz",
    "read_array",
]

#: file suffix -> the format read / written (an unknown suffix is a DataError listing them)
READ_FORMATS: Registry[str] = Registry(
    "input format",
    {
        ".npz": "npz",
        ".npy": "npy",
        ".h5": "hdf5",
        ".hdf5": "hdf5",
        ".parquet": "parquet",
        ".root": "root",
    },
)
WRITE_FORMATS: Registry[str] = Registry(
    "output format", {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".parquet": "parquet"}
)
_DEFAULT_KEYS = ("x", "X", "inputs", "features", "x_test", "X_test")
#: ROOT classes read as event tables (uproot reads both the same way)
_ROOT_TREES = ("TTree", "ROOT::RNTuple")
#: bytes decompressed per step while skipping to the first event asked for
_SKIP_BLOCK = 1 << 20
_MAX_BYTES_VARIABLE = "HEPFPGA_MAX_READ_BYTES"


def _default_max_bytes() -> int:
    """``HEPFPGA_MAX_READ_BYTES`` if set, else half of this machine's physical memory."""
    text = os.environ.get(_MAX_BYTES_VARIABLE, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise DataError(f"{_MAX_BYTES_VARIABLE}={text!r}: expected a positive number of bytes")
        return value
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        memory = 8 << 30
    return max(memory // 2, 1 << 28)


@dataclass(frozen=True)
class ReadLimits:
    """What one read of a data file may cost.

    ``max_bytes``: the most bytes one read may allocate for the values asked for, and the most
    it may decompress to reach them (default: :func:`_default_max_bytes`, half this machine's
    memory or ``HEPFPGA_MAX_READ_BYTES``).
    """

    max_bytes: int = field(default_factory=_default_max_bytes)

    def check(self, where: str, what: str, n_bytes: int, hint: str) -> None:
        """Refuse ``n_bytes`` over :attr:`max_bytes`, naming ``where`` and ``what``."""
        if n_bytes > self.max_bytes:
            raise DataError(
                f"{where}: {what} {_size(n_bytes)}, more than the {_size(self.max_bytes)} one "
                f"read may take ({_MAX_BYTES_VARIABLE}, default half of this machine's "
                f"memory); {hint}"
            )


def _size(n_bytes: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes} bytes"


def _format(path: Path, table: dict[str, str], what: str) -> str:
    fmt = table.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unknown {what} format '{path.suffix or '(no suffix)'}'; accepted: "
            f"{', '.join(sorted(table))}"
        )
    return fmt


def _pick_key(path: Path, keys: Sequence[str], key: str | None, what: str) -> str:
    if key is not None:
        if key not in keys:
            raise DataError(f"{path}: no {what} '{key}'; found: {', '.join(keys) or 'none'}")
        return key
    if len(keys) == 1:
        return keys[0]
    for candidate in _DEFAULT_KEYS:
        if candidate in keys:
            return candidate
    raise DataError(
        f"{path}: {len(keys)} {what}s ({', '.join(keys) or 'none'}); choose one with --key"
    )


def check_finite(
    values: np.ndarray, where: str, first_event: int = 0, *, cast_to: str | None = None
) -> None:
    """Refuse NaN and infinities in the ``(n_events, ...)`` array ``values`` with their count
    and first places (event numbers start at ``first_event``); integers always pass.
    ``where``: the subject of the message (``"x.npz 'x': inputs"``, ``"inputs"``).
    ``cast_to``: the type ``values`` were cast to (e.g. ``"float32"``), named in the message
    because a finite value beyond its range became infinite there."""
    if not np.issubdtype(values.dtype, np.inexact) or values.size == 0:
        return
    bad = ~np.isfinite(values.reshape(len(values), -1))
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    places = ", ".join(
        f"event {first_event + r} input {c}" for r, c in zip(rows[:5], cols[:5], strict=True)
    )
    raise DataError(
        f"{where} contain {int(bad.sum())} NaN or infinite values"
        f"{f' (or beyond {cast_to} range)' if cast_to else ''} in "
        f"{len(np.unique(rows))} events (first: {places}); only finite numbers are accepted: "
        "remove or replace them first"
    )


def _numeric_dtype(dtype: np.dtype) -> bool:
    """Real numbers (bool, integers, floats): what may become an input column."""
    return dtype.kind in "biuf"


def _nbytes(shape: Sequence[int], dtype: np.dtype) -> int:
    return math.prod(int(d) for d in shape) * dtype.itemsize


# -- .npy streams (a .npy file, or a member of a .npz) --------------------------------------
@dataclass(frozen=True)
class _NpyLayout:
    """What a .npy header declares, checked against what the stream holds."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    data_offset: int  # bytes of magic + header before the values

    @property
    def row_bytes(self) -> int:
        return _nbytes(self.shape[1:], self.dtype)


def _npy_header(handle: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the .npy stream ``handle``, left at its data."""
    version = np.lib.format.read_magic(handle)
    # the one reader of every header version (1.0, 2.0 and 3.0); numpy's stubs omit it
    read_header = np.lib.format._read_array_header  # type: ignore[attr-defined]
    return read_header(handle, version)


def _npy_layout(handle: Any, where: str, available: int) -> _NpyLayout:
    """The checked header of the .npy stream ``handle`` holding ``available`` bytes in all.

    Refused: Python objects (a pickle, never loaded), negative dimensions, and a declared size
    larger than the stream (a forged or truncated header)."""
    start = handle.tell()
    try:
        shape, fortran, dtype = _npy_header(handle)
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise DataError(f"{where}: not a valid .npy array header ({exc})") from exc
    if dtype.hasobject:
        raise DataError(
            f"{where}: holds Python objects (dtype {dtype}), which would be unpickled; "
            "hepfpga reads only arrays of numbers (and strings): save plain numbers"
        )
    if any(int(d) < 0 for d in shape):
        raise DataError(f"{where}: declares the impossible shape {shape}")
    offset = handle.tell() - start
    declared = _nbytes(shape, dtype)
    if offset + declared > available:
        raise DataError(
            f"{where}: declares shape {tuple(shape)} of {dtype} ({_size(declared)}) but holds "
            f"only {_size(max(available - offset, 0))}: the file is truncated or its header "
            "forged"
        )
    return _NpyLayout(tuple(int(d) for d in shape), bool(fortran), dtype, offset)


def _read_values(
    handle: Any, shape: tuple[int, ...], dtype: np.dtype, where: str, fortran: bool = False
) -> np.ndarray:
    """A new (writable) array of ``shape`` filled from the next bytes of ``handle``; a stream
    that ends early is a DataError (truncated)."""
    if fortran:
        return _read_values(handle, shape[::-1], dtype, where).T
    array = np.empty(shape, dtype=dtype)
    if not array.nbytes:
        return array
    buffer = array.reshape(-1).view(np.uint8)
    filled = 0
    while filled < len(buffer):
        n = handle.readinto(buffer[filled:])
        if not n:
            raise DataError(
                f"{where}: ended after {_size(filled)} of the {_size(len(buffer))} its header "
                "declares: the file is truncated or corrupt"
            )
        filled += n
    return array


def _npy_rows(
    handle: Any,
    layout: _NpyLayout,
    start: int,
    stop: int,
    *,
    seekable: bool,
    where: str,
    limits: ReadLimits,
) -> tuple[np.ndarray, int]:
    """Rows ``[start, stop)`` of the array whose values begin at ``handle``'s position, and
    the bytes pulled through ``handle`` (decompressed, when it is a compressed member).

    Only the rows asked for are read; a compressed stream is decompressed up to ``stop`` in
    blocks of :data:`_SKIP_BLOCK` bytes (never the rest of it). A Fortran-ordered array is
    read whole (its rows are not contiguous), within the same limits."""
    if not layout.shape or (layout.fortran and len(layout.shape) > 1):
        size = _nbytes(layout.shape, layout.dtype)
        limits.check(where, "reading it whole takes", size, "save it in C order")
        array = _read_values(handle, layout.shape, layout.dtype, where, layout.fortran)
        return (array if not layout.shape else array[start:stop]), (0 if seekable else size)
    row = layout.row_bytes
    want = (stop - start) * row
    limits.check(
        where,
        f"events {start}..{stop - 1} take",
        want,
        "read fewer events at a time (--max-events, --chunk-size)",
    )
    pulled = 0
    if seekable:
        handle.seek(handle.tell() + start * row)
    else:
        skip = start * row
        limits.check(
            where, f"reaching event {start} decompresses", skip + want, "read earlier events"
        )
        while skip:
            block = handle.read(min(skip, _SKIP_BLOCK))
            if not block:
                break
            skip -= len(block)
            pulled += len(block)
    array = _read_values(handle, (stop - start, *layout.shape[1:]), layout.dtype, where)
    pulled += want
    return array, (0 if seekable else pulled)


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


class NpzArchive:
    """The arrays of a ``.npz`` file, read by event range within :class:`ReadLimits`.

    Use as a context manager (:func:`open_npz`). Each member's header is checked before its
    values are read (:func:`_npy_layout`); stored members are read in place, compressed ones
    decompressed only up to the last event asked for. ``inflated_bytes`` counts the bytes
    decompressed so far.
    """

    def __init__(self, path: str | Path, limits: ReadLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or ReadLimits()
        self.inflated_bytes = 0
        try:
            self._zip = zipfile.ZipFile(self.path)
        except _ZIP_ERRORS as exc:
            raise DataError(f"{self.path}: cannot be read as npz (a zip archive): {exc}") from exc
        self.keys: tuple[str, ...] = tuple(
            n[: -len(".npy")] for n in self._zip.namelist() if n.endswith(".npy")
        )
        self._size = self.path.stat().st_size

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def _where(self, key: str) -> str:
        return f"{self.path} '{key}'"

    def _info(self, key: str) -> zipfile.ZipInfo:
        if key not in self.keys:
            raise DataError(
                f"{self.path}: no array '{key}'; found: {', '.join(self.keys) or 'none'}"
            )
        info = self._zip.getinfo(f"{key}.npy")
        if info.compress_size > self._size:
            raise DataError(
                f"{self._where(key)}: the archive says it takes {_size(info.compress_size)}, "
                f"more than the whole file ({_size(self._size)}): truncated or corrupt"
            )
        return info

    @contextlib.contextmanager
    def _member(self, key: str) -> Iterator[tuple[Any, _NpyLayout, bool]]:
        info = self._info(key)
        where = self._where(key)
        offset = _stored_offset(self.path, info)
        try:
            if offset is not None:  # np.savez: an uncompressed member, read in place
                if offset + info.file_size > self._size:
                    raise DataError(f"{where}: the member ends past the end of the file: truncated")
                with self.path.open("rb") as handle:
                    handle.seek(offset)
                    layout = _npy_layout(handle, where, info.file_size)
                    yield handle, layout, True
            else:
                with self._zip.open(info) as member:
                    layout = _npy_layout(member, where, info.file_size)
                    yield member, layout, False
        except DataError:
            raise
        except _ZIP_ERRORS as exc:
            raise DataError(f"{where}: cannot be read, the archive is corrupt: {exc}") from exc

    def layout(self, key: str) -> _NpyLayout:
        """The checked declared shape and dtype of array ``key`` (nothing else read)."""
        with self._member(key) as (_, layout, _seekable):
            return layout

    def read(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Events ``[start, stop)`` of array ``key`` (a 0-d array whole)."""
        with self._member(key) as (handle, layout, seekable):
            n = layout.shape[0] if layout.shape else 0
            stop = n if stop is None else min(stop, n)
            start = min(max(0, start), stop)
            array, inflated = _npy_rows(
                handle,
                layout,
                start,
                stop,
                seekable=seekable,
                where=self._where(key),
                limits=self.limits,
            )
        self.inflated_bytes += inflated
        return array


def open_npz(path: str | Path, limits: ReadLimits | None = None) -> NpzArchive:
    """The one way hepfpga opens a ``.npz`` file: :class:`NpzArchive` (a context manager)."""
    return NpzArchive(path, limits)


# -- HDF5 ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HDF5Dataset:
    """What a checked dataset of an :class:`HDF5File` declares: its path in the file, its
    shape (events first) and its dtype. Its values are read through :meth:`HDF5File.read`."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


class HDF5File:
    """A read-only HDF5 file whose every link and dataset was checked on opening.

    Refused as a whole (:class:`DataError`, one line naming the object): external links,
    user-defined links, datasets with external (raw) storage and virtual datasets: each would
    make hepfpga read another file of this machine. Soft links stay inside the file and are
    followed. Each dataset is checked again when it is looked up (:meth:`dataset`,
    :meth:`get`): a declared shape that was never written, a null dataspace and references
    are refused. :meth:`read` reads events by range (optionally some columns of the last
    axis) within :class:`ReadLimits`, counting the bytes of the compressed chunks it touches
    in ``inflated_bytes``.

    The file's root group reads like a mapping of names: :meth:`keys`, ``name in file``,
    :meth:`get` (the :class:`HDF5Dataset` or None) and :meth:`kind`.
    """

    def __init__(self, path: Path, handle: Any, limits: ReadLimits) -> None:
        # deferred: h5py loads slowly
        import h5py

        self.path = path
        self.handle = handle
        self.limits = limits
        self.inflated_bytes = 0
        # datasets checked already (the names only: an open h5py dataset holds ~0.6 MB)
        self._checked: set[str] = set()
        self._described: dict[str, HDF5Dataset] = {}  # what get() returned
        self._h5py = h5py
        refused: list[str] = []

        def on_link(name: str, link: Any) -> None:
            if isinstance(link, h5py.ExternalLink):
                refused.append(f"'{name}' is an external link to {link.filename}:{link.path}")
            elif not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
                refused.append(f"'{name}' is a user-defined link ({type(link).__name__})")

        datasets: list[str] = []

        def on_object(name: str, obj: Any) -> None:
            if not isinstance(obj, h5py.Dataset):
                return
            if obj.is_virtual:
                refused.append(f"'{name}' is a virtual dataset (its values live in other files)")
            elif obj.id.get_create_plist().get_external_count():
                refused.append(f"'{name}' keeps its values in external files")
            else:
                datasets.append(name)

        handle.visititems_links(on_link)
        handle.visititems(on_object)
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise DataError(
                f"{path}: refused: {refused[0]}{more}; hepfpga reads only HDF5 files that "
                "hold their own values: copy the data into the file (e.g. h5py's "
                "`f2.create_dataset(name, data=f1[name][()])`) and retry"
            )
        self.datasets: tuple[str, ...] = tuple(datasets)

    @property
    def attrs(self) -> Any:
        """The root group's attributes (stored in the file itself)."""
        return self.handle.attrs

    def keys(self) -> tuple[str, ...]:
        """The names of the links in the root group (:meth:`members` of ``/``)."""
        return self.members()

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` (a path in the file) leads to an object."""
        return isinstance(name, str) and self.handle.get(name) is not None

    def kind(self, name: str) -> str | None:
        """What ``name`` leads to: ``"dataset"``, ``"group"``, ``"datatype"``, or None if
        nothing is there."""
        item = self.handle.get(name)
        return None if item is None else type(item).__name__.lower()

    def get(self, name: str) -> HDF5Dataset | None:
        """The checked :class:`HDF5Dataset` ``name`` (see :meth:`dataset`), or None where the
        file has no dataset of that name (nothing, or a group: :meth:`kind` tells which).
        Described once per opening (a file held open is read many times)."""
        described = self._described.get(name)
        if described is not None:
            return described
        if not isinstance(self.handle.get(name), self._h5py.Dataset):
            return None
        item = self.dataset(name)
        described = HDF5Dataset(name, tuple(int(d) for d in item.shape), item.dtype)
        self._described[name] = described
        return described

    def members(self, group: str = "/") -> tuple[str, ...]:
        """The names of the links directly in ``group``."""
        item = self.handle.get(group)
        if not isinstance(item, self._h5py.Group):
            raise DataError(f"{self.path}: '{group}' is not a group")
        return tuple(item.keys())

    def dataset(self, name: str) -> Any:
        """The dataset ``name`` (an ``h5py.Dataset``, read-only), or a DataError naming what
        is there instead and the datasets the file holds. Checked once per opening (the file
        is read-only)."""
        item = self.handle.get(name)
        if name in self._checked:
            return item
        if item is None:
            raise DataError(
                f"{self.path}: no dataset '{name}'; found: {', '.join(self.datasets) or 'none'}"
            )
        if not isinstance(item, self._h5py.Dataset):
            raise DataError(
                f"{self.path}: '{name}' is an HDF5 {type(item).__name__.lower()}, expected a "
                "dataset (an array)"
            )
        if item.shape is None:
            raise DataError(f"{self.path}: dataset '{name}' holds no data (a null dataspace)")
        self._check_written(name, item)
        if item.dtype.hasobject and self._h5py.check_string_dtype(item.dtype) is None:
            raise DataError(
                f"{self.path}: dataset '{name}' holds {item.dtype} (references or other "
                "objects); expected numbers or strings"
            )
        self._checked.add(name)
        return item

    def _check_written(self, name: str, dataset: Any) -> None:
        """Refuse a dataset whose declared shape was never written: HDF5 reads unwritten
        storage as fill values, so a few kB can declare 10^10 events of zeros."""
        h5d = self._h5py.h5d
        shape = tuple(int(d) for d in dataset.shape)
        declared = _nbytes(shape, dataset.dtype)
        if not declared or dataset.dtype.hasobject:
            return
        layout = dataset.id.get_create_plist().get_layout()
        if layout == h5d.CHUNKED:
            chunks = tuple(int(c) for c in dataset.chunks)
            needed = math.prod(-(-s // c) for s, c in zip(shape, chunks, strict=True))
            written = dataset.id.get_num_chunks()
            if written < needed:
                raise DataError(
                    f"{self.path}: dataset '{name}' declares shape {shape} "
                    f"({_size(declared)}) but only {written:,} of its {needed:,} chunks were "
                    "written: the rest holds no data (a truncated or forged file)"
                )
        elif layout == h5d.CONTIGUOUS and dataset.id.get_storage_size() < declared:
            raise DataError(
                f"{self.path}: dataset '{name}' declares shape {shape} ({_size(declared)}) "
                f"but only {_size(dataset.id.get_storage_size())} were written (a truncated "
                "or forged file)"
            )

    def read(
        self,
        name: str,
        start: int = 0,
        stop: int | None = None,
        columns: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Events ``[start, stop)`` of dataset ``name`` (a scalar dataset whole).

        ``columns``: indices on the dataset's last axis to read, in the order given (repeats
        allowed); only those are read and counted against :class:`ReadLimits`, and only the
        chunks holding them are decompressed (and counted in ``inflated_bytes``)."""
        dataset = self.dataset(name)
        where = f"{self.path} '{name}'"
        shape = tuple(int(d) for d in dataset.shape)
        if not shape:
            if columns is not None:
                raise DataError(f"{where}: a scalar dataset has no columns to choose")
            self.limits.check(where, "it takes", dataset.dtype.itemsize, "")
            return np.asarray(dataset[()])
        picked = self._columns(where, shape, columns)
        stop = shape[0] if stop is None else min(stop, shape[0])
        start = min(max(0, start), stop)
        # the shape of one event as read: every column, or the distinct ones asked for
        event = shape[1:] if picked is None else (*shape[1:-1], len(picked))
        self.limits.check(
            where,
            f"events {start}..{stop - 1} take",
            (stop - start) * _nbytes(event, dataset.dtype),
            "read fewer events at a time (--max-events, --chunk-size)",
        )
        if dataset.chunks is not None and stop > start:
            chunks = tuple(int(c) for c in dataset.chunks)
            rows = -(-stop // chunks[0]) - start // chunks[0]
            grid = [-(-s // c) for s, c in zip(shape[1:], chunks[1:], strict=True)]
            if picked is not None:
                grid[-1] = len({c // chunks[-1] for c in picked})
            inflated = rows * math.prod(grid) * _nbytes(chunks, dataset.dtype)
            self.limits.check(
                where,
                f"events {start}..{stop - 1} lie in chunks that decompress to",
                inflated,
                "store it with smaller chunks",
            )
            self.inflated_bytes += inflated
        try:
            if picked is None:
                return np.asarray(dataset[start:stop])
            # h5py reads a list of columns only increasing and without repeats
            middle = (slice(None),) * (len(shape) - 2)
            values = np.asarray(dataset[(slice(start, stop), *middle, picked)])
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{where}: cannot be read: {exc}") from exc
        return values[..., [picked.index(int(c)) for c in columns or ()]]

    @staticmethod
    def _columns(
        where: str, shape: tuple[int, ...], columns: Sequence[int] | None
    ) -> list[int] | None:
        """The distinct ``columns`` of the last axis, increasing (checked in range)."""
        if columns is None:
            return None
        if len(shape) < 2:
            raise DataError(f"{where}: a dataset of shape {shape} has no columns to choose")
        width = shape[-1]
        bad = [int(c) for c in columns if not 0 <= int(c) < width]
        if bad or not len(columns):
            raise DataError(
                f"{where}: column(s) {bad or 'none'} asked for; accepted: 0..{width - 1}, at "
                "least one"
            )
        return sorted({int(c) for c in columns})


def _open_checked(path: Path, limits: ReadLimits) -> HDF5File:
    """Open and check ``path`` (the caller closes ``.handle``)."""
    # deferred: h5py loads slowly
    import h5py

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as an HDF5 file: {exc}") from exc
    try:
        return HDF5File(path, handle, limits)
    except (OSError, ValueError, KeyError) as exc:
        handle.close()
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot be read as an HDF5 file: {exc}") from exc
    except BaseException:
        handle.close()
        raise


@contextlib.contextmanager
def open_hdf5(path: str | Path, limits: ReadLimits | None = None) -> Iterator[HDF5File]:
    """The one way hepfpga opens an HDF5 data file: read-only, checked (:class:`HDF5File`).

    Inside :func:`hold_hdf5_files` the checked file is kept open for the next
    ``open_hdf5`` of the same path (see there); otherwise it is closed on leaving the block.
    Errors (a missing, corrupt or hostile file) are :class:`DataError` naming the file."""
    path = Path(path)
    limits = limits or ReadLimits()
    held = _HELD.acquire(path, limits)
    if held is not None:
        try:
            yield held.file
        finally:
            _HELD.release(held)
        return
    checked = _open_checked(path, limits)
    try:
        yield checked
    finally:
        checked.handle.close()


#: the most files a :func:`hold_hdf5_files` keeps open by default (and never more than a
#: quarter of this process's limit on open files). An open, checked file costs about 0.7 MB
#: (HDF5's per-file structures: 0.5 MB for a bare ``h5py.File``), so 256 held files ~ 180 MB.
DEFAULT_OPEN_FILES = 256


def _file_identity(path: Path) -> tuple[int, int, int, int]:
    """What tells a file from the one that was at ``path`` before (replaced or rewritten)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: no such file") from exc
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open_file_limit() -> int:
    """This process's (soft) limit on open files; 256 where the platform does not say."""
    try:
        limit = os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return 256
    return limit if limit > 0 else 256


@dataclass(eq=False)
class _Held:
    file: HDF5File
    identity: tuple[int, int, int, int]
    users: int = 0
    evicted: bool = False


class _HeldFiles:
    """The checked HDF5 files kept open while at least one :func:`hold_hdf5_files` block is
    active (in any thread): the first ones opened, up to the bound; never closed while in
    use."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # re-entered if a generator holding files is collected
        self.bounds: list[int] = []  # max_open of each active hold
        self.files: dict[tuple[str, ReadLimits], _Held] = {}

    def acquire(self, path: Path, limits: ReadLimits) -> _Held | None:
        """The held checked file at ``path`` (opened and checked if it is not held, or if
        the file there is not the one that was opened); None when no hold is active. When
        the bound is reached, a file not held is opened for this read only (not admitted):
        a streamed epoch visits every shard once in turn, and evicting the least recently
        used file would evict each just before its next read (no file ever found open)."""
        if not self.bounds:
            return None
        identity = _file_identity(path)
        key = (str(path.absolute()), limits)
        with self.lock:
            if not self.bounds:
                return None
            held = self.files.get(key)
            if held is not None and held.identity != identity:
                self._drop(key)  # replaced or rewritten since it was opened: check it anew
                held = None
            if held is None:
                held = _Held(_open_checked(path, limits), identity)
                bound = min(max(self.bounds), max(1, _open_file_limit() // 4))
                if len(self.files) < bound:
                    self.files[key] = held
                else:
                    held.evicted = True  # closed when this read releases it
            held.users += 1
            return held

    def release(self, held: _Held) -> None:
        with self.lock:
            held.users -= 1
            if held.evicted and held.users == 0:
                held.file.handle.close()

    def _drop(self, key: tuple[str, ReadLimits]) -> None:
        held = self.files.pop(key)
        held.evicted = True
        if held.users == 0:
            held.file.handle.close()

    def hold(self, max_open: int) -> None:
        with self.lock:
            self.bounds.append(max_open)

    def unhold(self, max_open: int) -> None:
        with self.lock:
            self.bounds.remove(max_open)
            if not self.bounds:
                for key in list(self.files):
                    self._drop(key)

    def __len__(self) -> int:
        return len(self.files)


_HELD = _HeldFiles()


@contextlib.contextmanager
def hold_hdf5_files(max_open: int = DEFAULT_OPEN_FILES) -> Iterator[None]:
    """Keep the HDF5 files :func:`open_hdf5` opens open between reads while this block runs:
    a file read again (a shard read in several row ranges, or in every epoch) is not opened
    and checked again. At most ``max_open`` files are held, the first ones opened (never more
    than a quarter of this process's open-file limit); past that, a file is opened for one
    read and closed (with N files read in turn, ``max_open`` of them are found open: least
    recently used eviction would find none). All are closed when the last active hold ends.
    Blocks may overlap, in any thread (a ``tf.data`` generator's thread and the fit's): the
    held files are this process's, and while any hold is active every ``open_hdf5`` goes
    through them. ``max_open`` 0 adds no hold (reads open their file each time unless
    another hold is active).

    The checks of :class:`HDF5File` stay those of opening: a held file is used again only
    while the path still names the same file (device, inode, size and modification time);
    a file replaced or rewritten since is opened and checked anew."""
    if max_open < 0:
        raise DataError(f"expected a non-negative number of files. Received: {max_open}")
    if max_open == 0:
        yield
        return
    _HELD.hold(max_open)
    try:
        yield
    finally:
        _HELD.unhold(max_open)


def held_hdf5_count() -> int:
    """The number of HDF5 files held open now (see :func:`hold_hdf5_files`)."""
    return len(_HELD)


# -- event arrays ---------------------------------------------------------------------------
class ArrayReader:
    """Events ``[start, stop)`` of one array in a file, as ``(n, n_features)`` numbers.

    ``inflated_bytes``: the bytes decompressed by this reader's reads so far (its own
    accounting of :class:`ReadLimits`)."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        key: str | None,
        columns: tuple[str, ...] | None,
        n_events: int,
        n_features: int,
        limits: ReadLimits | None = None,
    ) -> None:
        self.path = path
        self.format = fmt
        self.key = key
        self.columns = columns
        self.n_events = n_events
        self.n_features = n_features
        self.limits = limits or ReadLimits()
        self.inflated_bytes = 0

    def describe(self) -> str:
        where = f" '{self.key}'" if self.key else ""
        return f"{self.path}{where}"

    def read(self, start: int = 0, stop: int | None = None, *, flat: bool = True) -> np.ndarray:
        """Events ``[start, stop)``; ``flat``: as ``(n, n_features)``, else in the stored
        per-event shape (images stay images). NaN and infinities are refused
        (:func:`check_finite`) before the values are returned."""
        stop = self.n_events if stop is None else min(stop, self.n_events)
        start = max(0, start)
        if stop <= start:
            return np.empty((0, self.n_features))
        reader = getattr(self, f"_read_{self.format}")
        try:
            values = np.asarray(reader(start, stop))
        except DataError:
            raise
        except (*_ZIP_ERRORS, ValueError, KeyError) as exc:
            raise DataError(f"{self.describe()}: cannot be read: {exc}") from exc
        check_finite(values, f"{self.describe()}: inputs", first_event=start)
        return values.reshape(stop - start, -1) if flat else values

    # -- per format --------------------------------------------------------------------------
    def _read_npz(self, start: int, stop: int) -> np.ndarray:
        with open_npz(self.path, self.limits) as archive:
            data = archive.read(str(self.key), start, stop)
            self.inflated_bytes += archive.inflated_bytes
        return _select_fields(data, self.columns)

    def _read_npy(self, start: int, stop: int) -> np.ndarray:
        with self.path.open("rb") as handle:
            layout = _npy_layout(handle, str(self.path), self.path.stat().st_size)
            data, _ = _npy_rows(
                handle,
                layout,
                start,
                stop,
                seekable=True,
                where=str(self.path),
                limits=self.limits,
            )
        return _select_fields(data, self.columns)

    def _read_hdf5(self, start: int, stop: int) -> np.ndarray:
        with open_hdf5(self.path, self.limits) as handle:
            data = handle.read(str(self.key), start, stop)
            self.inflated_bytes += handle.inflated_bytes
        return _select_fields(data, self.columns)

    def _read_parquet(self, start: int, stop: int) -> np.ndarray:
        pq = require("pyarrow.parquet", "emulate", "reading parquet files")
        handle = pq.ParquetFile(self.path)
        metadata = handle.metadata
        wanted = set(self.columns or ())
        groups, first, offset, inflated = [], None, 0, 0
        for i in range(metadata.num_row_groups):
            group = metadata.row_group(i)
            rows = group.num_rows
            if offset + rows > start and offset < stop:
                groups.append(i)
                first = offset if first is None else first
                inflated += sum(
                    group.column(c).total_uncompressed_size
                    for c in range(group.num_columns)
                    if group.column(c).path_in_schema in wanted
                )
            offset += rows
        self.limits.check(
            self.describe(),
            f"the row groups holding events {start}..{stop - 1} decompress to",
            inflated,
            "write it with smaller row groups",
        )
        self.inflated_bytes += inflated
        table = handle.read_row_groups(groups, columns=list(self.columns or ()))
        table = table.slice(start - (first or 0), stop - start)
        return np.column_stack([table.column(c).to_numpy() for c in self.columns or ()])

    def _read_root(self, start: int, stop: int) -> np.ndarray:
        uproot = require("uproot", "emulate", "reading ROOT files")
        self.limits.check(
            self.describe(),
            f"events {start}..{stop - 1} take",
            (stop - start) * self.n_features * 8,
            "read fewer events at a time (--max-events, --chunk-size)",
        )
        with uproot.open(self.path) as handle:
            arrays = handle[self.key].arrays(
                list(self.columns or ()), library="np", entry_start=start, entry_stop=stop
            )
        return np.column_stack([np.asarray(arrays[c]) for c in self.columns or ()])


def _stored_offset(path: Path, info: zipfile.ZipInfo) -> int | None:
    """Where an uncompressed zip member's bytes start in the file (None if compressed)."""
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        return None
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_length + extra_length


def _select_fields(data: np.ndarray, columns: tuple[str, ...] | None) -> np.ndarray:
    if data.dtype.names is None:
        return data
    names = columns or data.dtype.names
    return np.column_stack([np.asarray(data[name]).reshape(len(data), -1) for name in names])


def _check_fields(
    path: Path, dtype: np.dtype, columns: Sequence[str] | None, shape: tuple
) -> tuple[tuple[str, ...] | None, int]:
    """The columns taken from an array of ``dtype`` and the numbers per event, checked:
    plain arrays must hold real numbers; of a structured array, every field taken as a column
    must (a field of objects, strings or complex numbers is never an input)."""
    per_event = math.prod(int(d) for d in shape[1:])
    if dtype.names is None:
        if columns:
            raise DataError(
                f"{path}: --columns needs named columns (a parquet/ROOT file or a structured "
                f"array); this array is plain {dtype} of shape {shape}"
            )
        if not _numeric_dtype(dtype) or dtype.kind == "b":
            raise DataError(f"{path}: expected real numbers, got dtype {dtype}")
        return None, per_event
    names = tuple(columns) if columns else dtype.names
    _check_columns(path, names, dtype.names)
    numeric = [n for n in dtype.names if dtype[n].base.kind in "iuf"]
    bad = [n for n in names if n not in numeric]
    if bad:
        raise DataError(
            f"{path}: field(s) {', '.join(f'{n!r} ({dtype[n]})' for n in bad)} do not hold real "
            f"numbers and cannot be inputs; numeric fields: {', '.join(numeric) or 'none'} "
            "(choose them with --columns)"
        )
    width = sum(math.prod(dtype[name].shape) for name in names)
    return names, width * per_event


def _check_columns(path: Path, wanted: Sequence[str], available: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(repr(c) for c in missing)}; "
            f"available: {', '.join(available)}"
        )


def check_input_path(path: str | Path) -> str:
    """The input format of ``path`` (a :class:`DataError` for an unknown suffix or a missing
    file), before any array in it is chosen."""
    path = Path(path)
    fmt = _format(path, READ_FORMATS, "input")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return fmt


def open_array(
    path: str | Path,
    *,
    key: str | None = None,
    columns: Sequence[str] | None = None,
    limits: ReadLimits | None = None,
) -> ArrayReader:
    """Open the event array of ``path`` for reading by range (see the module docstring).

    Only headers and metadata are read here: the declared shape, dtype and columns are
    checked, nothing is decompressed."""
    path = Path(path)
    fmt = check_input_path(path)
    columns = tuple(columns) if columns else None
    limits = limits or ReadLimits()
    try:
        opener = {
            "npz": _open_npz,
            "npy": _open_npy,
            "hdf5": _open_hdf5,
            "parquet": _open_parquet,
            "root": _open_root,
        }[fmt]
        reader = opener(path, key, columns)
    except (DataError, ConfigError):
        raise
    except (*_ZIP_ERRORS, ValueError, KeyError) as exc:
        raise DataError(f"{path}: cannot read it as {fmt}: {exc}") from exc
    reader.limits = limits
    if reader.n_events == 0:
        raise DataError(f"{reader.describe()}: no events")
    return reader


def read_array(
    path: str | Path,
    *,
    key: str | None = None,
    columns: Sequence[str] | None = None,
    limits: ReadLimits | None = None,
) -> np.ndarray:
    """All events of ``path`` as one ``(n_events, n_features)`` array."""
    return open_array(path, key=key, columns=columns, limits=limits).read()


def _events_reader(
    path: Path,
    fmt: str,
    key: str | None,
    columns: tuple[str, ...] | None,
    shape: tuple[int, ...],
    dtype: np.dtype,
) -> ArrayReader:
    where = f"{path} '{key}'" if key else str(path)
    if len(shape) < 1:
        raise DataError(f"{where}: a scalar is not a set of events")
    names, width = _check_fields(path, dtype, columns, shape)
    return ArrayReader(path, fmt, key, names, int(shape[0]), width)


def _open_npz(path: Path, key: str | None, columns: tuple[str, ...] | None) -> ArrayReader:
    with open_npz(path) as archive:
        key = _pick_key(path, archive.keys, key, "array")
        layout = archive.layout(key)
    return _events_reader(path, "npz", key, columns, layout.shape, layout.dtype)


def _open_npy(path: Path, key: str | None, columns: tuple[str, ...] | None) -> ArrayReader:
    if key is not None:
        raise DataError(f"{path}: a .npy file is one array and has no keys; leave out --key")
    with path.open("rb") as handle:
        layout = _npy_layout(handle, str(path), path.stat().st_size)
    return _events_reader(path, "npy", None, columns, layout.shape, layout.dtype)


def _open_hdf5(path: Path, key: str | None, columns: tuple[str, ...] | None) -> ArrayReader:
    with open_hdf5(path) as handle:
        # a named key may be reached through a soft link (which stays inside the file)
        key = key if key is not None else _pick_key(path, handle.datasets, key, "dataset")
        dataset = handle.dataset(key)
        shape, dtype = tuple(int(d) for d in dataset.shape), dataset.dtype
    return _events_reader(path, "hdf5", key, columns, shape, dtype)


def _open_parquet(path: Path, key: str | None, columns: tuple[str, ...] | None) -> ArrayReader:
    pq = require("pyarrow.parquet", "emulate", "reading parquet files")
    pa = require("pyarrow", "emulate", "reading parquet files")
    if key is not None:
        raise DataError(f"{path}: a parquet file has no keys; pick inputs with --columns")
    schema = pq.read_schema(path)
    numeric = [
        f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
    ]
    if columns:
        _check_columns(path, columns, schema.names)
        bad = [c for c in columns if c not in numeric]
        if bad:
            raise DataError(
                f"{path}: column(s) {', '.join(bad)} are not numeric scalars; numeric columns: "
                f"{', '.join(numeric) or 'none'}"
            )
    names = columns or tuple(numeric)
    if not names:
        raise DataError(f"{path}: no numeric columns; columns: {', '.join(schema.names)}")
    n_events = pq.ParquetFile(path).metadata.num_rows
    return ArrayReader(path, "parquet", None, tuple(names), int(n_events), len(names))


def _open_root(path: Path, key: str | None, columns: tuple[str, ...] | None) -> ArrayReader:
    uproot = require("uproot", "emulate", "reading ROOT files")
    with uproot.open(path) as handle:
        trees = sorted(
            {k.split(";")[0] for k, c in handle.classnames().items() if c in _ROOT_TREES}
        )
        key = _pick_key(path, trees, key, "TTree")
        tree = handle[key]
        available = [str(k) for k in tree.keys()]  # noqa: SIM118 (uproot objects are no dicts)
        n_events = int(tree.num_entries)
        if columns:
            _check_columns(path, columns, available)
        # what one entry reads back as tells scalar numeric branches from the rest
        first = tree.arrays(list(columns or available), library="np", entry_stop=1)
        scalar = [
            name
            for name, values in first.items()
            if isinstance(values, np.ndarray)
            and values.ndim == 1
            and np.issubdtype(values.dtype, np.number)
        ]
        if columns:
            bad = [c for c in columns if c not in scalar]
            if bad:
                raise DataError(
                    f"{path} '{key}': branch(es) {', '.join(bad)} do not hold one number per "
                    f"event; such branches: {', '.join(scalar) or 'none'}"
                )
        names = columns or tuple(c for c in available if c in scalar)
        if not names:
            raise DataError(f"{path} '{key}': no branch holds one number per event")
    return ArrayReader(path, "root", key, tuple(names), int(n_events), len(names))


class ArrayWriter:
    """Write named ``(n_events, k)`` arrays chunk by chunk, in event order, atomically.

    Use as a context manager; the file appears at ``path`` only when the block succeeds and
    every event was written.
    """

    def __init__(self, path: str | Path, n_events: int) -> None:
        self.path = Path(path)
        self.format = self.check_path(self.path)
        self.n_events = n_events
        self._written = 0
        self._context: Any = None
        self._tmp: Path | None = None
        self._state: Any = None

    @staticmethod
    def check_path(path: Path) -> str:
        """The output format of ``path``; refuses unknown suffixes and destinations that cannot
        be written (:func:`hepfpga.artifacts.check_destination`; missing folders are created)."""
        fmt = _format(Path(path), WRITE_FORMATS, "output")
        check_destination(Path(path), kind="file", overwrite=True)
        return fmt

    def __enter__(self) -> ArrayWriter:
        self._context = atomic_file(self.path)
        self._tmp = self._context.__enter__()
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        try:
            if kind is None:
                self._finish()
        except BaseException as exc:
            self._close_quietly()
            self._context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if kind is not None:
            self._close_quietly()
        self._context.__exit__(kind, value, traceback)

    @property
    def _tmp_path(self) -> Path:
        """The temporary file the format writers fill (set by ``__enter__``)."""
        if self._tmp is None:
            raise RuntimeError("ArrayWriter.write is only valid inside its `with` block")
        return self._tmp

    def write(self, start: int, arrays: dict[str, np.ndarray]) -> None:
        if start != self._written:
            raise DataError(
                f"chunks must be written in order: expected event {self._written}, got {start}"
            )
        n = len(next(iter(arrays.values())))
        if self._state is None:
            self._state = getattr(self, f"_open_{self.format}")(arrays)
        getattr(self, f"_write_{self.format}")(arrays)
        self._written += n

    def _finish(self) -> None:
        if self._written != self.n_events:
            raise DataError(f"{self.path}: {self._written} of {self.n_events} events written")
        if self._state is not None:
            getattr(self, f"_close_{self.format}")()
            self._state = None

    def _close_quietly(self) -> None:
        if self._state is not None:
            with contextlib.suppress(Exception):  # the original error matters more
                getattr(self, f"_close_{self.format}")()
            self._state = None

    # npz: one stored .npy member per array, streamed (header first: the shape is known)
    def _open_npz(self, arrays: dict[str, np.ndarray]) -> Any:
        archive = zipfile.ZipFile(self._tmp_path, "w", zipfile.ZIP_STORED, allowZip64=True)
        return {
            "archive": archive,
            "names": list(arrays),
            "widths": {name: a.shape[1:] for name, a in arrays.items()},
            "dtypes": {name: a.dtype for name, a in arrays.items()},
            "buffers": {n: [] for n in arrays},
        }

    def _write_npz(self, arrays: dict[str, np.ndarray]) -> None:
        # zipfile allows one open member at a time, and all arrays arrive chunk by chunk:
        # spill each to a raw file beside the output, copied into its member at the end
        state = self._state
        for name, array in arrays.items():
            handle = state["buffers"][name]
            if not handle:
                spill = Path(f"{self._tmp_path}.{name}.part")
                handle.append(spill.open("wb"))
                handle.append(spill)
            handle[0].write(np.ascontiguousarray(array, dtype=state["dtypes"][name]).tobytes())

    def _close_npz(self) -> None:
        state = self._state
        archive = state["archive"]
        try:
            for name in state["names"]:
                stream, spill = state["buffers"][name]
                stream.close()
                header = {
                    "descr": np.lib.format.dtype_to_descr(state["dtypes"][name]),
                    "fortran_order": False,
                    "shape": (self.n_events, *state["widths"][name]),
                }
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array_header_2_0(member, header)
                    with spill.open("rb") as source:
                        while block := source.read(1 << 24):
                            member.write(block)
                spill.unlink()
        finally:
            try:
                archive.close()
            finally:  # on a full disk the closes fail too: the spills are removed all the same
                for stream_and_spill in state["buffers"].values():
                    if stream_and_spill:
                        with contextlib.suppress(OSError):
                            stream_and_spill[0].close()
                        stream_and_spill[1].unlink(missing_ok=True)

    def _open_hdf5(self, arrays: dict[str, np.ndarray]) -> Any:
        # deferred: h5py loads slowly
        import h5py

        handle = h5py.File(self._tmp_path, "w")
        for name, array in arrays.items():
            handle.create_dataset(name, shape=(self.n_events, *array.shape[1:]), dtype=array.dtype)
        return handle

    def _write_hdf5(self, arrays: dict[str, np.ndarray]) -> None:
        for name, array in arrays.items():
            self._state[name][self._written : self._written + len(array)] = array

    def _close_hdf5(self) -> None:
        self._state.close()

    def _open_parquet(self, arrays: dict[str, np.ndarray]) -> Any:
        pa = require("pyarrow", "emulate", "writing parquet files")
        pq = require("pyarrow.parquet", "emulate", "writing parquet files")
        table = self._table(arrays, pa)
        return pq.ParquetWriter(self._tmp_path, table.schema)

    def _table(self, arrays: dict[str, np.ndarray], pa: Any) -> Any:
        columns = {}
        for name, array in arrays.items():
            flat = array.reshape(len(array), -1)
            for i in range(flat.shape[1]):
                columns[f"{name}_{i}"] = flat[:, i]
        return pa.table(columns)

    def _write_parquet(self, arrays: dict[str, np.ndarray]) -> None:
        pa = require("pyarrow", "emulate", "writing parquet files")
        self._state.write_table(self._table(arrays, pa))

    def _close_parquet(self) -> None:
        self._state.close()
