"""Checks of a Keras model's inputs and outputs before a stage takes it (export, firmware,
emulation), each refusing with one sentence as :class:`~hepfpga.errors.ModelFileError`.

Shape checks only, on any Keras or QKeras model: they live in the training stage, the lowest
that handles models, so that every later stage may use them.
"""

from __future__ import annotations

from typing import Any

from hepfpga.errors import ModelFileError

__all__ = ["check_model_inputs", "check_single_input"]


def check_single_input(model: Any) -> None:
    """Refuse, with one sentence, a model hepfpga cannot take: ONNX export and emulation feed
    one input tensor, the event's features, of a fixed size of at least one value, and read at
    least one output (see :func:`check_model_inputs`)."""
    check_model_inputs(model, several=False)


def check_model_inputs(model: Any, *, several: bool = True) -> None:
    """Refuse, with one sentence, a model without inputs or outputs, or with an input of
    undefined or zero size; with ``several=False`` also one with more than one input."""
    name = getattr(model, "name", "model")
    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs or (len(inputs) != 1 and not several):
        raise ModelFileError(
            f"model '{name}' has {len(inputs)} input tensors; this command takes models with "
            "exactly one input (the event's features). Concatenate the inputs into one tensor "
            "first"
        )
    for tensor in inputs:
        shape = tuple(tensor.shape[1:])
        if any(d is None for d in shape):
            raise ModelFileError(
                f"model '{name}' has an input of undefined size {(None, *shape)}; give every "
                "dimension but the batch a fixed size"
            )
        size = 1
        for d in shape:
            size *= int(d)
        if size == 0:
            raise ModelFileError(
                f"model '{name}' takes {(None, *shape)} inputs: zero values per event; a model "
                "needs at least one input feature"
            )
    if not list(getattr(model, "outputs", None) or []):
        raise ModelFileError(f"model '{name}' has no outputs")
