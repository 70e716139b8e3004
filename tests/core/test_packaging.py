"""The stage folders are mapped to hepfpga.<stage>: every way of importing sees them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hepfpga

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("train", "quantize", "deploy", "firmware", "pipeline", "cli")


def test_public_api_is_pinned() -> None:
    public = {name for name in dir(hepfpga) if not name.startswith("_")}
    assert set(hepfpga.__all__) - {"__version__"} <= public
    assert "run_pipeline" in hepfpga.__all__ and "load_config" in hepfpga.__all__


def test_the_version_is_the_projects_and_lives_in_the_core() -> None:
    from hepfpga._version import __version__

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert declared is not None
    assert __version__ == declared.group(1) == hepfpga.__version__


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    # setuptools puts only the listed packages in a wheel (an editable install finds the
    # others, so only a plain install would miss them)
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]
    found = set()
    for package, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    assert found == set(setuptools["packages"])


@pytest.mark.parametrize("stage", STAGES)
def test_stage_resolves_to_its_top_level_folder(stage: str) -> None:
    module = __import__(f"hepfpga.{stage}", fromlist=["_"])
    assert Path(module.__file__).resolve().parent.name == stage


def test_import_from_outside_the_checkout(tmp_path: Path) -> None:
    code = (
        "import hepfpga.train.jets, hepfpga.firmware, hepfpga.quantize.qat; "
        "print(hepfpga.train.jets.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().endswith(str(Path("train") / "jets.py"))


@pytest.mark.slow
def test_wheel_contains_stages_sample_and_typing_marker(tmp_path: Path) -> None:
    # build from a copy: setuptools writes build/ and *.egg-info/ beside the sources
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hepfpga-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for stage in STAGES:
        assert f"hepfpga/{stage}/__init__.py" in names
    assert "hepfpga/py.typed" in names
    assert "hepfpga/train/sample/jets.npz" in names
    assert not any(name.startswith(("tests/", "train/")) for name in names)
