"""Loaded models: onnxruntime sessions per instance, request validation as Triton does it.

Validation messages follow Triton 2.51; errors carry protocol-neutral codes
(:class:`~hepfpga.deploy.protocol.ErrorCode`: ``NOT_FOUND`` for an unknown model,
``INVALID_ARGUMENT`` for an unknown or missing input, a wrong datatype or shape, or a batch
over ``max_batch_size``) that each front end maps to its own status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

import numpy as np

from hepfpga.deploy.batching import InferenceRequest, Scheduler, onnxruntime_reason
from hepfpga.deploy.metrics import ModelStats
from hepfpga.deploy.model_spec import ModelSpec, ModelVersion
from hepfpga.deploy.protocol import ErrorCode, OutputRequest, RegionRef, RequestError, TensorInput
from hepfpga.errors import ConfigError, ModelFileError

__all__ = [
    "LoadedModel",
    "ModelRegistry",
    "RequestError",
    "TensorInput",
    "load_models",
    "make_session",
    "measure_inline_batch",
    "onnxruntime_reason",
]

log = logging.getLogger("hepfpga.serve")

INVALID = ErrorCode.INVALID_ARGUMENT
NOT_FOUND = ErrorCode.NOT_FOUND
UNAVAILABLE = ErrorCode.UNAVAILABLE

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

#: Default on-loop budget in microseconds (``hepfpga serve --inline-max-us``): a lone request
#: whose model call takes at most this long may run on the event loop instead of an instance
#: thread (see :mod:`hepfpga.deploy.batching`). Off by default: it shortens one client's
#: batch-1 round trip, but costs throughput when many clients keep the server busy (measured
#: in docs/serving.md); about 100 suits a latency-bound client and a small model.
DEFAULT_INLINE_MAX_US = 0.0
_INLINE_RUNS = 5  # timed calls per batch size; the median is compared with the budget


def make_session(path: object, kind: str, intra_op_threads: int) -> tuple[object, str]:
    """An onnxruntime session and the provider really in use.

    ``KIND_AUTO`` asks for CUDA when onnxruntime offers it and falls back to CPU;
    ``KIND_GPU`` refuses to run on CPU. onnxruntime-gpu silently drops a CUDA provider that
    cannot load, so the provider is read back from ``get_providers()``. A model onnxruntime
    refuses (an unknown operator, an invalid graph, an unreadable file) is a
    :class:`ModelFileError` naming the file and onnxruntime's reason in one line.
    """
    # deferred: onnxruntime loads slowly
    import onnxruntime as ort

    available = ort.get_available_providers()
    if kind == "KIND_GPU" and CUDA not in available:
        raise ConfigError(
            f"instance_group kind KIND_GPU needs onnxruntime's {CUDA}; available: {available}"
        )
    wanted = [CPU] if kind == "KIND_CPU" or CUDA not in available else [CUDA, CPU]
    options = ort.SessionOptions()
    # fatal only: errors reach the client and the log as one line each (onnxruntime_reason)
    options.log_severity_level = 4
    # Several requests are in flight at once: one thread per session keeps the instance
    # threads, the event loop and onnxruntime's pool from fighting over the cores.
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    if intra_op_threads != 0:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as exc:  # onnxruntime's own exception classes derive from Exception only
        raise ModelFileError(
            f"onnxruntime cannot load {path}: {onnxruntime_reason(exc)}; accepted: a model "
            "onnxruntime runs (check it with onnx.checker and onnxruntime.InferenceSession)"
        ) from None
    used = session.get_providers()[0]
    if kind == "KIND_GPU" and used != CUDA:
        raise ConfigError(f"{CUDA} did not load for {path} (onnxruntime fell back to {used})")
    if wanted[0] == CUDA and used != CUDA:
        log.warning("%s: %s did not load, running on %s", path, CUDA, used)
    return session, used


class LoadedModel:
    """One model version: its sessions, scheduler and statistics."""

    def __init__(self, model: ModelVersion, inline_max_us: float = DEFAULT_INLINE_MAX_US) -> None:
        self.spec: ModelSpec = model.spec
        self.version = str(model.version)
        self.path = model.path
        self.class_names = model.class_names
        self.stats = ModelStats(self.spec.name, self.version)
        sessions = [
            make_session(model.path, self.spec.instance_kind, self.spec.intra_op_threads)
            for _ in range(self.spec.instance_count)
        ]
        self.provider = sessions[0][1]
        self._input_names = [t.name for t in self.spec.inputs]
        self._output_names = [t.name for t in self.spec.outputs]
        self._by_name = {t.name: (i, t) for i, t in enumerate(self.spec.inputs)}
        self._output_index = {name: i for i, name in enumerate(self._output_names)}
        runners = [self._runner(s) for s, _ in sessions]
        #: largest batch run on the event loop when every instance is idle (0: never)
        self.inline_batch = measure_inline_batch(runners, self.spec, inline_max_us)
        self.scheduler = Scheduler(
            runners,
            max_batch_size=self.spec.max_batch_size,
            dynamic_batching=self.spec.dynamic_batching,
            stats=self.stats,
            name=f"{self.spec.name}-{self.version}",
            inline_batch=self.inline_batch,
        )

    def _runner(self, session: object):  # type: ignore[no-untyped-def]
        names = self._input_names
        outputs = self._output_names
        run = session.run  # type: ignore[attr-defined]

        def runner(arrays: list[np.ndarray]) -> list[np.ndarray]:
            return run(outputs, dict(zip(names, arrays, strict=False)))

        return runner

    # -- metadata -------------------------------------------------------------------------

    def metadata(self) -> dict[str, object]:
        mbs = self.spec.max_batch_size
        return {
            "name": self.spec.name,
            "versions": [self.version],
            "platform": self.spec.platform,
            "inputs": [t.to_json(mbs) for t in self.spec.inputs],
            "outputs": [t.to_json(mbs) for t in self.spec.outputs],
        }

    def config_json(self) -> dict[str, object]:
        """The configuration as Triton's HTTP ``/config`` returns it (JSON of ModelConfig)."""
        spec = self.spec
        config: dict[str, object] = {
            "name": spec.name,
            "platform": spec.platform,
            "backend": "onnxruntime",
            "version_policy": (
                {"all": {}}
                if spec.version_policy == "all"
                else {"specific": {"versions": list(spec.versions)}}
                if spec.version_policy == "specific"
                else {"latest": {"num_versions": spec.latest_versions}}
            ),
            "max_batch_size": spec.max_batch_size,
            "input": [
                {"name": t.name, "data_type": f"TYPE_{t.datatype}", "dims": list(t.dims)}
                for t in spec.inputs
            ],
            "output": [
                {
                    "name": t.name,
                    "data_type": f"TYPE_{t.datatype}",
                    "dims": list(t.dims),
                    "label_filename": (spec.label_filename or "") if i == 0 else "",
                }
                for i, t in enumerate(spec.outputs)
            ],
            "instance_group": [
                {
                    "name": spec.name,
                    "kind": "KIND_GPU" if self.provider == CUDA else "KIND_CPU",
                    "count": spec.instance_count,
                }
            ],
            "default_model_filename": spec.default_model_filename,
            "parameters": {
                "intra_op_thread_count": {"string_value": str(spec.intra_op_threads)},
                **{k: {"string_value": v} for k, v in spec.parameters.items()},
            },
        }
        if spec.dynamic_batching is not None:
            config["dynamic_batching"] = {
                "preferred_batch_size": list(spec.dynamic_batching.preferred_batch_sizes),
                "max_queue_delay_microseconds": spec.dynamic_batching.max_queue_delay_us,
            }
        return config

    # -- inference ------------------------------------------------------------------------

    def prepare(
        self, inputs: Sequence[TensorInput], request_id: str = ""
    ) -> tuple[list[np.ndarray], int]:
        """Validate and decode the inputs: arrays in the model's input order and the batch
        size. Raises :class:`RequestError` (``INVALID_ARGUMENT``) with Triton's message."""
        rid = f"[request id: {request_id or '<id_unknown>'}] "
        name = self.spec.name
        mbs = self.spec.max_batch_size
        if len(inputs) == len(self._input_names) == 1 and inputs[0].name == self._input_names[0]:
            ordered: list[TensorInput | None] = [inputs[0]]
        else:
            ordered = [None] * len(self._input_names)
            for t in inputs:
                slot = self._by_name.get(t.name)
                if slot is None:
                    raise RequestError(
                        INVALID, f"{rid}unexpected inference input '{t.name}' for model '{name}'"
                    )
                ordered[slot[0]] = t
            if any(t is None for t in ordered):
                missing = [n for n, t in zip(self._input_names, ordered, strict=False) if t is None]
                raise RequestError(
                    INVALID,
                    f"{rid}expected {len(self._input_names)} inputs but got {len(inputs)} inputs "
                    f"for model '{name}'. Got input(s) {[t.name for t in inputs]}, but missing "
                    f"required input(s) {missing}. Please provide all required input(s).",
                )
        arrays = []
        batch = 0
        for slot_input, spec in zip(ordered, self.spec.inputs, strict=False):
            if slot_input is None:  # never: every slot was filled or refused above
                continue
            t = slot_input
            if t.datatype != spec.datatype:
                raise RequestError(
                    INVALID,
                    f"{rid}unexpected datatype TYPE_{t.datatype} for inference input "
                    f"'{t.name}', expecting TYPE_{spec.datatype}",
                )
            shape = t.shape
            dims = shape[1:] if mbs > 0 else shape
            if (
                (mbs > 0 and len(shape) == 0)
                or len(dims) != len(spec.dims)
                or any(d < 0 or (s != -1 and d != s) for d, s in zip(dims, spec.dims, strict=False))
            ):
                full = [-1, *spec.dims] if mbs > 0 else list(spec.dims)
                raise RequestError(
                    INVALID,
                    f"{rid}unexpected shape for input '{t.name}' for model '{name}'. Expected "
                    f"{_dims(full)}, got {_dims(shape)}. "
                    + (
                        "NOTE: Setting a non-zero max_batch_size in the model config requires "
                        "a batch dimension to be prepended to each input shape. If you want to "
                        "specify the full shape including the batch dim in your input dims "
                        "config, try setting max_batch_size to zero. See the model "
                        "configuration docs for more info on max_batch_size."
                        if mbs > 0
                        else ""
                    ),
                )
            if mbs > 0:
                if shape[0] > mbs:
                    raise RequestError(
                        INVALID,
                        f"{rid}inference request batch-size must be <= {mbs} for '{name}'",
                    )
                if batch and shape[0] != batch:
                    raise RequestError(
                        INVALID,
                        f"{rid}input '{t.name}' batch size {shape[0]} does not match other "
                        f"inputs' batch size {batch} for model '{name}'",
                    )
                batch = shape[0]
            arrays.append(_decode(t, spec.dtype, rid))
        return arrays, (batch if mbs > 0 else 1)

    def select_outputs(
        self, requested: Sequence[OutputRequest] | None
    ) -> list[tuple[int, RegionRef | None]]:
        """(index among the model's outputs, shared memory region or None) of each output
        asked for, in the order asked; every output when none is named."""
        if not requested:
            return [(i, None) for i in range(len(self._output_names))]
        out = []
        for item in requested:
            index = self._output_index.get(item.name)  # type: ignore[arg-type]
            if index is None:
                raise RequestError(
                    INVALID,
                    f"unexpected inference output '{item.name}' for model '{self.spec.name}'",
                )
            out.append((index, item.region))
        return out

    def submit(
        self, arrays: list[np.ndarray], batch: int, received_ns: int, may_run_on_loop: bool
    ) -> asyncio.Future[list[np.ndarray]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[np.ndarray]] = loop.create_future()
        request = InferenceRequest(
            arrays, batch, future, loop, received_ns, may_run_on_loop=may_run_on_loop
        )
        try:
            self.scheduler.submit(request)
        except RuntimeError as exc:
            raise RequestError(
                UNAVAILABLE, f"model '{self.spec.name}' is unloading: {exc}"
            ) from exc
        return future

    def close(self) -> None:
        self.scheduler.close()


