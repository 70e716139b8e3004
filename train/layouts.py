"""The field's jet-sample layouts, read as they are: one registered reader per HDF5 layout.

A data path (``data.path``) may be one file, a folder or a glob of files; :func:`sample_files`
expands it (sorted by name, the order in which the jets are numbered) and
:func:`detect_layout` tells an HDF5 file's layout from the datasets it holds:

================== ================================== =========================================
layout             signature datasets                 what becomes of them
================== ================================== =========================================
``hepfpga``        ``features``, ``constituents``,    hepfpga's own files (``hepfpga data
                   ``labels``                         generate``, :func:`~hepfpga.train.io.
                                                      save_sample`, shards ``shard-<seed>.h5``)
``hls4ml_lhc_jets`` ``jets`` + ``jetFeatureNames``,   the public hls4ml LHC jet files
                   ``jetConstituentList`` +           (``jetImage_*_{30,50,100,150}p_*.h5``):
                   ``particleFeatureNames``           features = the 16 ``j_*`` columns named
                   (``jetImage`` is not read)         like :data:`FEATURE_NAMES`; labels = the
                                                      one-hot ``j_g j_q j_w j_z j_t`` columns
                                                      (``j_undef`` must be 0); jet kinematics
                                                      = ``j_pt j_eta j_mass``; constituents =
                                                      ``j1_ptrel j1_etarel j1_phirel``
``jetnet``         ``particle_features`` (etarel,     JetNet (``g q t w z`` ``.hdf5``, and the
                   phirel, ptrel, mask),              150-particle ``g150.hdf5``...): the class
                   ``jet_features`` (pt, eta, mass,   is the file name's; constituents =
                   num_particles)                     (ptrel, etarel, phirel) where mask is 1;
                                                      no substructure features
================== ================================== =========================================

Constituents become the :class:`~hepfpga.train.jets.JetSample` layout (pT / jet pT,
eta - jet eta, delta phi), sorted by decreasing pT (a stable sort, so an already sorted file is
unchanged), padding zero. What a file does not hold is recorded in the sample's metadata
(``metadata["features"] == "absent"`` and ``metadata["missing"]["features"]`` saying what is
missing), and a representation that needs it refuses with that text
(:mod:`hepfpga.train.representations`). The ``jetImage`` datasets are not read: their binning
is not recorded in the files, and hepfpga bins every image from the constituents
(:func:`~hepfpga.train.images.jet_images`), the same way for training, serving and firmware.

Each reader reads a range of rows (``rows``), so a large file is streamed chunk by chunk
(:mod:`hepfpga.train.stream`), and its labels alone (:meth:`SampleLayout.labels`) for the
stratified split. A reader may be told which parts of the jets to read (``parts``, a subset of
:data:`SAMPLE_PARTS`: what a representation uses, e.g. ``{"features"}`` for the feature MLP):
the datasets of the other parts are then not read at all (a 150-constituent file's
``jetConstituentList`` is 150 x 16 floats per jet), and the sample says so like a part the
file lacks (``metadata[part] == "absent"``, ``metadata["missing"][part]`` = "not read ...").
Every file is opened through :func:`hepfpga.datafiles.open_hdf5`, the one
safe HDF5 reader: external links, user-defined links, external storage, virtual datasets and
datasets declaring more rows than were written are refused before anything is read, and every
read stays within :class:`~hepfpga.datafiles.ReadLimits`. Shapes, dtypes (floating point;
names as strings) and finiteness are checked on every read; a problem is a
:class:`~hepfpga.errors.DataError` naming the file, the dataset and what is accepted.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from hepfpga.datafiles import HDF5Dataset, HDF5File, open_hdf5
from hepfpga.errors import DataError
from hepfpga.registry import Registry
from hepfpga.train.jets import FEATURE_NAMES, JetSample

__all__ = [
    "HDF5_SUFFIXES",
    "SAMPLE_LAYOUTS",
    "SAMPLE_PARTS",
    "ReadRows",
    "SampleLayout",
    "detect_layout",
    "sample_files",
]

HDF5_SUFFIXES: tuple[str, ...] = (".h5", ".hdf5")
#: the suffixes a folder or glob is expanded to
SAMPLE_SUFFIXES: tuple[str, ...] = (".npz", *HDF5_SUFFIXES)
#: the parts of a jet a reader can leave unread (``parts`` of :class:`ReadRows`); labels and
#: the jet kinematics (pT, eta, mass) are always read
SAMPLE_PARTS: tuple[str, ...] = ("features", "constituents")


def _not_read(part: str) -> str:
    return f"not read: the {part} were left out of this read (parts={{...}}), not missing"


def _wants(parts: frozenset[str] | None, part: str) -> bool:
    return parts is None or part in parts


# ---------------------------------------------------------------------------------------------
# files


def sample_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files of a data path: the file itself, the ``.npz``/``.h5``/``.hdf5`` files of a
    folder, or the files a glob pattern (``*``, ``?``, ``[...]``) matches; sorted by name."""
    text = str(path)
    candidate = Path(text)
    if candidate.is_dir():
        files = sorted(p for p in candidate.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)
        what = f"folder {candidate}"
    elif glob.has_magic(text):
        # glob.glob, not Path.glob: the pattern may be absolute
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())  # noqa: PTH207
        what = f"pattern {text}"
    else:
        return [candidate]
    if not files:
        raise DataError(
            f"{what}: no jet sample files found; accepted: "
            f"{', '.join(SAMPLE_SUFFIXES)} files (hepfpga shards, the hls4ml LHC jet files, "
            "JetNet)"
        )
    partial = [p for p in files if p.name.endswith(".partial")]
    if partial:
        raise DataError(f"{partial[0]}: an unfinished shard; finish or remove it first")
    return files


