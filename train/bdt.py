"""DNN vs BDT: a gradient-boosted decision tree on the same features, and its firmware.

The BDT is scikit-learn's :class:`~sklearn.ensemble.GradientBoostingClassifier` (one
regression tree per class and boosting stage, softmax of the summed leaf values). It is
converted with conifer (``pip install 'hepfpga[bdt]'``) into

* an HLS project (conifer's ``xilinxhls`` backend, Vivado/Vitis HLS C++), written only: its
  C simulation compiles slowly (minutes for 100 x 5 trees), see :func:`compile_hls`;
* conifer's bit-accurate C++ emulation (the ``cpp`` backend, compiled with g++ into a
  Python extension), which runs the same fixed-point comparisons and sums as the firmware.

Numeric semantics. The features are the DNN's scaled features quantized to ``input_type``
(default the DNN's input type ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``) *before* the trees are
trained, so training, the emulation and the firmware see the same grid. scikit-learn puts each
threshold half-way between two neighbouring training values, so a threshold needs one more
fractional bit than the inputs: thresholds (and, because conifer's emulation wants one type
for both, the inputs) are ``ap_fixed<W+1, I>`` for an ``input_type`` of ``ap_fixed<W, I>``,
which makes every comparison ``x <= threshold`` exact. Leaf values (times the learning rate)
and their sums use ``score_type`` (default ``ap_fixed<32,8>``: 2^-24 resolution), truncated
as ``ap_fixed`` does; a score differs from scikit-learn's float64 sum by at most
``n_estimators * 2^-24`` plus the initial log-prior's truncation. A decision is the argmax of
the scores.

Requirements for the compilation: g++, the nlohmann JSON headers (Debian:
``nlohmann-json3-dev``) and the ``ap_fixed`` headers; ``XILINX_AP_INCLUDE`` is pointed at
hls4ml's bundled copy when not set.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepfpga._optional import require
from hepfpga.errors import ConfigError, ConversionError, DataError
from hepfpga.fixed_point import FixedType

__all__ = [
    "BdtConfig",
    "BdtEmulation",
    "BdtVerification",
    "convert_bdt",
    "load_emulation",
    "quantize_features",
    "threshold_type",
    "train_bdt",
    "verify_bdt",
]

log = logging.getLogger("hepfpga")

#: conifer project name (not ``bdt``: conifer names its tree object so)
PROJECT = "hepfpga_bdt"


def _default_input() -> FixedType:
    return FixedType.parse("ap_fixed<16,6,AP_RND_CONV,AP_SAT>")


def _default_score() -> FixedType:
    return FixedType.parse("ap_fixed<32,8>")


@dataclass(frozen=True)
class BdtConfig:
    """The boosted decision tree compared with the DNN (``bdt`` section).

    ``n_estimators`` boosting stages of ``max_depth``-deep trees (one per class each),
    shrinkage ``learning_rate``, each tree fitted on a random ``subsample`` of the training
    jets (1.0: all; below 1 is stochastic gradient boosting). ``input_type`` and
    ``score_type``: see the module docstring.
    """

    enabled: bool = False
    n_estimators: int = 100
    max_depth: int = 3
    learning_rate: float = 0.1
    subsample: float = 1.0
    input_type: FixedType = field(default_factory=_default_input)
    score_type: FixedType = field(default_factory=_default_score)

    def __post_init__(self) -> None:
        for name in ("n_estimators", "max_depth"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"expected a positive integer, got {getattr(self, name)}", path=name
                )
        if not 0.0 < self.learning_rate <= 1.0:
            raise ConfigError(
                f"expected a number in (0, 1], got {self.learning_rate!r}", path="learning_rate"
            )
        if not 0.0 < self.subsample <= 1.0:
            raise ConfigError(
                f"expected a fraction in (0, 1], got {self.subsample!r}", path="subsample"
            )
        for name in ("input_type", "score_type"):
            t = getattr(self, name)
            if not t.signed or t.width > 52:
                raise ConfigError(
                    f"expected a signed ap_fixed of at most 52 bits, got {t.to_hls()}", path=name
                )


def threshold_type(input_type: FixedType) -> FixedType:
    """``ap_fixed<W+1, I>`` for inputs ``ap_fixed<W, I>``: holds every input value and every
    mid-point between two of them exactly."""
    return FixedType(input_type.width + 1, input_type.integer)


def quantize_features(x: np.ndarray, config: BdtConfig) -> np.ndarray:
    """The scaled features on ``config.input_type``'s grid (its rounding and saturation), as
    float32 (exact: at most 24 significant bits are needed up to ``ap_fixed<24, I>``; wider
    types are returned as float64)."""
    values = config.input_type.quantize(x)
    return values.astype(np.float32) if config.input_type.width <= 24 else values


@dataclass
class BdtModel:
    """A trained BDT: the scikit-learn model, its settings and the training time."""

    classifier: Any
    config: BdtConfig
    seconds: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Raw per-class scores (summed leaf values plus the log prior), shape (N, classes),
        of features already on the input grid (:func:`quantize_features`)."""
        return _as_2d(self.classifier.decision_function(x))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.classifier.predict_proba(x))


