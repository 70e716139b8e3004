"""Loading Keras and QKeras models from files, with specific errors for bad files.

Accepted: a full Keras HDF5 file (``.h5``/``.hdf5``/``.keras``), a JSON architecture plus an
HDF5 weights file (the layout of hls4ml's example models), or a SavedModel folder. Lambda
layers and custom layer classes (anything that is not a Keras, QKeras, tfmot pruning or
hls4ml.contrib GarNet class) are refused before anything is loaded: a Lambda's code would run
on load, and a custom class would need the user's code. GarNet layers load with
:mod:`hepfpga.train.garnet_layers`' classes (their saved config keeps the quantizer widths).
The architecture is read from the file's metadata (the HDF5
``model_config`` attribute, the JSON, or a SavedModel's ``keras_metadata.pb``) and checked
first.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hepfpga.artifacts import atomic_file
from hepfpga.errors import ModelFileError
from hepfpga.quantize.hgq import hgq_custom_objects
from hepfpga.quantize.qat import qkeras_custom_objects
from hepfpga.train.garnet_layers import garnet_custom_objects

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = [
    "load_keras_model",
    "save_keras_model",
]

_ACCEPTED = (
    "a Keras .h5/.hdf5/.keras file, a model JSON file with --weights FILE.h5, "
    "or a SavedModel folder"
)


def _custom_objects() -> dict[str, Any]:
    objects = dict(qkeras_custom_objects())
    objects.update(garnet_custom_objects())  # hls4ml.contrib's GarNet layers, reloadable
    objects.update(hgq_custom_objects())  # HGQ's layers (the hgq extra), when installed
    try:  # models saved during pruning-aware training keep tfmot's wrapper
        # deferred: TensorFlow loads slowly
        from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
            PruneLowMagnitude,
        )
    except ImportError:  # pragma: no cover - tfmot is a dependency
        return objects
    objects["PruneLowMagnitude"] = PruneLowMagnitude
    return objects


def _refuse_lambda(config: Any, path: Path) -> None:
    text = json.dumps(config)
    if '"class_name": "Lambda"' in text:
        raise ModelFileError(
            f"{path}: the model contains a Lambda layer, whose Python code would be executed on "
            "load; hepfpga refuses it. Replace it with a standard layer."
        )
    unknown = sorted(_layer_classes(config) - _known_classes())
    newer = [name for name in unknown if name in _NEWER_QKERAS]
    if newer:
        raise ModelFileError(f"{path}: the model uses {newer[0]}, {_NEWER_QKERAS[newer[0]]}")
    if unknown:
        raise ModelFileError(
            f"{path}: the model uses custom layer classes ({', '.join(unknown)}), whose code "
            "hepfpga neither has nor runs; only Keras, QKeras and tfmot pruning layers are "
            "accepted"
        )


#: layers of QKeras releases newer than the pinned one -> what to use instead
_NEWER_QKERAS = {
    "QDenseBatchnorm": "a layer of QKeras releases newer than the installed 0.9.0 (which "
    "hls4ml 1.3 pins); save the model with QDense followed by BatchNormalization (hepfpga "
    "keeps the batch normalization as its own exact step), or use QConv2DBatchnorm",
}


def _layer_classes(config: Any) -> set[str]:
    """``class_name`` of every layer in a (nested) model config."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            inner = node.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
                for layer in inner["layers"]:
                    if isinstance(layer, dict) and isinstance(layer.get("class_name"), str):
                        found.add(layer["class_name"])
                    walk(layer)
            elif isinstance(inner, dict) and isinstance(inner.get("layer"), dict):  # wrappers
                wrapped = inner["layer"]
                if isinstance(wrapped.get("class_name"), str):
                    found.add(wrapped["class_name"])
                walk(wrapped)

    walk(config)
    return found


def _known_classes() -> set[str]:
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    known = {name for name in dir(keras.layers) if not name.startswith("_")}
    known |= {"Functional", "Sequential", "Model", "InputLayer", "PruneLowMagnitude"}
    known |= set(_custom_objects())
    return known


