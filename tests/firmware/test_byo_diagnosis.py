"""Verification with a deliberately wrong precision names the first diverging layer and why;
softmax choices; the cache of compiled simulations; the pytest helper."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions, VerificationReport, verify_model
from hepfpga.firmware.testing import assert_bit_exact

pytestmark = pytest.mark.slow

N_EVENTS = 300

#: name -> (layer_types / input_type override, first diverging layer, cause)
WRONG: dict[str, tuple[dict[str, Any], str, str]] = {
    # dense_2's exact sum has 11 fractional bits; 8 truncate before relu_2 rounds
    "truncated-sum": (
        {"layer_types": {"dense_2": {"result": "ap_fixed<12,4>"}}},
        "dense_2",
        "truncation_before_rounding",
    ),
    # dense_1 reaches about +-150 with saturating inputs; 3 integer bits overflow
    "narrow-accumulator": (
        {"layer_types": {"dense_1": {"result": "ap_fixed<24,3>", "accum": "ap_fixed<24,3>"}}},
        "dense_1",
        "overflow",
    ),
    # hls4ml's default input type truncates and wraps where quantized_bits rounds and clips;
    # the input quantizer then stays a layer of its own, the first to part
    "input-off-grid": ({"input_type": "ap_fixed<16,6>"}, "input_quant", "input_grid"),
}


@pytest.fixture(scope="module")
def events(inputs_factory: Any) -> np.ndarray:
    return inputs_factory(N_EVENTS, seed=5)


@pytest.fixture(scope="module", params=list(WRONG))
def wrong(
    request: pytest.FixtureRequest, small_tagger: Any, events: np.ndarray
) -> tuple[str, VerificationReport]:
    options, _, _ = WRONG[request.param]
    return request.param, verify_model(small_tagger, events, FirmwareOptions(**options))


def test_wrong_precision_names_the_first_diverging_layer(
    wrong: tuple[str, VerificationReport],
) -> None:
    name, report = wrong
    _, layer, cause = WRONG[name]
    assert not report.passed
    assert report.outputs.logits_fraction_bit_exact < 1.0
    assert report.diagnosis is not None, report.summary()
    assert (report.diagnosis.layer, report.diagnosis.cause) == (layer, cause), report.summary()
    # the layers before it agree exactly; it does not
    names = [comparison.name for comparison in report.layers]
    for comparison in report.layers[: names.index(layer)]:
        assert comparison.bit_exact
    assert not report.layers[names.index(layer)].bit_exact
    assert f"first diverging layer '{layer}'" in report.summary()


def test_assert_bit_exact_raises_with_the_diagnosis(small_tagger: Any, events: np.ndarray) -> None:
    options, _, _ = WRONG["truncated-sum"]  # compiled above: taken from the cache
    with pytest.raises(AssertionError, match="first diverging layer 'dense_2'") as info:
        assert_bit_exact(small_tagger, events, **options)
    assert "truncat" in str(info.value)
    report = assert_bit_exact(small_tagger, events)
    assert report.passed and report.from_cache is not None


def test_a_repeated_verify_does_not_recompile(
    small_tagger: Any, events: np.ndarray, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from hepfpga.firmware import cache

    calls = []
    real = cache.compile_project

    def counting(project: Any) -> Any:
        calls.append(project.path)
        return real(project)

    monkeypatch.setattr(cache, "compile_project", counting)
    options = FirmwareOptions(softmax="argmax")
    first = verify_model(small_tagger, events, options, cache_directory=tmp_path)
    second = verify_model(small_tagger, events, options, cache_directory=tmp_path)
    assert len(calls) == 1
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.seconds["build"] < 0.25 * first.seconds["build"]
    assert second.to_dict()["outputs"] == first.to_dict()["outputs"]
    entries = [entry for entry in (tmp_path / "csim").iterdir() if entry.is_dir()]
    assert len(entries) == 1 and (entries[0] / "complete.json").is_file()
    # the argmax softmax is exact: outputs are one-hot of the largest logit
    assert first.passed and first.requirement == "bit-exact logits and outputs"
    assert first.outputs.probs_max_abs_diff == 0.0


@pytest.mark.parametrize(
    ("mode", "max_probs_diff"),
    [("tuned", 2e-4), ("logits", 0.0)],
)
def test_softmax_choices(
    mode: str, max_probs_diff: float, small_tagger: Any, events: np.ndarray
) -> None:
    report = verify_model(small_tagger, events, FirmwareOptions(softmax=mode))
    assert report.passed, report.summary()
    assert report.outputs.logits_bit_exact
    assert report.outputs.probs_max_abs_diff <= max_probs_diff
    assert report.outputs.argmax_agreement == 1.0
