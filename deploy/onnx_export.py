"""ONNX export of Keras/QKeras models with tf2onnx, checked with onnxruntime.

A QKeras model is exported as the float graph its quantizers compute in TensorFlow (the
quantize/dequantize arithmetic appears as ordinary float ops: ``Round``, ``Clip``, ``Mul``),
so onnxruntime reproduces the QKeras outputs to float32 rounding. A model with one input
has the ONNX input ``input``; a model with several has one ONNX input per Keras input, named
as the Keras input layer (``OnnxExport.input_names``, in the model's input order).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga.artifacts import atomic_file, dumps_strict
from hepfpga.errors import ExportError, ModelFileError, VerificationError
from hepfpga.train.model_checks import check_model_inputs

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = [
    "OnnxExport",
    "OnnxParity",
    "check_exportable",
    "check_onnx",
    "export_checked_onnx",
    "export_onnx",
    "onnx_session",
    "random_inputs",
]


@dataclass(frozen=True)
class OnnxExport:
    """An exported ONNX file and its input/output tensor names."""

    path: Path
    #: the first input (the only one of most models)
    input_name: str
    #: the first output (the only one of a classifier)
    output_name: str
    opset: int
    seconds: float
    #: every output, in the Keras model's order (e.g. a VAE encoder's ``mu``, ``log_var``)
    output_names: tuple[str, ...] = ()
    #: every input, in the Keras model's order
    input_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class OnnxParity:
    """onnxruntime against Keras on the same inputs.

    ``max_abs_diff`` is the largest difference over every output; ``per_output`` gives it for
    each output in order. ``argmax_agreement`` compares the class picked by the first output
    and is None where that output has a single value per event (nothing to pick from).
    """

    n_events: int
    max_abs_diff: float
    argmax_agreement: float | None
    provider: str
    per_output: tuple[float, ...] = ()
    #: largest |Keras output|, the scale of the differences
    reference_max_abs: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_events": self.n_events,
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "provider": self.provider,
            "per_output_max_abs_diff": list(self.per_output),
            "reference_max_abs": self.reference_max_abs,
        }


def check_exportable(model: keras.Model) -> None:
    """Refuse, with one sentence, a model this module cannot export: input tensors of fixed
    size, each at least one value per event, and at least one output
    (:func:`hepfpga.train.model_checks.check_model_inputs`), as
    :class:`~hepfpga.errors.ExportError`."""
    try:
        check_model_inputs(model)
    except ModelFileError as exc:
        raise ExportError(str(exc)) from None


def onnx_input_names(model: keras.Model) -> tuple[str, ...]:
    """The ONNX input names of ``model``: ``input`` for one input, else the Keras input
    layers' names."""
    if len(model.inputs) == 1:
        return ("input",)
    return tuple(tensor.node.layer.name for tensor in model.inputs)


def random_inputs(model: keras.Model, n_events: int, seed: int = 0) -> Any:
    """``n_events`` standard-normal float32 events shaped like ``model``'s input (a list of
    arrays, one per input, for a model with several inputs)."""
    check_exportable(model)
    rng = np.random.default_rng(seed)
    arrays = [
        rng.normal(size=(n_events, *tuple(tensor.shape[1:]))).astype(np.float32)
        for tensor in model.inputs
    ]
    return arrays if len(arrays) > 1 else arrays[0]


def export_onnx(
    model: keras.Model,
    path: Path,
    *,
    opset: int = 13,
    metadata: dict[str, Any] | None = None,
    check: Callable[[OnnxExport], None] | None = None,
    overwrite: bool = True,
) -> OnnxExport:
    """Export ``model`` to ``path`` with a dynamic batch dimension.

    ``metadata`` is stored as JSON strings in the model's ``metadata_props`` (e.g. the feature
    scaler and class names, so a server can describe its inputs). Written to a temporary file
    that is checked (``onnx.checker``, then ``check(export_of_the_temporary_file)`` if given)
    before it is renamed to ``path``: an export that fails a check never reaches ``path``.
    ``overwrite=False`` refuses an existing ``path``.
    """
    # deferred: TensorFlow, onnx load slowly
    import onnx
    import tensorflow as tf
    import tf2onnx

    path = Path(path)
    check_exportable(model)
    spec = tuple(
        tf.TensorSpec((None, *tensor.shape[1:]), tf.float32, name=name)
        for name, tensor in zip(onnx_input_names(model), model.inputs, strict=True)
    )
    start = time.perf_counter()
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as exc:  # tf2onnx raises many unrelated types
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"tf2onnx could not convert model '{model.name}': {first}") from exc
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = dumps_strict(value)
    proto.producer_name = "hepfpga"
    outputs = tuple(o.name for o in proto.graph.output)

    def describe(at: Path) -> OnnxExport:
        return OnnxExport(
            path=at,
            input_name=proto.graph.input[0].name,
            input_names=tuple(i.name for i in proto.graph.input),
            output_name=outputs[0],
            opset=opset,
            seconds=time.perf_counter() - start,
            output_names=outputs,
        )

    def verify(tmp: Path) -> None:
        try:
            onnx.checker.check_model(str(tmp))
        except Exception as exc:  # onnx.checker.ValidationError and friends
            raise ExportError(
                f"the exported model of '{model.name}' is not valid ONNX: {exc}"
            ) from exc
        if check is not None:
            check(describe(tmp))

    with atomic_file(path, check=verify, overwrite=overwrite) as tmp:
        onnx.save(proto, str(tmp))
    return describe(path)


