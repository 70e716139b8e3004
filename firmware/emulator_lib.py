"""The trigger emulator library: a model's firmware arithmetic as a standalone C++ package.

An L1 trigger emulator (CMSSW's L1 emulators) loads hls4ml models as shared libraries through
the ``hls4mlEmulator::Model`` interface of ``cms-hls4ml/hls4mlEmulatorExtras``
(``prepare_input`` / ``predict`` / ``read_result``, created and destroyed through the
``extern "C"`` entry points ``create_model`` / ``destroy_model``). :func:`write_emulator_package`
writes such a package from the same hls4ml sources that ``hepfpga firmware`` writes and
``hepfpga verify`` proves bit-exact (same conversion plan, same derived types, same source
patches), laid out like the cms-hls4ml model packages (CICADA, ...)::

    DIR/
      NN/                 the HLS sources: myproject.cpp/.h, defines.h, parameters.h,
                          weights/*.h (weights inline: nothing is read at run time),
                          nnet_utils/, ap_types/ (the headers hls4ml ships)
      include/hls4ml/emulator.h   the interface (hepfpga's own text, compatible with
                          hls4mlEmulatorExtras, which carries no licence to copy it under)
      src/<name>_<version>.cpp    the hls4mlEmulator::Model class and the entry points
      test/run_events.cpp the test program (see below)
      events.bin          test events and the outputs ``hepfpga emulate`` gives for them
      exports.map         the linker version script: only the two entry points are exported
      CMakeLists.txt, BuildFile.xml, README.md, package.json
      BDT/, src/<name>_bdt_<version>.cpp, bdt_events.bin
                          a run's BDT, conifer's C++ as a second library
                          (:mod:`hepfpga.firmware.emulator_lib_bdt`)

Two models never clash in one process: every symbol of the sources (the top function, the
weights and hls4ml's ``nnet`` templates) lives in the namespace ``<name>_<version>_<hash>``,
where ``<hash>`` is the first 12 hex digits of the SHA-256 of the sources themselves, and the
library is built with ``-fvisibility=hidden`` and a version script that exports only
``create_model`` and ``destroy_model`` (which ``dlsym`` resolves per library handle). The
``ap_fixed`` templates stay global (they are the same Xilinx headers in every package) but are
never exported.

Numeric semantics: exactly those of the firmware's C simulation. ``prepare_input`` takes a
pointer to ``input_t`` (the CICADA convention; for io_stream firmware to its element type
``input_t::value_type``, the values flattened in Keras order and packed into the input stream as
hls4ml's C-simulation bridge packs them), or to ``float``/``double`` values, which are
converted to ``input_t`` as the C simulation converts them (the input type's rounding, e.g.
``AP_RND_CONV``, and saturation, ``AP_SAT``). ``read_result`` writes ``result_t`` values, or
``double`` values (exact: every ``result_t`` of at most 53 bits is a double).

``events.bin`` (little endian): magic ``HFPGAEV1`` (8 bytes), uint32 version (1), uint32 input
dtype (1: float32, 2: float64), uint64 n_events, uint32 n_inputs, uint32 n_outputs; then
n_events x n_inputs inputs of that dtype, then n_events x n_outputs expected outputs (float64).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga._version import __version__
from hepfpga.artifacts import (
    check_destination,
    make_partial_directory,
    move_into_place,
    remove_empty_parents,
)
from hepfpga.errors import (
    ConfigError,
    ConversionError,
    DataError,
    MissingDependencyError,
    VerificationError,
)
from hepfpga.firmware.emulate import Emulator
from hepfpga.firmware.emulate_engine.cpp import CppModel, CppUnsupportedError, generate_cpp
from hepfpga.firmware.emulate_engine.plan import UnsupportedLayerError, build_plan
from hepfpga.firmware.emulator_lib_bdt import (
    BDT_EVENTS_FILE,
    BdtPart,
    RunBdt,
    cmake_section,
    readme_section,
    write_bdt_part,
)
from hepfpga.firmware.emulator_lib_names import (
    ENTRY_POINTS,
    PLACEHOLDER,
    rename_namespace,
    set_namespace,
    source_hash,
)
from hepfpga.firmware.options import FirmwareOptions
from hepfpga.firmware.project import compile_project, patch_sources, write_project

__all__ = [
    "ARITHMETICS",
    "CXX_FLAGS",
    "EVENTS_MAGIC",
    "EmulatorPackage",
    "build_package",
    "read_events_file",
    "run_package_test",
    "write_emulator_package",
    "write_events_file",
]

EVENTS_MAGIC = b"HFPGAEV1"
EVENTS_VERSION = 1
_HEADER = struct.Struct("<8sIIQII")
_DTYPES: dict[int, np.dtype[Any]] = {1: np.dtype("<f4"), 2: np.dtype("<f8")}
EVENTS_FILE = "events.bin"
PACKAGE_FILE = "package.json"
ARITHMETIC_GENERATED = "generated"
ARITHMETIC_HLS4ML = "hls4ml"
#: the package's arithmetic: integer C++ generated from the fixed-point engine's plan (falling
#: back to the C-simulation sources where the generator or the engine does not cover the
#: model), or hls4ml's C-simulation sources
ARITHMETICS = (ARITHMETIC_GENERATED, ARITHMETIC_HLS4ML)
#: optimisation flags of the library (CMake and BuildFile.xml); portable: no -march
CXX_FLAGS = "-O3"
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
log = logging.getLogger("hepfpga.firmware.emulator_lib")


@dataclass(frozen=True)
class EmulatorPackage:
    """A written package: where, its library name and its namespace."""

    path: Path
    name: str
    version: str
    namespace: str
    n_inputs: int
    n_outputs: int
    n_events: int
    #: ``"generated"`` (integer C++ from the engine's plan) or ``"hls4ml"`` (C-simulation
    #: sources); see :data:`ARITHMETICS`
    arithmetic: str = "hls4ml"
    #: why the C-simulation sources were packaged although generated code was asked for
    fallback_reason: str | None = None
    #: the run's BDT library, when packaged (:mod:`hepfpga.firmware.emulator_lib_bdt`)
    bdt: BdtPart | None = None
    #: why a run's BDT is not in the package (None: it is, or the source is a model file)
    bdt_reason: str | None = None

    @property
    def library_name(self) -> str:
        """``lib<name>_<version>.so``, what the CMake build produces."""
        return f"lib{self.name}_{self.version}.so"


def _identifier(value: str, what: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_]", "_", value)
    if not _IDENT.match(clean):
        raise ConfigError(
            f"{what} {value!r} is not usable as a C++ name: it must start with a letter "
            "(letters, digits and _ follow)"
        )
    return clean


# -- events file ------------------------------------------------------------------------------
def write_events_file(path: Path, inputs: np.ndarray, expected: np.ndarray) -> None:
    """Write ``inputs`` (events x inputs, float32 or float64) and ``expected`` (events x
    outputs, written as float64) in the format described in the module docstring."""
    inputs = np.ascontiguousarray(inputs)
    if inputs.dtype not in (np.float32, np.float64):
        inputs = inputs.astype(np.float32)
    code = 1 if inputs.dtype == np.float32 else 2
    expected = np.ascontiguousarray(expected, dtype="<f8")
    if inputs.ndim != 2 or expected.ndim != 2 or len(inputs) != len(expected):
        raise DataError(
            f"events file: inputs {inputs.shape} and expected outputs {expected.shape} must be "
            "2-d arrays with the same number of events"
        )
    header = _HEADER.pack(
        EVENTS_MAGIC, EVENTS_VERSION, code, len(inputs), inputs.shape[1], expected.shape[1]
    )
    with Path(path).open("wb") as handle:
        handle.write(header)
        handle.write(inputs.astype(_DTYPES[code], copy=False).tobytes())
        handle.write(expected.tobytes())


def read_events_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an events file back: (inputs, expected outputs); :class:`DataError` names what is
    wrong with a malformed one (the same checks as the C++ test program)."""
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size:
        raise DataError(f"{path}: {len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    magic, version, code, n, n_in, n_out = _HEADER.unpack_from(data)
    if magic != EVENTS_MAGIC or version != EVENTS_VERSION or code not in _DTYPES:
        raise DataError(
            f"{path}: not a version-{EVENTS_VERSION} hepfpga events file (magic {magic!r}, "
            f"version {version}, dtype code {code}; expected {EVENTS_MAGIC!r}, 1, 1 or 2)"
        )
    dtype = _DTYPES[code]
    size = _HEADER.size + n * (n_in * dtype.itemsize + n_out * 8)
    if len(data) != size:
        raise DataError(f"{path}: {len(data)} bytes where the header announces {size}")
    start = _HEADER.size
    inputs = np.frombuffer(data, dtype, n * n_in, start).reshape(n, n_in)
    expected = np.frombuffer(data, "<f8", n * n_out, start + inputs.nbytes).reshape(n, n_out)
    return inputs, expected


# -- sources ----------------------------------------------------------------------------------
def _rename_nnet(text: str, namespace: str) -> str:
    """hls4ml's ``nnet`` namespace, as declared and as qualified, becomes ``<ns>_nnet``."""
    return rename_namespace(text, "nnet", f"{namespace}_nnet")


def _copy_sources(project_firmware: Path, dest: Path) -> None:
    skip = {".so", ".o", ".txt"}
    for src in sorted(project_firmware.rglob("*")):
        rel = src.relative_to(project_firmware)
        if src.is_dir() or src.suffix in skip or src.name.startswith("hepfpga_weights_dir"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.parts[0] == "ap_types":
            shutil.copyfile(src, target)
        else:
            target.write_text(_rename_nnet(src.read_text(encoding="utf-8"), PLACEHOLDER))


def _top_signature(hls_model: Any) -> tuple[str, str, int, str, int]:
    inputs = hls_model.get_input_variables()
    outputs = hls_model.get_output_variables()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConfigError(
            f"the emulator library packs models with one input and one output; this one has "
            f"{len(inputs)} inputs and {len(outputs)} outputs"
        )
    top = hls_model.config.get_project_name()
    return (
        top,
        str(inputs[0].type.name),
        int(inputs[0].size()),
        str(outputs[0].type.name),
        int(outputs[0].size()),
    )


_INTERFACE = """\
// The hls4mlEmulator interface, compatible with cms-hls4ml/hls4mlEmulatorExtras
// (include/hls4ml/emulator.h): same namespace, class, virtual functions and entry-point
// types, so a library built against this header is loaded by its ModelLoader. Written by
// hepfpga (the original carries no licence to copy it under).
#ifndef HLS4ML_EMULATOR_H_
#define HLS4ML_EMULATOR_H_

#include <any>

namespace hls4mlEmulator {

class Model {
public:
    virtual void prepare_input(std::any input) = 0;
    virtual void predict() = 0;
    virtual void read_result(std::any result) = 0;
    virtual ~Model() = default;
};

typedef Model* create_model_cls();
typedef void destroy_model_cls(Model*);

}  // namespace hls4mlEmulator

#endif
"""

_MODEL_CPP = (
    """\
// {name} {version}: hls4mlEmulator::Model of the firmware written by hepfpga {hepfpga}.
// The arithmetic is the hls4ml C simulation's (ap_fixed), bit for bit; see README.md.
#include <any>
#include <stdexcept>

#include "emulator.h"
#include "{top}.h"

namespace {ns} {{

class {cls} : public hls4mlEmulator::Model {{
private:
    // one value per input/output, flattened in the Keras (row-major, channels-last) order
    using in_elem_t = {in_elem};
    using out_elem_t = {out_elem};
    in_elem_t input_[{n_in}];
    out_elem_t result_[{n_out}];

public:
    // {in_elem}* (the CICADA convention), or float* / double* (converted to input_t with the
    // input type's rounding and saturation, as the C simulation converts them)
    void prepare_input(std::any input) override {{
        if (auto p = std::any_cast<in_elem_t*>(&input)) {{
            for (int i = 0; i < {n_in}; ++i) input_[i] = (*p)[i];
        }} else if (auto p = std::any_cast<double*>(&input)) {{
            for (int i = 0; i < {n_in}; ++i) input_[i] = (*p)[i];
        }} else if (auto p = std::any_cast<const double*>(&input)) {{
            for (int i = 0; i < {n_in}; ++i) input_[i] = (*p)[i];
        }} else if (auto p = std::any_cast<float*>(&input)) {{
            for (int i = 0; i < {n_in}; ++i) input_[i] = (*p)[i];
        }} else {{
            throw std::invalid_argument(
                "{name}_{version}: prepare_input takes {in_elem}*, float* or double*");
        }}
    }}

{predict}
    // {out_elem}* or double* (exact), {n_out} values
    void read_result(std::any result) override {{
        if (auto p = std::any_cast<out_elem_t*>(&result)) {{
            for (int i = 0; i < {n_out}; ++i) (*p)[i] = result_[i];
        }} else if (auto p = std::any_cast<double*>(&result)) {{
            for (int i = 0; i < {n_out}; ++i) (*p)[i] = result_[i].to_double();
        }} else {{
            throw std::invalid_argument(
                "{name}_{version}: read_result takes {out_elem}* or double*");
        }}
    }}
}};
"""
    + ENTRY_POINTS
)

_PREDICT_PARALLEL = """\
    void predict() override {{ {top}(input_, result_); }}
"""

# io_stream: the top function reads hls::stream<input_t> of nnet::array packs (one pixel's
# channels, one sequence step's features...) and writes hls::stream<result_t>; the packs are
# filled and emptied in the order of hls4ml's own C-simulation bridge (nnet::convert_data)
_PREDICT_STREAM = """\
    void predict() override {{
        hls::stream<{input_t}> in("input");
        hls::stream<{result_t}> out("result");
        constexpr int in_pack = {input_t}::size, out_pack = {result_t}::size;
        for (int i = 0; i < {n_in} / in_pack; ++i) {{
            {input_t} pack;
            for (int j = 0; j < in_pack; ++j) pack[j] = input_[i * in_pack + j];
            in.write(pack);
        }}
        {top}(in, out);
        for (int i = 0; i < {n_out} / out_pack; ++i) {{
            {result_t} pack = out.read();
            for (int j = 0; j < out_pack; ++j) result_[i * out_pack + j] = pack[j];
        }}
    }}
"""

_MODEL_GEN_CPP = (
    """\
// {name} {version}: hls4mlEmulator::Model of the firmware written by hepfpga {hepfpga}.
// The arithmetic is generated integer C++ (NN/model.h, from hepfpga's fixed-point engine),
// bit for bit the firmware's C simulation; see README.md.
#include <any>
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "ap_fixed.h"
#include "emulator.h"
#include "model.h"

namespace {ns} {{

class {cls} : public hls4mlEmulator::Model {{
private:
    // one value per input/output, flattened in the Keras (row-major, channels-last) order,
    // held as raw codes (value * 2^fractional of the type)
    using in_elem_t = {in_elem};
    using out_elem_t = {out_elem};
    int64_t input_[gen::n_inputs];
    int64_t result_[gen::n_outputs];

public:
    // {in_elem}* (the CICADA convention), or float* / double* (converted to the input type
    // with its rounding and saturation, as hepfpga emulate and the C simulation convert them)
    void prepare_input(std::any input) override {{
        if (auto p = std::any_cast<in_elem_t*>(&input)) {{
            for (int i = 0; i < gen::n_inputs; ++i)
                input_[i] = gen::input_code((*p)[i].to_double());
        }} else if (auto p = std::any_cast<double*>(&input)) {{
            for (int i = 0; i < gen::n_inputs; ++i) input_[i] = gen::input_code((*p)[i]);
        }} else if (auto p = std::any_cast<const double*>(&input)) {{
            for (int i = 0; i < gen::n_inputs; ++i) input_[i] = gen::input_code((*p)[i]);
        }} else if (auto p = std::any_cast<float*>(&input)) {{
            for (int i = 0; i < gen::n_inputs; ++i) input_[i] = gen::input_code((*p)[i]);
        }} else {{
            throw std::invalid_argument(
                "{name}_{version}: prepare_input takes {in_elem}*, float* or double*");
        }}
    }}

    void predict() override {{ gen::run(input_, result_); }}

    // {out_elem}* or double* (exact), {n_out} values
    void read_result(std::any result) override {{
        if (auto p = std::any_cast<out_elem_t*>(&result)) {{
            for (int i = 0; i < gen::n_outputs; ++i)
                (*p)[i] = out_elem_t(std::ldexp(double(result_[i]), -gen::output_fractional));
        }} else if (auto p = std::any_cast<double*>(&result)) {{
            for (int i = 0; i < gen::n_outputs; ++i)
                (*p)[i] = std::ldexp(double(result_[i]), -gen::output_fractional);
        }} else {{
            throw std::invalid_argument(
                "{name}_{version}: read_result takes {out_elem}* or double*");
        }}
    }}
}};
"""
    + ENTRY_POINTS
)

_EXPORTS = "{\n  global: create_model; destroy_model;\n  local: *;\n};\n"

_CMAKE = """\
cmake_minimum_required(VERSION 3.13)
project({name}_{version} CXX)

set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE Release)
endif()

# the model: only create_model/destroy_model are exported (hidden visibility + version script)
add_library({name}_{version} SHARED src/{name}_{version}.cpp{extra_sources})
target_include_directories({name}_{version} PRIVATE include/hls4ml NN NN/ap_types)
target_compile_options({name}_{version} PRIVATE {cxx_flags} -fvisibility=hidden
  -fvisibility-inlines-hidden -Wno-unused-label -Wno-unknown-pragmas)
target_link_options({name}_{version} PRIVATE
  -Wl,--version-script=${{CMAKE_CURRENT_SOURCE_DIR}}/exports.map -Wl,--no-undefined)

# the test program: dlopen()s model libraries and checks events files (see README.md)
add_executable(run_events test/run_events.cpp)
target_include_directories(run_events PRIVATE include/hls4ml)
target_link_libraries(run_events PRIVATE ${{CMAKE_DL_LIBS}})
"""

_BUILDFILE = """\
<!-- CMSSW: place this package as a scram tool or an external; the library is loaded at run
     time by hls4mlEmulator::ModelLoader("lib{name}_{version}"), never linked. -->{bdt_note}
<use name="hls4mlEmulatorExtras"/>
<flags CXXFLAGS="{cxx_flags} -fvisibility=hidden -fvisibility-inlines-hidden -INN -INN/ap_types\
{bdt_include}"/>
<flags LDFLAGS="-Wl,--version-script=exports.map"/>
<export>
  <lib name="{name}_{version}"/>{bdt_lib}
</export>
"""

_README_GENERATED = """\
**Arithmetic: generated integer C++** (`NN/model.h`), written from hepfpga's fixed-point
engine, which `hepfpga emulate` proves bit-exact against the hls4ml C simulation: raw integer
codes, dot products with integer weights, conversions as shifts with the types' rounding and
overflow modes, the softmax tables as constant arrays. Steps: {steps}."""

_README_CSIM = """\
**Arithmetic: the hls4ml C-simulation sources** (`NN/`, `ap_fixed`), bit for bit the
firmware's, about 100x slower than generated code. Generated code was not used: {reason}."""

_README = """\
# {name} {version}: trigger emulator library written by hepfpga {hepfpga}

The firmware of `{source}` as a C++ shared library for a trigger emulator (CMSSW's
`hls4mlEmulator::Model` interface). Written with hls4ml {hls4ml}; backend {backend},
{io_type}.

{arithmetic_text}

- namespace `{ns}` (model name, version, SHA-256 of the sources): every symbol of `NN/`
  ({ns_content}) is inside it;
- exported symbols: `create_model` and `destroy_model` only (`-fvisibility=hidden` and the
  linker version script `exports.map`), so any number of models load into one process;
- input: {n_in} values, `prepare_input(std::any)` with `{in_elem}*` ({input_prec}), or
  `float*`/`double*` converted with the input type's rounding and saturation;
- output: {n_out} values, `read_result(std::any)` with `{out_elem}*` ({result_prec}) or
  `double*` (exact).

## Build (g++ and CMake 3.13+)

    cmake -S . -B build && cmake --build build -j

gives `build/lib{name}_{version}.so` and `build/run_events`.

## Check it

    build/run_events build/lib{name}_{version}.so events.bin [OTHER.so OTHER_events.bin ...]

loads each library once (`dlopen`, `create_model`), runs every event of its events file,
compares every output bit for bit with the outputs of `hepfpga emulate` stored in the file,
prints events/s per model and the load and unload times, and exits non-zero on any difference
or a malformed events file.

## Load it

    hls4mlEmulator::ModelLoader loader("lib{name}_{version}");   // dlopen once per job
    std::shared_ptr<hls4mlEmulator::Model> model = loader.load_model();
    double in[{n_in}], out[{n_out}];
    model->prepare_input(in);  // or {in_elem}*
    model->predict();
    model->read_result(out);

Load the model once (in the constructor of the producer), not per event.
{bdt_text}"""

_README_NO_BDT = """
## The run's BDT

Not packaged: {reason}.
"""

_TEST_CPP = r"""// Test program of hepfpga's emulator libraries:
//     run_events LIB.so EVENTS.bin [LIB.so EVENTS.bin ...]
// Loads every library once into this process (dlopen + create_model), runs all events of its
// events file and compares each output bit for bit with the expected ones. Exit status: 0 when
// every output is identical, 1 on a difference, 2 on bad input (one line on stderr).
#include <dlfcn.h>

#include <any>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "emulator.h"

namespace {

struct Events {
    uint64_t n = 0;
    uint32_t n_in = 0, n_out = 0;
    std::vector<double> inputs, expected;
};

bool fail(const std::string& message) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    return false;
}

bool read_events(const char* path, Events& ev) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) return fail(std::string(path) + ": cannot open the events file");
    const uint64_t size = static_cast<uint64_t>(in.tellg());
    in.seekg(0);
    char magic[8];
    uint32_t version = 0, dtype = 0;
    const uint64_t header = 8 + 4 + 4 + 8 + 4 + 4;
    if (size < header) return fail(std::string(path) + ": shorter than the 32-byte header");
    in.read(magic, 8);
    in.read(reinterpret_cast<char*>(&version), 4);
    in.read(reinterpret_cast<char*>(&dtype), 4);
    in.read(reinterpret_cast<char*>(&ev.n), 8);
    in.read(reinterpret_cast<char*>(&ev.n_in), 4);
    in.read(reinterpret_cast<char*>(&ev.n_out), 4);
    if (std::memcmp(magic, "HFPGAEV1", 8) != 0 || version != 1 || (dtype != 1 && dtype != 2))
        return fail(std::string(path) + ": not a version-1 hepfpga events file (magic "
                    "HFPGAEV1, version 1, dtype 1 or 2 expected)");
    const uint64_t item = dtype == 1 ? 4 : 8;
    const uint64_t expect = header + ev.n * (ev.n_in * item + ev.n_out * 8);
    if (size != expect)
        return fail(std::string(path) + ": " + std::to_string(size) +
                    " bytes where the header announces " + std::to_string(expect));
    ev.inputs.resize(ev.n * ev.n_in);
    if (dtype == 1) {
        std::vector<float> f(ev.n * ev.n_in);
        in.read(reinterpret_cast<char*>(f.data()), f.size() * 4);
        for (size_t i = 0; i < f.size(); ++i) ev.inputs[i] = f[i];
    } else {
        in.read(reinterpret_cast<char*>(ev.inputs.data()), ev.inputs.size() * 8);
    }
    ev.expected.resize(ev.n * ev.n_out);
    in.read(reinterpret_cast<char*>(ev.expected.data()), ev.expected.size() * 8);
    if (!in) return fail(std::string(path) + ": read failed");
    return true;
}

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

struct Loaded {
    std::string path;
    void* handle = nullptr;
    hls4mlEmulator::Model* model = nullptr;
    hls4mlEmulator::destroy_model_cls* destroy = nullptr;
    double load_s = 0;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3 || argc % 2 == 0) {
        std::fprintf(stderr, "error: usage: %s LIB.so EVENTS.bin [LIB.so EVENTS.bin ...]\n",
                     argv[0]);
        return 2;
    }
    const int n_models = (argc - 1) / 2;
    std::vector<Events> events(n_models);
    for (int m = 0; m < n_models; ++m)
        if (!read_events(argv[2 + 2 * m], events[m])) return 2;
    // every library is loaded before any runs: they share the process
    std::vector<Loaded> loaded(n_models);
    for (int m = 0; m < n_models; ++m) {
        Loaded& l = loaded[m];
        l.path = argv[1 + 2 * m];
        auto t0 = Clock::now();
        l.handle = dlopen(l.path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!l.handle) {
            std::fprintf(stderr, "error: cannot load %s: %s\n", l.path.c_str(), dlerror());
            return 2;
        }
        auto create = reinterpret_cast<hls4mlEmulator::create_model_cls*>(
            dlsym(l.handle, "create_model"));
        l.destroy = reinterpret_cast<hls4mlEmulator::destroy_model_cls*>(
            dlsym(l.handle, "destroy_model"));
        if (!create || !l.destroy) {
            std::fprintf(stderr, "error: %s exports no create_model/destroy_model\n",
                         l.path.c_str());
            return 2;
        }
        l.model = create();
        l.load_s = seconds(t0, Clock::now());
    }
    int status = 0;
    for (int m = 0; m < n_models; ++m) {
        Events& ev = events[m];
        std::vector<double> out(ev.n * ev.n_out);
        auto t0 = Clock::now();
        for (uint64_t e = 0; e < ev.n; ++e) {
            loaded[m].model->prepare_input(ev.inputs.data() + e * ev.n_in);
            loaded[m].model->predict();
            loaded[m].model->read_result(out.data() + e * ev.n_out);
        }
        const double run_s = seconds(t0, Clock::now());
        uint64_t differ = 0, first = 0;
        for (uint64_t i = 0; i < out.size(); ++i)
            if (std::memcmp(&out[i], &ev.expected[i], 8) != 0 && differ++ == 0) first = i;
        std::printf("%s: %llu events, %.0f events/s, load %.6f s, ", loaded[m].path.c_str(),
                    static_cast<unsigned long long>(ev.n), run_s > 0 ? ev.n / run_s : 0.0,
                    loaded[m].load_s);
        if (differ) {
            status = 1;
            std::printf("%llu of %zu outputs DIFFER (first: event %llu output %llu: %.17g, "
                        "expected %.17g)\n",
                        static_cast<unsigned long long>(differ), out.size(),
                        static_cast<unsigned long long>(first / ev.n_out),
                        static_cast<unsigned long long>(first % ev.n_out), out[first],
                        ev.expected[first]);
        } else {
            std::printf("all %zu outputs identical\n", out.size());
        }
    }
    for (int m = 0; m < n_models; ++m) {
        auto t0 = Clock::now();
        loaded[m].destroy(loaded[m].model);
        dlclose(loaded[m].handle);
        std::printf("%s: unload %.6f s\n", loaded[m].path.c_str(), seconds(t0, Clock::now()));
    }
    std::fflush(stdout);
    return status;
}
"""


def _precision(hls_model: Any, which: str) -> str:
    var = (hls_model.get_input_variables() if which == "in" else hls_model.get_output_variables())[
        0
    ]
    try:
        return str(var.type.precision.definition_cpp())
    except Exception:  # hls4ml precision objects differ per type; the name is enough then
        return str(var.type.precision)


def write_emulator_package(
    model: Any,
    events: np.ndarray,
    out_dir: Path,
    *,
    name: str | None = None,
    version: str = "v1",
    options: FirmwareOptions | None = None,
    source: str = "",
    overwrite: bool = False,
    arithmetic: str = ARITHMETIC_GENERATED,
    bdt: RunBdt | None = None,
    bdt_reason: str | None = None,
) -> EmulatorPackage:
    """Write the emulator package of the QKeras ``model`` to ``out_dir`` atomically.

    ``events`` (events x inputs) become ``events.bin`` with the outputs
    :class:`hepfpga.firmware.emulate.Emulator` gives for them (the fast engine once proven
    identical to the C simulation, else the C simulation). ``name`` (default: the Keras model's
    name) and ``version`` name the library, ``lib<name>_<version>.so``. ``options`` are the
    firmware options the project was written with (io_parallel or io_stream). ``out_dir`` follows
    :func:`hepfpga.artifacts.check_destination`; nothing appears there unless complete.

    ``arithmetic`` (one of :data:`ARITHMETICS`): ``"generated"`` writes integer C++ generated
    from the fixed-point engine's plan (:mod:`hepfpga.firmware.emulate_engine.cpp`) when the
    engine is proven exact for the model and the generator covers every step; otherwise it
    falls back to the hls4ml C-simulation sources, logs a warning with the reason and records
    it (:attr:`EmulatorPackage.fallback_reason`, ``package.json``, ``README.md``).
    ``"hls4ml"`` packages the C-simulation sources directly.

    ``bdt``: a run's BDT (:class:`~hepfpga.firmware.emulator_lib_bdt.RunBdt`), packaged beside
    the network as ``lib<name>_bdt_<version>.so`` with its own namespace, CMake target,
    ``BuildFile.xml`` entry and ``bdt_events.bin`` (the same events, the scores of conifer's
    compiled emulation; see :mod:`hepfpga.firmware.emulator_lib_bdt`). Where conifer or its
    compilation is missing here, the network is packaged alone and the reason recorded, as
    ``bdt_reason`` is (why a run has no BDT to package): in ``package.json`` (``bdt``) and
    the README. A model file has neither (``package.json``: ``"bdt": null``).
    """
    # deferred: hls4ml and TensorFlow load slowly
    import hls4ml

    if arithmetic not in ARITHMETICS:
        raise ConfigError(f"arithmetic {arithmetic!r} is not one of {', '.join(ARITHMETICS)}")
    options = options if options is not None else FirmwareOptions()
    name = _identifier(name or str(model.name), "model name")
    version = _identifier(version, "version")
    out_dir = Path(out_dir).absolute()
    check_destination(out_dir, overwrite=overwrite, option="--out")
    events = np.asarray(events)
    events = events.reshape(len(events), -1)
    if len(events) == 0:
        raise DataError("the emulator package needs at least one test event")

    with tempfile.TemporaryDirectory(prefix="hepfpga-emulib-") as work:
        project = compile_project(write_project(model, options, Path(work) / "project"))
        top, input_t, n_in, result_t, n_out = _top_signature(project.hls_model)
        parallel = options.io_type.value == "io_parallel"
        if events.shape[1] != n_in:
            raise DataError(
                f"the test events have {events.shape[1]} values each; the model takes {n_in}"
            )
        emulator = Emulator.from_project(project, events)
        expected = np.asarray(emulator.predict(events), dtype=np.float64).reshape(len(events), -1)
        input_prec = _precision(project.hls_model, "in")
        result_prec = _precision(project.hls_model, "out")
        generated: CppModel | None = None
        fallback: str | None = None
        if arithmetic == ARITHMETIC_GENERATED:
            generated, fallback = _generate(project.hls_model, emulator)
            if fallback is not None:
                log.warning(
                    "emulator library of %s: hls4ml C-simulation sources packaged (much slower "
                    "than generated code): %s",
                    name,
                    fallback,
                )
        if generated is None:
            # the same sources, with weights inline (no .txt read at run time), no trace code
            # and hls4ml's own namespace for the top function and the weights
            config = project.hls_model.config
            config.writer_config = dict(
                config.writer_config, Namespace=PLACEHOLDER, WriteWeightsTxt=False
            )
            config.trace_output = False
            project.hls_model.write()
            patch_sources(project.path, project.keras_model, project.hls_model, project.options)

        tmp, created = make_partial_directory(out_dir)
        try:
            (tmp / "src").mkdir()
            part: BdtPart | None = None
            if bdt is not None:
                try:
                    part = write_bdt_part(tmp, bdt, events, name=f"{name}_bdt", version=version)
                except (MissingDependencyError, ConversionError) as exc:
                    bdt_reason = f"the run's BDT could not be packaged here: {exc}"
                    log.warning("emulator library of %s: %s", name, bdt_reason)
            nn = tmp / "NN"
            if generated is None:
                _copy_sources(project.path / "firmware", nn)
            else:
                shutil.copytree(project.path / "firmware" / "ap_types", nn / "ap_types")
                (nn / "model.h").write_text(generated.source)
            digest = source_hash(nn)
            namespace = f"{name}_{version}_{digest[:12]}"
            set_namespace(nn, namespace)
            fields = {
                "name": name,
                "version": version,
                "ns": namespace,
                "top": top,
                "cls": f"{name}_{version}",
                "input_t": input_t,
                "in_elem": input_t if parallel else f"{input_t}::value_type",
                "out_elem": result_t if parallel else f"{result_t}::value_type",
                "result_t": result_t,
                "n_in": n_in,
                "n_out": n_out,
                "hepfpga": __version__,
                "hls4ml": hls4ml.__version__,
                "source": source or name,
                "backend": options.backend.value,
                "io_type": options.io_type.value,
                "input_prec": input_prec,
                "result_prec": result_prec,
                "cxx_flags": CXX_FLAGS,
            }
            if generated is not None:
                fields.update(
                    in_elem=generated.input_type.to_hls(),
                    out_elem=generated.output_type.to_hls(),
                    input_prec="the firmware's input type",
                    result_prec="the firmware's output type",
                    extra_sources="",
                    ns_content="the generated arithmetic `gen::run`, its weights and tables",
                    arithmetic_text=_README_GENERATED.format(
                        steps=", ".join(f"`{n}` ({k})" for n, k in generated.steps)
                    ),
                )
            else:
                fields.update(
                    extra_sources=f" NN/{top}.cpp",
                    ns_content=f"top function `{top}`, weights, hls4ml's `nnet` templates "
                    f"as `{namespace}_nnet`",
                    arithmetic_text=_README_CSIM.format(
                        reason=fallback or "requested (--arithmetic hls4ml)"
                    ),
                )
            (tmp / "include" / "hls4ml").mkdir(parents=True)
            (tmp / "include" / "hls4ml" / "emulator.h").write_text(_INTERFACE)
            if generated is not None:
                model_cpp = _MODEL_GEN_CPP.format(**fields)
            else:
                fields["predict"] = (_PREDICT_PARALLEL if parallel else _PREDICT_STREAM).format(
                    **fields
                )
                model_cpp = _MODEL_CPP.format(**fields)
            (tmp / "src" / f"{name}_{version}.cpp").write_text(model_cpp)
            (tmp / "test").mkdir()
            (tmp / "test" / "run_events.cpp").write_text(_TEST_CPP)
            (tmp / "exports.map").write_text(_EXPORTS)
            fields.update(bdt_note="", bdt_include="", bdt_lib="", bdt_text="")
            cmake = _CMAKE.format(**fields)
            if part is not None:
                fields.update(
                    bdt_note=f"\n<!-- lib{part.name}_{part.version} (the run's BDT) needs the "
                    "nlohmann JSON headers: add your release's tool for them. -->",
                    bdt_include=" -IBDT",
                    bdt_lib=f'\n  <lib name="{part.name}_{part.version}"/>',
                    bdt_text=readme_section(part),
                )
                cmake += cmake_section(part, ap_types="NN/ap_types", cxx_flags=CXX_FLAGS)
                write_events_file(tmp / BDT_EVENTS_FILE, events, part.expected)
            elif bdt_reason is not None:
                fields["bdt_text"] = _README_NO_BDT.format(reason=bdt_reason.rstrip("."))
            (tmp / "CMakeLists.txt").write_text(cmake)
            (tmp / "BuildFile.xml").write_text(_BUILDFILE.format(**fields))
            (tmp / "README.md").write_text(_README.format(**fields))
            write_events_file(tmp / EVENTS_FILE, events, expected)
            used = ARITHMETIC_GENERATED if generated is not None else ARITHMETIC_HLS4ML
            record = {
                "name": name,
                "version": version,
                "namespace": namespace,
                "sources_sha256": digest,
                "library": f"lib{name}_{version}.so",
                "n_inputs": n_in,
                "n_outputs": n_out,
                "n_events": len(events),
                "expected_from": f"hepfpga emulate ({emulator.engine} engine)",
                "arithmetic": used,
                "fallback_reason": fallback,
                "generated_steps": [list(s) for s in generated.steps] if generated else None,
                "cxx_flags": CXX_FLAGS,
                "hepfpga_version": __version__,
                "hls4ml_version": hls4ml.__version__,
                "options": options.to_dict(),
                "bdt": (
                    part.record()
                    if part is not None
                    else ({"packaged": False, "reason": bdt_reason} if bdt_reason else None)
                ),
            }
            (tmp / PACKAGE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
            check_destination(out_dir, overwrite=overwrite, option="--out")
            move_into_place(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            remove_empty_parents(created)
            raise
    return EmulatorPackage(
        out_dir,
        name,
        version,
        namespace,
        n_in,
        n_out,
        len(events),
        used,
        fallback,
        bdt=part,
        bdt_reason=bdt_reason,
    )


def _generate(hls_model: Any, emulator: Emulator) -> tuple[CppModel | None, str | None]:
    """The generated C++ of the model, or None and why not (the fallback reason)."""
    if not emulator.exact_engine:
        return None, (
            "hepfpga emulate runs the C simulation for this model "
            f"({emulator.fallback_reason}), so there is no proven plan to generate C++ from"
        )
    try:
        return generate_cpp(build_plan(hls_model), PLACEHOLDER), None
    except (CppUnsupportedError, UnsupportedLayerError) as exc:
        return None, f"no C++ generator: {exc}"


# -- building and running ---------------------------------------------------------------------
def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except FileNotFoundError as exc:
        raise ConversionError(f"{command[0]} is not installed (needed: g++ and cmake)") from exc


def build_package(package: Path, build_dir: Path | None = None) -> Path:
    """Configure and build ``package`` with CMake and g++ (Release); returns the build folder
    (default ``package/build``), which holds ``lib<name>_<version>.so`` and ``run_events``."""
    package = Path(package)
    build_dir = Path(build_dir) if build_dir is not None else package / "build"
    for step in (
        ["cmake", "-S", str(package), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(build_dir), "-j", "2"],
    ):
        result = _run(step)
        if result.returncode != 0:
            tail = " | ".join(result.stdout.strip().splitlines()[-6:])
            raise ConversionError(f"building {package} failed ({' '.join(step[:2])}): {tail}")
    return build_dir


@dataclass(frozen=True)
class PackageRun:
    """What the test program printed and its exit status."""

    returncode: int
    output: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def run_package_test(runner: Path, pairs: list[tuple[Path, Path]]) -> PackageRun:
    """Run the test program ``runner`` on (library, events file) pairs, all in one process."""
    command = [str(runner)]
    for library, events in pairs:
        command += [str(library), str(events)]
    start = time.perf_counter()
    result = _run(command)
    return PackageRun(result.returncode, result.stdout, time.perf_counter() - start)


def check_package(
    package: Path, build_dir: Path | None = None, *, build: bool = True
) -> PackageRun:
    """Build ``package`` (into ``build_dir``, default ``package/build``; ``build=False``: use
    the library and test program already there) and run its test program on its own
    ``events.bin`` (and, with a run's BDT, ``bdt_events.bin`` through the BDT library, in the
    same process); raises :class:`VerificationError` with the program's output when an
    output differs or the events file is malformed."""
    record = json.loads((Path(package) / PACKAGE_FILE).read_text())
    if build:
        build_dir = build_package(package, build_dir)
    elif build_dir is None:
        build_dir = Path(package) / "build"
    pairs = [(build_dir / record["library"], Path(package) / EVENTS_FILE)]
    bdt = record.get("bdt") or {}
    if bdt.get("library"):
        pairs.append((build_dir / bdt["library"], Path(package) / bdt["events"]))
    run = run_package_test(build_dir / "run_events", pairs)
    if not run.passed:
        raise VerificationError(f"the emulator library {package} failed: {run.output.strip()}")
    return run
