"""Quantization methods (``quantization.method``), one registry entry each.

``qkeras`` (the default): one bit width per layer kind/layer, QKeras quantizers
(:mod:`hepfpga.quantize.qat`). ``hgq``: a bit width per weight and per activation trained
against HGQ's resource estimate (:mod:`hepfpga.quantize.hgq`); its firmware is built from the
proxy model. Each entry says how to make the quantized counterpart of a float model, which
extra training callbacks it needs, the file the run writes it to, and the architectures it
covers (with the reason for the others).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hepfpga.errors import ConfigError
from hepfpga.quantize.hgq import (
    check_hgq_float_model,
    check_hgq_model,
    hgq_callbacks,
    hgq_counterpart,
    is_hgq_model,
)
from hepfpga.quantize.qat import quantize_model
from hepfpga.registry import Registry
from hepfpga.train.config import EarlyStoppingConfig

__all__ = [
    "QUANTIZATION_METHODS",
    "QuantizationMethod",
    "check_method_architecture",
    "check_method_model",
    "method_of_model",
]


@dataclass(frozen=True)
class QuantizationMethod:
    """One quantization family."""

    name: str
    description: str
    #: ``(float model, quantization config) -> quantized counterpart`` (float weights in)
    counterpart: Callable[[Any, Any], Any]
    #: ``quantization config -> extra Keras callbacks of quantization-aware training``
    callbacks: Callable[[Any], list[Any]]
    #: the file of the run folder the trained counterpart is saved to
    model_file: str
    #: the architectures (``model.architecture``) covered; None: every one
    architectures: tuple[str, ...] | None = None
    #: why the others are not
    refusal: str = ""
    #: architecture -> why it is not covered (naming the layer); others: ``refusal``
    refusals: Mapping[str, str] = field(default_factory=dict)
    #: ``quantization config -> the fit settings QAT uses`` (None: the config as it is)
    fit_settings: Callable[[Any], Any] | None = None
    #: the file of the run folder holding the model the firmware is built from (None: the
    #: trained counterpart, ``model_file``)
    proxy_file: str | None = None
    #: the name messages and labels show (``QKeras``, ``HGQ``); empty: ``name``
    label: str = ""
    #: ``float model ->`` None, or the :class:`~hepfpga.errors.ConversionError` the
    #: counterpart would raise, checked before any training (None: every layer maps)
    check_model: Callable[[Any], None] | None = None

    @property
    def display_name(self) -> str:
        return self.label or self.name

    @property
    def firmware_model_file(self) -> str:
        """The run folder's file of the model the firmware and the RTL reproduce."""
        return self.proxy_file or self.model_file


def _hgq_fit_settings(config: Any) -> Any:
    """HGQ's loss adds beta x EBOPs, and beta ramps up: the validation loss is lowest at an
    epoch of small beta, so early stopping on it would stop there and restore wide bit
    widths. HGQ trains every epoch (patience = epochs: never stops, never restores)."""
    return replace(config, early_stopping=EarlyStoppingConfig(patience=max(config.epochs, 1)))


QUANTIZATION_METHODS: Registry[QuantizationMethod] = Registry("quantization method")

QUANTIZATION_METHODS.register(
    "qkeras",
    QuantizationMethod(
        "qkeras",
        "QKeras quantizers, one bit width per layer kind or layer",
        counterpart=quantize_model,
        callbacks=lambda config: [],
        model_file="qkeras_model.h5",
        label="QKeras",
    ),
)
QUANTIZATION_METHODS.register(
    "hgq",
    QuantizationMethod(
        "hgq",
        "HGQ 0.2.6: a bit width per weight and per activation, trained against EBOPs",
        counterpart=lambda model, config: hgq_counterpart(model, config.hgq),
        callbacks=lambda config: hgq_callbacks(config.hgq),
        model_file="hgq_model.h5",
        proxy_file="hgq_proxy_model.h5",
        label="HGQ",
        architectures=("mlp", "cnn"),
        fit_settings=_hgq_fit_settings,
        check_model=check_hgq_float_model,
        refusal=(
            "hepfpga maps the mlp and cnn classifiers' layers to HGQ (Dense, Conv2D, "
            "MaxPooling2D, Flatten, relu); this architecture's are not mapped"
        ),
        refusals={
            "lstm": "its LSTM layer has no HGQ 0.2.6 counterpart (HGQ has no recurrent layers)",
            "gru": "its GRU layer has no HGQ 0.2.6 counterpart (HGQ has no recurrent layers)",
            "garnet": "its GarNet layer has no HGQ 0.2.6 counterpart",
            "deepsets": "its layer 'pool' (a global pooling over the particles) has no HGQ "
            "0.2.6 counterpart (HGQ has no global pooling layers)",
            "conv_ae": "its UpSampling2D layers have no HGQ 0.2.6 counterpart",
        },
    ),
)


def check_method_architecture(method: str, architecture: str) -> None:
    """A :class:`ConfigError` at ``quantization.method`` when ``method`` does not cover
    ``architecture``, with the reason."""
    entry = QUANTIZATION_METHODS[method]
    if entry.architectures is not None and architecture not in entry.architectures:
        reason = entry.refusals.get(architecture, entry.refusal)
        raise ConfigError(
            f"quantization method '{method}' covers the architectures "
            f"{', '.join(entry.architectures)}, not '{architecture}': {reason}",
            path="quantization.method",
        )


def check_method_model(method: str, model: Any) -> None:
    """The :class:`~hepfpga.errors.ConversionError` naming the first layer of the float
    ``model`` that ``method`` has no counterpart for, before any training."""
    check = QUANTIZATION_METHODS[method].check_model
    if check is not None:
        check(model)


def method_of_model(model: Any) -> str:
    """The quantization method (a name of :data:`QUANTIZATION_METHODS`) of a quantized Keras
    model: ``hgq`` when it holds an HGQ layer (checked: no QKeras layer, every HGQ layer
    convertible, else a :class:`~hepfpga.errors.ConversionError` naming the layer), else
    ``qkeras``."""
    if is_hgq_model(model):
        check_hgq_model(model)
        return "hgq"
    return "qkeras"
