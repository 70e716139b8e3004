"""The base of the architecture plugins: :class:`Architecture`, :class:`FirmwareForm` and the
registry :data:`ARCHITECTURES` (see :mod:`hepfpga.train.architectures`). A plugin module
imports this one and registers itself; the package imports the built-in plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hepfpga.registry import Registry
from hepfpga.train.config import MODEL_SECTIONS, ModelConfig

if TYPE_CHECKING:
    from tensorflow import keras

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "FirmwareForm",
    "build_model",
    "get_architecture",
    "register_architecture",
]

Builder = Callable[[Any, tuple[int, ...], int, int], "keras.Model"]


@dataclass(frozen=True)
class FirmwareForm:
    """The model a run's firmware is built from and verified against, when it is not the
    trained (QKeras) model itself: the same weights and, on every jet of the representation,
    the same outputs (the run checks this on the test jets), with other inputs."""

    #: the Keras model given to the firmware stage
    model: Any
    #: the representation's input array -> the inputs of ``model`` (a list for several)
    inputs: Callable[[Any], Any]
    #: what differs from the trained model, in words (written into the report)
    description: str


@dataclass(frozen=True)
class Architecture:
    """One registered architecture (see the module docstring)."""

    name: str
    config_class: type[ModelConfig]
    build: Builder
    description: str
    #: what the firmware's outputs promise against QKeras, and why
    exactness: str
    #: the task it serves: a name of :data:`hepfpga.train.tasks.TASKS`
    task: str = "classification"
    #: whether the firmware's logits can equal QKeras' bit for bit (fixed-point arithmetic
    #: only); False where tables approximate functions computed in float (sigmoid, tanh,
    #: exp): the run then reports the measured agreement instead of requiring exactness
    bit_exact: bool = True
    #: the firmware's form of a trained model (None: the model itself), see FirmwareForm
    firmware_form: Callable[[Any], FirmwareForm] | None = None


#: Registered architectures by the name used in ``model.architecture``.
ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def register_architecture(architecture: Architecture) -> Architecture:
    """Add ``architecture`` to :data:`ARCHITECTURES` (its name must be new) and its config
    section to :data:`hepfpga.train.config.MODEL_SECTIONS`."""
    ARCHITECTURES.register(architecture.name, architecture)
    MODEL_SECTIONS.register(architecture.name, architecture.config_class)
    return architecture


def get_architecture(name: str) -> Architecture:
    """The plugin registered as ``name``; a :class:`ConfigError` at ``model.architecture``
    listing the registered names otherwise."""
    return ARCHITECTURES.lookup(name, "model.architecture")


def build_model(
    input_shape: int | tuple[int, ...], n_classes: int, config: ModelConfig, seed: int = 0
) -> keras.Model:
    """The float model of ``config``'s architecture; ``seed`` fixes its initial weights.

    ``input_shape`` is the shape of one example (an int for a flat vector of features).
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    return get_architecture(config.architecture).build(config, shape, n_classes, seed)
