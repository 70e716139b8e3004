"""Jet generation at scale on dask: jets/s per worker, and kill -9 then resume, bit-identical.

    python benchmarks/scale.py [--per-class 100000] [--workers 2] [--seed 1]
                               [--physics heavy-resonance] [--kill-at 0.4] [--out DIR]

Three runs of ``hepfpga data generate --out FOLDER`` (each a fresh process with its own dask
LocalCluster of ``--workers`` processes), all with the same settings:

1. ``reference``: uninterrupted; its manifest gives the jets/s in total and per worker (jets a
   worker made / seconds its tasks ran, Pythia start-up included);
2. ``killed``: the whole process group (the command and its dask scheduler, nanny and worker
   processes) gets SIGKILL once ``--kill-at`` of the shards exist;
3. ``resumed``: the same command again on the killed run's folder.

It checks that the resumed run made only the shards the killed run had not finished, and that
every shard of the resumed folder is byte-for-byte the reference's. The default
``--per-class 100000`` is the 500k-jet sample (2,000 shards: hours on a 2-core machine; about
125 jets/s per worker on a quiet core). Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLASSES = 5


def command(folder: Path, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "hepfpga", "data", "generate", "--out", str(folder),
        "--per-class", str(args.per_class), "--seed", str(args.seed),
        "--physics", args.physics, "--workers", str(args.workers), "--no-progress",
    ]  # fmt: skip


def shards(folder: Path) -> dict[str, str]:
    """SHA-256 of every complete shard in ``folder``."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("shard-*.h5"))
    }


def run(folder: Path, args: argparse.Namespace) -> float:
    start = time.perf_counter()
    subprocess.run(command(folder, args), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_and_kill(folder: Path, args: argparse.Namespace, n_planned: int) -> tuple[float, int]:
    """Start the command in its own process group; SIGKILL the group once enough shards exist."""
    target = max(1, int(args.kill_at * n_planned))
    start = time.perf_counter()
    process = subprocess.Popen(
        command(folder, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    while process.poll() is None and len(list(folder.glob("shard-*.h5"))) < target:
        time.sleep(0.2)
    if process.poll() is not None:
        raise SystemExit("the run to be killed finished first; use a larger --per-class")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return time.perf_counter() - start, len(list(folder.glob("shard-*.h5")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--physics", default="heavy-resonance")
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction of the shards")
    parser.add_argument("--out", type=Path, help="folder for the three runs (default: a temp)")
    args = parser.parse_args(argv)
    from hepfpga.train.generate import CHUNK_JETS

    n_planned = CLASSES * -(-args.per_class // CHUNK_JETS)
    with tempfile.TemporaryDirectory(prefix="hepfpga-scale-") as tmp:
        base = args.out or Path(tmp)
        reference, resumed = base / "reference", base / "resumed"
        wall_reference = run(reference, args)
        manifest = json.loads((reference / "manifest.json").read_text())
        rates = manifest["runs"][-1]["jets_per_worker_second"]
        wall_killed, n_before = run_and_kill(resumed, args, n_planned)
        wall_resumed = run(resumed, args)
        last = json.loads((resumed / "manifest.json").read_text())["runs"][-1]
        same = shards(reference) == shards(resumed)
        n_jets = CLASSES * args.per_class

        print(f"{n_jets} jets, {n_planned} shards of up to {CHUNK_JETS} jets, "
              f"{args.workers} workers, physics {args.physics}")  # fmt: skip
        print(f"{'run':<10} {'wall s':>8} {'shards made':>12} {'jets/s':>8}")
        print(f"{'reference':<10} {wall_reference:8.1f} {n_planned:12d} "
              f"{n_jets / wall_reference:8.1f}")  # fmt: skip
        print(f"{'killed':<10} {wall_killed:8.1f} {n_before:12d} {'-':>8}")
        print(f"{'resumed':<10} {wall_resumed:8.1f} {last['shards_made']:12d} "
              f"{last['jets_per_second'] or 0:8.1f}")  # fmt: skip
        print("jets/s per worker (reference run, Pythia start-up included): "
              + ", ".join(f"{rate:.1f}" for rate in rates.values()))  # fmt: skip
        print(f"killed + resumed / reference wall time: "
              f"{(wall_killed + wall_resumed) / wall_reference:.2f}")  # fmt: skip
        checks = {
            "the resumed run made only the missing shards": last["shards_made"]
            == n_planned - n_before,
            "every shard bit-identical to the uninterrupted run's": same,
        }
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}: {name}")
        return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