# ---------------------------------------------------------------------------------------------
# checks


def _dataset(h5: HDF5File, path: Path, key: str, ndim: int, accepted: str) -> HDF5Dataset:
    """The dataset ``key`` of ``h5``, checked to be a floating-point array of ``ndim``
    dimensions."""
    item = h5.get(key)
    if item is None:
        kind = h5.kind(key)
        found = "missing" if kind is None else f"an HDF5 {kind}"
        raise DataError(f"{path}: dataset '{key}' is {found}; expected {accepted}")
    if len(item.shape) != ndim or not np.issubdtype(item.dtype, np.floating):
        raise DataError(
            f"{path}: dataset '{key}' has shape {item.shape} and dtype {item.dtype}; "
            f"expected {accepted} (floating point)"
        )
    return item


def _names(h5: HDF5File, path: Path, key: str) -> list[str]:
    values = np.asarray(h5.read(key)) if h5.get(key) is not None else None
    if values is None or values.ndim != 1 or values.dtype.kind not in "SUO":
        raise DataError(f"{path}: '{key}' is missing or not a 1-d array of names (strings)")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.tolist()]


def _finite(array: np.ndarray, path: Path, key: str, columns: list[str]) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        per_column = bad.reshape(-1, array.shape[-1]).sum(axis=0)
        worst = [f"{columns[c]}: {int(k)}" for c, k in enumerate(per_column) if k]
        raise DataError(
            f"{path}: dataset '{key}' has {int(bad.sum())} NaN/Inf value(s) (per column: "
            f"{', '.join(worst)}); only finite values are accepted"
        )


def _read(h5: HDF5File, key: str, part: slice, columns: list[int] | None = None) -> np.ndarray:
    """Rows ``part`` of dataset ``key`` (``columns`` of its last axis only, when given)."""
    return h5.read(key, part.start, part.stop, columns)


def _rows(n: int, rows: slice | None) -> slice:
    start, stop, step = (rows or slice(None)).indices(n)
    if step != 1:
        raise ValueError("rows must be a contiguous range")
    return slice(start, stop)


def _sorted_by_pt(constituents: np.ndarray) -> np.ndarray:
    """Constituents in decreasing pT fraction (channel 0), padding (zeros) last; stable."""
    order = np.argsort(-constituents[..., 0], axis=1, kind="stable")
    return np.take_along_axis(constituents, order[..., None], axis=1)


def _sample(
    n: int,
    *,
    features: np.ndarray | None,
    constituents: np.ndarray | None,
    labels: np.ndarray,
    kinematics: tuple[np.ndarray, np.ndarray, np.ndarray],
    metadata: dict[str, object],
    missing: dict[str, str],
) -> JetSample:
    for part in missing:
        metadata[part] = "absent"
    if missing:
        metadata["missing"] = dict(missing)
    return JetSample(
        features=(
            np.full((n, len(FEATURE_NAMES)), np.nan, dtype=np.float32)
            if features is None
            else features.astype(np.float32)
        ),
        constituents=(
            np.zeros((n, 0, 3), dtype=np.float32)
            if constituents is None
            else _sorted_by_pt(constituents.astype(np.float32))
        ),
        labels=labels.astype(np.int64),
        jet_pt=kinematics[0].astype(np.float32),
        jet_eta=kinematics[1].astype(np.float32),
        jet_mass=kinematics[2].astype(np.float32),
        metadata=metadata,
    )


