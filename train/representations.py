"""Input representations: what a network sees of a jet, built from one :class:`JetSample`.

=========================  ==========================================  =====================
name                       array per jet                               preprocessing
=========================  ==========================================  =====================
``features``               the 16 substructure features ``(16,)``      :class:`FeatureScaler`
                                                                       fitted on the
                                                                       training jets
``constituent_sequence``   the ``n`` leading constituents by pT,       none: pT fraction in
                           ``(n, 3)``: pT / jet pT, eta - jet eta,     [0, 1], angles in
                           delta phi; zero-padded at the end           radians
``constituent_cloud``      the same constituents plus a ``present``    none
                           flag, ``(n, 4)``, read as an unordered set
``jet_image``              pT-fraction image ``(pixels, pixels, 1)``,  none (see
                           :func:`hepfpga.train.images.jet_images`)    :mod:`images`)
=========================  ==========================================  =====================

A representation is a small frozen dataclass registered in :data:`REPRESENTATIONS`; an
architecture's config section builds the one it consumes (:meth:`prepare` gives the train,
validation and test arrays as float32 and a description of the preprocessing, written into
the run folder and the ONNX metadata so a server can rebuild the inputs). ``parts`` names the
parts of a jet it is built from (``features``: the features; the others: the constituents), so
a streamed sample reads only those datasets of its files (:data:`hepfpga.train.layouts.
SAMPLE_PARTS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from hepfpga.errors import DataError
from hepfpga.registry import Registry
from hepfpga.train.dataset import FeatureScaler, ScalingKind, Split
from hepfpga.train.images import jet_images
from hepfpga.train.jets import FEATURE_NAMES, JetSample

__all__ = [
    "REPRESENTATIONS",
    "ConstituentCloud",
    "ConstituentSequence",
    "Features",
    "JetImage",
    "PreparedInputs",
    "Representation",
    "register_representation",
]


@dataclass(frozen=True)
class PreparedInputs:
    """Network inputs of the three splits (float32) and how they were made from the jets.

    ``scaler`` is the fitted feature scaling when the representation has one (saved as
    ``scaler.json``); ``preprocessing`` describes the whole transformation as plain data.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    preprocessing: dict[str, Any]
    scaler: FeatureScaler | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.train.shape[1:])


class Representation(Protocol):
    """What a registered representation provides: its inputs built in memory
    (:meth:`prepare`), or batch by batch for a streamed sample (:meth:`fit_streamed` on the
    training jets read chunk by chunk, then :meth:`encode` per chunk, as
    :mod:`hepfpga.train.stream` does). Both give the same arrays for the same jets."""

    name: ClassVar[str]
    #: the parts of a jet it reads (a subset of :data:`hepfpga.train.layouts.SAMPLE_PARTS`)
    parts: ClassVar[frozenset[str]]

    def prepare(self, split: Split) -> PreparedInputs: ...

    def fit_streamed(self, train: Iterable[JetSample]) -> FeatureScaler | None: ...

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray: ...

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]: ...


#: Representation classes by name (the values of an architecture's ``representation`` key).
REPRESENTATIONS: Registry[type[Any]] = Registry("representation")


def register_representation(cls: type[Any]) -> type[Any]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    return REPRESENTATIONS.register(cls.name, cls)


def _require(sample: JetSample, part: str, representation: str, instead: str) -> None:
    """Refuse a representation whose input ``part`` (``features``, ``constituents``) the
    sample's file does not hold (``metadata[part] == "absent"``, see
    :mod:`hepfpga.train.layouts`), naming what is missing and what could be used instead."""
    if sample.metadata.get(part) != "absent":
        return
    source = sample.metadata.get("source", "the sample")
    why = sample.metadata.get("missing", {}).get(part, f"{source} holds no {part}")
    raise DataError(
        f"the {representation} representation needs the jets' {part}, which {source} does not "
        f"hold ({why}); use {instead} with this sample"
    )


_CONSTITUENT_REPRESENTATIONS = "constituent_sequence, constituent_cloud or jet_image"


def _constituents(sample: JetSample, n: int, representation: str) -> np.ndarray:
    _require(sample, "constituents", representation, "the features representation")
    stored = sample.constituents.shape[1]
    if n > stored:
        raise DataError(f"{n} constituents per jet requested, the sample stores {stored}")
    return sample.constituents[:, :n, :]


