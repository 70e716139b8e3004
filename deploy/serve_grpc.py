"""The gRPC front end: ``inference.GRPCInferenceService`` on ``grpc.aio``.

The service and messages are the ones ``tritonclient`` ships (Triton 2.51). Tensors travel
as ``raw_input_contents`` / ``raw_output_contents`` (typed ``contents`` are accepted on input)
or in system shared memory (the ``shared_memory_region`` parameters). A
:class:`~hepfpga.deploy.protocol.RequestError`'s code becomes the ``grpc.StatusCode`` of the
same name. ``ModelStreamInfer`` answers each request of the stream in turn; CUDA shared
memory, trace and log settings are ``UNIMPLEMENTED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga._optional import require
from hepfpga.deploy.frontends import ListenerBase, bind_error, register_front_end
from hepfpga.deploy.protocol import ErrorCode, OutputRequest, RegionRef, RequestError, TensorInput

if TYPE_CHECKING:
    from hepfpga.deploy.service import InferenceService

__all__ = ["GrpcFrontEnd", "make_servicer"]

_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


@register_front_end("grpc")
class GrpcFrontEnd(ListenerBase):
    """The gRPC listener over an :class:`InferenceService`."""

    name = "grpc"
    _server: Any = None
    _stopping: Any = None

    async def start(self) -> int:
        grpc = require("grpc", "serve", "the gRPC server")
        pb_grpc = require("tritonclient.grpc.service_pb2_grpc", "serve", "the gRPC server")
        limit = self.options.max_request_bytes
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
                # connections with no call in flight are closed after the idle timeout
                ("grpc.max_connection_idle_ms", int(self.options.idle_timeout_s * 1000)),
            ]
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(
            make_servicer(self.service), self._server
        )
        try:
            port = self._server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError:  # grpc says only "Failed to bind to address"
            port = 0
        if not port:
            raise bind_error("gRPC", self.host, self.port, "address already in use")
        await self._server.start()
        return int(port)

    def close_listener(self, grace_s: float) -> None:
        # grpc.aio stops accepting at once and lets calls in flight finish within the grace
        if self._server is not None and self._stopping is None:
            self._stopping = asyncio.ensure_future(self._server.stop(grace_s))

    @property
    def idle(self) -> bool:
        return True  # calls in flight are counted by the service

    async def stop(self, timeout_s: float) -> None:
        if self._server is not None:
            if self._stopping is None:
                self._stopping = asyncio.ensure_future(self._server.stop(timeout_s))
            await self._stopping


def _param(parameters: Any, key: str, kind: str) -> Any:
    return getattr(parameters[key], kind) if key in parameters else None


def _region(parameters: Any, what: str) -> RegionRef | None:
    """The shared memory region named in a tensor's parameters (Triton's names), if any."""
    if "shared_memory_region" not in parameters:
        return None
    region = _param(parameters, "shared_memory_region", "string_param")
    size = _param(parameters, "shared_memory_byte_size", "int64_param")
    offset = _param(parameters, "shared_memory_offset", "int64_param") or 0
    if not region or size is None or size < 0 or offset < 0:
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            f"{what}: shared_memory_region needs a name and non-negative "
            "shared_memory_byte_size and shared_memory_offset",
        )
    return RegionRef(region, size, offset)


def decode_inputs(request: Any) -> list[TensorInput]:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise RequestError(
            ErrorCode.INVALID_ARGUMENT,
            f"expected {len(request.inputs)} raw input contents, got {len(raw)}",
        )
    inputs = []
    for i, t in enumerate(request.inputs):
        region = _region(t.parameters, f"input '{t.name}'") if t.parameters else None
        if region is not None:
            data: Any = None
        elif raw:
            data = raw[i]
        else:
            field = _CONTENTS.get(t.datatype)
            data = list(getattr(t.contents, field)) if field else None
        inputs.append(TensorInput(t.name, t.datatype, list(t.shape), data, region))
    return inputs


def decode_outputs(request: Any) -> list[OutputRequest] | None:
    if not request.outputs:
        return None
    return [
        OutputRequest(o.name, _region(o.parameters, f"output '{o.name}'") if o.parameters else None)
        for o in request.outputs
    ]


def make_servicer(service: InferenceService) -> Any:
    """The servicer object for ``add_GRPCInferenceServiceServicer_to_server``."""
    grpc = require("grpc", "serve", "the gRPC server")
    pb = require("tritonclient.grpc.service_pb2", "serve", "the gRPC server")
    pb_grpc = require("tritonclient.grpc.service_pb2_grpc", "serve", "the gRPC server")
    json_format = require("google.protobuf.json_format", "serve", "the gRPC server")
    mc = require("tritonclient.grpc.model_config_pb2", "serve", "the gRPC server")
    codes = {code: getattr(grpc.StatusCode, code.name) for code in ErrorCode}

    def tensor_meta(items: Any) -> list[Any]:
        return [
            pb.ModelMetadataResponse.TensorMetadata(
                name=t["name"], datatype=t["datatype"], shape=t["shape"]
            )
            for t in items
        ]

    async def run(request: Any) -> Any:
        received = time.perf_counter_ns()
        inference = service.infer(
            request.model_name,
            request.model_version,
            decode_inputs(request),
            request.id,
            decode_outputs(request),
            received,
        )
        with contextlib.suppress(Exception):  # the model's failure: result() reports it
            await inference.future
        tensors = inference.result()
        model = inference.model
        response = pb.ModelInferResponse(
            model_name=model.spec.name, model_version=model.version, id=request.id
        )
        for t in tensors:
            response.outputs.add(name=t.spec.name, datatype=t.spec.datatype, shape=t.array.shape)
            # raw contents are matched to outputs by position (C++ clients index them): an
            # output written to shared memory has empty contents
            response.raw_output_contents.append(
                np.ascontiguousarray(t.array).tobytes() if t.region is None else b""
            )
        return response

    async def call(context: Any, fn: Any, *args: Any) -> Any:
        try:
            return await fn(*args)
        except RequestError as exc:
            await context.abort(codes[exc.code], exc.message)

    class Servicer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc,name-defined]
        async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            return pb.ServerLiveResponse(live=True)

        async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            return pb.ServerReadyResponse(ready=service.ready)

        async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            return pb.ModelReadyResponse(ready=service.model_ready(request.name, request.version))

        async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            meta = service.metadata()
            return pb.ServerMetadataResponse(
                name=meta["name"], version=meta["version"], extensions=meta["extensions"]
            )

        async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async def answer() -> Any:
                meta = service.model(request.name, request.version).metadata()
                return pb.ModelMetadataResponse(
                    name=meta["name"],
                    versions=meta["versions"],
                    platform=meta["platform"],
                    inputs=tensor_meta(meta["inputs"]),
                    outputs=tensor_meta(meta["outputs"]),
                )

            return await call(context, answer)

        async def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async def answer() -> Any:
                config = service.model(request.name, request.version).config_json()
                message = json_format.ParseDict(config, mc.ModelConfig())
                return pb.ModelConfigResponse(config=message)

            return await call(context, answer)

        async def ModelStatistics(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async def answer() -> Any:
                stats = service.statistics(request.name, request.version)
                return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

            return await call(context, answer)

        async def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            return pb.RepositoryIndexResponse(
                models=[
                    pb.RepositoryIndexResponse.ModelIndex(**m) for m in service.index(request.ready)
                ]
            )

        async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async def answer() -> Any:
                if any(k == "config" or k.startswith("file:") for k in request.parameters):
                    raise RequestError(
                        ErrorCode.UNIMPLEMENTED,
                        f"failed to load '{request.model_name}': a configuration or files "
                        "sent with the load request are not supported",
                    )
                await service.load(request.model_name)
                return pb.RepositoryModelLoadResponse()

            return await call(context, answer)

        async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async def answer() -> Any:
                await service.unload(request.model_name)
                return pb.RepositoryModelUnloadResponse()

            return await call(context, answer)

        async def SystemSharedMemoryRegister(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async def answer() -> Any:
                service.shm.register(request.name, request.key, request.offset, request.byte_size)
                return pb.SystemSharedMemoryRegisterResponse()

            return await call(context, answer)

        async def SystemSharedMemoryStatus(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async def answer() -> Any:
                regions = {r["name"]: r for r in service.shm.status(request.name)}
                return json_format.ParseDict(
                    {"regions": regions}, pb.SystemSharedMemoryStatusResponse()
                )

            return await call(context, answer)

        async def SystemSharedMemoryUnregister(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            service.shm.unregister(request.name)
            return pb.SystemSharedMemoryUnregisterResponse()

        async def CudaSharedMemoryStatus(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            if request.name:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"Unable to find cuda shared memory region: '{request.name}'",
                )
            return pb.CudaSharedMemoryStatusResponse()

        async def CudaSharedMemoryRegister(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "CUDA shared memory is not supported; use system shared memory",
            )

        async def CudaSharedMemoryUnregister(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            # no CUDA region is ever registered: nothing to do (clients clean up both kinds)
            return pb.CudaSharedMemoryUnregisterResponse()

        async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            try:
                return await run(request)
            except RequestError as exc:
                await context.abort(codes[exc.code], exc.message)

        async def ModelStreamInfer(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async for request in request_iterator:
                try:
                    response = await run(request)
                except RequestError as exc:
                    yield pb.ModelStreamInferResponse(error_message=exc.message)
                else:
                    yield pb.ModelStreamInferResponse(infer_response=response)

    return Servicer()
