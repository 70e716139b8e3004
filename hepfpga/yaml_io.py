"""The one way hepfpga reads YAML: ``safe_load`` with bounds on what a file may cost.

A configuration is a few kilobytes of plain data, so :func:`load_yaml` refuses, with a
:class:`~hepfpga.errors.ConfigError` naming the file and the bound, anything that could make
reading it expensive or crash the reader:

* a file larger than :data:`MAX_BYTES` (1 MiB);
* nesting deeper than :data:`MAX_DEPTH` (64) collections: PyYAML composes recursively, so
  50,000 nested ``[`` would otherwise end in ``RecursionError``;
* a document whose aliases expand to more than :data:`MAX_NODES` (100,000) values: a
  "billion laughs" file is a few hundred bytes whose anchors and aliases stand for 10**9
  values. PyYAML shares aliased objects, so loading is cheap, but anything that walks the
  result (validation, error messages, ``config check``) would expand it. The expanded size is
  counted on the composed node graph (each node once, memoised), before any Python object is
  built.

Only the YAML 1.1 types of ``safe_load`` are built (no Python objects, no tags that run code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hepfpga.errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "load_yaml", "parse_yaml"]

#: largest YAML file read, in bytes
MAX_BYTES = 1 << 20
#: deepest nesting of mappings and sequences
MAX_DEPTH = 64
#: most values a document may stand for once its aliases are expanded
MAX_NODES = 100_000


class _BoundError(Exception):
    """A bound of this module was exceeded (turned into a ConfigError by the caller)."""


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that counts nesting while composing and expansion before constructing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _BoundError(
                    f"nesting deeper than {MAX_DEPTH} levels (line {mark.line + 1}); "
                    "a configuration is a few levels of mappings and lists"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Raise :class:`_BoundError` if ``root`` stands for more than :data:`MAX_NODES` values."""
    sizes: dict[int, int] = {}
    # iterative post-order walk: the graph is a DAG of shared (aliased) nodes; a cycle (an
    # alias of an enclosing anchor) is impossible in what the composer builds for safe_load
    # except through merge keys, which a node being visited twice on the stack detects
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_stack: set[int] = set()
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not expanded:
            if key in on_stack:
                raise _BoundError("a recursive alias (an anchor used inside itself)")
            on_stack.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_stack.discard(key)
        total = 1 + sum(sizes[id(child)] for child in children)
        if total > MAX_NODES:
            raise _BoundError(
                f"its aliases expand to more than {MAX_NODES:,} values "
                "(a 'billion laughs' document?)"
            )
        sizes[key] = total


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's message without its multi-line excerpt of the file: what and where."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f" ({exc.context})" if exc.context else ""
        return f"{exc.problem}{where}{context}"
    return " ".join(str(exc).split())


def parse_yaml(text: str, *, source: str | None = None) -> Any:
    """Parse YAML ``text`` with the bounds of this module; errors name ``source``."""
    if len(text) > MAX_BYTES:
        raise ConfigError(
            f"the YAML text is {len(text):,} characters; at most {MAX_BYTES:,} are read",
            source=source,
        )
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass
    except _BoundError as exc:
        raise ConfigError(f"refusing to read this YAML: {exc}", source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_one_line(exc)}", source=source) from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits (Python's limit)
        problem = str(exc).split(";")[0]
        raise ConfigError(f"a value cannot be read: {problem}", source=source) from None
    except RecursionError:  # the bounds above should make this unreachable
        raise ConfigError("not readable: nested too deeply", source=source) from None


def load_yaml(path: str | Path, *, what: str = "config file") -> Any:
    """Read and parse the YAML file ``path`` (``what`` names it in errors: "config file",
    "firmware options file")."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"the {what} {path} is a folder; give the path of a YAML file")
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    if not path.is_file():
        raise ConfigError(
            f"the {what} {path} is not a regular file (a device, a pipe, ...); give the path "
            "of a YAML file"
        )
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"the {what} is {size:,} bytes; at most {MAX_BYTES:,} are read "
                "(is it really a configuration?)",
                source=str(path),
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {what}: {exc.strerror or exc}", source=str(path)
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("not a text (UTF-8) file", source=str(path)) from exc
    return parse_yaml(text, source=str(path))
