from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from hepfpga.deploy.onnx_export import check_onnx, export_onnx, onnx_session
from hepfpga.quantize.qat import QuantizationSpec, quantize_model
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.models import build_model


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "qkeras"])
def test_onnx_reproduces_keras(tmp_path: Path, quantized: bool) -> None:
    model = build_model(16, 5, MLPConfig(hidden_units=(16, 8)))
    if quantized:
        model = quantize_model(model, QuantizationSpec())
    export = export_onnx(
        model, tmp_path / "m.onnx", metadata={"class_names": ["q", "g", "W", "Z", "t"]}
    )
    x = np.random.default_rng(0).normal(scale=3, size=(777, 16)).astype(np.float32)
    parity = check_onnx(export, model, x, batch_size=100)
    assert parity.n_events == 777
    assert parity.max_abs_diff <= 1e-5
    assert parity.argmax_agreement == 1.0
    assert parity.provider == onnx_session(export.path).get_providers()[0]
    proto = onnx.load(str(export.path))
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["class_names"] == ["q", "g", "W", "Z", "t"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert not list(tmp_path.glob(".*tmp*"))


def test_two_input_model_exports_one_onnx_input_per_keras_input(tmp_path: Path) -> None:
    """tf2onnx converts multi-input models: one ONNX input per Keras input, named as the
    Keras input layer, fed by name; every output compared with Keras."""
    from tensorflow import keras

    from hepfpga.deploy.onnx_export import export_checked_onnx, random_inputs

    jets = keras.Input((6,), name="jets")
    leptons = keras.Input((2, 3), name="leptons")
    joined = keras.layers.Concatenate(name="joined")(
        [jets, keras.layers.Flatten(name="flat")(leptons)]
    )
    out = keras.layers.Dense(4, activation="softmax", name="out")(joined)
    model = keras.Model([jets, leptons], out)
    x = random_inputs(model, 300)
    assert [a.shape for a in x] == [(300, 6), (300, 2, 3)]
    export, parity = export_checked_onnx(model, tmp_path / "m.onnx", x, tolerance=1e-5)
    assert export.input_names == ("jets", "leptons") and export.input_name == "jets"
    assert parity.n_events == 300 and parity.argmax_agreement == 1.0
    proto = onnx.load(str(export.path))
    assert [i.name for i in proto.graph.input] == ["jets", "leptons"]
