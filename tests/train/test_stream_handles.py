"""Shard files kept open between streamed reads (hepfpga.datafiles.hold_hdf5_files): a file
read again inside a hold is not opened again, at most ``max_open`` stay open (the first ones
opened; past the bound a file is opened for one read), all are closed when the last hold
ends (in any thread), a file replaced under a hold is opened and checked anew, and streamed
epochs are the same batches with and without held files, each shard opened once across
epochs."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from hepfpga import datafiles
from hepfpga.datafiles import held_hdf5_count, hold_hdf5_files, open_hdf5
from hepfpga.errors import DataError
from hepfpga.train.io import save_sample
from hepfpga.train.representations import Features
from hepfpga.train.stream import ShardedSample, split_stream, stream_inputs


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, make_jets_module) -> Path:
    folder = tmp_path_factory.mktemp("held")
    for i in range(6):
        save_sample(make_jets_module(40, seed=30 + i, n_constituents=4), folder / f"s{i}.h5")
    return folder


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths hepfpga's safe reader opens and checks (a spy on the real opener)."""
    paths: list[Path] = []
    real = datafiles._open_checked

    def counting(path: Path, limits: datafiles.ReadLimits) -> datafiles.HDF5File:
        paths.append(path)
        return real(path, limits)

    monkeypatch.setattr(datafiles, "_open_checked", counting)
    return paths


def _labels(path: Path) -> np.ndarray:
    with open_hdf5(path) as h5:
        return np.asarray(h5.read("labels"))


def test_a_held_file_is_opened_once_and_closed_at_the_end(shards: Path, opened) -> None:
    path = shards / "s0.h5"
    with hold_hdf5_files():
        with open_hdf5(path) as first:
            pass
        with open_hdf5(path) as second:
            labels = np.asarray(second.read("labels"))
        assert second is first and first.handle and held_hdf5_count() == 1
    assert not first.handle and held_hdf5_count() == 0  # closed with the hold
    assert opened == [path] and len(labels) == 40
    with open_hdf5(path) as outside:  # no hold: opened, and closed on leaving the block
        pass
    assert not outside.handle and len(opened) == 2


def test_at_most_max_open_files_stay_open(shards: Path, opened) -> None:
    a, b, c = (shards / f"s{i}.h5" for i in range(3))
    with hold_hdf5_files(max_open=2):
        for _ in range(2):  # files read in turn, as in a streamed epoch
            with open_hdf5(a) as held_a, open_hdf5(b) as held_b:
                pass
            with open_hdf5(c) as once:
                assert once.handle  # past the bound: open for this read only
            assert held_a.handle and held_b.handle and not once.handle
            assert held_hdf5_count() == 2
        assert opened == [a, b, c, c]  # a and b held, c opened for each read
    assert held_hdf5_count() == 0 and not held_a.handle


def test_holds_overlap_across_threads(shards: Path, opened) -> None:
    """A tf.data generator reads in its own thread while the fit holds the files."""
    path = shards / "s1.h5"
    inner_done = threading.Event()
    release = threading.Event()

    def epoch() -> None:
        with hold_hdf5_files(max_open=4):
            _labels(path)
            inner_done.set()
            release.wait(10)

    with hold_hdf5_files():
        worker = threading.Thread(target=epoch)
        worker.start()
        assert inner_done.wait(10)
        _labels(path)  # held by the other thread's read: not opened again
        release.set()
        worker.join()
        assert held_hdf5_count() == 1  # the thread's hold ended, this one still holds
    assert opened == [path] and held_hdf5_count() == 0


def test_a_file_replaced_under_a_hold_is_checked_again(
    shards: Path, tmp_path: Path, opened, make_jets
) -> None:
    path = tmp_path / "shard.h5"
    save_sample(make_jets(10, seed=1), path)
    other = make_jets(12, seed=2)
    with hold_hdf5_files():
        assert len(_labels(path)) == 10
        save_sample(other, path)  # atomic rename: a new file at the same path
        np.testing.assert_array_equal(_labels(path), other.labels)
        # replaced by a file whose values live elsewhere: refused, as on a first opening
        hostile = tmp_path / "hostile.h5"
        with h5py.File(hostile, "w") as h5:
            h5["labels"] = h5py.ExternalLink(str(shards / "s0.h5"), "labels")
        hostile.replace(path)
        with pytest.raises(DataError, match="external link"):
            _labels(path)
    assert opened == [path, path, path] and held_hdf5_count() == 0


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(DataError, match="non-negative"), hold_hdf5_files(-1):
        pass


@pytest.mark.parametrize("open_files", [2, 64])
def test_streamed_epochs_are_the_same_with_held_files(shards: Path, opened, open_files) -> None:
    sample = ShardedSample.open(shards)
    parts = split_stream(sample, (0.6, 0.2, 0.2), seed=4)

    def epochs(open_files: int) -> list[tuple[np.ndarray, np.ndarray]]:
        inputs = stream_inputs(
            sample, parts, Features(), batch_size=16, seed=4, chunk_jets=8, open_files=open_files
        )
        inputs.block_jets, inputs.buffer_jets = 8, 32
        opened.clear()
        with hold_hdf5_files(inputs.open_files):  # what fit_streamed holds across its epochs
            return [
                b for epoch in range(2) for b in inputs.buffers("train", shuffle=True, epoch=epoch)
            ]

    want = epochs(0)
    n_reads = len(opened)  # without held files, every read opens its file
    assert n_reads > 2 * len(sample.shards)  # chunks of 8 jets: a shard is read many times
    got = epochs(open_files)
    for (x, y), (x0, y0) in zip(got, want, strict=True):
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)
    if open_files == 2:
        assert len(sample.shards) < len(opened) < n_reads
    else:
        assert len(opened) == len(sample.shards)  # each opened once, for both epochs
    assert held_hdf5_count() == 0
