"""Fitting Keras models: optimizers and learning-rate schedules from the registries of
:mod:`hepfpga.train.optim`, early stopping on the validation loss."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hepfpga.errors import DataError
from hepfpga.reproducibility import seed_everything
from hepfpga.train.config import FitConfig
from hepfpga.train.optim import OPTIMIZERS, SCHEDULES, build_optimizer, schedule_callbacks
from hepfpga.train.progress import epoch_progress

if TYPE_CHECKING:
    import tensorflow as tf
    from tensorflow import keras

__all__ = ["OPTIMIZERS", "SCHEDULES", "FitResult", "fit_classifier", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (``getrusage``'s
    ``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


@dataclass
class FitResult:
    """What a fit did: epochs run, the best epoch (1-based) and its validation loss, time, the
    per-epoch history (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``) and the
    process's peak resident memory at the end of the fit (MiB, :func:`peak_rss_mb`)."""

    epochs_run: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    peak_rss_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "seconds": round(self.seconds, 2),
            "peak_rss_mb": None if self.peak_rss_mb is None else round(self.peak_rss_mb, 1),
            "history": {k: list(v) for k, v in self.history.items()},
        }


def fit_classifier(
    model: keras.Model,
    x_train: np.ndarray | tf.data.Dataset,
    y_train: np.ndarray,
    x_val: np.ndarray | tf.data.Dataset,
    y_val: np.ndarray,
    settings: FitConfig,
    *,
    seed: int = 0,
    verbose: int = 0,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    shuffle: bool = True,
) -> FitResult:
    """Compile ``model`` with categorical cross-entropy and fit it with early stopping.

    Labels are integer class indices. The learning rate follows ``settings.schedule`` (its
    value per epoch is in the history as ``lr`` unless the schedule is ``constant``). Early
    stopping watches the validation loss and restores
    the weights of the best epoch. ``seed`` fixes the initial Keras RNG state (shuffling,
    dropout) and TensorFlow's op determinism is enabled, so a fit is reproducible. Extra Keras
    ``callbacks`` (pruning...) run after the schedule and the early stopping. ``progress``: a
    bar per epoch on a terminal (quiet under ``hepfpga -q`` and in CI, see
    :mod:`hepfpga.train.progress`).

    ``x_train`` and ``x_val`` are arrays (batched by ``settings.batch_size``, the training
    jets reshuffled each epoch unless ``shuffle`` is False), or ``tf.data`` datasets of
    ``(inputs, labels)`` batches (:mod:`hepfpga.train.stream`: a sample larger than memory),
    with ``y_train`` / ``y_val`` then the labels of the jets they hold.
    """
    # deferred: TensorFlow loads slowly
    import tensorflow as tf
    from tensorflow import keras

    classes = np.unique(np.asarray(y_train))
    if classes.size < 2:
        # cross-entropy on one class learns nothing and every AUC would be NaN
        raise DataError(
            f"all {len(y_train)} training jets have the label {classes.tolist() or '(none)'}; "
            "a classifier needs jets of at least two classes"
        )
    # Same seed, same data -> same weights (random state, op determinism: one helper)
    seed_everything(seed)
    model.compile(
        optimizer=build_optimizer(settings),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=settings.early_stopping.patience,
        min_delta=settings.early_stopping.min_delta,
        restore_best_weights=True,
    )
    start = time.perf_counter()
    data: dict[str, Any] = (
        {"x": x_train, "validation_data": x_val}
        if isinstance(x_train, tf.data.Dataset)
        else {
            "x": x_train,
            "y": y_train,
            "validation_data": (x_val, y_val),
            "batch_size": settings.batch_size,
            "shuffle": shuffle,
        }
    )
    history = model.fit(
        **data,
        epochs=settings.epochs,
        callbacks=[
            *schedule_callbacks(settings, settings.epochs),
            stopper,
            *([epoch_progress(settings.epochs)] if progress else []),
            *callbacks,
        ],
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    val_loss = [float(v) for v in history.history["val_loss"]]
    best = int(np.argmin(val_loss))
    return FitResult(
        epochs_run=len(val_loss),
        best_epoch=best + 1,
        best_val_loss=val_loss[best],
        seconds=seconds,
        history={k: [float(x) for x in v] for k, v in history.history.items()},
        peak_rss_mb=peak_rss_mb(),
    )
