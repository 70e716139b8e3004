"""DNN vs BDT: scikit-learn gradient boosting, conifer's HLS project and C++ emulation."""

from __future__ import annotations

import numpy as np
import pytest

from hepfpga._schema import build
from hepfpga.errors import ConfigError
from hepfpga.train.bdt import (
    BdtConfig,
    convert_bdt,
    quantize_features,
    threshold_type,
    train_bdt,
    verify_bdt,
)

pytest.importorskip("conifer")

TINY = BdtConfig(enabled=True, n_estimators=6, max_depth=2)


@pytest.fixture(scope="module")
def tiny_bdt(make_jets_module, tmp_path_factory):
    sample = make_jets_module(900, seed=4)
    x, y = sample.features, sample.labels
    bdt = train_bdt(x[:600], y[:600], TINY, seed=1)
    emulation = convert_bdt(bdt, tmp_path_factory.mktemp("bdt"))
    return bdt, emulation, x[600:], y[600:]


@pytest.mark.slow
def test_emulation_is_identical_to_scikit_learn(tiny_bdt) -> None:
    bdt, emulation, x_test, y_test = tiny_bdt
    result = verify_bdt(bdt, emulation, x_test)
    assert result.n_events == len(x_test)
    assert result.fraction_identical_decisions == 1.0
    assert 0 < result.max_abs_score_diff <= result.score_diff_bound
    assert result.passed
    accuracy = np.mean(np.argmax(bdt.probabilities(quantize_features(x_test, TINY)), 1) == y_test)
    assert accuracy > 0.5  # five classes: chance is 0.2
    assert (emulation.hls_project / "firmware" / "hepfpga_bdt.cpp").is_file()
    assert result.score_diff_bound == 7 * 2.0**-24


@pytest.mark.slow
def test_thresholds_lie_on_the_threshold_grid(tiny_bdt) -> None:
    bdt, *_ = tiny_bdt
    grid = threshold_type(TINY.input_type)
    for stage in bdt.classifier.estimators_:
        for tree in stage:
            thresholds = tree.tree_.threshold[tree.tree_.feature >= 0]
            assert grid.can_represent(thresholds)
            # ... but not all on the input grid: the half step is needed
    assert not all(
        TINY.input_type.can_represent(t.tree_.threshold[t.tree_.feature >= 0])
        for stage in bdt.classifier.estimators_
        for t in stage
    )


def test_features_are_put_on_the_input_grid() -> None:
    x = np.array([[0.00049, -31.99, 40.0, 1.0 / 3.0]], dtype=np.float32)
    q = quantize_features(x, TINY)
    np.testing.assert_array_equal(q * 1024, np.round(q * 1024))
    assert q[0, 2] == TINY.input_type.max_value  # saturated
    assert threshold_type(TINY.input_type).to_hls() == "ap_fixed<17,6>"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"n_estimators": 0}, "bdt.n_estimators"),
        ({"learning_rate": 1.5}, "bdt.learning_rate"),
        ({"subsample": 0}, "bdt.subsample"),
        ({"score_type": "ap_ufixed<16,8>"}, "bdt.score_type"),
        ({"max_dept": 3}, "bdt.max_dept"),
    ],
)
def test_bad_settings(data: dict, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(BdtConfig, data, path="bdt")
    assert info.value.path == path


def test_without_conifer_the_error_names_the_extra(make_jets, tmp_path, monkeypatch) -> None:
    """The run stage catches this and keeps the BDT without firmware (report says why)."""
    import sys

    from hepfpga.errors import MissingDependencyError

    sample = make_jets(200, seed=6)
    bdt = train_bdt(sample.features, sample.labels, BdtConfig(n_estimators=2, max_depth=1))
    monkeypatch.setitem(sys.modules, "conifer", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'hepfpga\[bdt\]'"):
        convert_bdt(bdt, tmp_path)
