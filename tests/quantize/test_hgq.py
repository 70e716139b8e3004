"""HGQ models (the ``hgq`` extra): a user's HGQ model through ``verify``/``emulate``/``firmware``
(the proxy model's firmware bit-exact in C simulation), and the refusals of models mixing
HGQ with QKeras or holding an HGQ layer hls4ml cannot convert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.errors import ConversionError

pytest.importorskip("HGQ")

N_INPUTS = 6


def _events(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, N_INPUTS)).astype(np.float32)


def _hgq_model(beta: float = 1e-5, extra: Any = None) -> Any:
    from HGQ import HDense, HQuantize
    from tensorflow import keras

    layers = [
        HQuantize(beta=beta, input_shape=(N_INPUTS,), name="inputs_q"),
        HDense(8, activation="relu", beta=beta, name="hidden"),
    ]
    if extra is not None:
        layers.append(extra)
    layers.append(HDense(3, beta=beta, name="logits"))
    return keras.Sequential(layers, name="hgq_tagger")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny float MLP mapped to HGQ through ``quantization.method: hgq``'s registry entry
    (float weights copied), trained three epochs with the beta schedule and HGQ's EBOPs
    bookkeeping; its logits model saved as .h5 (what a user brings), and an event file."""
    from tensorflow import keras

    from hepfpga.quantize.config import QuantizationConfig
    from hepfpga.quantize.hgq import HGQSettings, ebops, logits_model
    from hepfpga.quantize.methods import QUANTIZATION_METHODS
    from hepfpga.quantize.model_io import save_keras_model
    from hepfpga.train.fit import fit_classifier

    folder = tmp_path_factory.mktemp("hgq")
    x = _events(400)
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((N_INPUTS,), name="inputs")
    h = keras.layers.Dense(8, name="dense_1")(inputs)
    h = keras.layers.Activation("relu", name="relu_1")(h)
    h = keras.layers.Dropout(0.1, name="dropout_1")(h)
    h = keras.layers.Dense(3, name="logits")(h)
    float_model = keras.Model(inputs, keras.layers.Activation("softmax", name="softmax")(h))
    config = QuantizationConfig(
        method="hgq", epochs=3, batch_size=50, learning_rate=1e-2, hgq=HGQSettings(ramp_epochs=2)
    )
    method = QUANTIZATION_METHODS[config.method]
    model = method.counterpart(float_model, config)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "HQuantize", "HDense", "HActivation", "HDense", "Activation"]
    np.testing.assert_array_equal(
        model.get_layer("dense_1").kernel.numpy(), float_model.get_layer("dense_1").kernel.numpy()
    )
    assert method.fit_settings is not None
    settings = method.fit_settings(config)
    assert settings.early_stopping.patience >= config.epochs  # no early stop on beta's loss
    fit = fit_classifier(
        model,
        x[:300],
        y[:300],
        x[300:],
        y[300:],
        settings,
        seed=0,
        callbacks=method.callbacks(config),
        progress=False,
    )
    assert fit.epochs_run == config.epochs
    history = fit.to_dict()["history"]
    assert history["beta"] == [config.hgq.beta_initial, config.hgq.beta, config.hgq.beta]
    assert ebops(model) > 0 and history["bops"][-1] > 0  # the bit-width bookkeeping ran
    save_keras_model(logits_model(model), folder / "hgq.h5")
    np.savez(folder / "events.npz", x=_events(300, seed=1))
    return folder / "hgq.h5", folder / "events.npz"


