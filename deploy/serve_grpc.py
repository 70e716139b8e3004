"""The gRPC front end: ``inference.GRPCInferenceService`` on ``grpc.aio``.

The service and messages are the ones ``tritonclient`` ships (Triton 2.51). Tensors travel
as ``raw_input_contents`` / ``raw_output_contents`` (typed ``contents`` are accepted on input).
Errors carry Triton's status codes: ``NOT_FOUND`` for an unknown model, ``INVALID_ARGUMENT``
for a bad request, ``UNAVAILABLE`` while shutting down. ``ModelStreamInfer`` answers each
request of the stream in turn; shared memory, model load/unload, trace and log settings are
``UNIMPLEMENTED``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga._optional import require
from hepfpga.deploy.serve_models import LoadedModel, RequestError, TensorInput

if TYPE_CHECKING:
    from hepfpga.deploy.serve import InferenceServer

__all__ = ["make_servicer"]

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


def make_servicer(server: InferenceServer) -> Any:
    """The servicer object for ``add_GRPCInferenceServiceServicer_to_server``."""
    grpc = require("grpc", "serve", "the gRPC server")
    pb = require("tritonclient.grpc.service_pb2", "serve", "the gRPC server")
    pb_grpc = require("tritonclient.grpc.service_pb2_grpc", "serve", "the gRPC server")
    json_format = require("google.protobuf.json_format", "serve", "the gRPC server")
    mc = require("tritonclient.grpc.model_config_pb2", "serve", "the gRPC server")
    codes = {
        404: grpc.StatusCode.NOT_FOUND,
        503: grpc.StatusCode.UNAVAILABLE,
        500: grpc.StatusCode.INTERNAL,
    }

    def status_of(exc: RequestError) -> Any:
        return codes.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT)

    def tensor_meta(items: list[dict[str, Any]]) -> list[Any]:
        return [
            pb.ModelMetadataResponse.TensorMetadata(
                name=t["name"], datatype=t["datatype"], shape=t["shape"]
            )
            for t in items
        ]

    def decode_inputs(request: Any) -> list[TensorInput]:
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise RequestError(
                400,
                f"expected {len(request.inputs)} raw input contents, got {len(raw)}",
            )
        inputs = []
        for i, t in enumerate(request.inputs):
            if raw:
                data: Any = raw[i]
            else:
                field = _CONTENTS.get(t.datatype)
                data = list(getattr(t.contents, field)) if field else None
            inputs.append(TensorInput(t.name, t.datatype, list(t.shape), data))
        return inputs

    async def run(request: Any) -> Any:
        received = time.perf_counter_ns()
        model: LoadedModel = server.registry.get(request.model_name, request.model_version)
        try:
            if server.draining:
                raise RequestError(503, "Server is shutting down: no new inference requests")
            arrays, batch = model.prepare(decode_inputs(request), request.id)
            names = [t.name for t in model.spec.outputs]
            wanted = [o.name for o in request.outputs]
            for name in wanted:
                if name not in names:
                    raise RequestError(
                        400, f"unexpected inference output '{name}' for model '{model.spec.name}'"
                    )
            future = model.submit(arrays, batch, received)
        except RequestError as exc:
            model.stats.record_failure(
                "REJECTED" if exc.status == 503 else "OTHER", time.perf_counter_ns() - received
            )
            raise
        server.in_flight += 1
        try:
            outputs = await future
        except Exception as exc:
            raise RequestError(
                500, f"onnxruntime failed on model '{model.spec.name}': {exc}"
            ) from exc
        finally:
            server.in_flight -= 1
        response = pb.ModelInferResponse(
            model_name=model.spec.name, model_version=model.version, id=request.id
        )
        indices = [names.index(n) for n in wanted] if wanted else range(len(names))
        specs = model.spec.outputs
        for index in indices:
            array = outputs[index]
            response.outputs.add(
                name=specs[index].name, datatype=specs[index].datatype, shape=array.shape
            )
            response.raw_output_contents.append(np.ascontiguousarray(array).tobytes())
        return response

    class Servicer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc,name-defined]
        async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            return pb.ServerLiveResponse(live=True)

        async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            return pb.ServerReadyResponse(ready=server.ready)

        async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            try:
                server.registry.get(request.name, request.version)
            except RequestError:
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            meta = server.metadata()
            return pb.ServerMetadataResponse(
                name=meta["name"], version=meta["version"], extensions=meta["extensions"]
            )

        async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            try:
                meta = server.registry.get(request.name, request.version).metadata()
            except RequestError as exc:
                await context.abort(status_of(exc), exc.message)
            return pb.ModelMetadataResponse(
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=tensor_meta(meta["inputs"]),
                outputs=tensor_meta(meta["outputs"]),
            )

        async def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            try:
                config = server.registry.get(request.name, request.version).config_json()
            except RequestError as exc:
                await context.abort(status_of(exc), exc.message)
            message = json_format.ParseDict(config, mc.ModelConfig())
            return pb.ModelConfigResponse(config=message)

        async def ModelStatistics(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            try:
                stats = server.registry.stats(request.name, request.version)
            except RequestError as exc:
                await context.abort(status_of(exc), exc.message)
            return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

        async def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            return pb.RepositoryIndexResponse(
                models=[pb.RepositoryIndexResponse.ModelIndex(**m) for m in server.registry.index()]
            )

        async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            try:
                return await run(request)
            except RequestError as exc:
                await context.abort(status_of(exc), exc.message)

        async def ModelStreamInfer(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
            async for request in request_iterator:
                try:
                    response = await run(request)
                except RequestError as exc:
                    yield pb.ModelStreamInferResponse(error_message=exc.message)
                else:
                    yield pb.ModelStreamInferResponse(infer_response=response)

    return Servicer()
