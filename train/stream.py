"""Training on samples larger than memory: HDF5 shards streamed through ``tf.data``.

A :class:`ShardedSample` opens a data path (one HDF5 file, a folder or a glob of shards, in
any layout of :data:`~hepfpga.train.layouts.SAMPLE_LAYOUTS`) and holds only each shard's
length and the class labels of all jets (one byte per jet: 1 MB for a million jets); the jets
themselves are read by row range when they are needed. Jets are numbered across the shards in
name order, as :func:`hepfpga.train.io.load_sample` concatenates them, so:

* :func:`split_stream` cuts the same stratified train / validation / test parts (and the same
  ``max_jets`` subsample) as the in-memory :func:`~hepfpga.train.dataset.split_sample`, from
  the labels alone (:func:`~hepfpga.train.dataset.split_indices`): a part is a sorted list of
  jet numbers, i.e. (shard, row) pairs;
* :func:`stream_inputs` fits the representation's preprocessing on a streamed pass over the
  training jets (:meth:`~hepfpga.train.dataset.FeatureScaler.fit_streamed`) and encodes the
  jets chunk by chunk (:meth:`~hepfpga.train.representations.Features.encode`...);
* :meth:`StreamedInputs.dataset` is a ``tf.data.Dataset`` of ``(inputs, labels)`` batches.
  For training it is shuffled per epoch from the seed alone: the part is cut into blocks of
  ``block_jets`` consecutive jets, the blocks are permuted and dealt into shuffle buffers of
  about ``buffer_jets`` jets, each buffer is read and its jets permuted
  (``numpy.random.default_rng((seed, epoch))``), so every jet is seen once per epoch, a rerun
  sees the same batches, and memory holds one shuffle buffer whatever the size of the sample
  (besides the labels and the split's jet numbers: about 17 bytes per jet, 17 MB for a
  million). Where a file stores its jets class by class (``hepfpga data generate`` writes one
  class per shard) a block holds one class: the blocks are dealt round-robin by their
  majority class, so every buffer holds each class's share of the part (to a block), and the
  model does not drift towards the class mix of the last buffer of an epoch (with buffers of
  64 randomly drawn one-class blocks, measured on a 100k-jet sample: a validation loss that
  jumped between epochs and an early stop 2 points of accuracy lower). With
  ``shuffle=False`` (validation, test) the batches follow the jet numbers: exactly the
  batches Keras makes from the in-memory arrays without shuffling.

Shard files stay open between reads (:func:`~hepfpga.datafiles.hold_hdf5_files`, at most
:attr:`StreamedInputs.open_files` of them, 256 by default, about 0.7 MB each): during an
epoch and across the epochs of :func:`fit_streamed`, since an epoch reads every shard of the
training and the validation jets (the split is drawn from all of them) about once each. A held
file is opened and checked once; one replaced on disk since is opened and checked anew. With
more shards than ``open_files``, the first ``open_files`` opened stay open and the others are
opened for each read: a sample of many small shards gains in proportion.

Only the datasets the representation is built from are read (its ``parts``: the features
for ``features``, the constituents for the others; :data:`~hepfpga.train.layouts.SAMPLE_PARTS`).
:func:`loading_plan` decides, from ``data.loading``, whether a run streams.

Peak memory is reported by :func:`hepfpga.train.fit.peak_rss_mb` in each
:class:`~hepfpga.train.fit.FitResult`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hepfpga.datafiles import DEFAULT_OPEN_FILES, hold_hdf5_files
from hepfpga.errors import DataError
from hepfpga.train.config import DataConfig, FitConfig
from hepfpga.train.dataset import FeatureScaler, split_indices, subsample_indices
from hepfpga.train.fit import FitResult, fit_classifier
from hepfpga.train.io import concatenate_samples, validate_sample
from hepfpga.train.jets import CLASS_NAMES, JetSample
from hepfpga.train.layouts import HDF5_SUFFIXES, SampleLayout, detect_layout, sample_files

if TYPE_CHECKING:
    import tensorflow as tf
    from tensorflow import keras

    from hepfpga.train.representations import Representation

__all__ = [
    "LoadingPlan",
    "Shard",
    "ShardedSample",
    "StreamSplit",
    "StreamedInputs",
    "fit_streamed",
    "loading_plan",
    "split_stream",
    "stream_inputs",
]

Part = Literal["train", "validation", "test"]
#: jets read (and encoded) at a time
DEFAULT_CHUNK_JETS = 4096


@dataclass(frozen=True)
class Shard:
    """One HDF5 file of a sample: its layout, its number of jets, the number of its first
    jet in the whole sample."""

    path: Path
    layout: SampleLayout
    n_jets: int
    first: int


@dataclass(frozen=True)
class ShardedSample:
    """The shards of a data path and the labels of all their jets (see the module docstring)."""

    path: str
    shards: tuple[Shard, ...]
    labels: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ShardedSample:
        shards: list[Shard] = []
        labels: list[np.ndarray] = []
        first = 0
        for file in sample_files(path):
            if file.suffix.lower() not in HDF5_SUFFIXES:
                raise DataError(
                    f"{file}: only HDF5 files are streamed (read by row range); accepted: "
                    f"{', '.join(HDF5_SUFFIXES)}, or load the sample into memory"
                )
            if not file.is_file():
                raise DataError(f"{file}: no such file (an HDF5 jet sample was expected)")
            layout = detect_layout(file)
            shard_labels = layout.labels(file)
            bad = (shard_labels < 0) | (shard_labels >= len(CLASS_NAMES))
            if bad.any():
                raise DataError(
                    f"{file}: {int(bad.sum())} label(s) outside 0..{len(CLASS_NAMES) - 1}"
                )
            shards.append(Shard(file, layout, len(shard_labels), first))
            labels.append(shard_labels.astype(np.int8))
            first += len(shard_labels)
        return cls(str(path), tuple(shards), np.concatenate(labels))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def chunks(
        self,
        index: np.ndarray,
        chunk_jets: int = DEFAULT_CHUNK_JETS,
        parts: frozenset[str] | None = None,
    ) -> Iterator[JetSample]:
        """The jets numbered by ``index`` (sorted), in that order, at most ``chunk_jets`` per
        chunk; each chunk is read from one shard as one row range of at most
        ``4 * chunk_jets`` rows (a sparse index is read in several ranges, never one range
        across a gap), checked like a loaded sample (shapes, names, labels, finiteness).
        ``parts``: the parts of the jets to read (None: all; see
        :data:`~hepfpga.train.layouts.SAMPLE_PARTS`)."""
        starts = np.array([s.first for s in self.shards])
        owner = np.searchsorted(starts, index, side="right") - 1
        for s, shard in enumerate(self.shards):
            rows = index[owner == s] - shard.first
            begin = 0
            while begin < len(rows):
                span_end = int(np.searchsorted(rows, rows[begin] + 4 * chunk_jets))
                end = min(begin + chunk_jets, span_end)
                wanted = rows[begin:end]
                begin = end
                low, high = int(wanted[0]), int(wanted[-1]) + 1
                block = shard.layout.read(shard.path, slice(low, high), parts)
                chunk = block.subset(wanted - low) if len(wanted) < high - low else block
                validate_sample(chunk, f"{shard.path} (rows {low}..{high - 1})")
                yield chunk


@dataclass(frozen=True)
class StreamSplit:
    """Sorted jet numbers of the three parts of a :class:`ShardedSample`."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def part(self, name: Part) -> np.ndarray:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def capped_test(
        self, labels: np.ndarray, n_classes: int, n_jets: int, seed: int
    ) -> StreamSplit:
        """This split with at most ``n_jets`` test jets, the stratified subset
        :func:`~hepfpga.train.dataset.stratified_subsample` keeps of the in-memory test part
        (``labels``: the labels of all jets of the sample)."""
        if n_jets >= len(self.test):
            return self
        keep = subsample_indices(labels[self.test].astype(np.int64), n_classes, n_jets, seed)
        return StreamSplit(self.train, self.validation, self.test[keep])


