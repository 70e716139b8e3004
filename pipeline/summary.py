"""What ``hepfpga compare`` shows of one finished run (:class:`RunSummary`), and the panels a
task's ROC overlay draws its runs' curves on (:func:`draw_panels`, :func:`save_panels`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepfpga._schema import to_plain
from hepfpga.pipeline.figures import FigureTable
from hepfpga.pipeline.run import MODELS, model_label
from hepfpga.train.roc_plot import finish_roc_axes

__all__ = ["RunSummary", "curve_model", "draw_panels", "save_panels"]


@dataclass(frozen=True)
class RunSummary:
    """What the comparison shows of one run (None: the run has no such number)."""

    folder: Path
    name: str
    #: the run's task (a name of :data:`hepfpga.train.tasks.TASKS`)
    task: str
    architecture: str
    representation: str
    parameters: int | None
    status: str
    #: what :attr:`headline` holds (``accuracy``, ``mean signal AUC``, ``classifier AUC``)
    headline_name: str
    #: model ("float", "qkeras", "hls") -> the task's headline figure on the test set
    headline: dict[str, float | None]
    #: the task's detailed tables (see :mod:`hepfpga.pipeline.figures`)
    tables: tuple[FigureTable, ...]
    #: the firmware's exactness against QKeras, in words
    firmware: str
    seconds: float | None
    #: the classes of the run's sample, in label order
    classes: tuple[str, ...] = ()
    #: background and signal classes of an anomaly-detection run (empty otherwise)
    background_classes: tuple[str, ...] = ()
    signal_classes: tuple[str, ...] = ()
    #: the run's quantization method (``quantization.method``: ``qkeras``, ``hgq``)
    quantization_method: str = "qkeras"

    def model_label(self, model: str) -> str:
        """How to name ``model`` (``float``, ``qkeras``, ``hls``) in the overlays' legends:
        the quantized model by the run's method (``QKeras``, ``HGQ``)."""
        return model_label(model, self.quantization_method)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = to_plain(self)
        return out


def curve_model(names: Iterable[str]) -> str | None:
    """The model whose curve an overlay draws among the arrays ``names`` of a run's
    ``scores.npz``: the firmware's (``hls``) when the run has one, else QKeras, else float."""
    present = set(names)
    return next((m for m in reversed(MODELS) if m in present), None)


def draw_panels(panels: list[str]) -> tuple[Any, Any]:
    """A figure with one axes per panel title, side by side."""
    # deferred: matplotlib loads slowly
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    return fig, axes


def save_panels(fig: Any, axes: Any, panels: list[str], path: Path, ylabel: str) -> None:
    """Title and finish every ROC panel of :func:`draw_panels` and write the PNG ``path``."""
    # deferred: matplotlib loads slowly
    import matplotlib.pyplot as plt

    for c, (ax, title) in enumerate(zip(axes[0], panels, strict=True)):
        finish_roc_axes(ax, ylabel=ylabel if c == 0 else "", title=title, legend_size=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
