"""The run manifest's data inputs: one hashed entry per sample file, also for a folder of
shards or a glob (a folder has no hash of its own: hashing it failed the run at its end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepfpga.artifacts import file_sha256, write_manifest
from hepfpga.pipeline.runner import _data_inputs


@pytest.mark.parametrize("form", ["folder", "glob", "file"])
def test_every_sample_file_is_hashed(tmp_path: Path, form: str) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, text in enumerate(["a", "b"]):
        (shards / f"shard-c{i}.h5").write_text(text)
    (shards / "manifest.json").write_text("{}")  # not a sample file
    path = {
        "folder": shards,
        "glob": shards / "shard-*.h5",
        "file": shards / "shard-c1.h5",
    }[form]
    inputs = _data_inputs(path)
    if form == "file":
        assert inputs == {"data": path}
    else:
        assert inputs == {f"data/shard-c{i}.h5": shards / f"shard-c{i}.h5" for i in (0, 1)}
    run = tmp_path / "run"
    run.mkdir()
    manifest = write_manifest(run, inputs=inputs, config={})
    assert {k: v["sha256"] for k, v in manifest["inputs"].items()} == {
        k: file_sha256(p) for k, p in inputs.items()
    }


def test_no_data_path_stays_none() -> None:
    assert _data_inputs(None) == {"data": None}
