"""Jet generation with Pythia and fastjet (the optional ``datagen`` extra)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from hepfpga.errors import DataError, MissingDependencyError
from hepfpga.train.jets import CLASS_NAMES, FEATURE_NAMES

N_PER_CLASS = 6


@pytest.fixture(scope="module")
def generate():
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from hepfpga.train.generate import generate_sample

    return generate_sample


@pytest.fixture(scope="module")
def sample(generate):
    return generate(N_PER_CLASS, seed=11, n_constituents=20, progress=False, workers=1)


@pytest.mark.datagen
@pytest.mark.slow
def test_shapes_and_classes(sample) -> None:
    n = N_PER_CLASS * len(CLASS_NAMES)
    assert len(sample) == n
    assert sample.features.shape == (n, len(FEATURE_NAMES))
    assert sample.constituents.shape == (n, 20, 3)
    assert sample.features.dtype == sample.constituents.dtype == np.float32
    assert np.bincount(sample.labels, minlength=5).tolist() == [N_PER_CLASS] * 5
    assert sample.feature_names == FEATURE_NAMES and sample.class_names == CLASS_NAMES


@pytest.mark.datagen
@pytest.mark.slow
def test_selection_and_finite_features(sample) -> None:
    assert (sample.jet_pt > 800).all()
    assert (np.abs(sample.jet_eta) < 2.5).all()
    assert np.isfinite(sample.features).all() and np.isfinite(sample.constituents).all()
    multiplicity = sample.features[:, FEATURE_NAMES.index("multiplicity")]
    assert (multiplicity >= 1).all()
    # the stored constituents are pT-sorted fractions of the jet pT
    fractions = sample.constituents[:, :, 0]
    assert (np.diff(fractions, axis=1) <= 0).all()
    assert (fractions.sum(axis=1) <= 1.0 + 1e-4).all()
    top_mass = sample.features[sample.labels == CLASS_NAMES.index("t"), 14]
    assert np.median(top_mass) > 100  # groomed top jets keep most of the top mass


@pytest.mark.datagen
@pytest.mark.slow
def test_metadata_is_json_and_complete(sample) -> None:
    meta = json.loads(json.dumps(sample.metadata))
    assert meta["seed"] == 11 and meta["n_per_class"] == N_PER_CLASS
    assert set(meta["n_events"]) == set(CLASS_NAMES)
    assert meta["n_groomed_le2"] >= meta["n_undefined_ratios"] >= 0
    assert "pythia8mc" in meta["versions"]


@pytest.mark.datagen
@pytest.mark.slow
def test_reproducible_with_the_seed_and_independent_of_workers(generate, sample) -> None:
    again = generate(N_PER_CLASS, seed=11, n_constituents=20, progress=False, workers=2)
    np.testing.assert_array_equal(again.features, sample.features)
    np.testing.assert_array_equal(again.constituents, sample.constituents)
    np.testing.assert_array_equal(again.labels, sample.labels)
    other = generate(2, seed=12, n_constituents=20, progress=False, workers=1)
    assert not np.array_equal(other.features[:2], sample.features[:2])  # both q jets


@pytest.mark.datagen
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_per_class": 0}, "n_per_class=0"),
        ({"n_per_class": 5, "seed": -1}, "seed=-1"),
        ({"n_per_class": 5, "n_constituents": -3}, "n_constituents=-3"),
        ({"n_per_class": 5, "workers": 0}, "workers=0"),
    ],
)
def test_bad_arguments(generate, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        generate(**kwargs)


@pytest.mark.parametrize("module", ["pythia8mc", "fastjet"])
def test_missing_extra_names_the_install_command(monkeypatch, module: str) -> None:
    from hepfpga.train.generate import generate_sample

    monkeypatch.setitem(sys.modules, module, None)  # makes ``import module`` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'hepfpga\[datagen\]'"):
        generate_sample(1, progress=False)
