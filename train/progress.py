"""Progress bars (per epoch, per trial) that stay quiet where nobody watches them.

A bar is shown only on a terminal (tqdm's ``disable=None``), never when the environment
variable ``CI`` is set, and never when the ``hepfpga`` logger is above INFO (``hepfpga -q``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tqdm import tqdm

__all__ = ["epoch_progress", "progress_bar", "progress_disabled"]


def progress_disabled(quiet: bool = False) -> bool | None:
    """tqdm's ``disable``: True (quiet, ``-q`` or CI), or None (shown on a terminal only)."""
    if quiet or os.environ.get("CI") or logging.getLogger("hepfpga").level > logging.INFO:
        return True
    return None


def progress_bar(total: int, desc: str, unit: str, *, quiet: bool = False) -> Any:
    """A tqdm bar of ``total`` steps (see :func:`progress_disabled`)."""

    return tqdm(total=total, desc=desc, unit=unit, disable=progress_disabled(quiet), leave=False)


def epoch_progress(epochs: int, desc: str = "epochs") -> Any:
    """A Keras callback advancing a bar per epoch, with the validation loss and accuracy."""
    # deferred: TensorFlow loads slowly
    from tensorflow import keras

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.bar = progress_bar(epochs, desc, "epoch")

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            shown = {k: f"{logs[k]:.4f}" for k in ("val_loss", "val_accuracy") if k in logs}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

        def on_train_end(self, logs: dict | None = None) -> None:
            self.bar.close()

    return EpochProgress()
