"""Loading Keras and QKeras models from files, with specific errors for bad files.

Accepted: a full Keras HDF5 file (``.h5``/``.hdf5``/``.keras``), a JSON architecture plus an
HDF5 weights file (the layout of hls4ml's example models), or a SavedModel folder. Lambda
layers are refused before anything is executed: their code would run on load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hepfpga.artifacts import atomic_file
from hepfpga.errors import ModelFileError

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = ["load_keras_model", "save_keras_model"]

_ACCEPTED = (
    "a Keras .h5/.hdf5/.keras file, a model JSON file with --weights FILE.h5, "
    "or a SavedModel folder"
)


def _custom_objects() -> dict[str, Any]:
    from hepfpga.quantize.qat import qkeras_custom_objects

    return qkeras_custom_objects()


def _refuse_lambda(config: Any, path: Path) -> None:
    text = json.dumps(config)
    if '"class_name": "Lambda"' in text:
        raise ModelFileError(
            f"{path}: the model contains a Lambda layer, whose Python code would be executed on "
            "load; hepfpga refuses it. Replace it with a standard layer."
        )


def _h5_model_config(path: Path) -> Any:
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
    import warnings

    with atomic_file(Path(path)) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' "HDF5 is legacy" and QKeras serialisation notes
        model.save(tmp, save_format="h5", include_optimizer=False)