# ---------------------------------------------------------------------------------------------
# the layouts


class ReadRows(Protocol):
    """A layout's reader: rows ``rows`` (None: all) of the file ``path``; ``parts`` (None:
    all of :data:`SAMPLE_PARTS`) names the parts to read, the others are not read."""

    def __call__(
        self, path: Path, rows: slice | None, parts: frozenset[str] | None = None
    ) -> JetSample: ...


@dataclass(frozen=True)
class SampleLayout:
    """One HDF5 layout: ``signature`` (datasets that identify it), a reader of a row range
    (``read(path, rows, parts)``, :class:`ReadRows`), the number of jets and the labels
    alone (``labels(path)``, cheap: for the stratified split of a streamed sample)."""

    name: str
    description: str
    signature: tuple[str, ...]
    read: ReadRows
    count: Callable[[Path], int]
    labels: Callable[[Path], np.ndarray]

    def claims(self, keys: set[str]) -> bool:
        return all(key in keys for key in self.signature)


#: HDF5 sample layouts, by name; :func:`detect_layout` tries them in this order.
SAMPLE_LAYOUTS: Registry[SampleLayout] = Registry("jet sample layout")


def detect_layout(path: Path) -> SampleLayout:
    """The registered layout whose signature datasets ``path`` holds."""
    with open_hdf5(path) as h5:
        keys = set(h5.keys())
    for layout in SAMPLE_LAYOUTS.values():
        if layout.claims(keys):
            return layout
    accepted = "; ".join(
        f"{lay.name} ({', '.join(lay.signature)})" for lay in SAMPLE_LAYOUTS.values()
    )
    raise DataError(
        f"{path}: not a known jet sample layout (datasets: {', '.join(sorted(keys)) or 'none'}); "
        f"accepted: {accepted}"
    )


# --- hepfpga's own files ---------------------------------------------------------------------


def _hepfpga_read(path: Path, rows: slice | None, parts: frozenset[str] | None = None) -> JetSample:
    with open_hdf5(path) as h5:
        labels_item = h5.get("labels")
        if labels_item is None or len(labels_item.shape) != 1:
            raise DataError(f"{path}: dataset 'labels' is missing or not 1-d; expected (N,)")
        n = labels_item.shape[0]
        part = _rows(n, rows)
        accepted = {
            "features": (2, f"(N, {len(FEATURE_NAMES)}) float"),
            "constituents": (3, "(N, C, 3) float"),
            "jet_pt": (1, "(N,) float"),
            "jet_eta": (1, "(N,) float"),
            "jet_mass": (1, "(N,) float"),
        }
        for key, (nd, text) in accepted.items():
            _dataset(h5, path, key, nd, text)
        skipped = [p for p in SAMPLE_PARTS if not _wants(parts, p)]
        arrays = {key: _read(h5, key, part) for key in accepted if key not in skipped}
        n_rows = part.stop - part.start
        if "features" in skipped:
            arrays["features"] = np.full((n_rows, len(FEATURE_NAMES)), np.nan, np.float32)
        if "constituents" in skipped:
            arrays["constituents"] = np.zeros((n_rows, 0, 3), np.float32)
        labels = np.asarray(_read(h5, "labels", part))
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{path}: dataset 'labels' has dtype {labels.dtype}; expected integers")
        names = {key: tuple(_names(h5, path, key)) for key in ("feature_names", "class_names")}
        raw = h5.attrs.get("metadata", "")
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    try:
        metadata = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: attribute 'metadata' is not valid JSON ({exc})") from exc
    metadata = metadata if isinstance(metadata, dict) else {}
    if skipped:
        metadata = {**metadata, **dict.fromkeys(skipped, "absent")}
        metadata["missing"] = {**metadata.get("missing", {}), **{p: _not_read(p) for p in skipped}}
    return JetSample(
        features=arrays["features"].astype(np.float32),
        constituents=arrays["constituents"].astype(np.float32),
        labels=labels.astype(np.int64),
        jet_pt=arrays["jet_pt"].astype(np.float32),
        jet_eta=arrays["jet_eta"].astype(np.float32),
        jet_mass=arrays["jet_mass"].astype(np.float32),
        feature_names=names["feature_names"],
        class_names=names["class_names"],
        metadata=metadata,
    )


