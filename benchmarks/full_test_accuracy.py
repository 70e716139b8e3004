"""Float and quantized accuracy of finished runs on ALL the test jets of their split.

    python benchmarks/full_test_accuracy.py RUN [RUN ...] [--scratch DIR]

A run evaluates, verifies and reports on at most ``verification.max_events`` test jets (a
stratified subset: 10,000 for the scale Deep Sets, 5,000 for the scale GRU), so two runs with
different caps are compared on different jets. This script remakes each run's data stage
from the ``config`` recorded in its ``report.json`` (the same sample, seed, split and
preprocessing fitted on the same training jets: :func:`hepfpga.pipeline.stages.rebuild_run_data`)
with the cap removed, and evaluates the run's own ``float_model.h5`` and ``qkeras_model.h5`` on
every test jet: the same jets for every run of one sample and seed. Accuracy: the fraction of
test jets whose highest score is their true class; its statistical error is about
``sqrt(a (1 - a) / n)`` (0.16 points at 72,500 jets), and a difference between two models on
the same jets is known better (about ``sqrt(f / n)``, ``f`` the fraction of jets on which
they disagree). The firmware is not run here: where the run verified its logits bit-exact,
its accuracy is the quantized model's. For the quantized model it also gives each class's
recall and, when the classes include W and Z, the accuracy with them counted as one class (their
separation rests on the mass resolution alone: 80 against 91 GeV). Prints one JSON line per
run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def evaluate(run: Path, scratch: Path) -> dict[str, object]:
    """The run's float and quantized test accuracies on every test jet of its split."""
    # deferred: TensorFlow loads slowly
    from hepfpga.pipeline.stages import rebuild_run_data
    from hepfpga.quantize.model_io import load_keras_model

    report = json.loads((run / "report.json").read_text())
    config = dict(report["config"])
    config["verification"] = {**config.get("verification", {}), "max_events": None}
    data = rebuild_run_data(config, source=str(run / "report.json"), scratch=scratch)
    x, y = data.x_test, np.asarray(data.y_test)
    row: dict[str, object] = {"run": str(run), "test_jets": len(y)}
    for key, name in (("float", "float_model.h5"), ("quantized", "qkeras_model.h5")):
        model = load_keras_model(run / name)
        predicted = np.argmax(model.predict(x, batch_size=4096, verbose=0), axis=1)
        row[key] = round(float((predicted == y).mean()), 4)
    classes = list(data.classes)
    row["recall"] = {
        name: round(float((predicted[y == k] == k).mean()), 4) for k, name in enumerate(classes)
    }
    if "W" in classes and "Z" in classes:
        w, z = classes.index("W"), classes.index("Z")
        merged = float((np.where(predicted == z, w, predicted) == np.where(y == z, w, y)).mean())
        row["quantized_w_z_merged"] = round(merged, 4)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--scratch", type=Path, default=None, help="scratch folder (temporary)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        for i, run in enumerate(args.runs):
            print(json.dumps(evaluate(run, Path(tmp) / f"run{i}")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
