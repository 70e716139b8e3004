"""The typed results of a verification: how closely the firmware's C simulation reproduces the
reference (:class:`Comparison`, :func:`compare_outputs`) and everything
:func:`~hepfpga.firmware.verify.verify_model` found, layer by layer
(:class:`VerificationReport`, with its terminal summary).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hepfpga.errors import DataError
from hepfpga.firmware.diagnose import Diagnosis, LayerComparison

__all__ = ["Comparison", "VerificationReport", "compare_outputs"]


@dataclass(frozen=True)
class Comparison:
    """How closely the firmware reproduces the reference, over ``n_events`` events."""

    n_events: int
    #: fraction of events whose logits are all exactly equal
    logits_fraction_bit_exact: float
    logits_max_abs_diff: float
    probs_max_abs_diff: float
    #: fraction of events whose argmax of the probabilities agrees
    argmax_agreement: float
    #: largest gap between the reference's two highest probabilities among the events whose
    #: argmax differs (0 when none does): a flip needs a gap below 2 * probs_max_abs_diff,
    #: so a larger value points at a real error rather than a near-tie
    argmax_flip_max_gap: float = 0.0

    @property
    def logits_bit_exact(self) -> bool:
        return self.logits_fraction_bit_exact == 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _matrix(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, np.newaxis]
    if array.ndim != 2:
        raise DataError(f"{name} must be (n_events, n_outputs), got shape {np.shape(values)}")
    return array


def compare_outputs(
    reference_logits: Any, hls_logits: Any, reference_probs: Any, hls_probs: Any
) -> Comparison:
    """Compare logits (exactly) and probabilities (absolute difference, argmax) per event."""
    ref_logits = _matrix(reference_logits, "reference_logits")
    hls_logits_ = _matrix(hls_logits, "hls_logits")
    ref_probs = _matrix(reference_probs, "reference_probs")
    hls_probs_ = _matrix(hls_probs, "hls_probs")
    if ref_logits.shape != hls_logits_.shape or ref_probs.shape != hls_probs_.shape:
        raise DataError(
            f"shapes differ: logits {ref_logits.shape} vs {hls_logits_.shape}, "
            f"probabilities {ref_probs.shape} vs {hls_probs_.shape}"
        )
    if len(ref_logits) != len(ref_probs) or len(ref_logits) == 0:
        raise DataError("logits and probabilities must cover the same, non-zero number of events")
    flipped = ref_probs.argmax(axis=1) != hls_probs_.argmax(axis=1)
    top2 = (
        np.sort(ref_probs, axis=1)[:, -2:]
        if ref_probs.shape[1] > 1
        else np.zeros((len(ref_probs), 2))
    )
    gap = top2[:, 1] - top2[:, 0]
    return Comparison(
        n_events=len(ref_logits),
        logits_fraction_bit_exact=float(np.mean(np.all(ref_logits == hls_logits_, axis=1))),
        logits_max_abs_diff=float(np.max(np.abs(ref_logits - hls_logits_))),
        probs_max_abs_diff=float(np.max(np.abs(ref_probs - hls_probs_))),
        argmax_agreement=float(np.mean(~flipped)),
        argmax_flip_max_gap=float(gap[flipped].max()) if flipped.any() else 0.0,
    )


@dataclass
class VerificationReport:
    """Everything :func:`verify_model` found, layer by layer; ``passed`` is the verdict."""

    model: str
    #: QKeras model (types from quantizers) or float model (profiled types)
    quantized: bool
    n_events: int
    #: what had to hold, in words
    requirement: str
    passed: bool
    outputs: Comparison
    #: per output (class): fraction of events with that logit bit-exact, the largest logit
    #: and output differences
    per_output: list[dict[str, float]]
    layers: list[LayerComparison]
    diagnosis: Diagnosis | None
    softmax: str
    #: the types of every layer (profiled ranges for float models)
    precision: dict[str, dict[str, Any]]
    project: str | None
    compile_seconds: float | None
    from_cache: bool
    seconds: dict[str, float]
    #: the firmware's input type and where it comes from (input quantizer, option, profile,
    #: or the default for a QKeras model without an input quantizer)
    input_type: str = ""
    input_type_source: str = ""
    #: with the default input type: the firmware on the events themselves against Keras on
    #: the events themselves (what rounding the inputs to the input grid costs); ``outputs``
    #: then compares on the events rounded to that grid
    input_rounding: Comparison | None = None
    #: for a model with several outputs: the comparison of each (output layer name ->
    #: comparison of that output and its logits); ``outputs`` is the first one's
    model_outputs: dict[str, Comparison] = field(default_factory=dict)
    #: the logits bound required instead of bit-exactness (None: bit-exact required, or a
    #: float model's tolerance); set for QKeras models with layers that are never bit-exact
    #: (recurrent gates from lookup tables), see ``LayerHandler.bound``
    bound: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "quantized": self.quantized,
            "n_events": self.n_events,
            "requirement": self.requirement,
            "passed": self.passed,
            "outputs": self.outputs.to_dict(),
            "per_output": self.per_output,
            "layers": [layer.to_dict() for layer in self.layers],
            "first_divergence": self.diagnosis.to_dict() if self.diagnosis else None,
            "softmax": self.softmax,
            "precision": self.precision,
            "project": self.project,
            "compile_seconds": self.compile_seconds,
            "from_cache": self.from_cache,
            "seconds": self.seconds,
            "input_type": self.input_type,
            "input_type_source": self.input_type_source,
            "input_rounding": self.input_rounding.to_dict() if self.input_rounding else None,
            "model_outputs": {k: c.to_dict() for k, c in self.model_outputs.items()},
            "bound": self.bound,
        }

    def summary(self) -> str:
        """A few lines for a terminal: verdict, outputs, a table of layers, the diagnosis."""
        out = self.outputs
        lines = [
            f"model '{self.model}' ({'QKeras' if self.quantized else 'float'}), "
            f"{self.n_events} events, softmax: {self.softmax}",
            f"logits: {out.logits_fraction_bit_exact:.2%} bit-exact, "
            f"max |diff| {out.logits_max_abs_diff:.3g}; outputs: max |diff| "
            f"{out.probs_max_abs_diff:.3g}, argmax agreement {out.argmax_agreement:.2%}",
            "per output: "
            + ", ".join(
                f"[{int(o['index'])}] {o['logits_fraction_bit_exact']:.1%} exact"
                + (f" (max {o['logits_max_abs_diff']:.2g})" if o["logits_max_abs_diff"] else "")
                for o in self.per_output
            ),
            f"{'layer':<20} {'type':<34} {'bit-exact':>9} {'max LSB':>9}  range",
        ]
        for layer in self.layers:
            lines.append(
                f"{layer.name:<20} {layer.hls_type:<34} {layer.fraction_bit_exact:>9.2%} "
                f"{layer.max_diff_lsb:>9.3g}  [{layer.reference_min:.4g}, "
                f"{layer.reference_max:.4g}] in [{layer.type_min:.4g}, {layer.type_max:.4g}]"
            )
        if self.diagnosis is not None:
            lines.append(str(self.diagnosis))
        for name, comparison in self.model_outputs.items():
            lines.append(
                f"output '{name}': logits {comparison.logits_fraction_bit_exact:.2%} bit-exact, "
                f"max |diff| {comparison.logits_max_abs_diff:.3g}; outputs max |diff| "
                f"{comparison.probs_max_abs_diff:.3g}"
            )
        if self.input_type:
            lines.append(f"input type: {self.input_type} ({self.input_type_source})")
        if self.input_rounding is not None:
            cost = self.input_rounding
            lines.append(
                "the results above are on the events rounded to that input grid; rounding the "
                f"events to it costs: logits max |diff| {cost.logits_max_abs_diff:.3g} "
                f"({cost.logits_fraction_bit_exact:.2%} of events unchanged), outputs max "
                f"|diff| {cost.probs_max_abs_diff:.3g}, argmax agreement "
                f"{cost.argmax_agreement:.2%}"
            )
        cached = "from cache" if self.from_cache else f"compiled in {self.compile_seconds:.1f} s"
        lines.append(f"C simulation {cached}")
        lines.append(f"{'PASSED' if self.passed else 'FAILED'}: {self.requirement}")
        return "\n".join(lines)