def _hepfpga_count(path: Path) -> int:
    with open_hdf5(path) as h5:
        labels = h5.get("labels")
        if labels is None or labels.ndim != 1:
            raise DataError(f"{path}: dataset 'labels' is missing or not 1-d; expected (N,)")
        return labels.shape[0]


def _hepfpga_labels(path: Path) -> np.ndarray:
    with open_hdf5(path) as h5:
        if h5.get("labels") is None:
            raise DataError(f"{path}: dataset 'labels' is missing; expected (N,) integers")
        labels = np.asarray(h5.read("labels"))
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: dataset 'labels' has shape {labels.shape}, dtype {labels.dtype}; "
            "expected (N,) integers"
        )
    return labels.astype(np.int64)


SAMPLE_LAYOUTS.register(
    "hepfpga",
    SampleLayout(
        "hepfpga",
        "hepfpga's own files (hepfpga data generate, save_sample)",
        ("features", "constituents", "labels"),
        _hepfpga_read,
        _hepfpga_count,
        _hepfpga_labels,
    ),
)

# --- the hls4ml LHC jet files ----------------------------------------------------------------

#: the one-hot label columns of the ``jets`` table, in our class order (q, g, W, Z, t)
_HLS4ML_LABELS = ("j_q", "j_g", "j_w", "j_z", "j_t")
_HLS4ML_KINEMATICS = ("j_pt", "j_eta", "j_mass")
_HLS4ML_PARTICLES = ("j1_ptrel", "j1_etarel", "j1_phirel")


def _column(names: list[str], wanted: str) -> int | None:
    """Index of ``wanted`` among ``names`` (``j_``/``j1_`` prefix optional in the file)."""
    for candidate in (wanted, wanted.split("_", 1)[1]):
        if candidate in names:
            return names.index(candidate)
    return None


def _hls4ml_jets_table(h5: HDF5File, path: Path) -> tuple[HDF5Dataset, list[str], list[int]]:
    jets = _dataset(h5, path, "jets", 2, "the (N, F) jet table")
    names = _names(h5, path, "jetFeatureNames")
    if len(names) != jets.shape[1]:
        raise DataError(
            f"{path}: 'jetFeatureNames' has {len(names)} names for the {jets.shape[1]} columns "
            "of 'jets'; expected one name per column"
        )
    label_columns = [_column(names, name) for name in _HLS4ML_LABELS]
    missing = [name for name, c in zip(_HLS4ML_LABELS, label_columns, strict=True) if c is None]
    if missing:
        raise DataError(
            f"{path}: the 'jets' table has no label column(s) {', '.join(missing)}; expected "
            "the one-hot columns j_g, j_q, j_w, j_z, j_t (and j_undef)"
        )
    return jets, names, [int(c) for c in label_columns if c is not None]


def _hls4ml_one_hot(
    path: Path, flags: np.ndarray, undef: np.ndarray | None, start: int
) -> np.ndarray:
    ok = np.all((flags == 0) | (flags == 1), axis=1) & (flags.sum(axis=1) == 1)
    if undef is not None:
        ok &= undef == 0
    if not ok.all():
        first = int(np.flatnonzero(~ok)[0])
        raise DataError(
            f"{path}: {int((~ok).sum())} jet(s) of dataset 'jets' without exactly one class flag "
            f"(first: row {start + first}); accepted: one of j_g, j_q, j_w, j_z, j_t equal to 1, "
            "the others and j_undef 0"
        )
    return np.argmax(flags, axis=1).astype(np.int64)


