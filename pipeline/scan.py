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

With ``hgq_betas``, the run's HGQ counterpart (``quantization.method: hgq``, the pipeline's
own :func:`~hepfpga.pipeline.stages.qat_stage`) is trained from the same float weights once
per resource weight ``beta`` (``quantization.hgq`` otherwise as configured; the ramp of
``beta`` ends by the last epoch, :func:`_hgq_config`), and its proxy model (the model its
firmware and RTL reproduce bit for bit) is measured like a bit width: accuracy and AUCs of
the proxy model's softmax on the test jets, HGQ's EBOPs, da4ml's RTL of the proxy model
(and yosys with ``synthesize``). Both kinds of point share one Pareto front
(:attr:`ScanResult.front`). The plot also draws :data:`PUBLISHED`, the published figures of
the same network on the hls4ml LHC jet data set (another data set than the scan's:
reference markers, not comparisons).
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
from hepfpga.firmware.rtl.flow import RTL_METHODS, synthesized_resources
from hepfpga.firmware.verify import keras_outputs_with_logits
from hepfpga.pipeline.config import PipelineConfig
from hepfpga.pipeline.run import Run
from hepfpga.pipeline.stages import data_stage, float_training_stage, qat_stage
from hepfpga.quantize.hgq import with_softmax
from hepfpga.quantize.methods import check_method_architecture
from hepfpga.quantize.qat import quantize_model
from hepfpga.train.evaluate import evaluate_classifier
from hepfpga.train.fit import fit_classifier
from hepfpga.train.tasks import ClassificationConfig

