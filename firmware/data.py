"""Events for verification: read from a data file or drawn at random."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.datafiles import check_finite, open_array
from hepfpga.errors import DataError
from hepfpga.firmware.layers.graph import input_names
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.precision import count_inputs, input_types, is_quantized
from hepfpga.quantize.fixed import FixedType

__all__ = ["load_events", "random_events", "validate_events"]


def load_events(
    path: str | Path, key: str | None = None, max_events: int | None = None
) -> np.ndarray:
    """The event array ``key`` of a data file, in its stored per-event shape: its first
    ``max_events`` events (all by default), and only those are read and decompressed.

    Any format of :mod:`hepfpga.datafiles` (npz, npy, HDF5, parquet, ROOT), read by its safe
    reader: declared shapes and dtypes checked before reading, NaN and infinities refused.
    Without ``key`` a file's only array is taken, or the first of ``x``, ``X``, ``inputs``,
    ``features``, ``x_test``, ``X_test``; errors (:class:`~hepfpga.errors.DataError`) name
    the arrays the file holds.
    """
    return open_array(path, key=key).read(0, max_events, flat=False)


#: where the hardware type of an input comes from when random events are drawn on its grid
GRID_SOURCES = ("firmware.input_type", "input quantizer")


def random_events(model: Any, n: int, seed: int = 0, options: FirmwareOptions | None = None) -> Any:
    """``n`` events of random inputs shaped like ``model``'s input (a list of arrays, one per
    input, for a model with several inputs).

    Inputs that are counts (GarNet's vertex count,
    :func:`~hepfpga.firmware.precision.count_inputs`) get integers from 0 to the largest
    their layer takes. An input whose hardware type the model or ``options`` fixes (a
    declared ``firmware.input_type``, or the ``QActivation(quantized_bits)`` right after it,
    :func:`~hepfpga.firmware.precision.input_types`) gets events the firmware reads as they
    are: normal with sigma ``min(1, max|value| / 2)`` of that type, then rounded and
    saturated to it (:meth:`~hepfpga.fixed_point.FixedType.quantize`), so on its grid and
    within its range (saturated values included). Other inputs are standard normal.
    """
    if n < 1:
        raise DataError(f"expected a positive number of random events. Received: {n}")

    rng = np.random.default_rng(seed)
    counts = count_inputs(model)
    grid = _grid_types(model, options)
    arrays = []
    for name, tensor in zip(input_names(model), model.inputs, strict=True):
        shape = (n, *(int(d) for d in tensor.shape[1:]))
        if name in counts:  # a count (GarNet's vertex count): integers the type holds
            arrays.append(rng.integers(0, counts[name] + 1, size=shape).astype(np.float32))
        elif name in grid:
            fixed = grid[name]
            sigma = min(1.0, max(abs(fixed.min_value), abs(fixed.max_value)) / 2)
            values = fixed.quantize(rng.normal(scale=sigma, size=shape))
            arrays.append(values.astype(np.float32))
        else:
            arrays.append(rng.normal(size=shape).astype(np.float32))
    return arrays if len(arrays) > 1 else arrays[0]


def _grid_types(model: Any, options: FirmwareOptions | None) -> dict[str, FixedType]:
    """The inputs whose hardware type is fixed before any event is seen (see GRID_SOURCES)."""
    options = options if options is not None else FirmwareOptions()
    if options.input_type is None and not is_quantized(model):
        return {}  # a float model's input type is profiled from the events themselves
    return {
        name: types.result
        for name, types in input_types(model, options).items()
        if types.source in GRID_SOURCES
    }


def validate_events(
    x: Any,
    shape: tuple[int, ...] | int,
    *,
    name: str = "inputs",
    first_event: int = 0,
    flat: bool = False,
) -> np.ndarray:
    """``x`` as float32 events of the per-event ``shape``, or a :class:`DataError` saying what
    is wrong: the one validator of event arrays (verification, C simulation, emulation,
    test benches).

    Accepted: ``(n_events, *shape)``, ``(n_events, prod(shape))`` (channels last, as hls4ml
    stores them) and a single event ``(prod(shape),)``. Values must be real numbers; they are
    rounded to float32 first (what the Keras model and the C simulation see), and NaN,
    infinities and values beyond float32's range are refused with their count and the first
    places (event numbers start at ``first_event``). Returns ``(n_events, *shape)``, or
    ``(n_events, prod(shape))`` with ``flat``.
    """
    dims = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
    size = int(np.prod(dims))
    try:
        array = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise DataError(f"{name} cannot be read as an array: {exc}") from exc
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 1 and array.shape[0] == size:
        array = array[np.newaxis]
    reshapable = array.ndim == 2 or len(dims) == 1  # flat events, or events to flatten
    if (
        array.ndim >= 2
        and tuple(array.shape[1:]) != dims
        and int(np.prod(array.shape[1:])) == size
        and reshapable
    ):
        array = array.reshape((len(array), *dims))
    if array.ndim < 2 or tuple(array.shape[1:]) != dims:
        expected = ", ".join(map(str, dims))
        also = f" or (n_events, {size})" if len(dims) > 1 else ""
        raise DataError(
            f"{name} has shape {np.shape(x)}; the model takes shape (n_events, {expected}){also}"
        )
    if not len(array):
        raise DataError(f"{name} holds no events")
    with np.errstate(over="ignore", invalid="ignore"):
        events = array.astype(np.float32)
    check_finite(events, name, first_event, cast_to="float32's")
    return events.reshape(len(events), -1) if flat else events
