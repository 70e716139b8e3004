"""Reading and writing jet samples: ``.npz``, HDF5 and the public OpenML layout.

Formats, chosen by the file suffix:

* ``.npz`` (compressed) and ``.h5`` / ``.hdf5``: the arrays of
  :mod:`hepfpga.train.jets` under the same keys, plus ``feature_names``, ``class_names``
  (string arrays, checked against :data:`FEATURE_NAMES` / :data:`CLASS_NAMES` on load) and
  ``metadata`` (a JSON string). Constituents may be stored as float16 to save space; they
  are returned as float32.
* ``.h5`` / ``.hdf5`` in the public layouts (the hls4ml LHC jet files, JetNet), told apart by
  their datasets and read by :mod:`hepfpga.train.layouts`, which also reads hepfpga's own
  HDF5 files by row range for streaming (:mod:`hepfpga.train.stream`).
* a folder or a glob of such files (shards): read in name order and concatenated.
* ``.csv`` / ``.arff``: the public OpenML data set ``hls4ml_lhc_jets_hlf`` (read only), with
  the 16 feature columns by name and a ``class`` column of ``g, q, t, w, z`` (any case),
  mapped to our class order ``q, g, W, Z, t``. That layout has no constituents and no jet
  kinematics: ``constituents`` is then an ``(N, 0, 3)`` array and ``jet_pt``, ``jet_eta``,
  ``jet_mass`` are NaN, with ``metadata["jet_kinematics"] == "absent"``.

Every problem raises :class:`~hepfpga.errors.DataError` naming the file and what is wrong.
Files are written atomically: to a temporary file in the target folder, then renamed.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.artifacts import atomic_file, check_destination, dumps_strict
from hepfpga.datafiles import open_hdf5, open_npz
from hepfpga.errors import DataError
from hepfpga.train.jets import CLASS_NAMES, FEATURE_NAMES, JetSample
from hepfpga.train.layouts import detect_layout, sample_files

__all__ = [
    "ARRAY_KEYS",
    "READ_SUFFIXES",
    "WRITE_SUFFIXES",
    "builtin_sample_path",
    "concatenate_samples",
    "load_builtin_sample",
    "load_sample",
    "save_sample",
    "validate_sample",
]

#: Array keys of ``.npz`` and HDF5 sample files, in the order of the :class:`JetSample` fields.
ARRAY_KEYS: tuple[str, ...] = (
    "features",
    "constituents",
    "labels",
    "jet_pt",
    "jet_eta",
    "jet_mass",
)
WRITE_SUFFIXES: tuple[str, ...] = (".npz", ".h5", ".hdf5")
READ_SUFFIXES: tuple[str, ...] = (*WRITE_SUFFIXES, ".csv", ".arff")

_OPENML_CLASSES = {"q": 0, "g": 1, "w": 2, "z": 3, "t": 4}
#: the parts of a jet a file may lack (``metadata[part] == "absent"``)
_PARTS = ("features", "constituents", "jet_kinematics")
_BUILTIN_NAME = "jets.npz"


# ---------------------------------------------------------------------------------------------
# writing


def save_sample(sample: JetSample, path: str | os.PathLike[str]) -> Path:
    """Write ``sample`` to ``path`` (``.npz`` or ``.h5``/``.hdf5``) atomically; return the path.

    Constituents keep their dtype (float32, or float16 when the caller chose to shrink them).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise DataError(
            f"{path}: cannot write a jet sample with suffix {path.suffix!r}; "
            f"accepted: {', '.join(WRITE_SUFFIXES)}"
        )
    validate_sample(sample, str(path))
    check_destination(path, kind="file", overwrite=True)  # missing folders are created
    arrays = _to_arrays(sample)
    with atomic_file(path) as temporary, temporary.open("w+b") as handle:
        if suffix == ".npz":
            np.savez_compressed(handle, **arrays)
        else:
            _write_hdf5(handle, arrays)
    return path


