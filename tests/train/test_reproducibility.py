"""Same seed, same numbers (issue 19): the weights of a fit do not depend on the thread count
or on oneDNN's graph rewrites, and oneDNN's instruction set is pinned when hepfpga is
imported (hepfpga.reproducibility)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_FIT = """
import hashlib, os, sys
import numpy as np
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.config import EarlyStoppingConfig, TrainingConfig
from hepfpga.train.fit import fit_classifier
from hepfpga.train.models import build_model

rng = np.random.default_rng(7)
x = rng.normal(size=(600, 16)).astype(np.float32)
y = (x[:, :5].argmax(1) + (x[:, 5] > 1)).astype(np.int64) % 5
model = build_model(16, 5, MLPConfig(hidden_units=(32, 16)), seed=11)
settings = TrainingConfig(batch_size=64, epochs=3, early_stopping=EarlyStoppingConfig(patience=2))
fit_classifier(model, x[:450], y[:450], x[450:], y[450:], settings, seed=11, progress=False)
print("ISA", os.environ.get("ONEDNN_MAX_CPU_ISA"))
print("WEIGHTS", hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest())
"""


def _fit_in_subprocess(env: dict[str, str]) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    environment.update(env, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        [sys.executable, "-c", _FIT],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str]) -> dict[str, str]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return dict(
        line.split(" ", 1) for line in out.splitlines() if line.startswith(("ISA", "WEIGHTS"))
    )


@pytest.mark.slow
def test_weights_do_not_depend_on_threads_or_onednn_rewrites() -> None:
    """Two fits at once (so each sees the machine as loaded as the other): one thread and
    oneDNN's graph rewrites off, against two threads with them on."""
    settings = [
        {
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1",
            "TF_ENABLE_ONEDNN_OPTS": "0",
        },
        {
            "TF_NUM_INTRAOP_THREADS": "2",
            "TF_NUM_INTEROP_THREADS": "2",
            "TF_ENABLE_ONEDNN_OPTS": "1",
        },
    ]
    first, second = (_result(p) for p in [_fit_in_subprocess(env) for env in settings])
    assert first["ISA"] == second["ISA"] == "AVX2"  # pinned at import
    assert first["WEIGHTS"] == second["WEIGHTS"]


@pytest.mark.parametrize(("given", "expected"), [(None, "AVX2"), ("AVX", "AVX")])
def test_isa_is_pinned_at_import_unless_the_user_set_it(given: str | None, expected: str) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if given is not None:
        environment["ONEDNN_MAX_CPU_ISA"] = given
    code = "import os, hepfpga; print(os.environ['ONEDNN_MAX_CPU_ISA'])"
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected


def test_seeding_lives_in_one_place() -> None:
    """Every fit seeds through hepfpga.reproducibility.seed_everything, never on its own."""
    root = Path(__file__).resolve().parents[2]
    calls = [
        str(path.relative_to(root))
        for folder in ("train", "quantize", "pipeline", "firmware", "deploy", "hepfpga")
        for path in (root / folder).rglob("*.py")
        if path.name != "reproducibility.py"
        and any(
            token in path.read_text(encoding="utf-8")
            for token in ("set_random_seed(", "enable_op_determinism(")
        )
    ]
    assert calls == []
