"""The choices of the final softmax (``firmware.softmax``): what each writes into the
firmware, what its outputs are, and what the firmware's outputs must equal.

:class:`SoftmaxMode` is the one list of the choices; the click choice, the backends' lists
of modes that compile (:attr:`~hepfpga.firmware.backends.HLSBackend.softmax_modes`) and the
verification's expectations derive from it. The hls4ml settings of each mode are written in
:mod:`hepfpga.firmware.hls_config`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["SOFTMAX_MODES", "SoftmaxInfo", "SoftmaxMode"]


def _keras_outputs(logits: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    return outputs


def _one_hot_argmax(logits: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    # first index wins ties, as hls4ml's argmax and numpy's
    return np.eye(logits.shape[1])[np.argmax(logits, axis=1)]


def _the_logits(logits: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    return logits


@dataclass(frozen=True)
class SoftmaxInfo:
    """What a :class:`SoftmaxMode` writes into the firmware and what it promises."""

    #: hls4ml's ``Implementation`` of the softmax layer (None: no softmax layer in firmware)
    implementation: str | None
    #: what the firmware outputs are
    outputs: str
    #: the firmware's outputs are exactly :attr:`expected` of the reference (no table error)
    exact: bool
    #: what the firmware's outputs should equal, from the reference's ``(logits, outputs)``
    expected: Callable[[np.ndarray, np.ndarray], np.ndarray]


class SoftmaxMode(enum.Enum):
    """How the final softmax is built (``firmware.softmax``); see ``docs/firmware.md``.

    * ``stable``: hls4ml's max-subtracted table softmax with hepfpga's table types (the
      ``softmax_*`` options): every table index is one value of the rounded difference, about
      ``2**-8`` from the float softmax with the default 1024-entry tables.
    * ``tuned``: the same, with the difference table addressed at the logits' own resolution
      (no rounding of ``max - logit``) and wider tables: ~1e-5 of the float softmax, at the cost
      of larger tables (sizes chosen from the logits type, up to 2**15 entries).
    * ``latency``: hls4ml's ``latency`` tables with hls4ml's default types (no max subtraction;
      shown for comparison, off by up to ~0.2 on the jet tagger).
    * ``argmax``: one-hot of the largest logit, exact (first index wins ties, as numpy).
    * ``logits``: no softmax in firmware; the outputs are the logits, bit-exact.
    """

    STABLE = "stable"
    TUNED = "tuned"
    LATENCY = "latency"
    ARGMAX = "argmax"
    LOGITS = "logits"

    @property
    def info(self) -> SoftmaxInfo:
        return _SOFTMAX[self]


_SOFTMAX: dict[SoftmaxMode, SoftmaxInfo] = {
    SoftmaxMode.STABLE: SoftmaxInfo(
        "stable", "probabilities, table based (~2**-8)", False, _keras_outputs
    ),
    SoftmaxMode.TUNED: SoftmaxInfo(
        "stable", "probabilities, exact-index tables (~1e-5)", False, _keras_outputs
    ),
    SoftmaxMode.LATENCY: SoftmaxInfo(
        "latency", "probabilities, hls4ml's default tables", False, _keras_outputs
    ),
    SoftmaxMode.ARGMAX: SoftmaxInfo(
        "argmax", "one-hot of the largest logit (exact)", True, _one_hot_argmax
    ),
    SoftmaxMode.LOGITS: SoftmaxInfo(None, "the logits (exact)", True, _the_logits),
}

#: the values of ``firmware.softmax``, in order (for a click choice or a backend's list)
SOFTMAX_MODES: tuple[str, ...] = tuple(mode.value for mode in SoftmaxMode)
