"""GarNet and GarNetStack (hls4ml.contrib) with a config that reloads.

The Keras layers of the ``garnet`` architecture, in the training stage because the float model
is built from them; :mod:`hepfpga.quantize` (QAT, model files) and :mod:`hepfpga.firmware` use
the same classes from here.

hls4ml 1.3's ``GarNet.get_config`` drops ``total_bits`` and ``int_bits``, so a saved
quantized GarNet (``quantize_transforms=True``) cannot be loaded back: its constructor formats
``quantized_bits(None, None)`` and fails. :func:`garnet_classes` returns subclasses with the
same class names (``GarNet``, ``GarNetStack``: what hls4ml's converter dispatches on) and the
same computation, whose config also holds the two bit widths. hepfpga builds its GarNet layers
from them and loads every saved ``GarNet``/``GarNetStack`` with them
(:func:`garnet_custom_objects`).

A quantized GarNet computes, per vertex, ``QDense`` transforms whose kernels (and the input
transform's bias) are ``quantized_bits(total_bits, int_bits, 0, alpha=1)`` (``ap_fixed<
total_bits, int_bits+1>`` values), a float aggregator-distance ``Dense`` (``S``), and rounds
its output with ``quantized_bits(total_bits, int_bits)`` before the mask and the collapse.

Three fixes of hls4ml.contrib's own classes, same computation otherwise: a GarNetStack with
``quantize_transforms=False`` is built as a float stack (contrib tests ``is not None`` and
would build quantized transforms without bit widths), and a saved quantized layer without bit
widths is refused with what to add instead of a ``TypeError``, and a reloaded layer builds
(contrib's ``build`` fails on the list shapes Keras reads back from JSON).
"""

from __future__ import annotations

import functools
from typing import Any

from hepfpga.errors import ModelFileError

__all__ = ["garnet_classes", "garnet_custom_objects", "is_garnet"]

#: class names of hls4ml.contrib's GarNet layers
GARNET_CLASSES = ("GarNet", "GarNetStack")


def is_garnet(layer: Any) -> bool:
    """Whether ``layer`` is one of hls4ml.contrib's GarNet layers (or a subclass of the same
    name)."""
    return type(layer).__name__ in GARNET_CLASSES


def _shape_tuples(input_shape: Any) -> Any:
    """Shapes as tuples: a reloaded model builds its layers from JSON lists, which contrib's
    ``build`` cannot concatenate with tuples."""
    if isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], (list, tuple)):
        return [tuple(shape) for shape in input_shape]
    if isinstance(input_shape, list):
        return tuple(input_shape)
    return input_shape


def _check_bits(config: dict[str, Any]) -> None:
    if config.get("quantize_transforms") and (
        config.get("total_bits") is None or config.get("int_bits") is None
    ):
        raise ModelFileError(
            f"GarNet layer '{config.get('name')}' has quantize_transforms=True but no "
            "total_bits/int_bits in its config (hls4ml 1.3's GarNet.get_config drops them); "
            'add "total_bits": B, "int_bits": I (its quantized_bits(B, I) widths) to the '
            "layer's config in the model file"
        )


class _Reloadable:
    """What both reloadable classes add to hls4ml.contrib's: list shapes built, the bit widths
    (and ``quantize_transforms`` as a bool) in the config, a specific error on reload."""

    def build(self, input_shape: Any) -> None:
        super().build(_shape_tuples(input_shape))  # type: ignore[misc]

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()  # type: ignore[misc]
        config["quantize_transforms"] = bool(config.get("quantize_transforms"))
        config["total_bits"] = getattr(self, "_total_bits", None)
        config["int_bits"] = getattr(self, "_int_bits", None)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        _check_bits(config)
        return cls(**config)


@functools.cache
def garnet_classes() -> dict[str, type]:
    """``{"GarNet": ..., "GarNetStack": ...}``: hls4ml.contrib's layers whose config keeps
    ``total_bits`` and ``int_bits`` (see the module docstring)."""
    # deferred: hls4ml and TensorFlow load slowly
    from hls4ml.contrib import garnet as contrib

    class GarNet(_Reloadable, contrib.GarNet):  # type: ignore[misc]
        """hls4ml.contrib's GarNet whose config round-trips the quantizer bit widths."""

    class GarNetStack(_Reloadable, contrib.GarNetStack):  # type: ignore[misc]
        """hls4ml.contrib's GarNetStack whose config round-trips the quantizer bit widths;
        ``quantize_transforms=False`` builds float transforms (as ``None`` does)."""

        def __init__(self, *args: Any, quantize_transforms: Any = None, **kwargs: Any) -> None:
            kwargs.pop("n_sublayers", None)  # written by get_config, implied by the lists
            super().__init__(*args, quantize_transforms=quantize_transforms or None, **kwargs)

    return {"GarNet": GarNet, "GarNetStack": GarNetStack}


def garnet_custom_objects() -> dict[str, Any]:
    """The custom objects that load saved ``GarNet``/``GarNetStack`` layers."""
    return dict(garnet_classes())
