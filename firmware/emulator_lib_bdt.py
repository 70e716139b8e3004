"""A run's BDT in the trigger emulator package: conifer's C++ behind ``hls4mlEmulator::Model``.

When ``hepfpga emulator-lib RUN`` finds the run's BDT (the conifer ``cpp``-backend project of
:func:`hepfpga.train.bdt.convert_bdt` in ``bdt_firmware/emulation``), the package gets a second
library, ``lib<name>_bdt_<version>.so``, written by :func:`write_bdt_part`::

    DIR/
      BDT/conifer.h                conifer's own C++ emulation header (conifer/backends/cpp/
                                   include, Apache-2.0; changes: see below)
      BDT/hepfpga_bdt.json.inc     the trees, byte for byte as conifer's cpp backend wrote them
                                   (hepfpga_bdt.json), inside a C++ raw string literal
      BDT/LICENSE.conifer          conifer's licence
      src/<name>_bdt_<version>.cpp the hls4mlEmulator::Model class and the entry points
      bdt_events.bin               the test events and the BDT scores expected for them

The arithmetic is conifer's, unchanged: ``conifer::BDT<Config>::decision_function`` with the
types the run's conifer project was written with (its JSON's ``config``: thresholds and inputs
``ap_fixed<W+1,I>``, leaf values and scores ``score_type``; see :mod:`hepfpga.train.bdt`), the
trees parsed once per model object (in ``create_model``) from the embedded JSON by the nlohmann
JSON headers that conifer uses. Nothing is read from disk at run time. The expected scores in
``bdt_events.bin`` come from the emulation hepfpga's BDT stage verifies: conifer's compiled
pybind11 bridge of the same header on the same JSON (:func:`hepfpga.train.bdt.load_emulation`),
so the test program compares the library with the firmware's numbers bit for bit.

Inputs. ``prepare_input`` takes ``n_features`` values as ``double*`` or ``float*`` (the run's
scaled features, the same values the network takes) and puts them on the grid the trees were
trained on exactly as :func:`hepfpga.train.bdt.quantize_features` does: converted to
``feature_t`` = the BDT's ``input_type`` (default ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``:
scaled by 2^10, rounded half to even, saturated to [-32, 32 - 2^-10]) by ``ap_fixed``'s own
conversion from ``double``, then widened to conifer's threshold type ``ap_fixed<W+1,I>``
(exact). ``feature_t*`` (values already on the grid) is taken too. ``read_result`` writes the
per-class scores (``n_classes`` values; one for two classes, as conifer does) as ``score_t``
or ``double`` (exact: ``score_t`` has at most 52 bits).

Isolation. conifer's namespace ``conifer`` becomes ``<namespace>_conifer`` and the model class,
its types and the embedded trees live in ``<name>_bdt_<version>_<hash>`` (hash: SHA-256 of
``BDT/``); built like the network's library (``-fvisibility=hidden``, the version script), the
library exports ``create_model`` and ``destroy_model`` only. Changes to ``conifer.h`` (stated
at its top, as the Apache licence asks): that namespace rename, and a constructor from an
``nlohmann::json`` value to which the file constructor now delegates (same body), so that the
trees need no file.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga._optional import require
from hepfpga._version import __version__
from hepfpga.errors import ConversionError, DataError
from hepfpga.firmware.emulator_lib_names import (
    ENTRY_POINTS,
    PLACEHOLDER,
    rename_namespace,
    set_namespace,
    source_hash,
)
from hepfpga.train.bdt import PROJECT, BdtConfig, load_emulation, quantize_features

__all__ = [
    "BDT_EVENTS_FILE",
    "BdtPart",
    "RunBdt",
    "cmake_section",
    "readme_section",
    "write_bdt_part",
]

#: the BDT's events file in the package (same format as the network's ``events.bin``)
BDT_EVENTS_FILE = "bdt_events.bin"
_TREES_INC = f"{PROJECT}.json.inc"
_DELIMITER = "hepfpga_trees"

# the file constructor of conifer::BDT, which conifer.h's copy delegates to a JSON constructor
_CONIFER_CTOR = """\
  BDT(std::string filename){
    /* Construct the BDT from conifer cpp backend JSON file */
    std::ifstream ifs(filename);
    nlohmann::json j = nlohmann::json::parse(ifs);
"""
_PATCHED_CTOR = """\
  BDT(std::string filename) : BDT(read_json(filename)) {}

  static nlohmann::json read_json(const std::string& filename) {
    std::ifstream ifs(filename);
    return nlohmann::json::parse(ifs);
  }

  /* hepfpga: construct the BDT from the JSON value itself (trees embedded in a library) */
  explicit BDT(const nlohmann::json& j){
"""


@dataclass(frozen=True)
class RunBdt:
    """A run's BDT as its BDT stage wrote it: the conifer ``cpp``-backend project
    (``bdt_firmware/emulation``) and the ``bdt`` settings it was trained with (the input grid)."""

    emulation_dir: Path
    config: BdtConfig


@dataclass(frozen=True)
class BdtPart:
    """The BDT library written into a package."""

    name: str
    version: str
    namespace: str
    n_inputs: int
    n_outputs: int
    #: the expected scores of the package's events (events x outputs, float64)
    expected: np.ndarray = field(repr=False)
    #: conifer's types: feature (input grid), threshold, weight, score
    types: dict[str, str] = field(default_factory=dict)
    conifer_version: str = ""
    sources_sha256: str = ""

    @property
    def library_name(self) -> str:
        return f"lib{self.name}_{self.version}.so"

    def record(self) -> dict[str, Any]:
        """The package.json entry."""
        return {
            "name": self.name,
            "version": self.version,
            "namespace": self.namespace,
            "library": self.library_name,
            "events": BDT_EVENTS_FILE,
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "types": self.types,
            "sources_sha256": self.sources_sha256,
            "conifer_version": self.conifer_version,
            "expected_from": "conifer's compiled C++ emulation (pybind11 bridge), as the run's "
            "BDT stage runs it",
        }


_MODEL_CPP = (
    """\
// {name} {version}: hls4mlEmulator::Model of a run's BDT written by hepfpga {hepfpga}.
// The arithmetic is conifer {conifer}'s C++ emulation (BDT/conifer.h) with the types of the
// run's conifer project, bit for bit the firmware's; see README.md.
#include <any>
#include <stdexcept>
#include <vector>

#include "ap_fixed.h"
#include "conifer.h"
#include "emulator.h"

namespace {ns} {{

// the types of the run's conifer cpp project (its JSON's config), as conifer's writer sets them
struct Config : {ns}_conifer::ConiferConfiguration {{
    typedef {threshold_t} threshold_t;
    typedef {input_t} input_t;
    typedef {weight_t} weight_t;
    typedef {score_t} score_t;
    static constexpr bool useAddTree = false;
}};

// the trees, as conifer's cpp backend wrote them ({project}.json)
static const char trees_json[] =
#include "{trees_inc}"
    ;

class {cls} : public hls4mlEmulator::Model {{
public:
    // the grid the trees were trained on (the run's bdt.input_type): inputs are converted to
    // it first (rounding, saturation), as hepfpga's quantize_features does
    using feature_t = {feature_t};
    using score_t = Config::score_t;
    static constexpr int n_inputs = {n_in};
    static constexpr int n_outputs = {n_out};

private:
    {ns}_conifer::BDT<Config> bdt_;
    std::vector<Config::threshold_t> input_;
    std::vector<score_t> result_;

public:
    {cls}() : bdt_(nlohmann::json::parse(trees_json)), input_(n_inputs), result_(n_outputs) {{}}

    // double* or float* (converted to feature_t, then to threshold_t, exact), or feature_t*
    void prepare_input(std::any input) override {{
        if (auto p = std::any_cast<double*>(&input)) {{
            for (int i = 0; i < n_inputs; ++i) input_[i] = feature_t((*p)[i]);
        }} else if (auto p = std::any_cast<const double*>(&input)) {{
            for (int i = 0; i < n_inputs; ++i) input_[i] = feature_t((*p)[i]);
        }} else if (auto p = std::any_cast<float*>(&input)) {{
            for (int i = 0; i < n_inputs; ++i) input_[i] = feature_t((*p)[i]);
        }} else if (auto p = std::any_cast<feature_t*>(&input)) {{
            for (int i = 0; i < n_inputs; ++i) input_[i] = (*p)[i];
        }} else {{
            throw std::invalid_argument(
                "{name}_{version}: prepare_input takes double*, float* or {feature_t}*");
        }}
    }}

    void predict() override {{ result_ = bdt_.decision_function(input_); }}

    // score_t* or double* (exact), {n_out} values
    void read_result(std::any result) override {{
        if (auto p = std::any_cast<double*>(&result)) {{
            for (int i = 0; i < n_outputs; ++i) (*p)[i] = result_[i].to_double();
        }} else if (auto p = std::any_cast<score_t*>(&result)) {{
            for (int i = 0; i < n_outputs; ++i) (*p)[i] = result_[i];
        }} else {{
            throw std::invalid_argument(
                "{name}_{version}: read_result takes {score_t}* or double*");
        }}
    }}
}};
"""
    + ENTRY_POINTS
)

#: CMake lines of the BDT library (appended to the package's CMakeLists.txt)
CMAKE = """
# the run's BDT (conifer's C++ emulation): needs the nlohmann JSON headers (Debian:
# nlohmann-json3-dev), as conifer does; exports only create_model/destroy_model too
find_package(nlohmann_json 3 QUIET)
add_library({name}_{version} SHARED src/{name}_{version}.cpp)
target_include_directories({name}_{version} PRIVATE include/hls4ml BDT {ap_types})
if(nlohmann_json_FOUND)
  target_link_libraries({name}_{version} PRIVATE nlohmann_json::nlohmann_json)
else()
  find_path(NLOHMANN_JSON_INCLUDE nlohmann/json.hpp)
  if(NOT NLOHMANN_JSON_INCLUDE)
    message(FATAL_ERROR "the BDT library needs the nlohmann JSON headers (nlohmann/json.hpp): "
      "install nlohmann-json3-dev or pass -DNLOHMANN_JSON_INCLUDE=DIR")
  endif()
  target_include_directories({name}_{version} PRIVATE ${{NLOHMANN_JSON_INCLUDE}})
endif()
target_compile_options({name}_{version} PRIVATE {cxx_flags} -fvisibility=hidden
  -fvisibility-inlines-hidden)
target_link_options({name}_{version} PRIVATE
  -Wl,--version-script=${{CMAKE_CURRENT_SOURCE_DIR}}/exports.map -Wl,--no-undefined)
"""

#: the README section of the BDT library
README = """
## The run's BDT: lib{name}_{version}.so

conifer {conifer}'s C++ emulation of the run's boosted decision trees (`BDT/conifer.h`,
conifer's header, Apache-2.0, licence in `BDT/LICENSE.conifer`; changed: namespace renamed,
a constructor from a JSON value added), the trees embedded as conifer's cpp backend wrote them
(`BDT/{trees_inc}`), namespace `{ns}`, exporting `create_model`/`destroy_model` only. It needs
the nlohmann JSON headers to build (Debian: `nlohmann-json3-dev`).

- input: {n_in} values, `prepare_input(std::any)` with `double*`/`float*` (the run's scaled
  features, as the network takes them), converted to `{feature_t}` (the grid the trees were
  trained on: rounding and saturation of that type, as hepfpga's `quantize_features`) and
  then to conifer's threshold type `{threshold_t}` (exact); or `{feature_t}*`;
- output: {n_out} per-class scores (summed leaf values, `{score_t}`), `read_result(std::any)`
  with `{score_t}*` or `double*` (exact).

    build/run_events build/{library} {events}

compares every score bit for bit with conifer's compiled emulation (the BDT stage's), on the
same test events as the network.
"""


def _conifer_header(conifer: Any) -> tuple[str, Path]:
    """conifer.h with the namespace placeholder and the JSON constructor, and the licence."""
    root = Path(conifer.__file__).parent
    header = (root / "backends" / "cpp" / "include" / "conifer.h").read_text()
    if _CONIFER_CTOR not in header:
        raise ConversionError(
            f"conifer {conifer.__version__}'s conifer.h has no file constructor "
            "'BDT(std::string filename)' written as conifer 1.11 writes it; hepfpga packs "
            "the BDT of conifer 1.11's header (pip install 'conifer==1.11')"
        )
    header = header.replace(_CONIFER_CTOR, _PATCHED_CTOR)
    header = rename_namespace(header, "conifer", f"{PLACEHOLDER}_conifer")
    notice = (
        f"// conifer {conifer.__version__}'s backends/cpp/include/conifer.h (Apache-2.0, see\n"
        "// LICENSE.conifer), changed by hepfpga: namespace conifer renamed per library, and a\n"
        "// constructor of BDT from an nlohmann::json value added (the file constructor\n"
        "// delegates to it), so that a library can embed its trees.\n"
    )
    licences = sorted(root.parent.glob(f"conifer-{conifer.__version__}.dist-info/**/LICENSE*"))
    if not licences:
        raise ConversionError(
            f"conifer {conifer.__version__}'s LICENSE file is not installed; the package must "
            "carry it with conifer.h"
        )
    return notice + header, licences[0]


def _types(trees: dict[str, Any], where: Path) -> dict[str, str]:
    config = trees.get("config", {})
    try:
        return {
            "threshold_t": str(config["threshold_precision"]),
            "input_t": str(config["input_precision"]),
            "weight_t": str(config["weight_precision"]),
            "score_t": str(config["score_precision"]),
        }
    except KeyError as exc:
        raise DataError(
            f"{where}: no {exc.args[0]} in its config; not a conifer cpp-backend project"
        ) from None


def write_bdt_part(
    package_dir: Path, bdt: RunBdt, events: np.ndarray, *, name: str, version: str
) -> BdtPart:
    """Write the BDT library's sources into ``package_dir`` (``BDT/``, ``src/``; see the module
    docstring) and return it with the scores conifer's compiled emulation gives ``events``
    (events x features, the run's scaled features; quantized by
    :func:`~hepfpga.train.bdt.quantize_features` first, as the library does). ``package_dir``
    must already hold ``src/``; its ``NN/ap_types`` or the BDT's own copy of hls4ml's
    ``ap_types`` is found by the CMake lines of :data:`CMAKE`."""
    conifer = require("conifer", "bdt", "packaging the run's BDT")
    trees_file = Path(bdt.emulation_dir) / f"{PROJECT}.json"
    text = trees_file.read_text()
    trees = json.loads(text)
    n_in = int(trees["n_features"])
    n_out = 1 if int(trees["n_classes"]) == 2 else int(trees["n_classes"])
    if events.shape[1] != n_in:
        raise DataError(
            f"the test events have {events.shape[1]} values each; the run's BDT takes {n_in} "
            "features"
        )
    types = _types(trees, trees_file)
    if types["input_t"] != types["threshold_t"]:
        raise DataError(f"{trees_file}: input and threshold types differ, conifer's cpp needs one")
    emulation = load_emulation(bdt.emulation_dir)
    expected = np.asarray(
        emulation.scores(quantize_features(events, bdt.config)), dtype=np.float64
    ).reshape(len(events), n_out)

    header, licence = _conifer_header(conifer)
    if f'){_DELIMITER}"' in text:
        raise DataError(f"{trees_file} holds the raw-string delimiter {_DELIMITER}")
    bdt_dir = package_dir / "BDT"
    bdt_dir.mkdir()
    (bdt_dir / "conifer.h").write_text(header)
    shutil.copyfile(licence, bdt_dir / "LICENSE.conifer")
    (bdt_dir / _TREES_INC).write_text(f'R"{_DELIMITER}({text}){_DELIMITER}"\n')
    digest = source_hash(bdt_dir)
    namespace = f"{name}_{version}_{digest[:12]}"
    fields = {
        "name": name,
        "version": version,
        "ns": PLACEHOLDER,
        "cls": f"{name}_{version}",
        "hepfpga": __version__,
        "conifer": conifer.__version__,
        "project": PROJECT,
        "trees_inc": _TREES_INC,
        "feature_t": bdt.config.input_type.to_hls(),
        "n_in": n_in,
        "n_out": n_out,
        **types,
    }
    source = package_dir / "src" / f"{name}_{version}.cpp"
    source.write_text(_MODEL_CPP.format(**fields))
    set_namespace(bdt_dir, namespace)
    source.write_text(source.read_text().replace(PLACEHOLDER, namespace))
    return BdtPart(
        name=name,
        version=version,
        namespace=namespace,
        n_inputs=n_in,
        n_outputs=n_out,
        expected=expected,
        types={"feature_t": fields["feature_t"], **types},
        conifer_version=str(conifer.__version__),
        sources_sha256=digest,
    )


def readme_section(part: BdtPart, **fields: Any) -> str:
    """The package README's section on the BDT library."""
    return README.format(
        name=part.name,
        version=part.version,
        ns=part.namespace,
        conifer=part.conifer_version,
        trees_inc=_TREES_INC,
        n_in=part.n_inputs,
        n_out=part.n_outputs,
        library=part.library_name,
        events=BDT_EVENTS_FILE,
        **part.types,
        **fields,
    )


def cmake_section(part: BdtPart, *, ap_types: str, cxx_flags: str) -> str:
    """The CMake lines of the BDT library."""
    return CMAKE.format(
        name=part.name, version=part.version, ap_types=ap_types, cxx_flags=cxx_flags
    )
