"""Signal efficiency at fixed background acceptance: thresholds, Clopper-Pearson intervals and
the threshold's uncertainty against hand-computed values, and the unresolved acceptance
reported as None with its reason."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepfpga.errors import ConfigError, DataError
from hepfpga.pipeline.config import parse_config
from hepfpga.train.trigger_rates import (
    TriggerRateConfig,
    binomial_count_interval,
    clopper_pearson,
    efficiency_at_acceptance,
    trigger_rates,
)

ONE_SIGMA = 0.6827
TAIL = (1 - ONE_SIGMA) / 2

#: 100 distinct background scores 0.00 ... 0.99, and 20 signal jets of which three score
#: above 0.89, one at 0.87 and the rest at 0.5
BACKGROUND = np.arange(100) / 100
SIGNAL = np.array([0.93, 0.91, 0.90, 0.87] + [0.5] * 16)


def test_efficiency_and_threshold_by_hand() -> None:
    result = efficiency_at_acceptance(SIGNAL, BACKGROUND, 0.1, confidence=ONE_SIGMA)
    # k = floor(0.1 * 100) = 10: the 11th highest background score, 0.89, keeps 0.90 ... 0.99
    assert result.threshold == 0.89
    assert result.n_background_passing == 10
    assert result.background_acceptance == 0.1
    assert result.n_signal_passing == 3 and result.efficiency == 3 / 20
    # Binomial(100, 0.1): P(X <= 6) = 0.117, P(X <= 7) = 0.206 -> k_lo = 7;
    # P(X <= 12) = 0.802, P(X <= 13) = 0.876 -> k_hi = 13
    assert binomial_count_interval(100, 0.1, ONE_SIGMA) == (7, 13)
    # thresholds keeping 7 and 13 jets: the 8th and 14th highest scores, 0.92 and 0.86
    assert result.threshold_interval == (0.86, 0.92)
    # signal above 0.92: 0.93 (1 jet); above 0.86: 0.93, 0.91, 0.90, 0.87 (4 jets)
    assert result.threshold_interval_efficiency == (1 / 20, 4 / 20)
    low, high = result.efficiency_interval
    assert low < 3 / 20 < high
    assert result.reason is None


@pytest.mark.parametrize(("passed", "total"), [(3, 20), (1, 7), (50, 100), (19, 20)])
def test_clopper_pearson_bounds_are_the_binomial_tails(passed: int, total: int) -> None:
    from scipy.stats import binom

    low, high = clopper_pearson(passed, total, ONE_SIGMA)
    # the defining equations: P(X >= passed | low) = P(X <= passed | high) = (1 - CL) / 2
    assert binom.sf(passed - 1, total, low) == pytest.approx(TAIL, abs=1e-9)
    assert binom.cdf(passed, total, high) == pytest.approx(TAIL, abs=1e-9)


def test_clopper_pearson_at_the_ends() -> None:
    # 0 of n: [0, 1 - (tail)^(1/n)]; n of n: [(tail)^(1/n), 1]
    low, high = clopper_pearson(0, 20, ONE_SIGMA)
    assert low == 0.0 and high == pytest.approx(1 - TAIL ** (1 / 20), rel=1e-9)
    low, high = clopper_pearson(20, 20, ONE_SIGMA)
    assert high == 1.0 and low == pytest.approx(TAIL ** (1 / 20), rel=1e-9)
    with pytest.raises(DataError, match="0 <= passed <= total"):
        clopper_pearson(3, 2)


def test_an_acceptance_the_background_cannot_resolve_is_none_with_the_reason() -> None:
    result = efficiency_at_acceptance(SIGNAL, BACKGROUND, 1e-3, min_background_passing=10)
    assert result.efficiency is None and result.efficiency_interval is None
    assert result.threshold is None and result.n_background == 100
    assert "0.001 x 100 background jets = 0.1 expected above the threshold" in result.reason
    assert "needs >= 10,000 background jets" in result.reason
    # one background jet is enough when asked for
    resolved = efficiency_at_acceptance(SIGNAL, BACKGROUND, 0.01, min_background_passing=1)
    assert resolved.threshold == 0.98 and resolved.efficiency == 0.0


def test_tied_firmware_scores_keep_at_most_the_acceptance() -> None:
    # fixed-point scores tie: 95 jets at 0.25, five at 0.5; acceptance 0.1 asks for 10 jets,
    # the 11th highest is 0.25, so only the five at 0.5 pass (realised acceptance 0.05)
    background = np.array([0.25] * 95 + [0.5] * 5)
    result = efficiency_at_acceptance([0.5, 0.75, 0.3], background, 0.1)
    assert result.threshold == 0.25
    assert result.background_acceptance == 0.05
    assert result.efficiency == 1.0


def test_trigger_rates_per_signal_and_its_typed_serialisation() -> None:
    from hepfpga._schema import to_plain

    rates = trigger_rates(
        {"t": SIGNAL, "W": SIGNAL[:4]},
        {"t": BACKGROUND, "W": BACKGROUND[50:]},
        (0.1, 1e-5),
        scores="firmware",
        background="hand-made",
        background_classes={"t": ["q", "g"], "W": ["q"]},
        confidence=ONE_SIGMA,
    )
    plain = to_plain(rates)
    assert plain["n_background"] == {"t": 100, "W": 50}
    assert plain["efficiencies"]["t"]["0.1"]["efficiency"] == 0.15
    # 50 background jets: 0.1 x 50 = 5 < 10
    assert plain["efficiencies"]["W"]["0.1"]["efficiency"] is None
    assert "needs >= 100 background jets" in plain["efficiencies"]["W"]["0.1"]["reason"]
    assert plain["efficiencies"]["t"]["1e-05"]["reason"].startswith("not resolved")
    assert "Clopper-Pearson" in plain["uncertainty"]
    assert math.isclose(plain["confidence"], ONE_SIGMA)


@pytest.mark.parametrize(
    ("section", "path", "fragment"),
    [
        ({"acceptances": []}, "task.trigger_rates.acceptances", "at least one"),
        ({"acceptances": [1e-3, 1.5]}, "task.trigger_rates.acceptances[1]", "fraction in (0, 1)"),
        ({"confidence": 1.0}, "task.trigger_rates.confidence", "confidence level"),
        ({"min_background_passing": 0}, "task.trigger_rates.min_background_passing", "positive"),
        ({"max_background_jets": 0}, "task.trigger_rates.max_background_jets", "positive"),
        ({"background": "nowhere.h5"}, "task.trigger_rates.background", "no such file"),
        ({"acceptance": [1e-3]}, "task.trigger_rates.acceptance", "acceptances"),
    ],
)
@pytest.mark.parametrize("task", ["classification", "anomaly_detection"])
def test_bad_trigger_rate_sections_name_their_path(
    tmp_path, task: str, section: dict, path: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "task": {"name": task, "trigger_rates": section},
                "model": {"architecture": "mlp" if task == "classification" else "ae"},
            },
            source="cfg.yaml",
            base_dir=tmp_path,
        )
    message = str(info.value)
    assert f"at '{path}'" in message, message
    assert fragment in message, message


def test_a_relative_background_is_resolved_against_the_config(tmp_path) -> None:
    (tmp_path / "bkg.h5").write_bytes(b"")
    config = parse_config(
        {
            "task": {"name": "anomaly_detection", "trigger_rates": {"background": "bkg.h5"}},
            "model": {"architecture": "ae"},
        },
        base_dir=tmp_path,
    )
    assert config.task.trigger_rates.background == tmp_path / "bkg.h5"
    assert TriggerRateConfig().acceptances == (1e-3, 1e-4, 1e-5)
