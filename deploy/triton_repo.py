"""Triton model repositories: write them from a run folder, read them back for serving.

Layout (what NVIDIA Triton and KServe load)::

    <repo>/<name>/config.pbtxt
    <repo>/<name>/<version>/model.onnx
    <repo>/<name>/labels.txt          (class names, when the ONNX metadata has them)

``config.pbtxt`` is written as protobuf text of ``inference.ModelConfig`` (Triton 2.51):
platform ``onnxruntime_onnx``, ``max_batch_size``, inputs/outputs with dims *without* the batch
dimension, ``dynamic_batching`` and ``instance_group``. Reading parses it with the real
``model_config_pb2`` (the ``serve`` extra), so a misspelt field is an error, as in Triton.

The types themselves (:class:`ModelSpec`, :class:`TensorSpec`, :class:`DynamicBatching`,
:class:`ModelVersion`) live in :mod:`hepfpga.deploy.model_spec` (re-exported here), so the
runtime does not depend on the file format.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from hepfpga._optional import require
from hepfpga.artifacts import atomic_directory, check_destination, write_text_atomic
from hepfpga.deploy.model_spec import (
    DATATYPES,
    KINDS,
    DynamicBatching,
    InstanceKind,
    ModelSpec,
    ModelVersion,
    TensorSpec,
)
from hepfpga.errors import ConfigError, HepfpgaError, ModelFileError

__all__ = [
    "DATATYPES",
    "DEFAULT_MAX_BATCH_SIZE",
    "DynamicBatching",
    "ModelSpec",
    "ModelVersion",
    "TensorSpec",
    "TritonExport",
    "check_model_name",
    "config_pbtxt",
    "discover_models",
    "export_triton_repository",
    "parse_config",
    "pbtxt_string",
    "repository_model",
    "repository_model_names",
    "spec_from_onnx",
]

# onnx.TensorProto element types -> v2 datatype
_ONNX_TYPES = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
}

_NO_DELAY = DynamicBatching()  # batching of what queues while busy, no waiting

#: ``max_batch_size`` of a model served straight from a run folder or exported without one.
DEFAULT_MAX_BATCH_SIZE = 4096


@dataclass(frozen=True)
class TritonExport:
    """Where :func:`export_triton_repository` wrote a model."""

    repo: Path
    model_dir: Path
    config_path: Path
    onnx_path: Path
    spec: ModelSpec


def pbtxt_string(text: str) -> str:
    """``text`` as a quoted string of protobuf's text format: backslash, both quotes and
    control characters escaped (``\\n`` ``\\t`` ``\\r`` or three octal digits), other
    characters (UTF-8) as they are; ``text_format.Parse`` reads back exactly ``text``."""
    out = []
    for ch in text:
        if ch in _PBTXT_ESCAPES:
            out.append(_PBTXT_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_PBTXT_ESCAPES = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def check_model_name(name: str, what: str = "model name") -> str:
    """A model name as Triton serves it: the name of its folder in the repository and a
    segment of the v2 URLs. Accepted: 1 to 255 bytes of UTF-8 without ``/``, NUL or other
    control characters, not starting with ``.`` (hidden folders are not models). Quotes,
    backslashes, spaces and non-ASCII letters are accepted and escaped in ``config.pbtxt``.
    Raises :class:`ConfigError` naming the name and the rule."""
    bad = next((c for c in name if ord(c) < 0x20 or ord(c) == 0x7F or c == "/"), None)
    try:
        size = len(name.encode())
    except UnicodeEncodeError:  # a folder name of undecodable bytes (surrogate escapes)
        size = -1
    if not name or name.startswith(".") or bad is not None or not 0 < size <= 255:
        reason = (
            "it is empty"
            if not name
            else "it starts with '.'"
            if name.startswith(".")
            else f"it contains {bad!r}"
            if bad is not None
            else "it is not valid UTF-8"
            if size < 0
            else f"it is {size} bytes long"
        )
        raise ConfigError(
            f"invalid {what} {name!r}: {reason}; accepted: 1 to 255 bytes without '/' or "
            "control characters, not starting with '.' (a folder name of the model repository)",
            path="name",
        )
    return name


def config_pbtxt(spec: ModelSpec) -> str:
    """The ``config.pbtxt`` text of ``spec`` (protobuf text format of ``inference.ModelConfig``);
    every string escaped (:func:`pbtxt_string`)."""
    q = pbtxt_string

    def tensor(t: TensorSpec, label: bool) -> str:
        dims = ", ".join(str(int(d)) for d in t.dims)
        extra = f"\n    label_filename: {q(spec.label_filename or '')}" if label else ""
        return (
            f"  {{\n    name: {q(t.name)}\n    data_type: TYPE_{t.datatype}\n"
            f"    dims: [ {dims} ]{extra}\n  }}"
        )

    lines = [
        f"name: {q(spec.name)}",
        f"platform: {q(spec.platform)}",
        f"max_batch_size: {spec.max_batch_size}",
    ]
    if spec.version_policy == "all":
        lines.append("version_policy: { all { } }")
    elif spec.version_policy == "specific":
        lines.append(f"version_policy: {{ specific {{ versions: {list(spec.versions)} }} }}")
    elif spec.latest_versions != 1:
        lines.append(f"version_policy: {{ latest {{ num_versions: {spec.latest_versions} }} }}")
    lines.append("input [\n" + ",\n".join(tensor(t, False) for t in spec.inputs) + "\n]")
    lines.append(
        "output [\n"
        + ",\n".join(
            tensor(t, spec.label_filename is not None and i == 0)
            for i, t in enumerate(spec.outputs)
        )
        + "\n]"
    )
    if spec.dynamic_batching is not None and spec.max_batch_size > 0:
        db = spec.dynamic_batching
        body = [f"  max_queue_delay_microseconds: {db.max_queue_delay_us}"]
        if db.preferred_batch_sizes:
            sizes = ", ".join(str(s) for s in db.preferred_batch_sizes)
            body.insert(0, f"  preferred_batch_size: [ {sizes} ]")
        lines.append("dynamic_batching {\n" + "\n".join(body) + "\n}")
    lines.append(
        f"instance_group [\n  {{\n    count: {spec.instance_count}\n"
        f"    kind: {spec.instance_kind}\n  }}\n]"
    )
    params = {"intra_op_thread_count": str(spec.intra_op_threads), **spec.parameters}
    for key, value in params.items():
        lines.append(f"parameters {{\n  key: {q(key)}\n  value: {{ string_value: {q(value)} }}\n}}")
    return "\n".join(lines) + "\n"


def _onnx_metadata(proto: object) -> dict[str, object]:
    meta: dict[str, object] = {}
    for prop in proto.metadata_props:  # type: ignore[attr-defined]
        try:
            meta[prop.key] = json.loads(prop.value)
        except ValueError:
            meta[prop.key] = prop.value
    return meta


def _load_onnx(path: Path) -> object:
    # deferred: onnx loads slowly
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError
        raise ModelFileError(f"cannot read ONNX model {path}: {exc}") from exc


def spec_from_onnx(
    path: Path,
    name: str,
    *,
    max_batch_size: int | None = None,
    dynamic_batching: DynamicBatching | None = _NO_DELAY,
    instance_count: int = 1,
    instance_kind: InstanceKind = "KIND_AUTO",
) -> tuple[ModelSpec, tuple[str, ...]]:
    """The configuration Triton would complete from the ONNX graph, and its class names.

    A model whose inputs and outputs all have a dynamic first dimension batches
    (``max_batch_size`` defaults to :data:`DEFAULT_MAX_BATCH_SIZE`); otherwise it is served
    with ``max_batch_size: 0`` and full shapes.
    """
    proto = _load_onnx(Path(path))
    graph = proto.graph  # type: ignore[attr-defined]
    initializers = {i.name for i in graph.initializer}

    def tensors(values: object) -> list[tuple[str, str, list[int]]]:
        out = []
        for v in values:  # type: ignore[attr-defined]
            if v.name in initializers:
                continue
            elem = v.type.tensor_type.elem_type
            if elem not in _ONNX_TYPES:
                raise ModelFileError(
                    f"{path}: tensor '{v.name}' has ONNX element type {elem}; served types: "
                    + ", ".join(sorted(DATATYPES))
                )
            dims = [
                d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim
            ]
            shape = v.type.tensor_type.shape.dim
            if any(d.HasField("dim_value") and d.dim_value < 0 for d in shape):
                raise ModelFileError(
                    f"{path}: tensor '{v.name}' has the shape {dims}; accepted: sizes of 0 or "
                    "more, or a named (dynamic) dimension"
                )
            out.append((v.name, _ONNX_TYPES[elem], dims))
        return out

    ins, outs = tensors(graph.input), tensors(graph.output)
    batches = all(dims and dims[0] == -1 for _, _, dims in ins + outs)
    if max_batch_size is None:
        max_batch_size = DEFAULT_MAX_BATCH_SIZE if batches else 0
    if max_batch_size > 0 and not batches:
        raise ConfigError(
            f"{path}: max_batch_size {max_batch_size} needs a dynamic first dimension on every "
            "input and output; use max_batch_size 0 for this model"
        )
    skip = 1 if max_batch_size > 0 else 0
    meta = _onnx_metadata(proto)
    names = meta.get("class_names") or []
    class_names = tuple(str(c) for c in names) if isinstance(names, list) else ()
    spec = ModelSpec(
        name=name,
        max_batch_size=max_batch_size,
        inputs=tuple(TensorSpec(n, t, tuple(d[skip:])) for n, t, d in ins),
        outputs=tuple(TensorSpec(n, t, tuple(d[skip:])) for n, t, d in outs),
        dynamic_batching=dynamic_batching if max_batch_size > 0 else None,
        instance_count=instance_count,
        instance_kind=instance_kind,
    )
    return spec, class_names


def _source_onnx(source: Path) -> tuple[Path, str]:
    source = Path(source)
    if source.is_dir():
        onnx_path = source / "model.onnx"
        if not onnx_path.is_file():
            raise ModelFileError(f"{source} is not a run folder: it has no model.onnx")
        return onnx_path, source.name
    if source.suffix == ".onnx" and source.is_file():
        return source, source.stem
    raise ModelFileError(f"{source}: expected a run folder (with model.onnx) or an .onnx file")


def _existing_config(
    model_dir: Path, spec: ModelSpec, class_names: tuple[str, ...], max_batch_size: int | None
) -> ModelSpec | None:
    """The spec of ``model_dir/config.pbtxt`` when there is one and the new version fits it
    (then it is kept as it is: it is the config of every version), None when there is none.
    A config that cannot be read, a model that does not fit it, or options that would change
    it are a :class:`ConfigError` naming the clash."""
    config_path = model_dir / "config.pbtxt"
    if not config_path.exists():
        return None
    clash = f"{model_dir.name!r} in {model_dir.parent} already has {config_path.name}"
    advice = "export under another --name, or into another --repo"
    try:
        existing, _ = parse_config(config_path, expected_name=model_dir.name)
    except HepfpgaError as exc:
        raise ConfigError(f"model {clash}, which cannot be read ({exc}); {advice}") from None
    if max_batch_size is not None and max_batch_size != existing.max_batch_size:
        raise ConfigError(
            f"model {clash} with max_batch_size {existing.max_batch_size}, which every version "
            f"is served with; accepted: max_batch_size {existing.max_batch_size} (or leave it "
            f"out), or {advice}"
        )
    # options given other than their defaults must agree with the config they would change
    for option, given, default, there in (
        ("instances", spec.instance_count, 1, existing.instance_count),
        ("kind", spec.instance_kind, "KIND_AUTO", existing.instance_kind),
        ("dynamic batching", spec.dynamic_batching, _NO_DELAY, existing.dynamic_batching),
    ):
        if given != default and given != there:
            raise ConfigError(
                f"model {clash} with {option} {there}, which every version is served with; "
                f"accepted: the same {option} (or leave it out), or {advice}"
            )
    try:
        # the new graph's dims as the existing batching reads them
        _check_against_onnx(existing, _respec(spec, existing.max_batch_size), config_path)
    except ConfigError as exc:
        raise ConfigError(
            f"the new model does not fit the config of model {clash}: {exc.message}; {advice}"
        ) from None
    if existing.label_filename and class_names:
        labels = model_dir / existing.label_filename
        try:
            old = tuple(labels.read_text(encoding="utf-8").split()) if labels.is_file() else ()
        except (OSError, UnicodeDecodeError):
            old = ()
        if old and old != class_names:
            raise ConfigError(
                f"the new model's classes {list(class_names)} differ from {labels} "
                f"({list(old)}), which every version of {model_dir.name!r} is labelled with; "
                f"{advice}"
            )
    return existing


def _respec(spec: ModelSpec, max_batch_size: int) -> ModelSpec:
    """``spec``'s tensors as the graph gives them under another ``max_batch_size``: with
    batching the first dimension is dropped, without it the graph's full shape is kept."""

    def dims(t: TensorSpec) -> TensorSpec:
        full = (-1, *t.dims) if spec.max_batch_size > 0 else t.dims
        return replace(t, dims=full[1:] if max_batch_size > 0 else full)

    return replace(
        spec,
        max_batch_size=max_batch_size,
        inputs=tuple(dims(t) for t in spec.inputs),
        outputs=tuple(dims(t) for t in spec.outputs),
    )


