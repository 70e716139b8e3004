"""Tagger architectures as registered plugins.

An :class:`Architecture` bundles everything hepfpga needs to run one kind of network:

* its config section (a subclass of :class:`~hepfpga.train.config.ModelConfig`, selected by
  ``model.architecture``, holding its own keys and validating them);
* the input representation it consumes (:mod:`hepfpga.train.representations`; the section
  builds it, and a representation the architecture cannot take is a ``ConfigError`` at
  ``model.representation``);
* the float builder ``build(config, input_shape, n_classes, seed) -> keras.Model``, whose last
  two layers are the logits (a ``Dense`` named ``logits``) and a ``softmax`` ``Activation``, so
  the firmware and the verification compare pre-softmax values exactly;
* its task (a key of :data:`hepfpga.train.tasks.TASKS`; the task decides the loss and the
  evaluation);
* what its firmware promises (``exactness``), written into the report;
* where hls4ml converts another form of the network than the one trained (GarNet: its
  two-input ``xn`` form), ``firmware_form(model) -> FirmwareForm``: the model the firmware is
  built from (same weights, same function) and how its inputs follow from the
  representation's.

The QKeras counterpart comes from the layer mapping of :func:`hepfpga.quantize.quantize_model`
(Dense -> QDense, Conv2D -> QConv2D, LSTM -> QLSTM, ...), so a plugin made of mapped layers needs
nothing more. Adding an architecture is one module that calls :func:`register_architecture`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hepfpga import registry
from hepfpga.train.config import ModelConfig

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

Task = Literal["classification", "anomaly_detection", "generation"]
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
    task: Task = "classification"
    #: whether the firmware's logits can equal QKeras' bit for bit (fixed-point arithmetic
    #: only); False where tables approximate functions computed in float (sigmoid, tanh,
    #: exp): the run then reports the measured agreement instead of requiring exactness
    bit_exact: bool = True
    #: the firmware's form of a trained model (None: the model itself), see FirmwareForm
    firmware_form: Callable[[Any], FirmwareForm] | None = None


#: Registered architectures by the name used in ``model.architecture``.
ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(architecture: Architecture) -> Architecture:
    """Add ``architecture`` to :data:`ARCHITECTURES` (its name must be new)."""
    return registry.add(ARCHITECTURES, architecture.name, architecture, "architecture")


def get_architecture(name: str) -> Architecture:
    """The plugin registered as ``name``; a :class:`ConfigError` at ``model.architecture``
    listing the registered names otherwise."""
    return registry.lookup(ARCHITECTURES, name, "architecture", "model.architecture")


def build_model(
    input_shape: int | tuple[int, ...], n_classes: int, config: ModelConfig, seed: int = 0
) -> keras.Model:
    """The float model of ``config``'s architecture; ``seed`` fixes its initial weights.

    ``input_shape`` is the shape of one example (an int for a flat vector of features).
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    return get_architecture(config.architecture).build(config, shape, n_classes, seed)


# The built-in plugins register themselves on import.
from hepfpga.train.architectures import ae, cnn, conv_ae, gan, garnet, mlp, recurrent, vae  # noqa: E402, F401
