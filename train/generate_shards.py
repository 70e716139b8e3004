"""Jet generation on dask: one HDF5 shard per chunk, resumable and bit-reproducible.

:func:`generate_shards` plans the chunks of :func:`hepfpga.train.generate.generate_sample`
(same seeding, same jets, same order) and runs every chunk whose shard is missing as a dask
task, on a LocalCluster (default) or on the scheduler at ``scheduler`` (whose workers must see
the output folder). Each task writes its own shard atomically (a ``.partial`` twin renamed
into place), so a shard is either whole or absent: a run stopped at any point (Ctrl-C,
``kill -9``, a lost worker) is finished by running the same command again, which makes the
missing shards only.

The folder holds

* ``shard-c<class index><class>-k<chunk:05d>-s<Pythia seed:09d>.h5``: the jets of one chunk
  in hepfpga's own HDF5 layout (:func:`hepfpga.train.io.save_sample`, every jet of one
  class); the names sort in the sample's order (class, then chunk). A shard's bytes depend
  only on the settings and its own jet count, so a rerun (or a resumed run) gives
  bit-identical files, and the shard of a chunk is the same file in a folder of all five
  classes and in one of some classes (``classes``) or of more jets per class: shards can be
  hard-linked between folders of one seed. Its ``metadata`` holds the settings (not the
  folder's classes nor its jets per class), the chunk and its Pythia seed, event counts and
  versions, and no timings;
* ``manifest.json`` (format version 2): the settings, ``classes`` and ``per_class`` (jets of
  each class in the folder), the planned shards (file, class, chunk, Pythia seed, jets) and
  one entry per run (classes and jets asked for, shards made and reused, wall time, jets per
  second in total and per worker). Version 1 manifests (``n_per_class`` in the settings, all
  five classes) are read as such.

The settings of a folder (seed, physics, constituents, chunk size, Pythia settings) are fixed
by its first run: a rerun with other settings is refused. The jets per class only grow: a run
may name new classes, or more jets of a class (its missing chunks are made; its last chunk,
if it was short, is made again with more jets), and the classes it does not name keep theirs;
asking for fewer jets of a class than the folder holds is refused. Shards put in the folder by
hand (hard links from another folder) are opened and checked against the settings, their
class, chunk and Pythia seed before they are reused; a shard that none of the folder's
classes and jets include is refused.

:func:`merge_shards` reads the shards back as one sample, equal to ``generate_sample``'s.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from hepfpga._optional import require
from hepfpga.artifacts import dumps_strict, write_json_atomic
from hepfpga.cluster import dask_client
from hepfpga.datafiles import open_hdf5
from hepfpga.errors import DataError
from hepfpga.train.generate import (
    CHUNK_JETS,
    DEFAULT_PHYSICS,
    _run_chunk,
    _Task,
    check_arguments,
    check_classes,
    chunk_sample,
    concatenate_samples,
    plan_tasks,
    settings_metadata,
)
from hepfpga.train.io import load_sample, save_sample
from hepfpga.train.jets import CLASS_NAMES, N_CONSTITUENTS, JetSample

__all__ = ["MANIFEST_NAME", "ShardRun", "generate_shards", "merge_shards", "shard_name"]

MANIFEST_NAME = "manifest.json"
_FORMAT = "hepfpga jet shards"
_FORMAT_VERSION = 2  # 2: classes and jets per class may vary


def shard_name(task: _Task) -> str:
    """The file name of ``task``'s shard (sorts in the sample's order)."""
    name = CLASS_NAMES[task.class_index]
    return f"shard-c{task.class_index}{name}-k{task.chunk_index:05d}-s{task.pythia_seed:09d}.h5"


@dataclass
class ShardRun:
    """What one :func:`generate_shards` call did."""

    folder: Path
    n_jets: int  # in the whole folder
    n_shards: int
    per_class: dict[str, int] = field(default_factory=dict)  # jets per class in the folder
    made: list[str] = field(default_factory=list)  # shard files written by this call
    remade: list[str] = field(default_factory=list)  # of them: last chunks grown
    reused: int = 0  # shards that were already there
    wall_seconds: float = 0.0
    jets_per_second: float | None = None  # jets made by this call / wall time
    # per worker address: jets it made / seconds its tasks ran (Pythia start-up included)
    jets_per_worker_second: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the terminal."""
        grown = f", {len(self.remade)} of them grown" if self.remade else ""
        text = (
            f"{self.n_jets} jets ({_per_class_text(self.per_class)}) in {self.n_shards} shards "
            f"in {self.folder} ({len(self.made)} shards made{grown}, {self.reused} reused)"
        )
        if self.jets_per_second is not None:
            rates = ", ".join(f"{rate:.1f}" for rate in self.jets_per_worker_second.values())
            text += (
                f"; {self.jets_per_second:.1f} jets/s in total, per worker: {rates} jets/s "
                f"({len(self.jets_per_worker_second)} workers)"
            )
        return text


