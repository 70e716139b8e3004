"""CLI commands of the deploy area (serving, Triton model repositories), attached to the main
group by :mod:`hepfpga.cli.app` (``COMMANDS``, ``EXPORT_COMMANDS``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from hepfpga.cli.params import FiniteFloat
from hepfpga.deploy.frontends import MAX_REQUEST_BYTES, MAX_TIMEOUT_S
from hepfpga.deploy.model_spec import KINDS
from hepfpga.deploy.serve import parse_cpu_list, serve
from hepfpga.deploy.service import MODEL_CONTROL_MODES
from hepfpga.deploy.triton_repo import export_triton_repository


def _port(value: int) -> int | None:
    return None if value < 0 else value


@click.command("serve")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--http-port",
    type=click.IntRange(min=-1, max=65535),
    default=8000,
    show_default=True,
    help="HTTP/REST port (0: a free one, -1: no HTTP).",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(min=-1, max=65535),
    default=8001,
    show_default=True,
    help="gRPC port (0: a free one, -1: no gRPC).",
)
@click.option(
    "--max-request-size",
    type=click.IntRange(min=1024, max=MAX_REQUEST_BYTES),
    default=64 * 1024 * 1024,
    show_default=True,
    help="Largest HTTP request body / gRPC message in bytes.",
)
@click.option(
    "--drain-timeout",
    type=FiniteFloat(min=0, max=MAX_TIMEOUT_S),
    default=30.0,
    show_default=True,
    help="Seconds to finish requests in flight after SIGTERM.",
)
@click.option(
    "--header-timeout",
    type=FiniteFloat(min=0, min_open=True, max=MAX_TIMEOUT_S),
    default=30.0,
    show_default=True,
    help="Seconds from a request's first byte to the end of its HTTP headers (then 408).",
)
@click.option(
    "--idle-timeout",
    type=FiniteFloat(min=0, min_open=True, max=MAX_TIMEOUT_S),
    default=300.0,
    show_default=True,
    help="Seconds a connection may send nothing while no answer is owed to it (then closed).",
)
@click.option(
    "--model-control-mode",
    type=click.Choice(MODEL_CONTROL_MODES),
    default="none",
    show_default=True,
    help="explicit: PATH is a model repository whose models clients load and unload "
    "through the repository API (start with those named by --load-model).",
)
@click.option(
    "--load-model",
    "load_model",
    multiple=True,
    metavar="NAME",
    help="With --model-control-mode explicit: a model to load at start (repeatable; * for all).",
)
@click.option(
    "--cpus",
    metavar="LIST",
    help="Pin the server to these CPUs, e.g. 0 or 0,2-3 (as taskset -c; default: all).",
)
@click.option(
    "--inline-max-us",
    type=FiniteFloat(min=0),
    default=0.0,
    show_default=True,
    help="A lone HTTP request whose model call took at most this many microseconds at load "
    "runs on the event loop when every instance is idle, saving the thread hand-off (e.g. 100 "
    "for one latency-bound client; 0: never, the default, best for many clients).",
)
def serve_cmd(
    path: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    max_request_size: int,
    drain_timeout: float,
    header_timeout: float,
    idle_timeout: float,
    model_control_mode: str,
    load_model: tuple[str, ...],
    cpus: str | None,
    inline_max_us: float,
) -> None:
    """Serve the ONNX models under PATH over the KServe v2 / Triton protocol (HTTP and gRPC).

    PATH is a Triton model repository (<name>/config.pbtxt, <name>/<version>/model.onnx), a
    run folder (its model.onnx, as version 1 of a model named after the folder) or an .onnx
    file. Prometheus metrics are at http://HOST:HTTP_PORT/metrics. SIGTERM (or Ctrl-C) stops
    accepting, answers the requests in flight and exits.
    """
    cpu_set = parse_cpu_list(cpus) if cpus is not None else None
    if _port(http_port) is None and _port(grpc_port) is None:
        raise click.BadParameter("both front ends are disabled", param_hint="--http-port")

    def ready(server: Any, addresses: Any) -> None:
        for model in server.registry:
            click.echo(
                f"model {model.spec.name} version {model.version}: {model.path} on "
                f"{model.provider} (max_batch_size {model.spec.max_batch_size}, "
                f"{model.spec.instance_count} instance(s), dynamic batching "
                f"{'on' if model.spec.dynamic_batching else 'off'}"
                + (
                    f", a lone request of batch <= {model.inline_batch} runs on the event loop)"
                    if model.inline_batch
                    else ")"
                )
            )
        if addresses.http_port is not None:
            click.echo(f"HTTP  http://{addresses.host}:{addresses.http_port}  (metrics: /metrics)")
        if addresses.grpc_port is not None:
            click.echo(f"gRPC  {addresses.host}:{addresses.grpc_port}")
        if model_control_mode == "explicit":
            click.echo("model control mode explicit: POST /v2/repository/models/NAME/load|unload")
        if cpu_set:
            click.echo(f"pinned to CPUs {','.join(map(str, sorted(cpu_set)))}")
        click.echo("ready; SIGTERM or Ctrl-C drains and stops")
        sys.stdout.flush()

    serve(
        path,
        host=host,
        http_port=_port(http_port),
        grpc_port=_port(grpc_port),
        max_request_bytes=max_request_size,
        drain_timeout_s=drain_timeout,
        cpus=cpu_set,
        header_timeout_s=header_timeout,
        idle_timeout_s=idle_timeout,
        model_control=model_control_mode,  # type: ignore[arg-type]
        load_models=load_model,
        on_ready=ready,
        inline_max_us=inline_max_us,
    )
    click.echo("stopped")


@click.command("triton")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--repo", type=click.Path(path_type=Path), required=True, help="Model repository folder."
)
@click.option("--name", help="Model name (default: the run folder's name).")
@click.option("--version", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=0),
    help="Largest batch a request or a dynamic batch may have (default 4096; 0: no batching).",
)
@click.option(
    "--preferred-batch-size",
    "preferred",
    type=click.IntRange(min=1),
    multiple=True,
    help="Dynamic batching: a preferred batch size (repeatable).",
)
@click.option(
    "--max-queue-delay-us",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Dynamic batching: how long a request may wait for others.",
)
@click.option("--no-dynamic-batching", is_flag=True, help="Run each request on its own.")
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="KIND_AUTO",
    show_default=True,
    help="instance_group kind (AUTO: GPU when onnxruntime has CUDA, else CPU).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing version folder.")
def export_triton_cmd(
    source: Path,
    repo: Path,
    name: str | None,
    version: int,
    max_batch_size: int | None,
    preferred: tuple[int, ...],
    max_queue_delay_us: int,
    no_dynamic_batching: bool,
    instances: int,
    kind: str,
    overwrite: bool,
) -> None:
    """Write a Triton model repository entry for SOURCE (a run folder or an .onnx file):
    REPO/<name>/config.pbtxt and REPO/<name>/<version>/model.onnx."""
    result = export_triton_repository(
        source,
        repo,
        name=name,
        version=version,
        max_batch_size=max_batch_size,
        preferred_batch_sizes=preferred,
        max_queue_delay_us=max_queue_delay_us,
        dynamic_batching=not no_dynamic_batching,
        instance_count=instances,
        instance_kind=kind,  # type: ignore[arg-type]
        overwrite=overwrite,
    )
    spec = result.spec
    click.echo(
        f"wrote {result.onnx_path} and {result.config_path} (max_batch_size "
        f"{spec.max_batch_size}, inputs "
        + ", ".join(f"{t.name} {t.datatype}{list(t.dims)}" for t in spec.inputs)
        + ", outputs "
        + ", ".join(f"{t.name} {t.datatype}{list(t.dims)}" for t in spec.outputs)
        + ")"
    )


COMMANDS = (serve_cmd,)
#: subcommands of ``hepfpga export``
EXPORT_COMMANDS = (export_triton_cmd,)
