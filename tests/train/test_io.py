"""Jet sample files: round trips, the OpenML layout, the built-in sample, and every error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hepfpga.errors import DataError
from hepfpga.train.io import (
    builtin_sample_path,
    load_builtin_sample,
    load_sample,
    save_sample,
)
from hepfpga.train.jets import CLASS_NAMES, FEATURE_NAMES, JetSample


def _sample(n: int = 12, n_constituents: int = 4, seed: int = 0) -> JetSample:
    rng = np.random.default_rng(seed)
    return JetSample(
        features=rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32),
        constituents=rng.normal(size=(n, n_constituents, 3)).astype(np.float32),
        labels=np.arange(n, dtype=np.int64) % len(CLASS_NAMES),
        jet_pt=rng.uniform(800, 1200, n).astype(np.float32),
        jet_eta=rng.uniform(-2.5, 2.5, n).astype(np.float32),
        jet_mass=rng.uniform(0, 300, n).astype(np.float32),
        metadata={"seed": seed, "note": "test"},
    )


def _assert_same(a: JetSample, b: JetSample) -> None:
    for key in ("features", "constituents", "labels", "jet_pt", "jet_eta", "jet_mass"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert a.feature_names == b.feature_names == FEATURE_NAMES
    assert a.class_names == b.class_names == CLASS_NAMES
    assert a.metadata == b.metadata


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".hdf5"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    sample = _sample()
    path = save_sample(sample, tmp_path / f"jets{suffix}")
    assert path == tmp_path / f"jets{suffix}"
    loaded = load_sample(path)
    _assert_same(sample, loaded)
    assert loaded.features.dtype == np.float32 and loaded.labels.dtype == np.int64
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"jets{suffix}"]  # no temp files
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_float16_constituents_come_back_as_float32(tmp_path: Path, suffix: str) -> None:
    sample = _sample()
    sample.constituents = sample.constituents.astype(np.float16)
    loaded = load_sample(save_sample(sample, tmp_path / f"jets{suffix}"))
    assert loaded.constituents.dtype == np.float32
    np.testing.assert_array_equal(loaded.constituents, sample.constituents.astype(np.float32))


def test_overwrite_replaces_the_file(tmp_path: Path) -> None:
    save_sample(_sample(seed=1), tmp_path / "jets.npz")
    second = _sample(seed=2)
    _assert_same(second, load_sample(save_sample(second, tmp_path / "jets.npz")))


def _openml_rows(n: int) -> tuple[list[str], list[list[str]], np.ndarray]:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(n, len(FEATURE_NAMES))).round(4)
    letters = ["g", "q", "t", "w", "z"]
    rows = [[*map(str, values[i]), letters[i % 5]] for i in range(n)]
    return [*FEATURE_NAMES, "class"], rows, values


def test_openml_csv(tmp_path: Path) -> None:
    header, rows, values = _openml_rows(10)
    path = tmp_path / "hls4ml_lhc_jets_hlf.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    sample = load_sample(path)
    np.testing.assert_allclose(sample.features, values.astype(np.float32))
    # g, q, t, w, z -> our order q, g, W, Z, t
    assert sample.labels[:5].tolist() == [1, 0, 4, 2, 3]
    assert sample.constituents.shape == (10, 0, 3)
    assert np.isnan(sample.jet_pt).all()
    assert sample.metadata["jet_kinematics"] == "absent"


def test_openml_csv_with_reordered_columns_and_quoted_upper_case_class(tmp_path: Path) -> None:
    header, rows, values = _openml_rows(5)
    order = list(reversed(range(len(header))))
    lines = [",".join(header[i] for i in order)]
    lines += [",".join(row[i] if i < 16 else f'"{row[i].upper()}"' for i in order) for row in rows]
    path = tmp_path / "jets.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    sample = load_sample(path)
    np.testing.assert_allclose(sample.features, values.astype(np.float32))
    assert sample.labels.tolist() == [1, 0, 4, 2, 3]


def test_openml_arff(tmp_path: Path) -> None:
    _, rows, values = _openml_rows(5)
    lines = ["% a comment", "@RELATION hls4ml_lhc_jets_hlf", ""]
    lines += [f"@ATTRIBUTE {name} NUMERIC" for name in FEATURE_NAMES]
    lines += ["@ATTRIBUTE 'class' {'g','q','t','w','z'}", "@DATA"]
    lines += [",".join([*row[:16], f"'{row[16]}'"]) for row in rows]
    path = tmp_path / "jets.arff"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sample = load_sample(path)
    np.testing.assert_allclose(sample.features, values.astype(np.float32))
    assert sample.labels.tolist() == [1, 0, 4, 2, 3]


def _write_npz(path: Path, **overrides: object) -> Path:
    sample = _sample()
    arrays = {
        "features": sample.features,
        "constituents": sample.constituents,
        "labels": sample.labels,
        "jet_pt": sample.jet_pt,
        "jet_eta": sample.jet_eta,
        "jet_mass": sample.jet_mass,
        "feature_names": np.asarray(FEATURE_NAMES),
        "class_names": np.asarray(CLASS_NAMES),
        "metadata": np.asarray("{}"),
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"labels": None}, "missing key(s) labels"),
        ({"features": np.zeros((12, 15), np.float32)}, "'features' has shape (12, 15)"),
        ({"constituents": np.zeros((12, 4, 2), np.float32)}, "'constituents' has shape"),
        ({"jet_pt": np.zeros(11, np.float32)}, "'jet_pt' has shape (11,)"),
        ({"labels": np.full(12, 7)}, "label(s) outside 0..4"),
        ({"labels": np.zeros(12, np.float32)}, "must be integers"),
        ({"feature_names": np.asarray(["a"] * 16)}, "feature names"),
        ({"class_names": np.asarray(["q", "g", "W", "Z", "H"])}, "class names"),
        ({"metadata": np.asarray("{not json")}, "not valid JSON"),
    ],
)
def test_bad_npz_contents(tmp_path: Path, overrides: dict, message: str) -> None:
    path = _write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DataError, match=r"bad\.npz") as info:
        load_sample(path)
    assert message in str(info.value)


def test_nan_is_reported_with_count_and_column(tmp_path: Path) -> None:
    features = _sample().features
    features[[1, 4], FEATURE_NAMES.index("d2_b1_mmdt")] = np.nan
    features[2, FEATURE_NAMES.index("mass_mmdt")] = np.inf
    with pytest.raises(DataError) as info:
        load_sample(_write_npz(tmp_path / "nan.npz", features=features))
    message = str(info.value)
    assert "3 NaN/Inf" in message and "d2_b1_mmdt: 2" in message and "mass_mmdt: 1" in message


def test_nan_is_refused_on_save(tmp_path: Path) -> None:
    sample = _sample()
    sample.constituents[0, 0, 1] = np.nan
    with pytest.raises(DataError, match=r"'constituents' has 1 NaN/Inf.*eta: 1"):
        save_sample(sample, tmp_path / "jets.npz")
    assert not list(tmp_path.iterdir())


def test_missing_file_names_the_accepted_formats(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no such file.*\.npz, \.h5, \.hdf5, \.csv, \.arff"):
        load_sample(tmp_path / "absent.npz")


@pytest.mark.parametrize("function", ["load", "save"])
def test_unknown_suffix(tmp_path: Path, function: str) -> None:
    path = tmp_path / "jets.parquet"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"jets\.parquet.*'\.parquet'.*accepted: \.npz"):
        if function == "load":
            load_sample(path)
        else:
            save_sample(_sample(), path)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_corrupt_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(b"this is not a jet sample")
    with pytest.raises(DataError, match=f"corrupt\\{suffix}: cannot be read"):
        load_sample(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zlogz,class\n1.0,q\n", "missing column(s) c1_b0_mmdt"),
        (",".join([*FEATURE_NAMES, "class"]) + "\n", "no data rows"),
        (",".join([*FEATURE_NAMES, "class"]) + "\n" + ",".join(["1"] * 16) + ",h\n", "'h'"),
        (
            ",".join([*FEATURE_NAMES, "class"]) + "\n" + ",".join(["x"] * 16) + ",q\n",
            "not a number",
        ),
        (",".join([*FEATURE_NAMES, "class"]) + "\n1,2,q\n", "row 1 has 3 values"),
    ],
)
def test_bad_openml_csv(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv") as info:
        load_sample(path)
    assert message in str(info.value)


def test_openml_missing_value_is_reported(tmp_path: Path) -> None:
    header, rows, _ = _openml_rows(3)
    rows[1][FEATURE_NAMES.index("n2_b2_mmdt")] = "?"
    path = tmp_path / "jets.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]), encoding="utf-8")
    with pytest.raises(DataError, match="n2_b2_mmdt: 1"):
        load_sample(path)


def test_builtin_sample() -> None:
    path = builtin_sample_path()
    assert path.name == "jets.npz" and path.is_file()
    sample = load_builtin_sample()
    assert len(sample) == 20_000
    assert np.bincount(sample.labels).tolist() == [4_000] * 5
    assert sample.constituents.shape == (20_000, 30, 3)
    assert sample.metadata["seed"] == 2026
    assert (sample.jet_pt > 800).all() and (np.abs(sample.jet_eta) < 2.5).all()
