"""``hepfpga scan``: accuracy, AUC and hardware cost over bit widths, with a Pareto plot.

:func:`run_scan` trains the float model of a run config once, then for each bit width ``b``
fine-tunes its QKeras counterpart with ``quantized_bits(b, weight_integer)`` weights and
biases and ``quantized_relu(b, activation_integer)`` activations (the input quantizer is
kept), evaluates it on the test jets and traces it into da4ml's RTL
(:mod:`hepfpga.firmware.rtl`). Hardware figures per point: pipeline stages (latency in cycles
and ns at ``firmware.clock_period``), da4ml's LUT/FF estimates, and with ``synthesize`` the
yosys counts (slower: about a minute per point). The Pareto front is over (LUT, accuracy);
the smallest design within ``tolerance`` of the float accuracy is named, with its
LUT-equivalent (LUT + 55 x DSP; the RTL uses no DSP) next to the hls4ml tutorial reference
(Vitis HLS 2024.1, 6-bit pruned jet tagger on xcu250 at 5 ns: 12 cycles, 34 DSP, 42,160 LUT,
LUT-equivalent 44,030).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepfpga.errors import ConfigError
from hepfpga.firmware.rtl.codegen import write_rtl
from hepfpga.firmware.rtl.synth import synthesize as yosys
from hepfpga.firmware.rtl.trace import trace_model
from hepfpga.firmware.verify import keras_outputs_with_logits
from hepfpga.pipeline.config import PipelineConfig
from hepfpga.pipeline.run import Run
from hepfpga.pipeline.stages import data_stage, float_training_stage
from hepfpga.quantize.qat import quantize_model
from hepfpga.train.evaluate import evaluate_classifier
from hepfpga.train.fit import fit_classifier
from hepfpga.train.tasks import ClassificationConfig

__all__ = [
    "MAX_BITS",
    "MIN_BITS",
    "REFERENCE",
    "OverlayPoint",
    "ScanPoint",
    "ScanResult",
    "parse_bits",
    "plot_scan",
    "precision_points",
    "run_scan",
]

log = logging.getLogger("hepfpga.pipeline.scan")

#: the hls4ml tutorial's jet tagger (QKeras 6-bit, pruned; Vitis HLS 2024.1 on xcu250, 5 ns)
REFERENCE = {
    "source": "hls4ml tutorial, Vitis HLS 2024.1 estimate, xcu250 at 5 ns",
    "latency_cycles": 12,
    "lut": 42_160,
    "dsp": 34,
    "ff": 3_199,
    "accuracy": 0.761,
    "lut_equivalent": 42_160 + 55 * 34,
}


#: the bit widths a scan accepts (weights and activations; the smallest a quantized_bits with
#: a sign bit and one value bit, the largest where the fine-tuned QKeras model stops changing)
MIN_BITS, MAX_BITS = 2, 16


def parse_bits(text: str, *, option: str = "--bits") -> list[int]:
    """``"3-10"`` (a range, both ends included) or ``"4,6,8"`` -> the bit widths, each from
    :data:`MIN_BITS` to :data:`MAX_BITS`, checked before a range is listed (``3-10**11`` is
    refused, not expanded)."""
    accepted = f"expected e.g. '3-10' or '4,6,8' with widths from {MIN_BITS} to {MAX_BITS}"
    try:
        if "-" in text.strip().lstrip("-"):
            low, high = (int(v) for v in text.split("-", 1))
            ends = [low, high]
        else:
            ends = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{option}: {accepted}, got {text[:100]!r}") from exc
    if not ends or any(not MIN_BITS <= b <= MAX_BITS for b in ends):
        raise ConfigError(f"{option}: {accepted}, got {text[:100]!r}")
    if "-" in text.strip().lstrip("-"):
        if ends[0] > ends[1]:
            raise ConfigError(f"{option}: the range {text!r} is empty; {accepted}")
        return list(range(ends[0], ends[1] + 1))
    return ends


@dataclass(frozen=True)
class ScanPoint:
    """One bit width: accuracy, mean AUC and hardware figures."""

    bits: int
    accuracy: float
    mean_auc: float
    auc: dict[str, float]
    latency_cycles: int
    latency_ns: float
    #: LUT and FF: yosys counts when synthesized, else da4ml's estimates
    lut: int
    ff: int
    lut_source: str
    lut_equivalent: int
    seconds: float


@dataclass(frozen=True)
class ScanResult:
    float_accuracy: float
    tolerance: float
    points: tuple[ScanPoint, ...]
    #: bit widths on the Pareto front of (LUT, accuracy), ascending LUT
    pareto: tuple[int, ...]
    #: smallest design (LUT) within ``tolerance`` of the float accuracy (None: none is)
    smallest_within_tolerance: int | None
    reference: dict[str, Any]


@dataclass(frozen=True)
class OverlayPoint:
    """A design drawn over a scan's points: a model's firmware at other types (``hepfpga
    optimize-precision``), with its accuracy and da4ml's LUT estimate of the whole network."""

    label: str
    accuracy: float
    lut: float
    #: ``quantizer-derived`` or ``optimised``
    kind: str


