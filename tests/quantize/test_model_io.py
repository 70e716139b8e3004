from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepfpga.errors import ModelFileError
from hepfpga.quantize.model_io import load_keras_model, save_keras_model
from hepfpga.quantize.qat import QuantizationSpec, quantize_model
from hepfpga.train.architectures.mlp import MLPConfig
from hepfpga.train.models import build_model


def test_qkeras_model_round_trip(tmp_path: Path) -> None:
    model = quantize_model(build_model(16, 5, MLPConfig(hidden_units=(8,))), QuantizationSpec())
    save_keras_model(model, tmp_path / "q.h5")
    loaded = load_keras_model(tmp_path / "q.h5")
    x = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_json_plus_weights(tmp_path: Path) -> None:
    model = build_model(16, 5, MLPConfig(hidden_units=(8,)))
    (tmp_path / "m.json").write_text(model.to_json())
    model.save_weights(tmp_path / "w.h5")
    loaded = load_keras_model(tmp_path / "m.json", weights=tmp_path / "w.h5")
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    with pytest.raises(ModelFileError, match="needs its weights"):
        load_keras_model(tmp_path / "m.json")


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.h5", None, "model file not found"),
        ("text.h5", b"not a model at all", "not an HDF5 file"),
        ("model.txt", b"x", "unknown model file type '.txt'"),
        ("arch.json", b"{broken", "not a JSON model architecture"),
    ],
)
def test_bad_model_files(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name if content is None else _write(tmp_path / name, content)
    with pytest.raises(ModelFileError, match=message):
        load_keras_model(path)


def test_weights_only_h5_and_lambda_are_refused(tmp_path: Path) -> None:
    from tensorflow import keras

    model = build_model(16, 5, MLPConfig(hidden_units=(8,)))
    model.save_weights(tmp_path / "w.h5")
    with pytest.raises(ModelFileError, match="without a model architecture"):
        load_keras_model(tmp_path / "w.h5")
    inputs = keras.Input((4,))
    lam = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    lam.save(tmp_path / "lam.h5")
    with pytest.raises(ModelFileError, match="Lambda"):
        load_keras_model(tmp_path / "lam.h5")


def test_savedmodel_and_keras_zip_formats(tmp_path: Path) -> None:
    model = build_model(16, 5, MLPConfig(hidden_units=(8,)))
    x = np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32)
    model.save(tmp_path / "saved")
    model.save(tmp_path / "m.keras")
    for path in (tmp_path / "saved", tmp_path / "m.keras"):
        loaded = load_keras_model(path)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match=r"without saved_model\.pb"):
        load_keras_model(tmp_path / "empty")


class _Doubler:  # the custom layer's class is built lazily (TensorFlow import)
    @staticmethod
    def model() -> object:
        from tensorflow import keras

        class Doubler(keras.layers.Layer):
            def call(self, inputs: object) -> object:
                return inputs * 2

        inputs = keras.Input((4,))
        return keras.Model(inputs, Doubler(name="doubler")(inputs))


@pytest.mark.parametrize("suffix", [".h5", "", ".keras"])
def test_custom_layers_are_refused_before_loading(tmp_path: Path, suffix: str) -> None:
    model = _Doubler.model()
    path = tmp_path / f"custom{suffix}"
    model.save(path)
    with pytest.raises(ModelFileError, match=r"custom layer classes \(Doubler\)"):
        load_keras_model(path)


def test_lambda_in_a_savedmodel_is_refused(tmp_path: Path) -> None:
    from tensorflow import keras

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(tmp_path / "lam")
    with pytest.raises(ModelFileError, match="Lambda"):
        load_keras_model(tmp_path / "lam")


def test_pruned_model_file_loads(tmp_path: Path) -> None:
    import tensorflow_model_optimization as tfmot

    model = build_model(16, 5, MLPConfig(hidden_units=(8,)))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model)
    save_keras_model(pruned, tmp_path / "pruned.h5")
    loaded = load_keras_model(tmp_path / "pruned.h5")
    assert any(type(layer).__name__ == "PruneLowMagnitude" for layer in loaded.layers)


def test_a_newer_qkeras_layer_is_refused_naming_what_works(tmp_path: Path) -> None:
    """QDenseBatchnorm (QKeras releases after the pinned 0.9.0) is named with the layers that
    convert, not as an unknown custom class."""
    from tensorflow import keras

    class QDenseBatchnorm(keras.layers.Dense):  # stands in for the newer QKeras class
        pass

    inputs = keras.Input((4,))
    model = keras.Model(inputs, QDenseBatchnorm(2, name="folded")(inputs))
    path = tmp_path / "newer.h5"
    model.save(path)
    with pytest.raises(ModelFileError, match=r"uses QDenseBatchnorm, a layer of QKeras releases"):
        load_keras_model(path)
