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
  only on the settings, so a rerun (or a resumed run) gives bit-identical files. Its
  ``metadata`` holds the settings, the chunk and its Pythia seed, event counts and versions,
  and no timings;
* ``manifest.json``: the settings, the planned shards (file, class, chunk, Pythia seed, jets)
  and one entry per run (shards made and reused, wall time, jets per second in total and per
  worker). The settings of a folder are fixed by its first run: a rerun with other settings
  is refused.

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
from hepfpga.errors import DataError
from hepfpga.train.generate import (
    CHUNK_JETS,
    DEFAULT_PHYSICS,
    _run_chunk,
    _Task,
    check_arguments,
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
_FORMAT_VERSION = 1


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
    made: list[str] = field(default_factory=list)  # shard files written by this call
    reused: int = 0  # shards that were already there
    wall_seconds: float = 0.0
    jets_per_second: float | None = None  # jets made by this call / wall time
    # per worker address: jets it made / seconds its tasks ran (Pythia start-up included)
    jets_per_worker_second: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the terminal."""
        text = (
            f"{self.n_jets} jets in {self.n_shards} shards in {self.folder} "
            f"({len(self.made)} shards made, {self.reused} reused)"
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


def _settings(
    n_per_class: int, seed: int, n_constituents: int, physics: str, chunk_jets: int
) -> dict[str, Any]:
    settings = settings_metadata(seed, n_per_class, n_constituents, physics, chunk_jets)
    settings["source"] = "hepfpga.train.generate_shards"
    return settings


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable shard manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise DataError(f"{path}: not a hepfpga shard manifest (no 'format': {_FORMAT!r})")
    return manifest


def _check_same_settings(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """The settings the jets depend on must match the folder's; versions may differ."""
    for key in sorted(set(old) | set(new)):
        if key == "versions":
            continue
        if old.get(key) != new.get(key):
            raise DataError(
                f"{path.parent}: its shards were made with {key}={old.get(key)!r}, this run "
                f"asks for {key}={new.get(key)!r}; use another folder or the same settings"
            )


def generate_shards(
    folder: str | os.PathLike[str],
    n_per_class: int,
    *,
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

    ``workers``: processes of the LocalCluster (default one per CPU); not allowed with
    ``scheduler`` (the cluster has its own). ``chunk_jets`` other than :data:`CHUNK_JETS`
    gives other jets than ``generate_sample`` (the seeding is per chunk).
    """
    check_arguments(n_per_class, seed, n_constituents, physics, chunk_jets)
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
    tasks = plan_tasks(n_per_class, seed, n_constituents, physics, chunk_jets)
    settings = _settings(n_per_class, seed, n_constituents, physics, chunk_jets)
    manifest_path = folder / MANIFEST_NAME
    planned = [
        {
            "file": shard_name(t),
            "class": CLASS_NAMES[t.class_index],
            "chunk": t.chunk_index,
            "pythia_seed": t.pythia_seed,
            "n_jets": t.n_jets,
        }
        for t in tasks
    ]
    if manifest_path.exists():
        manifest = _read_manifest(manifest_path)
        _check_same_settings(manifest_path, manifest.get("settings", {}), settings)
    else:
        if folder.exists() and any(folder.glob("shard-*.h5")):
            raise DataError(f"{folder}: holds shards but no {MANIFEST_NAME}; use another folder")
        manifest = {"format": _FORMAT, "version": _FORMAT_VERSION, "settings": settings, "runs": []}
    manifest["shards"] = planned
    manifest["complete"] = False
    write_json_atomic(manifest_path, manifest)

    # chunk 0 of every class first, then chunk 1...: a run stopped early leaves every class
    # about equally far (the order of the tasks does not change any jet)
    missing = sorted(
        (t for t in tasks if not (folder / shard_name(t)).is_file()),
        key=lambda t: (t.chunk_index, t.class_index),
    )
    run = ShardRun(folder=folder, n_jets=n_per_class * len(CLASS_NAMES), n_shards=len(tasks))
    run.reused = len(tasks) - len(missing)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    if missing:
        # shards hold no timings, so the worker-side metadata is the settings only
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
            "shards_made": len(run.made),
            "shards_reused": run.reused,
            "wall_seconds": round(run.wall_seconds, 1),
            "jets_per_second": run.jets_per_second,
            "jets_per_worker_second": run.jets_per_worker_second,
            "scheduler": scheduler or "LocalCluster",
        }
    )
    manifest["complete"] = True
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
    metadata.update(
        {"n_events": n_events, "n_undefined_ratios": n_undefined, "n_groomed_le2": n_le2}
    )
    if manifest.get("runs"):
        metadata["runs"] = manifest["runs"]
    return concatenate_samples(parts, metadata)