def _saved_model_config(path: Path) -> Any:
    """The Keras architecture recorded in a SavedModel's ``keras_metadata.pb`` (or None)."""
    metadata = path / "keras_metadata.pb"
    if not metadata.is_file():
        return None
    try:
        # deferred: TensorFlow loads slowly
        from keras.src.protobuf.saved_metadata_pb2 import SavedMetadata
    except ImportError:  # pragma: no cover - older layouts of Keras 2
        # deferred: TensorFlow loads slowly
        from tensorflow.python.keras.protobuf.saved_metadata_pb2 import SavedMetadata

    proto = SavedMetadata()
    try:
        proto.ParseFromString(metadata.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise ModelFileError(f"{path}: unreadable keras_metadata.pb ({exc})") from exc
    for node in proto.nodes:
        if node.node_path == "root":
            try:
                return json.loads(node.metadata)
            except json.JSONDecodeError:
                return None
    return None


def _zip_model_config(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not a Keras .keras archive ({exc})") from exc


def _h5_model_config(path: Path) -> Any:
    # deferred: h5py loads slowly
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except OSError as exc:
        raise ModelFileError(f"{path}: not an HDF5 file ({exc}); expected {_ACCEPTED}") from exc
    if raw is None:
        raise ModelFileError(
            f"{path}: an HDF5 file without a model architecture (a weights-only file?); "
            f"expected {_ACCEPTED}"
        )
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def load_keras_model(path: str | Path, *, weights: str | Path | None = None) -> keras.Model:
    """Load a Keras/QKeras model; raise :class:`ModelFileError` saying what is wrong."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}; expected {_ACCEPTED}")
    objects = _custom_objects()
    try:
        if path.is_dir():
            if not (path / "saved_model.pb").is_file():
                raise ModelFileError(
                    f"{path}: a folder without saved_model.pb; expected {_ACCEPTED}"
                )
            metadata = _saved_model_config(path)
            if metadata is None:
                raise ModelFileError(
                    f"{path}: a SavedModel without Keras metadata (keras_metadata.pb) cannot be "
                    "checked for Lambda or custom layers; save it with Keras (model.save)"
                )
            _refuse_lambda(metadata, path)
            return keras.models.load_model(path, custom_objects=objects, compile=False)
        if path.suffix == ".json":
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelFileError(f"{path}: not a JSON model architecture ({exc})") from exc
            _refuse_lambda(config, path)
            model = keras.models.model_from_json(json.dumps(config), custom_objects=objects)
            if weights is None:
                raise ModelFileError(
                    f"{path}: a JSON architecture needs its weights file (--weights FILE.h5)"
                )
            model.load_weights(str(weights))
            return model
        if path.suffix == ".keras" and zipfile.is_zipfile(path):  # Keras' zip format
            _refuse_lambda(_zip_model_config(path), path)
            return keras.models.load_model(
                path, custom_objects=objects, compile=False, safe_mode=True
            )
        if path.suffix in (".h5", ".hdf5", ".keras"):
            _refuse_lambda(_h5_model_config(path), path)
            return keras.models.load_model(path, custom_objects=objects, compile=False)
    except ModelFileError:
        raise
    except Exception as exc:  # Keras raises ValueError, OSError, KeyError, TypeError...
        raise ModelFileError(f"{path}: could not be loaded as a Keras model: {exc}") from exc
    raise ModelFileError(f"{path}: unknown model file type '{path.suffix}'; expected {_ACCEPTED}")


def save_keras_model(model: keras.Model, path: Path) -> None:
    """Save a full model (architecture, weights) as HDF5 through a temporary file."""

    # deferred: h5py loads slowly
    import h5py

    # HDF5 ends the process (SIGSEGV in H5Fflush) when a write fails, e.g. on a full disk: the
    # file is built in memory and its bytes written by Python, whose failure is an OSError
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' "HDF5 is legacy" and QKeras serialisation notes
        with h5py.File(buffer, "w") as h5:
            model.save(h5, save_format="h5", include_optimizer=False)
    with atomic_file(Path(path)) as tmp:
        tmp.write_bytes(buffer.getvalue())
