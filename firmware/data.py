"""Events for verification: read from a data file or drawn at random."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import DataError

__all__ = ["load_events", "random_events"]


def load_events(path: str | Path, key: str | None = None) -> np.ndarray:
    """The event array ``key`` of a data file, in its stored per-event shape.

    Any format of :mod:`hepfpga.datafiles` (npz, HDF5, parquet, ROOT). Without ``key`` a
    file's only array is taken, or the first of ``x``, ``X``, ``inputs``, ``features``,
    ``x_test``, ``X_test``; errors (:class:`~hepfpga.errors.DataError`) name the arrays the
    file holds.
    """
    from hepfpga.datafiles import open_array

    return open_array(path, key=key).read(flat=False)


def random_events(model: Any, n: int, seed: int = 0) -> np.ndarray:
    """``n`` events of standard-normal inputs shaped like ``model``'s input."""
    if n < 1:
        raise DataError(f"expected a positive number of random events. Received: {n}")
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)
