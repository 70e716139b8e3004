"""What a run adds for the person reading its report: overtraining check, saliency, the BDT
next to the DNN, per-layer types against profiled ranges, and the score file behind the
plots of ``report.html``.

:func:`analyse_run` composes the library functions of :mod:`hepfpga.train` (curves,
saliency, bdt) and :mod:`hepfpga.firmware.precision`; the pipeline calls it once the models
are evaluated and puts its sections into ``report.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga._schema import to_plain

__all__ = ["RunAnalysis", "analyse_run", "layer_type_table"]

log = logging.getLogger("hepfpga")


@dataclass
class RunAnalysis:
    """The report sections :func:`analyse_run` produced and the BDT's test probabilities."""

    sections: dict[str, Any] = field(default_factory=dict)
    bdt_probs: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def layer_type_table(project: Any, x: np.ndarray) -> list[dict[str, Any]]:
    """Per firmware layer: the chosen types (:class:`~hepfpga.firmware.precision.LayerPrecision`)
    and the range of the layer's output on the events ``x`` (the model's inputs)."""
    from hepfpga.firmware.precision import profile_ranges

    ranges = profile_ranges(project.keras_model, x)
    rows = []
    for name, types in project.precision.items():
        row = {"layer": name, **types.to_dict()}
        row["type_min"], row["type_max"] = types.result.min_value, types.result.max_value
        if name in ranges:
            row["profiled_min"], row["profiled_max"] = ranges[name]
        rows.append(row)
    return rows


def analyse_run(
    run_dir: Path,
    *,
    config: Any,
    classes: tuple[str, ...],
    feature_names: tuple[str, ...],
    float_model: Any,
    qmodel: Any,
    project: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    probs: dict[str, np.ndarray],
) -> RunAnalysis:
    """Run the analyses and write ``scores.npz`` (test labels and the test probabilities of
    every model in ``probs`` plus the BDT; training labels and the float/QKeras training
    probabilities) into ``run_dir``.

    ``probs`` maps ``float``/``qkeras``/``hls`` to test-set probabilities.
    """
    import time

    from hepfpga.report_html import SCORES_FILE
    from hepfpga.train.curves import score_compatibility
    from hepfpga.train.saliency import input_saliency

    result = RunAnalysis()
    start = time.perf_counter()
    train_probs = {
        "float": float_model.predict(x_train, batch_size=4096, verbose=0),
        "qkeras": qmodel.predict(x_train, batch_size=4096, verbose=0),
    }
    overtraining = {}
    for name in ("float", "qkeras"):
        ks = score_compatibility(train_probs[name], y_train, probs[name], y_test, classes)
        overtraining[name] = to_plain(ks) | {
            "compatible": ks.compatible,
            "min_p_value": ks.min_p_value,
        }
    result.sections["overtraining"] = overtraining
    names = feature_names if x_test.ndim == 2 and len(feature_names) == x_test.shape[1] else None
    saliency = input_saliency(float_model, x_test, y_test, classes, input_names=names)
    result.sections["saliency"] = {"float": saliency.to_dict()}
    result.sections["layer_types"] = layer_type_table(project, x_test)
    result.seconds["analysis"] = round(time.perf_counter() - start, 2)

    bdt_config = getattr(config, "bdt", None)
    if bdt_config is not None and bdt_config.enabled:
        result.bdt_probs, result.sections["bdt"], result.seconds["bdt"] = _bdt(
            run_dir, bdt_config, config.seed, classes, x_train, y_train, x_test, y_test
        )

    arrays = {"labels": y_test, "train_labels": y_train}
    arrays |= {name: np.asarray(p, dtype=np.float32) for name, p in probs.items()}
    arrays |= {f"train_{n}": np.asarray(p, dtype=np.float32) for n, p in train_probs.items()}
    if result.bdt_probs is not None:
        arrays["bdt"] = result.bdt_probs.astype(np.float32)
    np.savez_compressed(run_dir / SCORES_FILE, **arrays)
    return result


def _bdt(
    run_dir: Path,
    bdt_config: Any,
    seed: int,
    classes: tuple[str, ...],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
) -> tuple[np.ndarray, dict[str, Any], float]:
    import time

    from hepfpga.train.bdt import convert_bdt, quantize_features, train_bdt, verify_bdt
    from hepfpga.train.evaluate import evaluate_classifier

    start = time.perf_counter()
    log.info("training the BDT and compiling its conifer emulation ...")
    bdt = train_bdt(x_train, y_train, bdt_config, seed=seed)
    emulation = convert_bdt(bdt, run_dir / "bdt_firmware")
    verification = verify_bdt(bdt, emulation, x_test)
    bdt_probs = bdt.probabilities(quantize_features(x_test, bdt_config))
    section = {
        "config": to_plain(bdt_config),
        "fit_seconds": round(bdt.seconds, 2),
        "emulation_compile_seconds": round(emulation.compile_seconds, 2),
        "hls_project": str(emulation.hls_project.relative_to(run_dir)),
        "test": evaluate_classifier(bdt_probs, y_test, classes).to_dict(),
        "verification": to_plain(verification) | {"passed": verification.passed},
    }
    return bdt_probs, section, round(time.perf_counter() - start, 2)
