"""The stages every task shares or starts from, each a function ``stage(run) -> typed
result`` (:mod:`hepfpga.pipeline.run`): data, float training, QKeras QAT, ONNX, firmware, its
C-simulation verification and the classification evaluation. The base stage list
(:data:`hepfpga.pipeline.stage_list.STAGES`) composes them with the pre-flight, emulation,
hardware, BDT and analysis stages; a task replaces or removes stages of it by name.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from hepfpga.artifacts import write_json_atomic
from hepfpga.deploy.onnx_export import check_onnx, export_onnx
from hepfpga.errors import ConversionError, DataError
from hepfpga.firmware import (
    FirmwareOptions,
    compile_project,
    record_verification,
    verify_model,
    write_project,
)
from hepfpga.firmware.csim import predict
from hepfpga.firmware.hgq import HGQVerification, verify_hgq_model, write_hgq_project
from hepfpga.firmware.hls_config import hls4ml_ready_model
from hepfpga.firmware.precision import check_supported
from hepfpga.firmware.verify import keras_outputs_with_logits
from hepfpga.pipeline.config import config_to_dict, parse_config
from hepfpga.pipeline.run import (
    MODELS,
    SCORES_FILE,
    Check,
    Run,
    StageResult,
    scores_with_method_key,
)
from hepfpga.quantize.hgq import (
    ebops,
    is_hgq_model,
    logits_model,
    onnx_ready_proxy,
    proxy_model,
    with_softmax,
)
from hepfpga.quantize.methods import QUANTIZATION_METHODS
from hepfpga.quantize.model_io import save_keras_model
from hepfpga.train.architectures import build_model, get_architecture
from hepfpga.train.dataset import Split, split_sample, stratified_subsample
from hepfpga.train.evaluate import evaluate_classifier, plot_roc
from hepfpga.train.fit import fit_classifier, peak_rss_mb
from hepfpga.train.io import builtin_sample_path, load_sample
from hepfpga.train.stream import (
    LoadingPlan,
    ShardedSample,
    StreamedInputs,
    fit_streamed,
    loading_plan,
    split_stream,
    stream_inputs,
)

if TYPE_CHECKING:
    from hepfpga.deploy.onnx_export import OnnxExport, OnnxParity
    from hepfpga.firmware.project import FirmwareProject
    from hepfpga.firmware.verify import VerificationReport
    from hepfpga.train.architectures import Architecture, FirmwareForm
    from hepfpga.train.evaluate import ClassifierMetrics
    from hepfpga.train.fit import FitResult
    from hepfpga.train.jets import JetSample
    from hepfpga.train.representations import PreparedInputs

__all__ = [
    "DataResult",
    "EvaluationResult",
    "FirmwareResult",
    "FloatModelResult",
    "ModelResult",
    "OnnxResult",
    "QuantizedModelResult",
    "VerificationResult",
    "build_data_result",
    "data_stage",
    "evaluation_stage",
    "firmware_stage",
    "float_training_stage",
    "held_training_inputs",
    "load_run_sample",
    "onnx_stage",
    "peak_rss_section",
    "prepare_run_inputs",
    "qat_stage",
    "rebuild_run_data",
    "run_firmware_options",
    "split_run_sample",
    "verification_stage",
]

log = logging.getLogger("hepfpga")
DataResultT = TypeVar("DataResultT", bound="DataResult")


# --- data -------------------------------------------------------------------------------


@dataclass
class DataResult(StageResult):
    """The jets, their split, the network inputs of the architecture's representation.

    A streamed run (``data.loading``, :func:`streamed_data_result`) holds no whole sample:
    ``sample`` is then its test jets (what ``x_test`` is made of, only the representation's
    parts read), ``inputs`` a :class:`~hepfpga.train.stream.StreamedInputs` (the training and
    validation inputs drawn in batches), ``n_jets`` the jets of the whole sample and
    ``loading`` why it streamed."""

    sample: JetSample
    path: Path | None
    architecture: Architecture
    inputs: PreparedInputs | StreamedInputs
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    x_test: np.ndarray
    n_jets: int | None = None
    loading: LoadingPlan | None = None

    @property
    def streamed(self) -> StreamedInputs | None:
        """The streamed inputs of a streamed run (None: the run holds its jets in memory)."""
        return self.inputs if isinstance(self.inputs, StreamedInputs) else None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.sample.class_names)

    def onnx_metadata(self, run: Run) -> dict[str, Any]:
        """What ``model.onnx``'s metadata says of the model's inputs and outputs: the class
        of each output (``class_names``), the input preprocessing (``scaler`` / ``inputs``)."""
        metadata: dict[str, Any] = {"class_names": list(self.classes)}
        if self.inputs.scaler is not None:
            metadata["scaler"] = self.inputs.scaler.to_dict()
        metadata["inputs"] = self.inputs.preprocessing
        return metadata

    def report_items(self, run: Run) -> dict[str, Any]:
        classes = self.classes
        loading: dict[str, Any] = {
            "streamed": self.streamed is not None,
            "reason": self.loading.reason if self.loading else "in memory",
        }
        if self.streamed is not None:
            cap = run.config.verification.max_events
            loading["held_in_memory"] = (
                f"the {len(self.y_test)} test jets (inputs and the representation's parts of "
                f"the jets; verification.max_events: {cap}), the labels of all jets and the "
                "split's jet numbers; training and validation inputs are streamed in batches "
                "unless a later stage asks for them whole (bdt, analysis)"
            )
        return {
            "data": {
                "path": str(self.path),
                "n_jets": len(self.sample) if self.n_jets is None else self.n_jets,
                "loading": loading,
                "classes": list(classes),
                "features": list(self.sample.feature_names),
                "split": {
                    "train": len(self.y_train),
                    "validation": len(self.y_val),
                    "test": len(self.y_test),
                },
                "test_jets_per_class": {
                    c: int(np.sum(self.y_test == i)) for i, c in enumerate(classes)
                },
                "scaling": run.config.data.scaling,
                "representation": self.inputs.preprocessing["representation"],
                "input_shape": list(self.inputs.input_shape),
            },
            "architecture": {
                "name": self.architecture.name,
                "description": self.architecture.description,
                "task": self.architecture.task,
                "firmware_exactness": self.architecture.exactness,
            },
            # report_items run when the report is written, after the last stage
            "resources": peak_rss_section(),
        }


def peak_rss_section() -> dict[str, Any]:
    """The run's peak resident memory for ``report.json`` (``resources``): ``getrusage(
    RUSAGE_SELF).ru_maxrss`` when the report is written (KiB on Linux, bytes on macOS),
    in MiB (2**20 bytes). It is the process's peak, which includes whatever the process
    did before the run (one ``hepfpga run`` command: the run alone)."""
    return {
        "peak_rss_mib": round(peak_rss_mb(), 1),
        "peak_rss_source": (
            "getrusage(RUSAGE_SELF).ru_maxrss of the hepfpga process when the report was "
            "written, in MiB (2**20 bytes)"
        ),
    }


def load_run_sample(run: Run) -> tuple[Path, JetSample]:
    """The run's jet sample (``data.path``, or the built-in one) and its path, loaded into
    memory (the data stages of the tasks that do not stream; ``data.loading: stream`` is
    refused there with one line)."""
    data = run.config.data
    if data.loading == "stream":
        raise DataError(
            f"data.loading: stream: the {run.config.task.name} task loads its jets into "
            "memory (streamed training serves the classification task); accepted here: "
            "auto, memory"
        )
    path = data.path if data.path is not None else builtin_sample_path()
    return path, load_sample(path)


def split_run_sample(run: Run, sample: JetSample) -> Split:
    """``sample`` cut to ``data.max_jets`` (stratified) and split as configured (the same
    stratified split for every task with the same seed). A streamed run's ``sample`` is its
    test jets alone (:class:`DataResult`): they are the split's test part (training and
    validation parts empty) when they are all the test jets; when ``verification.max_events``
    capped them, a :class:`~hepfpga.errors.DataError` says the whole test part is not held."""
    config = run.config
    if sample.metadata.get("streamed_part") == "test":
        cap = sample.metadata.get("capped_at")
        if cap is not None:
            raise DataError(
                f"the run streamed {config.data.path} (data.loading) and holds only {len(sample)} "
                f"of its test jets (verification.max_events: {cap}); name a background file "
                "(task.trigger_rates.background), or set verification.max_events: null or "
                "data.loading: memory"
            )
        none = sample.subset(np.arange(0))
        return Split(none, none, sample)
    if config.data.max_jets is not None:
        sample = stratified_subsample(sample, config.data.max_jets, config.seed)
    s = config.data.split
    return split_sample(sample, (s.train, s.validation, s.test), config.seed)


def prepare_run_inputs(run: Run, split: Split) -> PreparedInputs:
    """The network inputs of the architecture's representation of ``split`` (scaling fitted on
    ``split.train``), its preprocessing saved in the run folder: ``scaler.json`` for scaled
    features, ``inputs.json`` otherwise."""
    config = run.config
    inputs = config.model.input_representation(config.data).prepare(split)
    if inputs.scaler is not None:
        inputs.scaler.save(run.run_dir / "scaler.json")
    else:
        write_json_atomic(run.run_dir / "inputs.json", inputs.preprocessing)
    return inputs


def build_data_result(
    run: Run,
    path: Path,
    sample: Any,
    split: Split,
    result: type[DataResultT],
    **extra: Any,
) -> DataResultT:
    """A ``result`` (:class:`DataResult` or a subclass, with the ``extra`` fields) for the jets of
    ``split``: the architecture's inputs prepared by :func:`prepare_run_inputs` (scaling fitted
    on ``split.train``), the labels of the three parts, the test inputs."""
    inputs = prepare_run_inputs(run, split)
    return result(
        sample=sample,
        path=path,
        architecture=get_architecture(run.config.model.architecture),
        inputs=inputs,
        y_train=split.train.labels,
        y_val=split.validation.labels,
        y_test=split.test.labels,
        x_test=inputs.test,
        **extra,
    )


def streamed_data_result(run: Run, path: Path, plan: LoadingPlan) -> DataResult:
    """The :class:`DataResult` of a streamed run: the split cut from the labels alone
    (:func:`~hepfpga.train.stream.split_stream`: the jets :func:`split_run_sample` gives in
    memory), the preprocessing fitted on a streamed pass over the training jets and saved as
    :func:`prepare_run_inputs` saves it, and only the test jets read into memory (at most
    ``verification.max_events`` of them, the stratified subset the in-memory run keeps)."""
    config = run.config
    sample = ShardedSample.open(path)
    s = config.data.split
    split = split_stream(
        sample, (s.train, s.validation, s.test), config.seed, max_jets=config.data.max_jets
    )
    cap = config.verification.max_events
    full_test = len(split.test)
    if cap is not None:
        split = split.capped_test(sample.labels, len(sample.class_names), cap, config.seed)
    representation = config.model.input_representation(config.data)
    inputs = stream_inputs(
        sample, split, representation, batch_size=config.training.batch_size, seed=config.seed
    )
    if inputs.scaler is not None:
        inputs.scaler.save(run.run_dir / "scaler.json")
    else:
        write_json_atomic(run.run_dir / "inputs.json", inputs.preprocessing)
    test_jets = inputs.jets("test")
    test_jets.metadata["streamed_part"] = "test"
    test_jets.metadata["capped_at"] = cap if len(split.test) < full_test else None
    return DataResult(
        sample=test_jets,
        path=path,
        architecture=get_architecture(config.model.architecture),
        inputs=inputs,
        y_train=inputs.labels("train"),
        y_val=inputs.labels("validation"),
        y_test=inputs.labels("test"),
        x_test=inputs.held("test"),
        n_jets=len(sample),
        loading=plan,
    )


def data_stage(run: Run) -> DataResult:
    """Load the jets, subsample, split, and build the architecture's inputs (preprocessing
    fitted on the training jets only); or, when ``data.loading`` says so, stream them
    (:func:`streamed_data_result`)."""
    config = run.config
    data = config.data
    path = data.path if data.path is not None else builtin_sample_path()
    plan = loading_plan(data, path, builtin=data.path is None)
    log.info("%s", plan.reason)
    if plan.streamed:
        return streamed_data_result(run, path, plan)
    path, sample = load_run_sample(run)
    split = split_run_sample(run, sample)
    if config.verification.max_events is not None:
        # the jets are stored class by class: a plain head of the test set would miss classes
        test = stratified_subsample(split.test, config.verification.max_events, config.seed)
        split = Split(split.train, split.validation, test)
    result = build_data_result(run, path, sample, split, DataResult)
    result.loading = plan
    return result


def held_training_inputs(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """The training inputs and labels for the stages that need them in memory at once (the
    BDT's fit, the overtraining check, the HGQ proxy's range tracing): all of them when the
    run loads its jets; when it streams, the stratified subsample of at most
    ``data.held_train_jets`` training jets drawn with ``seed``
    (:meth:`~hepfpga.train.stream.StreamedInputs.subsample`: read once, shared by the
    stages), so memory does not grow with the sample."""
    data = run.get(DataResult)
    if data.streamed is None:
        return data.inputs.train, data.y_train
    return data.streamed.subsample("train", run.config.data.held_train_jets, run.config.seed)


# --- models -----------------------------------------------------------------------------


@dataclass
class ModelResult(StageResult):
    """A fitted model and its test-set outputs."""

    label: str
    model: Any
    fit: FitResult
    probs: np.ndarray
    logits: np.ndarray | None = None


@dataclass
class FloatModelResult(ModelResult):
    def report_items(self, run: Run) -> dict[str, Any]:
        return {"float": {"fit": self.fit.to_dict()}}


@dataclass
class QuantizedModelResult(ModelResult):
    #: the method's name (``quantization.method``)
    method: str = "qkeras"
    #: HGQ: the proxy model of the logits, which the firmware is built from (else None)
    proxy: Any = None
    #: HGQ: EBOPs of the trained model (its resource estimate; else None)
    ebops: float | None = None

    def report_items(self, run: Run) -> dict[str, Any]:
        item: dict[str, Any] = {
            "quantization": config_to_dict(run.config)["quantization"],
            "fit": self.fit.to_dict(),
        }
        if self.ebops is not None:
            item["ebops"] = self.ebops
        # the section is named after the method (``qkeras``, ``hgq``); RunReport reads an
        # ``hgq`` section as the quantized model too
        return {self.method: item}


def rebuild_run_data(config: Mapping[str, Any], *, source: str, scratch: Path) -> DataResult:
    """The data stage of a finished run made again from its recorded ``config`` (the
    ``config`` section of its report; ``source`` names it in errors): the same seed, split and
    preprocessing fitted on the training jets. It runs in ``scratch`` (created, removed
    afterwards)."""
    run_config = parse_config(dict(config), source=source)
    scratch.mkdir(parents=True)
    try:
        return data_stage(Run(config=run_config, run_dir=scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


#: the keys of a run's recorded ``firmware`` section that make its hls4ml project options
RUN_FIRMWARE_KEYS = ("backend", "io_type", "strategy", "part", "clock_period", "reuse_factor")


def run_firmware_options(firmware: Mapping[str, Any]) -> FirmwareOptions:
    """The hls4ml project options of a run from its recorded ``firmware`` section."""
    return FirmwareOptions.from_dict({k: firmware[k] for k in RUN_FIRMWARE_KEYS if k in firmware})


def float_training_stage(run: Run) -> FloatModelResult:
    """Build the architecture's float model and fit it (early stopping on validation)."""
    data = run.get(DataResult)
    config = run.config
    inputs = data.inputs
    model = build_model(inputs.input_shape, len(data.classes), config.model, seed=config.seed)
    if data.streamed is not None:  # tf.data batches, shuffled per epoch from the seed
        fit = fit_streamed(
            model,
            data.streamed.with_batch_size(config.training.batch_size),
            config.training,
            seed=config.seed,
        )
    else:
        fit = fit_classifier(
            model,
            inputs.train,
            data.y_train,
            inputs.validation,
            data.y_val,
            config.training,
            seed=config.seed,
        )
    save_keras_model(model, run.run_dir / "float_model.h5")
    probs = model.predict(data.x_test, batch_size=4096, verbose=0)
    return FloatModelResult("float", model, fit, probs)


