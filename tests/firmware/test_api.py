"""The public API of hepfpga.firmware is pinned by __all__."""

from __future__ import annotations

from pathlib import Path

import hepfpga.firmware as firmware


def test_public_api() -> None:
    assert sorted(firmware.__all__) == [
        "Backend",
        "Comparison",
        "Diagnosis",
        "EmulationResult",
        "Emulator",
        "FirmwareOptions",
        "FirmwareProject",
        "LayerComparison",
        "LayerPrecision",
        "SoftmaxMode",
        "VerificationReport",
        "build_hls_config",
        "compile_project",
        "emulate_file",
        "plan_conversion",
        "predict",
        "predict_logits",
        "predict_traces",
        "profile_ranges",
        "record_verification",
        "synthesize",
        "verify_model",
        "verify_qkeras",
        "write_project",
    ]
    public = {name for name in dir(firmware) if not name.startswith("_")}
    assert set(firmware.__all__) <= public
    # besides the API, only the package's own modules and subpackages (attributes once imported)
    folder = Path(firmware.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} | {
        p.parent.name for p in folder.glob("*/__init__.py")
    }
    assert public - set(firmware.__all__) <= modules


def test_argmax_flips_report_the_reference_gap() -> None:
    import numpy as np

    from hepfpga.firmware.verify import compare_outputs

    logits = np.zeros((3, 3))
    ref = np.array([[0.50, 0.49, 0.01], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    hls = np.array([[0.49, 0.50, 0.01], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    cmp = compare_outputs(logits, logits, ref, hls)
    assert cmp.argmax_agreement == 1 / 3
    assert cmp.argmax_flip_max_gap == 0.6 - 0.3
    same = compare_outputs(logits, logits, ref, ref)
    assert same.argmax_agreement == 1.0 and same.argmax_flip_max_gap == 0.0


def test_a_requirement_is_checked_on_every_output() -> None:
    from hepfpga.firmware.verify_plan import Requirement
    from hepfpga.firmware.verify_report import Comparison

    exact = Comparison(10, 1.0, 0.0, 0.0, 1.0)
    exact_logits = Comparison(10, 1.0, 0.0, 2**-9, 1.0)
    close = Comparison(10, 0.5, 2**-6, 2**-6, 1.0)
    assert Requirement("bit-exact logits").met_by([exact, exact_logits])
    assert not Requirement("bit-exact logits").met_by([exact, close])
    both = Requirement("bit-exact logits and outputs", exact_outputs=True)
    assert both.met_by([exact]) and not both.met_by([exact, exact_logits])
    assert Requirement("within", tolerance=0.02).met_by([exact, close])
    assert not Requirement("within", tolerance=0.01).met_by([close])
    assert Requirement("bound", bound=2**-6).met_by([close, exact])
    assert not Requirement("bound", bound=2**-7).met_by([close])
