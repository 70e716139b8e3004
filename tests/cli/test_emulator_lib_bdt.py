"""``hepfpga emulator-lib RUN`` with the run's BDT (conifer's C++ emulation) packaged beside the
network (hepfpga.firmware.emulator_lib_bdt).

The run folder is made of the real artifacts in a run's layout, cheaper than a whole run: a
tiny QKeras tagger (``qkeras_model.h5``), its test-bench events, a tiny scikit-learn BDT on
the same features converted by the BDT stage's own :func:`~hepfpga.train.bdt.convert_bdt`
into ``bdt_firmware/``, and the ``bdt`` section of the run's config in ``manifest.json``. The
package is written and built (CMake, g++) once per module.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from emulator_lib_models import tiny_model

from hepfpga._schema import to_plain
from hepfpga.cli import main
from hepfpga.cli.emulator_lib import RUN_BDT, RUN_EVENTS, RUN_MODEL, run_bdt
from hepfpga.firmware.emulator_lib import (
    EVENTS_FILE,
    read_events_file,
    run_package_test,
    write_events_file,
)
from hepfpga.firmware.emulator_lib_bdt import BDT_EVENTS_FILE
from hepfpga.train.bdt import BdtConfig, convert_bdt, load_emulation, train_bdt

pytest.importorskip("conifer")

#: the run's BDT: 3 classes x 4 stages of depth-2 trees, the default input/score types
TINY = BdtConfig(enabled=True, n_estimators=4, max_depth=2)


def tiny_tagger() -> Any:
    """A QKeras 8 -> 8 -> 3 tagger (seeded weights)."""
    return tiny_model(11)


def write_run(run: Path, *, bdt: bool = True) -> np.ndarray:
    """A run folder with (``bdt``) or without a BDT; returns its test-bench events."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(600, 3)), axis=1)
    (run / "firmware" / "tb_data").mkdir(parents=True)
    tiny_tagger().save(run / RUN_MODEL)
    events = x[400:].copy()
    # one event in eight outside the BDT's input type (ap_fixed<16,6>: +-32): saturated first
    events[::8] *= 60.0
    np.save(run / RUN_EVENTS, events)
    config = {"bdt": to_plain(TINY if bdt else BdtConfig())}
    (run / "manifest.json").write_text(json.dumps({"config": config}))
    if bdt:
        convert_bdt(train_bdt(x[:400], y[:400], TINY, seed=0), run / "bdt_firmware")
    return events