def qat_stage(run: Run) -> QuantizedModelResult:
    """The quantized counterpart of the float model (``quantization.method``'s entry of
    :data:`~hepfpga.quantize.methods.QUANTIZATION_METHODS`), fine-tuned (quantization-aware);
    for HGQ also its proxy model (``hgq_proxy_model.h5``, activation ranges traced on the
    training set), which the firmware is built from."""
    data = run.get(DataResult)
    float_model = run.get(FloatModelResult).model
    config = run.config
    method = QUANTIZATION_METHODS[config.quantization.method]
    qmodel = method.counterpart(float_model, config.quantization)
    inputs = data.inputs
    settings = (
        method.fit_settings(config.quantization) if method.fit_settings else config.quantization
    )
    if data.streamed is not None:  # tf.data batches, shuffled per epoch from the seed
        fit = fit_streamed(
            qmodel,
            data.streamed.with_batch_size(settings.batch_size),
            settings,
            seed=config.seed,
            callbacks=method.callbacks(config.quantization),
        )
    else:
        fit = fit_classifier(
            qmodel,
            inputs.train,
            data.y_train,
            inputs.validation,
            data.y_val,
            settings,
            seed=config.seed,
            callbacks=method.callbacks(config.quantization),
        )
    save_keras_model(qmodel, run.run_dir / method.model_file)
    proxy = cost = None
    if is_hgq_model(qmodel):
        proxy = proxy_model(logits_model(qmodel), held_training_inputs(run)[0])
        cost = ebops(qmodel)
        save_keras_model(proxy, run.run_dir / method.firmware_model_file)
    probs, logits = keras_outputs_with_logits(qmodel, data.x_test)
    return QuantizedModelResult(
        "qkeras", qmodel, fit, probs, logits, method=method.name, proxy=proxy, ebops=cost
    )


