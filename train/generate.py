"""Generate labelled jets with Pythia 8 and fastjet (the optional ``datagen`` extra).

Physics settings (one set of hard processes per class, each class generated on its own), with
the W and Z jets from one of two :data:`PHYSICS_SETTINGS`:

=====  ===============================================  =========================================
class  Pythia hard processes                            truth object a jet is matched to
=====  ===============================================  =========================================
q      ``HardQCD:qq2qq``, ``HardQCD:qqbar2qqbarNew``    outgoing hard parton (status -23), u/d/s
g      ``HardQCD:gg2gg``, ``HardQCD:qqbar2gg``          outgoing hard gluon (status -23)
W, Z   ``"heavy-resonance"`` (default): ``NewGauge      W (or Z) boson, last copy before its
       Boson:ffbar2Wprime``, m(W') = 2.1 TeV, W' -> W   decay
       Z only, with the decay angles of longitudinal
       bosons (``Wprime:anglesWZ = 1``), W, Z -> quarks
W      ``"sm-diboson"`` (the built-in ``jets.npz``):    W boson, last copy before its decay
       ``WeakDoubleBoson:ffbar2WW``, W -> q q'
Z      ``"sm-diboson"``: ``WeakDoubleBoson:ffbar2gm     Z boson, last copy before its decay
       ZgmZ`` (Z part only, ``WeakZ0:gmZmode = 2``)
t      ``Top:gg2ttbar``, ``Top:qqbar2ttbar``, W -> q q'  top quark, last copy before its decay
=====  ===============================================  =========================================

Common: pp at 13 TeV, ``PhaseSpace:pTHatMin/Max = 1000/1100`` GeV, Pythia's default tune
(Monash) with initial- and final-state showers, multiparton interactions and hadronisation on,
hadronic decays forced through ``onMode``/``onIfAny`` (quarks d, u, s, c, b). All visible
final-state particles (everything but neutrinos) are clustered with anti-kT, R = 0.8; jets
with pT > 800 GeV and |eta| < 2.5 within Delta R < 0.6 (in eta, phi) of a truth object are
kept, each truth object claiming the nearest such jet. Features: :mod:`hepfpga.train.features`
(mMDT grooming with fastjet's SoftDrop, energy correlators in numpy).

Reproducibility: the jets are made in chunks of :data:`CHUNK_JETS` jets; chunk ``k`` of class
``c`` runs Pythia with ``Random:seed = 1 + SeedSequence([seed, c, k]).generate_state(1)[0]
% 900_000_000``. The result depends only on ``seed``, ``n_per_class`` and ``physics`` (and
``n_constituents``), not on the number of worker processes, nor on how they are run
(:func:`generate_sample`'s process pool or :mod:`hepfpga.train.generate_shards` on dask).
Jets are ordered by class, then chunk, then event.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hepfpga._optional import require
from hepfpga.errors import DataError
from hepfpga.registry import Registry
from hepfpga.train.features import (
    MMDT_BETA,
    MMDT_R0,
    MMDT_ZCUT,
    high_level_features,
    kinematics,
    leading_constituents,
)
from hepfpga.train.jets import CLASS_NAMES, FEATURE_NAMES, N_CONSTITUENTS, JetSample

__all__ = [
    "BUILTIN_PHYSICS",
    "CHUNK_JETS",
    "DEFAULT_PHYSICS",
    "JET_ETA_MAX",
    "JET_PT_MIN",
    "JET_R",
    "MATCH_DR",
    "PHYSICS_SETTINGS",
    "PROCESS_SETTINGS",
    "WPRIME_MASS",
    "check_arguments",
    "check_classes",
    "chunk_sample",
    "concatenate_samples",
    "generate_sample",
    "plan_tasks",
    "settings_metadata",
]

JET_R = 0.8
JET_PT_MIN = 800.0
JET_ETA_MAX = 2.5
MATCH_DR = 0.6
#: Jets per unit of work (one Pythia initialisation); fixes the seeding, see the docstring.
CHUNK_JETS = 250

_COMMON_SETTINGS: tuple[str, ...] = (
    "Beams:eCM = 13000.",
    "PhaseSpace:pTHatMin = 1000.",
    "PhaseSpace:pTHatMax = 1100.",
    "PartonLevel:ISR = on",
    "PartonLevel:FSR = on",
    "PartonLevel:MPI = on",
    "HadronLevel:all = on",
    "Print:quiet = on",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Next:numberCount = 0",
    "Random:setSeed = on",
)
_HADRONIC_W = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_HADRONIC_Z = ("23:onMode = off", "23:onIfAny = 1 2 3 4 5")

#: Mass of the W' that gives the W and Z jets of the ``"heavy-resonance"`` physics [GeV]: its
#: decay bosons have pT up to m/2 (Jacobian peak at 1050 GeV, the middle of the QCD classes'
#: pTHat window).
WPRIME_MASS = 2100.0
# W' -> W Z with the decay angles of H+ -> W+ Z (longitudinal bosons, ``anglesWZ = 1``); the
# W class keeps the W jets of these events, the Z class the Z jets.
_WPRIME_WZ = (
    "NewGaugeBoson:ffbar2Wprime = on",
    f"34:m0 = {WPRIME_MASS:.1f}",
    "34:onMode = off",
    "34:onIfAll = 23 24",
    "Wprime:coup2WZ = 1.",
    "Wprime:anglesWZ = 1.",
    *_HADRONIC_W,
    *_HADRONIC_Z,
)

#: Pythia settings per class, added to the common ones above, for each physics choice.
#: ``"heavy-resonance"`` (the default for new samples): W and Z bosons from a 2.1 TeV W'
#: decaying to longitudinally polarised W Z, like the boosted two-pronged W/Z jets of the
#: public hls4ml LHC jet data set. ``"sm-diboson"``: W and Z from
#: the Standard-Model processes ``ffbar -> WW / ZZ``, mostly transversely polarised (the
#: built-in ``jets.npz`` was made with these; a quarter of its W/Z jets lose a prong to mMDT).
#: q, g and t are the same in both.
PHYSICS_SETTINGS: Registry[dict[str, tuple[str, ...]]] = Registry(
    "physics",
    {
        "heavy-resonance": {
            "q": ("HardQCD:qq2qq = on", "HardQCD:qqbar2qqbarNew = on"),
            "g": ("HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on"),
            "W": _WPRIME_WZ,
            "Z": _WPRIME_WZ,
            "t": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_HADRONIC_W),
        },
        "sm-diboson": {
            "q": ("HardQCD:qq2qq = on", "HardQCD:qqbar2qqbarNew = on"),
            "g": ("HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on"),
            "W": ("WeakDoubleBoson:ffbar2WW = on", *_HADRONIC_W),
            "Z": ("WeakDoubleBoson:ffbar2gmZgmZ = on", "WeakZ0:gmZmode = 2", *_HADRONIC_Z),
            "t": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_HADRONIC_W),
        },
    },
)
#: The physics of new samples; the built-in sample keeps ``"sm-diboson"``.
DEFAULT_PHYSICS = "heavy-resonance"
#: The physics of the built-in ``jets.npz`` (its metadata predates the ``physics`` key).
BUILTIN_PHYSICS = "sm-diboson"
#: The settings of the default physics (kept under its old name for callers).
PROCESS_SETTINGS: dict[str, tuple[str, ...]] = PHYSICS_SETTINGS[DEFAULT_PHYSICS]

# Truth objects per class: the PDG ids (absolute values) and whether they are hard partons
# (status -23) or the last copy of a resonance before its decay.
_TRUTH_IDS: dict[str, tuple[frozenset[int], bool]] = {
    "q": (frozenset({1, 2, 3}), True),
    "g": (frozenset({21}), True),
    "W": (frozenset({24}), False),
    "Z": (frozenset({23}), False),
    "t": (frozenset({6}), False),
}
_NEUTRINOS = (12, 14, 16)
_EVENTS_PER_BATCH = 50
_MIN_EVENTS_PER_BATCH = 4
# A chunk gives up (DataError) after this many events per requested jet: a class whose
# efficiency is that low has a settings problem, not bad luck.
_MAX_EVENTS_PER_JET = 50


@dataclass(frozen=True)
class _Task:
    class_index: int
    chunk_index: int
    n_jets: int
    pythia_seed: int
    n_constituents: int
    physics: str = DEFAULT_PHYSICS


@dataclass
class _ChunkResult:
    features: np.ndarray
    constituents: np.ndarray
    jet_pt: np.ndarray
    jet_eta: np.ndarray
    jet_mass: np.ndarray
    n_events: int
    n_undefined: int
    n_groomed_le2: int
    seconds: float


def _pythia_seed(seed: int, class_index: int, chunk_index: int) -> int:
    state = np.random.SeedSequence([seed, class_index, chunk_index]).generate_state(1)[0]
    return 1 + int(state) % 900_000_000


def _make_pythia(class_name: str, pythia_seed: int, physics: str) -> Any:
    pythia8 = require("pythia8mc", "datagen", "Generating jets")
    pythia = pythia8.Pythia("", False)
    settings = PHYSICS_SETTINGS[physics][class_name]
    for line in (*_COMMON_SETTINGS, f"Random:seed = {pythia_seed}", *settings):
        if not pythia.readString(line):
            raise DataError(f"Pythia rejected the setting {line!r} for class {class_name!r}")
    if not pythia.init():
        raise DataError(f"Pythia failed to initialise for class {class_name!r}")
    return pythia


def _truth_directions(prt: Any, class_name: str) -> list[np.ndarray]:
    """Per event, an (n, 2) array of (eta, phi) of the truth objects of ``class_name``."""
    # deferred, optional: awkward (hepfpga[emulate])
    import awkward as ak

    ids, hard_partons = _TRUTH_IDS[class_name]
    counts = ak.to_numpy(ak.num(prt.id))
    pdg = np.abs(ak.to_numpy(ak.flatten(prt.id)))
    status = ak.to_numpy(ak.flatten(prt.status))
    wanted = np.isin(pdg, list(ids))
    if hard_partons:
        wanted &= status == -23
    else:
        # last copy: the first daughter is another particle species (its decay product)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        event_of = np.repeat(np.arange(counts.size), counts)
        daughter = ak.to_numpy(ak.flatten(prt.daughter1)) + offsets[event_of]
        daughter = np.clip(daughter, 0, pdg.size - 1)
        wanted &= pdg[daughter] != pdg
    px = ak.to_numpy(ak.flatten(prt.p.px))
    py = ak.to_numpy(ak.flatten(prt.p.py))
    pz = ak.to_numpy(ak.flatten(prt.p.pz))
    energy = ak.to_numpy(ak.flatten(prt.p.e))
    _, eta, _, phi = kinematics(px, py, pz, energy)
    directions = np.stack([eta, phi], axis=1)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [
        directions[bounds[i] : bounds[i + 1]][wanted[bounds[i] : bounds[i + 1]]]
        for i in range(counts.size)
    ]


def _match(jet_eta: np.ndarray, jet_phi: np.ndarray, truth: np.ndarray) -> list[int]:
    """Indices of jets matched to truth objects (nearest jet within MATCH_DR, each once)."""
    chosen: list[int] = []
    for eta, phi in truth:
        dphi = (jet_phi - phi + np.pi) % (2.0 * np.pi) - np.pi
        dr = np.hypot(jet_eta - eta, dphi)
        dr[chosen] = np.inf
        if dr.size and dr.min() < MATCH_DR:
            chosen.append(int(np.argmin(dr)))
    return sorted(chosen)


@dataclass(frozen=True)
class _Jagged:
    """Four-momenta of a jagged awkward array as flat numpy arrays with list boundaries."""

    momenta: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # px, py, pz, E
    bounds: np.ndarray  # list n is [bounds[n], bounds[n + 1])


def _four_momenta(array: Any) -> _Jagged:
    # deferred, optional: awkward (hepfpga[emulate])
    import awkward as ak

    counts = ak.to_numpy(ak.num(array, axis=1))
    px, py, pz, energy = (
        np.asarray(ak.to_numpy(ak.flatten(array[name])), dtype=np.float64)
        for name in ("px", "py", "pz", "E")
    )
    return _Jagged(momenta=(px, py, pz, energy), bounds=np.concatenate([[0], np.cumsum(counts)]))


def _groom(jets_constituents: Any) -> Any:
    """mMDT (SoftDrop beta=0, zcut=0.1, R0=0.8) of each jet given as a list of constituents."""
    fastjet = require("fastjet", "datagen", "Grooming jets")
    sequence = fastjet.ClusterSequence(
        jets_constituents, fastjet.JetDefinition(fastjet.cambridge_algorithm, JET_R)
    )
    return sequence.exclusive_jets_softdrop_grooming(
        njets=1, beta=MMDT_BETA, symmetry_cut=MMDT_ZCUT, R0=MMDT_R0
    )


def _run_chunk(task: _Task) -> _ChunkResult:
    # deferred, optional: awkward (hepfpga[emulate])
    import awkward as ak

    fastjet = require("fastjet", "datagen", "Clustering jets")
    start = time.perf_counter()
    class_name = CLASS_NAMES[task.class_index]
    pythia = _make_pythia(class_name, task.pythia_seed, task.physics)
    jet_definition = fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R)

    features: list[np.ndarray] = []
    constituents: list[np.ndarray] = []
    kin: list[tuple[float, float, float]] = []
    n_events = n_undefined = n_le2 = 0
    max_events = _MAX_EVENTS_PER_JET * task.n_jets + 1000
    while len(features) < task.n_jets:
        if n_events >= max_events:
            raise DataError(
                f"class {class_name!r}: only {len(features)} of {task.n_jets} jets passed the "
                f"selection in {n_events} events; check the Pythia settings"
            )
        # the batch size changes only how many surplus events are made: the jets are taken
        # in event order, the same for any batch size
        batch = pythia.nextBatch(
            min(_EVENTS_PER_BATCH, max(_MIN_EVENTS_PER_BATCH, 2 * (task.n_jets - len(features))))
        )
        n_events += len(batch)
        prt = batch.prt
        abs_id = abs(prt.id)
        visible = prt.status > 0
        for neutrino in _NEUTRINOS:
            visible = visible & (abs_id != neutrino)
        particles = ak.zip(
            {
                "px": prt.p.px[visible],
                "py": prt.p.py[visible],
                "pz": prt.p.pz[visible],
                "E": prt.p.e[visible],
            }
        )
        sequence = fastjet.ClusterSequence(particles, jet_definition)
        jets = _four_momenta(sequence.inclusive_jets(min_pt=JET_PT_MIN))
        # events x jets x particles -> jets x particles, in the same jet order as ``jets``
        jet_constituents = ak.flatten(sequence.constituents(min_pt=JET_PT_MIN), axis=1)
        truth = _truth_directions(prt, class_name)

        jet_pt, jet_eta, _, jet_phi = kinematics(*jets.momenta)
        eta_central = np.where(np.abs(jet_eta) < JET_ETA_MAX, jet_eta, np.inf)
        selected: list[int] = []
        for event in range(len(batch)):
            first, stop = jets.bounds[event], jets.bounds[event + 1]
            if stop > first:
                matched = _match(eta_central[first:stop], jet_phi[first:stop], truth[event])
                selected.extend(first + m for m in matched)
        selected = selected[: task.n_jets - len(features)]
        if not selected:
            continue
        chosen = jet_constituents[np.asarray(selected)]
        groomed = _groom(chosen)
        cons = _four_momenta(chosen)
        groomed_cons = _four_momenta(groomed.constituents)
        groomed_mass = ak.to_numpy(groomed.msoftdrop)
        c_pt, c_eta, _, c_phi = kinematics(*cons.momenta)
        g_pt, _, g_rap, g_phi = kinematics(*groomed_cons.momenta)
        for n, jet in enumerate(selected):
            c_slice = slice(cons.bounds[n], cons.bounds[n + 1])
            g_slice = slice(groomed_cons.bounds[n], groomed_cons.bounds[n + 1])
            result = high_level_features(
                constituent_pt=c_pt[c_slice],
                jet_pt=float(jet_pt[jet]),
                groomed_pt=g_pt[g_slice],
                groomed_rapidity=g_rap[g_slice],
                groomed_phi=g_phi[g_slice],
                groomed_mass=float(groomed_mass[n]),
            )
            features.append(result.values)
            constituents.append(
                leading_constituents(
                    c_pt[c_slice],
                    c_eta[c_slice],
                    c_phi[c_slice],
                    jet_pt=float(jet_pt[jet]),
                    jet_eta=float(jet_eta[jet]),
                    jet_phi=float(jet_phi[jet]),
                    n=task.n_constituents,
                )
            )
            px, py, pz, energy = (m[jet] for m in jets.momenta)
            mass = float(np.sqrt(max(energy**2 - px**2 - py**2 - pz**2, 0.0)))
            kin.append((float(jet_pt[jet]), float(jet_eta[jet]), mass))
            n_undefined += int(result.undefined)
            n_le2 += int(g_slice.stop - g_slice.start <= 2)

    kin_array = np.asarray(kin, dtype=np.float32).reshape(-1, 3)
    return _ChunkResult(
        features=np.asarray(features, dtype=np.float32).reshape(-1, len(FEATURE_NAMES)),
        constituents=np.asarray(constituents, dtype=np.float32).reshape(-1, task.n_constituents, 3),
        jet_pt=kin_array[:, 0],
        jet_eta=kin_array[:, 1],
        jet_mass=kin_array[:, 2],
        n_events=n_events,
        n_undefined=n_undefined,
        n_groomed_le2=n_le2,
        seconds=time.perf_counter() - start,
    )


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("pythia8mc", "fastjet", "awkward", "hepfpga"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_arguments(
    n_per_class: object,
    seed: object,
    n_constituents: object,
    physics: object,
    chunk_jets: object = CHUNK_JETS,
) -> None:
    """Refuse bad generation arguments with a :class:`~hepfpga.errors.DataError` (a
    :class:`~hepfpga.errors.ConfigError` at ``physics`` for an unknown physics)."""
    if not _is_int(n_per_class) or n_per_class < 1:  # type: ignore[operator]
        raise DataError(f"expected a positive integer. Received: n_per_class={n_per_class!r}")
    if not _is_int(n_constituents) or n_constituents < 0:  # type: ignore[operator]
        raise DataError(
            f"expected a non-negative integer. Received: n_constituents={n_constituents!r}"
        )
    if not _is_int(seed) or seed < 0:  # type: ignore[operator]
        raise DataError(f"expected a non-negative integer. Received: seed={seed!r}")
    if not _is_int(chunk_jets) or chunk_jets < 1:  # type: ignore[operator]
        raise DataError(f"expected a positive integer. Received: chunk_jets={chunk_jets!r}")
    if not isinstance(physics, str):
        raise DataError(
            f"expected one of {', '.join(PHYSICS_SETTINGS)}. Received: physics={physics!r}"
        )
    PHYSICS_SETTINGS.lookup(physics, "physics")


def check_classes(classes: object) -> tuple[str, ...]:
    """``classes`` (names of :data:`CLASS_NAMES`, in any order, each once; ``None``: all) in
    the order of :data:`CLASS_NAMES`; anything else is a :class:`~hepfpga.errors.DataError`."""
    if classes is None:
        return CLASS_NAMES
    accepted = ", ".join(CLASS_NAMES)
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise DataError(f"expected class names among {accepted}. Received: classes={classes!r}")
    names = [str(c) for c in classes]
    unknown = [c for c in names if c not in CLASS_NAMES]
    if unknown or not names or len(set(names)) != len(names):
        what = f"unknown {unknown[0]!r}" if unknown else ("none" if not names else "repeated")
        raise DataError(
            f"classes {','.join(names)}: {what}; accepted: one or more of {accepted}, each once"
        )
    return tuple(c for c in CLASS_NAMES if c in names)


def plan_tasks(
    n_per_class: int,
    seed: int,
    n_constituents: int,
    physics: str,
    chunk_jets: int = CHUNK_JETS,
    classes: tuple[str, ...] | None = None,
) -> list[_Task]:
    """The chunks of a sample, in the sample's order (class, then chunk); see the module
    docstring for the seeding. ``chunk_jets`` other than :data:`CHUNK_JETS` gives other jets.
    ``classes`` (default all) keeps the chunks of those classes only: their seeds (and so
    their jets) are those of the same chunks in a sample of all classes."""
    wanted = check_classes(classes)
    return [
        _Task(
            class_index=class_index,
            chunk_index=chunk_index,
            n_jets=min(chunk_jets, n_per_class - first),
            pythia_seed=_pythia_seed(seed, class_index, chunk_index),
            n_constituents=n_constituents,
            physics=physics,
        )
        for class_index in range(len(CLASS_NAMES))
        if CLASS_NAMES[class_index] in wanted
        for chunk_index, first in enumerate(range(0, n_per_class, chunk_jets))
    ]


def settings_metadata(
    seed: int, n_per_class: int, n_constituents: int, physics: str, chunk_jets: int = CHUNK_JETS
) -> dict[str, Any]:
    """What a sample's jets depend on (the ``metadata`` keys that are not results)."""
    return {
        "source": "hepfpga.train.generate",
        "seed": seed,
        "n_per_class": n_per_class,
        "n_constituents": n_constituents,
        "physics": physics,
        "chunk_jets": chunk_jets,
        "pythia_settings_common": list(_COMMON_SETTINGS),
        "pythia_settings_per_class": {k: list(v) for k, v in PHYSICS_SETTINGS[physics].items()},
        "jet_definition": f"anti-kT R={JET_R}, visible final state (no neutrinos)",
        "selection": f"pT > {JET_PT_MIN} GeV, |eta| < {JET_ETA_MAX}, truth dR < {MATCH_DR}",
        "grooming": f"mMDT: SoftDrop beta={MMDT_BETA}, zcut={MMDT_ZCUT}, R0={MMDT_R0}",
        "versions": _versions(),
    }


