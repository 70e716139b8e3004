"""Bad input to ``tune`` and ``scan``, refused before any trial or training: one line, status
2, nothing written; a search whose every trial fails exits 1.

In the style of tests/cli/test_bad_input.py: each case runs ``hepfpga.cli.main`` in-process
on its own folder and asserts the status, one ``error`` line holding the case's needles, no
traceback, and that the folder is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from hepfpga.cli import main
from hepfpga.train.io import save_sample

optuna = pytest.importorskip("optuna")
pytest.importorskip("distributed")

#: a folder no process can write into, root included (sysfs)
UNWRITABLE = "/sys/hepfpga-bad-input"


@dataclass(frozen=True)
class Case:
    id: str
    #: changes to the tune file (None: the tune file is not used)
    tune: dict[str, Any] | None = None
    #: extra command-line arguments, given the case's folder
    args: Callable[[Path], list[str]] = field(default=lambda d: [])
    needles: tuple[str, ...] = ()
    code: int = 2
    #: prepares the case's folder (files that must exist before)
    setup: Callable[[Path], None] = field(default=lambda d: None)
    #: the full command line instead of ``tune TUNE_FILE ARGS`` (scan cases)
    argv: Callable[[Path], list[str]] | None = None

    def __str__(self) -> str:
        return self.id


def _space(**dims: Any) -> dict[str, Any]:
    return {"space": dims}


def _corrupt_db(folder: Path) -> None:
    (folder / "corrupt.db").write_bytes(b"this is not an SQLite database\n" * 10)


def _study_with_another_space(folder: Path) -> None:
    # a study of the same name, made by optuna alone, whose trials searched another value
    (folder / "runs" / "search").mkdir(parents=True)
    study = optuna.create_study(
        study_name="search",
        storage=f"sqlite:///{folder / 'runs' / 'search' / 'study.db'}",
        direction="maximize",
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"training.batch_size": 32},
            distributions={"training.batch_size": optuna.distributions.IntDistribution(16, 64)},
            value=0.5,
        )
    )


def _scan(config: str, *extra: str) -> Callable[[Path], list[str]]:
    return lambda d: ["scan", str(d / config), "--out", str(d / "scan"), *extra]


CASES = [
    # --- the space, checked as configs before the first trial ---------------------------------
    Case(
        "epochs-range-all-negative",
        _space(**{"training.epochs": {"low": -5, "high": -1, "integer": True}}),
        needles=("space.training.epochs", "low = -5", "positive"),
    ),
    Case(
        "choice-over-a-whole-section",
        _space(training={"choices": [1, 2]}),
        needles=("space.training", "choice 1 = 1", "mapping"),
    ),
    Case(
        "one-bad-choice-among-good-ones",
        _space(**{"model.hidden_units": {"choices": [[8], [0]]}}),
        needles=("space.model.hidden_units", "choice 2 = [0]", "positive"),
    ),
    Case(
        "float-range-over-an-integer",
        _space(**{"training.epochs": {"low": 1, "high": 5}}),
        needles=("space.training.epochs", "expected an integer", "integer: true"),
    ),
    Case(
        "grid-of-10**10-points",
        {
            "strategy": "grid",
            **_space(**{"training.batch_size": {"low": 1, "high": 10**10, "integer": True}}),
        },
        needles=("more than 10,000 points", "10,000,000,000"),
    ),
    Case(
        "grid-product-of-two-ranges",
        {
            "strategy": "grid",
            **_space(
                **{
                    "training.batch_size": {"low": 1, "high": 200, "integer": True},
                    "training.epochs": {"low": 1, "high": 100, "integer": True},
                }
            ),
        },
        needles=("more than 10,000 points", "training.batch_size: 200"),
    ),
    # --- storage, output folder, scheduler ------------------------------------------------------
    Case(
        "storage-garbage",
        args=lambda d: ["--storage", "garbage"],
        needles=("storage", "garbage", "could not parse", "sqlite:///"),
    ),
    Case(
        "storage-unknown-dialect",
        args=lambda d: ["--storage", "nosuchdb://host/x"],
        needles=("storage", "nosuchdb", "can't load plugin"),
    ),
    Case(
        "storage-corrupt-study-db",
        args=lambda d: ["--storage", f"sqlite:///{d / 'corrupt.db'}"],
        setup=_corrupt_db,
        needles=("storage", "corrupt.db", "not a database"),
    ),
    Case(
        "storage-unwritable",
        args=lambda d: ["--storage", f"sqlite:///{UNWRITABLE}/study.db"],
        needles=("storage", "unable to open database file"),
    ),
    Case(
        "storage-in-memory",
        args=lambda d: ["--storage", "sqlite://"],
        needles=("storage", "in-memory", "cannot share"),
    ),
    Case(
        "output-dir-is-a-file",
        args=lambda d: ["--output-dir", str(d / "base.yaml")],
        needles=("output_dir", "base.yaml", "is a file"),
    ),
    Case(
        "output-dir-unwritable",
        args=lambda d: ["--output-dir", UNWRITABLE],
        needles=("output_dir", "not writable"),
    ),
    Case(
        "scheduler-refused",
        args=lambda d: ["--scheduler", "tcp://127.0.0.1:1"],
        needles=("--scheduler", "cannot reach", "refused", "tcp://host:port"),
    ),
    Case(
        "scheduler-garbage",
        args=lambda d: ["--scheduler", "garbage!!"],
        needles=("--scheduler", "garbage!!", "port"),
    ),
    Case(
        "scheduler-http",
        args=lambda d: ["--scheduler", "http://127.0.0.1:1"],
        needles=("--scheduler", "scheme", "http"),
    ),
    Case(
        "study-name-reused-with-another-space",
        {"study": "search"},
        setup=_study_with_another_space,
        needles=("'search'", "another search space", "training.batch_size", "learning_rate"),
    ),
    Case(
        "anomaly-config",
        {"config": "anomaly.yaml"},
        needles=("task", "anomaly_detection", "classification"),
    ),
    Case(
        "workers-a-million",
        args=lambda d: ["--workers", "1000000"],
        needles=("--workers", "1<=x<=256"),
    ),
    Case("tune-file-workers-a-million", {"workers": 10**6}, needles=("workers", "1 to 256")),
    Case("tune-file-trials-0", {"trials": 0}, needles=("trials", "1 to 100,000")),
    # --- scan ------------------------------------------------------------------------------------
    Case(
        "scan-bits-10**11",
        argv=_scan("base.yaml", "--bits", "3-100000000000"),
        needles=("--bits", "3-100000000000", "2 to 16"),
    ),
    Case(
        "scan-bits-empty-range",
        argv=_scan("base.yaml", "--bits", "10-3"),
        needles=("--bits", "empty"),
    ),
    Case(
        "scan-bits-not-numbers",
        argv=_scan("base.yaml", "--bits", "a,b"),
        needles=("--bits", "'4,6,8'"),
    ),
    Case(
        "scan-anomaly-config",
        argv=_scan("anomaly.yaml"),
        needles=("task", "anomaly_detection", "classification"),
    ),
    Case(
        "scan-generation-config",
        argv=_scan("generation.yaml"),
        needles=("task", "generation", "classification"),
    ),
    Case(
        "scan-tolerance-nan",
        argv=_scan("base.yaml", "--tolerance", "nan"),
        needles=("--tolerance", "finite"),
    ),
    Case(
        "scan-tolerance-inf",
        argv=_scan("base.yaml", "--tolerance", "inf"),
        needles=("--tolerance",),
    ),
    Case(
        "run-max-jets-negative",
        argv=lambda d: ["run", str(d / "base.yaml"), "--max-jets", "-5"],
        needles=("--max-jets", "x>=1"),
    ),
    # --- data without a class ----------------------------------------------------------------
    Case(
        "run-anomaly-without-background-jets",
        argv=lambda d: ["run", str(d / "no_background.yaml"), "--output-dir", str(d / "runs")],
        needles=("class 'q'", "no jets in the training and test split", "q 0"),
    ),
]


def _folder(tmp: Path, make_jets: Callable, tune: dict[str, Any] | None) -> Path:
    import dataclasses

    import numpy as np

    sample = make_jets(200, seed=9)
    save_sample(sample, tmp / "jets.npz")
    base = {"data": {"path": "jets.npz"}, "model": {"hidden_units": [4]}, "training": {"epochs": 1}}
    (tmp / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp / "anomaly.yaml").write_text(
        yaml.safe_dump(
            {**base, "task": {"name": "anomaly_detection"}, "model": {"architecture": "ae"}}
        )
    )
    (tmp / "generation.yaml").write_text(
        yaml.safe_dump({**base, "task": {"name": "generation"}, "model": {"architecture": "gan"}})
    )
    # every q jet relabelled g: the anomaly task's background (q, g) keeps its g jets
    no_q = dataclasses.replace(sample, labels=np.where(sample.labels == 0, 1, sample.labels))
    save_sample(no_q, tmp / "no_q.npz")
    (tmp / "no_background.yaml").write_text(
        yaml.safe_dump(
            {
                **base,
                "data": {"path": "no_q.npz"},
                "task": {"name": "anomaly_detection"},
                "model": {"architecture": "ae"},
            }
        )
    )
    spec = {
        "config": "base.yaml",
        "objective": "float_accuracy",
        "strategy": "random",
        "trials": 2,
        "workers": 1,
        "output_dir": str(tmp / "runs"),
        "space": {"training.learning_rate": {"low": 1.0e-3, "high": 1.0e-2}},
        **(tune or {}),
    }
    (tmp / "search.yaml").write_text(yaml.safe_dump(spec))
    return tmp / "search.yaml"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path with its size and modification time (folders: only that they exist; SQLite
    makes and removes its journal beside a database it only reads)."""
    return {
        str(p.relative_to(folder)): (0, 0)
        if p.is_dir()
        else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_the_cases_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_tune_and_scan_input_is_one_line_before_any_work(
    case: Case, make_jets: Callable, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tune_file = _folder(tmp_path, make_jets, case.tune)
    case.setup(tmp_path)
    argv = case.argv(tmp_path) if case.argv else ["tune", str(tune_file), *case.args(tmp_path)]
    before = _snapshot(tmp_path)

    code = main(["-q", *argv])

    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    for needle in case.needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    assert code == case.code, err
    assert _snapshot(tmp_path) == before, "the command left or changed files"


@pytest.mark.slow
def test_a_search_whose_every_trial_fails_exits_1(
    make_jets: Callable, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trials that fail on the workers (here: the data file is gone) are one line each, not
    optuna's traceback, and the search exits 1 naming the first reason."""
    tune_file = _folder(tmp_path, make_jets, {"trials": 2})
    (tmp_path / "jets.npz").unlink()

    code = main(["-q", "tune", str(tune_file)])

    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert "trials: 0 complete, 0 pruned, 2 failed" in out, out + err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "every trial of the study 'search' failed (2)" in errors[0], err
    assert "jets.npz" in errors[0]
    assert code == 1
    assert (tmp_path / "runs" / "search" / "results.csv").is_file()
