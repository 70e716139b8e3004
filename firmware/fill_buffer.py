"""The io_parallel convolutions' generated ``fill_buffer`` as a table in the C simulation.

hls4ml 1.3 writes, for every Conv1D/Conv2D (and depthwise/separable) layer in ``io_parallel``
with the Latency strategy, a class ``fill_buffer_<index>`` into
``firmware/nnet_utils/nnet_code_gen.h`` (``FPGABackend.generate_conv1d_line_buffer_fn`` /
``generate_conv2d_line_buffer_fn``: the im2col of the layer's input, spelled out). Its
``fill_buffer(data, buffer, partition)`` is one ``if (partition == P)`` block per partition
holding one statement per buffer element, ``buffer[pixel][j] = data[k];`` or ``= 0;`` for the
padding: output positions x kernel x channels statements per layer, 128,000 for a
Conv1D(32 filters, kernel 40, 'same') over 100 x 32 inputs. HLS reads that as wiring; g++
compiles it as one function with all those statements, and its time grows faster than their
number: hls4ml's example Conv1D tagger ``KERAS_conv1d`` (three such layers) took 22 minutes of
hepfpga's ``-O1`` build on 2 loaded cores (``-ftime-report``: 94% of the model unit in
optimisation, inlining heuristics, alias walking, points-to; 5.2 GB), and 37 s with these
functions tabulated, nothing else changed (docs/firmware.md, "Build time").

:func:`tabulate_fill_buffers` keeps each generated class as it is under ``#ifdef
__SYNTHESIS__`` (which Vivado/Vitis HLS and Catapult define when they synthesise, as hls4ml's
own templates rely on, so the hardware is built from hls4ml's code, untouched) and gives the C
simulation (``#else``) the same class whose ``fill_buffer`` reads the statements from a
``static const int`` table ``source[partition][pixel][j]``: the ``k`` of ``data[k]``, ``-1``
for ``= 0``, ``-2`` for an element the generated block does not assign (left as it is, as the
block leaves it; hls4ml assigns every one). The table is read from the generated statements
themselves, so it holds the same (partition, pixel, element) -> input mapping, and each
element is assigned by the same C++ statement (``buffer[p][j] = data[k]`` or ``= 0`` of the
same types): the C simulation computes bit for bit what it computed before (checked on Conv1D
and Conv2D models with 'same' and 'valid' padding and strides,
``tests/firmware/test_fill_buffer.py``). A class this parser does not recognise (another
hls4ml's generator) is left as written, with a warning: correct, only slow to compile.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CODE_GEN_HEADER", "FillBufferTable", "parse_fill_buffer", "tabulate_fill_buffers"]

log = logging.getLogger(__name__)

#: the header hls4ml writes the generated classes into, in a project folder
CODE_GEN_HEADER = Path("firmware") / "nnet_utils" / "nnet_code_gen.h"

#: marks a header already patched (hls4ml rewrites it on every ``write()``)
_MARKER = "// hepfpga.firmware.fill_buffer:"

#: one generated class, from its template line to the closing ``};``
_CLASS = re.compile(
    r"template<class data_T, typename CONFIG_T>\n"
    r"class (?P<name>fill_buffer_\w+) : "
    r"public nnet::(?P<base>FillConv[12]DBuffer)<data_T, CONFIG_T> \{\n"
    r"(?P<head>.*?\n    \) \{\n)"
    r"(?P<body>.*?)"
    r"\n    \}\n\};\n",
    re.DOTALL,
)
_PARTITION = re.compile(r"if \(partition ==\s*(\d+)\) \{")
_STATEMENT = re.compile(r"buffer\[(\d+)\]\[(\d+)\] =\s*(?:(0)|data\[(\d+)\]);")

#: table entries that are not an input index
ZERO, UNASSIGNED = -1, -2


@dataclass(frozen=True)
class FillBufferTable:
    """The statements of one generated ``fill_buffer``: ``source[partition][pixel][j]`` is
    the index ``k`` of ``buffer[pixel][j] = data[k];`` in that partition's block, :data:`ZERO`
    for ``= 0;``, :data:`UNASSIGNED` where the block assigns nothing."""

    name: str
    source: tuple[tuple[tuple[int, ...], ...], ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(partitions, pixels, elements per pixel)."""
        return len(self.source), len(self.source[0]), len(self.source[0][0])