def precision_points(folder: Path) -> list[OverlayPoint]:
    """The quantizer-derived and the chosen types of a ``hepfpga optimize-precision`` output
    folder (its ``search.json``): accuracy (bit-exact: on every event; accuracy mode: on the
    held-out events) and da4ml's whole-network LUT estimate (its final points; else the
    search's sum over the layers)."""
    path = Path(folder) / "search.json"
    if not path.is_file():
        raise ConfigError(
            f"--precision {folder}: not an output folder of hepfpga optimize-precision (no "
            "search.json)"
        )
    try:
        record = json.loads(path.read_text())
        search = record["search"]
        whole = {p["trial"]: p["lut_estimate_whole"] for p in record.get("final", [])}
        accuracy_key = "heldout_accuracy" if search["constraint"] == "accuracy" else "accuracy"
        points = []
        for key, kind in (("baseline", "quantizer-derived"), ("best", "optimised")):
            trial = search[key]
            accuracy = trial.get(accuracy_key)
            if accuracy is None:
                raise ConfigError(
                    f"--precision {folder}: search.json has no accuracy of the {kind} types "
                    "(the search had no labels: a run folder, or --labels-key, gives them)"
                )
            lut = whole.get(trial["number"], trial["lut_estimate"])
            points.append(OverlayPoint(f"{kind} ({search['constraint']})", accuracy, lut, kind))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"--precision {folder}: search.json does not hold optimize-precision's record ({exc})"
        ) from exc
    return points


def _pareto(points: list[ScanPoint]) -> tuple[int, ...]:
    front, best = [], -1.0
    for point in sorted(points, key=lambda p: (p.lut, -p.accuracy)):
        if point.accuracy > best:
            front.append(point.bits)
            best = point.accuracy
    return tuple(front)


