"""Event arrays in files: npz, HDF5, parquet and ROOT readers, npz/HDF5/parquet writers.

Readers are opened with :func:`open_array` and read **by event range**, so a file larger than
memory is processed chunk by chunk (and each chunk can be read on a dask worker: a reader
pickles as its path and selection, not its data):

========== ============================================ =====================================
format     ``key``                                      ``columns``
========== ============================================ =====================================
``.npz``   the array (default: the only one, or ``x``,  field names of a structured array
           ``X``, ``features``, ``inputs``)
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
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga._optional import require
from hepfpga.artifacts import atomic_file, check_destination
from hepfpga.errors import ConfigError, DataError
from hepfpga.registry import Registry

__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "ArrayReader",
    "ArrayWriter",
    "check_input_path",
    "open_array",
    "read_array",
]

#: file suffix -> the format read / written (an unknown suffix is a DataError listing them)
READ_FORMATS: Registry[str] = Registry(
    "input format",
    {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".parquet": "parquet", ".root": "root"},
)
WRITE_FORMATS: Registry[str] = Registry(
    "output format", {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".parquet": "parquet"}
)
_DEFAULT_KEYS = ("x", "X", "inputs", "features", "x_test", "X_test")
#: ROOT classes read as event tables (uproot reads both the same way)
_ROOT_TREES = ("TTree", "ROOT::RNTuple")


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


class ArrayReader:
    """Events ``[start, stop)`` of one array in a file, as ``(n, n_features)`` numbers."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        key: str | None,
        columns: tuple[str, ...] | None,
        n_events: int,
        n_features: int,
    ) -> None:
        self.path = path
        self.format = fmt
        self.key = key
        self.columns = columns
        self.n_events = n_events
        self.n_features = n_features

    def describe(self) -> str:
        where = f" '{self.key}'" if self.key else ""
        return f"{self.path}{where}"

    def read(self, start: int = 0, stop: int | None = None, *, flat: bool = True) -> np.ndarray:
        """Events ``[start, stop)``; ``flat``: as ``(n, n_features)``, else in the stored
        per-event shape (images stay images)."""
        stop = self.n_events if stop is None else min(stop, self.n_events)
        start = max(0, start)
        if stop <= start:
            return np.empty((0, self.n_features))
        reader = getattr(self, f"_read_{self.format}")
        values = np.asarray(reader(start, stop))
        return values.reshape(stop - start, -1) if flat else values

    # -- per format --------------------------------------------------------------------------
    def _read_npz(self, start: int, stop: int) -> np.ndarray:
        with zipfile.ZipFile(self.path) as archive:
            info = archive.getinfo(f"{self.key}.npy")
            offset = _stored_offset(self.path, info)
            if offset is not None:  # np.savez: an uncompressed member, read in place
                with self.path.open("rb") as handle:
                    handle.seek(offset)
                    return self._rows(handle, start, stop)
            with archive.open(info) as member:  # compressed: seeking decompresses
                return self._rows(member, start, stop)

    def _rows(self, handle: Any, start: int, stop: int) -> np.ndarray:
        shape, fortran, dtype = _npy_header(handle)
        if fortran or dtype.hasobject:
            return np.load(self.path)[self.key][start:stop]
        row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        handle.seek(handle.tell() + start * row)
        data = np.frombuffer(handle.read((stop - start) * row), dtype=dtype)
        return _select_fields(data.reshape(stop - start, *shape[1:]), self.columns)

    def _read_hdf5(self, start: int, stop: int) -> np.ndarray:
        # deferred: h5py loads slowly
        import h5py

        with h5py.File(self.path, "r") as handle:
            return _select_fields(handle[self.key][start:stop], self.columns)

    def _read_parquet(self, start: int, stop: int) -> np.ndarray:
        pq = require("pyarrow.parquet", "emulate", "reading parquet files")
        handle = pq.ParquetFile(self.path)
        groups, first, offset = [], None, 0
        for i in range(handle.metadata.num_row_groups):
            rows = handle.metadata.row_group(i).num_rows
            if offset + rows > start and offset < stop:
                groups.append(i)
                first = offset if first is None else first
            offset += rows
        table = handle.read_row_groups(groups, columns=list(self.columns or ()))
        table = table.slice(start - (first or 0), stop - start)
        return np.column_stack([table.column(c).to_numpy() for c in self.columns or ()])

    def _read_root(self, start: int, stop: int) -> np.ndarray:
        uproot = require("uproot", "emulate", "reading ROOT files")
        with uproot.open(self.path) as handle:
            arrays = handle[self.key].arrays(
                list(self.columns or ()), library="np", entry_start=start, entry_stop=stop
            )
        return np.column_stack([np.asarray(arrays[c]) for c in self.columns or ()])