def _check_other_versions(model_dir: Path, version: int, spec: ModelSpec) -> None:
    """A model folder without config.pbtxt: every other version already there must fit the
    config about to be written, or it would no longer be served."""
    if not model_dir.is_dir():
        return
    for other in sorted(model_dir.iterdir()):
        path = other / spec.default_model_filename
        if not other.name.isdigit() or int(other.name) == version or not path.is_file():
            continue
        onnx_spec, _ = spec_from_onnx(path, model_dir.name, max_batch_size=None)
        try:
            _check_against_onnx(spec, _respec(onnx_spec, spec.max_batch_size), path)
        except ConfigError as exc:
            raise ConfigError(
                f"version {other.name} of model {model_dir.name!r} in {model_dir.parent} does "
                f"not fit the config the new version needs: {exc.message}; export under "
                "another --name, or into another --repo"
            ) from None


def export_triton_repository(
    source: Path,
    repo: Path,
    *,
    name: str | None = None,
    version: int = 1,
    max_batch_size: int | None = None,
    preferred_batch_sizes: tuple[int, ...] = (),
    max_queue_delay_us: int = 0,
    dynamic_batching: bool = True,
    instance_count: int = 1,
    instance_kind: InstanceKind = "KIND_AUTO",
    overwrite: bool = False,
) -> TritonExport:
    """Write ``<repo>/<name>/config.pbtxt`` and ``<repo>/<name>/<version>/model.onnx``.

    ``source`` is a run folder or an ``.onnx`` file; ``name`` defaults to the run folder's
    name. Other versions already in the model folder are kept; an existing ``version`` is
    replaced only with ``overwrite``. The version folder and the config are each written
    through a temporary file or folder and a rename.
    """
    onnx_path, default_name = _source_onnx(source)
    name = check_model_name(name or default_name)
    if version < 1:
        raise ConfigError(f"expected a positive integer. Received: version={version}")
    if instance_count < 1:
        raise ConfigError(f"expected a positive integer. Received: instance_count={instance_count}")
    if instance_kind not in KINDS:
        raise ConfigError(f"unknown instance kind '{instance_kind}'; accepted: {', '.join(KINDS)}")
    spec, class_names = spec_from_onnx(
        onnx_path,
        name,
        max_batch_size=max_batch_size,
        dynamic_batching=(
            DynamicBatching(tuple(preferred_batch_sizes), max_queue_delay_us)
            if dynamic_batching
            else None
        ),
        instance_count=instance_count,
        instance_kind=instance_kind,
    )
    bad = [s for s in preferred_batch_sizes if not 0 < s <= spec.max_batch_size]
    if bad:
        raise ConfigError(
            f"preferred batch sizes {bad} are outside 1..max_batch_size ({spec.max_batch_size})"
        )
    if max_queue_delay_us < 0:
        raise ConfigError(
            f"expected a non-negative integer. Received: max_queue_delay_us={max_queue_delay_us}"
        )
    out_dims = spec.outputs[0].dims if spec.outputs else ()
    if class_names and out_dims and out_dims[-1] == len(class_names):
        spec = replace(spec, label_filename="labels.txt")
    model_dir = Path(repo) / name
    check_destination(model_dir / str(version), overwrite=overwrite)  # before any folder is made
    existing = _existing_config(model_dir, spec, class_names, max_batch_size)
    if existing is None:
        _check_other_versions(model_dir, version, spec)
    model_dir.mkdir(parents=True, exist_ok=True)
    # the new version is written beside the others (a temporary folder renamed into place);
    # no other version's folder is ever opened for writing
    with atomic_directory(model_dir / str(version), overwrite=overwrite) as tmp:
        shutil.copyfile(onnx_path, tmp / spec.default_model_filename)
    if existing is not None:
        spec = existing  # the config every version is served with stays as it was
    else:
        if spec.label_filename:
            write_text_atomic(model_dir / spec.label_filename, "\n".join(class_names) + "\n")
        write_text_atomic(model_dir / "config.pbtxt", config_pbtxt(spec))
    return TritonExport(
        repo=Path(repo),
        model_dir=model_dir,
        config_path=model_dir / "config.pbtxt",
        onnx_path=model_dir / str(version) / spec.default_model_filename,
        spec=spec,
    )