def run_scan(
    config: PipelineConfig,
    bits: list[int],
    *,
    synthesize: bool = False,
    tolerance: float = 0.01,
) -> ScanResult:
    """Scan weight/activation bit widths ``bits`` for ``config`` (see the module notes); a
    classification config only (the scan's figures are accuracy and AUC of a classifier)."""
    if not bits or any(b < MIN_BITS or b > MAX_BITS for b in bits):
        raise ConfigError(
            f"expected bit widths from {MIN_BITS} to {MAX_BITS}, got {bits[:20]}", path="scan.bits"
        )
    if not isinstance(config.task, ClassificationConfig):
        raise ConfigError(
            f"scan measures classifiers (accuracy, AUC); this config's task is "
            f"'{config.task.name}' (accepted: classification)",
            path="task",
        )
    points: list[ScanPoint] = []
    with tempfile.TemporaryDirectory(prefix="hepfpga-scan-") as folder:
        run = Run(config=config, run_dir=Path(folder))
        data = data_stage(run)
        run.results["data"] = data
        float_result = float_training_stage(run)
        float_metrics = evaluate_classifier(float_result.probs, data.y_test, data.classes)
        log.info("float accuracy %.4f", float_metrics.accuracy)
        inputs = data.inputs
        for b in bits:
            start = time.perf_counter()
            spec = dataclasses.replace(config.quantization, weight_bits=b, activation_bits=b)
            qmodel = quantize_model(float_result.model, spec)
            fit_classifier(
                qmodel,
                inputs.train,
                data.y_train,
                inputs.validation,
                data.y_val,
                spec,
                seed=config.seed,
            )
            probs, _ = keras_outputs_with_logits(qmodel, data.x_test)
            metrics = evaluate_classifier(probs, data.y_test, data.classes)
            net = trace_model(qmodel)
            project = write_rtl(
                net, Path(folder) / f"rtl_{b}", clock_period_ns=config.firmware.clock_period
            )
            lut, ff, source = int(project.estimated_luts), project.estimated_ffs, "da4ml estimate"
            if synthesize:
                result = yosys(project)
                lut, ff, source = result.lut, result.ff, result.tool
            auc = dict(metrics.auc)
            points.append(
                ScanPoint(
                    bits=b,
                    accuracy=metrics.accuracy,
                    mean_auc=sum(auc.values()) / len(auc),
                    auc=auc,
                    latency_cycles=project.n_stages,
                    latency_ns=project.n_stages * config.firmware.clock_period,
                    lut=lut,
                    ff=ff,
                    lut_source=source,
                    lut_equivalent=lut,
                    seconds=round(time.perf_counter() - start, 1),
                )
            )
            log.info(
                "%d bits: accuracy %.4f, %d LUT (%s), %d cycles",
                b,
                metrics.accuracy,
                lut,
                source,
                project.n_stages,
            )
    within = [p for p in points if p.accuracy >= float_metrics.accuracy - tolerance]
    smallest = min(within, key=lambda p: p.lut).bits if within else None
    return ScanResult(
        float_accuracy=float_metrics.accuracy,
        tolerance=tolerance,
        points=tuple(points),
        pareto=_pareto(points),
        smallest_within_tolerance=smallest,
        reference=dict(REFERENCE),
    )


def plot_scan(result: ScanResult, path: Path, overlays: tuple[OverlayPoint, ...] = ()) -> None:
    """Accuracy against LUT per bit width, the Pareto front joined, the float accuracy and
    its tolerance band drawn; ``overlays`` (other designs, e.g. :func:`precision_points`)
    drawn with their own markers. Every LUT figure here is da4ml's estimate unless the scan
    synthesized (then its points are yosys counts and the overlays stay estimates: the axis
    label says which)."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for p in result.points:
        ax.scatter(p.lut, p.accuracy, color="C0")
        ax.annotate(f"{p.bits} b", (p.lut, p.accuracy), textcoords="offset points", xytext=(4, 4))
    front = [p for b in result.pareto for p in result.points if p.bits == b]
    ax.plot([p.lut for p in front], [p.accuracy for p in front], color="C1", label="Pareto front")
    ax.axhline(result.float_accuracy, color="k", linestyle="--", label="float")
    ax.axhspan(result.float_accuracy - result.tolerance, result.float_accuracy, color="0.9")
    markers = {"quantizer-derived": ("s", "C2"), "optimised": ("*", "C3")}
    for o in overlays:
        marker, color = markers.get(o.kind, ("D", "C4"))
        ax.scatter(o.lut, o.accuracy, marker=marker, color=color, s=70, label=o.label, zorder=5)
    ax.set_xscale("log")
    source = result.points[0].lut_source
    ax.set_xlabel(
        f"LUT ({source})" + ("" if not overlays or "da4ml" in source else "; overlays: da4ml")
    )
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
