"""Input representations: what a network sees of a jet, built from one :class:`JetSample`.

=========================  ==========================================  =====================
name                       array per jet                               preprocessing
=========================  ==========================================  =====================
``features``               the 16 substructure features ``(16,)``      :class:`FeatureScaler`
                                                                       fitted on the
                                                                       training jets
``constituent_sequence``   the ``n`` leading constituents by pT,       none by default: pT
                           ``(n, k)``: the ``channels`` of             fraction in [0, 1],
                           :data:`CONSTITUENT_CHANNELS` (default pT /  angles in radians;
                           jet pT, eta - jet eta, delta phi);          optionally a per-channel
                           zero-padded at the end                      scaler (``scaling``)
``constituent_cloud``      the same constituents plus a ``present``    as the sequence
                           flag (channel 3), ``(n, k + 1)``, read as
                           an unordered set
``jet_image``              pT-fraction image ``(pixels, pixels, 1)``,  none (see
                           :func:`hepfpga.train.images.jet_images`)    :mod:`images`)
``jet_image_features``     the image flattened row-major, then some    the features: a
                           substructure features, one vector           :class:`FeatureScaler`
                           ``(pixels**2 + k,)``                        (``scaling``)
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
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from hepfpga.errors import ConfigError, DataError
from hepfpga.registry import Registry
from hepfpga.train.dataset import FeatureScaler, ScalingKind, Split
from hepfpga.train.images import jet_images
from hepfpga.train.jets import FEATURE_NAMES, JetSample

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CONSTITUENT_CHANNELS",
    "DEFAULT_CHANNELS",
    "PRESENT_CHANNEL",
    "REPRESENTATIONS",
    "ConstituentChannel",
    "ConstituentCloud",
    "ConstituentSequence",
    "Features",
    "JetImage",
    "JetImageFeatures",
    "PreparedInputs",
    "Representation",
    "check_channels",
    "constituent_channels",
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


def _prepared(
    representation: Representation, split: Split, scaler: FeatureScaler | None
) -> PreparedInputs:
    """The three splits encoded by ``representation`` with the fitted ``scaler`` (float32,
    contiguous), with its preprocessing description."""
    train, val, test = (
        np.ascontiguousarray(representation.encode(s, scaler), dtype=np.float32)
        for s in (split.train, split.validation, split.test)
    )
    return PreparedInputs(train, val, test, representation.preprocessing(scaler), scaler)


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


def _constituents(
    sample: JetSample, n: int, representation: str, *, pad: bool = False
) -> np.ndarray:
    """The ``n`` leading stored constituents of each jet; with ``pad``, a sample that stores
    fewer than ``n`` gets zero constituents after its stored ones (the padding a jet with
    fewer constituents already has), else it is refused."""
    _require(sample, "constituents", representation, "the features representation")
    stored = sample.constituents.shape[1]
    if n > stored:
        if not pad:
            raise DataError(
                f"{n} constituents per jet requested, the sample stores {stored}; accepted: "
                f"at most {stored}, or model.pad_constituents: true to zero-pad to {n}"
            )
        return np.pad(sample.constituents, ((0, 0), (0, n - stored), (0, 0)))
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
        return _prepared(self, split, None)


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
        return _prepared(self, split, scaler)

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


# --- per-constituent channels ---------------------------------------------------------------


@dataclass(frozen=True)
class _Constituents:
    """The stored constituents of a batch of jets in float64 and their jets' kinematics:
    what every channel is computed from. ``present``: a stored constituent (pT fraction != 0),
    not padding."""

    pt_fraction: np.ndarray  # (N, n)
    delta_eta: np.ndarray
    delta_phi: np.ndarray
    present: np.ndarray  # (N, n) bool
    jet_pt: np.ndarray  # (N, 1) GeV
    jet_eta: np.ndarray  # (N, 1)
    jet_mass: np.ndarray  # (N, 1) GeV

    def log(self, x: np.ndarray) -> np.ndarray:
        """``log(x)`` where a constituent is present, 0 on padding (no log of 0 taken)."""
        return np.where(self.present, np.log(np.where(self.present, x, 1.0)), 0.0)

    def pt(self) -> np.ndarray:
        """Constituent pT [GeV]: pT fraction x jet pT (0 on padding)."""
        return self.pt_fraction * self.jet_pt

    def energy(self) -> np.ndarray:
        """Massless constituent energy [GeV]: ``pT cosh(eta)``, ``eta = jet eta + delta eta``
        (0 on padding)."""
        return self.pt() * np.cosh(self.jet_eta + self.delta_eta)

    def jet_energy(self) -> np.ndarray:
        """Jet energy [GeV]: ``sqrt(m^2 + (pT cosh(eta))^2)`` from the stored jet pT, eta and
        mass."""
        return np.sqrt(self.jet_mass**2 + (self.jet_pt * np.cosh(self.jet_eta)) ** 2)


@dataclass(frozen=True)
class ConstituentChannel:
    """One per-constituent input channel: ``compute`` maps the stored constituents and jet
    kinematics (:class:`_Constituents`) to an ``(N, n)`` float64 array, 0 on padding;
    ``needs_jet`` says it reads the jet kinematics (the jet pT must then be > 0);
    ``description`` states its definition and unit."""

    compute: Callable[[_Constituents], np.ndarray]
    description: str
    needs_jet: bool = False


#: The per-constituent channels by name (the values of a constituent representation's
#: ``channels``). Constituents are taken massless: E = pT cosh(eta), eta = jet eta + delta
#: eta; logs are natural and taken only where a constituent is present (padding is 0 in every
#: channel). pT and E in GeV.
CONSTITUENT_CHANNELS: Registry[ConstituentChannel] = Registry(
    "constituent channel",
    {
        "pt_fraction": ConstituentChannel(
            lambda c: np.where(c.present, c.pt_fraction, 0.0), "pT / jet pT, in [0, 1]"
        ),
        "delta_eta": ConstituentChannel(
            lambda c: np.where(c.present, c.delta_eta, 0.0), "eta - jet eta"
        ),
        "delta_phi": ConstituentChannel(
            lambda c: np.where(c.present, c.delta_phi, 0.0),
            "phi - jet phi, wrapped to [-pi, pi)",
        ),
        "log_pt_fraction": ConstituentChannel(
            lambda c: c.log(c.pt_fraction), "log(pT / jet pT), <= 0"
        ),
        "log_pt": ConstituentChannel(
            lambda c: c.log(c.pt()), "log(pT / GeV), pT = pT fraction x jet pT", needs_jet=True
        ),
        "log_energy": ConstituentChannel(
            lambda c: c.log(c.energy()),
            "log(E / GeV), E = pT cosh(jet eta + delta eta) (massless)",
            needs_jet=True,
        ),
        "log_energy_fraction": ConstituentChannel(
            lambda c: c.log(c.energy() / c.jet_energy()),
            "log(E / jet E), jet E = sqrt(m^2 + (pT cosh eta)^2) of the stored jet",
            needs_jet=True,
        ),
        "delta_r": ConstituentChannel(
            lambda c: np.where(c.present, np.hypot(c.delta_eta, c.delta_phi), 0.0),
            "sqrt(delta eta^2 + delta phi^2)",
        ),
    },
)

#: The channels of a constituent representation unless its config names others: the stored
#: constituents as they are (the inputs of hepfpga's first constituent taggers).
DEFAULT_CHANNELS: tuple[str, ...] = ("pt_fraction", "delta_eta", "delta_phi")

#: The index of the cloud's ``present`` channel: hls4ml GarNet's single-input format ``x``
#: reads its vertex mask from channel 3 (``data[..., 3:4] != 0``).
PRESENT_CHANNEL = 3


def check_channels(
    channels: tuple[str, ...], path: str, *, minimum: int = 1, why: str = ""
) -> None:
    """Validate a ``channels`` list at config ``path``: each a name of
    :data:`CONSTITUENT_CHANNELS` (a :class:`~hepfpga.errors.ConfigError` at
    ``path[i]`` naming the closest and listing the accepted ones), no repeats, at least
    ``minimum`` of them (``why``: the reason, said in the error)."""
    if len(channels) < minimum:
        raise ConfigError(
            f"expected at least {minimum} channel(s){why}, got {len(channels)}; accepted: "
            f"{', '.join(CONSTITUENT_CHANNELS)}",
            path=path,
        )
    for i, name in enumerate(channels):
        CONSTITUENT_CHANNELS.lookup(name, f"{path}[{i}]")
        if name in channels[:i]:
            raise ConfigError(f"channel {name!r} is listed twice", path=f"{path}[{i}]")


def constituent_channels(
    constituents: np.ndarray, sample: JetSample, channels: tuple[str, ...]
) -> np.ndarray:
    """The ``(N, n, len(channels))`` float64 channels of ``constituents`` (the sample's
    leading ``n``, ``(N, n, 3)``), 0 on padding; a :class:`DataError` when a channel reads
    the jet kinematics and a jet's pT is not > 0."""
    specs = [CONSTITUENT_CHANNELS.lookup(name, "channels") for name in channels]
    n_jets = constituents.shape[0]
    c = np.asarray(constituents, dtype=np.float64)

    def column(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(n_jets, 1)

    parts = _Constituents(
        c[..., 0],
        c[..., 1],
        c[..., 2],
        c[..., 0] != 0,
        column(sample.jet_pt),
        column(sample.jet_eta),
        column(sample.jet_mass),
    )
    if any(s.needs_jet for s in specs):
        bad = ~(parts.jet_pt[:, 0] > 0) | ~np.isfinite(parts.jet_pt[:, 0])
        if bad.any():
            which = [n for n, s in zip(channels, specs, strict=True) if s.needs_jet]
            raise DataError(
                f"{int(bad.sum())} jet(s) without a positive jet pT (first: jet "
                f"{int(np.argmax(bad))}); channels {', '.join(which)} need it: use "
                f"{', '.join(n for n, s in CONSTITUENT_CHANNELS.items() if not s.needs_jet)}"
            )
    if not channels:
        return np.zeros((*c.shape[:2], 0))
    return np.stack([s.compute(parts) for s in specs], axis=-1)


@dataclass(frozen=True)
class _ConstituentChannels:
    """The constituent representations built from :data:`CONSTITUENT_CHANNELS`: ``channels``
    of the ``n_constituents`` leading constituents, optionally scaled per channel
    (``scaling``: ``none``; ``standard`` (x - mean) / std or ``minmax``, a
    :class:`FeatureScaler` over the channels fitted on the present constituents of the
    training jets only, saved as ``scaler.json`` and in the preprocessing). Padding is 0 in
    every channel, before and after the scaling."""

    name: ClassVar[str]
    parts: ClassVar[frozenset[str]] = frozenset({"constituents"})
    n_constituents: int = 30
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    scaling: ScalingKind = "none"
    pad: bool = False

    def _leading(self, sample: JetSample) -> np.ndarray:
        """The ``n_constituents`` leading constituents (zero-padded beyond the stored ones when
        ``pad``; :func:`_constituents`)."""
        return _constituents(sample, self.n_constituents, self.name, pad=self.pad)

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        raise NotImplementedError

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        raise NotImplementedError

    def _default(self) -> bool:
        return tuple(self.channels) == DEFAULT_CHANNELS and self.scaling == "none"

    def _channels(self, sample: JetSample) -> tuple[np.ndarray, np.ndarray]:
        """The unscaled channels (float64) and the present mask of ``sample``'s leading
        constituents."""
        c = self._leading(sample)
        return constituent_channels(c, sample, tuple(self.channels)), c[..., 0] != 0

    def _scaled(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        """The channels with ``scaler`` applied to the present constituents (float32)."""
        x, present = self._channels(sample)
        if self.scaling != "none":
            if scaler is None:  # pragma: no cover - a programming error
                raise ValueError(f"the {self.name} representation needs its fitted scaler")
            out = np.zeros(x.shape, dtype=np.float32)
            out[present] = scaler.transform(x[present])
            return out
        return x.astype(np.float32)

    def prepare(self, split: Split) -> PreparedInputs:
        scaler = None
        if self.scaling != "none":
            x, present = self._channels(split.train)
            scaler = FeatureScaler.fit(x[present], self.scaling, tuple(self.channels))
        return _prepared(self, split, scaler)

    def fit_streamed(self, train: Iterable[JetSample]) -> FeatureScaler | None:
        if self.scaling == "none":
            return None

        def rows() -> Iterator[np.ndarray]:
            for chunk in train:
                x, present = self._channels(chunk)
                yield x[present]

        return FeatureScaler.fit_streamed(rows(), self.scaling, tuple(self.channels))

    def _description(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        return {
            "representation": self.name,
            "n_constituents": self.n_constituents,
            "channel_definitions": {n: CONSTITUENT_CHANNELS[n].description for n in self.channels},
            "scaling": self.scaling,
            "scaler": scaler.to_dict() if scaler else None,
            "scaled": "present constituents only; padding is 0 in every channel",
            **self._padding(),
        }

    def _padding(self) -> dict[str, Any]:
        """The preprocessing's note on constituents beyond the stored ones (only when
        ``pad``)."""
        if not self.pad:
            return {}
        return {
            "padding": f"constituents beyond a sample's stored ones are zero, up to "
            f"{self.n_constituents}"
        }


@register_representation
@dataclass(frozen=True)
class ConstituentSequence(_ConstituentChannels):
    """The ``n_constituents`` leading constituents in decreasing pT, ``(n, len(channels))``
    per jet, zero-padded. By default (``channels`` :data:`DEFAULT_CHANNELS`, ``scaling``
    none) the stored (pT / jet pT, eta - jet eta, delta phi), not rescaled."""

    name: ClassVar[str] = "constituent_sequence"

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        if self._default():
            return self._leading(sample)
        return self._scaled(sample, scaler)

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        if self._default():
            return {
                "representation": self.name,
                "n_constituents": self.n_constituents,
                "channels": list(DEFAULT_CHANNELS),
                "order": "decreasing pT, zero-padded",
                **self._padding(),
            }
        return {
            **self._description(scaler),
            "channels": list(self.channels),
            "order": "decreasing pT, zero-padded",
        }


@register_representation
@dataclass(frozen=True)
class ConstituentCloud(_ConstituentChannels):
    """The ``n_constituents`` leading constituents as an unordered point cloud,
    ``(n, len(channels) + 1)`` per jet: the ``channels`` with a ``present`` channel at index
    :data:`PRESENT_CHANNEL` (3: after the first three channels, before the others), 1 for a
    stored constituent and 0 for padding (every channel 0). Channel 3 is the vertex mask
    GarNet's single-input format reads (a vertex counts when channel 3 != 0), so a cloud has
    at least three other channels; ``present`` is never scaled. By default (pT / jet pT,
    eta - jet eta, delta phi, present), not rescaled."""

    name: ClassVar[str] = "constituent_cloud"

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        if self._default():
            c = self._leading(sample)
            present = (c[..., :1] != 0).astype(c.dtype)
            return np.concatenate([c, present], axis=-1)
        if len(self.channels) < PRESENT_CHANNEL:  # pragma: no cover - refused by the config
            raise ValueError(f"a constituent cloud needs at least {PRESENT_CHANNEL} channels")
        x = self._scaled(sample, scaler)
        present = self._leading(sample)[..., :1] != 0
        return np.concatenate(
            [x[..., :PRESENT_CHANNEL], present.astype(np.float32), x[..., PRESENT_CHANNEL:]],
            axis=-1,
        )

    def _names(self) -> list[str]:
        names = list(self.channels)
        return [*names[:PRESENT_CHANNEL], "present", *names[PRESENT_CHANNEL:]]

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        if self._default():
            return {
                "representation": self.name,
                "n_constituents": self.n_constituents,
                "channels": ["pt_fraction", "delta_eta", "delta_phi", "present"],
                "order": "decreasing pT (not used), zero-padded",
                **self._padding(),
            }
        return {
            **self._description(scaler),
            "channels": self._names(),
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
    #: each jet in its own frame first (centroid, principal axis, flips:
    #: :func:`~hepfpga.train.images.align_constituents`)
    align: bool = False
    #: GeV: the angles multiplied by ``jet pT / pt_reference`` (None: not scaled)
    pt_reference: float | None = None

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        _require(sample, "constituents", self.name, "the features representation")
        scale = None
        if self.pt_reference is not None:
            scale = np.asarray(sample.jet_pt, dtype=np.float64).reshape(-1) / self.pt_reference
        return jet_images(
            sample.constituents, self.pixels, self.extent, align=self.align, angle_scale=scale
        )

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        return {
            "representation": self.name,
            "pixels": self.pixels,
            "extent": self.extent,
            "pixel_value": "sum of pT / jet pT of the constituents in the pixel",
            "frame": (
                "each jet's own: pT-weighted centroid at the origin, principal axis along "
                "eta, third moments not negative"
                if self.align
                else "the jet axis at the centre, no rotation"
            ),
            "angles": (
                f"multiplied by jet pT / {self.pt_reference:g} GeV before binning"
                if self.pt_reference is not None
                else "as stored (radians)"
            ),
        }


@register_representation
@dataclass(frozen=True)
class JetImageFeatures(JetImage):
    """A :class:`JetImage` flattened row-major (pixel ``(r, c)`` at ``r * pixels + c``),
    followed by the substructure ``features`` named (e.g. the groomed mass ``mass_mmdt``),
    scaled by a :class:`FeatureScaler` fitted on the training jets (``scaling``: standard,
    the default, (x - mean) / std; minmax; none), saved as ``scaler.json``: one vector of
    ``pixels**2 + len(features)`` values per jet, so the network, its ONNX export, the server
    and the firmware take one input tensor (one input type: a standardised feature beyond the
    input quantizer's range saturates there). The CNN splits the vector again
    (``Cropping1D``, :func:`hepfpga.train.architectures.cnn.build_cnn`)."""

    name: ClassVar[str] = "jet_image_features"
    parts: ClassVar[frozenset[str]] = frozenset({"constituents", "features"})
    features: tuple[str, ...] = ("mass_mmdt",)
    scaling: ScalingKind = "standard"

    def _columns(self, sample: JetSample) -> list[int]:
        """The columns of ``features`` in ``sample``'s features, or a one-line refusal naming
        the missing ones and the features the sample holds."""
        _require(sample, "features", self.name, "the jet_image representation (no image_features)")
        missing = [name for name in self.features if name not in sample.feature_names]
        if missing:
            raise DataError(
                f"model.image_features: {', '.join(map(repr, missing))} not among the sample's "
                f"features; accepted: {', '.join(sample.feature_names)}"
            )
        return [sample.feature_names.index(name) for name in self.features]

    def _selected(self, sample: JetSample) -> np.ndarray:
        return np.asarray(sample.features)[:, self._columns(sample)]

    def prepare(self, split: Split) -> PreparedInputs:
        scaler = FeatureScaler.fit(self._selected(split.train), self.scaling, self.features)
        return _prepared(self, split, scaler)

    def fit_streamed(self, train: Iterable[JetSample]) -> FeatureScaler:
        return FeatureScaler.fit_streamed(
            (self._selected(chunk) for chunk in train), self.scaling, self.features
        )

    def encode(self, sample: JetSample, scaler: FeatureScaler | None) -> np.ndarray:
        if scaler is None:  # pragma: no cover - a programming error
            raise ValueError("the jet_image_features representation needs its fitted scaler")
        image = super().encode(sample, None).reshape(len(sample), -1)
        extra = scaler.transform(self._selected(sample)).astype(np.float32)
        return np.concatenate([image, extra], axis=1)

    def preprocessing(self, scaler: FeatureScaler | None) -> dict[str, Any]:
        description = super().preprocessing(None)
        description.update(
            representation=self.name,
            layout=(
                f"the {self.pixels}x{self.pixels} image flattened row-major (pixel (r, c) at "
                f"r * {self.pixels} + c), then {', '.join(self.features)}, each (x - offset) / "
                f"scale (scaler: {self.scaling}, fitted on the training jets)"
            ),
            features=list(self.features),
            scaler=scaler.to_dict() if scaler else None,
        )
        return description
