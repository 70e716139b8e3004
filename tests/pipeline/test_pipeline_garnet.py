"""The ``garnet`` architecture through the whole pipeline, on a small synthetic sample: trained
in GarNet's one-input form, firmware built and verified from its two-input 'xn' form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConfigError
from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.runner import run_pipeline
from hepfpga.train.io import save_sample

GARNET = {
    "architecture": "garnet",
    "n_constituents": 4,
    "aggregators": 2,
    "propagate": 3,
    "filters": 4,
    "dense_units": [],
}


def _config(base: Path, jets: Path, model: dict[str, Any]) -> Any:
    return parse_config(
        {
            "name": "garnet",
            "output_dir": str(base),
            "seed": 1,
            "data": {"path": str(jets)},
            "model": model,
            "training": {"epochs": 2},
            "quantization": {
                "epochs": 1,
                "input_bits": 12,
                "input_integer": 2,
                "kinds": {"graph": {"weight_bits": 12, "weight_integer": 3}},
            },
            "onnx": {"tolerance": 0.02},
            "verification": {"max_accuracy_drop": 1.0, "testbench_events": 20},
        }
    )


@pytest.mark.parametrize(("n", "message"), [(20, "use 16 or 32"), (3, "use 2 or 4")])
def test_vertex_count_not_a_power_of_two_is_refused_before_training(
    tmp_path: Path, n: int, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, tmp_path / "jets.npz", {**GARNET, "n_constituents": n})
    assert info.value.path == "model.n_constituents"
    assert f"expected a power of two, got {n}" in str(info.value) and message in str(info.value)


def test_the_xn_form_computes_what_the_trained_model_computes() -> None:
    """firmware_form: same layers and weights, the count from the present channel; equal on
    clouds whose present constituents lead (the representation's), not on others."""
    from hepfpga.quantize.qat import QuantizationSpec, quantize_model
    from hepfpga.train.architectures.garnet import GarNetConfig, build_garnet, firmware_form

    config = GarNetConfig(n_constituents=8, aggregators=2, propagate=3, filters=4)
    qmodel = quantize_model(build_garnet(config, (8, 4), 5, seed=3), QuantizationSpec())
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(64, 8, 4)).astype(np.float32)
    count = rng.integers(0, 9, size=64)
    present = np.arange(8)[np.newaxis, :] < count[:, np.newaxis]
    cloud[..., 3] = present
    cloud[~present] = 0.0
    form = firmware_form(qmodel)
    assert [t.node.layer.name for t in form.model.inputs] == ["constituents", "n_constituents"]
    inputs = form.inputs(cloud)
    assert np.array_equal(inputs[1][:, 0], count)
    expected = qmodel.predict(cloud, verbose=0)
    assert np.array_equal(form.model.predict(inputs, verbose=0), expected)
    shuffled = cloud[:, ::-1]  # present constituents last: the 'xn' mask takes the first ones
    assert not np.array_equal(
        form.model.predict(form.inputs(shuffled), verbose=0),
        qmodel.predict(shuffled, verbose=0),
    )


@pytest.mark.slow
def test_garnet_run_ends_in_verified_firmware(tmp_path: Path, make_jets: Any) -> None:
    from hepfpga.quantize.model_io import load_keras_model

    jets = tmp_path / "jets.npz"
    save_sample(make_jets(400, seed=5), jets)
    result = run_pipeline(_config(tmp_path, jets, GARNET))
    report = result.report
    assert result.passed and report["status"] == "passed", report["checks"]
    firmware = report["firmware"]
    assert firmware["status"] == "built"
    assert firmware["model"]["inputs"] == ["constituents", "n_constituents"]
    checks = report["checks"]
    # the 'xn' form computes what the trained QKeras model computes, on every test jet
    assert checks["firmware_model_vs_qkeras_max_abs_diff"]["value"] == 0.0
    assert checks["firmware_model_vs_qkeras_max_abs_diff"]["passed"] is True
    # never claimed bit-exact: the measured difference and argmax agreement, with the bound
    assert "hls_logits_bit_exact" not in checks
    assert 0 < checks["hls_vs_qkeras_logits_max_abs_diff"]["value"] <= 0.5
    assert checks["hls_vs_qkeras_argmax_agreement"]["value"] >= 0.8
    assert "hls_accuracy_drop" in checks
    assert "exp(-d^2) from a lookup table" in report["verification"]["requirement"]
    assert report["verification"]["passed"] is True
    # the test bench holds both inputs per event: 4 x 4 features and the count
    bench = np.load(result.run_dir / "firmware" / "tb_data" / "tb_input_features.npy")
    assert bench.shape == (20, 4 * 4 + 1)
    assert np.array_equal(bench[:, -1], np.round(bench[:, -1])) and bench[:, -1].max() <= 4
    # the saved QKeras model reloads with its bit widths and computes the same
    qmodel = load_keras_model(result.run_dir / "qkeras_model.h5")
    config = qmodel.get_layer("garnet").get_config()
    assert (config["total_bits"], config["int_bits"]) == (12, 3)
    assert (result.run_dir / "model.onnx").is_file()
    # the bulk emulator falls back to the C simulation, saying why
    emulation = report["emulation"]
    assert emulation["engine"] == "csim"
    assert "layer 'garnet' (GarNet)" in emulation["fallback_reason"]
    assert "hls" in report and np.isfinite(report["hls"]["test"]["accuracy"])