@pytest.fixture(scope="module")
def bdt_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(run folder, package, the command's output), the package built by --check."""
    if shutil.which("cmake") is None or shutil.which("g++") is None:
        pytest.skip("needs cmake and g++")
    root = tmp_path_factory.mktemp("emulib_bdt")
    write_run(root / "run")
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = main(["emulator-lib", str(root / "run"), "--out", str(root / "pkg"), "--check"])
    assert status == 0, output.getvalue()
    return root / "run", root / "pkg", output.getvalue()


@pytest.mark.slow
def test_run_bdt_is_packaged_and_bit_exact(bdt_package: tuple[Path, Path, str]) -> None:
    """Both libraries in one process (the test program of --check): every network output
    equals ``hepfpga emulate``'s and every BDT score conifer's compiled emulation's."""
    run, package, output = bdt_package
    record = json.loads((package / "package.json").read_text())
    bdt = record["bdt"]
    assert bdt["library"] == "libtagger_bdt_v1.so"
    assert bdt["namespace"].startswith("tagger_bdt_v1_") and bdt["namespace"] != record["namespace"]
    assert (bdt["n_inputs"], bdt["n_outputs"]) == (8, 3)
    assert f"the run's BDT: libtagger_bdt_v1.so in namespace {bdt['namespace']}" in output
    lines = [line for line in output.splitlines() if "outputs identical" in line]
    assert len(lines) == 2 and "libtagger_bdt_v1.so: 200 events" in lines[1], output
    # the trees are conifer's, byte for byte, and conifer's licence travels with its header
    trees = (run / RUN_BDT / "hepfpga_bdt.json").read_text()
    assert trees in (package / "BDT" / "hepfpga_bdt.json.inc").read_text()
    assert "Apache License" in (package / "BDT" / "LICENSE.conifer").read_text()
    for text in ("BuildFile.xml", "CMakeLists.txt"):
        assert "tagger_bdt_v1" in (package / text).read_text()
    assert "## The run's BDT: libtagger_bdt_v1.so" in (package / "README.md").read_text()


@pytest.mark.slow
def test_bdt_library_quantizes_its_inputs_as_quantize_features(
    bdt_package: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """The library rounds and saturates every feature to the BDT's input type before the trees
    (as the run trained and verified them): scores that conifer's bridge gives the raw
    features (a plain cast to the threshold type, wrapping the saturated events) differ."""
    run, package, _ = bdt_package
    x, expected = read_events_file(package / BDT_EVENTS_FILE)
    unquantized = load_emulation(run / RUN_BDT).scores(x.astype(np.float64))
    assert not np.array_equal(unquantized, expected)
    wrong = tmp_path / "bdt_events.bin"
    write_events_file(wrong, x, unquantized)
    build = package / "build"
    crossed = run_package_test(build / "run_events", [(build / "libtagger_bdt_v1.so", wrong)])
    assert crossed.returncode == 1 and "DIFFER" in crossed.output, crossed.output


@pytest.mark.slow
def test_bdt_library_exports_only_the_entry_points(bdt_package: tuple[Path, Path, str]) -> None:
    """The BDT library and the network library share no exported symbol but the loader's two
    entry points (conifer's templates, nlohmann's JSON and ap_fixed stay hidden)."""
    _, package, _ = bdt_package
    exported = []
    for library in ("libtagger_v1.so", "libtagger_bdt_v1.so"):
        nm = subprocess.run(
            ["nm", "-D", "--defined-only", str(package / "build" / library)],
            capture_output=True,
            text=True,
        )
        assert nm.returncode == 0, nm.stderr
        exported.append({line.split()[-1] for line in nm.stdout.splitlines() if line.strip()})
    assert exported[0] & exported[1] == {"create_model", "destroy_model"}
    assert exported[1] == {"create_model", "destroy_model"}


@pytest.mark.slow
def test_run_whose_bdt_failed_packages_the_network_only(
    bdt_package: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _, _ = bdt_package
    failed = tmp_path / "run"
    shutil.copytree(run, failed, ignore=shutil.ignore_patterns("bdt_firmware"))
    reason = "conifer's C++ emulation of the BDT does not compile: no nlohmann/json.hpp"
    (failed / "report.json").write_text(
        json.dumps({"bdt": {"status": "built", "emulation": {"status": "not available",
                                                            "reason": reason}}})
    )  # fmt: skip
    status = main(["emulator-lib", str(failed), "--out", str(tmp_path / "pkg")])
    out = capsys.readouterr().out
    assert status == 0
    record = json.loads((tmp_path / "pkg" / "package.json").read_text())
    assert record["bdt"] == {
        "packaged": False,
        "reason": f"the run's BDT stage wrote no firmware: {reason}",
    }
    assert f"no BDT library: the run's BDT stage wrote no firmware: {reason}" in out
    assert reason in (tmp_path / "pkg" / "README.md").read_text()
    assert not (tmp_path / "pkg" / "BDT").exists() and (tmp_path / "pkg" / EVENTS_FILE).is_file()
    assert not (tmp_path / "pkg" / BDT_EVENTS_FILE).exists()


@pytest.mark.parametrize(
    "state, needle",
    [
        ("disabled", "bdt.enabled is not set"),
        ("no project", "wrote no conifer project (bdt_firmware/emulation/hepfpga_bdt.json)"),
        ("not available", "the run's BDT stage wrote no firmware: flat features only"),
    ],
)
def test_run_without_a_bdt_to_package_says_why(tmp_path: Path, state: str, needle: str) -> None:
    config = {"bdt": {"enabled": state != "disabled"}}
    (tmp_path / "manifest.json").write_text(json.dumps({"config": config}))
    if state == "not available":
        report = {"bdt": {"status": "not available", "reason": "flat features only"}}
        (tmp_path / "report.json").write_text(json.dumps(report))
    bdt, reason = run_bdt(tmp_path)
    assert bdt is None and reason is not None and needle in reason
