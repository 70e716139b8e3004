"""HGQ models through the RTL flow: the proxy model traced into da4ml's adder graph bit for
bit (per-element types, RND/TRN rounding, wrap-around beyond the calibrated ranges), its
ONNX form, refusals naming the layer, and ``hepfpga hardware`` on an HGQ model file
(Verilator, slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError

pytest.importorskip("HGQ")
pytest.importorskip("da4ml")


def _mlp() -> Any:
    from HGQ import HDense, HQuantize
    from tensorflow import keras

    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            HQuantize(beta=1e-5, input_shape=(5,), name="inputs_q"),
            HDense(7, activation="relu", beta=1e-5, name="hidden"),
            HDense(3, beta=1e-5, name="logits"),
        ],
        name="hgq_mlp",
    )


def _cnn() -> Any:
    from HGQ import HConv2D, HDense, HQuantize
    from HGQ.layers import PFlatten, PMaxPooling2D
    from tensorflow import keras

    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            HQuantize(beta=1e-5, input_shape=(4, 4, 2), name="inputs_q"),
            HConv2D(2, (3, 3), activation="relu", beta=1e-5, name="conv"),
            PMaxPooling2D((2, 2), name="pool"),
            PFlatten(name="flatten"),
            HDense(2, beta=1e-5, name="logits"),
        ],
        name="hgq_cnn",
    )


MODELS = {"mlp": _mlp, "cnn": _cnn}


def _events(model: Any, n: int, seed: int) -> np.ndarray:
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


@pytest.fixture(scope="module")
def proxies() -> dict[str, tuple[Any, Any]]:
    """Each tiny HGQ model's proxy model, its activation ranges traced on 200 events."""
    from hepfpga.quantize.hgq import proxy_model

    made = {}
    for name, build in MODELS.items():
        model = build()
        made[name] = (model, proxy_model(model, _events(model, 200, seed=0)))
    return made


@pytest.mark.parametrize("name", sorted(MODELS))
def test_traced_proxy_model_is_bit_exact(name: str, proxies: dict[str, Any]) -> None:
    """da4ml's interpreter of the traced adder graph against the proxy model's logits, on
    events three times wider than the calibration (the activations wrap, as in the
    firmware) and on the calibration events."""
    from hepfpga.firmware.rtl.hgq import trace_hgq_model

    model, proxy = proxies[name]
    net = trace_hgq_model(proxy)
    assert net.layers[0] == "inputs_q" and net.output_layer.endswith("quantizer")
    x = np.concatenate([_events(model, 300, seed=1) * 3, _events(model, 200, seed=0)])
    values = net.quantize_inputs(x).reshape(len(x), -1)
    # the RTL input codes are integers of the widest input type
    codes = np.ldexp(values, net.input_type.fractional)
    np.testing.assert_array_equal(codes, np.round(codes))
    traced = net.comb.predict(values)
    expected = np.asarray(proxy.predict(x, verbose=0), dtype=np.float64).reshape(len(x), -1)
    np.testing.assert_array_equal(traced, expected)
    quantizers = [layer for layer in proxy.layers if type(layer).__name__ == "FixedPointQuantizer"]
    assert any(bool(q.heterogeneous) for q in quantizers)  # a type per element somewhere


def test_onnx_form_of_the_proxy_model_is_exact(proxies: dict[str, Any], tmp_path: Path) -> None:
    """The plain-operation form (what tf2onnx converts) in Keras and in onnxruntime gives
    the proxy model's logits exactly, wrap-around included."""
    from hepfpga.deploy.onnx_export import check_onnx, export_onnx
    from hepfpga.quantize.hgq import onnx_ready_proxy

    model, proxy = proxies["mlp"]
    x = np.concatenate([_events(model, 300, seed=2) * 4, _events(model, 100, seed=0)])
    ready = onnx_ready_proxy(proxy)
    np.testing.assert_array_equal(ready.predict(x, verbose=0), proxy.predict(x, verbose=0))
    parity = check_onnx(export_onnx(ready, tmp_path / "hgq.onnx"), proxy, x)
    assert parity.max_abs_diff == 0.0 and parity.n_events == len(x)


def _rounding(proxy: Any) -> Any:
    proxy.get_layer("logits_quantizer").RND = "RND_CONV"
    return proxy


def _average_pooling() -> Any:
    from HGQ import HQuantize
    from HGQ.layers import PAveragePooling2D, PFlatten
    from tensorflow import keras

    from hepfpga.quantize.hgq import proxy_model

    model = keras.Sequential(
        [
            HQuantize(beta=1e-5, input_shape=(4, 4, 1), name="inputs_q"),
            PAveragePooling2D((2, 2), name="avg"),
            PFlatten(name="flatten"),
        ]
    )
    return proxy_model(model, np.ones((4, 4, 4, 1), np.float32))


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda proxies: _rounding(_clone(proxies["mlp"][1])), r"'logits_quantizer'.*RND_CONV"),
        (lambda proxies: _average_pooling(), r"layer 'avg' \(AveragePooling2D\)"),
    ],
    ids=["rounding-mode", "average-pooling"],
)
def test_untraceable_proxy_layers_are_refused_naming_them(
    make: Any, needle: str, proxies: dict[str, Any]
) -> None:
    from hepfpga.firmware.rtl.hgq import trace_hgq_model

    with pytest.raises(ConversionError, match=needle):
        trace_hgq_model(make(proxies))


def _clone(proxy: Any) -> Any:
    from tensorflow import keras

    from hepfpga.quantize.hgq import hgq_custom_objects

    with keras.utils.custom_object_scope(hgq_custom_objects()):
        copy = keras.models.clone_model(proxy)
    copy.set_weights(proxy.get_weights())
    return copy


@pytest.mark.slow
def test_hardware_cli_on_an_hgq_model_is_bit_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hepfpga hardware MODEL.h5 --data``: the HGQ model's proxy (ranges traced on the
    events) as Verilog, simulated in Verilator bit for bit, EBOPs in the report."""
    from hepfpga.cli import main
    from hepfpga.quantize.model_io import save_keras_model

    model = _mlp()
    save_keras_model(model, tmp_path / "hgq.h5")
    np.savez(tmp_path / "events.npz", x=_events(model, 400, seed=5))
    out = tmp_path / "hw"
    argv = ["hardware", str(tmp_path / "hgq.h5"), "--data", str(tmp_path / "events.npz")]
    code = main([*argv, "--key", "x", "--out", str(out), "--no-synth", "--no-emulate"])
    shown, err = capsys.readouterr()
    assert code == 0, err
    assert "RTL vs HGQ proxy model logits: 400 of 400 events identical" in shown
    assert "EBOPs (no resource count to set beside it: synthesis not run)" in shown
    report = json.loads((out / "report.json").read_text())
    assert report["exact"] is True and report["ebops"] > 0
    assert report["latency"]["min_cycles"] >= 1
