"""Same seed, same numbers: the one place where hepfpga seeds TensorFlow and fixes what else
decides the bits of a fit.

Sources of run-to-run and machine-to-machine differences in a Keras fit on CPU, as measured
on the default run (README, "Same seed, same numbers"):

- **Random state** (weight initialisation, shuffling, dropout, noise): fixed by
  :func:`seed_everything` (Python's, NumPy's legacy and TensorFlow's generators).
- **Non-deterministic kernels** (multi-threaded reductions whose order varies): TensorFlow's
  op determinism, enabled by :func:`seed_everything`. With it the weights do not depend on
  the number of threads (``TF_NUM_INTRAOP_THREADS`` 1 or 2, one or two CPUs, oneDNN graph
  rewrites on or off: identical bits).
- **The instruction set**: TensorFlow's matrix products run on oneDNN's sgemm (even with
  ``TF_ENABLE_ONEDNN_OPTS=0``), which picks its kernels at run time from the best
  instruction set of the CPU (AVX, AVX2, AVX-512...); each sums in its own order, so the same
  fit gives other weights on a machine with AVX-512 than on one with AVX2 only.
  :data:`PINNED_ENVIRONMENT` caps oneDNN at AVX2 (``ONEDNN_MAX_CPU_ISA``), which every x86-64
  CPU since 2013 has: the same bits on all of them. It is set when ``hepfpga`` is imported
  (:func:`pin_numerics`), before TensorFlow makes its first product; a value the user set
  in the environment is kept. A CPU without AVX2, or another architecture (ARM), still gives
  other bits: the README states the spread.
"""

from __future__ import annotations

import os

__all__ = ["PINNED_ENVIRONMENT", "pin_numerics", "seed_everything"]

#: Environment variables that make the numbers of a fit the same on every machine, each kept
#: when the user has set it: oneDNN's kernels capped at AVX2 (see the module docstring).
PINNED_ENVIRONMENT: dict[str, str] = {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_numerics() -> None:
    """Set :data:`PINNED_ENVIRONMENT` where the user has not: called when ``hepfpga`` is
    imported, so before TensorFlow reads them (oneDNN reads its cap at its first product)."""
    for key, value in PINNED_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's legacy generator and TensorFlow
    (``keras.utils.set_random_seed``) with ``seed`` and enable TensorFlow's op determinism:
    the same seed and data then give the same weights, whatever the thread count."""
    # deferred: TensorFlow loads slowly
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