# --- ONNX -------------------------------------------------------------------------------


@dataclass
class OnnxResult(StageResult):
    export: OnnxExport
    parity: OnnxParity
    #: the quantization method of the model the ONNX file stands for (names the keys)
    method: str = "qkeras"

    def report_items(self, run: Run) -> dict[str, Any]:
        return {f"onnx_vs_{self.method}": self.parity.to_dict()}

    def checks(self, run: Run) -> dict[str, Check]:
        tolerance = run.config.onnx.tolerance
        return {
            f"onnx_vs_{self.method}_max_abs_diff": Check(
                self.parity.max_abs_diff, f"<= {tolerance}", self.parity.max_abs_diff <= tolerance
            )
        }


def onnx_stage(run: Run) -> OnnxResult | None:
    """Export the quantized model with tf2onnx and check it with onnxruntime on the test set.
    An HGQ run exports its proxy model (the firmware's reference, followed by the softmax)
    in the plain-operation form tf2onnx converts
    (:func:`hepfpga.quantize.hgq.onnx_ready_proxy`), checked against that proxy model."""
    data = run.get(DataResult)
    quantized = run.get(QuantizedModelResult)
    if quantized.proxy is not None:
        reference = with_softmax(quantized.proxy)
        export = export_onnx(
            onnx_ready_proxy(reference),
            run.run_dir / "model.onnx",
            opset=run.config.onnx.opset,
            metadata=data.onnx_metadata(run),
        )
        return OnnxResult(export, check_onnx(export, reference, data.x_test), quantized.method)
    qmodel = quantized.model
    export = export_onnx(
        qmodel,
        run.run_dir / "model.onnx",
        opset=run.config.onnx.opset,
        metadata=data.onnx_metadata(run),
    )
    return OnnxResult(export, check_onnx(export, qmodel, data.x_test))


