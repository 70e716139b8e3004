"""Fast bulk emulation of a firmware, bit-identical to its hls4ml C simulation.

hls4ml's ``predict()`` runs the C simulation one event per call (about 11k events/s for the
jet MLP on one core, most of it ``ap_fixed`` arithmetic in C++). :class:`Emulator` computes
the same outputs for whole batches with the vectorised fixed-point engine of
:mod:`hepfpga.firmware.emulate_engine` (numbers and their rounding are described there).

Trust is earned, not assumed: :meth:`Emulator.from_project` builds the engine from the
project's hls4ml graph and then **proves** it on a sample, comparing every output bit for bit
with the C simulation (the caller's events, plus events spread over the whole input range
that saturate and round). Where the engine cannot reproduce a layer, or the proof fails, the
emulator **falls back to the C simulation**: it warns (:class:`EmulationFallbackWarning`, and
the ``hepfpga`` logger) and records why in :attr:`Emulator.fallback_reason` and in the
:class:`EmulationResult` of :func:`emulate_file`. Results are then exact but slow.

:func:`emulate_file` streams a data file (npz, HDF5, parquet, ROOT; see
:mod:`hepfpga.datafiles`) through the emulator in chunks on dask.distributed and writes the
outputs atomically, so inputs larger than memory work.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.cluster import dask_client
from hepfpga.datafiles import ArrayWriter, open_array
from hepfpga.errors import ConversionError, DataError
from hepfpga.firmware.csim import predict_logits, predict_outputs, predict_with_logits
from hepfpga.firmware.data import validate_events as _validate
from hepfpga.firmware.emulate_engine.plan import Plan, UnsupportedLayerError, build_plan
from hepfpga.firmware.layers.graph import UserNames
from hepfpga.firmware.project import FirmwareProject

__all__ = [
    "EmulationFallbackWarning",
    "EmulationResult",
    "Emulator",
    "ExactnessCheck",
    "emulate_file",
    "output_names",
    "validate_events",
    "validate_inputs",
]

log = logging.getLogger("hepfpga.firmware.emulate")

#: events of the caller's data compared with the C simulation before the engine is trusted
DEFAULT_CHECK_EVENTS = 10_000
#: extra events spread over the input type's range (saturation, ties) added to every check
STRESS_EVENTS = 1_000
#: events per call of the engine (bounded memory, cache-friendly)
ENGINE_BATCH = 1024

ENGINE_FIXED = "fixed-point"
ENGINE_CSIM = "csim"


_BLAS_CONTROLLER: Any = None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run the engine with one BLAS thread: its matrix products are small (a batch of events
    times a layer), where more threads cost more than they give (measured here: 2.0M events/s
    with one OpenBLAS thread, 0.3-1.9M with two on a busy machine). Parallelism comes from
    dask workers instead. Without threadpoolctl (a scikit-learn dependency) nothing changes."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        try:
            # deferred, optional: threadpoolctl
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS_CONTROLLER = False
        else:
            _BLAS_CONTROLLER = ThreadpoolController()
    if _BLAS_CONTROLLER is False:
        yield
        return
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        yield


class EmulationFallbackWarning(UserWarning):
    """The fast engine is not used: results come from the (slow) C simulation."""


@dataclass(frozen=True)
class ExactnessCheck:
    """The comparison with the C simulation that decides whether the engine is trusted."""

    n_events: int
    #: of which spread over the input range by hepfpga rather than taken from the data
    n_stress_events: int
    #: fraction of events whose outputs (and logits, when compared) are all identical
    fraction_identical: float
    outputs_compared: tuple[str, ...]
    csim_seconds: float

    @property
    def passed(self) -> bool:
        return self.n_events > 0 and self.fraction_identical == 1.0


@dataclass
class EmulationResult:
    """What :func:`emulate_file` did."""

    output_path: Path
    n_events: int
    engine: str
    #: why the C simulation was used instead of the fast engine; None when it was not
    fallback_reason: str | None
    check: ExactnessCheck | None
    #: wall time of the whole call (proof, cluster start, reading, emulating, writing)
    seconds: float
    n_chunks: int
    arrays: tuple[str, ...] = field(default=())
    #: wall time from the first chunk submitted to the last one written (no proof, no start-up
    #: or shut-down of the cluster, no final assembly of the output file)
    streaming_seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        """Events per second of the whole call."""
        return self.n_events / self.seconds if self.seconds > 0 else float("inf")

    @property
    def streaming_events_per_second(self) -> float:
        """Events per second once the engine is proven and the workers run."""
        seconds = self.streaming_seconds
        return self.n_events / seconds if seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["output_path"] = str(self.output_path)
        record["events_per_second"] = self.events_per_second
        record["streaming_events_per_second"] = self.streaming_events_per_second
        return record


class Emulator:
    """Outputs of a compiled firmware project for many events, bit-identical to its C simulation.

    Use :meth:`from_project`; ``predict``/``predict_logits``/``predict_with_logits`` then take
    ``(n_events, n_inputs)`` arrays exactly like :mod:`hepfpga.firmware.csim`. The object
    pickles without the project when the fast engine is in use (what dask workers receive).
    """

    def __init__(
        self,
        plan: Plan | None,
        *,
        project: FirmwareProject | None,
        logits_layer: str | None,
        n_inputs: int,
        n_outputs: int,
        fallback_reason: str | None = None,
        check: ExactnessCheck | None = None,
        inputs: tuple[tuple[str, int], ...] = (),
        outputs: tuple[tuple[str, int], ...] = (),
    ) -> None:
        if plan is None and project is None:
            raise ConversionError("an Emulator needs a plan or a project to fall back to")
        self._plan = plan
        self._project = project
        self.logits_layer = logits_layer
        #: numbers per event of the first input and of the first output
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        #: (name, numbers per event) of every input and every output, in the model's order
        self.inputs = inputs or (("input", n_inputs),)
        self.outputs = outputs or (("output", n_outputs),)
        self.fallback_reason = fallback_reason
        self.check = check

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_project(
        cls,
        project: FirmwareProject,
        check_inputs: Any = None,
        *,
        check_events: int = DEFAULT_CHECK_EVENTS,
        stress_events: int = STRESS_EVENTS,
        seed: int = 0,
    ) -> Emulator:
        """Build the engine for a compiled ``project`` and prove it against its C simulation.

        The proof compares the outputs and the logits of the first ``check_events`` events of
        ``check_inputs`` (may be None) plus ``stress_events`` random events spread over the
        input type's range (saturating ones and exact rounding ties included). Any difference,
        or a layer the engine does not reproduce, makes the emulator fall back to the C
        simulation with an :class:`EmulationFallbackWarning`.
        """
        if not project.compiled:
            raise ConversionError(
                f"the project {project.path} is not compiled; call compile_project(project) first"
            )
        names = UserNames.of(project.keras_model)
        shape = {"inputs": _input_shapes(project), "outputs": _output_shapes(project)}
        n_in, n_out = shape["inputs"][0][1], shape["outputs"][0][1]
        logits = project.logits_layer or None
        try:
            plan = build_plan(project.hls_model)
        except UnsupportedLayerError as exc:
            unsupported = names.text(f"not reproduced: {exc}")
            return cls._fallback(project, logits, shape, unsupported, None)
        if logits is not None and logits not in plan.layer_outputs:
            missing = f"the logits layer '{names.name(logits)}' is not in the converted graph"
            return cls._fallback(project, logits, shape, missing, None)
        emulator = cls(
            plan,
            project=project,
            logits_layer=logits,
            n_inputs=n_in,
            n_outputs=n_out,
            inputs=shape["inputs"],
            outputs=shape["outputs"],
        )
        sample = emulator._check_sample(check_inputs, check_events, stress_events, seed)
        check, reason = emulator._prove(sample, n_stress=min(stress_events, len(sample[0])))
        if reason is not None:
            return cls._fallback(project, logits, shape, names.text(reason), check)
        emulator.check = check
        log.info(
            "fixed-point engine identical to the C simulation on %d events (%d spread over "
            "the input range)",
            check.n_events,
            check.n_stress_events,
        )
        return emulator

    @classmethod
    def _fallback(
        cls,
        project: FirmwareProject,
        logits: str | None,
        shape: dict[str, tuple[tuple[str, int], ...]],
        reason: str,
        check: ExactnessCheck | None,
    ) -> Emulator:
        message = (
            f"hepfpga emulate falls back to the hls4ml C simulation (~10k events/s) for "
            f"{project.path.name}: {reason}"
        )
        warnings.warn(message, EmulationFallbackWarning, stacklevel=3)
        log.warning("%s", message)
        return cls(
            None,
            project=project,
            logits_layer=logits,
            n_inputs=shape["inputs"][0][1],
            n_outputs=shape["outputs"][0][1],
            fallback_reason=reason,
            check=check,
            inputs=shape["inputs"],
            outputs=shape["outputs"],
        )

    def _check_sample(
        self, inputs: Any, n_events: int, n_stress: int, seed: int
    ) -> list[np.ndarray]:
        """One array per model input: the first ``n_events`` events of ``inputs`` (may be
        None), then ``n_stress`` events spread over each input type's range."""
        assert self._plan is not None
        data = self._events(inputs) if inputs is not None and n_events else None
        rng = np.random.default_rng(seed)
        sample = []
        for k, spec in enumerate(self._plan.inputs):
            size = self.inputs[k][1]
            parts = [] if data is None else [data[k][:n_events]]
            if n_stress:
                t = spec.type
                span = max(abs(t.min_value), abs(t.max_value))
                stress = rng.uniform(-1.25 * span, 1.25 * span, size=(n_stress, size))
                # a quarter on exact ties of the input grid, a few far beyond the range
                ties = slice(0, n_stress // 4)
                stress[ties] = (np.round(stress[ties] / t.lsb) + 0.5) * t.lsb
                stress[-max(n_stress // 20, 1) :] *= 8.0
                stress *= rng.uniform(0, 1, size=(n_stress, 1)) ** 2  # many near zero too
                parts.append(stress.astype(np.float32))
            sample.append(np.concatenate(parts) if parts else np.empty((0, size), np.float32))
        return sample

    def _prove(self, sample: list[np.ndarray], n_stress: int) -> tuple[ExactnessCheck, str | None]:
        start = time.perf_counter()
        compared: tuple[str, ...] = tuple(
            "outputs" if len(self.outputs) == 1 else f"outputs_{name}" for name, _ in self.outputs
        )
        if self.logits_layer is not None:
            compared += ("logits",)
        ref_out, ref_logits = self._csim(sample, self.logits_layer)
        seconds = time.perf_counter() - start
        n = len(sample[0])
        try:
            out, logits = self._run(self._unwrap(sample), self.logits_layer)
        except UnsupportedLayerError as exc:
            check = ExactnessCheck(n, n_stress, 0.0, compared, seconds)
            return check, f"not reproduced: {exc}"
        same = np.ones(n, dtype=bool)
        for mine, ref in zip(out, ref_out, strict=True):
            same &= np.all(mine == ref, axis=1)
        if logits is not None:
            same &= np.all(logits == ref_logits, axis=1)
        fraction = float(same.mean()) if len(same) else 0.0
        check = ExactnessCheck(n, n_stress, fraction, compared, seconds)
        if not check.passed:
            first = int(np.argmin(same))
            return check, (
                f"the engine differs from the C simulation on {int((~same).sum())} of "
                f"{len(same)} check events (first: check event {first})"
            )
        return check, None

    def _unwrap(self, events: list[np.ndarray]) -> Any:
        """One array for a single-input model, the list otherwise (as csim takes them)."""
        return events[0] if len(events) == 1 else events

    # -- state -------------------------------------------------------------------------------
    @property
    def engine(self) -> str:
        """``"fixed-point"`` (fast, proven exact) or ``"csim"`` (the fallback)."""
        return ENGINE_FIXED if self._plan is not None else ENGINE_CSIM

    @property
    def exact_engine(self) -> bool:
        return self._plan is not None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._plan is not None:
            state["_project"] = None  # the ctypes library cannot travel; not needed
        elif self._project is not None:
            raise ConversionError(
                "an emulator that falls back to the C simulation cannot be sent to other "
                "processes; it runs where its compiled project is"
            )
        return state

    # -- prediction --------------------------------------------------------------------------
    def _events(self, x: Any, first_event: int = 0) -> list[np.ndarray]:
        """One validated ``(n_events, size)`` float32 array per model input."""
        return validate_inputs(x, self.inputs, first_event)

    def _run(self, x: Any, logits: str | None) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Every output for the events ``x``, and the output of the layer ``logits``."""
        events = self._events(x)
        if self._plan is None:
            return self._csim(events, logits)
        plan = self._plan
        n = len(events[0])
        out = [np.empty((n, size), dtype=np.float64) for _, size in self.outputs]
        logit_values = None
        if logits is not None:
            tensor = plan.layer_outputs[logits]
            logit_values = np.empty((n, plan.width_of(tensor)), dtype=np.float64)
        with _one_blas_thread():
            self._run_batches(plan, events, logits, out, logit_values)
        return out, logit_values

    def _run_batches(
        self,
        plan: Plan,
        events: list[np.ndarray],
        logits: str | None,
        out: list[np.ndarray],
        logit_values: np.ndarray | None,
    ) -> None:
        keep = (logits,) if logits is not None else ()
        fracs = [plan.type_of(tensor).fractional for tensor in plan.outputs]
        if logits is not None:
            tensor = plan.layer_outputs[logits]
            logit_frac = plan.type_of(tensor).fractional
        for start in range(0, len(events[0]), ENGINE_BATCH):
            stop = min(start + ENGINE_BATCH, len(events[0]))
            batch = [e[start:stop] for e in events]
            try:
                raw = plan.run(batch, keep=keep)
            except UnsupportedLayerError as exc:
                # e.g. a table entry without a defined value was addressed: ask the C++
                batch_out, batch_logits = self._csim_batch(batch, logits, exc)
                for values, ref in zip(out, batch_out, strict=True):
                    values[start:stop] = ref
                if logit_values is not None:
                    logit_values[start:stop] = batch_logits
                continue
            for values, output, frac in zip(out, plan.outputs, fracs, strict=True):
                values[start:stop] = np.ldexp(raw[output].reshape(stop - start, -1), -frac)
            if logit_values is not None:
                values = raw[tensor].reshape(stop - start, -1)
                logit_values[start:stop] = np.ldexp(values, -logit_frac)

    def _csim(
        self, events: list[np.ndarray], logits: str | None
    ) -> tuple[list[np.ndarray], np.ndarray | None]:
        assert self._project is not None
        x = self._unwrap(events)
        if len(self.outputs) == 1:
            if logits is not None:
                out, logit_values = predict_with_logits(self._project, x, logits)
                return [out], logit_values
            return predict_outputs(self._project, x), None
        outputs = predict_outputs(self._project, x)
        return outputs, (predict_logits(self._project, x, logits) if logits else None)

    def _csim_batch(
        self, events: list[np.ndarray], logits: str | None, exc: UnsupportedLayerError
    ) -> tuple[list[np.ndarray], np.ndarray | None]:
        if self._project is None:
            raise ConversionError(
                f"the fixed-point engine cannot compute these events ({exc}) and the C "
                "simulation is not available in this process; run without a cluster"
            ) from exc
        message = f"{len(events[0])} events computed by the C simulation: {exc}"
        warnings.warn(message, EmulationFallbackWarning, stacklevel=4)
        log.warning("%s", message)
        return self._csim(events, logits)

    def predict(self, x: Any) -> np.ndarray:
        """The firmware's (first) output (events x outputs, float64), as ``csim.predict``
        gives it; ``x``: an array, or a list of one array per input."""
        return self._run(x, logits=None)[0][0]

    def predict_outputs(self, x: Any) -> list[np.ndarray]:
        """Every output of the firmware, one ``(events, size)`` array per model output (as
        ``csim.predict_outputs`` gives them)."""
        return self._run(x, logits=None)[0]

    def predict_logits(self, x: Any) -> np.ndarray:
        """The output of the logits layer, as ``csim.predict_logits`` gives it."""
        return self.predict_with_logits(x)[1]

    def predict_with_logits(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(predict(x), predict_logits(x))`` from one pass."""
        if self.logits_layer is None:
            raise ConversionError("this emulator has no logits layer")
        out, logits = self._run(x, logits=self.logits_layer)
        assert logits is not None
        return out[0], logits


def _input_shapes(project: FirmwareProject) -> tuple[tuple[str, int], ...]:
    """(name, numbers per event) of each input of ``project``'s model, under the user's
    names (hls4ml's are those of the ready model, :class:`UserNames`)."""
    names = UserNames.of(project.keras_model)
    variables = project.hls_model.get_input_variables()
    return tuple((names.name(str(v.name)), int(v.size())) for v in variables)


def _output_shapes(project: FirmwareProject) -> tuple[tuple[str, int], ...]:
    """(name, numbers per event) of each output of ``project``'s model, named after the
    output layers as the user named them (hls4ml's variables are "layer6_out")."""
    names = UserNames.of(project.keras_model)
    model = project.hls_model
    return tuple(
        (names.name(str(name)), int(v.size()))
        for name, v in zip(model.outputs, model.get_output_variables(), strict=True)
    )


def validate_inputs(
    x: Any, inputs: tuple[tuple[str, int], ...], first_event: int = 0
) -> list[np.ndarray]:
    """One ``(n_events, size)`` float32 array per model input (``inputs``: name and size of
    each), or a :class:`DataError` saying what is wrong; ``x`` is an array for a single-input
    model, a list of one array per input otherwise."""
    if len(inputs) == 1:
        single = x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x
        return [validate_events(single, inputs[0][1], first_event)]
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(arrays) != len(inputs):
        raise DataError(
            f"the model has {len(inputs)} inputs ({', '.join(name for name, _ in inputs)}); "
            f"give a list of {len(inputs)} event arrays, got {len(arrays)}"
        )
    events = [
        _validate(a, size, name=name, first_event=first_event, flat=True)
        for a, (name, size) in zip(arrays, inputs, strict=True)
    ]
    if len({len(e) for e in events}) > 1:
        raise DataError(
            "the inputs hold different numbers of events: "
            + ", ".join(f"{n}: {len(e)}" for (n, _), e in zip(inputs, events, strict=True))
        )
    return events


def validate_events(x: Any, n_inputs: int, first_event: int = 0) -> np.ndarray:
    """``x`` as ``(n_events, n_inputs)`` float32, or a :class:`DataError` saying what is wrong
    (:func:`hepfpga.firmware.data.validate_events`, events flattened channels last)."""
    return _validate(x, n_inputs, name="inputs", first_event=first_event, flat=True)


# -- files -------------------------------------------------------------------------------------
def _chunks(n_events: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n_events, chunk_size):
        yield start, min(start + chunk_size, n_events)


class _Sources:
    """The data file's array of each model input (one for most models), read by range."""

    def __init__(self, readers: list[Any]) -> None:
        self.readers = readers
        self.n_events = readers[0].n_events

    def describe(self) -> str:
        return ", ".join(reader.describe() for reader in self.readers)

    def read(self, start: int, stop: int) -> list[np.ndarray]:
        return [reader.read(start, stop) for reader in self.readers]


def _open_sources(
    data: str | Path,
    inputs: tuple[tuple[str, int], ...],
    key: str | Mapping[str, str] | None,
    columns: Sequence[str] | None,
) -> _Sources:
    """One reader per model input: ``key``/``columns`` for a single-input model; for several
    inputs, the arrays (npz) or datasets (HDF5) named in ``key`` (input name -> array; default:
    the input names), each checked against its input's size."""
    if len(inputs) == 1:
        if isinstance(key, Mapping):
            key = key.get(inputs[0][0], next(iter(key.values()), None))
        readers = [open_array(data, key=key, columns=columns)]
    else:
        if columns:
            raise DataError(
                f"{data}: --columns selects the columns of one input; this model has "
                f"{len(inputs)} inputs ({', '.join(n for n, _ in inputs)}): give one array "
                "or dataset per input instead"
            )
        keys = dict(key) if isinstance(key, Mapping) else {}
        unknown = sorted(set(keys) - {name for name, _ in inputs})
        if unknown:
            raise DataError(
                f"--key names {', '.join(unknown)}, which are not inputs of the model; its "
                f"inputs: {', '.join(n for n, _ in inputs)}"
            )
        readers = [open_array(data, key=keys.get(name, name)) for name, _ in inputs]
    for reader, (name, size) in zip(readers, inputs, strict=True):
        if reader.n_features != size:
            label = "inputs" if len(inputs) == 1 else f"numbers for input '{name}'"
            raise DataError(
                f"{reader.describe()} has {reader.n_features} {label} per event; the model "
                f"takes {size}"
                + (f" (columns: {', '.join(reader.columns)})" if reader.columns else "")
            )
    counts = {reader.n_events for reader in readers}
    if len(counts) > 1:
        raise DataError(
            "the inputs hold different numbers of events: "
            + ", ".join(f"{r.describe()}: {r.n_events}" for r in readers)
        )
    return _Sources(readers)


def output_names(emulator: Emulator) -> tuple[str, ...]:
    """The arrays :func:`emulate_file` writes for the model's outputs: ``outputs`` for one,
    ``outputs_<layer>`` for each of several."""
    if len(emulator.outputs) == 1:
        return ("outputs",)
    return tuple(f"outputs_{name}" for name, _ in emulator.outputs)


def _emulate_chunk(
    emulator: Emulator, source: Any, start: int, stop: int, logits: bool
) -> dict[str, np.ndarray]:
    try:
        x = emulator._events(source.read(start, stop), first_event=start)
    except DataError as exc:
        raise DataError(f"{source.describe()}: {exc}") from exc
    names = output_names(emulator)
    if logits:
        outputs, lg = emulator._run(x, emulator.logits_layer)
        if lg is None:
            raise ConversionError("this emulator has no logits layer")
        return {**dict(zip(names, outputs, strict=True)), "logits": lg}
    return dict(zip(names, emulator.predict_outputs(x), strict=True))


def emulate_file(
    emulator_or_project: Emulator | FirmwareProject,
    data: str | Path,
    out: str | Path,
    *,
    key: str | Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    logits: bool = False,
    chunk_size: int = 1_000_000,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = False,
    check_events: int = DEFAULT_CHECK_EVENTS,
) -> EmulationResult:
    """Emulate every event of the file ``data`` and write the outputs to ``out``.

    ``data`` is read with :func:`hepfpga.datafiles.open_array` (``key``: the array, dataset
    or tree; ``columns``: the input columns, in order). A model with several inputs reads one
    array (npz) or dataset (HDF5) per input, named as the input, or as ``key`` maps them
    (``{input name: array}``). A project is first turned into an
    :class:`Emulator`, proven on the first ``check_events`` events of ``data``. Chunks of
    ``chunk_size`` events are processed on dask.distributed: the scheduler at ``scheduler``
    (workers must see ``data``'s path), else a LocalCluster of ``n_workers`` (default: one
    per core) that lives for this call: threads of this process by default (the engine is
    numpy and releases the GIL for its work; results need no serialising: about twice the
    throughput of worker processes here), processes with ``processes=True``. At most two
    chunks per worker are in flight, so memory stays bounded. With the C-simulation fallback
    the chunks run here, one by one.

    ``out`` (``.npz``, ``.h5``/``.hdf5``, ``.parquet``) receives ``outputs`` (one array per
    output, ``outputs_<layer>``, for a model with several) and ``logits`` when asked, and is
    written through a temporary file renamed into place.
    """
    start_time = time.perf_counter()
    if isinstance(emulator_or_project, Emulator):
        inputs = emulator_or_project.inputs
    else:
        inputs = _input_shapes(emulator_or_project)
    source = _open_sources(data, inputs, key, columns)
    out = Path(out)
    ArrayWriter.check_path(out)
    if isinstance(emulator_or_project, Emulator):
        emulator = emulator_or_project
    else:
        sample = None
        if check_events:
            try:
                raw = source.read(0, min(check_events, source.n_events))
                sample = validate_inputs(raw, inputs)
            except DataError as exc:
                raise DataError(f"{source.describe()}: {exc}") from exc
        emulator = Emulator.from_project(emulator_or_project, sample, check_events=check_events)
    names = output_names(emulator) + (("logits",) if logits else ())
    spans = list(_chunks(source.n_events, chunk_size))
    streaming_start = time.perf_counter()
    with ArrayWriter(out, source.n_events) as writer:
        if emulator.exact_engine and spans:
            streaming_start, streaming_end = _run_on_dask(
                emulator, source, spans, logits, writer, scheduler, n_workers, processes
            )
        else:
            for start, stop in spans:
                writer.write(start, _emulate_chunk(emulator, source, start, stop, logits))
            streaming_end = time.perf_counter()
    end_time = time.perf_counter()
    return EmulationResult(
        output_path=out,
        n_events=source.n_events,
        engine=emulator.engine,
        fallback_reason=emulator.fallback_reason,
        check=emulator.check,
        seconds=end_time - start_time,
        n_chunks=len(spans),
        arrays=names,
        streaming_seconds=streaming_end - streaming_start,
    )


def _run_on_dask(
    emulator: Emulator,
    source: Any,
    spans: list[tuple[int, int]],
    logits: bool,
    writer: Any,
    scheduler: str | None,
    n_workers: int | None,
    processes: bool,
) -> tuple[float, float]:
    """Emulate ``spans`` on dask, writing in order; returns when the workers were ready and
    when the last chunk was written."""
    with dask_client(
        scheduler,
        n_workers,
        extra="emulate",
        purpose="chunked emulation on dask",
        processes=processes,
    ) as client:
        n_slots = 2 * max(len(client.scheduler_info().get("workers", {})), 1)
        remote_emulator = client.scatter(emulator, broadcast=True)
        # import the engine on every worker before timing: start-up, not streaming
        client.run(importlib.import_module, "hepfpga.firmware.emulate")
        ready = time.perf_counter()
        pending: dict[int, Any] = {}
        done: dict[int, dict[str, np.ndarray]] = {}
        next_submit = next_write = 0
        while next_write < len(spans):
            while next_submit < len(spans) and len(pending) + len(done) < n_slots:
                start, stop = spans[next_submit]
                pending[next_submit] = client.submit(
                    _emulate_chunk, remote_emulator, source, start, stop, logits, pure=False
                )
                next_submit += 1
            future = pending.pop(next_write)
            done[next_write] = future.result()
            while next_write in done:
                writer.write(spans[next_write][0], done.pop(next_write))
                next_write += 1
        finished = time.perf_counter()
    return ready, finished