def _hls4ml_read(path: Path, rows: slice | None, parts: frozenset[str] | None = None) -> JetSample:
    missing: dict[str, str] = {}
    with open_hdf5(path) as h5:
        jets, names, label_columns = _hls4ml_jets_table(h5, path)
        part = _rows(jets.shape[0], rows)
        table = np.asarray(_read(h5, "jets", part), dtype=np.float64)
        undef = _column(names, "j_undef")
        labels = _hls4ml_one_hot(
            path,
            table[:, label_columns],
            table[:, undef] if undef is not None else None,
            part.start,
        )
        n = len(labels)
        used: list[int] = []
        feature_columns = [_column(names, f"j_{name}") for name in FEATURE_NAMES]
        features = None
        if not _wants(parts, "features"):
            missing["features"] = _not_read("features")
        elif None in feature_columns:
            absent = [
                f"j_{f}" for f, c in zip(FEATURE_NAMES, feature_columns, strict=True) if c is None
            ]
            missing["features"] = f"the 'jets' table of {path} has no column(s) {', '.join(absent)}"
        else:
            used += [int(c) for c in feature_columns if c is not None]
            features = table[:, [int(c) for c in feature_columns if c is not None]]
        kinematic_columns = [_column(names, name) for name in _HLS4ML_KINEMATICS]
        if None in kinematic_columns:
            missing["jet_kinematics"] = f"the 'jets' table of {path} has no j_pt, j_eta, j_mass"
            kinematics: tuple[np.ndarray, ...] = (np.full(n, np.nan),) * 3
        else:
            used += [int(c) for c in kinematic_columns if c is not None]
            kinematics = tuple(table[:, int(c)] for c in kinematic_columns if c is not None)
        _finite(table[:, used], path, "jets", [names[c] for c in used])
        constituents = None
        if not _wants(parts, "constituents"):
            missing["constituents"] = _not_read("constituents")
        elif "jetConstituentList" not in h5:
            missing["constituents"] = f"{path} has no dataset 'jetConstituentList'"
        else:
            constituents = _hls4ml_constituents(h5, path, jets, part, n, missing)
    return _sample(
        n,
        features=features,
        constituents=constituents,
        labels=labels,
        kinematics=(kinematics[0], kinematics[1], kinematics[2]),
        metadata={"source": f"hls4ml LHC jets ({path.name})", "layout": "hls4ml_lhc_jets"},
        missing=missing,
    )


def _hls4ml_constituents(
    h5: HDF5File, path: Path, jets: HDF5Dataset, part: slice, n: int, missing: dict[str, str]
) -> np.ndarray | None:
    particles = _dataset(h5, path, "jetConstituentList", 3, "(N, C, P) particle features")
    if particles.shape[0] != jets.shape[0]:
        raise DataError(
            f"{path}: 'jetConstituentList' holds {particles.shape[0]} jets, 'jets' "
            f"{jets.shape[0]}; expected the same jets in both"
        )
    names = _names(h5, path, "particleFeatureNames")
    width = particles.shape[2]
    # the public files carry one trailing name (j1_pdgid) more than there are columns
    if len(names) not in (width, width + 1):
        raise DataError(
            f"{path}: 'particleFeatureNames' has {len(names)} names for the {width} columns of "
            f"'jetConstituentList'; expected {width} (or {width + 1}, a trailing unused name)"
        )
    names = names[:width]
    columns = [_column(names, name) for name in _HLS4ML_PARTICLES]
    if None in columns:
        absent = [p for p, c in zip(_HLS4ML_PARTICLES, columns, strict=True) if c is None]
        missing["constituents"] = (
            f"'jetConstituentList' of {path} has no column(s) {', '.join(absent)}"
        )
        return None
    wanted = [int(c) for c in columns if c is not None]
    # only the three columns are read (a 150-particle file has 16)
    picked = np.asarray(_read(h5, "jetConstituentList", part, wanted), dtype=np.float64)
    _finite(picked, path, "jetConstituentList", list(_HLS4ML_PARTICLES))
    if picked.shape[0] != n:  # pragma: no cover - guarded by the shape check above
        raise DataError(f"{path}: 'jetConstituentList' and 'jets' differ in length")
    return picked


def _hls4ml_count(path: Path) -> int:
    with open_hdf5(path) as h5:
        return int(_hls4ml_jets_table(h5, path)[0].shape[0])


def _hls4ml_labels(path: Path) -> np.ndarray:
    with open_hdf5(path) as h5:
        jets, names, label_columns = _hls4ml_jets_table(h5, path)
        undef = _column(names, "j_undef")
        labels = []
        for start in range(0, jets.shape[0], 65536):  # bounded memory: the table is 59 wide
            table = np.asarray(h5.read("jets", start, start + 65536), dtype=np.float64)
            labels.append(
                _hls4ml_one_hot(
                    path,
                    table[:, label_columns],
                    table[:, undef] if undef is not None else None,
                    start,
                )
            )
    return np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)


