"""High-level jet features: analytic values, the 0/0 policy, names, fastjet cross-check."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hepfpga.train.features import (
    ECF_FEATURE_NAMES,
    delta_phi,
    ecf_features,
    high_level_features,
    kinematics,
    leading_constituents,
    zlogz,
)
from hepfpga.train.jets import FEATURE_NAMES


def _named(values: np.ndarray) -> dict[str, float]:
    return dict(zip(ECF_FEATURE_NAMES, values.tolist(), strict=True))


def test_names_follow_the_public_data_set_order() -> None:
    assert FEATURE_NAMES[1:14] == ECF_FEATURE_NAMES
    assert FEATURE_NAMES[0] == "zlogz"
    assert FEATURE_NAMES[-2:] == ("mass_mmdt", "multiplicity")
    assert len(set(FEATURE_NAMES)) == 16


@pytest.mark.parametrize("distance", [0.05, 0.3, 0.7])
def test_two_equal_prongs(distance: float) -> None:
    result = ecf_features(np.array([100.0, 100.0]), np.array([0.0, distance]), np.zeros(2))
    values = _named(result.values)
    assert not result.undefined
    assert values["c1_b0_mmdt"] == pytest.approx(0.25)
    assert values["c1_b1_mmdt"] == pytest.approx(0.25 * distance)
    assert values["c1_b2_mmdt"] == pytest.approx(0.25 * distance**2)
    # two particles have no triplet: every three-point function, and each ratio, is 0
    for name in ECF_FEATURE_NAMES[3:]:
        assert values[name] == 0.0, name


@pytest.mark.parametrize("side", [0.1, 0.4])
def test_equilateral_three_prongs(side: float) -> None:
    # three equal-pT particles on an equilateral triangle of side ``side`` in (y, phi)
    rapidity = np.array([0.0, side, side / 2])
    phi = np.array([0.0, 0.0, side * np.sqrt(3) / 2])
    values = _named(ecf_features(np.full(3, 50.0), rapidity, phi).values)
    e2 = {b: side**b / 3 for b in (1, 2)}
    e3 = {b: side ** (3 * b) / 27 for b in (1, 2)}
    assert values["c1_b0_mmdt"] == pytest.approx(1 / 3)
    for b in (1, 2):
        assert values[f"c1_b{b}_mmdt"] == pytest.approx(e2[b])
        assert values[f"c2_b{b}_mmdt"] == pytest.approx(side**b / 3)
        assert values[f"d2_b{b}_mmdt"] == pytest.approx(1.0)
        assert values[f"m2_b{b}_mmdt"] == pytest.approx(1 / 9)
        assert values[f"n2_b{b}_mmdt"] == pytest.approx(1 / 3)
        assert values[f"d2_a1_b{b}_mmdt"] == pytest.approx(e3[1] / e2[b] ** (3 / b))
    assert values["d2_a1_b2_mmdt"] == pytest.approx(3**-1.5)


@pytest.mark.parametrize("n_particles", [1, 3])
def test_collinear_jet_follows_the_zero_policy(n_particles: int) -> None:
    result = ecf_features(np.full(n_particles, 30.0), np.zeros(n_particles), np.zeros(n_particles))
    assert result.undefined
    values = _named(result.values)
    assert values["c1_b0_mmdt"] == pytest.approx((1 - 1 / n_particles) / 2)
    for name in ECF_FEATURE_NAMES[1:]:
        assert values[name] == 0.0, name
    assert np.isfinite(result.values).all()


def test_azimuth_wraps_around_pi() -> None:
    near = ecf_features(np.array([1.0, 1.0]), np.zeros(2), np.array([np.pi - 0.1, -np.pi + 0.1]))
    assert _named(near.values)["c1_b1_mmdt"] == pytest.approx(0.25 * 0.2)
    assert delta_phi(np.array([3.0]), -3.0)[0] == pytest.approx(6.0 - 2 * np.pi)


def _brute_force(pt: np.ndarray, y: np.ndarray, phi: np.ndarray) -> dict[str, float]:
    z = pt / pt.sum()

    def angle(i: int, j: int) -> float:
        return float(np.hypot(y[i] - y[j], delta_phi(phi[i], phi[j])))

    e2 = {b: 0.0 for b in (0, 1, 2)}
    for i, j in itertools.combinations(range(len(z)), 2):
        for b in e2:
            e2[b] += z[i] * z[j] * angle(i, j) ** b
    e3, m, n = {1: 0.0, 2: 0.0}, {1: 0.0, 2: 0.0}, {1: 0.0, 2: 0.0}
    for i, j, k in itertools.combinations(range(len(z)), 3):
        angles = sorted([angle(i, j), angle(i, k), angle(j, k)])
        for b in (1, 2):
            weight = z[i] * z[j] * z[k]
            e3[b] += weight * (angles[0] * angles[1] * angles[2]) ** b
            m[b] += weight * angles[0] ** b
            n[b] += weight * (angles[0] * angles[1]) ** b
    out = {f"c1_b{b}_mmdt": e2[b] for b in (0, 1, 2)}
    for b in (1, 2):
        out[f"c2_b{b}_mmdt"] = e3[b] / e2[b] ** 2
        out[f"d2_b{b}_mmdt"] = e3[b] / e2[b] ** 3
        out[f"d2_a1_b{b}_mmdt"] = e3[1] / e2[b] ** (3 / b)
        out[f"m2_b{b}_mmdt"] = m[b] / e2[b]
        out[f"n2_b{b}_mmdt"] = n[b] / e2[b] ** 2
    return out


@pytest.mark.parametrize("n_particles", [2, 3, 7, 25])
def test_vectorised_sums_match_brute_force(n_particles: int) -> None:
    rng = np.random.default_rng(n_particles)
    pt = rng.exponential(40.0, n_particles) + 1.0
    y = rng.normal(0.0, 0.3, n_particles)
    phi = rng.normal(3.0, 0.3, n_particles)  # straddles +-pi
    values = _named(ecf_features(pt, y, phi).values)
    for name, expected in _brute_force(pt, y, phi).items():
        assert values[name] == pytest.approx(expected, rel=1e-9, abs=1e-15), name


def test_jets_beyond_the_cached_triplet_table() -> None:
    """n = 140 > 128 adds per-index blocks; compare with a full n**3 cube computed directly."""
    rng = np.random.default_rng(5)
    n = 140
    pt = rng.exponential(10.0, n) + 0.5
    y, phi = rng.normal(0.0, 0.3, n), rng.normal(0.0, 0.3, n)
    z = pt / pt.sum()
    r = np.hypot(y[:, None] - y[None, :], delta_phi(phi[:, None], phi[None, :]))
    a, b, c = r[:, :, None], r[:, None, :], r[None, :, :]
    lo = np.minimum(np.minimum(a, b), c)
    hi = np.maximum(np.maximum(a, b), c)
    mid = a + b + c - lo - hi
    weight = z[:, None, None] * z[None, :, None] * z[None, None, :]
    # repeated indices have a zero angle and drop out; each distinct triplet appears 6 times
    e2 = {beta: float(np.sum(np.triu(np.outer(z, z) * r**beta, 1))) for beta in (1, 2)}
    values = _named(ecf_features(pt, y, phi).values)
    for beta in (1, 2):
        e3 = np.sum(weight * (lo * mid * hi) ** beta) / 6
        assert values[f"d2_b{beta}_mmdt"] == pytest.approx(e3 / e2[beta] ** 3, rel=1e-9)
        m2 = np.sum(weight * lo**beta) / 6 / e2[beta]
        assert values[f"m2_b{beta}_mmdt"] == pytest.approx(m2, rel=1e-9)
        n2 = np.sum(weight * (lo * mid) ** beta) / 6 / e2[beta] ** 2
        assert values[f"n2_b{beta}_mmdt"] == pytest.approx(n2, rel=1e-9)


def test_high_level_features_assemble_in_order() -> None:
    pt = np.array([600.0, 300.0, 100.0])
    out = high_level_features(
        constituent_pt=pt,
        jet_pt=1000.0,
        groomed_pt=pt[:2],
        groomed_rapidity=np.array([0.0, 0.2]),
        groomed_phi=np.zeros(2),
        groomed_mass=42.0,
    )
    assert out.values.shape == (len(FEATURE_NAMES),)
    named = dict(zip(FEATURE_NAMES, out.values.tolist(), strict=True))
    assert named["zlogz"] == pytest.approx(sum(z * np.log(z) for z in (0.6, 0.3, 0.1)))
    assert named["mass_mmdt"] == 42.0
    assert named["multiplicity"] == 3
    assert named["c1_b1_mmdt"] == pytest.approx((600 * 300 / 900**2) * 0.2)


def test_zlogz_of_a_single_particle_is_zero() -> None:
    assert zlogz(np.array([500.0]), 500.0) == 0.0


def test_leading_constituents_sorted_relative_and_padded() -> None:
    pt = np.array([10.0, 300.0, 50.0])
    eta = np.array([0.1, 0.5, -0.2])
    phi = np.array([3.1, -3.1, 3.0])
    out = leading_constituents(pt, eta, phi, jet_pt=400.0, jet_eta=0.4, jet_phi=3.1, n=5)
    assert out.shape == (5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:3, 0], [0.75, 0.125, 0.025])
    np.testing.assert_allclose(out[:3, 1], [0.1, -0.6, -0.3], atol=1e-6)
    np.testing.assert_allclose(out[0, 2], 2 * np.pi - 6.2, atol=1e-6)
    assert (out[3:] == 0).all()
    assert leading_constituents(pt, eta, phi, jet_pt=1, jet_eta=0, jet_phi=0, n=2).shape == (2, 3)


def test_kinematics_of_a_known_momentum() -> None:
    pt, eta, rapidity, phi = kinematics(
        np.array([3.0]), np.array([4.0]), np.array([0.0]), np.array([5.0])
    )
    assert (pt[0], eta[0], rapidity[0]) == (5.0, 0.0, 0.0)
    assert phi[0] == pytest.approx(np.arctan2(4.0, 3.0))


@pytest.mark.datagen
def test_matches_fastjet_energy_correlators() -> None:
    """Our numpy correlators against fjcontrib's EnergyCorrelator family, through fastjet."""
    ak = pytest.importorskip("awkward")
    fastjet = pytest.importorskip("fastjet")
    fjcontrib_calls = {
        "c1_b1_mmdt": {"beta": 1, "npoint": 2, "func": "generalized"},
        "c1_b2_mmdt": {"beta": 2, "npoint": 2, "func": "generalized"},
        "c2_b1_mmdt": {"beta": 1, "npoint": 2, "func": "doubleratio"},
        "c2_b2_mmdt": {"beta": 2, "npoint": 2, "func": "doubleratio"},
        "d2_b1_mmdt": {"beta": 1, "npoint": 1, "func": "d2"},
        "d2_b2_mmdt": {"beta": 2, "npoint": 1, "func": "d2"},
        "d2_a1_b1_mmdt": {"beta": 1, "alpha": 1, "npoint": 1, "func": "generalizedd2"},
        "d2_a1_b2_mmdt": {"beta": 2, "alpha": 1, "npoint": 1, "func": "generalizedd2"},
        "m2_b1_mmdt": {"beta": 1, "npoint": 2, "func": "mseries"},
        "m2_b2_mmdt": {"beta": 2, "npoint": 2, "func": "mseries"},
        "n2_b1_mmdt": {"beta": 1, "npoint": 2, "func": "nseries"},
        "n2_b2_mmdt": {"beta": 2, "npoint": 2, "func": "nseries"},
    }
    rng = np.random.default_rng(7)
    for n_particles in (3, 8, 20):
        pt = rng.exponential(80.0, n_particles) + 2.0
        eta = rng.normal(0.5, 0.2, n_particles)
        phi = rng.normal(-2.9, 0.2, n_particles)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        energy = np.sqrt(px**2 + py**2 + pz**2 + 0.14**2)
        event = ak.Array(
            [
                [
                    {"px": a, "py": b, "pz": c, "E": d}
                    for a, b, c, d in zip(px, py, pz, energy, strict=True)
                ]
            ]
        )
        sequence = fastjet.ClusterSequence(
            event, fastjet.JetDefinition(fastjet.cambridge_algorithm, 0.8)
        )
        k_pt, _, k_rap, k_phi = kinematics(px, py, pz, energy)
        ours = _named(ecf_features(k_pt, k_rap, k_phi).values)
        for name, kwargs in fjcontrib_calls.items():
            theirs = sequence.exclusive_jets_energy_correlator(
                njets=1, angles=-1, normalized=True, **{"alpha": 0, **kwargs}
            )
            assert ours[name] == pytest.approx(float(np.asarray(theirs)[0]), rel=1e-6), name
