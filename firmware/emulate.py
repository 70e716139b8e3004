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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.errors import ConversionError, DataError
from hepfpga.firmware.data import validate_events as _validate
from hepfpga.firmware.emulate_engine import Plan, UnsupportedLayerError, build_plan
from hepfpga.firmware.project import FirmwareProject

__all__ = [
    "EmulationFallbackWarning",
    "EmulationResult",
    "Emulator",
    "ExactnessCheck",
    "emulate_file",
    "validate_events",
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
    ) -> None:
        if plan is None and project is None:
            raise ConversionError("an Emulator needs a plan or a project to fall back to")
        self._plan = plan
        self._project = project
        self.logits_layer = logits_layer
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
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
        model = project.hls_model
        n_inputs, n_outputs = len(model.get_input_variables()), len(model.get_output_variables())
        if (n_inputs, n_outputs) != (1, 1):
            raise ConversionError(
                f"emulation reads one event array and writes one output array; this model has "
                f"{n_inputs} inputs and {n_outputs} outputs. Use hepfpga verify, or "
                "hepfpga.firmware.csim.predict_outputs(project, [x1, x2, ...]) for every output"
            )
        n_in = int(model.get_input_variables()[0].size())
        n_out = int(model.get_output_variables()[0].size())
        logits = project.logits_layer or None
        try:
            plan = build_plan(model)
        except UnsupportedLayerError as exc:
            return cls._fallback(project, logits, n_in, n_out, f"not reproduced: {exc}", None)
        if logits is not None and logits not in plan.layer_outputs:
            missing = f"the logits layer '{logits}' is not in the converted graph"
            return cls._fallback(project, logits, n_in, n_out, missing, None)
        emulator = cls(plan, project=project, logits_layer=logits, n_inputs=n_in, n_outputs=n_out)
        sample = emulator._check_sample(check_inputs, check_events, stress_events, seed)
        check, reason = emulator._prove(sample, n_stress=min(stress_events, len(sample)))
        if reason is not None:
            return cls._fallback(project, logits, n_in, n_out, reason, check)
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
        n_in: int,
        n_out: int,
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
            n_inputs=n_in,
            n_outputs=n_out,
            fallback_reason=reason,
            check=check,
        )

    def _check_sample(self, inputs: Any, n_events: int, n_stress: int, seed: int) -> np.ndarray:
        assert self._plan is not None
        parts = []
        if n_stress:
            t = self._plan.input_type
            rng = np.random.default_rng(seed)
            span = max(abs(t.min_value), abs(t.max_value))
            stress = rng.uniform(-1.25 * span, 1.25 * span, size=(n_stress, self.n_inputs))
            # a quarter on exact ties of the input grid, a few far beyond the range
            ties = slice(0, n_stress // 4)
            stress[ties] = (np.round(stress[ties] / t.lsb) + 0.5) * t.lsb
            stress[-max(n_stress // 20, 1) :] *= 8.0
            stress *= rng.uniform(0, 1, size=(n_stress, 1)) ** 2  # many near zero too
            parts.append(stress.astype(np.float32))
        if inputs is not None and n_events:
            data = self._events(inputs)[:n_events]
            parts.insert(0, data)
        return np.concatenate(parts) if parts else np.empty((0, self.n_inputs), np.float32)

    def _prove(self, sample: np.ndarray, n_stress: int) -> tuple[ExactnessCheck, str | None]:
        from hepfpga.firmware.csim import predict, predict_with_logits

        assert self._project is not None
        start = time.perf_counter()
        compared: tuple[str, ...] = ("outputs",)
        if self.logits_layer is not None:
            ref_out, ref_logits = predict_with_logits(self._project, sample, self.logits_layer)
            compared = ("outputs", "logits")
        else:
            ref_out = predict(self._project, sample)
        seconds = time.perf_counter() - start
        try:
            if self.logits_layer is not None:
                out, logits = self.predict_with_logits(sample)
                same = np.all(out == ref_out, axis=1) & np.all(logits == ref_logits, axis=1)
            else:
                same = np.all(self.predict(sample) == ref_out, axis=1)
        except UnsupportedLayerError as exc:
            check = ExactnessCheck(len(sample), n_stress, 0.0, compared, seconds)
            return check, f"not reproduced: {exc}"
        fraction = float(same.mean()) if len(same) else 0.0
        check = ExactnessCheck(len(sample), n_stress, fraction, compared, seconds)
        if not check.passed:
            first = int(np.argmin(same))
            return check, (
                f"the engine differs from the C simulation on {int((~same).sum())} of "
                f"{len(same)} check events (first: check event {first})"
            )
        return check, None

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
    def _events(self, x: Any, first_event: int = 0) -> np.ndarray:
        return validate_events(x, self.n_inputs, first_event)

    def _run(self, x: Any, logits: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Outputs of the events ``x``, and those of the layer ``logits`` (None: not read)."""
        events = self._events(x)
        if self._plan is None:
            return self._csim(events, logits)
        plan = self._plan
        out = np.empty((len(events), self.n_outputs), dtype=np.float64)
        out_frac = plan.type_of(plan.output).fractional
        logit_values = None
        if logits is not None:
            tensor = plan.layer_outputs[logits]
            logit_values = np.empty((len(events), plan.width_of(tensor)), dtype=np.float64)
        with _one_blas_thread():
            self._run_batches(plan, events, logits, out, out_frac, logit_values)
        return out, logit_values

    def _run_batches(
        self,
        plan: Plan,
        events: np.ndarray,
        logits: str | None,
        out: np.ndarray,
        out_frac: int,
        logit_values: np.ndarray | None,
    ) -> None:
        keep = (logits,) if logits is not None else ()
        if logits is not None:
            tensor = plan.layer_outputs[logits]
            logit_frac = plan.type_of(tensor).fractional
        for start in range(0, len(events), ENGINE_BATCH):
            stop = min(start + ENGINE_BATCH, len(events))
            try:
                raw = plan.run(events[start:stop], keep=keep)
            except UnsupportedLayerError as exc:
                # e.g. a table entry without a defined value was addressed: ask the C++
                batch_out, batch_logits = self._csim_batch(events[start:stop], logits, exc)
                out[start:stop] = batch_out
                if logit_values is not None:
                    logit_values[start:stop] = batch_logits
                continue
            out[start:stop] = np.ldexp(raw[plan.output].reshape(stop - start, -1), -out_frac)
            if logit_values is not None:
                values = raw[tensor].reshape(stop - start, -1)
                logit_values[start:stop] = np.ldexp(values, -logit_frac)

    def _csim(self, events: np.ndarray, logits: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        from hepfpga.firmware.csim import predict, predict_with_logits

        assert self._project is not None
        if logits is not None:
            return predict_with_logits(self._project, events, logits)
        return predict(self._project, events), None

    def _csim_batch(
        self, events: np.ndarray, logits: str | None, exc: UnsupportedLayerError
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if self._project is None:
            raise ConversionError(
                f"the fixed-point engine cannot compute these events ({exc}) and the C "
                "simulation is not available in this process; run without a cluster"
            ) from exc
        message = f"{len(events)} events computed by the C simulation: {exc}"
        warnings.warn(message, EmulationFallbackWarning, stacklevel=4)
        log.warning("%s", message)
        return self._csim(events, logits)

    def predict(self, x: Any) -> np.ndarray:
        """The firmware's outputs (events x outputs, float64), as ``csim.predict`` gives them."""
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
        return out, logits


def validate_events(x: Any, n_inputs: int, first_event: int = 0) -> np.ndarray:
    """``x`` as ``(n_events, n_inputs)`` float32, or a :class:`DataError` saying what is wrong
    (:func:`hepfpga.firmware.data.validate_events`, events flattened channels last)."""
    return _validate(x, n_inputs, name="inputs", first_event=first_event, flat=True)


# -- files -------------------------------------------------------------------------------------
def _chunks(n_events: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n_events, chunk_size):
        yield start, min(start + chunk_size, n_events)


def _emulate_chunk(
    emulator: Emulator, source: Any, start: int, stop: int, logits: bool
) -> dict[str, np.ndarray]:
    try:
        x = validate_events(source.read(start, stop), emulator.n_inputs, first_event=start)
    except DataError as exc:
        raise DataError(f"{source.describe()}: {exc}") from exc
    if logits:
        out, lg = emulator.predict_with_logits(x)
        return {"outputs": out, "logits": lg}
    return {"outputs": emulator.predict(x)}


def emulate_file(
    emulator_or_project: Emulator | FirmwareProject,
    data: str | Path,
    out: str | Path,
    *,
    key: str | None = None,
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
    or tree; ``columns``: the input columns, in order). A project is first turned into an
    :class:`Emulator`, proven on the first ``check_events`` events of ``data``. Chunks of
    ``chunk_size`` events are processed on dask.distributed: the scheduler at ``scheduler``
    (workers must see ``data``'s path), else a LocalCluster of ``n_workers`` (default: one
    per core) that lives for this call: threads of this process by default (the engine is
    numpy and releases the GIL for its work; results need no serialising: about twice the
    throughput of worker processes here), processes with ``processes=True``. At most two
    chunks per worker are in flight, so memory stays bounded. With the C-simulation fallback
    the chunks run here, one by one.

    ``out`` (``.npz``, ``.h5``/``.hdf5``, ``.parquet``) receives ``outputs`` (and ``logits``
    when asked) and is written through a temporary file renamed into place.
    """
    from hepfpga.datafiles import ArrayWriter, open_array

    start_time = time.perf_counter()
    source = open_array(data, key=key, columns=columns)
    out = Path(out)
    ArrayWriter.check_path(out)
    if isinstance(emulator_or_project, Emulator):
        n_inputs = emulator_or_project.n_inputs
    else:
        n_inputs = int(emulator_or_project.hls_model.get_input_variables()[0].size())
    if source.n_features != n_inputs:
        raise DataError(
            f"{source.describe()} has {source.n_features} inputs per event; the model takes "
            f"{n_inputs}" + (f" (columns: {', '.join(source.columns)})" if source.columns else "")
        )
    if isinstance(emulator_or_project, Emulator):
        emulator = emulator_or_project
    else:
        sample = None
        if check_events:
            try:
                raw = source.read(0, min(check_events, source.n_events))
                sample = validate_events(raw, n_inputs)
            except DataError as exc:
                raise DataError(f"{source.describe()}: {exc}") from exc
        emulator = Emulator.from_project(emulator_or_project, sample, check_events=check_events)
    names = ("outputs", "logits") if logits else ("outputs",)
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
    from hepfpga._optional import require

    distributed = require("distributed", "emulate", "chunked emulation on dask")
    cluster = None
    quiet = logging.getLogger("distributed")
    level = quiet.level
    if scheduler is None:
        # a cluster for this call only: no dashboard, and its start/stop chatter kept out
        quiet.setLevel(logging.WARNING)
        cluster = distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            worker_dashboard_address=None,
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.WARNING,
        )
    client = distributed.Client(scheduler or cluster, set_as_default=False)
    try:
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
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        quiet.setLevel(level)
    return ready, finished
