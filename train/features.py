"""The 16 high-level jet features of the public hls4ml jet data set, and the constituent list.

The features follow arXiv:1804.06913 (OpenML ``hls4ml_lhc_jets_hlf``), in the order of
:data:`hepfpga.train.jets.FEATURE_NAMES`. All angles use the ``pt_R`` measure of the fjcontrib
``EnergyCorrelator`` package: the distance of two particles is
``R_ij = sqrt((y_i - y_j)**2 + dphi_ij**2)`` with rapidity ``y`` and ``dphi`` wrapped into
``[-pi, pi]``, and the energy of a particle is its transverse momentum.

Grooming ("mmdt"): the modified mass-drop tagger, i.e. SoftDrop with ``beta = 0``,
``z_cut = 0.1``, ``R0 = 0.8`` (fjcontrib ``RecursiveTools``; the jet is reclustered with
Cambridge/Aachen and declustered, following the harder branch, until
``min(pT1, pT2) / (pT1 + pT2) > 0.1``). The ``*_mmdt`` features use the constituents of the
groomed jet, with momentum fractions ``z_i = pT_i / sum_k pT_k`` over the groomed constituents.

Energy correlation functions (normalised, sums over distinct particles ``i < j < k``)::

    e2(b)  = sum_{i<j}   z_i z_j R_ij**b
    e3(b)  = sum_{i<j<k} z_i z_j z_k (R_ij R_ik R_jk)**b
    1e3(b) = sum_{i<j<k} z_i z_j z_k min(R_ij, R_ik, R_jk)**b           (smallest angle)
    2e3(b) = sum_{i<j<k} z_i z_j z_k (product of the two smallest angles)**b

Features (``b`` is the angular exponent beta, ``a`` the alpha of the generalised D2)::

    zlogz           sum_i z_i log z_i over the UNgroomed constituents, z_i = pT_i / pT_jet
    c1_b{0,1,2}     C1 = e2(b)                        (b = 0: (1 - sum_i z_i**2) / 2)
    c2_b{1,2}       C2 = e3(b) / e2(b)**2
    d2_b{1,2}       D2 = e3(b) / e2(b)**3
    d2_a1_b{1,2}    D2(a=1, b) = e3(1) / e2(b)**(3 / b)    (d2_a1_b1 equals d2_b1 by definition)
    m2_b{1,2}       M2 = 1e3(b) / e2(b)
    n2_b{1,2}       N2 = 2e3(b) / e2(b)**2
    mass_mmdt       invariant mass of the groomed jet [GeV]
    multiplicity    number of constituents of the UNgroomed jet

These are fjcontrib's ``EnergyCorrelatorC1``, ``C2``, ``D2``, ``GeneralizedD2``, ``M2`` and
``N2`` (``EnergyCorrelatorGeneralized`` for the ``1e3``/``2e3`` functions); a test marked
``datagen`` compares them with fastjet's own implementation.

Policy for undefined ratios: when ``e2(b) == 0`` (a groomed jet of a single constituent, or of
exactly collinear ones) C2, D2, D2(a, b), M2 and N2 are 0/0. They are then set to **0.0**, and
:func:`ecf_features` reports the jet as undefined so the caller can count it (the generator
stores ``n_undefined_ratios`` and ``n_groomed_le2`` in the sample metadata). A groomed jet of
two constituents is well defined: ``e3 = 1e3 = 2e3 = 0``, so C2 = D2 = M2 = N2 = 0 exactly.

Constituents (:func:`leading_constituents`): the leading ``n`` constituents of the UNgroomed
jet by pT, each ``(pT_i / pT_jet, eta_i - eta_jet, phi_i - phi_jet wrapped to [-pi, pi])``,
zero padded when the jet has fewer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hepfpga.errors import DataError
from hepfpga.train.jets import FEATURE_NAMES, N_CONSTITUENTS

__all__ = [
    "ECF_FEATURE_NAMES",
    "MMDT_BETA",
    "MMDT_R0",
    "MMDT_ZCUT",
    "EcfResult",
    "delta_phi",
    "ecf_features",
    "high_level_features",
    "kinematics",
    "leading_constituents",
    "zlogz",
]

#: SoftDrop parameters of the mMDT grooming.
MMDT_BETA = 0.0
MMDT_ZCUT = 0.1
MMDT_R0 = 0.8

#: The 13 energy-correlator features, in the order of :data:`FEATURE_NAMES` (columns 1..13).
ECF_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES[1:14]


@dataclass(frozen=True)
class EcfResult:
    """The 13 energy-correlator features of one groomed jet.

    ``undefined`` is true when ``e2 == 0`` made the ratios 0/0; they are then 0.0 (see the
    module docstring).
    """

    values: np.ndarray
    undefined: bool


def delta_phi(phi: ArrayLike, phi_ref: float | np.ndarray) -> np.ndarray:
    """``phi - phi_ref`` wrapped into ``[-pi, pi]``."""
    return (np.asarray(phi) - phi_ref + np.pi) % (2.0 * np.pi) - np.pi


def kinematics(
    px: ArrayLike, py: ArrayLike, pz: ArrayLike, energy: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(pt, eta, rapidity, phi)`` of four-momenta given as arrays (GeV).

    Particles exactly along the beam get ``eta = rapidity = 0``; they carry no pT and so no
    weight in any feature.
    """
    px, py, pz, energy = (np.asarray(a, dtype=np.float64) for a in (px, py, pz, energy))
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0.0, np.arcsinh(pz / np.where(pt > 0.0, pt, 1.0)), 0.0)
        num = energy + pz
        den = energy - pz
        rapidity = np.where(
            (num > 0.0) & (den > 0.0), 0.5 * np.log(np.maximum(num, 1e-300) / den), 0.0
        )
    phi = np.arctan2(py, px)
    return pt, eta, rapidity, phi