# --- firmware and its verification ------------------------------------------------------


@dataclass
class FirmwareResult(StageResult):
    """The run's hls4ml project, or why there is none (a layer the firmware stage does not
    convert yet): then the run says so instead of claiming a result."""

    project: FirmwareProject | None
    testbench_events: int
    not_available: str | None = None
    #: the model the firmware is built from when it is another form of the QKeras model
    #: (the architecture's ``firmware_form``), else None
    form: FirmwareForm | None = None
    #: max |difference| between that form's and the QKeras model's outputs on the test jets
    form_max_abs_diff: float | None = None

    def firmware_inputs(self, x: Any) -> Any:
        """The firmware's inputs for the representation's input array ``x``."""
        return firmware_inputs(self.form, x)

    def report_items(self, run: Run) -> dict[str, Any]:
        if self.project is None:
            return {"firmware": {"status": "not available", "reason": self.not_available}}
        firmware: dict[str, Any] = {
            "status": "built",
            "folder": "firmware",
            "options": run.config.firmware.to_dict(),
            "logits_layer": self.project.logits_layer,
            "compile_seconds": self.project.compile_seconds,
            "testbench_events": self.testbench_events,
        }
        if self.form is not None:
            firmware["model"] = {
                "form": self.form.description,
                "inputs": [tensor.node.layer.name for tensor in self.form.model.inputs],
                "max_abs_diff_vs_qkeras": self.form_max_abs_diff,
            }
        return {"firmware": firmware}

    def checks(self, run: Run) -> dict[str, Check]:
        if self.form is None or self.form_max_abs_diff is None:
            return {}
        diff = self.form_max_abs_diff
        return {
            "firmware_model_vs_qkeras_max_abs_diff": Check(
                diff, "== 0", diff == 0.0, reason=self.form.description
            )
        }


