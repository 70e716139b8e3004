"""Events for verification: read from ``.npz``/HDF5 files or drawn at random."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import DataError

__all__ = ["load_events", "random_events"]

_NPZ = (".npz",)
_HDF5 = (".h5", ".hdf5", ".hdf")
#: keys tried, in order, when a file holds several arrays and no key is given
_DEFAULT_KEYS = ("x", "X", "inputs", "features", "x_test", "X_test")


def _choose(keys: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in keys:
            raise DataError(f"{path}: no array '{key}'; arrays in the file: {', '.join(keys)}")
        return key
    if len(keys) == 1:
        return keys[0]
    for candidate in _DEFAULT_KEYS:
        if candidate in keys:
            return candidate
    raise DataError(
        f"{path}: holds several arrays ({', '.join(keys) or 'none'}); choose one with --key"
    )


def load_events(path: str | Path, key: str | None = None) -> np.ndarray:
    """The array ``key`` of an ``.npz`` or HDF5 file (events along the first axis).

    Without ``key`` a file's only array is taken, or the first of ``x``, ``X``, ``inputs``,
    ``features``, ``x_test``, ``X_test``. Raises :class:`~hepfpga.errors.DataError` naming
    the arrays the file holds.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in _NPZ:
        try:
            with np.load(path, allow_pickle=False) as archive:
                name = _choose(list(archive.files), key, path)
                return np.asarray(archive[name])
        except DataError:
            raise
        except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled objects), OSError
            raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    if suffix in _HDF5:
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                names: list[str] = []
                handle.visititems(
                    lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
                )
                name = _choose(names, key, path)
                return np.asarray(handle[name][()])
        except DataError:
            raise
        except Exception as exc:  # OSError for a file that is not HDF5
            raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
    raise DataError(f"{path}: unknown data file type '{path.suffix}'; accepted: .npz, .h5, .hdf5")


def random_events(model: Any, n: int, seed: int = 0) -> np.ndarray:
    """``n`` events of standard-normal inputs shaped like ``model``'s input."""
    if n < 1:
        raise DataError(f"expected a positive number of random events. Received: {n}")
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)