__all__ = [
    "MAX_BITS",
    "MIN_BITS",
    "PUBLISHED",
    "PUBLISHED_LABEL",
    "REFERENCE",
    "DrawnMarker",
    "OverlayPoint",
    "PublishedPoint",
    "ScanPoint",
    "ScanResult",
    "parse_betas",
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


@dataclass(frozen=True)
class PublishedPoint:
    """A published result for the same jet tagger (16 inputs, 64-32-32-5, the hls4ml LHC jet
    data set), drawn on the scan's plot as a reference marker: another data set than the
    scan's (its five classes and features differ from the built-in sample), so a marker is a
    scale to read the scan's points against, not a point to beat."""

    label: str
    method: str
    #: test accuracy as published (approximate where the paper gives a range or a figure)
    accuracy: float
    #: the LUT figures published, lowest and highest (equal for one figure)
    lut_low: int
    lut_high: int
    #: latency in ns as published (None: not stated here)
    latency_ns: float | None
    citation: str


#: the published reference markers, with their sources. The numbers are the ones issue 22
#: quotes from the papers, no others: QKeras 6-bit about 0.76 at about 40-63k LUT (Coelho et
#: al.), HGQ 76.4% at about 6k LUT and 30 ns (Sun et al. 2024), HGQ2 with da4ml about 75% at
#: 6-11k LUT with 0 DSP (the da4ml paper). A span is drawn as a horizontal bar.
PUBLISHED: tuple[PublishedPoint, ...] = (
    PublishedPoint(
        "QKeras 6-bit",
        "qkeras",
        0.76,
        40_000,
        63_000,
        None,
        "C. N. Coelho et al., Automatic heterogeneous quantization of deep neural networks for "
        "low-latency inference on the edge for particle detectors, Nat. Mach. Intell. 3 (2021) "
        "675, arXiv:2006.10159",
    ),
    PublishedPoint(
        "HGQ",
        "hgq",
        0.764,
        6_000,
        6_000,
        30.0,
        "C. Sun et al., Gradient-based automatic mixed precision quantization for neural "
        "networks on-chip (HGQ), arXiv:2405.00645 (2024)",
    ),
    PublishedPoint(
        "HGQ2 + da4ml",
        "hgq2",
        0.75,
        6_000,
        11_000,
        None,
        "C. Sun et al., da4ml: distributed arithmetic for real-time neural networks on FPGAs, "
        "arXiv:2507.04535 (2025)",
    ),
)

#: how the plot names the published markers
PUBLISHED_LABEL = "published, hls4ml LHC jet data (another data set)"


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


def parse_betas(text: str, *, option: str = "--hgq-betas") -> list[float]:
    """``"1e-6,1e-5,1e-4"`` -> HGQ's resource weights ``beta`` (finite, > 0, at most 1:
    HGQ's loss is cross-entropy + beta x EBOPs, and EBOPs of a jet tagger run to 1e4-1e6),
    each once, in the order given."""
    accepted = "expected e.g. '1e-6,1e-5,1e-4': numbers above 0 and at most 1"
    try:
        betas = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{option}: {accepted}, got {text[:100]!r}") from exc
    if not betas or any(not (0 < b <= 1) for b in betas):  # NaN fails this too
        raise ConfigError(f"{option}: {accepted}, got {text[:100]!r}")
    if len(set(betas)) != len(betas):
        raise ConfigError(f"{option}: a beta is given twice in {text[:100]!r}; {accepted}")
    return betas


@dataclass(frozen=True)
class ScanPoint:
    """One design: a QKeras bit width (``method`` ``qkeras``, ``bits``) or an HGQ model
    trained at ``beta`` (``method`` ``hgq``; ``bits`` 0: its widths are per weight and per
    activation, ``ebops`` its EBOPs): accuracy, mean AUC and hardware figures."""

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
    #: da4ml's LUT estimate (the same as ``lut`` unless yosys counted)
    lut_estimate: int | None = None
    method: str = "qkeras"
    #: HGQ: the resource weight it was trained at, and its EBOPs (else None)
    beta: float | None = None
    ebops: float | None = None

    @property
    def label(self) -> str:
        """``6 b`` (QKeras) or ``HGQ beta=1e-05``: how the plot, the table and
        :attr:`ScanResult.front` name the point."""
        return f"{self.bits} b" if self.beta is None else f"HGQ beta={self.beta:g}"


@dataclass(frozen=True)
class ScanResult:
    float_accuracy: float
    tolerance: float
    #: the QKeras bit widths
    points: tuple[ScanPoint, ...]
    #: QKeras bit widths on the Pareto front of (LUT, accuracy), ascending LUT
    pareto: tuple[int, ...]
    #: smallest QKeras design (LUT) within ``tolerance`` of the float accuracy (None: none is)
    smallest_within_tolerance: int | None
    reference: dict[str, Any]
    #: the HGQ models, one per beta (empty: the scan trained none)
    hgq_points: tuple[ScanPoint, ...] = ()
    #: labels (:attr:`ScanPoint.label`) of every point, QKeras and HGQ, on the Pareto front
    #: of (LUT, accuracy), ascending LUT
    front: tuple[str, ...] = ()
    #: the published reference markers drawn on the plot (:data:`PUBLISHED`)
    published: tuple[PublishedPoint, ...] = PUBLISHED

    @property
    def all_points(self) -> tuple[ScanPoint, ...]:
        return self.points + self.hgq_points


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


def _front(points: list[ScanPoint] | tuple[ScanPoint, ...]) -> list[ScanPoint]:
    """The points of ``points`` no other point beats in both LUT and accuracy, ascending LUT."""
    front, best = [], -1.0
    for point in sorted(points, key=lambda p: (p.lut, -p.accuracy)):
        if point.accuracy > best:
            front.append(point)
            best = point.accuracy
    return front


def _pareto(points: list[ScanPoint]) -> tuple[int, ...]:
    return tuple(p.bits for p in _front(points))


def _measure(
    config: PipelineConfig,
    model: Any,
    method: str,
    data: Any,
    folder: Path,
    *,
    synthesize: bool,
    start: float,
    **identity: Any,
) -> ScanPoint:
    """Accuracy and AUCs of ``model`` (outputs: class probabilities) on the test jets and its
    hardware figures: ``model`` (its logits) traced into da4ml RTL the way ``method``'s models
    are (:data:`~hepfpga.firmware.rtl.flow.RTL_METHODS`), written to ``folder``, synthesized
    with yosys when ``synthesize``. ``identity``: bits, beta, ebops of the point."""
    probs, _ = keras_outputs_with_logits(model, data.x_test)
    metrics = evaluate_classifier(probs, data.y_test, data.classes)
    net = RTL_METHODS[method].trace(model)
    project = write_rtl(net, folder, clock_period_ns=config.firmware.clock_period)
    estimate = int(project.estimated_luts)
    lut, ff, source = estimate, project.estimated_ffs, "da4ml estimate"
    if synthesize:
        # yosys under hardware.family and hardware.synthesis_timeout_s; past the limit the
        # point keeps da4ml's figures (its source says so) and the scan goes on
        notes: list[str] = []
        counts = synthesized_resources(
            project,
            family=config.hardware.family,
            part=config.firmware.effective_part,
            timeout_s=config.hardware.synthesis_timeout_s,
            seconds={},
            notes=notes,
        )
        if counts is None:
            source = f"da4ml estimate (yosys past {config.hardware.synthesis_timeout_s:g} s)"
        else:
            lut, ff = counts.lut, counts.ff
            source = f"yosys synth_xilinx -family {config.hardware.family}"
    auc = dict(metrics.auc)
    point = ScanPoint(
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
        lut_estimate=estimate,
        method=method,
        **identity,
    )
    log.info(
        "%s: accuracy %.4f, %d LUT (%s), %d cycles",
        point.label,
        point.accuracy,
        lut,
        source,
        project.n_stages,
    )
    return point


def _hgq_config(config: PipelineConfig, beta: float) -> PipelineConfig:
    """``config`` with ``quantization.method: hgq`` at the resource weight ``beta``: the ramp
    from ``beta_initial`` (lowered to ``beta`` where larger) ends by the last QAT epoch
    (``ramp_epochs`` at most ``quantization.epochs``), so every point is trained at its own
    beta; with a longer ramp the betas would never be reached and the points would differ
    only in their schedule."""
    settings = config.quantization.hgq
    hgq = dataclasses.replace(
        settings,
        beta=beta,
        beta_initial=min(settings.beta_initial, beta),
        ramp_epochs=min(settings.ramp_epochs, config.quantization.epochs),
    )
    quantization = dataclasses.replace(config.quantization, method="hgq", hgq=hgq)
    return dataclasses.replace(config, quantization=quantization)


def run_scan(
    config: PipelineConfig,
    bits: list[int],
    *,
    synthesize: bool = False,
    tolerance: float = 0.01,
    hgq_betas: list[float] | tuple[float, ...] = (),
) -> ScanResult:
    """Scan weight/activation bit widths ``bits`` for ``config`` and, with ``hgq_betas``, its
    HGQ counterpart at each ``beta`` (see the module notes); a classification config only
    (the scan's figures are accuracy and AUC of a classifier), and HGQ points only for an
    architecture HGQ covers (else a :class:`ConfigError` with the reason, before training)."""
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
    hgq_configs = [(beta, _hgq_config(config, beta)) for beta in hgq_betas]
    if hgq_configs:
        check_method_architecture("hgq", config.model.architecture)
    points: list[ScanPoint] = []
    hgq_points: list[ScanPoint] = []
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
            points.append(
                _measure(
                    config,
                    qmodel,
                    "qkeras",
                    data,
                    Path(folder) / f"rtl_{b}",
                    synthesize=synthesize,
                    start=start,
                    bits=b,
                )
            )
        for i, (beta, hgq_config) in enumerate(hgq_configs):
            start = time.perf_counter()
            # the pipeline's own QAT stage on the same data and float model: HGQ's
            # counterpart, beta schedule and fit settings, and the proxy model of its logits
            # with the activation ranges traced on the training jets
            hgq_run = Run(config=hgq_config, run_dir=Path(folder) / f"hgq_{i}")
            hgq_run.run_dir.mkdir()
            hgq_run.results.update(data=data, float=float_result)
            quantized = qat_stage(hgq_run)
            hgq_points.append(
                _measure(
                    hgq_config,
                    with_softmax(quantized.proxy),
                    "hgq",
                    data,
                    Path(folder) / f"rtl_hgq_{i}",
                    synthesize=synthesize,
                    start=start,
                    bits=0,
                    beta=beta,
                    ebops=quantized.ebops,
                )
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
        hgq_points=tuple(hgq_points),
        front=tuple(p.label for p in _front(points + hgq_points)),
    )


@dataclass(frozen=True)
class DrawnMarker:
    """One marker :func:`plot_scan` drew: its legend or annotation label, what it is
    (``qkeras``, ``hgq``, an overlay's kind, ``published``), and where (a published LUT span:
    its middle, with ``lut_low``/``lut_high`` as the horizontal bar)."""

    label: str
    kind: str
    lut: float
    accuracy: float
    lut_low: float | None = None
    lut_high: float | None = None


def plot_scan(
    result: ScanResult, path: Path, overlays: tuple[OverlayPoint, ...] = ()
) -> list[DrawnMarker]:
    """Accuracy against LUT per bit width and per HGQ beta, the Pareto front over both
    joined, the float accuracy and its tolerance band drawn; ``overlays`` (other designs,
    e.g. :func:`precision_points`) drawn with their own markers; the published reference
    markers (:attr:`ScanResult.published`, another data set) as open markers with their LUT
    span. Every LUT figure here is da4ml's estimate unless the scan synthesized (then its
    points are yosys counts and the overlays stay estimates: the axis label says which).
    Returns the markers drawn."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    drawn: list[DrawnMarker] = []
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    styles = {"qkeras": ("o", "C0", "QKeras, uniform widths"), "hgq": ("^", "C5", "HGQ")}
    for method, (marker, color, legend) in styles.items():
        mine = [p for p in result.all_points if p.method == method]
        for n, p in enumerate(mine):
            ax.scatter(
                p.lut,
                p.accuracy,
                marker=marker,
                color=color,
                label=legend if n == 0 else None,
                zorder=3,
            )
            text = p.label if method == "qkeras" else f"β={p.beta:g}"
            # HGQ's points of nearby betas often lie close: their labels stacked downwards
            offset = (4, 4) if method == "qkeras" else (4, -10 - 9 * n)
            ax.annotate(
                text, (p.lut, p.accuracy), textcoords="offset points", xytext=offset, fontsize=8
            )
            drawn.append(DrawnMarker(p.label, method, p.lut, p.accuracy))
    front = _front(result.all_points)
    ax.plot([p.lut for p in front], [p.accuracy for p in front], color="C1", label="Pareto front")
    ax.axhline(result.float_accuracy, color="k", linestyle="--", label="float")
    ax.axhspan(
        result.float_accuracy - result.tolerance, result.float_accuracy, color="0.9", zorder=0
    )
    markers = {"quantizer-derived": ("s", "C2"), "optimised": ("*", "C3")}
    for o in overlays:
        marker, color = markers.get(o.kind, ("D", "C4"))
        ax.scatter(o.lut, o.accuracy, marker=marker, color=color, s=70, label=o.label, zorder=5)
        drawn.append(DrawnMarker(o.label, o.kind, o.lut, o.accuracy))
    published_markers = {"qkeras": "o", "hgq": "^", "hgq2": "v"}
    for n, ref in enumerate(result.published):
        middle = (ref.lut_low + ref.lut_high) / 2
        ax.errorbar(
            middle,
            ref.accuracy,
            xerr=[[middle - ref.lut_low], [ref.lut_high - middle]],
            fmt=published_markers.get(ref.method, "s"),
            mfc="none",
            color="0.35",
            capsize=3,
            label=PUBLISHED_LABEL if n == 0 else None,
        )
        ax.annotate(
            ref.label,
            (middle, ref.accuracy),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
            color="0.35",
        )
        drawn.append(
            DrawnMarker(ref.label, "published", middle, ref.accuracy, ref.lut_low, ref.lut_high)
        )
    ax.set_xscale("log")
    # ticks at 1, 2 and 5 x 10^n LUT, written 2k, 5k, 10k (a log axis' own labels of the
    # minor ticks overlap)
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}")
    )
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12)
    source = result.points[0].lut_source if result.points else "da4ml estimate"
    ax.set_xlabel(
        f"LUT ({source})" + ("" if not overlays or "da4ml" in source else "; overlays: da4ml")
    )
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn
