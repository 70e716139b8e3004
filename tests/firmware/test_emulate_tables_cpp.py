"""The emulator's activation tables, entry by entry, against the tables hls4ml 1.3.0's own C++
initialisers (``init_<kind>_table`` of ``nnet_activation.h``) build when compiled with g++:
large tables in a fine, rounding type (as the recurrent layers use them) expose any float/double
step taken differently (a tanh evaluated in double instead of float moved 28 of 65536 entries).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hepfpga.firmware.emulate_tables import lookup_table
from hepfpga.fixed_point import FixedType

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

#: table kind -> hls4ml's initialiser
KINDS = {
    "sigmoid": "init_sigmoid_table",
    "tanh": "init_tanh_table",
    "softplus": "init_softplus_table",
    "softsign": "init_softsign_table",
    "elu": "init_elu_table",
    "selu": "init_selu_table",
}
#: (table size, table type)
TABLES = [
    (65536, "ap_fixed<18,2,AP_RND_CONV,AP_SAT>"),
    (4096, "ap_fixed<18,8>"),
    (1024, "ap_fixed<24,4,AP_RND,AP_SAT>"),
]

PROGRAM = """
#include "ap_fixed.h"
#include "nnet_utils/nnet_activation.h"
#include <cstdio>
struct cfg {{
    typedef {table_t} table_t;
    static const unsigned table_size = {size};
    static const unsigned n_in = 1;
}};
static cfg::table_t table[{size}];
int main() {{
{calls}
    return 0;
}}
"""
CALL = """    nnet::{init}<cfg, {size}>(table);
    for (int i = 0; i < {size}; i++) std::printf("%s\\n", table[i].range().to_string(10).c_str());
    std::printf("--\\n");"""


@pytest.fixture(scope="module", params=TABLES, ids=[f"{n}-{t}" for n, t in TABLES])
def cpp_tables(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, FixedType, dict[str, np.ndarray]]:
    import hls4ml

    size, table_t = request.param
    templates = Path(hls4ml.__file__).parent / "templates" / "vivado"
    folder = tmp_path_factory.mktemp("tables")
    calls = "\n".join(CALL.format(init=init, size=size) for init in KINDS.values())
    (folder / "tables.cpp").write_text(PROGRAM.format(table_t=table_t, size=size, calls=calls))
    subprocess.run(
        [
            "g++",
            "-O1",
            "-std=c++14",
            f"-I{templates}",
            f"-I{templates / 'ap_types'}",
            "tables.cpp",
            "-o",
            "tables",
        ],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    out = subprocess.run([str(folder / "tables")], check=True, capture_output=True, text=True)
    blocks = out.stdout.split("--\n")[: len(KINDS)]
    t = FixedType.parse(table_t)
    tables = {}
    for kind, block in zip(KINDS, blocks, strict=True):
        raw = np.array([int(v) for v in block.split()], dtype=np.int64)
        if t.signed:
            raw = np.where(raw >= 2 ** (t.width - 1), raw - 2**t.width, raw)
        tables[kind] = raw
    return size, t, tables


@pytest.mark.parametrize("kind", list(KINDS))
def test_table_entries_equal_hls4ml_cpp(
    kind: str, cpp_tables: tuple[int, FixedType, dict[str, np.ndarray]]
) -> None:
    size, table_t, tables = cpp_tables
    mine = lookup_table(kind, size, table_t, "test").entries.astype(np.int64)
    ref = tables[kind]
    assert ref.shape == (size,)
    differ = np.flatnonzero(mine != ref)
    assert differ.size == 0, (
        f"{kind}: {differ.size} of {size} entries differ, first at {differ[:5]}: "
        f"{mine[differ[:5]]} vs {ref[differ[:5]]}"
    )
