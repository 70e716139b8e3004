"""Shared fixtures: small deterministic data and models that build in seconds."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from hepfpga.train.jets import CLASS_NAMES, FEATURE_NAMES, JetSample


def make_sample(n: int = 500, seed: int = 0, n_constituents: int = 4) -> JetSample:
    """A synthetic, learnable 5-class sample with the real schema (not physics)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASS_NAMES), size=n)
    features = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    features[:, : len(CLASS_NAMES)] += 2.0 * np.eye(len(CLASS_NAMES), dtype=np.float32)[labels]
    constituents = rng.uniform(size=(n, n_constituents, 3)).astype(np.float32)
    return JetSample(
        features=features,
        constituents=constituents,
        labels=labels.astype(np.int64),
        jet_pt=rng.uniform(800, 1200, size=n).astype(np.float32),
        jet_eta=rng.uniform(-2.5, 2.5, size=n).astype(np.float32),
        jet_mass=rng.uniform(0, 200, size=n).astype(np.float32),
    )


@pytest.fixture
def synthetic_sample() -> JetSample:
    return make_sample()


@pytest.fixture
def make_jets():
    """The :func:`make_sample` factory, for tests that need several sizes."""
    return make_sample


@pytest.fixture(scope="module")
def make_jets_module():
    """:func:`make_sample` for module-scoped fixtures."""
    return make_sample


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory):
    """Compiled simulations (hls4ml C simulations, conifer's BDT emulation) are cached in one
    folder per test session under tmp, shared by every test that compiles one."""
    path = tmp_path_factory.mktemp("hepfpga-session-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEPFPGA_CACHE", str(path))
        yield path