def split_stream(
    sample: ShardedSample,
    fractions: tuple[float, float, float],
    seed: int,
    max_jets: int | None = None,
) -> StreamSplit:
    """The stratified split of :func:`hepfpga.train.dataset.split_sample` (after
    :func:`~hepfpga.train.dataset.stratified_subsample` to ``max_jets``, as a run does), made
    from the labels alone: the same jets as in memory, as jet numbers."""
    labels = sample.labels.astype(np.int64)
    n_classes = len(sample.class_names)
    keep = np.arange(len(labels))
    if max_jets is not None and max_jets < len(labels):
        keep = subsample_indices(labels, n_classes, max_jets, seed)
    parts = split_indices(labels[keep], n_classes, fractions, seed)
    return StreamSplit(*(keep[p] for p in parts))


@dataclass
class StreamedInputs:
    """A representation's inputs of a streamed sample: the fitted preprocessing, the input
    shape, and batches of each part as a ``tf.data.Dataset`` (:meth:`dataset`)."""

    sample: ShardedSample
    split: StreamSplit
    representation: Representation
    scaler: FeatureScaler | None
    preprocessing: dict[str, Any]
    input_shape: tuple[int, ...]
    batch_size: int
    seed: int
    chunk_jets: int = DEFAULT_CHUNK_JETS
    block_jets: int = 512
    buffer_jets: int = 32768
    #: shard files kept open between reads (:func:`~hepfpga.datafiles.hold_hdf5_files`):
    #: during an epoch, and across the epochs of :func:`fit_streamed`; 0: no hold, every
    #: read opens its file (and checks it) again, unless another hold of this process is
    #: active
    open_files: int = DEFAULT_OPEN_FILES
    _epochs: dict[Part, itertools.count[int]] = field(default_factory=dict, repr=False)
    _held: dict[Part, np.ndarray] = field(default_factory=dict, repr=False)
    _sampled: dict[tuple[Part, int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )

    @property
    def parts(self) -> frozenset[str]:
        """The parts of the jets read from the files: those the representation uses."""
        return self.representation.parts

    def labels(self, part: Part) -> np.ndarray:
        return self.sample.labels[self.split.part(part)].astype(np.int64)

    def jets(self, part: Part) -> JetSample:
        """The whole part's jets in memory (only the representation's ``parts`` read)."""
        with hold_hdf5_files(self.open_files):
            index = self.split.part(part)
            chunks = list(self.sample.chunks(index, self.chunk_jets, self.parts))
        return concatenate_samples(chunks, f"{self.sample.path} ({part} jets)")

    def arrays(self, part: Part) -> np.ndarray:
        """The whole part's inputs in memory (the test part of a run, a small sample)."""
        index = self.split.part(part)
        with hold_hdf5_files(self.open_files):
            return np.concatenate(
                [self._encode(c) for c in self.sample.chunks(index, self.chunk_jets, self.parts)]
            )

    def held(self, part: Part) -> np.ndarray:
        """:meth:`arrays` of ``part``, read once and kept: for the stages that need a whole
        part in memory (the test jets; the BDT, the overtraining check and the HGQ proxy
        tracing of a run take a bounded :meth:`subsample` of the training jets instead)."""
        if part not in self._held:
            self._held[part] = self.arrays(part)
        return self._held[part]

    def subsample(self, part: Part, n_jets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The inputs and labels of at most ``n_jets`` jets of ``part`` in memory: the
        stratified subset :func:`~hepfpga.train.dataset.subsample_indices` draws with
        ``seed`` (the whole part when it has ``n_jets`` or fewer), in jet order; read once and
        kept (the stages that need training inputs at once share them)."""
        key = (part, n_jets, seed)
        if key not in self._sampled:
            index = self.split.part(part)
            if n_jets < len(index):
                labels = self.sample.labels[index].astype(np.int64)
                index = index[subsample_indices(labels, len(self.sample.class_names), n_jets, seed)]
            with hold_hdf5_files(self.open_files):
                chunks = self.sample.chunks(index, self.chunk_jets, self.parts)
                x = np.concatenate([self._encode(c) for c in chunks])
            self._sampled[key] = (x, self.sample.labels[index].astype(np.int64))
        return self._sampled[key]

    # the attributes of PreparedInputs, so a stage written for in-memory inputs runs on a
    # streamed run too: each reads its whole part into memory once (what it asks for)
    @property
    def train(self) -> np.ndarray:
        return self.held("train")

    @property
    def validation(self) -> np.ndarray:
        return self.held("validation")

    @property
    def test(self) -> np.ndarray:
        return self.held("test")

    def with_batch_size(self, batch_size: int) -> StreamedInputs:
        """The same inputs drawn in batches of ``batch_size`` (another fit's setting), each
        part's epochs counted from 0 again."""
        return dataclasses.replace(
            self, batch_size=batch_size, _epochs={}, _held=self._held, _sampled=self._sampled
        )

    def _encode(self, chunk: JetSample) -> np.ndarray:
        return np.ascontiguousarray(self.representation.encode(chunk, self.scaler), np.float32)

    def buffers(
        self, part: Part, *, shuffle: bool, epoch: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The ``(inputs, labels)`` of one epoch, one shuffle buffer at a time, each a whole
        number of batches but the last (see the module docstring). The shard files stay open
        for the epoch (:attr:`open_files` of them at most)."""
        with hold_hdf5_files(self.open_files):
            yield from self._buffers(part, shuffle=shuffle, epoch=epoch)

    def _buffers(
        self, part: Part, *, shuffle: bool, epoch: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        index = self.split.part(part)
        size = self.block_jets if shuffle else self.chunk_jets
        blocks = [index[i : i + size] for i in range(0, len(index), size)]
        rng = np.random.default_rng((self.seed, epoch))
        groups = [[b] for b in blocks]
        if shuffle:
            blocks = [blocks[i] for i in rng.permutation(len(blocks))]
            n_groups = -(-len(blocks) // max(1, self.buffer_jets // self.block_jets))
            # dealt round-robin in the order of their majority class (stable: the permuted
            # order within a class), so each buffer holds every class's share
            n_classes = len(self.sample.class_names)
            majority = [
                np.bincount(self.sample.labels[b], minlength=n_classes).argmax() for b in blocks
            ]
            order = np.argsort(majority, kind="stable")
            groups = [[blocks[i] for i in order[g::n_groups]] for g in range(n_groups)]
        carry_x: list[np.ndarray] = []
        carry_y: list[np.ndarray] = []
        for group in groups:
            # one buffer: a few blocks, each sorted so a shard is read in row ranges
            wanted = np.sort(np.concatenate(group))
            chunks = list(self.sample.chunks(wanted, self.chunk_jets, self.parts))
            x = np.concatenate([*carry_x, *(self._encode(c) for c in chunks)])
            y = np.concatenate([*carry_y, *(c.labels for c in chunks)])
            del chunks
            if shuffle:
                order = rng.permutation(len(y))
                x, y = x[order], y[order]
            full = len(y) - len(y) % self.batch_size
            if full:
                yield x[:full], y[:full]
            carry_x, carry_y = [x[full:]], [y[full:]]
        if carry_y and len(carry_y[0]):
            yield carry_x[0], carry_y[0]

    def batches(
        self, part: Part, *, shuffle: bool, epoch: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The ``(inputs, labels)`` batches of one epoch: :meth:`buffers` cut in batches."""
        for x, y in self.buffers(part, shuffle=shuffle, epoch=epoch):
            for b in range(0, len(y), self.batch_size):
                yield x[b : b + self.batch_size], y[b : b + self.batch_size]

    def dataset(self, part: Part, *, shuffle: bool = False) -> tf.data.Dataset:
        """A ``tf.data.Dataset`` of the part's ``(inputs, labels)`` batches (those of
        :meth:`batches`); each iteration (a Keras epoch) is the next epoch's order. Python
        hands TensorFlow one shuffle buffer at a time, which ``tf.data`` cuts in batches: a
        call into Python per batch costs time, and memory in the allocator's per-thread
        arenas that grew with the number of batches."""
        # deferred: TensorFlow loads slowly
        import tensorflow as tf

        epochs = self._epochs.setdefault(part, itertools.count())

        def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            yield from self.buffers(part, shuffle=shuffle, epoch=next(epochs))

        signature = (
            tf.TensorSpec((None, *self.input_shape), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        )
        # the number of batches, stated: Keras runs a dataset of unknown length differently
        # from the second epoch on (not the in-memory batches then)
        n_batches = -(-len(self.split.part(part)) // self.batch_size)
        dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).flat_map(
            lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(self.batch_size)
        )
        return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def stream_inputs(
    sample: ShardedSample,
    split: StreamSplit,
    representation: Representation,
    *,
    batch_size: int,
    seed: int,
    chunk_jets: int = DEFAULT_CHUNK_JETS,
    open_files: int = DEFAULT_OPEN_FILES,
) -> StreamedInputs:
    """Fit ``representation``'s preprocessing on a streamed pass over the training jets and
    return the streamed inputs (nothing else is read until batches are drawn).
    ``open_files``: :attr:`StreamedInputs.open_files`."""
    if chunk_jets < 1:
        raise DataError(f"expected a positive integer. Received: chunk_jets={chunk_jets}")
    parts = representation.parts
    with hold_hdf5_files(open_files):
        scaler = representation.fit_streamed(sample.chunks(split.train, chunk_jets, parts))
        first = next(sample.chunks(split.train[:1], 1, parts))
    shape = tuple(int(n) for n in representation.encode(first, scaler).shape[1:])
    return StreamedInputs(
        sample,
        split,
        representation,
        scaler,
        representation.preprocessing(scaler),
        shape,
        batch_size,
        seed,
        chunk_jets,
        open_files=open_files,
    )


def fit_streamed(
    model: keras.Model,
    inputs: StreamedInputs,
    settings: FitConfig,
    *,
    seed: int = 0,
    shuffle: bool = True,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> FitResult:
    """:func:`~hepfpga.train.fit.fit_classifier` on the streamed training batches (shuffled
    per epoch from ``inputs.seed`` unless ``shuffle`` is False), early stopping on the
    streamed validation batches, extra Keras ``callbacks`` (QAT's). ``inputs.batch_size``
    is the batch size (:meth:`StreamedInputs.with_batch_size` for another). The shard files
    stay open across the epochs (``inputs.open_files`` of them at most): each epoch reads
    every shard of the training and validation jets, about once each."""
    if inputs.batch_size != settings.batch_size:
        raise DataError(
            f"the streamed batches hold {inputs.batch_size} jets, the fit settings say "
            f"batch_size {settings.batch_size}; build the inputs with the same batch size"
        )
    with hold_hdf5_files(inputs.open_files):
        return fit_classifier(
            model,
            inputs.dataset("train", shuffle=shuffle),
            inputs.labels("train"),
            inputs.dataset("validation"),
            inputs.labels("validation"),
            settings,
            seed=seed,
            progress=progress,
            callbacks=callbacks,
        )


@dataclass(frozen=True)
class LoadingPlan:
    """Whether a run streams its sample (``streamed``) and why (``reason``, for the report);
    ``n_jets``: the jets of the sample when they were counted (None: not counted)."""

    streamed: bool
    reason: str
    n_jets: int | None = None


def _streamable(path: str | os.PathLike[str]) -> list[Path] | str:
    """The HDF5 files of ``path``, or why it cannot be streamed."""
    files = sample_files(path)
    other = [f for f in files if f.suffix.lower() not in HDF5_SUFFIXES]
    if other:
        return (
            f"{other[0].name} is not HDF5 (only HDF5 files, read by row range, are streamed; "
            f"accepted: {', '.join(HDF5_SUFFIXES)})"
        )
    return files


def loading_plan(data: DataConfig, path: str | os.PathLike[str], *, builtin: bool) -> LoadingPlan:
    """How a run holds the sample at ``path`` (``data.path`` or the built-in sample,
    ``builtin``): ``data.loading`` ``memory``; ``stream`` (a
    :class:`~hepfpga.errors.DataError` naming the file when the data cannot be streamed);
    ``auto``: streamed when the data is HDF5 and the jets used (``data.max_jets`` of them at
    most) are more than ``data.stream_above`` (counted from the files' label datasets)."""
    if data.loading == "memory":
        return LoadingPlan(False, "data.loading: memory")
    files = (
        "the built-in sample is an .npz file (only HDF5 files are streamed)"
        if builtin
        else _streamable(path)
    )
    if data.loading == "stream":
        if isinstance(files, str):
            raise DataError(f"data.loading: stream: {path}: {files}; or set data.loading: memory")
        return LoadingPlan(True, "data.loading: stream")
    if isinstance(files, str):
        return LoadingPlan(False, f"data.loading: auto: {files}")
    n_jets = sum(detect_layout(f).count(f) for f in files)
    used = n_jets if data.max_jets is None else min(n_jets, data.max_jets)
    streamed = used > data.stream_above
    relation = "more" if streamed else "not more"
    return LoadingPlan(
        streamed,
        f"data.loading: auto: {used} jets used, {relation} than data.stream_above "
        f"({data.stream_above})",
        n_jets,
    )
