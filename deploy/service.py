"""The inference service: one place for everything a request goes through, whatever protocol
carried it.

:class:`InferenceService` owns the loaded models, draining, the count of requests in flight,
request validation, statistics, system shared memory and the model repository API. Front ends
(:mod:`hepfpga.deploy.frontends`: HTTP, gRPC) only decode requests into
:class:`~hepfpga.deploy.protocol.TensorInput` / :class:`~hepfpga.deploy.protocol.OutputRequest`,
call :meth:`InferenceService.infer`, and encode the answer or map the
:class:`~hepfpga.deploy.protocol.ErrorCode` of a :class:`~hepfpga.deploy.protocol.RequestError`
to their own status.

Model control modes (Triton's ``--model-control-mode``): ``none`` serves what was given at
start and refuses load / unload; ``explicit`` serves a model repository whose models are
loaded and unloaded through the repository API while serving. A load reads the model folder
afresh and swaps the new versions in between two requests; the versions it replaces, and
the versions an unload removes, first run every request already queued for them (drain),
then stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple, get_args

import numpy as np

from hepfpga._version import __version__
from hepfpga.deploy.model_spec import ModelVersion, TensorSpec
from hepfpga.deploy.protocol import (
    ErrorCode,
    OutputRequest,
    RegionRef,
    RequestError,
    TensorInput,
)
from hepfpga.deploy.serve_models import (
    DEFAULT_INLINE_MAX_US,
    LoadedModel,
    ModelRegistry,
    load_models,
    onnxruntime_reason,
)
from hepfpga.deploy.shm import SharedMemoryRegistry
from hepfpga.deploy.triton_repo import repository_model, repository_model_names
from hepfpga.errors import HepfpgaError

__all__ = ["MODEL_CONTROL_MODES", "Inference", "InferenceService", "ModelControl", "OutputTensor"]

ModelControl = Literal["none", "explicit"]
MODEL_CONTROL_MODES: tuple[ModelControl, ...] = get_args(ModelControl)

_EXTENSIONS = (
    "binary_tensor_data",
    "model_configuration",
    "model_repository",
    "statistics",
    "parameters",
    "system_shared_memory",
)


class OutputTensor(NamedTuple):
    """One output of an answer: its spec, its values, and the shared memory region it was
    written to (None: the front end sends ``array``). A tuple: made for every answer."""

    spec: TensorSpec
    array: np.ndarray
    region: RegionRef | None


class Inference:
    """A request accepted by the service: ``future`` resolves when the model has run;
    :meth:`result` then gives the outputs asked for (or raises :class:`RequestError`)."""

    __slots__ = ("future", "model", "outputs", "shm")

    def __init__(
        self,
        model: LoadedModel,
        outputs: list[tuple[int, RegionRef | None]],
        future: asyncio.Future[list[np.ndarray]],
        shm: SharedMemoryRegistry,
    ) -> None:
        self.model = model
        self.outputs = outputs
        self.future = future
        self.shm = shm

    def result(self) -> list[OutputTensor]:
        future = self.future
        if future.cancelled():
            raise RequestError(ErrorCode.UNAVAILABLE, "request cancelled")
        exc = future.exception()
        if exc is not None:
            raise RequestError(
                ErrorCode.INTERNAL,
                f"onnxruntime failed on model '{self.model.spec.name}' version "
                f"{self.model.version}: {onnxruntime_reason(exc)}",
            )
        arrays = future.result()
        specs = self.model.spec.outputs
        out = []
        for index, region in self.outputs:
            array = arrays[index]
            if region is not None:
                self.shm.write(region, array, f"output '{specs[index].name}'")
            out.append(OutputTensor(specs[index], array, region))
        return out


class InferenceService:
    """Models, draining, in-flight counting, validation, statistics, shared memory and the
    repository API, shared by every front end."""

    def __init__(
        self,
        models: Iterable[ModelVersion] | ModelRegistry = (),
        *,
        repository: Path | None = None,
        model_control: ModelControl = "none",
        inline_max_us: float = DEFAULT_INLINE_MAX_US,
    ) -> None:
        if model_control not in MODEL_CONTROL_MODES:
            raise HepfpgaError(
                f"unknown model control mode '{model_control}'; accepted: "
                + ", ".join(MODEL_CONTROL_MODES)
            )
        self.registry = (
            models if isinstance(models, ModelRegistry) else ModelRegistry(models, inline_max_us)
        )
        self.repository = Path(repository) if repository is not None else None
        self.model_control = model_control
        self.shm = SharedMemoryRegistry()
        self.draining = False
        self.in_flight = 0
        self._repository_lock = asyncio.Lock()

    # -- server-wide ----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return not self.draining

    def metadata(self) -> dict[str, object]:
        return {"name": "hepfpga", "version": __version__, "extensions": list(_EXTENSIONS)}

    def model(self, name: str, version: str = "") -> LoadedModel:
        """The loaded model (``NOT_FOUND`` when it is not served)."""
        return self.registry.get(name, version)

    def model_ready(self, name: str, version: str = "") -> bool:
        try:
            self.registry.get(name, version)
        except RequestError:
            return False
        return True

    def statistics(self, name: str = "", version: str = "") -> list[dict[str, object]]:
        return self.registry.stats(name, version)

    # -- inference ------------------------------------------------------------------------

    def infer(
        self,
        name: str,
        version: str,
        inputs: Sequence[TensorInput],
        request_id: str = "",
        outputs: Sequence[OutputRequest] | None = None,
        received_ns: int | None = None,
        may_run_on_loop: bool = False,
    ) -> Inference:
        """Validate a request and queue it on its model; raises :class:`RequestError` when
        it is refused (counted in the model's statistics). ``may_run_on_loop``: a front end
        whose loop reads several requests per iteration lets a cheap batch of them run on the
        loop (:mod:`hepfpga.deploy.batching`)."""
        received = received_ns if received_ns is not None else time.perf_counter_ns()
        model = self.registry.get(name, version)
        try:
            if self.draining:
                raise RequestError(
                    ErrorCode.UNAVAILABLE, "Server is shutting down: no new inference requests"
                )
            for t in inputs:
                if t.region is not None:
                    inputs = [self._from_shm(t) if t.region else t for t in inputs]
                    break
            arrays, batch = model.prepare(inputs, request_id)
            selected = model.select_outputs(outputs)
            if outputs:
                self._check_output_regions(model, selected, batch)
            future = model.submit(arrays, batch, received, may_run_on_loop)
        except RequestError as exc:
            model.stats.record_failure(
                "REJECTED" if exc.code is ErrorCode.UNAVAILABLE else "OTHER",
                time.perf_counter_ns() - received,
            )
            raise
        self.in_flight += 1
        future.add_done_callback(self._finished)
        return Inference(model, selected, future, self.shm)

    def _finished(self, future: asyncio.Future[list[np.ndarray]]) -> None:
        self.in_flight -= 1
        if not future.cancelled():
            # marks a model failure as seen: a client that went away before its answer
            # would otherwise leave asyncio to log "exception was never retrieved"
            future.exception()

    def _check_output_regions(
        self, model: LoadedModel, selected: list[tuple[int, RegionRef | None]], batch: int
    ) -> None:
        """Refuse, before the model runs, an output region too small for a fixed-size
        output (a variable-size one is checked when it is written)."""
        mbs = model.spec.max_batch_size
        for index, region in selected:
            if region is None:
                continue
            spec = model.spec.outputs[index]
            self.shm.check(region, f"output '{spec.name}'")
            if any(d < 0 for d in spec.dims):
                continue
            needed = int(np.prod(spec.dims, dtype=np.int64)) * spec.dtype.itemsize
            needed *= batch if mbs > 0 else 1
            if region.byte_size < needed:
                raise RequestError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"shared memory size specified with the request for output '{spec.name}' "
                    f"({region.byte_size} bytes) should be at least {needed} bytes to hold "
                    "the results",
                )

    def _from_shm(self, t: TensorInput) -> TensorInput:
        assert t.region is not None
        data = self.shm.read(t.region, f"input '{t.name}'")
        return TensorInput(t.name, t.datatype, t.shape, data)

    # -- model repository API -------------------------------------------------------------

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """Triton's repository index: every loaded version (``READY``) and, in explicit
        mode, every other model of the repository (``UNAVAILABLE``)."""
        entries = self.registry.index()
        if (
            ready_only
            or self.model_control != "explicit"
            or self.repository is None
            or not self.repository.is_dir()
        ):
            return entries
        loaded = {e["name"] for e in entries}
        for name in repository_model_names(self.repository):
            if name not in loaded:
                entries.append({"name": name, "state": "UNAVAILABLE", "reason": "unloaded"})
        return entries

    def _check_explicit(self, action: str, name: str) -> Path:
        if self.model_control != "explicit" or self.repository is None:
            raise RequestError(
                ErrorCode.UNIMPLEMENTED,
                f"failed to {action} '{name}': explicit model load / unload is not allowed; "
                "start the server with --model-control-mode explicit on a model repository",
            )
        if self.draining:
            raise RequestError(ErrorCode.UNAVAILABLE, "Server is shutting down")
        return self.repository

    async def load(self, name: str) -> None:
        """(Re)load model ``name`` from the repository; the versions it replaces drain."""
        repository = self._check_explicit("load", name)
        loop = asyncio.get_running_loop()
        async with self._repository_lock:
            try:
                loaded = await loop.run_in_executor(
                    None,
                    lambda: load_models(
                        repository_model(repository, name), self.registry.inline_max_us
                    ),
                )
            except (HepfpgaError, OSError) as exc:
                # the model is refused; the versions already served stay as they were
                reason = exc if isinstance(exc, HepfpgaError) else f"{exc.strerror}: {exc.filename}"
                raise RequestError(
                    ErrorCode.INVALID_ARGUMENT, f"failed to load '{name}': {reason}"
                ) from None
            old = self.registry.replace(name, loaded)
            await self._drain(old)

    async def unload(self, name: str) -> None:
        """Stop serving model ``name`` once the requests queued for it have run."""
        self._check_explicit("unload", name)
        async with self._repository_lock:
            if name not in {m.spec.name for m in self.registry}:
                if name in self.registry.unloaded:
                    return  # Triton: unloading an unloaded model succeeds
                raise RequestError(
                    ErrorCode.NOT_FOUND, f"failed to unload '{name}': model is not loaded"
                )
            await self._drain(self.registry.remove(name))

    @staticmethod
    async def _drain(models: list[LoadedModel]) -> None:
        if models:
            loop = asyncio.get_running_loop()

            def close_all() -> None:
                for m in models:
                    m.close()

            await loop.run_in_executor(None, close_all)

    def close(self) -> None:
        """Run what is queued, stop every instance thread, forget the shared memory."""
        self.registry.close()
        self.shm.close()
