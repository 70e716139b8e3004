"""The pieces under the bad-input suite: strict JSON, stale partial outputs, the bounded YAML
reader, the destination check and ONNX export of awkward shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hepfpga.artifacts import (
    NONFINITE_STRINGS,
    atomic_file,
    check_destination,
    clean_stale_partials,
    dumps_strict,
    partial_name,
    write_json_atomic,
)
from hepfpga.errors import ConfigError, ExportError, VerificationError
from hepfpga.yaml_io import MAX_DEPTH, parse_yaml


def _strict_loads(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("value", "spelt"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (-float("inf"), "-Infinity"),
        (np.float32("nan"), "NaN"),
        (np.array([1.0, np.inf]), [1.0, "Infinity"]),
        ({"auc": {"q": float("nan")}}, {"auc": {"q": "NaN"}}),
        ((0.5, -np.inf), [0.5, "-Infinity"]),
    ],
    ids=["nan", "inf", "-inf", "np.float32-nan", "array", "nested", "tuple"],
)
def test_strict_json_spells_non_finite_values(value: object, spelt: object) -> None:
    text = dumps_strict({"x": value})
    assert _strict_loads(text) == {"x": spelt}
    assert set(NONFINITE_STRINGS.values()) == {"NaN", "Infinity", "-Infinity"}


def test_strict_json_round_trips_finite_values_and_reads_back_with_float(tmp_path: Path) -> None:
    data = {"a": 1, "b": [0.1, 2.5e-300], "c": None, "d": "NaN-free", "e": np.int64(3)}
    write_json_atomic(tmp_path / "r.json", {**data, "bad": float("nan")})
    loaded = _strict_loads((tmp_path / "r.json").read_text())
    assert loaded == {**data, "e": 3, "bad": "NaN"}
    assert np.isnan(float(loaded["bad"]))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_partials_of_dead_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    destination = tmp_path / "run"
    mine = tmp_path / partial_name(destination)
    host = mine.name.split(".")[2].split("-")[0]
    dead = tmp_path / f".run.{host}-{_dead_pid()}-0000.partial"
    live = tmp_path / f".run.{host}-1-0000.partial"  # pid 1 always runs
    other_host = tmp_path / ".run.zzzzzz-7-0000.partial"
    old_swap = tmp_path / f".run.old-{_dead_pid()}"
    unrelated = tmp_path / ".run.notes"
    for folder in (mine, dead, live, other_host, old_swap):
        folder.mkdir()
        (folder / "f").write_text("x")
    unrelated.write_text("keep")

    removed = clean_stale_partials(destination)

    assert sorted(removed) == sorted([dead, old_swap])
    assert mine.exists() and live.exists() and other_host.exists() and unrelated.exists()


def test_atomic_file_check_runs_before_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "new" / "out.txt"

    def refuse(tmp: Path) -> None:
        assert tmp.read_text() == "draft" and tmp != target
        raise VerificationError("not good enough")

    with pytest.raises(VerificationError), atomic_file(target, check=refuse) as tmp:
        tmp.write_text("draft")
    assert list(tmp_path.iterdir()) == [], "nothing, not even the created folder, is left"


@pytest.mark.parametrize(
    ("kind", "make", "problem"),
    [
        ("file", lambda p: p.mkdir(), "is a folder"),
        ("folder", lambda p: p.write_text("x"), "is a file"),
        ("file", lambda p: p.write_text("x"), "already exists"),
        ("folder", lambda p: (p.mkdir(), (p / "x").write_text("x")), "already exists"),
    ],
    ids=["dir-for-file", "file-for-dir", "file-exists", "dir-exists"],
)
def test_destination_check_names_the_problem(
    tmp_path: Path, kind: str, make: object, problem: str
) -> None:
    path = tmp_path / "out"
    make(path)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=problem) as info:
        check_destination(path, kind=kind, option="--out")
    assert str(path) in str(info.value) and "--out" in str(info.value)


def test_destination_check_accepts_overwrite_and_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert check_destination(tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "f.json").write_text("{}")
    check_destination(tmp_path / "f.json", kind="file", overwrite=True)
    check_destination(tmp_path / "a" / "b" / "new", kind="folder")
    assert not (tmp_path / "a").exists(), "the check creates nothing"


def test_yaml_depth_bound_is_just_above_real_configs() -> None:
    nested = "a: " + "{b: " * (MAX_DEPTH - 2) + "1" + "}" * (MAX_DEPTH - 2)
    assert parse_yaml(nested) is not None
    with pytest.raises(ConfigError, match="nesting deeper"):
        parse_yaml("a: " + "{b: " * MAX_DEPTH + "1" + "}" * MAX_DEPTH)


def test_yaml_aliases_within_bounds_still_load() -> None:
    text = "base: &b {lr: 0.001}\ntraining: *b\nquantization: *b\n"
    assert parse_yaml(text) == {
        "base": {"lr": 0.001},
        "training": {"lr": 0.001},
        "quantization": {"lr": 0.001},
    }


@pytest.fixture(scope="module")
def shaped_models() -> dict[str, object]:
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(1)
    x = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu")(x)
    encoder = keras.Model(
        x, [keras.layers.Dense(3, name="mu")(h), keras.layers.Dense(3, name="log_var")(h)]
    )
    x = keras.Input((6,))
    rank1 = keras.Model(x, keras.layers.Reshape(())(keras.layers.Dense(1)(x)))
    return {"encoder": encoder, "rank1": rank1}


def test_vae_encoder_exports_with_parity_per_output(
    shaped_models: dict[str, object], tmp_path: Path
) -> None:
    from hepfpga.deploy.onnx_export import export_checked_onnx, random_inputs

    model = shaped_models["encoder"]
    x = random_inputs(model, 200)
    export, parity = export_checked_onnx(model, tmp_path / "enc.onnx", x, tolerance=1e-5)
    assert len(export.output_names) == 2 and len(parity.per_output) == 2
    assert parity.max_abs_diff == max(parity.per_output) <= 1e-5
    assert parity.argmax_agreement == 1.0


def test_rank1_output_exports_without_argmax(
    shaped_models: dict[str, object], tmp_path: Path
) -> None:
    from hepfpga.deploy.onnx_export import export_checked_onnx, random_inputs

    model = shaped_models["rank1"]
    _, parity = export_checked_onnx(
        model, tmp_path / "r.onnx", random_inputs(model, 50), tolerance=1e-5
    )
    assert parity.argmax_agreement is None and parity.max_abs_diff <= 1e-5


def test_failed_parity_check_leaves_no_onnx(
    shaped_models: dict[str, object], tmp_path: Path
) -> None:
    from hepfpga.deploy.onnx_export import export_onnx

    def fail(export: object) -> None:
        raise ExportError("parity failed")

    with pytest.raises(ExportError):
        export_onnx(shaped_models["encoder"], tmp_path / "enc.onnx", check=fail)
    assert list(tmp_path.iterdir()) == []


def test_existing_onnx_is_replaced_only_with_overwrite(
    shaped_models: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepfpga.cli import main

    model_file = tmp_path / "enc.h5"
    shaped_models["encoder"].save(model_file)  # type: ignore[attr-defined]
    out = tmp_path / "enc.onnx"
    out.write_text("old")
    assert main(["-q", "export", "onnx", str(model_file), "--out", str(out)]) == 2
    assert out.read_text() == "old"
    assert main(["-q", "export", "onnx", str(model_file), "--out", str(out), "--overwrite"]) == 0
    assert "2 outputs" in capsys.readouterr().out
    assert out.stat().st_size > 100
