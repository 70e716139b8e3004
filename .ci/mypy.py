"""Run mypy on hepfpga as installed: ``hepfpga.train`` is ``train/`` and so on.

mypy cannot follow setuptools' ``package-dir`` mapping (it would see ``train`` as a top-level
package and every cross-stage type as missing). This script builds, in a temporary folder, a
tree of symbolic links laid out as the installed package (``hepfpga/*`` plus
``hepfpga/<stage>`` -> ``<stage>/``, read from pyproject.toml) and runs mypy on it with the
``[tool.mypy]`` settings of pyproject.toml. Usage: ``python .ci/mypy.py [extra mypy args]``;
exit status is mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    pyproject = ROOT / "pyproject.toml"
    mapping = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"]
    with tempfile.TemporaryDirectory(prefix="hepfpga-mypy-") as tmp:
        tree = Path(tmp)
        for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
            target = tree.joinpath(*package.split("."))
            if package.count(".") == 0:
                target.mkdir()
                for entry in (ROOT / folder).iterdir():
                    if entry.name != "__pycache__":
                        (target / entry.name).symlink_to(entry)
            else:
                target.symlink_to(ROOT / folder, target_is_directory=True)
        command = [sys.executable, "-m", "mypy", "--config-file", str(pyproject), "-p", "hepfpga"]
        return subprocess.call([*command, *argv], cwd=tree, env={**os.environ, "MYPYPATH": ""})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
