"""Jet generation on dask: one shard per chunk, resumed after a loss, bit-identical on rerun,
equal to ``generate_sample``; the built-in sample reproduced from its recorded settings; bad
``hepfpga data generate`` options refused with one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.errors import DataError

SEED = 5


@pytest.fixture(scope="module")
def scheduler() -> str:
    """A one-worker dask cluster in this process (no worker start-up to pay), reached by
    address like any ``--scheduler`` cluster."""
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        dashboard_address=None,
        worker_dashboard_address=None,
        scheduler_kwargs={"dashboard": False},
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, scheduler: str):
    from hepfpga.train.generate_shards import generate_shards

    folder = tmp_path_factory.mktemp("shards") / "jets"
    run = generate_shards(folder, 1, seed=SEED, scheduler=scheduler, progress=False)
    return folder, run, {p.name: p.read_bytes() for p in folder.glob("shard-*.h5")}


@pytest.mark.datagen
@pytest.mark.slow
def test_shards_hold_the_jets_of_generate_sample(first_run) -> None:
    from hepfpga.train.generate import generate_sample
    from hepfpga.train.generate_shards import merge_shards

    folder, run, shards = first_run
    assert len(run.made) == len(shards) == 5 and run.reused == 0
    assert sorted(shards) == sorted(run.made)
    assert [name[8] for name in sorted(shards)] == ["q", "g", "W", "Z", "t"]  # sorted = order
    assert run.jets_per_second and set(run.jets_per_worker_second)  # one worker, one rate
    merged = merge_shards(folder)
    direct = generate_sample(1, seed=SEED, progress=False, workers=1)
    for key in ("features", "constituents", "labels", "jet_pt", "jet_eta", "jet_mass"):
        np.testing.assert_array_equal(getattr(merged, key), getattr(direct, key), err_msg=key)
    assert merged.metadata["physics"] == direct.metadata["physics"] == "heavy-resonance"


@pytest.mark.datagen
@pytest.mark.slow
@pytest.mark.parametrize("loss", ["removed shard", "shard of a killed writer"])
def test_rerun_makes_the_missing_shards_only_bit_identical(
    first_run, scheduler: str, tmp_path: Path, loss: str
) -> None:
    from hepfpga.artifacts import partial_name
    from hepfpga.train.generate_shards import generate_shards

    source, _, shards = first_run
    folder = tmp_path / "jets"
    folder.mkdir()
    for item in source.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    lost = sorted(shards)[2]  # the W shard
    (folder / lost).unlink()
    if loss == "shard of a killed writer":
        # what kill -9 leaves: the half-written twin of a process that no longer exists
        twin = folder / partial_name(folder / lost).replace(f"-{os.getpid()}-", "-999999999-")
        assert "-999999999-" in twin.name
        twin.write_bytes(b"\x89HDF half")

    run = generate_shards(folder, 1, seed=SEED, scheduler=scheduler, progress=False)

    assert run.made == [lost] and run.reused == 4
    assert {p.name: p.read_bytes() for p in folder.glob("shard-*.h5")} == shards
    assert sorted(p.name for p in folder.iterdir()) == sorted([*shards, "manifest.json"])
    again = generate_shards(folder, 1, seed=SEED, scheduler=scheduler, progress=False)
    assert again.made == [] and again.reused == 5 and again.jets_per_second is None


@pytest.mark.datagen
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"seed": SEED + 1}, f"seed={SEED}"),
        ({"physics": "sm-diboson"}, "physics='heavy-resonance'"),
        ({"n_constituents": 20}, "n_constituents=30"),
    ],
)
def test_a_folder_keeps_its_settings(first_run, kwargs: dict, needle: str) -> None:
    from hepfpga.train.generate_shards import generate_shards

    folder, _, shards = first_run
    with pytest.raises(DataError, match=needle):
        generate_shards(folder, 1, **{"seed": SEED, **kwargs}, progress=False)
    assert {p.name: p.read_bytes() for p in folder.glob("shard-*.h5")} == shards


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("shard-*.h5")}


def _link(source: Path, folder: Path, classes: str) -> None:
    """Hard-link the shards of ``classes`` from ``source`` into ``folder`` (as a user does to
    share shards between folders of one seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard in source.glob("shard-*.h5"):
        if shard.name[8] in classes:
            os.link(shard, folder / shard.name)


@pytest.mark.datagen
def test_a_subset_of_classes_makes_the_shards_of_an_all_class_run(
    first_run, scheduler: str, tmp_path: Path
) -> None:
    from hepfpga.train.generate_shards import generate_shards, merge_shards

    _, _, shards = first_run
    folder = tmp_path / "qg"
    run = generate_shards(
        folder, 1, classes=["g", "q"], seed=SEED, scheduler=scheduler, progress=False
    )
    made = _shard_bytes(folder)
    assert sorted(made) == sorted(run.made) == sorted(n for n in shards if n[8] in "qg")
    assert made == {name: shards[name] for name in made}  # the same files, byte for byte
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["classes"] == ["q", "g"] and manifest["per_class"] == {"q": 1, "g": 1}
    assert manifest["complete"] and "n_per_class" not in manifest["settings"]
    merged = merge_shards(folder)
    assert merged.labels.tolist() == [0, 1] and merged.metadata["classes"] == ["q", "g"]
    assert run.summary().startswith("2 jets (q 1, g 1) in 2 shards")


@pytest.mark.datagen
def test_linked_shards_are_reused_and_a_folder_grows(
    first_run, scheduler: str, tmp_path: Path
) -> None:
    """The lead's way to a large background sample: hard-link the q and g shards of an
    all-class folder, add a class, then more jets of a class (its last chunk is made again
    with more jets, in this folder only)."""
    from hepfpga.train.generate_shards import generate_shards, merge_shards

    source, _, shards = first_run
    folder = tmp_path / "background"
    _link(source, folder, "qg")
    kwargs = {"seed": SEED, "scheduler": scheduler, "progress": False}

    run = generate_shards(folder, 1, classes=("q", "g"), **kwargs)
    assert (
        run.made == []
        and run.reused == 2
        and _shard_bytes(folder) == {n: b for n, b in shards.items() if n[8] in "qg"}
    )
    run = generate_shards(folder, 1, classes=("Z",), **kwargs)
    z_name = next(n for n in shards if n[8] == "Z")
    assert run.made == [z_name] and run.reused == 2
    assert _shard_bytes(folder)[z_name] == shards[z_name]
    assert run.per_class == {"q": 1, "g": 1, "Z": 1}

    q_name = next(n for n in shards if n[8] == "q")
    run = generate_shards(folder, 2, classes=("q",), **kwargs)
    assert run.made == run.remade == [q_name] and run.reused == 2
    assert (folder / q_name).stat().st_ino != (source / q_name).stat().st_ino
    assert (source / q_name).read_bytes() == shards[q_name]  # the linked file is untouched
    merged = merge_shards(folder)
    assert merged.labels.tolist() == [0, 0, 1, 3] and merged.metadata["n_per_class"] == {
        "q": 2,
        "g": 1,
        "Z": 1,
    }
    first_q = merge_shards(source)
    np.testing.assert_array_equal(merged.features[0], first_q.features[0])  # same seed, jet
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["classes"] == ["q", "g", "Z"] and len(manifest["runs"]) == 3


@pytest.mark.datagen
def test_more_jets_per_class_add_the_missing_chunks_only(
    first_run, scheduler: str, tmp_path: Path
) -> None:
    from hepfpga.train.generate_shards import generate_shards, merge_shards

    folder = tmp_path / "top"
    kwargs = {"classes": ("t",), "chunk_jets": 1, "seed": SEED, "scheduler": scheduler}
    first = generate_shards(folder, 2, progress=False, **kwargs)
    before = _shard_bytes(folder)
    grown = generate_shards(folder, 3, progress=False, **kwargs)
    assert len(first.made) == 2 and first.reused == 0
    assert len(grown.made) == 1 and grown.reused == 2 and not grown.remade
    assert "-k00002-" in grown.made[0]
    after = _shard_bytes(folder)
    assert {n: after[n] for n in before} == before and len(after) == 3
    # chunk 0 of class t has the same Pythia seed whatever the chunk size: its first jet is
    # the first t jet of the all-class folder
    merged = merge_shards(folder)
    all_classes = merge_shards(first_run[0])
    np.testing.assert_array_equal(merged.constituents[0], all_classes.constituents[-1])
    with pytest.raises(DataError, match=r"holds 3 jets of class t.*--per-class 2"):
        generate_shards(folder, 2, progress=False, **kwargs)
    assert _shard_bytes(folder) == after


@pytest.mark.datagen
@pytest.mark.parametrize(
    ("linked", "kwargs", "needle"),
    [
        ("q", {"physics": "sm-diboson"}, "physics='heavy-resonance'"),
        ("q", {"n_constituents": 20}, "n_constituents=30"),
        ("qgW", {"classes": ("q", "g")}, "shard-c2W-k00000.*do not include"),
    ],
    ids=["physics", "constituents", "other-class"],
)
def test_linked_shards_of_other_settings_are_refused(
    first_run, tmp_path: Path, linked: str, kwargs: dict, needle: str
) -> None:
    from hepfpga.train.generate_shards import generate_shards

    folder = tmp_path / "linked"
    _link(first_run[0], folder, linked)
    before = _snapshot(folder)
    with pytest.raises(DataError, match=needle):
        generate_shards(folder, 1, **{"seed": SEED, "progress": False, **kwargs})
    assert _snapshot(folder) == before


@pytest.mark.datagen
def test_a_folder_of_the_first_manifest_format_is_resumed(first_run, tmp_path: Path) -> None:
    """Folders made before classes could vary (manifest version 1: ``n_per_class`` in the
    settings, all five classes) are read as they are."""
    from hepfpga.train.generate_shards import generate_shards, merge_shards

    source, _, shards = first_run
    folder = tmp_path / "v1"
    _link(source, folder, "qgWZt")
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["version"] = 1
    manifest["settings"]["n_per_class"] = manifest.pop("per_class")["q"]
    del manifest["classes"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    run = generate_shards(folder, 1, seed=SEED, progress=False)
    assert run.made == [] and run.reused == 5 and _shard_bytes(folder) == shards
    assert merge_shards(folder).metadata["n_per_class"] == 1


@pytest.mark.datagen
@pytest.mark.slow
def test_the_builtin_sample_is_reproduced_from_its_settings() -> None:
    """The first jets of the built-in W and Z chunks, made again with the recorded settings
    (physics ``sm-diboson``, seed 2026), equal the shipped file bit for bit."""
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from hepfpga.train.generate import (
        BUILTIN_PHYSICS,
        PHYSICS_SETTINGS,
        _pythia_seed,
        _run_chunk,
        _Task,
    )
    from hepfpga.train.io import load_builtin_sample

    builtin = load_builtin_sample()
    meta = builtin.metadata
    assert meta["pythia_settings_per_class"] == {
        k: list(v) for k, v in PHYSICS_SETTINGS[BUILTIN_PHYSICS].items()
    }
    n_constituents = builtin.constituents.shape[1]
    for class_index in (2, 3):  # W and Z: the classes the physics choice changes
        task = _Task(
            class_index=class_index,
            chunk_index=0,
            n_jets=3,
            pythia_seed=_pythia_seed(meta["seed"], class_index, 0),
            n_constituents=n_constituents,
            physics=BUILTIN_PHYSICS,
        )
        made = _run_chunk(task)
        first = np.flatnonzero(builtin.labels == class_index)[:3]
        np.testing.assert_array_equal(made.features, builtin.features[first])
        np.testing.assert_array_equal(made.constituents, builtin.constituents[first])
        np.testing.assert_array_equal(made.jet_mass, builtin.jet_mass[first])


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--out", "{tmp}/jets.txt"], ("--out", ".txt", "accepted", ".h5")),
        (["--out", "{tmp}/a", "--scheduler", "not an address"], ("--scheduler", "tcp://")),
        (["--out", "{tmp}/a", "--scheduler", "tcp://127.0.0.1:99999"], ("--scheduler",)),
        (
            ["--out", "{tmp}/a", "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"],
            ("--workers", "--scheduler"),
        ),
        (["--out", "{tmp}/a", "--physics", "graviton"], ("--physics", "heavy-resonance")),
        (["--out", "{tmp}/a", "--overwrite"], ("--overwrite", "folder")),
        (["--out", "{tmp}/a", "--per-class", "0"], ("--per-class", "x>=1")),
        (["--out", "{tmp}/plain"], ("plain", "not a folder")),
        (["--out", "{tmp}/a", "--classes", "q,x"], ("--classes", "'x'", "q, g, W, Z, t")),
        (["--out", "{tmp}/a", "--classes", "q,q"], ("--classes", "repeated")),
    ],
    ids=[
        "suffix",
        "scheduler-form",
        "scheduler-port",
        "workers-and-scheduler",
        "physics",
        "overwrite-folder",
        "per-class",
        "out-is-a-file",
        "classes-unknown",
        "classes-repeated",
    ],
)
def test_bad_generate_options_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needles: tuple
) -> None:
    pytest.importorskip("distributed")
    (tmp_path / "plain").write_text("a file, not a shard folder")
    before = _snapshot(tmp_path)
    code = main(["data", "generate", *(a.format(tmp=tmp_path) for a in argv), "--no-progress"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    assert code == 2
    assert _snapshot(tmp_path) == before


@pytest.mark.datagen
def test_bad_generate_option_on_a_folder_of_other_settings(
    first_run, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _, shards = first_run
    code = main(["data", "generate", "--out", str(folder), "--per-class", "1", "--seed", "9"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "seed=5" in err and "seed=9" in err, err
    assert {p.name: p.read_bytes() for p in folder.glob("shard-*.h5")} == shards
