from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepfpga.errors import DataError
from hepfpga.train.dataset import FeatureScaler, split_sample, stratified_subsample


def test_split_is_disjoint_stratified_and_reproducible(make_jets) -> None:
    sample = make_jets(1000)
    a = split_sample(sample, (0.6, 0.2, 0.2), seed=3)
    b = split_sample(sample, (0.6, 0.2, 0.2), seed=3)
    assert len(a.train) + len(a.validation) + len(a.test) == len(sample)
    assert np.array_equal(a.test.features, b.test.features)
    keys = [set(map(bytes, s.features)) for s in (a.train, a.validation, a.test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    for part in (a.train, a.test):
        fractions = np.bincount(part.labels, minlength=5) / len(part)
        assert np.allclose(
            fractions, np.bincount(sample.labels, minlength=5) / len(sample), atol=0.02
        )
    c = split_sample(sample, (0.6, 0.2, 0.2), seed=4)
    assert not np.array_equal(a.test.features, c.test.features)


def test_too_few_jets_for_a_split(make_jets) -> None:
    with pytest.raises(DataError, match="split is empty"):
        split_sample(make_jets(3), (0.98, 0.01, 0.01), seed=0)


@pytest.mark.parametrize(
    ("keep", "fractions", "message"),
    [
        # no W jets at all: a classifier's W output has no AUC, an anomaly run no W signal
        (lambda labels: labels != 2, (0.6, 0.2, 0.2), "class 'W' has no jets in the training and test"),  # noqa: E501
        # one t jet: it goes to training and the test split has none
        (lambda labels: (labels != 4) | (np.cumsum(labels == 4) == 1), (0.6, 0.2, 0.2), "class 't' has no jets in the test split"),  # noqa: E501
    ],
    ids=["class-absent", "class-only-in-training"],
)  # fmt: skip
def test_every_class_needs_training_and_test_jets(make_jets, keep, fractions, message) -> None:
    sample = make_jets(500)
    sample = sample.subset(np.flatnonzero(keep(sample.labels)))
    with pytest.raises(DataError, match=message) as info:
        split_sample(sample, fractions, seed=0)
    assert "data.max_jets" in str(info.value)


def test_subsample_keeps_class_fractions(make_jets) -> None:
    sample = make_jets(1000)
    small = stratified_subsample(sample, 200, seed=0)
    assert 195 <= len(small) <= 205
    assert stratified_subsample(sample, 5000, seed=0) is sample


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_scaler_round_trip_and_semantics(tmp_path: Path, kind: str, make_jets) -> None:
    x = make_jets(300).features
    x[:, 3] = 7.0  # a constant feature must not divide by zero
    scaler = FeatureScaler.fit(x, kind, tuple(f"f{i}" for i in range(x.shape[1])))
    y = scaler.transform(x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    if kind == "standard":
        assert np.allclose(y[:, :3].mean(0), 0, atol=1e-5) and np.allclose(
            y[:, :3].std(0), 1, atol=1e-4
        )
    if kind == "minmax":
        assert np.allclose(y[:, :3].min(0), 0, atol=1e-6) and np.allclose(
            y[:, :3].max(0), 1, atol=1e-6
        )
    if kind == "none":
        assert np.array_equal(y, x)
    scaler.save(tmp_path / "s.json")
    assert FeatureScaler.load(tmp_path / "s.json") == scaler
    with pytest.raises(DataError, match=r"shape \(N, 16\)"):
        scaler.transform(x[:, :5])