def firmware_inputs(form: FirmwareForm | None, x: Any) -> Any:
    """The inputs of the firmware's model for the representation's input array ``x``."""
    return x if form is None else form.inputs(x)


def firmware_unavailable_reason(qmodel: Any) -> str | None:
    """Why the firmware stage cannot convert ``qmodel`` (None: it can)."""
    try:
        check_supported(hls4ml_ready_model(qmodel))
    except ConversionError as exc:
        return str(exc)
    return None


def firmware_stage(run: Run) -> FirmwareResult:
    """Write the hls4ml project of the QKeras model (test bench from the test set) and compile
    its C simulation."""
    data = run.get(DataResult)
    q = run.get(QuantizedModelResult)
    if q.proxy is not None:  # HGQ: the proxy model carries every type
        project = write_hgq_project(
            q.proxy, run.config.firmware, run.run_dir / "firmware", compile=True
        )
        return FirmwareResult(project, 0)
    n_tb = min(run.config.verification.testbench_events, len(data.x_test))
    make_form = data.architecture.firmware_form
    form = make_form(q.model) if make_form is not None else None
    model = q.model if form is None else form.model
    reason = firmware_unavailable_reason(model)
    if reason is not None:
        log.warning("firmware not available for this model: %s", reason)
        return FirmwareResult(None, 0, not_available=reason)
    difference = None
    if form is not None:  # the same function as the QKeras model, checked on the test jets
        form_probs = form.model.predict(form.inputs(data.x_test), batch_size=4096, verbose=0)
        difference = float(np.max(np.abs(np.asarray(form_probs) - q.probs)))
    x_test = firmware_inputs(form, data.x_test)
    project = write_project(
        model,
        run.config.firmware,
        run.run_dir / "firmware",
        testbench_inputs=(
            [a[:n_tb] for a in x_test] if isinstance(x_test, list) else x_test[:n_tb]
        ),
        testbench_outputs=q.probs[:n_tb],
    )
    compile_project(project)
    return FirmwareResult(project, n_tb, form=form, form_max_abs_diff=difference)


