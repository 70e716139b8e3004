"""mypy checks the package as installed (``hepfpga.<stage>`` resolved) and finds no error.

``.ci/mypy.py`` lays the stage folders out as ``hepfpga/<stage>`` (mypy cannot follow
setuptools' ``package-dir``) and runs mypy with ``[tool.mypy]`` of pyproject.toml; a broken
layout shows up as unresolved ``hepfpga.<stage>`` imports, a type error anywhere as a finding.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (it is in the 'test' extra: pip install -e '.[test]')",
)
def test_mypy_finds_no_errors_across_stages() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "mypy.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"mypy found errors (python .ci/mypy.py):\n{report}"
    assert "Success: no issues found" in report, report