def _to_arrays(sample: JetSample) -> dict[str, np.ndarray]:
    constituents = np.asarray(sample.constituents)
    if constituents.dtype != np.float16:
        constituents = constituents.astype(np.float32)
    return {
        "features": np.asarray(sample.features, dtype=np.float32),
        "constituents": constituents,
        "labels": np.asarray(sample.labels, dtype=np.int64),
        "jet_pt": np.asarray(sample.jet_pt, dtype=np.float32),
        "jet_eta": np.asarray(sample.jet_eta, dtype=np.float32),
        "jet_mass": np.asarray(sample.jet_mass, dtype=np.float32),
        "feature_names": np.asarray(sample.feature_names, dtype=str),
        "class_names": np.asarray(sample.class_names, dtype=str),
        "metadata": np.asarray(dumps_strict(sample.metadata, sort_keys=True)),
    }


def _write_hdf5(handle: Any, arrays: dict[str, np.ndarray]) -> None:
    # deferred: h5py loads slowly
    import h5py

    with h5py.File(handle, "w") as h5:
        for key in ARRAY_KEYS:
            h5.create_dataset(key, data=arrays[key], compression="gzip", shuffle=True)
            # write the chunk now: HDF5 places a chunk where the file ends when the dataset's
            # chunk cache is flushed, which without this waits for the dataset's close (when
            # Python lets go of it, at a moment that varies with the process's history); a
            # shard's bytes would then vary between runs with identical jets
            h5.flush()
        strings = h5py.string_dtype()
        h5.create_dataset(
            "feature_names", data=arrays["feature_names"].astype(object), dtype=strings
        )
        h5.create_dataset("class_names", data=arrays["class_names"].astype(object), dtype=strings)
        h5.attrs["metadata"] = str(arrays["metadata"])


# ---------------------------------------------------------------------------------------------
# reading


def load_sample(path: str | os.PathLike[str]) -> JetSample:
    """Read a jet sample into memory: one file (``.npz``; ``.h5``/``.hdf5`` in any layout of
    :data:`hepfpga.train.layouts.SAMPLE_LAYOUTS`: hepfpga's own, the hls4ml LHC jet files,
    JetNet; OpenML ``.csv``/``.arff``), or a folder or glob of such files, read in name order
    and concatenated (the jets keep that order, so the split of the concatenation is the same
    as the streamed split of :mod:`hepfpga.train.stream`)."""
    files = sample_files(path)
    if len(files) == 1 and files[0] == Path(path):
        return _load_file(files[0])
    return concatenate_samples([_load_file(file) for file in files], str(path))


def concatenate_samples(samples: list[JetSample], where: str) -> JetSample:
    """The jets of ``samples`` in order, as one sample; the files must agree on what they
    hold (constituents per jet, absent parts). ``metadata["files"]`` lists their sources."""
    first = samples[0]
    for sample in samples[1:]:
        if sample.constituents.shape[1] != first.constituents.shape[1]:
            raise DataError(
                f"{where}: the files store {first.constituents.shape[1]} and "
                f"{sample.constituents.shape[1]} constituents per jet; accepted: files of one "
                "sample, with the same number of constituents"
            )
        absent = [
            k
            for k in _PARTS
            if (sample.metadata.get(k) == "absent") != (first.metadata.get(k) == "absent")
        ]
        if absent:
            raise DataError(
                f"{where}: some files hold {', '.join(absent)} and others do not; accepted: "
                "files of one layout"
            )
    metadata = {k: v for k, v in first.metadata.items() if k in (*_PARTS, "missing", "layout")}
    metadata["files"] = [s.metadata.get("source", s.metadata.get("seed")) for s in samples]
    arrays = {key: np.concatenate([getattr(s, key) for s in samples]) for key in ARRAY_KEYS}
    return JetSample(**arrays, metadata=metadata)


def _load_file(path: Path) -> JetSample:
    suffix = path.suffix.lower()
    readers: dict[str, Callable[[Path], JetSample]] = {
        ".npz": _read_npz,
        ".h5": _read_layout,
        ".hdf5": _read_layout,
        ".csv": _read_openml_csv,
        ".arff": _read_openml_arff,
    }
    if suffix not in readers:
        raise DataError(
            f"{path}: unknown jet sample format {path.suffix!r}; "
            f"accepted: {', '.join(READ_SUFFIXES)}"
        )
    if not path.is_file():
        raise DataError(
            f"{path}: no such file (a jet sample in one of the formats "
            f"{', '.join(READ_SUFFIXES)} was expected)"
        )
    sample = readers[suffix](path)
    validate_sample(sample, str(path))
    return sample


def _read_layout(path: Path) -> JetSample:
    layout = detect_layout(path)
    # hepfpga's own files, whole: the reader above (the one that checks names and metadata
    # as for .npz); the public layouts and row ranges: hepfpga.train.layouts
    return _read_hdf5(path) if layout.name == "hepfpga" else layout.read(path, None)


def builtin_sample_path() -> Path:
    """Path of the sample that ships with hepfpga (``train/sample/jets.npz``)."""
    path = Path(__file__).resolve().parent / "sample" / _BUILTIN_NAME
    if not path.is_file():
        raise DataError(
            f"{path}: the built-in jet sample is missing from this installation; reinstall "
            "hepfpga or generate one with `hepfpga data generate`"
        )
    return path


def load_builtin_sample() -> JetSample:
    """The built-in sample: 5 classes x 4,000 jets (see ``train/sample/README.md``)."""
    return load_sample(builtin_sample_path())


def _from_mapping(
    get: Callable[[str], Any], keys: set[str], where: str, metadata: str
) -> JetSample:
    missing = [key for key in (*ARRAY_KEYS, "feature_names", "class_names") if key not in keys]
    if missing:
        raise DataError(
            f"{where}: not a hepfpga jet sample, missing key(s) {', '.join(missing)}; "
            f"expected {', '.join((*ARRAY_KEYS, 'feature_names', 'class_names', 'metadata'))}"
        )
    arrays = {key: np.asarray(get(key)) for key in ARRAY_KEYS}
    names = {
        key: tuple(_decode(v) for v in np.asarray(get(key)).tolist())
        for key in ("feature_names", "class_names")
    }
    try:
        meta = json.loads(metadata) if metadata else {}
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: 'metadata' is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{where}: 'metadata' must be a JSON object, got {type(meta).__name__}")
    return JetSample(
        features=arrays["features"].astype(np.float32, copy=False),
        constituents=arrays["constituents"].astype(np.float32, copy=False),
        labels=arrays["labels"],
        jet_pt=arrays["jet_pt"].astype(np.float32, copy=False),
        jet_eta=arrays["jet_eta"].astype(np.float32, copy=False),
        jet_mass=arrays["jet_mass"].astype(np.float32, copy=False),
        feature_names=names["feature_names"],
        class_names=names["class_names"],
        metadata=meta,
    )


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_npz(path: Path) -> JetSample:
    # the safe reader: headers checked before reading, no pickles, bounded inflation
    try:
        with open_npz(path) as archive:
            keys = set(archive.keys)
            metadata = str(archive.read("metadata")) if "metadata" in keys else ""
            return _from_mapping(archive.read, keys, str(path), metadata)
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as a .npz jet sample ({exc})") from exc


def _read_hdf5(path: Path) -> JetSample:
    # the safe reader: no external links, external storage or virtual datasets; bounded reads
    try:
        with open_hdf5(path) as h5:
            keys = set(h5.members())
            metadata = h5.attrs.get("metadata", "")
            return _from_mapping(h5.read, keys, str(path), _decode(metadata))
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as an HDF5 jet sample ({exc})") from exc


def _openml_columns(path: Path, header: list[str]) -> dict[str, int]:
    columns = {name.strip().strip("'\""): i for i, name in enumerate(header)}
    missing = [name for name in (*FEATURE_NAMES, "class") if name not in columns]
    if missing:
        raise DataError(
            f"{path}: not the OpenML hls4ml_lhc_jets_hlf layout, missing column(s) "
            f"{', '.join(missing)}; expected the 16 feature columns and 'class'"
        )
    return columns


def _openml_table(
    path: Path, header: list[str], data_line: int, quote: str, comment: str | None
) -> JetSample:
    """Read the data lines (from line ``data_line``, 0-based) of an OpenML CSV or ARFF file.

    The fast path is numpy's C reader; any irregularity sends us to the slow path, which
    reads row by row and names the offending row.
    """
    columns = _openml_columns(path, header)
    feature_columns = [columns[name] for name in FEATURE_NAMES]
    options: dict[str, Any] = {
        "delimiter": ",",
        "skiprows": data_line,
        "quotechar": quote,
        "comments": comment,
        "encoding": "utf-8",
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            features = np.loadtxt(
                path, usecols=feature_columns, dtype=np.float32, ndmin=2, **options
            )
            raw_labels = np.loadtxt(path, usecols=columns["class"], dtype=str, ndmin=1, **options)
    except ValueError:
        return _openml_rows(path, header, _slow_rows(path, data_line, quote, comment))
    return _openml_sample(path, features, raw_labels)


def _slow_rows(path: Path, data_line: int, quote: str, comment: str | None) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        lines = handle.read().splitlines()[data_line:]
    lines = [line for line in lines if line.strip() and not (comment and line.startswith(comment))]
    return list(csv.reader(lines, quotechar=quote, skipinitialspace=True))


def _openml_rows(path: Path, header: list[str], rows: list[list[str]]) -> JetSample:
    columns = _openml_columns(path, header)
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise DataError(
                f"{path}: data row {r + 1} has {len(row)} values, the header {len(header)}"
            )
    text = np.char.strip(np.array([[row[columns[name]] for name in FEATURE_NAMES] for row in rows]))
    if text.size:
        text[text == "?"] = "nan"  # ARFF's missing value; reported by the NaN check
    try:
        features = text.astype(np.float32).reshape(len(rows), len(FEATURE_NAMES))
    except ValueError as exc:
        raise DataError(f"{path}: a feature value is not a number ({exc})") from exc
    return _openml_sample(path, features, np.array([row[columns["class"]] for row in rows]))


def _openml_sample(path: Path, features: np.ndarray, raw_labels: np.ndarray) -> JetSample:
    if features.shape[0] == 0:
        raise DataError(f"{path}: no data rows")
    raw_labels = np.char.lower(np.char.strip(np.char.strip(raw_labels.astype(str)), "'\""))
    unknown = ~np.isin(raw_labels, list(_OPENML_CLASSES))
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"{path}: {int(unknown.sum())} row(s) with an unknown class (first: data row "
            f"{first + 1}, {raw_labels[first]!r}); accepted: {', '.join(_OPENML_CLASSES)}"
        )
    lookup = np.array([_OPENML_CLASSES[c] for c in sorted(_OPENML_CLASSES)], dtype=np.int64)
    labels = lookup[np.searchsorted(sorted(_OPENML_CLASSES), raw_labels)]
    n = features.shape[0]
    absent = np.full(n, np.nan, dtype=np.float32)
    return JetSample(
        features=features,
        constituents=np.zeros((n, 0, 3), dtype=np.float32),
        labels=labels,
        jet_pt=absent,
        jet_eta=absent.copy(),
        jet_mass=absent.copy(),
        metadata={
            "source": f"OpenML hls4ml_lhc_jets_hlf ({path.name})",
            "jet_kinematics": "absent",
            "constituents": "absent",
        },
    )


