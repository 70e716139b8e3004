"""Models trained with pruning (``tensorflow_model_optimization``): the pruning wrappers come
off before a model is converted, traced or profiled; the masks are already in the weights."""

from __future__ import annotations

from typing import Any

__all__ = ["strip_pruning"]


def strip_pruning(model: Any) -> Any:
    """``model`` without tfmot pruning wrappers (the pruned weights, masks applied)."""
    if not any(type(layer).__name__ == "PruneLowMagnitude" for layer in model.layers):
        return model
    # deferred: TensorFlow loads slowly
    import tensorflow_model_optimization as tfmot
    from tensorflow import keras

    stripped = tfmot.sparsity.keras.strip_pruning(model)
    # strip_pruning reuses the unwrapped layers, which then belong to two graphs; a fresh
    # clone gives each layer one inbound node again
    clone = keras.models.clone_model(stripped)
    clone.set_weights(stripped.get_weights())
    return clone
