"""The field's layouts read as they are: hepfpga shards (folder, glob), the hls4ml LHC jet
HDF5 files and JetNet, each written here in its own layout; every representation built from
what the file holds or refused naming what is missing; malformed files refused in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import hostile_files  # tests/hostile_files.py (pytest pythonpath)
import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.errors import DataError
from hepfpga.train.dataset import split_sample
from hepfpga.train.io import load_sample, save_sample
from hepfpga.train.jets import FEATURE_NAMES
from hepfpga.train.layouts import SAMPLE_LAYOUTS, detect_layout, sample_files
from hepfpga.train.representations import (
    ConstituentCloud,
    ConstituentSequence,
    Features,
    JetImage,
)

# --- the hls4ml LHC jet files: 59 jet columns ending in the one-hot labels, 16 particle
# columns with 17 names (j1_pdgid last), float64, zero-padded constituents, 100x100 images

_HLS4ML_JET_NAMES = [
    "j_ptfrac", "j_pt", "j_eta", "j_mass",
    "j_tau1_b1", "j_tau2_b1", "j_tau3_b1", "j_tau1_b2", "j_tau2_b2", "j_tau3_b2",
    "j_tau32_b1", "j_tau32_b2", "j_zlogz",
    "j_c1_b0", "j_c1_b1", "j_c1_b2", "j_c2_b1", "j_c2_b2", "j_d2_b1", "j_d2_b2",
    "j_d2_a1_b1", "j_d2_a1_b2", "j_m2_b1", "j_m2_b2", "j_n2_b1", "j_n2_b2",
    "j_tau1_b1_mmdt", "j_tau2_b1_mmdt", "j_tau3_b1_mmdt", "j_tau1_b2_mmdt", "j_tau2_b2_mmdt",
    "j_tau3_b2_mmdt", "j_tau32_b1_mmdt", "j_tau32_b2_mmdt",
    "j_c1_b0_mmdt", "j_c1_b1_mmdt", "j_c1_b2_mmdt", "j_c2_b1_mmdt", "j_c2_b2_mmdt",
    "j_d2_b1_mmdt", "j_d2_b2_mmdt", "j_d2_a1_b1_mmdt", "j_d2_a1_b2_mmdt",
    "j_m2_b1_mmdt", "j_m2_b2_mmdt", "j_n2_b1_mmdt", "j_n2_b2_mmdt",
    "j_mass_trim", "j_mass_mmdt", "j_mass_prun", "j_mass_sdb2", "j_mass_sdm1",
    "j_multiplicity",
    "j_g", "j_q", "j_w", "j_z", "j_t", "j_undef",
]  # fmt: skip
_HLS4ML_PARTICLE_NAMES = [
    "j1_px", "j1_py", "j1_pz", "j1_e", "j1_erel", "j1_pt", "j1_ptrel", "j1_eta", "j1_etarel",
    "j1_etarot", "j1_phi", "j1_phirel", "j1_phirot", "j1_deltaR", "j1_costheta",
    "j1_costhetarel", "j1_pdgid",
]  # fmt: skip
#: the file's one-hot order (g, q, w, z, t) -> our class index (q, g, W, Z, t)
_HLS4ML_TO_OURS = [1, 0, 2, 3, 4]


def write_hls4ml(
    path: Path, n: int = 20, constituents: int = 30, seed: int = 0, **edit: Callable
) -> dict[str, np.ndarray]:
    """An hls4ml LHC jet file of ``n`` jets; ``edit[name](array)`` changes a dataset before it
    is written (the malformed cases). Returns what was written."""
    rng = np.random.default_rng(seed)
    assert len(_HLS4ML_JET_NAMES) == 59
    jets = rng.uniform(0.1, 2.0, size=(n, 59))
    flavour = np.arange(n) % 5  # in the file's order g, q, w, z, t
    jets[:, -6:] = 0.0
    jets[np.arange(n), 53 + flavour] = 1.0
    particles = np.zeros((n, constituents, 16))
    counts = rng.integers(2, constituents + 1, size=n)
    for i, count in enumerate(counts):
        ptrel = np.sort(rng.uniform(0.01, 0.3, size=count))[::-1]
        particles[i, :count, 6] = ptrel
        particles[i, :count, 8] = rng.normal(0, 0.3, size=count)  # etarel
        particles[i, :count, 11] = rng.normal(0, 0.3, size=count)  # phirel
        particles[i, :count, 5] = ptrel * 1000.0  # pt
    arrays = {
        "jets": jets,
        "jetFeatureNames": np.array(_HLS4ML_JET_NAMES, dtype="S"),
        "jetConstituentList": particles,
        "particleFeatureNames": np.array(_HLS4ML_PARTICLE_NAMES, dtype="S"),
        "jetImage": rng.uniform(size=(n, 100, 100)),
    }
    for key, change in edit.items():
        arrays[key] = change(arrays[key])
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            if value is not None:
                h5.create_dataset(key, data=value)
    arrays["labels"] = np.array(_HLS4ML_TO_OURS)[flavour]
    return arrays


# --- JetNet: one file per class, particle_features (etarel, phirel, ptrel, mask) and
# jet_features (pt, eta, mass, num_particles), float32


def write_jetnet(
    path: Path, n: int = 12, particles: int = 30, seed: int = 0, **edit: Callable
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = np.zeros((n, particles, 4), dtype=np.float32)
    counts = rng.integers(1, particles + 1, size=n)
    for i, count in enumerate(counts):
        features[i, :count, 0] = rng.normal(0, 0.2, size=count)
        features[i, :count, 1] = rng.normal(0, 0.2, size=count)
        features[i, :count, 2] = np.sort(rng.uniform(0.01, 0.3, size=count))[::-1]
        features[i, :count, 3] = 1.0
    jets = np.stack(
        [rng.uniform(900, 1100, n), rng.uniform(-2, 2, n), rng.uniform(10, 200, n), counts], axis=1
    ).astype(np.float32)
    arrays = {"particle_features": features, "jet_features": jets}
    for key, change in edit.items():
        arrays[key] = change(arrays[key])
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            if value is not None:
                h5.create_dataset(key, data=value)
    return arrays


def _representations(n: int) -> list:
    return [
        ConstituentSequence(n_constituents=n),
        ConstituentCloud(n_constituents=n),
        JetImage(pixels=8, extent=0.8),
    ]


@pytest.mark.parametrize("constituents", [30, 150])
def test_hls4ml_file_is_read_as_it_is(tmp_path: Path, constituents: int) -> None:
    path = tmp_path / f"jetImage_7_{constituents}p_0_20.h5"
    written = write_hls4ml(path, constituents=constituents)
    assert detect_layout(path).name == "hls4ml_lhc_jets"
    sample = load_sample(path)
    np.testing.assert_array_equal(sample.labels, written["labels"])
    columns = [_HLS4ML_JET_NAMES.index(f"j_{name}") for name in FEATURE_NAMES]
    np.testing.assert_array_equal(sample.features, written["jets"][:, columns].astype(np.float32))
    np.testing.assert_array_equal(sample.jet_pt, written["jets"][:, 1].astype(np.float32))
    np.testing.assert_array_equal(sample.jet_mass, written["jets"][:, 3].astype(np.float32))
    expected = written["jetConstituentList"][..., [6, 8, 11]].astype(np.float32)
    np.testing.assert_array_equal(sample.constituents, expected)
    assert sample.constituents.shape == (20, constituents, 3)
    split = split_sample(sample, (0.5, 0.25, 0.25), seed=1)
    for representation in [Features(), *_representations(constituents)]:
        inputs = representation.prepare(split)
        assert inputs.train.shape[0] == 10 and np.isfinite(inputs.train).all()


def test_jetnet_folder_is_read_with_classes_from_file_names(tmp_path: Path) -> None:
    folder = tmp_path / "jetnet"
    folder.mkdir()
    written = {
        name: write_jetnet(folder / f"{name}.hdf5", seed=i) for i, name in enumerate("gqtwz")
    }
    sample = load_sample(folder)
    # files in name order g, q, t, w, z; our classes q=0, g=1, W=2, Z=3, t=4
    np.testing.assert_array_equal(sample.labels, np.repeat([1, 0, 4, 2, 3], 12))
    g = written["g"]["particle_features"]
    np.testing.assert_array_equal(sample.constituents[:12], g[..., [2, 0, 1]] * g[..., 3:])
    np.testing.assert_array_equal(sample.jet_eta[:12], written["g"]["jet_features"][:, 1])
    split = split_sample(sample, (0.5, 0.25, 0.25), seed=0)
    for representation in _representations(30):
        assert representation.prepare(split).train.shape[0] == 30
    with pytest.raises(
        DataError,
        match=r"features representation needs the jets' features.*"
        r"no substructure features.*use constituent_sequence",
    ):
        Features().prepare(split)
    with pytest.raises(DataError, match="40 constituents per jet requested, the sample stores 30"):
        ConstituentSequence(n_constituents=40).prepare(split)


def test_jetnet_constituents_are_sorted_by_pt_and_masked(tmp_path: Path) -> None:
    def shuffle(p: np.ndarray) -> np.ndarray:
        p = p[:, ::-1].copy()  # padding first, then increasing pT
        p[:, :, 0] += 5.0 * (p[:, :, 3] == 0)  # padding with junk angles: the mask zeroes them
        return p

    path = tmp_path / "t150.hdf5"
    written = write_jetnet(path, particles=150, particle_features=shuffle)
    sample = load_sample(path)
    pt = sample.constituents[..., 0]
    assert (np.diff(pt, axis=1) <= 0).all()
    count = (written["particle_features"][..., 3] == 1).sum(axis=1)
    assert ((pt > 0).sum(axis=1) == count).all()
    assert (sample.constituents[pt == 0] == 0).all()
    assert (sample.labels == 4).all()


def test_openml_csv_has_no_constituents_for_the_constituent_representations(tmp_path: Path) -> None:
    path = tmp_path / "hlf.csv"
    rows = [",".join([*FEATURE_NAMES, "class"])]
    rows += [",".join([*(str(0.1 * i + j) for j in range(16)), "gqtwz"[i % 5]]) for i in range(20)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    split = split_sample(load_sample(path), (0.5, 0.25, 0.25), seed=0)
    for representation in _representations(4):
        with pytest.raises(DataError, match=r"needs the jets' constituents.*use the features"):
            representation.prepare(split)


@pytest.mark.parametrize("how", ["folder", "glob", "file"])
def test_hepfpga_shards_are_read_in_name_order(tmp_path: Path, make_jets, how: str) -> None:
    shards = [make_jets(30 + 5 * i, seed=i) for i in range(3)]
    folder = tmp_path / "shards"
    for i, shard in enumerate(shards):
        save_sample(shard, folder / f"shard-{i}.h5")
    save_sample(shards[0], tmp_path / "other.h5")
    path = {"folder": folder, "glob": folder / "shard-*.h5", "file": folder / "shard-1.h5"}[how]
    sample = load_sample(path)
    parts = shards if how != "file" else shards[1:2]
    np.testing.assert_array_equal(sample.features, np.concatenate([s.features for s in parts]))
    np.testing.assert_array_equal(sample.labels, np.concatenate([s.labels for s in parts]))
    assert [p.name for p in sample_files(path)] == (
        ["shard-0.h5", "shard-1.h5", "shard-2.h5"] if how != "file" else ["shard-1.h5"]
    )
    # a row range of a shard is the same jets as the whole shard's rows
    rows = SAMPLE_LAYOUTS["hepfpga"].read(folder / "shard-2.h5", slice(7, 19))
    np.testing.assert_array_equal(rows.constituents, shards[2].constituents[7:19])


def _drop(_: object) -> None:
    return None


#: (id, writer, edit, needles of the one-line error)
MALFORMED: list[tuple[str, str, dict[str, Callable], tuple[str, ...]]] = [
    ("hls4ml-no-labels", "hls4ml",
     {"jets": lambda a: a[:, :53], "jetFeatureNames": lambda a: a[:53]},
     ("no label column", "j_g, j_q, j_w, j_z, j_t")),
    ("hls4ml-two-flags", "hls4ml", {"jets": lambda a: np.where(np.arange(59) == 53, 1.0, a)},
     ("without exactly one class flag", "row 1", "j_undef 0")),
    ("hls4ml-undef", "hls4ml", {"jets": lambda a: np.where(np.arange(59) == 58, 1.0, a)},
     ("without exactly one class flag", "row 0")),
    ("hls4ml-names-mismatch", "hls4ml", {"jetFeatureNames": lambda a: a[:40]},
     ("'jetfeaturenames' has 40 names", "one name per column")),
    ("hls4ml-nan-feature", "hls4ml", {"jets": lambda a: np.where(np.arange(59) == 12, np.nan, a)},
     ("dataset 'jets'", "nan/inf", "j_zlogz", "only finite")),
    ("hls4ml-inf-constituent", "hls4ml",
     {"jetConstituentList": lambda a: np.where(np.arange(16) == 8, np.inf, a)},
     ("'jetconstituentlist'", "j1_etarel", "only finite")),
    ("hls4ml-integer-jets", "hls4ml", {"jets": lambda a: a.astype(np.int32)},
     ("dataset 'jets'", "int32", "floating point")),
    ("hls4ml-2d-constituents", "hls4ml", {"jetConstituentList": lambda a: a[:, 0, :]},
     ("'jetconstituentlist'", "(n, c, p)")),
    ("hls4ml-fewer-constituent-jets", "hls4ml", {"jetConstituentList": lambda a: a[:5]},
     ("holds 5 jets", "'jets' 20")),
    ("hls4ml-particle-names", "hls4ml", {"particleFeatureNames": lambda a: a[:10]},
     ("'particlefeaturenames' has 10 names", "16")),
    ("jetnet-wrong-width", "jetnet", {"particle_features": lambda a: a[..., :3]},
     ("'particle_features'", "etarel, phirel, ptrel, mask")),
    ("jetnet-mask", "jetnet",
     {"particle_features": lambda a: a * np.array([1, 1, 1, 0.5], np.float32)},
     ("mask channel", "accepted: 1 for a particle")),
    ("jetnet-nan", "jetnet", {"jet_features": lambda a: np.where(np.arange(4) == 2, np.nan, a)},
     ("'jet_features'", "mass: 12")),
    ("jetnet-no-jet-features", "jetnet", {"jet_features": _drop},
     ("not a known jet sample layout", "jetnet (particle_features, jet_features)")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("writer", "edit", "needles"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_files_are_refused_in_one_line(
    tmp_path: Path, writer: str, edit: dict[str, Callable], needles: tuple[str, ...]
) -> None:
    path = tmp_path / ("jets.h5" if writer == "hls4ml" else "w.hdf5")
    (write_hls4ml if writer == "hls4ml" else write_jetnet)(path, **edit)
    with pytest.raises(DataError) as error:
        load_sample(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle.lower() in message.lower(), message


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("jets.hdf5", ("a jetnet file is named by its jet class", "g, q, t, w, z")),
        ("empty", ("no jet sample files found", ".npz, .h5, .hdf5")),
        ("empty/*.h5", ("no jet sample files found",)),
        ("not-hdf5.h5", ("cannot be read as an hdf5 file",)),
    ],
)
def test_bad_paths_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, needles: tuple[str, ...]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "not-hdf5.h5").write_bytes(b"not an HDF5 file")
    write_jetnet(tmp_path / "jets.hdf5")
    code = main(["-q", "data", "info", str(tmp_path / name)])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


_HOSTILE = hostile_files
_HOSTILE_HDF5 = [name for name in _HOSTILE.HOSTILE if name.startswith("hdf5-")]


@pytest.mark.parametrize("kind", _HOSTILE_HDF5)
def test_hostile_hdf5_in_the_hls4ml_layout_is_refused_in_one_line(
    tmp_path: Path, kind: str
) -> None:
    """Each hostile HDF5 kind, dressed as an hls4ml LHC jet file (its 'jets' table a soft link
    to the hostile dataset, the other datasets real), is refused by `load_sample` in one line
    that names the file, without a value of the other file it points into."""
    build, needles = _HOSTILE.HOSTILE[kind]
    path = build(tmp_path)
    arrays = write_hls4ml(tmp_path / "donor.h5", n=10)
    with h5py.File(path, "a") as h5:
        for key in ("jetFeatureNames", "jetConstituentList", "particleFeatureNames"):
            h5.create_dataset(key, data=arrays[key])
        h5["jets"] = h5py.SoftLink("/x")
    with pytest.raises(DataError) as error:
        load_sample(path)
    message = str(error.value)
    assert "\n" not in message and path.name in message, message
    for needle in needles:
        assert needle in message.lower(), message
    assert str(_HOSTILE.SECRET[0, 0]) not in message


def test_data_info_on_jetnet_says_what_the_file_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = write_jetnet(tmp_path / "w.hdf5")
    assert main(["-q", "data", "info", str(tmp_path / "w.hdf5")]) == 0
    out = capsys.readouterr().out
    assert "no substructure features" in out and "16 features" not in out, out
    # the W line: the ungroomed jet mass of the file (jet_features column 2), not NaN
    line = next(line for line in out.splitlines() if line.strip().startswith("W:"))
    mean = float(line.split("mean jet mass")[1].split()[0])
    assert mean == pytest.approx(float(np.mean(arrays["jet_features"][:, 2])), abs=0.06)
