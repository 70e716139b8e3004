"""The jet sample: names, shapes and the in-memory container shared by generation and loading.

Arrays (the same keys in ``.npz`` and HDF5 files):

===============  =====================  ===============================================
key              dtype, shape           meaning
===============  =====================  ===============================================
features         float32 (N, 16)        high-level features, order :data:`FEATURE_NAMES`
constituents     float32 (N, C, 3)      leading constituents by pT: (pT / jet pT,
                                        eta - jet eta, delta phi to the jet axis), zero padded
labels           int64 (N,)             class index into :data:`CLASS_NAMES`
jet_pt           float32 (N,)           jet pT [GeV]
jet_eta          float32 (N,)           jet pseudorapidity
jet_mass         float32 (N,)           ungroomed jet mass [GeV]
===============  =====================  ===============================================

``feature_names`` and ``class_names`` are stored as string arrays next to them and checked on
load; ``metadata`` is a JSON string (generator settings, seed, versions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The 16 high-level features of the public hls4ml jet data set, in its column order.
FEATURE_NAMES: tuple[str, ...] = (
    "zlogz",
    "c1_b0_mmdt",
    "c1_b1_mmdt",
    "c1_b2_mmdt",
    "c2_b1_mmdt",
    "c2_b2_mmdt",
    "d2_b1_mmdt",
    "d2_b2_mmdt",
    "d2_a1_b1_mmdt",
    "d2_a1_b2_mmdt",
    "m2_b1_mmdt",
    "m2_b2_mmdt",
    "n2_b1_mmdt",
    "n2_b2_mmdt",
    "mass_mmdt",
    "multiplicity",
)

#: Jet classes: light quark, gluon, W boson, Z boson, top quark.
CLASS_NAMES: tuple[str, ...] = ("q", "g", "W", "Z", "t")

#: Default number of leading constituents kept per jet.
N_CONSTITUENTS = 30


@dataclass
class JetSample:
    """Jets with their features, constituents and labels (see the module docstring)."""

    features: np.ndarray
    constituents: np.ndarray
    labels: np.ndarray
    jet_pt: np.ndarray
    jet_eta: np.ndarray
    jet_mass: np.ndarray
    feature_names: tuple[str, ...] = FEATURE_NAMES
    class_names: tuple[str, ...] = CLASS_NAMES
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> JetSample:
        """The jets selected by an integer or boolean index, as a new sample."""
        return JetSample(
            features=self.features[index],
            constituents=self.constituents[index],
            labels=self.labels[index],
            jet_pt=self.jet_pt[index],
            jet_eta=self.jet_eta[index],
            jet_mass=self.jet_mass[index],
            feature_names=self.feature_names,
            class_names=self.class_names,
            metadata=dict(self.metadata),
        )