def _make_shard(task: _Task, path: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """Run on a dask worker: generate ``task``'s jets and write them to ``path`` atomically."""
    result = _run_chunk(task)
    sample = chunk_sample(task, result)
    sample.metadata = {
        **metadata,
        "class": CLASS_NAMES[task.class_index],
        "chunk": task.chunk_index,
        "pythia_seed": task.pythia_seed,
        "n_events": result.n_events,
        "n_undefined_ratios": result.n_undefined,
        "n_groomed_le2": result.n_groomed_le2,
    }
    save_sample(sample, path)
    try:
        # deferred, optional: distributed (hepfpga[datagen]); on a worker it is imported
        from distributed import get_worker

        worker = str(get_worker().address)
    except (ImportError, ValueError):
        worker = f"pid {os.getpid()}"
    return {
        "file": Path(path).name,
        "n_jets": len(sample),
        "seconds": result.seconds,
        "worker": worker,
    }


def _settings(seed: int, n_constituents: int, physics: str, chunk_jets: int) -> dict[str, Any]:
    """What the jets of every shard depend on: the settings without the jet counts (a shard
    is the same file whatever the folder's classes and jets per class)."""
    settings = settings_metadata(seed, 1, n_constituents, physics, chunk_jets)
    del settings["n_per_class"]
    settings["source"] = "hepfpga.train.generate_shards"
    return settings


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path``, with ``settings`` (no jet counts) and ``per_class`` (jets
    per class in the folder); a manifest of format version 1 (one ``n_per_class`` for all five
    classes, inside ``settings``) is read as such."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable shard manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise DataError(f"{path}: not a hepfpga shard manifest (no 'format': {_FORMAT!r})")
    settings = manifest.setdefault("settings", {})
    if "per_class" not in manifest:  # version 1: every class, n_per_class of each
        n_per_class = settings.pop("n_per_class", None)
        if not isinstance(n_per_class, int):
            raise DataError(f"{path}: no 'per_class' and no settings.n_per_class; not readable")
        manifest["per_class"] = dict.fromkeys(CLASS_NAMES, n_per_class)
    per_class = manifest["per_class"]
    if not isinstance(per_class, dict) or any(
        c not in CLASS_NAMES or not isinstance(n, int) or n < 1 for c, n in per_class.items()
    ):
        raise DataError(
            f"{path}: 'per_class' is {per_class!r}; expected jets (>= 1) per class among "
            f"{', '.join(CLASS_NAMES)}"
        )
    return manifest


def _per_class_text(per_class: dict[str, int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in per_class.items())


def _check_same_settings(where: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """The settings the jets depend on must match the folder's (or a shard's); versions and
    the jet counts may differ."""
    for key in sorted(set(old) | set(new)):
        if key in ("versions", "source", "n_per_class"):
            continue
        if old.get(key) != new.get(key):
            raise DataError(
                f"{where}: made with {key}={old.get(key)!r}, this run asks for "
                f"{key}={new.get(key)!r}; use another folder or the same settings"
            )


def _check_growth(path: Path, old: dict[str, int], classes: tuple[str, ...], n: int) -> None:
    """A folder only grows: this run may add classes and jets, never ask for fewer."""
    for name in classes:
        if name in old and old[name] > n:
            raise DataError(
                f"{path.parent}: holds {old[name]} jets of class {name}, this run asks for "
                f"--per-class {n}; a shard folder only grows: ask for {old[name]} or more, or "
                "use another folder (shards can be hard-linked between folders of one seed)"
            )


def _shard_info(path: Path) -> tuple[int, dict[str, Any]]:
    """The number of jets and the metadata of the shard at ``path`` (nothing else is read)."""
    with open_hdf5(path) as h5:
        labels = h5.get("labels")
        raw = h5.attrs.get("metadata", "")
        if labels is None or len(labels.shape) != 1:
            raise DataError(f"{path}: not a hepfpga jet shard (no 1-d 'labels' dataset)")
        n_jets = int(labels.shape[0])
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    try:
        metadata = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: attribute 'metadata' is not valid JSON ({exc})") from exc
    return n_jets, metadata if isinstance(metadata, dict) else {}


def _check_shard(
    path: Path, metadata: dict[str, Any], settings: dict[str, Any], task: _Task
) -> None:
    """A shard this folder's manifest does not vouch for (put there by hand, e.g. hard-linked
    from another folder) must be the chunk its name says, made with this run's settings."""
    _check_same_settings(path, {k: metadata.get(k) for k in settings}, settings)
    expected = {
        "class": CLASS_NAMES[task.class_index],
        "chunk": task.chunk_index,
        "pythia_seed": task.pythia_seed,
    }
    for key, value in expected.items():
        if metadata.get(key) != value:
            raise DataError(
                f"{path}: holds {key}={metadata.get(key)!r}, its name says {key}={value!r}; "
                "remove it (a shard is only reused under its own name)"
            )


def generate_shards(
    folder: str | os.PathLike[str],
    n_per_class: int,
    *,
    classes: tuple[str, ...] | list[str] | None = None,
    seed: int = 1,
    n_constituents: int = N_CONSTITUENTS,
    physics: str = DEFAULT_PHYSICS,
    chunk_jets: int = CHUNK_JETS,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ShardRun:
    """Generate the jets of ``generate_sample(n_per_class, seed=..., ...)`` as shards in
    ``folder`` on dask (see the module docstring); shards already there are kept.

    ``classes`` (names of :data:`CLASS_NAMES`, default all five): make the shards of those
    classes only; each is the same file as in a folder of all classes with the same settings.
    A folder grows: a run may add classes or ask for more jets per class than the folder
    holds (its missing chunks are made, the last chunk of a class made again with more
    jets); the classes it does not name keep their jets; asking for fewer jets is refused.
    ``workers``: processes of the LocalCluster (default one per CPU); not allowed with
    ``scheduler`` (the cluster has its own). ``chunk_jets`` other than :data:`CHUNK_JETS`
    gives other jets than ``generate_sample`` (the seeding is per chunk).
    """
    check_arguments(n_per_class, seed, n_constituents, physics, chunk_jets)
    wanted = check_classes(classes)
    if workers is not None and scheduler is not None:
        raise DataError("--workers: the workers of --scheduler's cluster are its own; give one")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise DataError(f"expected a positive integer or None. Received: workers={workers!r}")
    require("pythia8mc", "datagen", "Generating jets")
    require("fastjet", "datagen", "Clustering jets")
    require("distributed", "datagen", "Generating jets on dask")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: exists and is not a folder; shards go into a folder")
    settings = _settings(seed, n_constituents, physics, chunk_jets)
    manifest_path = folder / MANIFEST_NAME
    if manifest_path.exists():
        manifest = _read_manifest(manifest_path)
        _check_same_settings(manifest_path.parent, manifest["settings"], settings)
        _check_growth(manifest_path, manifest["per_class"], wanted, n_per_class)
        # the shards this folder made, with their jets: reused without being opened
        vouched = {e["file"]: e["n_jets"] for e in manifest.get("shards", [])}
    else:
        manifest = {"format": _FORMAT, "version": _FORMAT_VERSION, "settings": settings, "runs": []}
        manifest["per_class"] = {}
        vouched = {}
    per_class = {
        name: n_per_class if name in wanted else manifest["per_class"][name]
        for name in CLASS_NAMES
        if name in wanted or name in manifest["per_class"]
    }
    tasks = [
        task
        for name, n in per_class.items()
        for task in plan_tasks(n, seed, n_constituents, physics, chunk_jets, (name,))
    ]
    by_name = {shard_name(t): t for t in tasks}
    present = {p.name for p in folder.glob("shard-*.h5")} if folder.is_dir() else set()
    foreign = sorted(present - set(by_name))
    if foreign:
        raise DataError(
            f"{folder / foreign[0]}: a shard that this folder's jets ({_per_class_text(per_class)}"
            f" per class, seed {seed}) do not include ({len(foreign)} such); remove them or ask "
            "for their classes and jets"
        )
    remake: set[str] = set()
    for name in sorted(present):
        task = by_name[name]
        if vouched.get(name) == task.n_jets:
            continue
        n_jets, metadata = _shard_info(folder / name)
        _check_shard(folder / name, metadata, settings, task)
        if n_jets != task.n_jets:  # the last chunk of a class, made for fewer jets
            remake.add(name)
    manifest["version"] = _FORMAT_VERSION
    manifest["classes"] = list(per_class)
    manifest["per_class"] = per_class
    manifest["shards"] = [
        {
            "file": shard_name(t),
            "class": CLASS_NAMES[t.class_index],
            "chunk": t.chunk_index,
            "pythia_seed": t.pythia_seed,
            "n_jets": t.n_jets,
        }
        for t in tasks
    ]
    manifest["complete"] = False
    write_json_atomic(manifest_path, manifest)

    # chunk 0 of every class first, then chunk 1...: a run stopped early leaves every class
    # about equally far (the order of the tasks does not change any jet)
    missing = sorted(
        (t for t in tasks if shard_name(t) not in present or shard_name(t) in remake),
        key=lambda t: (t.chunk_index, t.class_index),
    )
    run = ShardRun(
        folder=folder, n_jets=sum(per_class.values()), n_shards=len(tasks), per_class=per_class
    )
    run.reused = len(tasks) - len(missing)
    run.remade = sorted(remake)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    if missing:
        # shards hold no timings nor jet counts, so the worker-side metadata is the settings
        shard_metadata = json.loads(dumps_strict(settings))
        per_worker: dict[str, list[float]] = {}
        total = sum(t.n_jets for t in missing)
        with (
            dask_client(
                scheduler,
                workers if workers is not None else min(os.cpu_count() or 1, len(missing)),
                extra="datagen",
                purpose="Generating jets on dask",
            ) as client,
            tqdm(total=total, unit="jet", desc="jets", disable=not progress) as bar,
        ):
            # deferred, optional: distributed (hepfpga[datagen])
            from distributed import as_completed

            futures = [
                client.submit(
                    _make_shard,
                    task,
                    str((folder / shard_name(task)).resolve()),
                    shard_metadata,
                    key=f"hepfpga-shard-{shard_name(task)}-{os.getpid()}",
                    pure=False,
                )
                for task in missing
            ]
            try:
                for future in as_completed(futures, loop=client.loop):
                    done = future.result()
                    run.made.append(done["file"])
                    jets_seconds = per_worker.setdefault(done["worker"], [0.0, 0.0])
                    jets_seconds[0] += done["n_jets"]
                    jets_seconds[1] += done["seconds"]
                    bar.update(done["n_jets"])
                    elapsed = time.perf_counter() - start
                    bar.set_postfix_str(f"{bar.n / elapsed:.1f} jets/s, {len(per_worker)} workers")
            except BaseException:
                client.cancel(futures)
                raise
        run.wall_seconds = time.perf_counter() - start
        run.jets_per_second = round(total / run.wall_seconds, 1)
        run.jets_per_worker_second = {
            worker: round(jets / seconds, 1) if seconds else 0.0
            for worker, (jets, seconds) in sorted(per_worker.items())
        }
    manifest["runs"].append(
        {
            "started": started,
            "classes": list(wanted),
            "n_per_class": n_per_class,
            "shards_made": len(run.made),
            "shards_reused": run.reused,
            "wall_seconds": round(run.wall_seconds, 1),
            "jets_per_second": run.jets_per_second,
            "jets_per_worker_second": run.jets_per_worker_second,
            "scheduler": scheduler or "LocalCluster",
        }
    )
    manifest["complete"] = all((folder / shard_name(t)).is_file() for t in tasks)
    write_json_atomic(manifest_path, manifest)
    return run


def merge_shards(folder: str | os.PathLike[str]) -> JetSample:
    """The jets of a complete shard folder as one sample, in the planned order (equal to
    :func:`~hepfpga.train.generate.generate_sample`'s with the same settings)."""
    folder = Path(folder)
    manifest = _read_manifest(folder / MANIFEST_NAME)
    parts: list[JetSample] = []
    n_events = dict.fromkeys(CLASS_NAMES, 0)
    n_undefined = n_le2 = 0
    for entry in manifest["shards"]:
        path = folder / entry["file"]
        if not path.is_file():
            raise DataError(f"{path}: missing; run the same generate command again to make it")
        part = load_sample(path)
        parts.append(part)
        n_events[entry["class"]] += int(part.metadata.get("n_events", 0))
        n_undefined += int(part.metadata.get("n_undefined_ratios", 0))
        n_le2 += int(part.metadata.get("n_groomed_le2", 0))
    metadata = dict(manifest["settings"])
    per_class = manifest["per_class"]
    counts = set(per_class.values())
    metadata.update(
        {
            "classes": list(per_class),
            "n_per_class": counts.pop() if len(counts) == 1 else dict(per_class),
            "n_events": {name: n_events[name] for name in per_class},
            "n_undefined_ratios": n_undefined,
            "n_groomed_le2": n_le2,
        }
    )
    if manifest.get("runs"):
        metadata["runs"] = manifest["runs"]
    return concatenate_samples(parts, metadata)