@pytest.mark.slow
def test_verify_hgq_model_is_bit_exact(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, events = trained
    report = tmp_path / "report.json"
    code = main(
        ["verify", str(model), "--data", str(events), "--key", "x", "--report", str(report)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "PASS" in out and "bit-exact with the proxy model on 300 of 300 events" in out
    import json

    record = json.loads(report.read_text())
    assert record["quantization"] == "hgq" and record["passed"] and record["ebops"] > 0


@pytest.mark.slow
def test_emulate_hgq_model_matches_proxy_model(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepfpga.quantize.hgq import proxy_model
    from hepfpga.quantize.model_io import load_keras_model

    model, events = trained
    out_file = tmp_path / "out.npz"
    code = main(
        [
            "emulate",
            str(model),
            str(events),
            "--key",
            "x",
            "--out",
            str(out_file),
            "--check-events",
            "300",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    x = np.load(events)["x"]
    # the proxy model calibrated on the same events is the firmware's reference
    proxy = proxy_model(load_keras_model(model), x)
    expected = proxy.predict(x, verbose=0)
    np.testing.assert_array_equal(np.load(out_file)["outputs"], expected)


def _mixed_qkeras() -> Any:
    from qkeras import QDense, quantized_bits

    return QDense(4, kernel_quantizer=quantized_bits(6, 0, alpha=1), name="qkeras_dense")


def _attention() -> Any:
    from tensorflow import keras

    return keras.layers.Dense(4, name="float_dense")


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (_mixed_qkeras, ["qkeras_dense", "QDense", "QKeras layer in an HGQ model"]),
        (_attention, ["float_dense", "Dense", "no fixed-point type"]),
    ],
    ids=["qkeras-layer", "float-layer-with-weights"],
)
def test_mixed_models_are_refused_naming_the_layer(
    extra: Any, needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepfpga.quantize.hgq import check_hgq_model
    from hepfpga.quantize.model_io import save_keras_model

    model = _hgq_model(extra=extra())
    with pytest.raises(ConversionError) as info:
        check_hgq_model(model)
    for needle in needles:
        assert needle in str(info.value)
    path = tmp_path / "mixed.h5"
    save_keras_model(model, path)
    code = main(["-q", "verify", str(path), "--random", "20"])
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 2 and len(lines) == 1, err
    assert needles[0] in lines[0] and "Traceback" not in err


def test_hgq_layer_hls4ml_cannot_convert_is_refused() -> None:
    from HGQ.layers.experimental.attn import HMultiHeadAttention
    from tensorflow import keras

    from hepfpga.quantize.hgq import check_hgq_model

    inputs = keras.Input((4, N_INPUTS), batch_size=2)  # the layer needs a fixed batch
    outputs = HMultiHeadAttention(num_heads=1, key_dim=2, name="attention")(inputs, inputs, inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(ConversionError, match=r"layer 'attention' \(HMultiHeadAttention\)"):
        check_hgq_model(model)


def test_hgq_layers_load_from_file(trained: tuple[Path, Path]) -> None:
    from hepfpga.quantize.hgq import is_hgq_model
    from hepfpga.quantize.model_io import load_keras_model

    model = load_keras_model(trained[0])
    assert is_hgq_model(model)
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer",
        "HQuantize",
        "HDense",
        "HActivation",
        "HDense",
    ]


def test_beta_schedule_ramps_log_linearly() -> None:
    from hepfpga.quantize.hgq import HGQSettings

    settings = HGQSettings(beta=1e-4, beta_initial=1e-6, ramp_epochs=3)
    assert [settings.beta_at(e) for e in range(4)] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-4])


@pytest.mark.parametrize(
    ("quantization", "needles"),
    [
        ({"method": "hqg"}, ["quantization.method", "did you mean 'hgq'", "qkeras, hgq"]),
        ({"hgq": {"beta": -1}}, ["quantization.hgq.beta", ">= 0"]),
        ({"hgq": {"beta": 1e-6, "beta_initial": 1e-5}}, ["beta_initial", "must not exceed"]),
        (
            {"method": "hgq", "epochs": 10, "hgq": {"ramp_epochs": 11}},
            ["quantization.hgq.ramp_epochs", "(11) is more than quantization.epochs (10)"],
        ),
    ],
    ids=["unknown-method", "negative-beta", "ramp-downwards", "ramp-past-the-last-epoch"],
)
def test_bad_hgq_config_names_the_key(quantization: dict[str, Any], needles: list[str]) -> None:
    """Each bad value is named by its path; a ramp longer than the fit (beta never reached)
    too, and only for the HGQ method (QKeras runs ignore ``hgq``)."""
    from hepfpga.errors import ConfigError
    from hepfpga.pipeline.config import parse_config

    with pytest.raises(ConfigError) as info:
        parse_config({"quantization": quantization})
    for needle in needles:
        assert needle in str(info.value)
    if quantization.get("method") == "hgq":
        parse_config({"quantization": {**quantization, "method": "qkeras"}})
        parse_config({"quantization": {**quantization, "hgq": {"ramp_epochs": 10}}})


@pytest.mark.parametrize(
    ("architecture", "layer"),
    [("lstm", "LSTM layer"), ("garnet", "GarNet layer"), ("deepsets", "layer 'pool'")],
)
def test_hgq_refuses_architectures_it_does_not_cover(architecture: str, layer: str) -> None:
    from hepfpga.errors import ConfigError
    from hepfpga.quantize.methods import check_method_architecture

    check_method_architecture("hgq", "mlp")
    check_method_architecture("hgq", "cnn")
    check_method_architecture("qkeras", architecture)
    with pytest.raises(ConfigError, match=f"not '{architecture}'") as info:
        check_method_architecture("hgq", architecture)
    assert info.value.path == "quantization.method"
    assert layer in str(info.value) and "\n" not in str(info.value)


def test_hgq_counterpart_of_a_cnn_copies_the_weights() -> None:
    from tensorflow import keras

    from hepfpga.quantize.hgq import HGQSettings, hgq_counterpart

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1), name="input")
    h = keras.layers.Conv2D(2, (3, 3), padding="same", name="conv_1")(inputs)
    h = keras.layers.Activation("relu", name="relu_conv_1")(h)
    h = keras.layers.MaxPooling2D((2, 2), name="pool_1")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(3, name="logits")(h)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="softmax")(h))
    hmodel = hgq_counterpart(model, HGQSettings())
    assert [type(layer).__name__ for layer in hmodel.layers] == [
        "InputLayer",
        "HQuantize",
        "HConv2D",
        "HActivation",
        "PMaxPooling2D",
        "PFlatten",
        "HDense",
        "Activation",
    ]
    conv = hmodel.get_layer("conv_1")
    assert conv.padding == "same" and conv.kernel_size == (3, 3)
    np.testing.assert_array_equal(conv.kernel.numpy(), model.get_layer("conv_1").kernel.numpy())


