"""Trigger rates: signal efficiency at fixed background acceptance, with its uncertainties.

A trigger keeps a jet when its score is *strictly above* a threshold. For a background
acceptance ``a`` and ``n`` background jets, the threshold is the ``(k + 1)``-th highest
background score with ``k = floor(a * n)``, so that at most ``k`` background jets (a fraction
<= ``a``) pass; with tied scores (firmware scores are fixed-point numbers) fewer may pass, and
the *realised* acceptance ``k_pass / n`` is reported next to the requested one.

Uncertainties (all at the confidence level ``confidence``, 68.27% by default, central
intervals):

* **statistical, signal**: the signal efficiency ``s / N`` (``s`` of ``N`` signal jets above the
  threshold) gets the Clopper-Pearson interval (exact binomial: the Beta quantiles
  ``Beta((1 - CL) / 2; s, N - s + 1)`` and ``Beta((1 + CL) / 2; s + 1, N - s)``; 0 and 1 at the
  ends).
* **threshold, from the finite background**: the number of background jets above the true
  ``a``-threshold is binomial ``(n, a)``; the thresholds that keep its central-interval bounds
  ``k_lo``, ``k_hi`` (the binomial quantiles) are the ``(k_lo + 1)``-th and ``(k_hi + 1)``-th
  highest background scores (the distribution-free confidence interval of a quantile), and
  the signal efficiencies at those two thresholds bound the efficiency's threshold
  uncertainty. It is reported separately from the statistical one (not added in quadrature).
* the realised background acceptance gets its Clopper-Pearson interval too.

An acceptance is *resolved* only when the background sample holds at least
``min_background_passing`` jets above it (``a * n >= min_background_passing``; 10 by default:
the acceptance is then known to about 1 / sqrt(10) = 32%); otherwise its efficiency is ``None``
with the reason and the number of background jets that would resolve it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hepfpga.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_CONFIDENCE",
    "EfficiencyAtAcceptance",
    "TriggerRateConfig",
    "TriggerRates",
    "binomial_count_interval",
    "clopper_pearson",
    "efficiency_at_acceptance",
    "trigger_rates",
]

#: one standard deviation of a Gaussian, as a central confidence level
DEFAULT_CONFIDENCE = 0.6827


@dataclass(frozen=True)
class TriggerRateConfig:
    """The ``task.trigger_rates`` section (module docstring).

    ``acceptances``: background acceptances at which the signal efficiency is reported;
    ``background``: a jet file (any layout ``data.path`` takes; a relative path is resolved
    against the config file's folder and must exist when the config is read) whose jets are
    the background sample (null: the run's held-out test jets, all of them);
    ``background_classes``: the classes of that file that count as background (empty: the
    task's background, for a classifier every class but the signal one);
    ``max_background_jets``: read at most this many (null: all);
    ``min_background_passing``: background jets that must pass a threshold for its
    acceptance to count as resolved; ``confidence``: the central confidence level of every
    interval; ``enabled``: false skips the stage."""

    enabled: bool = True
    acceptances: tuple[float, ...] = (1e-3, 1e-4, 1e-5)
    background: Path | None = None
    background_classes: tuple[str, ...] = ()
    max_background_jets: int | None = None
    min_background_passing: int = 10
    confidence: float = DEFAULT_CONFIDENCE

    def __post_init__(self) -> None:
        if not self.acceptances:
            raise ConfigError("expected at least one background acceptance", path="acceptances")
        for i, a in enumerate(self.acceptances):
            if not 0.0 < a < 1.0:
                raise ConfigError(
                    f"expected a fraction in (0, 1), got {a!r}", path=f"acceptances[{i}]"
                )
        if self.max_background_jets is not None and self.max_background_jets < 1:
            raise ConfigError(
                f"expected a positive integer or null, got {self.max_background_jets}",
                path="max_background_jets",
            )
        if self.min_background_passing < 1:
            raise ConfigError(
                f"expected a positive integer, got {self.min_background_passing}",
                path="min_background_passing",
            )
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(
                f"expected a confidence level in (0, 1), got {self.confidence!r}",
                path="confidence",
            )


def clopper_pearson(
    passed: int, total: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """The Clopper-Pearson central interval of a binomial fraction ``passed / total``."""
    # deferred: SciPy loads slowly
    from scipy.stats import beta

    if total < 1 or not 0 <= passed <= total:
        raise DataError(f"expected 0 <= passed <= total and total >= 1, got {passed}/{total}")
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if passed == 0 else float(beta.ppf(tail, passed, total - passed + 1))
    high = 1.0 if passed == total else float(beta.ppf(1.0 - tail, passed + 1, total - passed))
    return low, high


def binomial_count_interval(
    n: int, acceptance: float, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[int, int]:
    """The central interval ``(k_lo, k_hi)`` of the number of ``n`` background jets above the
    true threshold of ``acceptance`` (binomial quantiles)."""
    # deferred: SciPy loads slowly
    from scipy.stats import binom

    tail = (1.0 - confidence) / 2.0
    return int(binom.ppf(tail, n, acceptance)), int(binom.ppf(1.0 - tail, n, acceptance))


@dataclass(frozen=True)
class EfficiencyAtAcceptance:
    """The signal efficiency at one background acceptance (None with ``reason`` when the
    background sample cannot resolve it). Intervals are ``[low, high]``."""

    acceptance: float
    efficiency: float | None
    #: Clopper-Pearson interval of the efficiency (statistical, signal jets)
    efficiency_interval: tuple[float, float] | None = None
    #: the efficiencies at the thresholds of the background count's binomial interval
    threshold_interval_efficiency: tuple[float, float] | None = None
    threshold: float | None = None
    #: the thresholds keeping the binomial interval's bounds of background jets
    threshold_interval: tuple[float, float] | None = None
    n_signal: int = 0
    n_signal_passing: int | None = None
    n_background: int = 0
    n_background_passing: int | None = None
    #: realised background acceptance ``n_background_passing / n_background``
    background_acceptance: float | None = None
    background_acceptance_interval: tuple[float, float] | None = None
    reason: str | None = None


def _nth_highest(descending: np.ndarray, k: int) -> float:
    """The ``(k + 1)``-th highest score (the threshold keeping at most ``k`` jets); below the
    lowest score when every jet is kept."""
    if k >= descending.size:
        return float(np.nextafter(descending[-1], -np.inf))
    return float(descending[k])


def efficiency_at_acceptance(
    signal: np.ndarray,
    background: np.ndarray,
    acceptance: float,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    min_background_passing: int = 10,
) -> EfficiencyAtAcceptance:
    """The signal efficiency of the scores ``signal`` at ``acceptance`` of the scores
    ``background`` (larger: more signal-like), with the intervals of the module docstring."""
    sig = np.asarray(signal, dtype=np.float64).reshape(-1)
    bkg = np.asarray(background, dtype=np.float64).reshape(-1)
    n, n_sig = int(bkg.size), int(sig.size)
    if n == 0:
        raise DataError("no background jets to set a threshold on")
    expected = acceptance * n
    if expected < min_background_passing:
        needed = math.ceil(min_background_passing / acceptance)
        return EfficiencyAtAcceptance(
            acceptance,
            None,
            n_signal=n_sig,
            n_background=n,
            reason=(
                f"not resolved: {acceptance:g} x {n:,} background jets = {expected:.3g} "
                f"expected above the threshold, fewer than {min_background_passing} "
                f"(task.trigger_rates.min_background_passing); needs >= {needed:,} background "
                "jets (task.trigger_rates.background)"
            ),
        )
    descending = np.sort(bkg)[::-1]
    k = math.floor(expected)
    threshold = _nth_highest(descending, k)
    k_lo, k_hi = binomial_count_interval(n, acceptance, confidence)
    # fewer background jets kept: a higher threshold
    t_high, t_low = _nth_highest(descending, k_lo), _nth_highest(descending, k_hi)
    passing_bkg = int(np.sum(bkg > threshold))
    if n_sig == 0:
        return EfficiencyAtAcceptance(
            acceptance,
            None,
            threshold=threshold,
            n_background=n,
            n_background_passing=passing_bkg,
            reason="no signal jets",
        )
    passing = int(np.sum(sig > threshold))
    return EfficiencyAtAcceptance(
        acceptance=acceptance,
        efficiency=passing / n_sig,
        efficiency_interval=clopper_pearson(passing, n_sig, confidence),
        threshold_interval_efficiency=(
            float(np.mean(sig > t_high)),
            float(np.mean(sig > t_low)),
        ),
        threshold=threshold,
        threshold_interval=(t_low, t_high),
        n_signal=n_sig,
        n_signal_passing=passing,
        n_background=n,
        n_background_passing=passing_bkg,
        background_acceptance=passing_bkg / n,
        background_acceptance_interval=clopper_pearson(passing_bkg, n, confidence),
    )


@dataclass(frozen=True)
class TriggerRates:
    """Signal efficiencies at fixed background acceptances of one score source (the
    firmware through the bulk emulator): ``efficiencies[signal][str(acceptance)]``."""

    #: where the scores come from, in words
    scores: str
    #: where the background jets come from, in words
    background: str
    background_classes: dict[str, list[str]]
    n_background: dict[str, int]
    confidence: float
    uncertainty: str
    efficiencies: dict[str, dict[str, EfficiencyAtAcceptance]] = field(default_factory=dict)


UNCERTAINTY_TEXT = (
    "efficiency_interval: Clopper-Pearson (signal jets, statistical); "
    "threshold_interval_efficiency: the efficiency at the thresholds keeping the binomial "
    "central interval of the background count (the threshold's uncertainty from the finite "
    "background), not added to the statistical one"
)


def trigger_rates(
    signal_scores: Mapping[str, np.ndarray],
    background_scores: Mapping[str, np.ndarray],
    acceptances: Sequence[float],
    *,
    scores: str,
    background: str,
    background_classes: Mapping[str, Sequence[str]],
    confidence: float = DEFAULT_CONFIDENCE,
    min_background_passing: int = 10,
) -> TriggerRates:
    """:func:`efficiency_at_acceptance` of every signal (``signal_scores[name]``, its
    background ``background_scores[name]``) at every acceptance."""
    efficiencies = {
        name: {
            str(a): efficiency_at_acceptance(
                sig,
                background_scores[name],
                a,
                confidence=confidence,
                min_background_passing=min_background_passing,
            )
            for a in acceptances
        }
        for name, sig in signal_scores.items()
    }
    return TriggerRates(
        scores=scores,
        background=background,
        background_classes={k: list(v) for k, v in background_classes.items()},
        n_background={k: int(np.asarray(v).size) for k, v in background_scores.items()},
        confidence=confidence,
        uncertainty=UNCERTAINTY_TEXT,
        efficiencies=efficiencies,
    )