def _npy_header(handle: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the .npy stream ``handle``, left at its data."""
    version = np.lib.format.read_magic(handle)
    # the one reader of every header version (1.0, 2.0 and 3.0); numpy's stubs omit it
    read_header = np.lib.format._read_array_header  # type: ignore[attr-defined]
    return read_header(handle, version)


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
    per_event = int(np.prod(shape[1:], dtype=np.int64))
    if dtype.names is None:
        if columns:
            raise DataError(
                f"{path}: --columns needs named columns (a parquet/ROOT file or a structured "
                f"array); this array is plain {dtype} of shape {shape}"
            )
        if not np.issubdtype(dtype, np.number):
            raise DataError(f"{path}: expected numbers, got dtype {dtype}")
        return None, per_event
    names = tuple(columns) if columns else dtype.names
    _check_columns(path, names, dtype.names)
    width = sum(int(np.prod(dtype[name].shape, dtype=np.int64)) for name in names)
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
    path: str | Path, *, key: str | None = None, columns: Sequence[str] | None = None
) -> ArrayReader:
    """Open the event array of ``path`` for reading by range (see the module docstring)."""
    path = Path(path)
    fmt = _format(path, READ_FORMATS, "input")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    columns = tuple(columns) if columns else None
    try:
        opener = {
            "npz": _open_npz,
            "hdf5": _open_hdf5,
            "parquet": _open_parquet,
            "root": _open_root,
        }[fmt]
        reader = opener(path, key, columns)
    except (DataError, ConfigError):
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read it as {fmt}: {exc}") from exc
    if reader.n_events == 0:
        raise DataError(f"{reader.describe()}: no events")
    return reader


def read_array(
    path: str | Path, *, key: str | None = None, columns: Sequence[str] | None = None
) -> np.ndarray:
    """All events of ``path`` as one ``(n_events, n_features)`` array."""
    return open_array(path, key=key, columns=columns).read()


def _open_npz(path: Path, key: str | None, columns: tuple[str, ...] | None) -> ArrayReader:
    with zipfile.ZipFile(path) as archive:
        keys = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
        key = _pick_key(path, keys, key, "array")
        with archive.open(f"{key}.npy") as member:
            shape, _, dtype = _npy_header(member)
    if len(shape) < 1:
        raise DataError(f"{path} '{key}': a scalar is not a set of events")
    names, width = _check_fields(path, dtype, columns, shape)
    return ArrayReader(path, "npz", key, names, int(shape[0]), width)


def _open_hdf5(path: Path, key: str | None, columns: tuple[str, ...] | None) -> ArrayReader:
    # deferred: h5py loads slowly
    import h5py

    with h5py.File(path, "r") as handle:
        keys: list[str] = []
        handle.visititems(
            lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None
        )
        key = _pick_key(path, keys, key, "dataset")
        dataset = handle[key]
        shape, dtype = dataset.shape, dataset.dtype
    if len(shape) < 1:
        raise DataError(f"{path} '{key}': a scalar is not a set of events")
    names, width = _check_fields(path, dtype, columns, shape)
    return ArrayReader(path, "hdf5", key, names, int(shape[0]), width)


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