def _as_2d(scores: Any) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return scores[:, None] if scores.ndim == 1 else scores


def train_bdt(
    x_train: np.ndarray, y_train: np.ndarray, config: BdtConfig, *, seed: int = 0
) -> BdtModel:
    """Fit the gradient-boosted trees on ``x_train`` quantized to the input grid.

    ``seed`` fixes the subsampling and the feature order tie-breaks, so a fit is reproducible.
    """
    # deferred: scikit-learn loads slowly
    from sklearn.ensemble import GradientBoostingClassifier

    if len(np.unique(y_train)) < 2:
        raise DataError("a BDT needs training jets of at least two classes")
    classifier = GradientBoostingClassifier(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        learning_rate=config.learning_rate,
        subsample=config.subsample,
        random_state=seed,
    )
    start = time.perf_counter()
    classifier.fit(quantize_features(x_train, config), y_train)
    return BdtModel(classifier, config, time.perf_counter() - start)


def _ap_include() -> None:
    if os.environ.get("XILINX_AP_INCLUDE"):
        return
    # deferred: hls4ml and TensorFlow load slowly
    import hls4ml

    path = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    if path.is_dir():
        os.environ["XILINX_AP_INCLUDE"] = str(path)


def _conifer_config(conifer: Any, backend: str, config: BdtConfig, out_dir: Path) -> dict:
    """conifer's own defaults for ``backend`` (part, clock, unrolling) with our types."""
    settings = dict(getattr(conifer.backends, backend).auto_config())
    settings.pop("Precision", None)
    grid = threshold_type(config.input_type).to_hls()
    score = config.score_type.to_hls()
    settings.update(
        ProjectName=PROJECT,
        OutputDir=str(out_dir),
        InputPrecision=grid,
        ThresholdPrecision=grid,
        WeightPrecision=score,
        ScorePrecision=score,
    )
    return settings


def _cache_root() -> Path:
    # the same place as the C-simulation cache of hepfpga.firmware (train may not import it)
    return Path(os.environ.get("HEPFPGA_CACHE") or Path.home() / ".cache" / "hepfpga")


