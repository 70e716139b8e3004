"""``perf_analyzer``, Triton's benchmark client (C++), driven from Python.

It ships in the tritonclient wheel (``bin/perf_analyzer``) and needs Debian's ``libb64-0d``
and ``libcudart.so.12`` (``pip install nvidia-cuda-runtime-cu12``, the ``perf`` extra), even
on a machine without a GPU. ``benchmarks/serving.py`` reports its figures; a test checks that
it drives ``hepfpga serve`` (HTTP and gRPC, with and without system shared memory).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["perf_analyzer", "perf_analyzer_command"]


@functools.cache
def perf_analyzer_command() -> tuple[list[str], dict[str, str]] | None:
    """``perf_analyzer`` of this environment and the environment it needs, or None.

    It ships in the tritonclient wheel (``bin/perf_analyzer``); it needs Debian's
    ``libb64-0d`` and ``libcudart.so.12`` (``pip install nvidia-cuda-runtime-cu12``), even
    on a machine without a GPU.
    """
    candidates = [shutil.which("perf_analyzer"), str(Path(sys.executable).parent / "perf_analyzer")]
    try:  # the wheel's scripts folder, also when this venv layers another one's packages
        # deferred, optional: tritonclient (hepfpga[serve])
        import tritonclient

        candidates.append(str(Path(tritonclient.__file__).parents[4] / "bin" / "perf_analyzer"))
    except ImportError:
        pass
    exe = next((c for c in candidates if c and Path(c).is_file()), None)
    if exe is None:
        return None
    env = dict(os.environ)
    try:
        import nvidia.cuda_runtime  # type: ignore[import-untyped]

        lib = str(Path(next(iter(nvidia.cuda_runtime.__path__))) / "lib")
        env["LD_LIBRARY_PATH"] = lib + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    except ImportError:
        pass
    try:  # runnable at all (shared libraries found)?
        probe = subprocess.run([exe, "--help"], env=env, capture_output=True, timeout=30)
    except OSError:
        return None
    if b"error while loading shared libraries" in probe.stderr:
        return None
    return [exe], env


def perf_analyzer(
    url: str,
    protocol: str,
    model: str,
    batch: int,
    concurrency: int,
    count: int,
    shm: bool = False,
    timeout_s: float = 600.0,
) -> dict[str, float]:
    """perf_analyzer's own figures for ``count`` requests (no stabilisation windows: this
    machine is too noisy for them): throughput, p50/p99 latency in ms, and the server's
    split of a request (queue, compute) in microseconds from its statistics."""
    found = perf_analyzer_command()
    if found is None:
        raise RuntimeError(
            "perf_analyzer cannot run: it comes with tritonclient and needs Debian's libb64-0d "
            "and libcudart.so.12 (pip install 'hepfpga[perf]')"
        )
    command, env = found
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "out.csv"
        args = [
            *command,
            "-m", model, "-u", url, "-i", protocol, "-b", str(batch),
            "--concurrency-range", f"{concurrency}:{concurrency}",
            "--request-count", str(count), "-f", str(csv), "--verbose-csv",
        ]  # fmt: skip
        if shm:
            args += ["--shared-memory", "system", "--output-shared-memory-size", str(batch * 64)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"perf_analyzer did not finish within {timeout_s:g} s") from exc
        if not csv.is_file():
            raise RuntimeError(f"perf_analyzer failed ({done.returncode}): {done.stdout[-800:]}")
        header, row = csv.read_text().splitlines()[:2]
    values = dict(zip(header.split(","), (float(v) for v in row.split(",")), strict=False))
    return {
        "throughput": values["Inferences/Second"],
        "p50": values["p50 latency"] / 1e3,
        "p99": values["p99 latency"] / 1e3,
        "queue_us": values["Server Queue"],
        "compute_us": values["Server Compute Input"]
        + values["Server Compute Infer"]
        + values["Server Compute Output"],
    }