def parse_fill_buffer(name: str, body: str) -> FillBufferTable | None:
    """The table of a generated ``fill_buffer`` body (the ``if (partition == P) {...}``
    blocks), or None when the body holds anything else, a partition twice or an element
    assigned twice in one block (not hls4ml 1.3's generator: left as written)."""
    blocks: dict[int, dict[tuple[int, int], int]] = {}
    current: dict[tuple[int, int], int] | None = None
    pixels = elements = 0
    for token in re.finditer(r"if \(partition ==\s*\d+\) \{|buffer\[[^;]*;|\}|\S+", body):
        text = token.group(0)
        partition = _PARTITION.fullmatch(text)
        statement = _STATEMENT.fullmatch(text)
        if partition is not None and current is None:
            index = int(partition.group(1))
            if index in blocks:
                return None
            current = blocks[index] = {}
        elif statement is not None and current is not None:
            pixel, element = int(statement.group(1)), int(statement.group(2))
            if (pixel, element) in current:
                return None
            current[pixel, element] = ZERO if statement.group(3) else int(statement.group(4))
            pixels, elements = max(pixels, pixel + 1), max(elements, element + 1)
        elif text == "}" and current is not None:
            current = None
        else:
            return None
    if current is not None or not blocks or pixels == 0:
        return None
    source = tuple(
        tuple(
            tuple(blocks.get(p, {}).get((pixel, j), UNASSIGNED) for j in range(elements))
            for pixel in range(pixels)
        )
        for p in range(max(blocks) + 1)
    )
    return FillBufferTable(name, source)


def _table_class(base: str, head: str, name: str, table: FillBufferTable) -> str:
    partitions, pixels, elements = table.shape
    rows: list[str] = []
    for block in table.source:
        for pixel in block:
            values = [str(v) for v in pixel]
            rows.extend(",".join(values[i : i + 32]) + "," for i in range(0, len(values), 32))
    return (
        "template<class data_T, typename CONFIG_T>\n"
        f"class {name} : public nnet::{base}<data_T, CONFIG_T> {{\n"
        f"{head}"
        f"        // source[partition][pixel][j]: k of buffer[pixel][j] = data[k] above, "
        f"{ZERO}: = 0, {UNASSIGNED}: not assigned\n"
        f"        static const int source[{partitions}][{pixels}][{elements}] = {{\n"
        + "\n".join(rows)
        + "\n        };\n"
        f"        if (partition >= {partitions}u) return;\n"
        f"        for (unsigned pixel = 0; pixel < {pixels}; pixel++) {{\n"
        f"            for (unsigned j = 0; j < {elements}; j++) {{\n"
        "                const int k = source[partition][pixel][j];\n"
        "                if (k >= 0) buffer[pixel][j] = data[k];\n"
        f"                else if (k == {ZERO}) buffer[pixel][j] = 0;\n"
        "            }\n"
        "        }\n"
        "    }\n"
        "};\n"
    )


def tabulate_fill_buffers(hls_model: Any, folder: Path) -> None:
    """Give the C simulation of the project in ``folder`` table-driven ``fill_buffer``
    classes, the generated ones kept for synthesis (see the module docstring). Nothing when
    the project has no generated classes or is patched already. ``hls_model`` is not read
    (the backends' ``patch_project`` signature): the header holds everything."""
    header = Path(folder) / CODE_GEN_HEADER
    if not header.is_file():
        return
    text = header.read_text(encoding="utf-8")
    if _MARKER in text:
        return

    def replace(match: re.Match[str]) -> str:
        name, head, base = match.group("name"), match.group("head"), match.group("base")
        table = parse_fill_buffer(name, match.group("body"))
        if table is None:
            log.warning(
                "%s in %s is not hls4ml 1.3's generated fill_buffer; left as written (the "
                "C simulation compiles it statement by statement, slowly)",
                name,
                header,
            )
            return match.group(0)
        return (
            f"{_MARKER} synthesis reads hls4ml's {name}, the C simulation a table of the "
            "same statements\n"
            f"#ifdef __SYNTHESIS__\n{match.group(0)}#else\n{_table_class(base, head, name, table)}"
            "#endif\n"
        )

    patched = _CLASS.sub(replace, text)
    if patched != text:
        header.write_text(patched, encoding="utf-8")
