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

from hepfpga.errors import VerificationError
from hepfpga.firmware.emulator_lib import PackageRun, check_package, write_emulator_package
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.verify import VerificationReport, verify_model

__all__ = ["assert_bit_exact", "assert_emulator_library_exact"]


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


def assert_emulator_library_exact(
    model: Any,
    x: Any,
    out_dir: Any,
    *,
    name: str | None = None,
    version: str = "v1",
    **options: Any,
) -> PackageRun:
    """Assert that the C++ trigger emulator library of ``model`` reproduces ``hepfpga
    emulate`` bit for bit on the events ``x`` (events x inputs).

    Writes the package (:func:`hepfpga.firmware.emulator_lib.write_emulator_package`) to
    ``out_dir`` (which must not exist; e.g. under pytest's ``tmp_path``), builds it with CMake
    and g++ and runs its test program, which loads the library with ``dlopen`` and compares
    every output of every event. ``options`` are :class:`hepfpga.firmware.FirmwareOptions`
    fields, validated like the CLI's. Raises ``AssertionError`` with the test program's output
    when an output differs; returns its :class:`~hepfpga.firmware.emulator_lib.PackageRun`
    (output with events/s and load/unload times) otherwise.

    .. code-block:: python

        def test_my_trigger_library(tmp_path):
            assert_emulator_library_exact(load_my_model(), my_events, tmp_path / "lib")
    """
    package = write_emulator_package(
        model, x, out_dir, name=name, version=version, options=FirmwareOptions.from_dict(options)
    )
    try:
        return check_package(package.path)
    except VerificationError as exc:
        raise AssertionError(str(exc)) from None
