"""Peak memory and time of streamed training (HDF5 shards through ``tf.data``) against
in-memory training, on the same sample in one run.

    nice -n 10 python benchmarks/streaming.py --work /work/wt/data/stream-bench \\
        [--data FOLDER_OR_GLOB] [--jets 100000 300000] [--shards 10] \\
        [--architectures mlp cnn] [--epochs 2]

``--data``: a sample of HDF5 shards (``hepfpga data generate`` output, the hls4ml LHC jet
files, JetNet...). Without it, for each of the ``--jets`` sizes, that many jets are drawn
(with replacement, seeded) from the built-in sample and written as ``--shards`` hepfpga shards
under ``--work/<n>-jets`` (kept for reruns): repeated jets, so the accuracies say nothing about
physics, but memory and time do not depend on which jets they are. With two sizes or more,
the last line per architecture is the growth of the peak RSS per 100k jets of each mode: the
in-memory path grows with the sample, the streamed one should not.

For each architecture (its own representation: ``mlp`` the 16 scaled features, ``cnn`` 16x16
jet images, ...), three child processes, so each peak RSS (``getrusage``'s ``ru_maxrss``) is
its own:

* ``baseline``: TensorFlow, the model and a fit on 512 random inputs: what any fit costs;
* ``memory``: :func:`~hepfpga.train.io.load_sample` of the whole sample, the stratified split,
  the representation's arrays, :func:`~hepfpga.train.fit.fit_classifier`;
* ``stream``: :class:`~hepfpga.train.stream.ShardedSample`, the same split from the labels,
  the scaler on a streamed pass, :func:`~hepfpga.train.stream.fit_streamed` (shuffled), the
  shard files kept open across reads and epochs (``open_files``, the default);
* ``reopen`` (with ``--reopen``): the same with ``open_files=0``, every read opening and
  checking its shard again (what streaming did before files were held): the time per epoch
  of ``stream`` against ``reopen`` is what holding the files saves.

``--read-rounds N`` measures the read path alone instead (no fit): N rounds of a process
reading two streamed epochs with every read reopening its shard, then one with the files held
(:func:`read_epochs`), alternated so that both see the same machine load.

It prints, per architecture and mode: peak RSS, peak RSS above the baseline, the time of the
fit per epoch, the test accuracy, and the ratios stream / memory from the same run. The
streamed peak depends on glibc's per-thread malloc arenas (TensorFlow's threads): run with
``MALLOC_ARENA_MAX=2`` to see less of them (measured: 7 instead of 15 MiB per 100k jets
between 300k and 600k jets, MLP).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

FRACTIONS = (0.6, 0.2, 0.2)
SEED = 0


def write_shards(folder: Path, n_jets: int, n_shards: int) -> Path:
    """``n_jets`` jets drawn from the built-in sample into ``n_shards`` hepfpga shards."""
    from hepfpga.train.io import load_builtin_sample, save_sample

    if folder.is_dir() and len(list(folder.glob("shard-*.h5"))) == n_shards:
        return folder
    builtin = load_builtin_sample()
    rng = np.random.default_rng(SEED)
    bounds = np.linspace(0, n_jets, n_shards + 1).astype(int)
    for i, (low, high) in enumerate(itertools.pairwise(bounds)):
        shard = builtin.subset(np.sort(rng.integers(0, len(builtin), size=high - low)))
        shard.metadata = {"source": f"benchmark shard {i} drawn from the built-in sample"}
        save_sample(shard, folder / f"shard-{i:04d}.h5")
    return folder


def child(mode: str, architecture: str, data: str, epochs: int, batch_size: int) -> dict[str, Any]:
    """One measurement in this process (see the module docstring)."""
    import hepfpga.train.architectures  # noqa: F401  (registers the model sections)
    from hepfpga.train.config import (
        MODEL_SECTIONS,
        DataConfig,
        EarlyStoppingConfig,
        TrainingConfig,
    )
    from hepfpga.train.fit import fit_classifier, peak_rss_mb
    from hepfpga.train.models import build_model

    section = MODEL_SECTIONS[architecture]()
    representation = section.input_representation(DataConfig())
    settings = TrainingConfig(
        batch_size=batch_size, epochs=epochs, early_stopping=EarlyStoppingConfig(patience=epochs)
    )
    start = time.perf_counter()
    if mode == "memory":
        from hepfpga.train.dataset import split_sample
        from hepfpga.train.io import load_sample

        split = split_sample(load_sample(data), FRACTIONS, SEED)
        inputs = representation.prepare(split)
        shape, n_train = inputs.input_shape, len(split.train)
        model = build_model(shape, 5, section, seed=SEED)
        fit = fit_classifier(
            model, inputs.train, split.train.labels, inputs.validation,
            split.validation.labels, settings, seed=SEED, progress=False,
        )  # fmt: skip
        accuracy = model.evaluate(inputs.test, split.test.labels, batch_size=4096, verbose=0)[1]
    elif mode in ("stream", "reopen"):
        from hepfpga.train.stream import ShardedSample, fit_streamed, split_stream, stream_inputs

        sample = ShardedSample.open(data)
        parts = split_stream(sample, FRACTIONS, SEED)
        streamed = stream_inputs(
            sample, parts, representation, batch_size=batch_size, seed=SEED,
            **({"open_files": 0} if mode == "reopen" else {}),
        )  # fmt: skip
        shape, n_train = streamed.input_shape, len(parts.train)
        model = build_model(shape, 5, section, seed=SEED)
        fit = fit_streamed(model, streamed, settings, seed=SEED, progress=False)
        accuracy = model.evaluate(streamed.dataset("test"), verbose=0)[1]
    else:  # baseline
        from hepfpga.train.stream import ShardedSample, split_stream, stream_inputs

        sample = ShardedSample.open(data)
        parts = split_stream(sample, FRACTIONS, SEED, max_jets=1000)
        shape = stream_inputs(
            sample, parts, representation, batch_size=batch_size, seed=SEED
        ).input_shape
        rng = np.random.default_rng(SEED)
        x = rng.normal(size=(512, *shape)).astype(np.float32)
        y = rng.integers(0, 5, size=512)
        model = build_model(shape, 5, section, seed=SEED)
        fit = fit_classifier(model, x, y, x, y, settings, seed=SEED, progress=False)
        accuracy, n_train = float("nan"), 512
    return {
        "peak_rss_mb": peak_rss_mb(),
        "seconds_per_epoch": fit.seconds / fit.epochs_run,
        "total_seconds": time.perf_counter() - start,
        "test_accuracy": float(accuracy),
        "n_train": n_train,
        "input_shape": list(shape),
    }


def read_epochs(mode: str, architecture: str, data: str, batch_size: int) -> dict[str, Any]:
    """The read path alone (no fit), in this process: two epochs of training and validation
    buffers (what ``fit_streamed`` draws), with every read reopening its shard (``reopen``:
    ``open_files=0``) or with the files held across the epochs as ``fit_streamed`` holds
    them (``held``). Held files are process-wide (any active hold serves every read), so each
    mode runs in its own process."""
    import hepfpga.train.architectures  # noqa: F401  (registers the model sections)
    from hepfpga.datafiles import hold_hdf5_files
    from hepfpga.train.config import MODEL_SECTIONS, DataConfig
    from hepfpga.train.fit import peak_rss_mb
    from hepfpga.train.stream import ShardedSample, split_stream, stream_inputs

    representation = MODEL_SECTIONS[architecture]().input_representation(DataConfig())
    sample = ShardedSample.open(data)
    parts = split_stream(sample, FRACTIONS, SEED)
    inputs = stream_inputs(sample, parts, representation, batch_size=batch_size, seed=SEED)
    if mode == "reopen":
        inputs = dataclasses.replace(inputs, open_files=0)
    times = []
    with hold_hdf5_files(inputs.open_files):
        for n in range(2):
            start = time.perf_counter()
            for part, shuffle in (("train", True), ("validation", False)):
                for _ in inputs.buffers(part, shuffle=shuffle, epoch=n):
                    pass
            times.append(time.perf_counter() - start)
    return {"seconds": times, "peak_rss_mb": peak_rss_mb(), "n_shards": len(sample.shards)}


def read_rounds(data: str, architecture: str, rounds: int, batch_size: int) -> None:
    """``rounds`` times a ``reopen`` then a ``held`` process of :func:`read_epochs`,
    alternated so both see the same machine load; prints the median of each mode's second
    epoch (the held one reads every shard from an open file)."""
    results: dict[str, list[dict[str, Any]]] = {"reopen": [], "held": []}
    for _ in range(rounds):
        for mode in results:
            command = [sys.executable, __file__, "--read-child", mode, architecture, data,
                       str(batch_size)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                raise SystemExit(f"error: the {mode} read run failed:\n{done.stderr[-3000:]}")
            results[mode].append(json.loads(lines[-1]))
    second = {m: [r["seconds"][1] for r in rs] for m, rs in results.items()}
    median = {m: float(np.median(v)) for m, v in second.items()}
    rss = {m: max(r["peak_rss_mb"] for r in rs) for m, rs in results.items()}
    print(
        f"{architecture}: {results['held'][0]['n_shards']} shards, {rounds} rounds; read path, "
        f"s/epoch of the second epoch (median): reopen {median['reopen']:.2f}, held "
        f"{median['held']:.2f}, reopen/held {median['reopen'] / median['held']:.2f}; all: "
        + ", ".join(f"{m} {[round(x, 2) for x in v]}" for m, v in second.items())
        + f"; peak RSS MiB: reopen {rss['reopen']:.0f}, held {rss['held']:.0f}",
        flush=True,
    )


def measure(
    mode: str, architecture: str, data: str, epochs: int, batch_size: int
) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--child", mode, architecture, data, str(epochs), str(batch_size)
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"error: the {mode} run of {architecture} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--read-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--data", help="a folder or glob of HDF5 shards")
    parser.add_argument("--work", type=Path, help="where drawn shards are written (no --data)")
    parser.add_argument("--jets", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--architectures", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--reopen", action="store_true", help="also stream with every read reopening its shard"
    )
    parser.add_argument(
        "--read-rounds",
        type=int,
        default=0,
        help="instead of fits: this many rounds of the read path alone, reopen / held, "
        "interleaved in one process (see read_epochs)",
    )
    args = parser.parse_args(argv)
    if args.read_child:
        mode, architecture, data, batch_size = args.read_child
        print(json.dumps(read_epochs(mode, architecture, data, int(batch_size))))
        return 0
    if args.read_rounds:
        if args.data is None:
            parser.error("--read-rounds needs --data")
        for architecture in args.architectures:
            read_rounds(args.data, architecture, args.read_rounds, args.batch_size)
        return 0
    if args.child:
        mode, architecture, data, epochs, batch_size = args.child
        print(json.dumps(child(mode, architecture, data, int(epochs), int(batch_size))))
        return 0
    if args.data is not None:
        samples = {0: args.data}
    elif args.work is None:
        parser.error("give --data (a sample of shards) or --work (where to draw samples)")
    else:
        samples = {n: str(write_shards(args.work / f"{n}-jets", n, args.shards)) for n in args.jets}
    print(f"epochs {args.epochs}, batch size {args.batch_size}; samples: {samples}")
    header = f"{'architecture':<12} {'jets':>8} {'mode':<9} {'peak RSS MiB':>12} "
    header += f"{'above base':>10} {'s/epoch':>8} {'test acc':>8} {'train jets':>10}"
    print(header, flush=True)
    for architecture in args.architectures:
        above: dict[str, list[tuple[int, float]]] = {"memory": [], "stream": []}
        for n, data in samples.items():
            results = {
                mode: measure(mode, architecture, data, args.epochs, args.batch_size)
                for mode in ("baseline", "memory", "stream", *(["reopen"] if args.reopen else []))
            }
            base = results["baseline"]["peak_rss_mb"]
            for mode, r in results.items():
                print(
                    f"{architecture:<12} {n:8d} {mode:<9} {r['peak_rss_mb']:12.0f} "
                    f"{r['peak_rss_mb'] - base:10.0f} {r['seconds_per_epoch']:8.1f} "
                    f"{r['test_accuracy']:8.3f} {r['n_train']:10d}",
                    flush=True,
                )
            memory, stream = results["memory"], results["stream"]
            for mode in above:
                above[mode].append((n, results[mode]["peak_rss_mb"] - base))
            rss = stream["peak_rss_mb"] / memory["peak_rss_mb"]
            epoch = stream["seconds_per_epoch"] / memory["seconds_per_epoch"]
            print(
                f"{architecture:<12} {n:8d} stream/memory: peak RSS {rss:.2f}, "
                f"time per epoch {epoch:.2f}",
                flush=True,
            )
            if args.reopen:
                reopen = results["reopen"]["seconds_per_epoch"] / memory["seconds_per_epoch"]
                print(
                    f"{architecture:<12} {n:8d} time per epoch over memory: stream (files "
                    f"held) {epoch:.2f}, reopen (every read opens its shard) {reopen:.2f}",
                    flush=True,
                )
        if len(samples) > 1:
            (n0, m0), (n1, m1) = above["memory"][0], above["memory"][-1]
            (_, s0), (_, s1) = above["stream"][0], above["stream"][-1]
            per = 100_000 / (n1 - n0)
            print(
                f"{architecture:<12} growth of the peak RSS per 100k jets ({n0} -> {n1}): "
                f"memory {(m1 - m0) * per:.0f} MiB, stream {(s1 - s0) * per:.0f} MiB",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