@dataclass
class VerificationResult(StageResult):
    """HLS (C simulation) against QKeras on the test jets, through
    :func:`hepfpga.firmware.verify_model` (layer by layer, with the first diverging layer)."""

    report: VerificationReport
    hls_probs: np.ndarray
    bit_exact_expected: bool

    def report_items(self, run: Run) -> dict[str, Any]:
        return {
            "hls_vs_qkeras": self.report.outputs.to_dict(),
            "verification": {
                "requirement": self.report.requirement,
                "passed": self.report.passed,
                "per_output": self.report.per_output,
                "layers": [layer.to_dict() for layer in self.report.layers],
                "first_divergence": (
                    self.report.diagnosis.to_dict() if self.report.diagnosis else None
                ),
            },
        }

    def checks(self, run: Run) -> dict[str, Check]:
        outputs = self.report.outputs
        fraction = outputs.logits_fraction_bit_exact
        if not self.bit_exact_expected:
            reason = run.get(DataResult).architecture.exactness
            checks = {
                "hls_vs_qkeras_argmax_agreement": Check(
                    outputs.argmax_agreement, None, True, reason=reason
                )
            }
            if self.report.bound is not None:  # verify's stated logits bound, reported
                held = "met" if self.report.passed else "not met"
                checks["hls_vs_qkeras_logits_max_abs_diff"] = Check(
                    outputs.logits_max_abs_diff,
                    None,
                    True,
                    reason=f"{self.report.requirement}: {held}; the run requires the HLS "
                    "accuracy drop instead (hls_accuracy_drop)",
                )
            return checks
        required = run.config.verification.require_bit_exact
        return {
            "hls_logits_bit_exact": Check(
                fraction, 1.0 if required else None, fraction == 1.0 or not required
            )
        }


@dataclass
class HGQVerificationResult(VerificationResult):
    """HLS (C simulation) against the HGQ proxy model's logits on the test jets
    (:func:`hepfpga.firmware.hgq.verify_hgq_model`); ``hls_probs``: the softmax of the
    firmware's logits (in float64)."""

    report: HGQVerification  # type: ignore[assignment]

    def report_items(self, run: Run) -> dict[str, Any]:
        return {"verification": self.report.to_dict()}

    def checks(self, run: Run) -> dict[str, Check]:
        fraction = self.report.n_exact / max(self.report.n_events, 1)
        required = run.config.verification.require_bit_exact
        return {
            "hls_logits_bit_exact": Check(
                fraction, 1.0 if required else None, fraction == 1.0 or not required
            )
        }


