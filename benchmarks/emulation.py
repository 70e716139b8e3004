"""Throughput of hls4ml ``predict()`` against ``hepfpga emulate``, and exactness, in one run.

    python benchmarks/emulation.py [--events 2000000] [--csim-events 20000] [--workers 2]

For the jet MLP of the pipeline (input ``quantized_bits(16,5)``, QDense 64-32-32-5 with
``quantized_bits(6,0,alpha=1)`` weights, ``quantized_relu(6)``, softmax; seeded random
weights: speed and exactness do not depend on training), a small CNN (Conv2D 4x3x3 'same',
``quantized_relu(6)``, 2x2 max pooling, dense, softmax), the latter also as ``io_stream``
firmware (hls4ml inserts a ZeroPadding2D before the 'same' convolution and streams line
buffers), and the jet LSTM (QLSTM(16) over 20 constituents, gate tables of 4096 entries;
``predict()`` on a tenth of ``--csim-events``), it converts and compiles the firmware, then
measures on this machine (the last lines say which engine ran: ``fixed-point``, or ``csim``
when the emulator fell back to the C simulation):

* hls4ml ``ModelGraph.predict()`` (the C simulation, one event per call) on ``--csim-events``;
* :meth:`Emulator.predict <hepfpga.firmware.emulate.Emulator.predict>` in memory (numpy in
  this process, one BLAS thread) on ``--events``;
* :func:`~hepfpga.firmware.emulate.emulate_file` (npz in, npz out, a dask LocalCluster of
  ``--workers`` threads, its default): streaming (chunks read, emulated and written) and the
  whole call (with the proof, the cluster's start and stop and the output file's assembly);
* the exactness check: the fraction of the ``--csim-events`` events whose outputs from the
  emulator equal hls4ml ``predict()``'s bit for bit.

Ratios are against hls4ml ``predict()`` measured in the same run; both in-process timings are
the best of three runs (other processes on a shared machine slow single runs down).
Environment variables that change BLAS threading (``OPENBLAS_CORETYPE``,
``OMP_NUM_THREADS``...) are printed and used as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

#: timings are the best of this many runs (the machine may be shared)
REPEATS = 3
RECURRENT = ("LSTM", "GRU", "QLSTM", "QGRU")
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def jet_mlp() -> Any:
    """The pipeline's QKeras jet tagger, with seeded random weights."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    x = keras.Input((16,), name="features")
    h = QActivation(quantized_bits(16, 5, alpha=1), name="input_quant")(x)
    for i, n in enumerate((64, 32, 32), 1):
        h = QDense(
            n,
            kernel_quantizer=quantized_bits(6, 0, alpha=1),
            bias_quantizer=quantized_bits(6, 0, alpha=1),
            bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=i),
            name=f"dense_{i}",
        )(h)
        h = QActivation(quantized_relu(6), name=f"relu_{i}")(h)
    h = QDense(
        5,
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="logits",
    )(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h), name="jet_mlp")


