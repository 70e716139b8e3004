"""Splitting jets into train/validation/test and scaling the features.

The split is stratified by class and fixed by a seed. The scaler is fitted on the training
jets only and saved with the models (``scaler.json``), so ONNX serving and the firmware test
bench see exactly the inputs the networks were trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from hepfpga.artifacts import write_json_atomic
from hepfpga.errors import DataError
from hepfpga.train.jets import JetSample

__all__ = [
    "SCALINGS",
    "FeatureScaler",
    "ScalingKind",
    "Split",
    "split_indices",
    "split_sample",
    "stratified_subsample",
    "subsample_indices",
]

#: How the features are scaled (``data.scaling``, the ``features`` representation's
#: ``scaling``): the one statement of the choice, see :class:`FeatureScaler`.
ScalingKind = Literal["standard", "minmax", "none"]
SCALINGS: tuple[str, ...] = get_args(ScalingKind)


@dataclass(frozen=True)
class Split:
    """Three disjoint subsets of one sample."""

    train: JetSample
    validation: JetSample
    test: JetSample


def _class_indices(
    labels: np.ndarray, n_classes: int, rng: np.random.Generator
) -> list[np.ndarray]:
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(n_classes)]


def subsample_indices(labels: np.ndarray, n_classes: int, n_jets: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``n_jets`` jets with the class fractions of ``labels``: each
    class shuffled with ``numpy.random.default_rng(seed)`` and cut (deterministic)."""
    rng = np.random.default_rng(seed)
    fraction = n_jets / len(labels)
    keep = [idx[: round(fraction * len(idx))] for idx in _class_indices(labels, n_classes, rng)]
    return np.sort(np.concatenate(keep))


def stratified_subsample(sample: JetSample, n_jets: int, seed: int) -> JetSample:
    """At most ``n_jets`` jets with the class fractions of ``sample`` (deterministic)."""
    if n_jets >= len(sample):
        return sample
    return sample.subset(subsample_indices(sample.labels, len(sample.class_names), n_jets, seed))