def verification_stage(run: Run) -> VerificationResult | None:
    """Verify the compiled project with :func:`~hepfpga.firmware.verify.verify_model` (the
    path of ``hepfpga verify``) and record the comparison in the project folder."""
    firmware = run.find(FirmwareResult)
    if firmware is None or firmware.project is None:  # no firmware stage, or no project
        return None
    data = run.get(DataResult)
    quantized = run.get(QuantizedModelResult)
    if quantized.proxy is not None:  # HGQ: the C simulation against the proxy model
        check = verify_hgq_model(
            quantized.proxy, data.x_test, out_dir=firmware.project.path, project=firmware.project
        )
        check = dataclasses.replace(check, ebops=quantized.ebops or 0.0)
        logits = predict(firmware.project, data.x_test)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return HGQVerificationResult(check, shifted / shifted.sum(axis=1, keepdims=True), True)
    qmodel = quantized.model
    model = qmodel if firmware.form is None else firmware.form.model
    x_test = firmware.firmware_inputs(data.x_test)
    report = verify_model(model, x_test, run.config.firmware, project=firmware.project)
    record_verification(firmware.project, report.outputs)
    hls_probs = predict(firmware.project, x_test)
    return VerificationResult(report, hls_probs, data.architecture.bit_exact)


# --- evaluation -------------------------------------------------------------------------


@dataclass
class EvaluationResult(StageResult):
    """Accuracy and per-class AUC of every model on the test jets, and the ROC plot."""

    metrics: dict[str, ClassifierMetrics]
    roc_path: Path

    def report_items(self, run: Run) -> dict[str, Any]:
        # the quantized model's section is named after its method (``qkeras``, ``hgq``)
        method = run.get(QuantizedModelResult).method
        items: dict[str, Any] = {}
        for name, metrics in self.metrics.items():
            items[method if name == "qkeras" else name] = {"test": metrics.to_dict()}
        return items

    def checks(self, run: Run) -> dict[str, Check]:
        method = run.get(QuantizedModelResult).method
        drop = self.metrics["float"].accuracy - self.metrics["qkeras"].accuracy
        limit = run.config.verification.max_accuracy_drop
        checks = {f"{method}_accuracy_drop": Check(drop, f"<= {limit}", drop <= limit)}
        architecture = run.get(DataResult).architecture
        if "hls" in self.metrics and not architecture.bit_exact:
            # not bit-exact by design (table-based sigmoid/tanh): the firmware must keep the
            # QKeras accuracy within the same limit
            hls_drop = self.metrics["qkeras"].accuracy - self.metrics["hls"].accuracy
            checks["hls_accuracy_drop"] = Check(
                hls_drop, f"<= {limit}", hls_drop <= limit, reason=architecture.exactness
            )
        return checks


def evaluation_stage(run: Run) -> EvaluationResult:
    """Accuracy, ROC curves and AUCs of the float, quantized (QKeras or HGQ) and (if built)
    HLS models; ``scores.npz`` holds the quantized model's scores under ``qkeras`` and, for
    another method, under its name too (:func:`~hepfpga.pipeline.run.scores_with_method_key`)."""
    data = run.get(DataResult)
    scores = {
        "float": run.get(FloatModelResult).probs,
        "qkeras": run.get(QuantizedModelResult).probs,
    }
    verification = run.find(VerificationResult)
    if verification is not None:
        scores["hls"] = verification.hls_probs
    metrics = {k: evaluate_classifier(v, data.y_test, data.classes) for k, v in scores.items()}
    roc = run.run_dir / "roc.png"
    method = QUANTIZATION_METHODS[run.config.quantization.method]
    plot_roc(
        {(method.display_name if k == "qkeras" else MODELS[k]): v for k, v in scores.items()},
        data.y_test,
        data.classes,
        roc,
        title=f"{run.config.name} ({data.architecture.name}): {len(data.y_test)} test jets",
    )
    np.savez_compressed(
        run.run_dir / SCORES_FILE,
        labels=data.y_test,
        class_names=np.asarray(data.classes),
        **scores_with_method_key(
            {name: np.asarray(v, dtype=np.float32) for name, v in scores.items()}, method.name
        ),
    )
    return EvaluationResult(metrics, roc)
