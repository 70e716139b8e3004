"""The layering of the code, read from the source (every import: module level, inside
functions and under ``TYPE_CHECKING``), as ``../shared/ARCHITECTURE.md`` draws it:

- core (``hepfpga/``) imports nothing above it; a stage imports the core and the stages before
  it in the flow (``firmware`` may import ``quantize``, never the reverse); the run layer
  (``pipeline/``) imports the core and the stages; the CLI (``cli/``) imports everything; the
  lazy public facade (``hepfpga/__init__.py``, ``hepfpga/__main__.py``) the runner and the CLI;
- no circle between files;
- an import inside a function is for a heavy dependency only (TensorFlow, hls4ml, matplotlib,
  ... or a hepfpga module that loads one at import) and says so in a comment, on its line or
  on the comment line above its group of imports.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: source folder -> installed package
FOLDERS = {
    "hepfpga": "hepfpga",
    "train": "hepfpga.train",
    "quantize": "hepfpga.quantize",
    "deploy": "hepfpga.deploy",
    "firmware": "hepfpga.firmware",
    "pipeline": "hepfpga.pipeline",
    "cli": "hepfpga.cli",
}
FACADE = {"hepfpga", "hepfpga.__main__"}

#: area -> the areas it may import besides itself
ALLOWED = {
    "core": set(),
    "train": {"core"},
    "quantize": {"core", "train"},
    "deploy": {"core", "train", "quantize"},
    "firmware": {"core", "train", "quantize"},
    "pipeline": {"core", "train", "quantize", "deploy", "firmware"},
    "cli": {"core", "train", "quantize", "deploy", "firmware", "pipeline"},
    "facade": {"core", "pipeline", "cli"},
}

#: third-party packages slow enough to load (or optional) that a module may defer them
HEAVY = {
    "tensorflow", "keras", "qkeras", "tensorflow_model_optimization", "hls4ml", "tf2onnx",
    "onnx", "onnxruntime", "matplotlib", "sklearn", "scipy", "optuna", "sqlalchemy", "dask",
    "distributed", "da4ml", "conifer", "uproot", "awkward", "pyarrow", "pandas", "tritonclient",
    "grpc", "httptools", "uvloop", "pythia8mc", "pythia8", "fastjet", "nvidia", "pybind11",
    "threadpoolctl", "absl", "xgboost", "h5py", "hgq", "HGQ", "qonnx",
}  # fmt: skip


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported hepfpga module, or a third-party top-level package
    internal: bool
    kind: str  # "module", "function" or "typing"
    line: int
    commented: bool


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def area(module: str) -> str:
    if module in FACADE:
        return "facade"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in FOLDERS and parts[1] != "hepfpga":
        return parts[1]
    return "core"


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _commented(lines: list[str], node: ast.stmt, body: list[ast.stmt]) -> bool:
    if "#" in lines[node.lineno - 1]:
        return True
    # the group of imports this one belongs to, then the line above the group
    index = body.index(node)
    while index > 0 and isinstance(body[index - 1], (ast.Import, ast.ImportFrom)):
        index -= 1
    above = body[index].lineno - 2
    return above >= 0 and lines[above].strip().startswith("#")


def _walk(
    body: list[ast.stmt], kind: str, lines: list[str]
) -> Iterator[tuple[ast.Import | ast.ImportFrom, str, bool]]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, kind, _commented(lines, node, body)
            continue
        inner = kind
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and kind == "module":
            inner = "function"
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, "typing", lines)
            yield from _walk(node.orelse, kind, lines)
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list) and children and isinstance(children[0], ast.AST):
                if field == "handlers":
                    for handler in children:
                        yield from _walk(handler.body, inner, lines)
                else:
                    yield from _walk(children, inner, lines)


def _resolve(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports_of(module: str, path: Path) -> list[Import]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node, kind, commented in _walk(ast.parse(text).body, "module", lines):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            for alias in node.names:
                # ``from package import submodule`` imports the submodule, else the package
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in MODULES else base)
        for target in dict.fromkeys(targets):
            if target == "hepfpga" or target.startswith("hepfpga."):
                resolved = _resolve(target)
                if resolved is not None and resolved != module:
                    found.append(Import(module, resolved, True, kind, node.lineno, commented))
            elif target and target.split(".")[0] not in sys.stdlib_module_names:
                found.append(
                    Import(module, target.split(".")[0], False, kind, node.lineno, commented)
                )
            elif target:
                found.append(Import(module, target.split(".")[0], False, kind, node.lineno, True))
    return found


IMPORTS = [item for module, path in MODULES.items() for item in _imports_of(module, path)]


def _heavy_modules() -> set[str]:
    """hepfpga modules that load a heavy package when imported (through module-level imports)."""
    heavy = {
        i.source for i in IMPORTS if i.kind == "module" and not i.internal and i.target in HEAVY
    }
    changed = True
    while changed:
        changed = False
        for i in IMPORTS:
            if i.kind == "module" and i.internal and i.target in heavy and i.source not in heavy:
                heavy.add(i.source)
                changed = True
    return heavy


def _where(item: Import) -> str:
    return f"{MODULES[item.source].relative_to(ROOT)}:{item.line}"


def _cycles(edges: list[Import]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for item in edges:
        graph.setdefault(item.source, set()).add(item.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10_000))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(old)
    return found


def test_the_graph_is_read() -> None:
    # a guard for the tests below: they see the whole tree and its imports
    assert {"hepfpga.errors", "hepfpga.pipeline.runner", "hepfpga.cli.app"} <= set(MODULES)
    assert any(i.kind == "function" for i in IMPORTS)
    assert any(i.kind == "typing" for i in IMPORTS)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_import_reaches_a_higher_layer(layer: str) -> None:
    bad = [
        f"{_where(i)}: {i.source} ({layer}) imports {i.target} ({area(i.target)})"
        for i in IMPORTS
        if i.internal
        and area(i.source) == layer
        and area(i.target) != layer
        and area(i.target) not in ALLOWED[layer]
    ]
    assert bad == [], "\n".join(bad)


def test_no_circle_between_files() -> None:
    cycles = _cycles([i for i in IMPORTS if i.internal])
    assert cycles == [], "\n".join(" <-> ".join(c) for c in cycles)


def test_function_level_imports_are_heavy_and_say_so() -> None:
    heavy = _heavy_modules()
    bad = []
    for i in IMPORTS:
        if i.kind != "function":
            continue
        is_heavy = i.target in heavy if i.internal else i.target in HEAVY
        if not is_heavy:
            bad.append(f"{_where(i)}: {i.target} is light: import it at module level")
        elif not i.commented:
            bad.append(f"{_where(i)}: {i.target} deferred without a comment saying why")
    assert bad == [], f"{len(bad)} function-level imports:\n" + "\n".join(bad)
