"""Streamed training equals in-memory training on a small sample: the same split, the same
scaler (to float64 rounding), the same batches and so the same trained weights; the streamed
shuffle is a per-epoch permutation fixed by the seed; chunks stay within their bound."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import h5py
import numpy as np
import pytest

from hepfpga.errors import DataError
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.config import EarlyStoppingConfig, TrainingConfig
from hepfpga.train.dataset import split_sample, stratified_subsample
from hepfpga.train.fit import fit_classifier
from hepfpga.train.io import load_sample, save_sample
from hepfpga.train.models import build_model
from hepfpga.train.representations import ConstituentCloud, Features, JetImage, JetImageFeatures
from hepfpga.train.stream import ShardedSample, fit_streamed, split_stream, stream_inputs

FRACTIONS = (0.6, 0.2, 0.2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, make_jets_module) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    for i, n in enumerate((170, 120, 210)):
        sample = make_jets_module(n, seed=10 + i, n_constituents=6)
        sample.features[:, 5:] *= 1000.0  # a feature scale where float32 rounding shows
        save_sample(sample, folder / f"shard-{i}.h5")
    return folder


def _in_memory(folder: Path, seed: int, max_jets: int | None = None):
    sample = load_sample(folder)
    if max_jets is not None:
        sample = stratified_subsample(sample, max_jets, seed)
    return split_sample(sample, FRACTIONS, seed)


@pytest.mark.parametrize("max_jets", [None, 300])
@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_streamed_split_and_scaler_equal_in_memory(shards: Path, max_jets, scaling: str) -> None:
    split = _in_memory(shards, seed=3, max_jets=max_jets)
    expected = Features(scaling=scaling).prepare(split)
    sample = ShardedSample.open(shards)
    assert len(sample) == 500
    parts = split_stream(sample, FRACTIONS, seed=3, max_jets=max_jets)
    inputs = stream_inputs(sample, parts, Features(scaling=scaling), batch_size=32, seed=3,
                           chunk_jets=50)  # fmt: skip
    # the same jets: labels and raw features of each part
    for name, part in (("train", split.train), ("validation", split.validation)):
        np.testing.assert_array_equal(inputs.labels(name), part.labels)
    # float64 statistics merged chunk by chunk agree with the one-pass fit to rounding
    assert expected.scaler is not None and inputs.scaler is not None
    np.testing.assert_allclose(inputs.scaler.offset, expected.scaler.offset, rtol=1e-12)
    np.testing.assert_allclose(inputs.scaler.scale, expected.scaler.scale, rtol=1e-12)
    # float32 inputs: at most one ulp apart where the scaler's last bits differ
    np.testing.assert_allclose(inputs.arrays("test"), expected.test, rtol=1e-6, atol=1e-6)
    assert inputs.preprocessing["representation"] == "features"


@pytest.mark.parametrize(
    "representation",
    [
        ConstituentCloud(n_constituents=4),
        JetImage(pixels=4),
        JetImageFeatures(pixels=4, features=("mass_mmdt", "multiplicity")),
    ],
)
def test_streamed_constituent_inputs_equal_in_memory(shards: Path, representation) -> None:
    expected = representation.prepare(_in_memory(shards, seed=1))
    sample = ShardedSample.open(shards / "shard-*.h5")
    inputs = stream_inputs(sample, split_stream(sample, FRACTIONS, seed=1), representation,
                           batch_size=16, seed=1, chunk_jets=64)  # fmt: skip
    np.testing.assert_array_equal(inputs.arrays("validation"), expected.validation)
    batches = list(inputs.batches("train", shuffle=False))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), expected.train)
    assert [len(y) for _, y in batches][:-1] == [16] * (len(batches) - 1)
    assert inputs.input_shape == expected.input_shape


def _settings() -> TrainingConfig:
    return TrainingConfig(
        learning_rate=0.01, batch_size=32, epochs=2, early_stopping=EarlyStoppingConfig(patience=5)
    )


def test_streamed_fit_gives_the_in_memory_weights(shards: Path) -> None:
    """Without shuffling both fits see the same batches in the same order, so the weights
    agree up to the float32 rounding of inputs whose scaler differs in its last float64 bits
    (the ops are the same and TensorFlow's op determinism is on): rtol 1e-5, atol 1e-6."""
    split = _in_memory(shards, seed=2)
    memory = Features().prepare(split)
    model_a = build_model(16, 5, MLPConfig(hidden_units=(8,)), seed=2)
    fit_a = fit_classifier(
        model_a, memory.train, split.train.labels, memory.validation, split.validation.labels,
        _settings(), seed=2, shuffle=False, progress=False,
    )  # fmt: skip
    sample = ShardedSample.open(shards)
    inputs = stream_inputs(sample, split_stream(sample, FRACTIONS, seed=2), Features(),
                           batch_size=32, seed=2, chunk_jets=40)  # fmt: skip
    model_b = build_model(16, 5, MLPConfig(hidden_units=(8,)), seed=2)
    fit_b = fit_streamed(model_b, inputs, _settings(), seed=2, shuffle=False, progress=False)
    assert fit_a.epochs_run == fit_b.epochs_run == 2
    np.testing.assert_allclose(fit_b.history["val_loss"], fit_a.history["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(fit_b.history["loss"], fit_a.history["loss"], rtol=1e-5)
    for a, b in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert fit_b.peak_rss_mb is not None and fit_b.peak_rss_mb > 0
    assert fit_b.to_dict()["peak_rss_mb"] == round(fit_b.peak_rss_mb, 1)


def test_streamed_shuffle_is_a_seeded_permutation_per_epoch(shards: Path) -> None:
    sample = ShardedSample.open(shards)
    parts = split_stream(sample, FRACTIONS, seed=0)

    def epoch(seed: int, number: int) -> np.ndarray:
        """One epoch's batches as rows of (inputs..., label): a jet with its own label."""
        inputs = stream_inputs(sample, parts, ConstituentCloud(n_constituents=2), batch_size=20,
                               seed=seed, chunk_jets=30)  # fmt: skip
        inputs.block_jets, inputs.buffer_jets = 30, 60
        batches = list(inputs.batches("train", shuffle=True, epoch=number))
        assert [len(y) for _, y in batches] == [20] * 14 + [19]  # 299 jets
        return np.concatenate([np.c_[x.reshape(len(x), -1), y] for x, y in batches])

    reference = stream_inputs(sample, parts, ConstituentCloud(n_constituents=2), batch_size=20,
                              seed=0, chunk_jets=30)  # fmt: skip
    train = reference.arrays("train")
    rows = np.c_[train.reshape(len(train), -1), reference.labels("train")]
    first = epoch(0, 0)
    np.testing.assert_array_equal(first, epoch(0, 0))  # a rerun sees the same batches
    for other in (epoch(0, 1), epoch(1, 0)):  # another epoch, another seed: another order
        assert not np.array_equal(first, other)
    for shuffled in (first, epoch(0, 1)):  # every training jet once per epoch, with its label
        np.testing.assert_array_equal(shuffled[np.lexsort(shuffled.T)], rows[np.lexsort(rows.T)])


def test_chunks_are_bounded_and_read_by_row_range(shards: Path) -> None:
    sample = ShardedSample.open(shards)
    index = np.arange(100, 420, 3)
    chunks = list(sample.chunks(index, chunk_jets=25))
    assert max(len(c) for c in chunks) <= 25
    # shards of 170, 120, 210 jets; a range spans at most 4 * 10 rows, never a wider gap
    sparse = np.array([3, 4, 150, 151, 152, 169, 171, 290, 480])
    spans = [len(c) for c in sample.chunks(sparse, chunk_jets=10)]
    assert spans == [2, 4, 1, 1, 1]  # shard 0: 3-4, 150-169; shard 1: 1; shard 2: 0, 190
    whole = load_sample(shards)
    np.testing.assert_array_equal(
        np.concatenate([c.features for c in chunks]), whole.features[index]
    )


def test_streaming_refuses_npz_and_bad_shards(tmp_path: Path, make_jets) -> None:
    save_sample(make_jets(20), tmp_path / "a.npz")
    with pytest.raises(DataError, match=r"a\.npz: only HDF5 files are streamed"):
        ShardedSample.open(tmp_path)
    path = save_sample(make_jets(20), tmp_path / "b" / "shard-1.h5")
    with h5py.File(path, "r+") as h5:
        h5["features"][3, 2] = np.nan
    sample = ShardedSample.open(tmp_path / "b")
    with pytest.raises(DataError, match=r"shard-1\.h5 \(rows 0\.\.19\): 'features' has 1 NaN"):
        list(sample.chunks(np.arange(20)))


def _layout_writers():
    """tests/train/test_layouts.py's writers of the public layouts, loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "_layout_writers", Path(__file__).with_name("test_layouts.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _poison(key: str):
    def change(array: np.ndarray) -> np.ndarray:
        array = np.array(array)
        array[0, ...] = np.nan
        return array

    return {key: change}


@pytest.mark.parametrize(
    ("layout", "representation", "unused"),
    [
        ("hepfpga", Features(), "constituents"),
        ("hepfpga", ConstituentCloud(n_constituents=4), "features"),
        ("hls4ml", Features(), "jetConstituentList"),
        ("jetnet", Features(), "particle_features"),
    ],
)
def test_streams_read_only_the_datasets_the_representation_uses(
    tmp_path: Path, make_jets, layout: str, representation, unused: str
) -> None:
    """A NaN in a dataset the representation does not use is never read (a full read refuses
    it), and the jets say the part was not read rather than pretend it is there."""
    if layout == "hepfpga":
        path = save_sample(make_jets(30, seed=4, n_constituents=6), tmp_path / "shard-0.h5")
        with h5py.File(path, "r+") as h5:
            h5[unused][0, ...] = np.nan
    elif layout == "hls4ml":
        path = tmp_path / "jetImage_0_30p_0_10000.h5"
        _layout_writers().write_hls4ml(path, n=30, **_poison(unused))
    else:
        path = tmp_path / "q.hdf5"
        _layout_writers().write_jetnet(path, n=30, **_poison(unused))
    sample = ShardedSample.open(path)
    with pytest.raises(DataError, match="NaN"):
        list(sample.chunks(np.arange(30)))
    part = "features" if unused == "features" else "constituents"
    (chunk,) = sample.chunks(np.arange(30), parts=representation.parts)
    assert chunk.metadata[part] == "absent"
    assert "not read" in chunk.metadata["missing"][part]
    if layout == "jetnet":  # JetNet has no features: the representation refuses, naming why
        with pytest.raises(DataError, match="holds no substructure features"):
            representation.fit_streamed([chunk])
        return
    split = split_stream(sample, FRACTIONS, seed=0)
    inputs = stream_inputs(sample, split, representation, batch_size=8, seed=0, chunk_jets=16)
    assert np.isfinite(inputs.arrays("train")).all()
    assert inputs.jets("test").metadata[part] == "absent"


def test_shuffle_buffers_hold_every_class_of_one_class_shards(tmp_path: Path, make_jets) -> None:
    """Shards of one class each (as ``hepfpga data generate`` writes them): every shuffle
    buffer holds each class's share of the training jets to within a block per class."""
    jets = make_jets(1000, seed=6, n_constituents=4)
    for c in range(5):
        save_sample(jets.subset(np.flatnonzero(jets.labels == c)), tmp_path / f"shard-c{c}.h5")
    sample = ShardedSample.open(tmp_path)
    inputs = stream_inputs(sample, split_stream(sample, FRACTIONS, seed=2), Features(),
                           batch_size=1, seed=2)  # fmt: skip
    inputs.block_jets, inputs.buffer_jets = 8, 120  # about 5 buffers of 15 one-class blocks
    share = np.bincount(inputs.labels("train"), minlength=5) / len(inputs.labels("train"))
    for epoch in range(3):
        buffers = [y for _, y in inputs.buffers("train", shuffle=True, epoch=epoch)]
        assert len(buffers) >= 4
        assert sum(len(y) for y in buffers) == len(inputs.labels("train"))
        for y in buffers:
            counts = np.bincount(y, minlength=5)
            assert np.all(np.abs(counts - share * len(y)) <= inputs.block_jets + 1), counts