class _Unscaled:
    """The representations without a fitted preprocessing: :meth:`prepare` encodes each part.
    They are built from the constituents alone."""

    name: ClassVar[str]
    parts: ClassVar[frozenset[str]] = frozenset({"constituents"})

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        raise NotImplementedError

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        raise NotImplementedError

    def fit_streamed(self, train: Iterable[JetSample]) -> FeatureScaler | None:
        return None

    def prepare(self, split: Split) -> PreparedInputs:
        train, val, test = (
            np.ascontiguousarray(self.encode(s, None), dtype=np.float32)
            for s in (split.train, split.validation, split.test)
        )
        return PreparedInputs(train, val, test, self.preprocessing(None))


@register_representation
@dataclass(frozen=True)
class Features:
    """The substructure features, scaled by a :class:`FeatureScaler` fitted on the training
    jets only (``scaling``: standard, minmax or none)."""

    name: ClassVar[str] = "features"
    parts: ClassVar[frozenset[str]] = frozenset({"features"})
    scaling: ScalingKind = "standard"

    def prepare(self, split: Split) -> PreparedInputs:
        _require(split.train, "features", self.name, _CONSTITUENT_REPRESENTATIONS)
        scaler = FeatureScaler.fit(split.train.features, self.scaling, split.train.feature_names)
        train, val, test = (
            np.ascontiguousarray(self.encode(s, scaler), dtype=np.float32)
            for s in (split.train, split.validation, split.test)
        )
        return PreparedInputs(train, val, test, self.preprocessing(scaler), scaler)

    def fit_streamed(self, train: Iterable[JetSample]) -> FeatureScaler:
        names: list[tuple[str, ...]] = []

        def features() -> Iterator[np.ndarray]:
            for chunk in train:
                _require(chunk, "features", self.name, _CONSTITUENT_REPRESENTATIONS)
                names.append(chunk.feature_names)
                yield chunk.features

        scaler = FeatureScaler.fit_streamed(features(), self.scaling, FEATURE_NAMES)
        return FeatureScaler(scaler.kind, scaler.offset, scaler.scale, names[0])

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        if scaler is None:  # pragma: no cover - a programming error
            raise ValueError("the features representation needs its fitted scaler")
        _require(sample, "features", self.name, _CONSTITUENT_REPRESENTATIONS)
        return scaler.transform(sample.features)

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        return {"representation": self.name, "scaler": scaler.to_dict() if scaler else None}


@register_representation
@dataclass(frozen=True)
class ConstituentSequence(_Unscaled):
    """The ``n_constituents`` leading constituents in decreasing pT, ``(n, 3)`` per jet:
    (pT / jet pT, eta - jet eta, delta phi), zero-padded; not rescaled."""

    name: ClassVar[str] = "constituent_sequence"
    n_constituents: int = 30

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        return _constituents(sample, self.n_constituents, self.name)

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        return {
            "representation": self.name,
            "n_constituents": self.n_constituents,
            "channels": ["pt_fraction", "delta_eta", "delta_phi"],
            "order": "decreasing pT, zero-padded",
        }


@register_representation
@dataclass(frozen=True)
class ConstituentCloud(_Unscaled):
    """The ``n_constituents`` leading constituents as an unordered point cloud, ``(n, 4)``
    per jet: (pT / jet pT, eta - jet eta, delta phi, present), where ``present`` is 1 for a
    stored constituent and 0 for padding (all four channels 0). The fourth channel is the
    vertex mask GarNet's single-input format reads (a vertex counts when channel 3 != 0)."""

    name: ClassVar[str] = "constituent_cloud"
    n_constituents: int = 30

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        c = _constituents(sample, self.n_constituents, self.name)
        present = (c[..., :1] != 0).astype(c.dtype)
        return np.concatenate([c, present], axis=-1)

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        return {
            "representation": self.name,
            "n_constituents": self.n_constituents,
            "channels": ["pt_fraction", "delta_eta", "delta_phi", "present"],
            "order": "decreasing pT (not used), zero-padded",
        }


@register_representation
@dataclass(frozen=True)
class JetImage(_Unscaled):
    """``pixels`` x ``pixels`` pT-fraction images over ``[-extent, extent)`` in delta eta and
    delta phi (:func:`~hepfpga.train.images.jet_images`), built from the stored constituents.
    A coarser image is the downsampled finer one: with aligned bins, summing 2x2 pixels of a
    32x32 image gives the 16x16 image of the same extent exactly."""

    name: ClassVar[str] = "jet_image"
    pixels: int = 16
    extent: float = 0.8

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        _require(sample, "constituents", self.name, "the features representation")
        return jet_images(sample.constituents, self.pixels, self.extent)

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        return {
            "representation": self.name,
            "pixels": self.pixels,
            "extent": self.extent,
            "pixel_value": "sum of pT / jet pT of the constituents in the pixel",
        }
