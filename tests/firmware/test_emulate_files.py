"""Event files for emulation: readers round-trip by range, writers are atomic, errors are clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepfpga.datafiles import ArrayWriter, open_array, read_array
from hepfpga.errors import DataError

N = 1000


@pytest.fixture
def events() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(N, 4)).astype(np.float32)


def write_npz(path: Path, x: np.ndarray) -> None:
    np.savez(path, x=x, labels=np.arange(len(x)))


def write_npz_compressed(path: Path, x: np.ndarray) -> None:
    np.savez_compressed(path, features=x)


def write_hdf5(path: Path, x: np.ndarray) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        handle["group/x"] = x


def write_parquet(path: Path, x: np.ndarray) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    columns = {f"f{i}": x[:, i] for i in range(x.shape[1])}
    columns["name"] = ["jet"] * len(x)  # not numeric: skipped by default
    pq.write_table(pa.table(columns), path, row_group_size=128)


def write_root(path: Path, x: np.ndarray) -> None:
    uproot = pytest.importorskip("uproot")
    with uproot.recreate(path) as handle:
        handle.mktree("jets", {f"f{i}": np.float32 for i in range(x.shape[1])})
        handle["jets"].extend({f"f{i}": x[:, i] for i in range(x.shape[1])})


WRITERS = {
    "npz": (".npz", write_npz),
    "npz-compressed": (".npz", write_npz_compressed),
    "hdf5": (".h5", write_hdf5),
    "parquet": (".parquet", write_parquet),
    "root": (".root", write_root),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_reader_round_trips_by_range(kind: str, tmp_path: Path, events: np.ndarray) -> None:
    suffix, write = WRITERS[kind]
    path = tmp_path / f"events{suffix}"
    write(path, events)
    reader = open_array(path)
    assert (reader.n_events, reader.n_features) == (N, 4)
    assert np.array_equal(reader.read(), events)
    for start, stop in ((0, 1), (100, 300), (990, 5000)):
        assert np.array_equal(reader.read(start, stop), events[start:stop])


@pytest.mark.parametrize("kind", ["parquet", "root"])
def test_columns_pick_and_order_inputs(kind: str, tmp_path: Path, events: np.ndarray) -> None:
    suffix, write = WRITERS[kind]
    path = tmp_path / f"events{suffix}"
    write(path, events)
    assert np.array_equal(read_array(path, columns=["f2", "f0"]), events[:, [2, 0]])
    with pytest.raises(DataError, match=r"no column 'f9'; available: f0, f1"):
        open_array(path, columns=["f9"])


def test_structured_npz_columns(tmp_path: Path, events: np.ndarray) -> None:
    table = np.zeros(N, dtype=[("pt", "f4"), ("eta", "f4"), ("tag", "i4")])
    table["pt"], table["eta"] = events[:, 0], events[:, 1]
    np.savez(tmp_path / "t.npz", table=table)
    assert np.array_equal(read_array(tmp_path / "t.npz", columns=["eta", "pt"]), events[:, [1, 0]])


def test_key_errors_list_the_choices(tmp_path: Path, events: np.ndarray) -> None:
    np.savez(tmp_path / "two.npz", a=events, b=events)
    with pytest.raises(DataError, match=r"2 arrays \(a, b\); choose one with --key"):
        open_array(tmp_path / "two.npz")
    with pytest.raises(DataError, match=r"no array 'c'; found: a, b"):
        open_array(tmp_path / "two.npz", key="c")
    with pytest.raises(DataError, match="--columns needs named columns"):
        open_array(tmp_path / "two.npz", key="a", columns=["pt"])


def test_unknown_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown input format '.csv'; accepted: .h5, .hdf5"):
        open_array(tmp_path / "x.csv")
    with pytest.raises(DataError, match="no such file"):
        open_array(tmp_path / "x.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot be read as npz"):
        open_array(tmp_path / "bad.npz")


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".parquet"])
def test_writer_streams_chunks_atomically(suffix: str, tmp_path: Path, events: np.ndarray) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"out{suffix}"
    outputs, logits = events.astype(np.float64), events[:, :2].astype(np.float64)
    with ArrayWriter(path, N) as writer:
        for start in range(0, N, 300):
            writer.write(
                start,
                {"outputs": outputs[start : start + 300], "logits": logits[start : start + 300]},
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    if suffix == ".parquet":
        back = read_array(path, columns=[f"outputs_{i}" for i in range(4)])
        assert np.array_equal(back, outputs)
    else:
        assert np.array_equal(read_array(path, key="outputs"), outputs)
        assert np.array_equal(read_array(path, key="logits"), logits)


def test_failed_write_leaves_nothing(tmp_path: Path, events: np.ndarray) -> None:
    path = tmp_path / "out.npz"
    with pytest.raises(RuntimeError), ArrayWriter(path, N) as writer:
        writer.write(0, {"outputs": events[:300]})
        raise RuntimeError("worker died")
    with (
        pytest.raises(DataError, match="300 of 1000 events written"),
        ArrayWriter(path, N) as writer,
    ):
        writer.write(0, {"outputs": events[:300]})
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown output format '.root'; accepted: .h5"):
        ArrayWriter(tmp_path / "o.root", 10)