def _pair_angles(rapidity: np.ndarray, phi: np.ndarray) -> np.ndarray:
    dy = rapidity[:, None] - rapidity[None, :]
    dphi = delta_phi(phi[:, None], phi[None, :])
    return np.sqrt(dy * dy + dphi * dphi)


# Triplets of indices below this bound come from one cached table (C(128, 3) = 341,376
# triplets, 8 MB); jets with more constituents add one block per further last index. The
# three index columns are separate contiguous intp arrays: strided or int32 index arrays make
# the gathers several times slower.
_TABLE_SIZE = 128
# Triplets per block: small enough for the ~15 temporaries of a block to stay in the cache.
_BLOCK = 16_384
_triplet_table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _triplet_blocks(n: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Index arrays ``(i, j, k)`` that together cover every triplet ``i < j < k < n`` once.

    The cached table is ordered by ``k`` first, so the triplets of any ``n <= _TABLE_SIZE``
    are a prefix of it.
    """
    global _triplet_table
    if _triplet_table is None:
        pairs = [np.triu_indices(k, 1) for k in range(2, _TABLE_SIZE)]
        _triplet_table = (
            np.concatenate([i for i, _ in pairs]).astype(np.intp),
            np.concatenate([j for _, j in pairs]).astype(np.intp),
            np.concatenate([np.full(i.size, k) for k, (i, _) in enumerate(pairs, 2)]).astype(
                np.intp
            ),
        )
    m = min(n, _TABLE_SIZE)
    size = m * (m - 1) * (m - 2) // 6
    for start in range(0, size, _BLOCK):
        stop = min(start + _BLOCK, size)
        yield tuple(column[start:stop] for column in _triplet_table)  # type: ignore[misc]
    for k in range(_TABLE_SIZE, n):
        i, j = np.triu_indices(k, 1)
        yield i, j, np.full(i.size, k, dtype=np.intp)


def _triplet_sums(z: np.ndarray, angles: np.ndarray) -> dict[str, float]:
    """Sums over i<j<k of z_i z_j z_k times the sorted-angle products, for beta 1 and 2."""
    n = z.shape[0]
    flat = angles.ravel()
    sums = dict.fromkeys(("e3_1", "e3_2", "1e3_1", "1e3_2", "2e3_1", "2e3_2"), 0.0)
    for i, j, k in _triplet_blocks(n):
        a, b, c = flat[i * n + j], flat[i * n + k], flat[j * n + k]
        lo = np.minimum(np.minimum(a, b), c)
        hi = np.maximum(np.maximum(a, b), c)
        two = lo * (a + b + c - lo - hi)  # product of the two smallest angles
        three = two * hi
        weight = z[i] * z[j] * z[k]
        wlo, wtwo, wthree = weight * lo, weight * two, weight * three
        sums["e3_1"] += float(np.sum(wthree))
        sums["e3_2"] += float(np.dot(wthree, three))
        sums["1e3_1"] += float(np.sum(wlo))
        sums["1e3_2"] += float(np.dot(wlo, lo))
        sums["2e3_1"] += float(np.sum(wtwo))
        sums["2e3_2"] += float(np.dot(wtwo, two))
    return sums


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0.0 else 0.0


def ecf_features(pt: np.ndarray, rapidity: np.ndarray, phi: np.ndarray) -> EcfResult:
    """The 13 energy-correlator features (``c1_b0_mmdt`` ... ``n2_b2_mmdt``) of one jet.

    Arguments are the constituents of the (groomed) jet: transverse momenta [GeV],
    rapidities and azimuths, 1-d arrays of equal length (at least one constituent).
    """
    pt = np.asarray(pt, dtype=np.float64)
    rapidity = np.asarray(rapidity, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    if pt.ndim != 1 or pt.shape != rapidity.shape or pt.shape != phi.shape:
        raise DataError(
            "ecf_features expects 1-d pt, rapidity and phi of equal length; got shapes "
            f"{pt.shape}, {rapidity.shape}, {phi.shape}"
        )
    if pt.size == 0 or not np.sum(pt) > 0.0:
        raise DataError("ecf_features needs at least one constituent with pt > 0")
    z = pt / np.sum(pt)
    angles = _pair_angles(rapidity, phi)
    zz = np.triu(z[:, None] * z[None, :], k=1)
    e2 = {0: float(np.sum(zz)), 1: float(np.sum(zz * angles)), 2: float(np.sum(zz * angles**2))}
    tri = _triplet_sums(z, angles)
    e3 = {1: tri["e3_1"], 2: tri["e3_2"]}
    values = [e2[0], e2[1], e2[2]]
    values += [_ratio(e3[b], e2[b] ** 2) for b in (1, 2)]  # C2
    values += [_ratio(e3[b], e2[b] ** 3) for b in (1, 2)]  # D2
    values += [_ratio(e3[1], e2[b] ** (3.0 / b)) for b in (1, 2)]  # D2(alpha=1, beta)
    values += [_ratio(tri[f"1e3_{b}"], e2[b]) for b in (1, 2)]  # M2
    values += [_ratio(tri[f"2e3_{b}"], e2[b] ** 2) for b in (1, 2)]  # N2
    undefined = not (e2[1] > 0.0 and e2[2] > 0.0)
    return EcfResult(values=np.asarray(values, dtype=np.float64), undefined=undefined)


def zlogz(pt: np.ndarray, jet_pt: float) -> float:
    """``sum_i z_i log z_i`` with ``z_i = pT_i / pT_jet``; particles with pT = 0 add nothing."""
    z = np.asarray(pt, dtype=np.float64) / float(jet_pt)
    z = z[z > 0.0]
    return float(np.sum(z * np.log(z)))


def high_level_features(
    *,
    constituent_pt: np.ndarray,
    jet_pt: float,
    groomed_pt: np.ndarray,
    groomed_rapidity: np.ndarray,
    groomed_phi: np.ndarray,
    groomed_mass: float,
) -> EcfResult:
    """All 16 features of one jet, in :data:`FEATURE_NAMES` order.

    ``constituent_pt`` are the pTs of the ungroomed constituents, ``jet_pt`` the ungroomed
    jet pT, the ``groomed_*`` arrays the constituents of the mMDT-groomed jet and
    ``groomed_mass`` its mass [GeV]. ``undefined`` follows :func:`ecf_features`.
    """
    ecf = ecf_features(groomed_pt, groomed_rapidity, groomed_phi)
    values = np.empty(len(FEATURE_NAMES), dtype=np.float64)
    values[0] = zlogz(constituent_pt, jet_pt)
    values[1:14] = ecf.values
    values[14] = groomed_mass
    values[15] = np.asarray(constituent_pt).shape[0]
    return EcfResult(values=values, undefined=ecf.undefined)


def leading_constituents(
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    *,
    jet_pt: float,
    jet_eta: float,
    jet_phi: float,
    n: int = N_CONSTITUENTS,
) -> np.ndarray:
    """float32 ``(n, 3)``: the ``n`` leading constituents by pT, relative to the jet axis.

    Columns: ``pT / jet_pt``, ``eta - jet_eta``, ``phi - jet_phi`` wrapped to ``[-pi, pi]``;
    rows beyond the number of constituents are zero.
    """
    if n < 0:
        raise DataError(f"expected a non-negative number of constituents. Received: n={n}")
    pt = np.asarray(pt, dtype=np.float64)
    order = np.argsort(-pt, kind="stable")[:n]
    out = np.zeros((n, 3), dtype=np.float32)
    out[: order.size, 0] = pt[order] / jet_pt
    out[: order.size, 1] = np.asarray(eta, dtype=np.float64)[order] - jet_eta
    out[: order.size, 2] = delta_phi(np.asarray(phi, dtype=np.float64)[order], jet_phi)
    return out
