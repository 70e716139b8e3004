"""Input-gradient saliency: what a tagger looks at.

For class ``c`` the saliency of input ``i`` is the mean over the jets *of class c* of
``|d s_c / d x_i|``, where ``s_c`` is the model's output for class ``c`` (the softmax
probability for the built-in taggers) and ``x`` the model's input (scaled features, or image
pixels). The gradients are exact (TensorFlow's automatic differentiation of the float model)
and taken in float32. For the substructure features the result is a per-class feature
importance; for jet images, a per-class heat map (summed over image channels when plotted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from hepfpga.errors import DataError

__all__ = ["Saliency", "input_saliency", "plot_saliency"]


@dataclass(frozen=True)
class Saliency:
    """``values[c]``: mean ``|d s_c / d x|`` over the jets of class ``c``, the shape of one
    input; ``n_events[c]`` jets averaged (0: the class had no jets, values are NaN)."""

    values: np.ndarray
    class_names: tuple[str, ...]
    n_events: tuple[int, ...]
    input_names: tuple[str, ...] | None = None

    def ranking(self, class_name: str) -> list[tuple[str, float]]:
        """Flat inputs only: (input name, saliency) of one class, largest first."""
        if self.values.ndim != 2 or self.input_names is None:
            raise DataError("a ranking needs flat, named inputs (the substructure features)")
        row = self.values[self.class_names.index(class_name)]
        order = np.argsort(-row, kind="stable")
        return [(self.input_names[i], float(row[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        """Flat inputs: ``{class: {input: value}}``; images: the per-class maps as lists."""
        if self.values.ndim == 2 and self.input_names is not None:
            return {
                c: dict(zip(self.input_names, map(float, row), strict=True))
                for c, row in zip(self.class_names, self.values, strict=True)
            }
        return {c: row.tolist() for c, row in zip(self.class_names, self.values, strict=True)}


def input_saliency(
    model: Any,
    x: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    input_names: Sequence[str] | None = None,
    batch_size: int = 1024,
) -> Saliency:
    """Mean absolute input gradient of each class's output over the jets of that class."""
    # deferred: TensorFlow loads slowly
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    labels = np.asarray(labels)
    if labels.shape != (len(x),):
        raise DataError(f"expected {len(x)} labels, got shape {labels.shape}")
    n_classes = len(class_names)
    sums = np.zeros((n_classes, *x.shape[1:]), dtype=np.float64)
    counts = np.zeros(n_classes, dtype=np.int64)
    for start in range(0, len(x), batch_size):
        xb = tf.convert_to_tensor(x[start : start + batch_size])
        yb = labels[start : start + batch_size]
        with tf.GradientTape() as tape:
            tape.watch(xb)
            out = model(xb, training=False)
            if out.shape[-1] != n_classes:
                raise DataError(
                    f"the model has {out.shape[-1]} outputs, expected one per class ({n_classes})"
                )
            # each jet's own-class output: the gradient of the sum is the per-jet gradient
            picked = tf.gather(out, yb, axis=1, batch_dims=1)
            total = tf.reduce_sum(picked)
        grads = np.abs(tape.gradient(total, xb).numpy())
        for c in range(n_classes):
            mask = yb == c
            sums[c] += grads[mask].sum(axis=0)
            counts[c] += int(mask.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        values = sums / counts.reshape((-1,) + (1,) * (sums.ndim - 1))
    return Saliency(
        values=values,
        class_names=tuple(class_names),
        n_events=tuple(int(n) for n in counts),
        input_names=tuple(input_names) if input_names is not None else None,
    )


def plot_saliency(saliency: Saliency, target: Path | IO[bytes], *, fmt: str | None = None) -> None:
    """Flat inputs: a class x feature heat map (each class row normalised to its maximum, the
    raw values annotated); images: one heat map per class (summed over channels)."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    values = saliency.values
    if values.ndim == 2:
        names = saliency.input_names or tuple(str(i) for i in range(values.shape[1]))
        norm = values / np.nanmax(values, axis=1, keepdims=True)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names)), 0.5 * len(values) + 1.8))
        image = ax.imshow(norm, cmap="viridis", aspect="auto", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(values)), saliency.class_names)
        fig.colorbar(image, ax=ax, label="mean |d score / d input| (row max = 1)")
    else:
        maps = values.sum(axis=-1) if values.ndim == 4 else values
        n = len(maps)
        fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), squeeze=False)
        for ax, heat, name in zip(axes[0], maps, saliency.class_names, strict=True):
            image = ax.imshow(heat, cmap="inferno", origin="lower")
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(target, format=fmt, dpi=110)
    plt.close(fig)
