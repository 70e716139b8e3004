"""A Keras model base for custom training steps that report batch-averaged losses."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def tracked_model() -> type:
    """``TrackedModel(name, metric_names)``: a ``keras.Model`` whose ``metrics`` are one
    ``keras.metrics.Mean`` per name, reset by Keras every epoch, so ``fit`` logs each loss
    averaged over the epoch's batches (and ``val_<name>`` over the validation batches);
    ``_record(values)`` adds one batch's values and returns the logs."""
    from tensorflow import keras

    class TrackedModel(keras.Model):  # type: ignore[misc]
        def __init__(self, name: str, metric_names: tuple[str, ...]) -> None:
            super().__init__(name=name)
            self.trackers = [keras.metrics.Mean(n) for n in metric_names]

        @property
        def metrics(self) -> list[Any]:
            return self.trackers

        def _record(self, values: Any) -> dict[str, Any]:
            for tracker, value in zip(self.trackers, values, strict=True):
                tracker.update_state(value)
            return {t.name: t.result() for t in self.trackers}

    return TrackedModel