def split_indices(
    labels: np.ndarray,
    n_classes: int,
    fractions: tuple[float, float, float],
    seed: int,
    *,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted indices of the stratified train, validation and test parts of the jets with
    ``labels``: each class shuffled with ``numpy.random.default_rng(seed)`` and cut at the
    cumulative ``fractions``. Used by :func:`split_sample` in memory and by the streamed split
    of :mod:`hepfpga.train.stream` (by shard and row), so both give the same jets. Every class
    needs jets in the training and the test part (:class:`~hepfpga.errors.DataError` naming it,
    with ``class_names`` when given, otherwise its index)."""
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"split fractions must add up to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for idx in _class_indices(labels, n_classes, rng):
        n_train = round(fractions[0] * len(idx))
        n_val = round(fractions[1] * len(idx))
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    indices = []
    for name, chunks in zip(("train", "validation", "test"), parts, strict=True):
        index = np.sort(np.concatenate(chunks))
        if index.size == 0:
            raise DataError(
                f"the {name} split is empty: {len(labels)} jets are too few "
                f"for fractions {fractions}"
            )
        indices.append(index)
    names = list(class_names) if class_names is not None else [str(c) for c in range(n_classes)]
    _check_every_class(labels, names, parts, fractions)
    return indices[0], indices[1], indices[2]


def split_sample(sample: JetSample, fractions: tuple[float, float, float], seed: int) -> Split:
    """Stratified split into train, validation and test with the given fractions.

    Each class is shuffled with ``numpy.random.default_rng(seed)`` and cut at the cumulative
    fractions, so the split is the same for the same sample, fractions and seed
    (:func:`split_indices`). Every class the sample names must have jets in the training and
    the test split (a :class:`~hepfpga.errors.DataError` naming the class otherwise): a class
    without training jets cannot be learnt (an anomaly detector without background jets has
    nothing to learn from), one without test jets has no AUC (NaN).
    """
    train, validation, test = split_indices(
        sample.labels, len(sample.class_names), fractions, seed, class_names=sample.class_names
    )
    return Split(sample.subset(train), sample.subset(validation), sample.subset(test))


def _check_every_class(
    labels: np.ndarray,
    class_names: list[str],
    parts: list[list[np.ndarray]],
    fractions: tuple[float, float, float],
) -> None:
    for c, name in enumerate(class_names):
        empty = [split for split, part in (("training", 0), ("test", 2)) if not parts[part][c].size]
        if empty:
            counts = ", ".join(f"{n} {int(np.sum(labels == i))}" for i, n in enumerate(class_names))
            raise DataError(
                f"class '{name}' has no jets in the {' and '.join(empty)} split: the "
                f"{len(labels)} selected jets hold {int(np.sum(labels == c))} of it "
                f"({counts}; split {fractions}). Every class of the sample needs training and "
                "test jets: select more jets (data.max_jets) or use a file that holds each class"
            )


@dataclass(frozen=True)
class FeatureScaler:
    """An affine per-feature transformation ``(x - offset) / scale``, computed in float64 and
    returned as float32.

    ``standard``: offset = mean, scale = standard deviation; ``minmax``: offset = min,
    scale = max - min; ``none``: offset 0, scale 1. A constant feature gets scale 1.
    """

    kind: ScalingKind
    offset: tuple[float, ...]
    scale: tuple[float, ...]
    feature_names: tuple[str, ...]

    @classmethod
    def fit(cls, x: np.ndarray, kind: ScalingKind, feature_names: tuple[str, ...]) -> FeatureScaler:
        x = np.asarray(x, dtype=np.float64)
        if kind == "standard":
            offset, scale = x.mean(axis=0), x.std(axis=0)
        elif kind == "minmax":
            offset, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        elif kind == "none":
            offset, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        else:  # pragma: no cover - guarded by the config schema
            raise ValueError(f"unknown scaling {kind!r}; accepted: {', '.join(SCALINGS)}")
        scale = np.where(scale > 0, scale, 1.0)
        return cls(kind, tuple(map(float, offset)), tuple(map(float, scale)), tuple(feature_names))

    @classmethod
    def fit_streamed(
        cls, chunks: Iterable[np.ndarray], kind: ScalingKind, feature_names: tuple[str, ...]
    ) -> FeatureScaler:
        """:meth:`fit` over the rows of ``chunks`` read one at a time (memory of one chunk).

        ``standard`` merges per-chunk means and sums of squared deviations in float64 (Chan,
        Golub and LeVeque's pairwise update), so mean and standard deviation agree with the
        one-pass :meth:`fit` to float64 rounding (relative differences ~1e-15, not bit for
        bit); ``minmax`` and ``none`` are exact."""
        n, mean, m2 = 0, np.zeros(len(feature_names)), np.zeros(len(feature_names))
        low = np.full(len(feature_names), np.inf)
        high = np.full(len(feature_names), -np.inf)
        for chunk in chunks:
            x = np.asarray(chunk, dtype=np.float64)
            if x.shape[0] == 0:
                continue
            if x.ndim != 2 or x.shape[1] != len(feature_names):
                raise DataError(
                    f"expected features of shape (N, {len(feature_names)}), got {x.shape}"
                )
            k, chunk_mean = x.shape[0], x.mean(axis=0)
            chunk_m2 = ((x - chunk_mean) ** 2).sum(axis=0)
            delta = chunk_mean - mean
            mean = mean + delta * (k / (n + k))
            m2 = m2 + chunk_m2 + delta**2 * (n * k / (n + k))
            n += k
            low, high = np.minimum(low, x.min(axis=0)), np.maximum(high, x.max(axis=0))
        if n == 0:
            raise DataError("cannot fit the feature scaling on zero training jets")
        if kind == "standard":
            offset, scale = mean, np.sqrt(m2 / n)
        elif kind == "minmax":
            offset, scale = low, high - low
        elif kind == "none":
            offset, scale = np.zeros(len(feature_names)), np.ones(len(feature_names))
        else:  # pragma: no cover - guarded by the config schema
            raise ValueError(f"unknown scaling {kind!r}; accepted: {', '.join(SCALINGS)}")
        scale = np.where(scale > 0, scale, 1.0)
        return cls(kind, tuple(map(float, offset)), tuple(map(float, scale)), tuple(feature_names))

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.offset):
            raise DataError(f"expected features of shape (N, {len(self.offset)}), got {x.shape}")
        return ((x - np.asarray(self.offset)) / np.asarray(self.scale)).astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "formula": "(x - offset) / scale",
            "feature_names": list(self.feature_names),
            "offset": list(self.offset),
            "scale": list(self.scale),
        }

    def save(self, path: Path) -> None:
        write_json_atomic(Path(path), self.to_dict())  # strict JSON, through a rename

    @classmethod
    def load(cls, path: Path) -> FeatureScaler:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                data["kind"],
                tuple(data["offset"]),
                tuple(data["scale"]),
                tuple(data["feature_names"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a hepfpga scaler file ({exc})") from exc
