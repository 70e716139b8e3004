from __future__ import annotations

import json
from pathlib import Path

import pytest

from hepfpga.artifacts import atomic_directory, file_sha256, write_json_atomic, write_manifest
from hepfpga.errors import ConfigError


def test_atomic_directory_appears_only_when_complete(tmp_path: Path) -> None:
    dest = tmp_path / "runs" / "r1"
    with atomic_directory(dest) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not dest.exists()
    assert (dest / "a.txt").read_text() == "x"
    assert [p.name for p in dest.parent.iterdir()] == ["r1"]


def test_failed_block_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "r1"
    with pytest.raises(RuntimeError), atomic_directory(dest) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_is_refused_then_replaced_with_overwrite(tmp_path: Path) -> None:
    dest = tmp_path / "r1"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(ConfigError, match="already exists"), atomic_directory(dest):
        pass
    assert (dest / "old.txt").exists()
    with pytest.raises(RuntimeError), atomic_directory(dest, overwrite=True):
        raise RuntimeError("failed run")
    assert (dest / "old.txt").exists(), "a failed overwrite must keep the old run"
    with atomic_directory(dest, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1"]


def test_manifest_hashes_inputs_and_outputs(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"abc")
    run = tmp_path / "run"
    run.mkdir()
    write_json_atomic(run / "report.json", {"x": 1})
    manifest = write_manifest(run, inputs={"data": data, "config": None}, config={"k": 1})
    assert (
        manifest["inputs"]["data"]["sha256"]
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert manifest["outputs"] == {"report.json": file_sha256(run / "report.json")}
    assert json.loads((run / "manifest.json").read_text())["versions"]["tensorflow"]
