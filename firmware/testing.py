"""Helpers for users' own pytest suites.

.. code-block:: python

    from hepfpga.firmware.testing import assert_bit_exact

    def test_my_trigger_firmware_is_exact(tmp_path, monkeypatch):
        monkeypatch.setenv("HEPFPGA_CACHE", str(tmp_path))  # or keep ~/.cache/hepfpga
        assert_bit_exact(load_my_model(), my_events, io_type="io_stream")

The compiled C simulation is cached (``$HEPFPGA_CACHE``, default ``~/.cache/hepfpga``), so a
second run of an unchanged model does not call g++.
"""

from __future__ import annotations

from typing import Any

from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.verify import VerificationReport, verify_model

__all__ = ["assert_bit_exact"]


def assert_bit_exact(
    model: Any,
    x: Any,
    *,
    tolerance: float | None = None,
    cache: bool = True,
    cache_directory: Any = None,
    **options: Any,
) -> VerificationReport:
    """Assert that the hls4ml firmware of ``model`` reproduces it on the events ``x``.

    ``options`` are :class:`hepfpga.firmware.FirmwareOptions` fields (``backend="Vivado"``,
    ``io_type="io_stream"``, ``softmax="argmax"``, ``layer_types={...}``, ...), validated like
    the CLI's: a misspelt one raises :class:`~hepfpga.errors.ConfigError` naming the closest
    valid key (``firmware.io_typ``: did you mean 'io_type'?), not a ``TypeError``. QKeras models
    must give bit-exact logits (exact outputs too for ``softmax="argmax"``/``"logits"``);
    float models, or any model when ``tolerance`` is given, logits within ``tolerance``.

    Raises ``AssertionError`` whose message is the verification summary: every layer's
    agreement and the first diverging layer with its likely cause. Returns the
    :class:`hepfpga.firmware.VerificationReport` when the assertion holds.
    """
    report = verify_model(
        model,
        x,
        FirmwareOptions.from_dict(options),
        tolerance=tolerance,
        cache=cache,
        cache_directory=cache_directory,
    )
    if not report.passed:
        raise AssertionError(
            "the firmware does not reproduce the model "
            f"({report.requirement} required)\n{report.summary()}"
        )
    return report
