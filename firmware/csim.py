"""C simulation of a compiled project: outputs and logits, event by event.

Inputs are first rounded to float32, because that is what the Keras model computes with, and
then passed to the simulation as float64 (so the C++ side converts exactly the value QKeras
quantized). The C-simulation library runs one event per call, as hls4ml's ``predict`` does.

:func:`predict_logits` reads the output of the traced logits layer. hls4ml's public
``ModelGraph.trace`` regenerates and recompiles the whole project on every call (several
seconds with g++); the project written by hepfpga already has tracing of the logits layer
compiled in (``TraceOutput`` + ``Trace`` on that layer, excluded from synthesis by
``#ifndef __SYNTHESIS__``), so here the library's trace buffers are read directly through the
bridge functions hls4ml generates (``allocate_trace_storage``, ``collect_trace_output``,
``free_trace_storage``). This relies on hls4ml 1.3's bridge, which hepfpga pins.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError, DataError
from hepfpga.firmware.data import validate_events
from hepfpga.firmware.layers.graph import SPLIT_OUTPUT_SUFFIXES
from hepfpga.firmware.project import FirmwareProject

__all__ = [
    "predict",
    "predict_logits",
    "predict_outputs",
    "predict_outputs_and_traces",
    "predict_traces",
    "predict_with_logits",
]


def _events(project: FirmwareProject, x: Any) -> list[np.ndarray]:
    """One float64 array ``(n_events, size)`` per model input (``x``: an array, or a list of
    arrays for a model with several inputs)."""
    shapes = _input_shapes(project)
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(arrays) != len(shapes):
        raise DataError(
            f"the model has {len(shapes)} inputs; give a list of {len(shapes)} event arrays, "
            f"got {len(arrays)}"
        )
    names = _input_names(project)
    events = [
        np.ascontiguousarray(
            validate_events(a, shape, flat=True, name=name if len(shapes) > 1 else "inputs").astype(
                np.float64
            )
        )
        for a, shape, name in zip(arrays, shapes, names, strict=True)
    ]
    if len({len(e) for e in events}) > 1:
        raise DataError(
            "the inputs hold different numbers of events: "
            + ", ".join(f"{n}: {len(e)}" for n, e in zip(names, events, strict=True))
        )
    return events


def _input_names(project: FirmwareProject) -> list[str]:
    return [str(v.name) for v in project.hls_model.get_input_variables()]


def _input_shapes(project: FirmwareProject) -> list[tuple[int, ...]]:
    shapes = []
    for variable in project.hls_model.get_input_variables():
        shape = tuple(int(d) for d in getattr(variable, "shape", ()) or ())
        shapes.append(shape if shape else (variable.size(),))
    return shapes


def _input_shape(project: FirmwareProject) -> tuple[int, ...]:
    return _input_shapes(project)[0]


def _library(project: FirmwareProject) -> Any:
    library = getattr(project.hls_model, "_top_function_lib", None)
    if not project.compiled or library is None:
        raise ConversionError(
            f"the project {project.path} is not compiled; call compile_project(project) first"
        )
    return library


def _top_function(project: FirmwareProject, library: Any) -> Any:
    model = project.hls_model
    top = getattr(library, f"{model.config.get_project_name()}_double")
    pointer = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
    # the bridge takes every input, then every output
    n_args = len(model.get_input_variables()) + len(model.get_output_variables())
    top.argtypes = [pointer] * n_args
    top.restype = None
    return top


def predict(project: FirmwareProject, x: Any) -> np.ndarray:
    """The firmware's outputs (events x outputs, float64) from C simulation of ``x``.

    For a model with several outputs this is the first one (:func:`predict_outputs` gives
    all); ``x`` is a list of arrays for a model with several inputs.
    """
    outputs, _ = _simulate(project, x, trace_layer=None)
    return outputs


def predict_outputs_and_traces(
    project: FirmwareProject, x: Any
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Every output and every traced layer's output, from one pass over the events."""
    return _run(project, x, list(_traced_layers(project)))


def predict_outputs(project: FirmwareProject, x: Any) -> list[np.ndarray]:
    """Every output of the firmware (one ``(events, size)`` float64 array per model output)."""
    outputs, _ = _run(project, x, [])
    return outputs


def predict_logits(project: FirmwareProject, x: Any, logits_layer: str | None = None) -> np.ndarray:
    """The output of ``logits_layer`` (default: the layer feeding the softmax) for ``x``."""
    _, logits = _simulate(project, x, trace_layer=logits_layer or project.logits_layer)
    return logits