SAMPLE_LAYOUTS.register(
    "hls4ml_lhc_jets",
    SampleLayout(
        "hls4ml_lhc_jets",
        "the public hls4ml LHC jet files (jets, jetConstituentList, jetImage)",
        ("jets", "jetFeatureNames"),
        _hls4ml_read,
        _hls4ml_count,
        _hls4ml_labels,
    ),
)

# --- JetNet ----------------------------------------------------------------------------------

#: JetNet file stem (without the ``150`` of the 150-particle files) -> our class index
_JETNET_CLASSES = {"q": 0, "g": 1, "w": 2, "z": 3, "t": 4}
_JETNET_NAME = re.compile(r"^([gqtwz])(150)?$", re.IGNORECASE)
_JETNET_PARTICLES = ["etarel", "phirel", "ptrel", "mask"]
_JETNET_JETS = ["pt", "eta", "mass", "num_particles"]


def _jetnet_class(path: Path) -> int:
    match = _JETNET_NAME.match(path.stem)
    if match is None:
        raise DataError(
            f"{path}: a JetNet file is named by its jet class; accepted: g, q, t, w, z "
            "(.hdf5 or .h5, optionally followed by 150: g150.hdf5)"
        )
    return _JETNET_CLASSES[match.group(1).lower()]


def _jetnet_datasets(h5: HDF5File, path: Path) -> tuple[HDF5Dataset, HDF5Dataset]:
    particles = _dataset(h5, path, "particle_features", 3, "(N, C, 4): etarel, phirel, ptrel, mask")
    jets = _dataset(h5, path, "jet_features", 2, "(N, 4): pt, eta, mass, num_particles")
    if particles.shape[2] != 4 or jets.shape[1] != 4 or particles.shape[0] != jets.shape[0]:
        raise DataError(
            f"{path}: 'particle_features' {particles.shape} and 'jet_features' {jets.shape} do "
            "not match; expected (N, C, 4) (etarel, phirel, ptrel, mask) and (N, 4) (pt, eta, "
            "mass, num_particles)"
        )
    return particles, jets


def _jetnet_read(path: Path, rows: slice | None, parts: frozenset[str] | None = None) -> JetSample:
    label = _jetnet_class(path)
    missing: dict[str, str] = {}
    with open_hdf5(path) as h5:
        particles, jets = _jetnet_datasets(h5, path)
        part = _rows(jets.shape[0], rows)
        j = np.asarray(_read(h5, jets.name, part), dtype=np.float64)
        p = (
            np.asarray(_read(h5, particles.name, part), dtype=np.float64)
            if _wants(parts, "constituents")
            else None
        )
    _finite(j, path, "jet_features", _JETNET_JETS)
    constituents = None
    if p is None:
        missing["constituents"] = _not_read("constituents")
    else:
        _finite(p, path, "particle_features", _JETNET_PARTICLES)
        mask = p[..., 3]
        if not np.isin(mask, (0.0, 1.0)).all():
            raise DataError(
                f"{path}: the mask channel of 'particle_features' holds values other "
                "than 0 and 1; accepted: 1 for a particle, 0 for padding"
            )
        constituents = np.stack([p[..., 2], p[..., 0], p[..., 1]], axis=-1) * mask[..., None]
    n = j.shape[0]
    return _sample(
        n,
        features=None,
        constituents=constituents,
        labels=np.full(n, label, dtype=np.int64),
        kinematics=(j[:, 0], j[:, 1], j[:, 2]),
        metadata={"source": f"JetNet ({path.name})", "layout": "jetnet"},
        missing={
            "features": (
                f"JetNet ({path.name}) holds no substructure features, only jet_features pt, "
                "eta, mass, num_particles"
            ),
            **missing,
        },
    )


def _jetnet_count(path: Path) -> int:
    _jetnet_class(path)
    with open_hdf5(path) as h5:
        return int(_jetnet_datasets(h5, path)[1].shape[0])


def _jetnet_labels(path: Path) -> np.ndarray:
    return np.full(_jetnet_count(path), _jetnet_class(path), dtype=np.int64)


SAMPLE_LAYOUTS.register(
    "jetnet",
    SampleLayout(
        "jetnet",
        "JetNet (g, q, t, w, z .hdf5; particle_features, jet_features)",
        ("particle_features", "jet_features"),
        _jetnet_read,
        _jetnet_count,
        _jetnet_labels,
    ),
)
