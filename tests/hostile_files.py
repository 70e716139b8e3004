"""Builders of hostile, forged and corrupt data files, shared by the data-file tests
(tests/core/test_datafiles_safety.py, tests/cli/test_bad_input_data.py, which load it by
path). Each writes one file into a folder and returns its path."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

SECRET = np.arange(40, dtype=np.float32).reshape(10, 4) + 1000.0


def _other_files(folder: Path) -> tuple[Path, Path]:
    """A raw file and an HDF5 file of 'another user' that a hostile file points into."""
    raw, h5 = folder / "secret.bin", folder / "secret.h5"
    if not raw.exists():
        import h5py

        SECRET.tofile(raw)
        with h5py.File(h5, "w") as handle:
            handle["x"] = SECRET
    return raw, h5


def external_storage(folder: Path) -> Path:
    import h5py

    raw, _ = _other_files(folder)
    path = folder / "external_storage.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", shape=(10, 4), dtype="f4", external=[(str(raw), 0, 160)])
    return path


def virtual_dataset(folder: Path) -> Path:
    import h5py

    _, other = _other_files(folder)
    layout = h5py.VirtualLayout(shape=(10, 4), dtype="f4")
    layout[:] = h5py.VirtualSource(str(other), "x", shape=(10, 4))
    path = folder / "virtual.h5"
    with h5py.File(path, "w") as handle:
        handle.create_virtual_dataset("x", layout)
    return path


def external_link(folder: Path) -> Path:
    import h5py

    _, other = _other_files(folder)
    path = folder / "external_link.h5"
    with h5py.File(path, "w") as handle:
        handle["x"] = h5py.ExternalLink(str(other), "/x")
    return path


def soft_link_through_external_link(folder: Path) -> Path:
    """A soft link (harmless alone) whose path runs through an external link."""
    import h5py

    _, other = _other_files(folder)
    path = folder / "soft_escape.h5"
    with h5py.File(path, "w") as handle:
        handle["elsewhere"] = h5py.ExternalLink(str(other), "/")
        handle["x"] = h5py.SoftLink("/elsewhere/x")
    return path


def forged_npy(folder: Path) -> Path:
    """A 100-byte .npy whose header declares 16 TB."""
    path = folder / "forged.npy"
    with path.open("wb") as handle:
        header = {"descr": "<f4", "fortran_order": False, "shape": (10**12, 4)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(b"\0" * 64)
    return path


def forged_npz(folder: Path) -> Path:
    path = folder / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive, archive.open("x.npy", "w") as member:
        header = {"descr": "<f4", "fortran_order": False, "shape": (10**12, 4)}
        np.lib.format.write_array_header_1_0(member, header)
        member.write(b"\0" * 64)
    return path


def huge_hdf5(folder: Path) -> Path:
    """A few kB of HDF5 declaring a compressed 160 GB dataset (unwritten chunks read as 0)."""
    import h5py

    path = folder / "huge.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "x", shape=(10**10, 4), dtype="f4", chunks=(1000, 4), compression="gzip"
        )
    return path


def deflate_bomb(folder: Path, n_events: int = 4_000_000) -> Path:
    """A compressed .npz member of ``n_events`` x 4 float32 zeros (64 MB) in ~60 kB."""
    path = folder / "bomb.npz"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("x.npy", "w", force_zip64=True) as member,
    ):
        header = {"descr": "<f4", "fortran_order": False, "shape": (n_events, 4)}
        np.lib.format.write_array_header_1_0(member, header)
        block, left = bytes(1 << 20), n_events * 16
        while left:
            member.write(block[: min(left, len(block))])
            left -= min(left, len(block))
    return path


def object_field(folder: Path) -> Path:
    path = folder / "object_field.npz"
    rows = np.array([(1.0, {"a": 1})], dtype=[("a", "f4"), ("o", "O")])
    np.savez(path, x=rows)  # pickled: must never be unpickled
    return path


def string_field(folder: Path) -> Path:
    path = folder / "string_field.npz"
    rows = np.array(
        [(1.0, 2.0, 3.0, 4.0, "q")] * 3, dtype=[*((c, "f4") for c in "abcd"), ("s", "U1")]
    )
    np.savez(path, x=rows)
    return path


def complex_values(folder: Path) -> Path:
    path = folder / "complex.npz"
    np.savez(path, x=np.ones((3, 4), dtype=complex))
    return path


def nan_values(folder: Path) -> Path:
    path = folder / "nan.npz"
    x = np.ones((20, 4), dtype=np.float32)
    x[7, 2] = np.inf
    x[3, 1] = np.nan
    np.savez(path, x=x)
    return path


def truncated_npz(folder: Path) -> Path:
    np.savez_compressed(folder / "whole.npz", x=np.ones((1000, 4), dtype=np.float32))
    data = (folder / "whole.npz").read_bytes()
    path = folder / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_member(folder: Path) -> Path:
    """Intact zip directory, damaged deflate stream."""
    rng = np.random.default_rng(0)
    np.savez_compressed(folder / "whole2.npz", x=rng.normal(size=(2000, 4)).astype(np.float32))
    data = bytearray((folder / "whole2.npz").read_bytes())
    for i in range(200, 2000, 7):
        data[i] ^= 0x5A
    path = folder / "corrupt_member.npz"
    path.write_bytes(bytes(data))
    return path


#: builder, words the refusal must contain
HOSTILE: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "hdf5-external-storage": (external_storage, ("refused", "external files")),
    "hdf5-virtual-dataset": (virtual_dataset, ("refused", "virtual dataset")),
    "hdf5-external-link": (external_link, ("refused", "external link")),
    "hdf5-soft-link-escaping": (soft_link_through_external_link, ("refused", "external link")),
    "npy-forged-shape": (forged_npy, ("declares shape", "truncated or its header forged")),
    "npz-forged-shape": (forged_npz, ("declares shape", "truncated or its header forged")),
    "hdf5-huge-shape": (huge_hdf5, ("huge.h5", "160 gb", "0 of its 10,000,000 chunks")),
    "npz-object-field": (object_field, ("python objects", "numbers")),
    "npz-string-field": (string_field, ("'s'", "numeric fields: a, b, c, d")),
    "npz-complex": (complex_values, ("expected real numbers", "complex128")),
    "npz-nan": (nan_values, ("2 nan or infinite", "event 3 input 1", "event 7 input 2")),
    "npz-truncated": (truncated_npz, ("truncated.npz", "cannot be read")),
    "npz-corrupt-member": (corrupt_member, ("corrupt_member.npz", "corrupt")),
}