def chunk_sample(task: _Task, result: _ChunkResult) -> JetSample:
    """The jets of one chunk as a sample (labels all ``task.class_index``)."""
    return JetSample(
        features=result.features,
        constituents=result.constituents,
        labels=np.full(result.jet_pt.shape[0], task.class_index, np.int64),
        jet_pt=result.jet_pt,
        jet_eta=result.jet_eta,
        jet_mass=result.jet_mass,
    )


def concatenate_samples(parts: list[JetSample], metadata: dict[str, Any]) -> JetSample:
    """The jets of ``parts`` one after the other, with ``metadata``."""
    json.dumps(metadata)  # fail here, not at save time, if something is not serialisable
    return JetSample(
        features=np.concatenate([p.features for p in parts]),
        constituents=np.concatenate([p.constituents for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        jet_pt=np.concatenate([p.jet_pt for p in parts]),
        jet_eta=np.concatenate([p.jet_eta for p in parts]),
        jet_mass=np.concatenate([p.jet_mass for p in parts]),
        metadata=metadata,
    )


def generate_sample(
    n_per_class: int,
    *,
    seed: int = 1,
    n_constituents: int = N_CONSTITUENTS,
    progress: bool = True,
    workers: int | None = None,
    physics: str = DEFAULT_PHYSICS,
) -> JetSample:
    """Generate ``n_per_class`` jets of each class in :data:`CLASS_NAMES` (see module docstring).

    ``physics`` picks the hard processes (:data:`PHYSICS_SETTINGS`; the built-in sample was
    made with ``"sm-diboson"``). ``workers`` is the number of processes (default: the CPU
    count, at most the number of chunks); ``1`` runs in this process. The result does not
    depend on ``workers``. The same jets, in the same order, come out of
    :func:`hepfpga.train.generate_shards.generate_shards` with the same arguments.
    Raises :class:`~hepfpga.errors.MissingDependencyError` without the ``datagen`` extra.
    """
    check_arguments(n_per_class, seed, n_constituents, physics)
    if workers is not None and (not _is_int(workers) or workers < 1):
        raise DataError(f"expected a positive integer or None. Received: workers={workers!r}")
    require("pythia8mc", "datagen", "Generating jets")
    require("fastjet", "datagen", "Clustering jets")

    tasks = plan_tasks(n_per_class, seed, n_constituents, physics)
    n_workers = min(workers or os.cpu_count() or 1, len(tasks))

    start = time.perf_counter()
    results: list[_ChunkResult] = []
    with tqdm(
        total=n_per_class * len(CLASS_NAMES), unit="jet", desc="jets", disable=not progress
    ) as bar:
        if n_workers == 1:
            for task in tasks:
                results.append(_run_chunk(task))
                bar.update(task.n_jets)
        else:
            # fork keeps scripts without a ``__main__`` guard working; the workers only use
            # Pythia, fastjet and numpy, none of which holds a lock across the fork
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with multiprocessing.get_context(method).Pool(n_workers) as pool:
                for task, result in zip(tasks, pool.imap(_run_chunk, tasks), strict=True):
                    results.append(result)
                    bar.update(task.n_jets)
    wall = time.perf_counter() - start

    n_jets = sum(r.jet_pt.shape[0] for r in results)
    worker_seconds = sum(r.seconds for r in results)
    metadata = settings_metadata(seed, n_per_class, n_constituents, physics)
    metadata.update(
        {
            "n_events": {
                name: sum(
                    r.n_events for t, r in zip(tasks, results, strict=True) if t.class_index == i
                )
                for i, name in enumerate(CLASS_NAMES)
            },
            "n_undefined_ratios": sum(r.n_undefined for r in results),
            "n_groomed_le2": sum(r.n_groomed_le2 for r in results),
            # per worker process, Pythia initialisation included
            "jets_per_worker_second": (
                round(n_jets / worker_seconds, 1) if worker_seconds else None
            ),
            "wall_seconds": round(wall, 1),
            "workers": n_workers,
        }
    )
    return concatenate_samples(
        [chunk_sample(t, r) for t, r in zip(tasks, results, strict=True)], metadata
    )