def measure_inline_batch(runners: Sequence[object], spec: ModelSpec, budget_us: float) -> int:
    """The largest batch size (1, 2, 4, ... up to ``max_batch_size``) whose model call takes
    at most ``budget_us`` microseconds (median of 5 calls on zeros, after one call per session
    that warms it, and one more per size that stops the search when it is over 10 times the
    budget), or 0: none does, ``budget_us`` is 0, or an input has a variable dimension (no
    input to time with). A model without a batch dimension counts as
    batch 1. Measured once at load: a machine busy at that moment gives a smaller size.
    """
    if budget_us <= 0 or any(d < 0 for t in spec.inputs for d in t.dims):
        return 0
    mbs = spec.max_batch_size

    def zeros(n: int) -> list[np.ndarray]:
        return [np.zeros((n, *t.dims) if mbs > 0 else t.dims, t.dtype) for t in spec.inputs]

    try:
        for runner in runners:
            runner(zeros(1))  # type: ignore[operator]
        best = 0
        n = 1
        while n <= max(mbs, 1):
            arrays = zeros(n)
            runner = runners[0]
            start = time.perf_counter_ns()
            runner(arrays)  # type: ignore[operator]
            if time.perf_counter_ns() - start > 10 * budget_us * 1e3:
                break  # far over: a costly model pays only this call at load
            times = []
            for _ in range(_INLINE_RUNS):
                start = time.perf_counter_ns()
                runner(arrays)  # type: ignore[operator]
                times.append(time.perf_counter_ns() - start)
            if float(np.median(times)) > budget_us * 1e3:
                break
            best = n
            n *= 2
    except Exception as exc:  # a model that refuses zeros: it always runs on its threads
        log.info("%s: no on-loop runs (zeros as input failed: %s)", spec.name, exc)
        return 0
    return best