def export_checked_onnx(
    model: keras.Model,
    path: Path,
    x: Any,
    *,
    tolerance: float,
    opset: int = 13,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> tuple[OnnxExport, OnnxParity]:
    """:func:`export_onnx`, writing ``path`` only if onnxruntime reproduces every output of
    ``model`` on ``x`` (a list of arrays, one per input, for a model with several inputs):
    the largest absolute difference must be at most ``tolerance`` times
    ``max(1, largest |Keras output|)`` (float32 rounding grows with the outputs' size).
    Raises :class:`~hepfpga.errors.VerificationError` (exit status 1) otherwise."""
    results: list[OnnxParity] = []

    def parity_check(export: OnnxExport) -> None:
        parity = check_onnx(export, model, x)
        bound = tolerance * max(1.0, parity.reference_max_abs)
        if not parity.max_abs_diff <= bound:
            raise VerificationError(
                f"onnxruntime differs from Keras by up to {parity.max_abs_diff:.3g} "
                f"(> {bound:.3g}: --tolerance {tolerance:g} x max(1, largest output "
                f"{parity.reference_max_abs:.3g})) on {parity.n_events} events; {path} was not "
                "written"
            )
        results.append(parity)

    export = export_onnx(
        model, path, opset=opset, metadata=metadata, check=parity_check, overwrite=overwrite
    )
    return export, results[0]


def onnx_session(path: Path, providers: list[str] | None = None) -> Any:
    """An onnxruntime session, on CUDA when available and asked for, else CPU.

    onnxruntime silently falls back to CPU when a CUDA provider cannot load; the provider
    really in use is ``session.get_providers()[0]``.
    """
    # deferred: onnxruntime loads slowly
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = providers or [
        p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
    ]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=wanted)


def _as_rows(values: Any) -> np.ndarray:
    """An output as (events, values): rank-1 outputs become one column."""
    array = np.asarray(values)
    return array.reshape(len(array), -1)


def check_onnx(
    export: OnnxExport, model: keras.Model, x: Any, *, batch_size: int = 4096
) -> OnnxParity:
    """Run the ONNX model and the Keras model on ``x`` and compare every output (``x``: one
    array per input, in the model's input order, for a model with several inputs)."""
    session = onnx_session(export.path)
    arrays = [
        np.ascontiguousarray(a, dtype=np.float32)
        for a in (x if isinstance(x, list | tuple) else [x])
    ]
    names = export.input_names or (export.input_name,)
    if len(arrays) != len(names):
        raise ExportError(
            f"the ONNX model takes {len(names)} inputs ({', '.join(names)}); "
            f"got {len(arrays)} arrays"
        )
    n_events = len(arrays[0])
    if n_events == 0:
        raise ExportError("no events to compare onnxruntime with Keras on")
    if any(len(a) != n_events for a in arrays):
        raise ExportError(
            f"the input arrays hold different numbers of events: {[len(a) for a in arrays]}"
        )
    batches = [
        session.run(
            None, {name: a[i : i + batch_size] for name, a in zip(names, arrays, strict=True)}
        )
        for i in range(0, n_events, batch_size)
    ]
    x = arrays if len(arrays) > 1 else arrays[0]
    onnx_outs = [np.concatenate([batch[k] for batch in batches]) for k in range(len(batches[0]))]
    keras_outs = model.predict(x, batch_size=batch_size, verbose=0)
    if not isinstance(keras_outs, list | tuple):
        keras_outs = [keras_outs]
    if len(onnx_outs) != len(keras_outs):
        raise ExportError(
            f"the ONNX model has {len(onnx_outs)} outputs, the Keras model {len(keras_outs)}"
        )
    diffs = []
    reference = 0.0
    for k, (o, kv) in enumerate(zip(onnx_outs, keras_outs, strict=True)):
        kv = np.asarray(kv)
        reference = max(reference, float(np.max(np.abs(kv))) if kv.size else 0.0)
        if o.shape != kv.shape:
            raise ExportError(f"ONNX output {k} has shape {o.shape}, the Keras one {kv.shape}")
        diffs.append(float(np.max(np.abs(o.astype(np.float64) - kv))) if o.size else 0.0)
    first_onnx, first_keras = _as_rows(onnx_outs[0]), _as_rows(keras_outs[0])
    agreement = (
        float(np.mean(first_onnx.argmax(1) == first_keras.argmax(1)))
        if first_onnx.shape[1] > 1
        else None
    )
    return OnnxParity(
        n_events=n_events,
        max_abs_diff=max(diffs),
        argmax_agreement=agreement,
        provider=session.get_providers()[0],
        per_output=tuple(diffs),
        reference_max_abs=reference,
    )
