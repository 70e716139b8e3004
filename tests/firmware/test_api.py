"""The public API of hepfpga.firmware is pinned by __all__."""

from __future__ import annotations

import hepfpga.firmware as firmware


def test_public_api() -> None:
    assert sorted(firmware.__all__) == [
        "Comparison",
        "FirmwareOptions",
        "FirmwareProject",
        "build_hls_config",
        "compile_project",
        "predict",
        "predict_logits",
        "record_verification",
        "synthesize",
        "verify_qkeras",
        "write_project",
    ]
    public = {name for name in dir(firmware) if not name.startswith("_")}
    assert set(firmware.__all__) <= public
    assert public - set(firmware.__all__) <= {"csim", "hls_config", "options", "project", "verify"}
