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
nothing more. Adding an architecture is one module that imports :mod:`._base` and calls
:func:`register_architecture`, plus its name in the import below.
"""

# The built-in plugins register themselves on import.
from hepfpga.train.architectures import (  # noqa: F401  (registered on import)
    ae,
    cnn,
    conv_ae,
    deepsets,
    gan,
    garnet,
    mlp,
    recurrent,
    vae,
)
from hepfpga.train.architectures._base import (
    ARCHITECTURES,
    Architecture,
    FirmwareForm,
    build_model,
    get_architecture,
    register_architecture,
)

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "FirmwareForm",
    "build_model",
    "get_architecture",
    "register_architecture",
]