def _load_bridge(conifer: Any, emu_dir: Path, stamp: Any) -> Any:
    """The compiled pybind11 bridge of conifer's C++ emulation for ``emu_dir/bridge.cpp``.

    The bridge reads the trees from the project's JSON at run time, so the compiled code
    depends only on the types: it is compiled once per (types, conifer, compiler, Python) in
    ``$HEPFPGA_CACHE/conifer/<key>/`` (default ``~/.cache/hepfpga``) and reused; a first
    compilation takes 20-40 s.
    """
    # deferred, optional: pybind11 (hepfpga[bdt])
    import pybind11

    stamp = str(stamp)
    source = (emu_dir / "bridge.cpp").read_text()
    compiler = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout
    ident = "\0".join(
        [source.replace(stamp, "STAMP"), str(conifer.__version__), compiler, sys.version]
    )
    key = hashlib.sha256(ident.encode()).hexdigest()[:16]
    name = f"conifer_bridge_{key}"
    entry = _cache_root() / "conifer" / key
    library = entry / f"{name}.so"
    if not library.is_file():
        entry.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=entry) as tmp:
            cpp = Path(tmp) / "bridge.cpp"
            cpp.write_text(source.replace(f"conifer_bridge_{stamp}", name))
            include = Path(conifer.__file__).parent / "backends" / "cpp" / "include"
            command = [
                "g++", "-O2", "-shared", "-std=c++14", "-fPIC",
                f"-I{pybind11.get_include()}", f"-I{sysconfig.get_paths()['include']}",
                f"-I{os.environ['XILINX_AP_INCLUDE']}", f"-I{include}",
                str(cpp), "-o", str(Path(tmp) / library.name),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise ConversionError(
                    "conifer's C++ emulation of the BDT does not compile: "
                    f"{done.stderr.strip()[-800:]} -- it needs g++, the nlohmann JSON headers "
                    "(Debian: apt-get install nlohmann-json3-dev) and the ap_fixed headers "
                    "(XILINX_AP_INCLUDE)"
                )
            (Path(tmp) / library.name).replace(library)  # atomic: concurrent builds agree
    spec = importlib.util.spec_from_file_location(name, library)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class BdtEmulation:
    """conifer's compiled C++ emulation of the firmware, and where the HLS project is."""

    model: Any
    hls_project: Path
    emulation_dir: Path
    compile_seconds: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        """The firmware's per-class scores for features on the input grid, shape (N, classes)."""
        values = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
        return _as_2d(self.model.decision_function(values))


def convert_bdt(bdt: BdtModel, out_dir: Path) -> BdtEmulation:
    """Write the HLS project of ``bdt`` to ``out_dir/hls`` and compile conifer's C++
    emulation in ``out_dir/emulation``."""
    conifer = require("conifer", "bdt", "converting the BDT to firmware")
    _ap_include()
    logging.getLogger("conifer").setLevel(logging.ERROR)
    out_dir = Path(out_dir)
    hls_dir, emu_dir = out_dir / "hls", out_dir / "emulation"
    for d in (hls_dir, emu_dir):
        d.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    hls = conifer.converters.convert_from_sklearn(
        bdt.classifier, _conifer_config(conifer, "xilinxhls", bdt.config, hls_dir)
    )
    hls.write()
    emulation = conifer.converters.convert_from_sklearn(
        bdt.classifier, _conifer_config(conifer, "cpp", bdt.config, emu_dir)
    )
    emulation.write()
    emulation.bridge = _load_bridge(conifer, emu_dir, emulation._stamp).BDT(
        str(emu_dir / f"{PROJECT}.json")
    )
    return BdtEmulation(emulation, hls_dir, emu_dir, time.perf_counter() - start)


class _BridgeRows:
    """conifer's ``CPPModel.decision_function`` for a bridge loaded from a written project:
    one call of the compiled ``BDT.decision_function`` per event (conifer's own loop, without
    its change of working directory to the project's original path)."""

    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return np.array([self.bridge.decision_function(row) for row in x])


def load_emulation(emulation_dir: Path) -> BdtEmulation:
    """conifer's compiled C++ emulation of a BDT that :func:`convert_bdt` wrote (a run's
    ``bdt_firmware/emulation``: ``bridge.cpp`` and the trees in ``hepfpga_bdt.json``), the
    same compiled bridge (from the cache, see :func:`_load_bridge`) on the same trees; the
    numbers are the firmware's, as in the run."""
    conifer = require("conifer", "bdt", "running the BDT's emulation")
    _ap_include()
    emu_dir = Path(emulation_dir)
    trees = emu_dir / f"{PROJECT}.json"
    bridge_cpp = emu_dir / "bridge.cpp"
    if not trees.is_file() or not bridge_cpp.is_file():
        raise DataError(
            f"{emu_dir} holds no conifer cpp-backend project ({trees.name} and bridge.cpp, "
            "as hepfpga's BDT stage writes them)"
        )
    stamp = re.search(r"PYBIND11_MODULE\(conifer_bridge_(\w+)", bridge_cpp.read_text())
    if stamp is None:
        raise DataError(f"{bridge_cpp} is not the bridge conifer's cpp backend writes")
    start = time.perf_counter()
    bridge = _load_bridge(conifer, emu_dir, stamp[1]).BDT(str(trees))
    return BdtEmulation(
        _BridgeRows(bridge), emu_dir.parent / "hls", emu_dir, time.perf_counter() - start
    )


@dataclass(frozen=True)
class BdtVerification:
    """conifer emulation vs scikit-learn on the same (input-grid) events: the fraction of
    identical decisions (argmax) and the largest score difference."""

    n_events: int
    fraction_identical_decisions: float
    max_abs_score_diff: float
    #: bound from the score type's resolution: n_estimators * lsb + lsb (see module doc)
    score_diff_bound: float

    @property
    def passed(self) -> bool:
        return self.fraction_identical_decisions == 1.0 and (
            self.max_abs_score_diff <= self.score_diff_bound
        )


def verify_bdt(bdt: BdtModel, emulation: BdtEmulation, x: np.ndarray) -> BdtVerification:
    """Run the emulation and scikit-learn on ``x`` (scaled features; quantized here) and
    compare their scores and decisions."""
    xq = quantize_features(x, bdt.config)
    reference = bdt.scores(xq)
    emulated = emulation.scores(xq)
    if emulated.shape != reference.shape:
        raise ConversionError(
            f"the BDT emulation returned scores of shape {emulated.shape}, expected "
            f"{reference.shape}"
        )
    lsb = bdt.config.score_type.lsb
    decisions = (
        np.argmax(emulated, axis=1) == np.argmax(reference, axis=1)
        if reference.shape[1] > 1
        else (emulated[:, 0] > 0) == (reference[:, 0] > 0)
    )
    return BdtVerification(
        n_events=len(xq),
        fraction_identical_decisions=float(np.mean(decisions)),
        max_abs_score_diff=float(np.max(np.abs(emulated - reference))),
        score_diff_bound=(bdt.config.n_estimators + 1) * lsb,
    )