def test_hgq_counterpart_refuses_unmapped_layers_naming_them() -> None:
    from tensorflow import keras

    from hepfpga.quantize.hgq import HGQSettings, hgq_counterpart

    inputs = keras.Input((N_INPUTS,))
    h = keras.layers.Dense(4, name="dense_1")(inputs)
    h = keras.layers.Activation("tanh", name="tanh_1")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(h))
    with pytest.raises(ConversionError, match=r"layer 'tanh_1' \(Activation\('tanh'\)\)"):
        hgq_counterpart(model, HGQSettings())


def test_firmware_of_hgq_model_needs_events_and_writes_the_proxy_project(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    model, _ = trained
    out = tmp_path / "fw"
    code = main(["-q", "firmware", str(model), "--out", str(out)])
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 2 and len(lines) == 1 and "--data FILE or --random N" in lines[0], err
    assert not out.exists()

    code = main(["firmware", str(model), "--out", str(out), "--random", "50"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "HGQ proxy model" in stdout
    record = json.loads((out / "hepfpga_hls_config.json").read_text())
    assert record["quantization"] == "hgq (proxy model)" and record["ebops"] > 0
    assert (out / "firmware" / "myproject.cpp").is_file()


def test_a_run_with_layers_hgq_cannot_map_is_refused_before_training(
    tmp_path: Path, make_jets
) -> None:
    """The CNN with features beside its image splits its input with Reshape and Cropping1D,
    which have no HGQ counterpart: refused naming the first such layer, before the float
    model is trained (no model file written)."""
    from hepfpga.pipeline.config import parse_config
    from hepfpga.pipeline.runner import run_pipeline
    from hepfpga.train.io import save_sample

    save_sample(make_jets(200, seed=2), tmp_path / "jets.npz")
    model = {"architecture": "cnn", "image_pixels": 8, "filters": [2], "dense_units": [4]}
    config = parse_config(
        {
            "name": "cnn_hgq",
            "output_dir": str(tmp_path / "runs"),
            "data": {"path": str(tmp_path / "jets.npz")},
            "model": {**model, "image_features": ["mass_mmdt"]},
            "training": {"epochs": 1},
            "quantization": {"method": "hgq", "epochs": 1, "hgq": {"ramp_epochs": 1}},
        }
    )
    with pytest.raises(ConversionError, match=r"layer 'as_sequence' \(Reshape\) has no HGQ"):
        run_pipeline(config)
    assert not list(tmp_path.rglob("*.h5"))
