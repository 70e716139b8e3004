"""report.json of an HGQ run: its quantized model's sections are named after the method
(``hgq``, ``onnx_vs_hgq``, ``hgq_accuracy_drop``) and stay readable under their ``qkeras``
names by every reader (:class:`~hepfpga.pipeline.run_report.RunReport`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hepfpga.pipeline.run_report import RunReport


def _report(method: str | None) -> dict[str, Any]:
    key = method or "qkeras"
    content: dict[str, Any] = {
        "name": "run",
        "data": {"classes": ["q", "g"]},
        "float": {"test": {"accuracy": 0.70, "auc": {"q": 0.8, "g": 0.8}}},
        key: {"test": {"accuracy": 0.66, "auc": {"q": 0.75, "g": 0.75}}, "ebops": 1234.0},
        f"onnx_vs_{key}": {"max_abs_diff": 0.0, "provider": "CPUExecutionProvider"},
        "checks": {f"{key}_accuracy_drop": {"value": 0.04, "passed": True}},
    }
    if method is not None:
        content["config"] = {"quantization": {"method": method}}
    return content


@pytest.mark.parametrize(
    ("method", "label"), [("hgq", "HGQ"), ("qkeras", "QKeras"), (None, "QKeras")]
)
def test_quantized_sections_read_under_their_qkeras_names(method: str | None, label: str) -> None:
    report = RunReport.from_content(_report(method))
    assert report.quantization_method == (method or "qkeras")
    assert report.test_figures()["qkeras"]["accuracy"] == 0.66
    assert report.section("onnx_vs_qkeras")["max_abs_diff"] == 0.0
    assert report.section("qkeras")["ebops"] == 1234.0
    assert report.model_label("qkeras") == label and report.model_label("float") == "float"
    assert list(report.checks) == [f"{method or 'qkeras'}_accuracy_drop"]


def test_a_retyped_hgq_section_is_refused_naming_it() -> None:
    from hepfpga.errors import DataError

    content = _report("hgq")
    content["hgq"]["test"] = [0.66]
    with pytest.raises(DataError, match=r"\.test' is a list"):
        RunReport.from_content(content)


@pytest.mark.parametrize("method", ["hgq", "qkeras"])
def test_scores_hold_the_method_key_beside_the_qkeras_alias(method: str) -> None:
    """scores.npz of an HGQ run: the quantized model's scores under ``hgq`` too; ``qkeras``
    stays (the readers' slot), the schema reader accepts both, the page says HGQ."""
    import numpy as np

    from hepfpga.pipeline.report_html import render_report_html
    from hepfpga.pipeline.run import scores_with_method_key
    from hepfpga.pipeline.run_report import RunScores

    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1.0, 1.0], size=20).astype(np.float32)
    arrays = scores_with_method_key(
        {
            "labels": rng.integers(0, 2, size=20),
            "class_names": np.asarray(["q", "g"]),
            "float": probs,
            "qkeras": probs[::-1].copy(),
            "train_labels": rng.integers(0, 2, size=20),
            "train_qkeras": probs,
        },
        method,
    )
    if method == "hgq":
        assert arrays["hgq"] is arrays["qkeras"] and arrays["train_hgq"] is arrays["train_qkeras"]
    else:
        assert "hgq" not in arrays and "train_hgq" not in arrays
    report = RunReport.from_content({**_report(method), "task": "classification"})
    checked = RunScores.check(Path("scores.npz"), arrays, report)
    assert set(checked.arrays) == set(arrays)
    page = render_report_html(report, arrays)
    label = "HGQ" if method == "hgq" else "QKeras"
    other = "QKeras" if method == "hgq" else "HGQ"
    assert f"<td class=l>{label}</td>" in page and other not in page
