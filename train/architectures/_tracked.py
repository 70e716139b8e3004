"""A Keras model base for custom training steps that report batch-averaged losses."""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hepfpga.train.config import FitConfig


@functools.cache
def tracked_model() -> type:
    """``TrackedModel(name, metric_names)``: a ``keras.Model`` whose ``metrics`` are one
    ``keras.metrics.Mean`` per name, reset by Keras every epoch, so ``fit`` logs each loss
    averaged over the epoch's batches (and ``val_<name>`` over the validation batches);
    ``_record(values)`` adds one batch's values and returns the logs."""
    # deferred: TensorFlow loads slowly
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


def fit_tracked(
    trainer: Any,
    x_train: np.ndarray,
    x_val: np.ndarray,
    settings: FitConfig,
    callbacks: list[Any],
    verbose: int = 0,
) -> tuple[dict[str, list[float]], float]:
    """Fit a compiled :func:`tracked_model` on ``x_train`` (float32, reshuffled every epoch),
    validating on ``x_val`` every epoch, for ``settings.epochs`` epochs of
    ``settings.batch_size`` events; returns the per-epoch logs as floats and the seconds
    taken."""
    start = time.perf_counter()
    history = trainer.fit(
        np.ascontiguousarray(x_train, dtype=np.float32),
        validation_data=(np.ascontiguousarray(x_val, dtype=np.float32),),
        batch_size=settings.batch_size,
        epochs=settings.epochs,
        callbacks=callbacks,
        shuffle=True,
        verbose=verbose,
    )
    logs = {k: [float(v) for v in values] for k, values in history.history.items()}
    return logs, time.perf_counter() - start
