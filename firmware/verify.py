"""Comparison of a firmware's C simulation with the QKeras model it was written from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga.artifacts import write_json_atomic
from hepfpga.errors import DataError
from hepfpga.firmware.csim import predict_with_logits
from hepfpga.firmware.hls_config import logits_layer_name
from hepfpga.firmware.project import VERIFICATION_FILE, FirmwareProject

__all__ = ["Comparison", "compare_outputs", "record_verification", "verify_qkeras"]


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


def verify_qkeras(qmodel: Any, project: FirmwareProject, x: Any) -> Comparison:
    """Run ``qmodel`` (Keras, float32) and the project's C simulation on ``x`` and compare.

    The reference logits are the output of the layer feeding ``qmodel``'s softmax.
    """
    from tensorflow import keras

    events = np.asarray(x, dtype=np.float32)
    logits_model = keras.Model(qmodel.inputs, qmodel.get_layer(logits_layer_name(qmodel)).output)
    ref_probs = qmodel.predict(events, verbose=0, batch_size=4096)
    ref_logits = logits_model.predict(events, verbose=0, batch_size=4096)
    hls_probs, hls_logits = predict_with_logits(project, events)
    return compare_outputs(ref_logits, hls_logits, ref_probs, hls_probs)


def record_verification(project: FirmwareProject, comparison: Comparison) -> Path:
    """Write ``comparison`` as ``verification.json`` into the project folder (atomically)."""
    target = project.path / VERIFICATION_FILE
    write_json_atomic(target, comparison.to_dict())
    return target