def _read_openml_csv(path: Path) -> JetSample:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
        return _openml_table(path, header, 1, '"', None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot be read as CSV ({exc})") from exc


def _read_openml_arff(path: Path) -> JetSample:
    header: list[str] = []
    data_line = -1
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                text = line.strip()
                if not text or text.startswith("%"):
                    continue
                keyword = text.split(None, 1)[0].lower()
                if keyword == "@attribute":
                    # "@attribute name type"; names may be quoted
                    rest = text.split(None, 1)[1]
                    header.append(next(csv.reader([rest], delimiter=" ", quotechar="'"))[0])
                elif keyword == "@data":
                    data_line = number + 1
                    break
        if data_line < 0:
            raise DataError(f"{path}: not an ARFF file, no '@data' section")
        return _openml_table(path, header, data_line, "'", "%")
    except (OSError, UnicodeDecodeError, csv.Error, IndexError) as exc:
        raise DataError(f"{path}: cannot be read as ARFF ({exc})") from exc


# ---------------------------------------------------------------------------------------------
# validation


def validate_sample(sample: JetSample, where: str) -> None:
    """Shapes, names, label range and finiteness; raises DataError naming ``where``."""
    n = len(sample.labels) if np.ndim(sample.labels) == 1 else -1
    if n < 0:
        raise DataError(f"{where}: 'labels' must be 1-d, got shape {np.shape(sample.labels)}")
    expected = {
        "features": (n, len(FEATURE_NAMES)),
        "jet_pt": (n,),
        "jet_eta": (n,),
        "jet_mass": (n,),
    }
    for key, shape in expected.items():
        actual = np.shape(getattr(sample, key))
        if actual != shape:
            raise DataError(f"{where}: '{key}' has shape {actual}, expected {shape}")
    constituents_shape = np.shape(sample.constituents)
    if len(constituents_shape) != 3 or constituents_shape[0] != n or constituents_shape[2] != 3:
        raise DataError(
            f"{where}: 'constituents' has shape {constituents_shape}, expected ({n}, C, 3)"
        )
    if tuple(sample.feature_names) != FEATURE_NAMES:
        raise DataError(
            f"{where}: feature names {list(sample.feature_names)} differ from the expected "
            f"{list(FEATURE_NAMES)}"
        )
    if tuple(sample.class_names) != CLASS_NAMES:
        raise DataError(
            f"{where}: class names {list(sample.class_names)} differ from the expected "
            f"{list(CLASS_NAMES)}"
        )
    labels = np.asarray(sample.labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: 'labels' must be integers, got dtype {labels.dtype}")
    bad = (labels < 0) | (labels >= len(CLASS_NAMES))
    if bad.any():
        raise DataError(
            f"{where}: {int(bad.sum())} label(s) outside 0..{len(CLASS_NAMES) - 1} "
            f"(first: {int(labels[bad][0])})"
        )
    if sample.metadata.get("features") != "absent":
        _check_finite(np.asarray(sample.features), where, "features", FEATURE_NAMES)
    _check_finite(np.asarray(sample.constituents), where, "constituents", ("pt", "eta", "phi"))
    if sample.metadata.get("jet_kinematics") != "absent":
        for key in ("jet_pt", "jet_eta", "jet_mass"):
            _check_finite(np.asarray(getattr(sample, key)), where, key, None)


def _check_finite(array: np.ndarray, where: str, key: str, columns: tuple[str, ...] | None) -> None:
    finite = np.isfinite(array)
    if finite.all():
        return
    if columns is None:
        raise DataError(f"{where}: '{key}' has {int((~finite).sum())} NaN/Inf value(s)")
    per_column = (~finite).reshape(-1, array.shape[-1]).sum(axis=0)
    worst = [f"{columns[c]}: {int(k)}" for c, k in enumerate(per_column) if k]
    raise DataError(
        f"{where}: '{key}' has {int(per_column.sum())} NaN/Inf value(s) (per column: "
        f"{', '.join(worst)})"
    )