def parse_config(path: Path, *, expected_name: str | None = None) -> tuple[ModelSpec, object]:
    """Parse a ``config.pbtxt`` with Triton's own ``ModelConfig`` message.

    Returns the :class:`ModelSpec` and the protobuf message. Inputs and outputs may be left
    out (Triton completes them from the ONNX model); :func:`discover_models` does that.
    """
    text_format = require("google.protobuf.text_format", "serve", "reading config.pbtxt")
    mc = require("tritonclient.grpc.model_config_pb2", "serve", "reading config.pbtxt")
    path = Path(path)
    config = mc.ModelConfig()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), config)
    except (text_format.ParseError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid Triton model configuration: {exc}", source=str(path)) from exc
    where = str(path)
    if config.platform not in ("", "onnxruntime_onnx") or config.backend not in ("", "onnxruntime"):
        raise ConfigError(
            f"platform '{config.platform or config.backend}' is not served by hepfpga; accepted: "
            "platform 'onnxruntime_onnx' or backend 'onnxruntime'",
            path="platform",
            source=where,
        )
    name = config.name or expected_name or path.parent.name
    if expected_name and config.name and config.name != expected_name:
        raise ConfigError(
            f"model name '{config.name}' differs from its folder '{expected_name}'",
            path="name",
            source=where,
        )

    def tensors(items: object, what: str) -> tuple[TensorSpec, ...]:
        out = []
        for t in items:  # type: ignore[attr-defined]
            type_name = mc.DataType.Name(t.data_type)
            datatype = type_name.removeprefix("TYPE_")
            if datatype not in DATATYPES:
                raise ConfigError(
                    f"data_type {type_name} of '{t.name}' is not served; accepted: "
                    + ", ".join(f"TYPE_{d}" for d in DATATYPES),
                    path=what,
                    source=where,
                )
            dims = tuple(t.reshape.shape) if t.HasField("reshape") else tuple(t.dims)
            out.append(TensorSpec(t.name, datatype, dims))
        return tuple(out)

    if config.max_batch_size < 0:
        raise ConfigError(
            f"max_batch_size is {config.max_batch_size}; accepted: 0 (the model takes whole "
            "tensors, no batching) or a positive integer",
            path="max_batch_size",
            source=where,
        )
    for i, group in enumerate(config.instance_group):
        if group.count < 0:
            raise ConfigError(
                f"instance_group count is {group.count}; accepted: a positive integer "
                "(0 or left out: 1)",
                path=f"instance_group[{i}].count",
                source=where,
            )
    kinds = {mc.ModelInstanceGroup.Kind.Name(g.kind) for g in config.instance_group}
    if kinds - set(KINDS):
        raise ConfigError(
            f"instance_group kind {sorted(kinds - set(KINDS))} is not served; accepted: "
            + ", ".join(KINDS),
            path="instance_group",
            source=where,
        )
    kind: InstanceKind = (
        "KIND_GPU" if "KIND_GPU" in kinds else "KIND_CPU" if kinds == {"KIND_CPU"} else "KIND_AUTO"
    )
    count = sum(g.count or 1 for g in config.instance_group) or 1
    policy = config.version_policy.WhichOneof("policy_choice") or "latest"
    params = {k: v.string_value for k, v in config.parameters.items()}
    try:
        threads = int(params.pop("intra_op_thread_count", "1"))
    except ValueError:
        threads = -1
    if threads < 0:
        raise ConfigError(
            f"intra_op_thread_count is '{config.parameters['intra_op_thread_count'].string_value}'"
            "; accepted: a non-negative integer (0: onnxruntime's default)",
            path="parameters",
            source=where,
        )
    db = None
    if config.HasField("dynamic_batching") and config.max_batch_size > 0:
        sizes = list(config.dynamic_batching.preferred_batch_size)
        bad = [s for s in sizes if not 0 < s <= config.max_batch_size]
        if bad:
            raise ConfigError(
                f"preferred_batch_size {bad} is outside 1..max_batch_size "
                f"({config.max_batch_size})",
                path="dynamic_batching.preferred_batch_size",
                source=where,
            )
        db = DynamicBatching(
            tuple(config.dynamic_batching.preferred_batch_size),
            int(config.dynamic_batching.max_queue_delay_microseconds),
        )
    label = next((t.label_filename for t in config.output if t.label_filename), None)
    spec = ModelSpec(
        name=name,
        max_batch_size=int(config.max_batch_size),
        inputs=tensors(config.input, "input"),
        outputs=tensors(config.output, "output"),
        dynamic_batching=db,
        instance_count=count,
        instance_kind=kind,
        version_policy=policy,  # type: ignore[arg-type]
        latest_versions=(config.version_policy.latest.num_versions or 1)
        if policy == "latest"
        else 1,
        versions=tuple(config.version_policy.specific.versions) if policy == "specific" else (),
        default_model_filename=config.default_model_filename or "model.onnx",
        intra_op_threads=threads,
        label_filename=label,
        parameters=params,
    )
    return spec, config


def _check_against_onnx(spec: ModelSpec, onnx_spec: ModelSpec, where: Path) -> ModelSpec:
    if not spec.inputs and not spec.outputs:
        return replace(spec, inputs=onnx_spec.inputs, outputs=onnx_spec.outputs)
    for what, ours, theirs in (
        ("input", spec.inputs, onnx_spec.inputs),
        ("output", spec.outputs, onnx_spec.outputs),
    ):
        by_name = {t.name: t for t in theirs}
        for t in ours:
            model_t = by_name.get(t.name)
            if model_t is None:
                raise ConfigError(
                    f"{what} '{t.name}' is not in the ONNX model; it has: {sorted(by_name)}",
                    path=what,
                    source=str(where),
                )
            # a fixed dimension of the graph must be the same in the config; a dynamic one
            # (-1 in the graph) may be fixed or left variable by the config
            if (
                model_t.datatype != t.datatype
                or len(model_t.dims) != len(t.dims)
                or any(m != -1 and c != m for c, m in zip(t.dims, model_t.dims, strict=True))
            ):
                raise ConfigError(
                    f"{what} '{t.name}' is TYPE_{t.datatype} {list(t.dims)} in the config but "
                    f"TYPE_{model_t.datatype} {list(model_t.dims)} in the ONNX model "
                    "(dims without the batch dimension); accepted: the model's datatype and dims, "
                    "-1 only where the model's dimension is dynamic",
                    path=what,
                    source=str(where),
                )
        if what == "input" and {t.name for t in ours} != set(by_name):
            raise ConfigError(
                f"the config lists inputs {sorted(t.name for t in ours)} but the ONNX model "
                f"takes {sorted(by_name)}",
                path="input",
                source=str(where),
            )
    return spec


def _model_versions(model_dir: Path) -> list[ModelVersion]:
    config_path = model_dir / "config.pbtxt"
    spec: ModelSpec | None = None
    if config_path.is_file():
        spec, _ = parse_config(config_path, expected_name=model_dir.name)
    filename = spec.default_model_filename if spec else "model.onnx"
    found = sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / filename).is_file()
    )
    if not found:
        raise ModelFileError(f"model folder {model_dir} has no <version>/{filename}")
    if spec is not None and spec.version_policy == "all":
        chosen = found
    elif spec is not None and spec.version_policy == "specific":
        chosen = [v for v in found if v in spec.versions]
        missing = sorted(set(spec.versions) - set(found))
        if missing:
            raise ModelFileError(
                f"{model_dir}: versions {missing} named in config.pbtxt are missing"
            )
    else:
        chosen = found[-(spec.latest_versions if spec else 1) :]
    out = []
    for version in chosen:
        path = model_dir / str(version) / filename
        onnx_spec, class_names = spec_from_onnx(
            path,
            model_dir.name,
            max_batch_size=spec.max_batch_size if spec else None,
        )
        final = onnx_spec if spec is None else _check_against_onnx(spec, onnx_spec, config_path)
        if spec is not None and spec.label_filename:
            labels = model_dir / spec.label_filename
            if labels.is_file():
                try:
                    class_names = tuple(labels.read_text(encoding="utf-8").split())
                except (OSError, UnicodeDecodeError) as exc:
                    raise ModelFileError(
                        f"cannot read the labels of model '{model_dir.name}' from {labels}: "
                        f"{exc}; accepted: a UTF-8 text file, one class name a line"
                    ) from None
        out.append(ModelVersion(final, version, path, class_names))
    return out


