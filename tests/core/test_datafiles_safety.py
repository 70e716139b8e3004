"""The safe data-file reader (hepfpga.datafiles) on hostile, forged and corrupt files.

Each hostile file is refused with a DataError naming it, before anything is read; what a read
decompresses is bounded by the reader's own accounting (``inflated_bytes``) and by the memory
Python allocates for it (tracemalloc sees numpy's buffers). Good files read exactly as numpy
and h5py read them.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import hostile_files  # tests/hostile_files.py (pytest pythonpath)
import numpy as np
import pytest

from hepfpga.datafiles import ReadLimits, open_array, open_hdf5, open_npz
from hepfpga.errors import DataError

H = hostile_files
SECRET = H.SECRET
HOSTILE = H.HOSTILE
string_field, deflate_bomb, _other_files = H.string_field, H.deflate_bomb, H._other_files


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-data")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_files_are_refused_in_one_line(name: str, folder: Path) -> None:
    build, needles = HOSTILE[name]
    path = build(folder)
    with pytest.raises(DataError) as caught:
        open_array(path).read()
    message = str(caught.value)
    assert "\n" not in message and str(path.name) in message
    for needle in needles:
        assert needle in message.lower(), message
    assert str(SECRET[0, 0]) not in message


def test_a_deflate_bomb_inflates_only_the_events_asked_for(folder: Path) -> None:
    path = deflate_bomb(folder)
    tracemalloc.start()
    try:
        reader = open_array(path)
        first = reader.read(0, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first.shape == (10, 4) and not first.any()
    assert reader.inflated_bytes == 10 * 16, "only the ten events' bytes are decompressed"
    assert peak < 2 << 20, f"reading 10 events of a 64 MB member allocated {peak} bytes"
    # events further in are reached by streaming through the member in bounded blocks
    later = open_array(path)
    assert later.read(1_000_000, 1_000_010).shape == (10, 4)
    assert later.inflated_bytes == 1_000_010 * 16
    # the whole member is more than this limit: refused before anything is decompressed
    bounded = open_array(path, limits=ReadLimits(max_bytes=8 << 20))
    with pytest.raises(DataError, match=r"bomb.npz 'x': events 0..3999999 take 64 MB, more than"):
        bounded.read()
    assert bounded.inflated_bytes == 0


def test_the_read_limit_comes_from_the_environment(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEPFPGA_MAX_READ_BYTES", "1000")
    with pytest.raises(DataError, match="HEPFPGA_MAX_READ_BYTES"):
        open_array(deflate_bomb(folder, 1000)).read()
    monkeypatch.setenv("HEPFPGA_MAX_READ_BYTES", "lots")
    with pytest.raises(DataError, match="expected a positive number of bytes"):
        ReadLimits()


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "compressed"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_good_npz_and_npy_read_exactly_as_numpy(
    tmp_path: Path, compressed: bool, order: str
) -> None:
    x = np.asfortranarray if order == "F" else np.ascontiguousarray
    values = x(np.random.default_rng(1).normal(size=(257, 3, 2)).astype(np.float32))
    path = tmp_path / "events.npz"
    (np.savez_compressed if compressed else np.savez)(path, x=values, y=values[:, 0])
    np.save(tmp_path / "events.npy", values)
    for source in (path, tmp_path / "events.npy"):
        reader = open_array(source)
        assert reader.n_events == 257 and reader.n_features == 6
        np.testing.assert_array_equal(reader.read(flat=False), values)
        np.testing.assert_array_equal(reader.read(100, 131), values[100:131].reshape(31, 6))
    with open_npz(path) as archive:
        assert archive.keys == ("x", "y")
        np.testing.assert_array_equal(archive.read("y", 5, 9), values[5:9, 0])


def test_structured_numeric_fields_are_taken_and_others_refused(folder: Path) -> None:
    path = string_field(folder)
    reader = open_array(path, columns=["a", "c"])
    np.testing.assert_array_equal(reader.read(), [[1.0, 3.0]] * 3)
    with pytest.raises(DataError, match=r"field\(s\) 's' \(<U1\) do not hold real numbers"):
        open_array(path, columns=["a", "s"])


def test_the_hdf5_opener_walks_groups_and_follows_soft_links_inside_the_file(
    tmp_path: Path,
) -> None:
    import h5py

    path = tmp_path / "nested.h5"
    with h5py.File(path, "w") as handle:
        handle.create_group("jets").create_dataset(
            "x", data=SECRET, chunks=(2, 4), compression="gzip"
        )
        handle["alias"] = h5py.SoftLink("/jets/x")
        handle.attrs["note"] = "kept"
    with open_hdf5(path) as h5:
        assert h5.datasets == ("jets/x",)
        assert set(h5.members()) == {"alias", "jets"} and h5.members("jets") == ("x",)
        assert h5.attrs["note"] == "kept"
        np.testing.assert_array_equal(h5.read("alias", 3, 5), SECRET[3:5])
        assert h5.inflated_bytes == 2 * 2 * 16  # events 3, 4 lie in two chunks of 2 events
        with pytest.raises(DataError, match="'jets' is an HDF5 group, expected a dataset"):
            h5.dataset("jets")
        with pytest.raises(DataError, match=r"no dataset 'y'; found: jets/x"):
            h5.dataset("y")
    np.testing.assert_array_equal(open_array(path, key="alias").read(), SECRET)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("link", "'jet_pt' is an external link"),
        ("virtual", "'jet_pt' is a virtual dataset"),
        ("external", "'jet_pt' keeps its values in external files"),
    ],
)
def test_jet_samples_go_through_the_same_reader(
    tmp_path: Path, make_jets: Callable, kind: str, needle: str
) -> None:
    """A jet sample whose 'jet_pt' lives in another file is refused by `load_sample`."""
    import h5py

    from hepfpga.train.io import load_sample, save_sample

    raw, other = _other_files(tmp_path)
    path = tmp_path / "jets.h5"
    save_sample(make_jets(10), path)
    with h5py.File(path, "a") as handle:
        del handle["jet_pt"]
        if kind == "link":
            handle["jet_pt"] = h5py.ExternalLink(str(other), "/x")
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=(10,), dtype="f4")
            layout[:] = h5py.VirtualSource(str(other), "x", shape=(10, 4))[:, 0]
            handle.create_virtual_dataset("jet_pt", layout)
        else:
            handle.create_dataset("jet_pt", shape=(10,), dtype="f4", external=[(str(raw), 0, 40)])
    with pytest.raises(DataError, match=f"jets.h5: refused: {needle}"):
        load_sample(path)


def test_hdf5_columns_of_the_last_axis_are_read_in_the_order_asked_within_the_limits(
    tmp_path: Path,
) -> None:
    """`HDF5File.read(..., columns=)` (what the hls4ml layout reads 3 of 16 particle columns
    with): the values are h5py's, in the order asked (repeats allowed); only the chunks
    holding those columns count as decompressed, and the limit sees only their bytes."""
    import h5py

    values = np.random.default_rng(2).normal(size=(40, 5, 16))
    path = tmp_path / "particles.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("p", data=values, chunks=(10, 5, 4), compression="gzip")
        handle["names"] = np.array([b"a", b"b"])
    with open_hdf5(path) as h5:
        assert h5.keys() == ("names", "p") and "p" in h5 and "q" not in h5
        info = h5.get("p")
        assert info is not None and (info.shape, info.dtype, info.ndim) == (
            (40, 5, 16),
            np.dtype("f8"),
            3,
        )
        assert h5.get("missing") is None and h5.kind("missing") is None
        picked = h5.read("p", 12, 25, columns=[11, 6, 8, 6])
        np.testing.assert_array_equal(picked, values[12:25][..., [11, 6, 8, 6]])
        # rows 12..24 lie in 2 row chunks; columns 6, 8, 11 in 2 of the 4 column chunks
        assert h5.inflated_bytes == 2 * 2 * 10 * 5 * 4 * 8
        np.testing.assert_array_equal(h5.read("names"), [b"a", b"b"])
        with pytest.raises(DataError, match=r"'p': column\(s\) \[16\] asked for; accepted: 0..15"):
            h5.read("p", columns=[16])
        with pytest.raises(DataError, match="'names': a dataset of shape \\(2,\\) has no columns"):
            h5.read("names", columns=[0])
    # events 0..9, columns 0..2: 1200 bytes read from one chunk of 1600 decompressed, within
    # a 1700-byte limit; all 16 columns (6400 bytes) are not
    with open_hdf5(path, ReadLimits(max_bytes=1700)) as h5:
        assert h5.read("p", 0, 10, columns=[0, 1, 2]).shape == (10, 5, 3)
        assert h5.inflated_bytes == 1600
        with pytest.raises(DataError, match=r"events 0\.\.9 take 6\.4 kB, more than the 1\.7 kB"):
            h5.read("p", 0, 10)