def _dims(shape: Iterable[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _decode(t: TensorInput, dtype: np.dtype, rid: str) -> np.ndarray:
    n = 1
    for d in t.shape:
        n *= d
    data = t.data
    if data is None:
        raise RequestError(INVALID, f"{rid}input '{t.name}' has no data")
    if isinstance(data, (bytes, bytearray, memoryview)):
        expected = n * dtype.itemsize
        if len(data) != expected:
            raise RequestError(
                INVALID,
                f"{rid}unexpected total byte size {len(data)} for input '{t.name}', "
                f"expecting {expected}",
            )
        return np.frombuffer(data, dtype=dtype).reshape(t.shape)
    try:
        array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: 10**400
        raise RequestError(
            INVALID, f"{rid}unable to parse 'data' of input '{t.name}' as {dtype.name}: {exc}"
        ) from exc
    if array.size != n:
        raise RequestError(
            INVALID,
            f"{rid}unexpected number of elements {array.size} for input '{t.name}', expecting {n}",
        )
    return array.reshape(t.shape)


class ModelRegistry:
    """Every loaded model version, found by name and optional version.

    Models can be replaced or removed while serving (the repository API); lookups happen on
    the event loop, so a swap is one dictionary assignment between two requests.
    """

    def __init__(
        self, models: Iterable[ModelVersion] = (), inline_max_us: float = DEFAULT_INLINE_MAX_US
    ) -> None:
        self.inline_max_us = inline_max_us
        self._models: dict[str, dict[str, LoadedModel]] = {}
        self._latest: dict[str, LoadedModel] = {}
        #: models unloaded through the repository API (Triton answers them differently)
        self.unloaded: set[str] = set()
        by_name: dict[str, list[LoadedModel]] = {}
        for lm in load_models(models, inline_max_us):
            by_name.setdefault(lm.spec.name, []).append(lm)
        for name, loaded in by_name.items():
            self.replace(name, loaded)

    def replace(self, name: str, loaded: Sequence[LoadedModel]) -> list[LoadedModel]:
        """Serve ``loaded`` as the versions of ``name``; returns the versions they replace
        (still running what they queued: close them to drain)."""
        old = list(self._models.get(name, {}).values())
        versions = {lm.version: lm for lm in loaded}
        self._models[name] = versions
        self._latest[name] = versions[max(versions, key=int)]
        self.unloaded.discard(name)
        return old

    def remove(self, name: str) -> list[LoadedModel]:
        """Stop serving ``name``; returns its versions (close them to drain)."""
        self._latest.pop(name, None)
        old = list(self._models.pop(name, {}).values())
        self.unloaded.add(name)
        return old

    def _unknown(self, name: str) -> RequestError:
        if name in self.unloaded:
            return RequestError(
                NOT_FOUND, f"Request for unknown model: '{name}' has no available versions"
            )
        return RequestError(NOT_FOUND, f"Request for unknown model: '{name}' is not found")

    def get(self, name: str, version: str = "") -> LoadedModel:
        if not version:
            model = self._latest.get(name)
            if model is None:
                raise self._unknown(name)
            return model
        model = self._models.get(name, {}).get(version)
        if model is None:
            if name not in self._models:
                raise self._unknown(name)
            raise RequestError(
                NOT_FOUND,
                f"Request for unknown model: '{name}' version {version} is not found",
            )
        return model

    def __iter__(self):  # type: ignore[no-untyped-def]
        for versions in list(self._models.values()):
            yield from list(versions.values())

    def stats(self, name: str = "", version: str = "") -> list[dict[str, object]]:
        if name:
            if version:
                return [self.get(name, version).stats.to_json()]
            self.get(name)
            return [m.stats.to_json() for m in self._models[name].values()]
        return [m.stats.to_json() for m in self]

    def index(self) -> list[dict[str, str]]:
        return [{"name": m.spec.name, "version": m.version, "state": "READY"} for m in self]

    def close(self) -> None:
        for m in self:
            m.close()


def load_models(
    models: Iterable[ModelVersion], inline_max_us: float = DEFAULT_INLINE_MAX_US
) -> list[LoadedModel]:
    """A :class:`LoadedModel` (sessions and instance threads) for each version; on an error
    the ones already made are closed."""
    loaded: list[LoadedModel] = []
    try:
        for m in models:
            loaded.append(LoadedModel(m, inline_max_us))
    except BaseException:
        for lm in loaded:
            lm.close()
        raise
    return loaded