def repository_model_names(repo: Path) -> list[str]:
    """The model folders of a Triton model repository (hidden folders left out)."""
    return sorted(p.name for p in Path(repo).iterdir() if p.is_dir() and not p.name.startswith("."))


def repository_model(repo: Path, name: str) -> list[ModelVersion]:
    """The servable versions of model ``name`` of the repository ``repo``, read afresh (the
    repository API's load)."""
    folder = Path(repo) / name
    if not name or "/" in name or name.startswith(".") or not folder.is_dir():
        raise ModelFileError(
            f"no model folder '{name}' in the model repository {repo}; it has: "
            + ", ".join(repository_model_names(repo))
        )
    return _model_versions(folder)


def discover_models(path: Path) -> list[ModelVersion]:
    """Every servable model version under ``path``.

    ``path`` is a Triton model repository (folders ``<name>/<version>/model.onnx``, each with
    an optional ``config.pbtxt``), one model folder of such a repository, a run folder (its
    ``model.onnx`` served as version 1 under the folder's name) or an ``.onnx`` file.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path} does not exist; expected a model repository or run folder")
    if path.is_file() or (path / "model.onnx").is_file():
        onnx_path, name = _source_onnx(path)
        spec, class_names = spec_from_onnx(onnx_path, name)
        return [ModelVersion(spec, 1, onnx_path, class_names)]
    if (path / "config.pbtxt").is_file():  # one model folder of a repository
        return _model_versions(path)
    models = []
    for name in repository_model_names(path):
        models.extend(_model_versions(path / name))
    if not models:
        raise ModelFileError(
            f"{path} has no models: expected <name>/config.pbtxt and <name>/<version>/model.onnx, "
            "or a run folder with model.onnx"
        )
    return models