def predict_with_logits(
    project: FirmwareProject, x: Any, logits_layer: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(predict(...), predict_logits(...))`` from a single pass over the events."""
    return _simulate(project, x, trace_layer=logits_layer or project.logits_layer)


def predict_traces(
    project: FirmwareProject, x: Any, layers: list[str] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The outputs and the outputs of every traced layer (or of ``layers``), one pass.

    Each traced layer's values are ``(events, layer size)``, flattened channels last.
    """
    traced = _traced_layers(project)
    wanted = list(traced) if layers is None else layers
    return _simulate_many(project, x, wanted)


class _TraceData(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p)]


def _traced_layers(project: FirmwareProject) -> dict[str, int]:
    model = project.hls_model
    if not model.config.trace_output:
        return {}
    return {
        layer.name: layer.get_output_variable().size()
        for layer in model.get_layers()
        if layer.get_attr("function_cpp", None) and layer.get_attr("trace", False)
    }


def _traced_name(name: str, traced: dict[str, int]) -> str:
    """The traced hls4ml layer holding layer ``name``'s output: itself, or the part of a layer
    hls4ml split that writes it (``SPLIT_OUTPUT_SUFFIXES``)."""
    if name in traced:
        return name
    for suffix in SPLIT_OUTPUT_SUFFIXES:
        if f"{name}{suffix}" in traced:
            return f"{name}{suffix}"
    return name


def _simulate(
    project: FirmwareProject, x: Any, trace_layer: str | None
) -> tuple[np.ndarray, np.ndarray]:
    if trace_layer is None:
        outputs, _ = _simulate_many(project, x, [])
        return outputs, np.empty((len(outputs), 0))
    outputs, traces = _simulate_many(project, x, [trace_layer])
    return outputs, traces[trace_layer]


def _simulate_many(
    project: FirmwareProject, x: Any, trace_layers: list[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    outputs, traces = _run(project, x, trace_layers)
    return outputs[0], traces


def _run(
    project: FirmwareProject, x: Any, trace_layers: list[str]
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    inputs = _events(project, x)
    n_events = len(inputs[0])
    library = _library(project)
    model = project.hls_model
    top = _top_function(project, library)
    outputs = [
        np.zeros((n_events, variable.size()), dtype=np.float64)
        for variable in model.get_output_variables()
    ]

    def call(i: int) -> None:
        top(*(a[i] for a in inputs), *(o[i] for o in outputs))

    if not trace_layers:
        for i in range(n_events):
            call(i)
        return outputs, {}

    traced = _traced_layers(project)
    # a layer hls4ml split ('<name>_pointwise') is read from the part writing its output
    hls_name = {name: _traced_name(name, traced) for name in trace_layers}
    missing = [name for name in trace_layers if hls_name[name] not in traced]
    if missing:
        raise ConversionError(
            f"layer '{missing[0]}' is not traced in the C simulation of {project.path}; "
            f"traced layers: {sorted(traced) or 'none'}"
        )
    library.allocate_trace_storage.argtypes = [ctypes.c_size_t]
    library.allocate_trace_storage.restype = None
    library.collect_trace_output.argtypes = [ctypes.POINTER(_TraceData)]
    library.collect_trace_output.restype = None
    library.free_trace_storage.argtypes = None
    library.free_trace_storage.restype = None
    # room for every layer: the library fills one slot per layer it traces
    slots = (_TraceData * (len(list(model.get_layers())) + 16))()
    values = {
        name: np.zeros((n_events, traced[hls_name[name]]), dtype=np.float64)
        for name in trace_layers
    }
    library.allocate_trace_storage(ctypes.sizeof(ctypes.c_double))
    try:
        # the buffers live as long as the trace storage, so find ours once
        call(0)
        library.collect_trace_output(slots)
        addresses = {s.name.decode(): s.data for s in slots if s.name}
        buffers = {
            name: np.ctypeslib.as_array(
                ctypes.cast(addresses[hls_name[name]], ctypes.POINTER(ctypes.c_double)),
                shape=(traced[hls_name[name]],),
            )
            for name in trace_layers
        }
        for name, buffer in buffers.items():
            values[name][0] = buffer
        for i in range(1, n_events):
            call(i)
            for name, buffer in buffers.items():
                values[name][i] = buffer
    finally:
        library.free_trace_storage()
    return outputs, values