def cnn() -> Any:
    """A small QKeras CNN on 8x8x2 images."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(1)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((8, 8, 2), name="image")
    h = QActivation(quantized_bits(10, 3, alpha=1), name="input_quant")(x)
    h = QConv2D(4, (3, 3), padding="same", kernel_quantizer=q, bias_quantizer=q, name="conv")(h)
    h = QActivation(quantized_relu(6), name="conv_relu")(h)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(5, kernel_quantizer=q, bias_quantizer=q, name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h), name="cnn")


def jet_lstm() -> Any:
    """The jet LSTM of ``examples/jet_lstm.yaml``: QLSTM(16) over 20 constituents x 3 inputs
    (``quantized_bits(12,3)``), 8-bit weights, QDense(16) + ``quantized_relu(8,2)``, logits,
    softmax; seeded random weights with non-zero biases."""
    import tensorflow as tf
    from qkeras import QLSTM, QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    from hepfpga.quantize.qat import qkeras_compat

    qkeras_compat()
    tf.keras.utils.set_random_seed(2)
    q = quantized_bits(8, 0, alpha=1)
    x = keras.Input((20, 3), name="constituents")
    h = QActivation(quantized_bits(12, 3, alpha=1), name="input_quant")(x)
    lstm = QLSTM(
        16,
        kernel_quantizer=q,
        recurrent_quantizer=q,
        bias_quantizer=q,
        activation="tanh",
        recurrent_activation="sigmoid",
        name="lstm",
    )
    h = lstm(h)
    kernel, recurrent, bias = lstm.get_weights()
    lstm.set_weights([kernel, recurrent, np.random.default_rng(2).normal(0, 0.3, bias.shape)])
    h = QDense(16, kernel_quantizer=q, bias_quantizer=q, name="dense")(h)
    h = QActivation(quantized_relu(8, 2), name="relu")(h)
    h = QDense(5, kernel_quantizer=q, bias_quantizer=q, name="logits")(h)
    return keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h), name="lstm")


def events(n: int, width: int, seed: int) -> np.ndarray:
    """Standardised-feature-like inputs; one in ten scaled up to saturate the input type."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, width))
    x[::10] *= 40.0
    return x.astype(np.float32)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def measure(
    name: str, model: Any, io_type: str, n_events: int, n_csim: int, workers: int, folder: Path
) -> dict:
    from hepfpga.firmware import FirmwareOptions, compile_project, write_project
    from hepfpga.firmware.emulate import Emulator, emulate_file

    width = int(np.prod(model.inputs[0].shape[1:]))
    options = FirmwareOptions(io_type=io_type)
    project = compile_project(write_project(model, options, folder / name))
    # recurrent models: predict() is ~10x slower per event; fewer events, same ratio
    recurrent = any(type(layer).__name__ in RECURRENT for layer in model.layers)
    n_csim = max(n_csim // 10, 1000) if recurrent else n_csim
    x_csim = events(n_csim, width, seed=1)

    # hls4ml's own predict(): one C-simulation call per event; best of REPEATS, as below
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        reference = project.hls_model.predict(x_csim.astype(np.float64))
        timings.append(time.perf_counter() - start)
    csim_rate = rate(n_csim, min(timings))
    reference = np.asarray(reference, dtype=np.float64).reshape(n_csim, -1)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        emulator = Emulator.from_project(project, x_csim[:10_000])
    proof_seconds = time.perf_counter() - start
    identical = float(np.mean(np.all(emulator.predict(x_csim) == reference, axis=1)))

    x = events(n_events, width, seed=2)
    emulator.predict(x[:100_000])  # warm-up: page in, BLAS start-up
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        emulator.predict(x)
        timings.append(time.perf_counter() - start)
    memory_rate = rate(n_events, min(timings))

    data = folder / f"{name}_events.npz"
    np.savez(data, x=x)
    start = time.perf_counter()
    result = emulate_file(
        project,
        data,
        folder / f"{name}_scores.npz",
        chunk_size=max(n_events // (4 * workers), 10_000),
        n_workers=workers,
    )
    file_rate = rate(n_events, time.perf_counter() - start)
    data.unlink()
    streaming_rate = result.streaming_events_per_second
    return {
        "model": name,
        "engine": emulator.engine,
        "csim": csim_rate,
        "memory": memory_rate,
        "file": file_rate,
        "streaming": streaming_rate,
        "identical": identical,
        "n_csim": n_csim,
        "n_events": n_events,
        "proof_seconds": proof_seconds,
        "file_engine": result.engine,
        "fallback_reason": emulator.fallback_reason,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="events emulated")
    parser.add_argument("--csim-events", type=int, default=20_000, help="events for predict()")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    import hls4ml

    env = ", ".join(f"{v}={os.environ[v]}" for v in ENV_VARS if v in os.environ) or "none set"
    print(
        f"hls4ml {hls4ml.__version__}, numpy {np.__version__}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}; BLAS environment: {env}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="hepfpga-bench-") as tmp:
        for name, build, io_type, n_events in (
            ("jet MLP", jet_mlp, "io_parallel", args.events),
            ("CNN 8x8x2", cnn, "io_parallel", max(args.events // 10, 10_000)),
            ("CNN 8x8x2, io_stream", cnn, "io_stream", max(args.events // 10, 10_000)),
            ("jet QLSTM(16) x 20 steps", jet_lstm, "io_parallel", max(args.events // 40, 10_000)),
        ):
            key = "".join(c if c.isalnum() else "_" for c in name.lower())
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            rows.append(
                measure(key, build(), io_type, n_events, args.csim_events, args.workers, Path(tmp))
            )
            rows[-1]["model"] = name

    header = (
        "| model | hls4ml predict() ev/s | emulate, in memory ev/s | ratio "
        f"| emulate_file npz->npz, {args.workers} dask threads: streaming ev/s | ratio "
        "| same, whole call ev/s | identical to predict() |"
    )
    print()
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['csim']:,.0f} | {r['memory']:,.0f} | "
            f"{r['memory'] / r['csim']:.0f}x | {r['streaming']:,.0f} | "
            f"{r['streaming'] / r['csim']:.0f}x | {r['file']:,.0f} | "
            f"{r['identical']:.2%} of {r['n_csim']:,} |"
        )
    print()
    for r in rows:
        print(
            f"{r['model']}: {r['n_events']:,} events emulated by the {r['engine']} engine "
            f"(file: {r['file_engine']}), built and proven against the C simulation in "
            f"{r['proof_seconds']:.1f} s; whole call = proof, cluster start, read, emulate, write"
        )
        if r["fallback_reason"]:
            print(f"  C-simulation fallback: {r['fallback_reason']}")
    failed = [r["model"] for r in rows if r["identical"] != 1.0]
    if failed:
        print(f"NOT IDENTICAL: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
