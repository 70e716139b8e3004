"""`hepfpga tune`: tiny searches on dask workers, a resumed study, grid, pruning, bad files."""

from __future__ import annotations

import csv

import pytest
import yaml

from hepfpga.cli import main
from hepfpga.errors import ConfigError
from hepfpga.train.io import save_sample

optuna = pytest.importorskip("optuna")
pytest.importorskip("distributed")

from hepfpga.pipeline.tune import load_tune_config  # noqa: E402


def _files(tmp_path, make_jets, **tune) -> object:
    data = tmp_path / "jets.npz"
    save_sample(make_jets(500, seed=9), data)
    base = {
        "data": {"path": str(data)},
        "model": {"hidden_units": [8]},
        "training": {"epochs": 3, "learning_rate": 0.01},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {
        "config": "base.yaml",
        "objective": "float_accuracy",
        "strategy": "random",
        "trials": 3,
        "workers": 2,
        "output_dir": str(tmp_path / "runs"),
        "space": {
            "training.learning_rate": {"low": 1.0e-3, "high": 3.0e-2, "log": True},
            "model.hidden_units": {"choices": [[8], [16, 8]]},
        },
        **tune,
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def scheduler():
    """One warm 2-process cluster for the resumption test (`--scheduler ADDRESS`)."""
    import logging

    import distributed

    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.WARNING,
    ) as cluster:
        yield cluster.scheduler_address


def _study(tmp_path, name: str = "search"):
    return optuna.load_study(
        study_name=name, storage=f"sqlite:///{tmp_path / 'runs' / name / 'study.db'}"
    )


@pytest.mark.slow
def test_search_runs_on_workers_and_resumes_without_repeating(
    make_jets, tmp_path, scheduler
) -> None:
    path = _files(tmp_path, make_jets)
    assert main(["-q", "tune", str(path), "--scheduler", scheduler]) == 0
    study = _study(tmp_path)
    first = {t.number: (t.params, t.datetime_complete) for t in study.trials}
    assert len(first) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    default = [t for t in study.trials if t.user_attrs.get("default")]
    assert len(default) == 1 and default[0].params == {
        "training.learning_rate": 0.01,
        "model.hidden_units": "[8]",
    }
    folder = tmp_path / "runs" / "search"
    rows = list(csv.DictReader((folder / "results.csv").open()))
    assert len(rows) == 3 and {r["state"] for r in rows} == {"complete"}
    best = yaml.safe_load((folder / "best_config.yaml").read_text())
    top = max(study.trials, key=lambda t: t.value)
    assert best["training"]["learning_rate"] == top.params["training.learning_rate"]
    assert (folder / "objective.png").stat().st_size > 1000

    # what kill -9 leaves behind: a trial stuck RUNNING in the database
    stuck = study.ask()
    assert main(["-q", "tune", str(path), "--trials", "4", "--scheduler", scheduler]) == 0
    study = _study(tmp_path)
    states = {t.number: t.state.name for t in study.trials}
    assert states[stuck.number] == "FAIL"
    assert study.trials[stuck.number].user_attrs["interrupted"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    for number, (params, done_at) in first.items():  # never rerun
        assert (study.trials[number].params, study.trials[number].datetime_complete) == (
            params,
            done_at,
        )
    assert main(["-q", "tune", str(path), "--trials", "4", "--scheduler", scheduler]) == 0
    assert len(_study(tmp_path).trials) == len(study.trials)


@pytest.mark.slow
def test_grid_visits_every_point_once(make_jets, tmp_path, scheduler) -> None:
    path = _files(
        tmp_path,
        make_jets,
        strategy="grid",
        trials=50,
        workers=1,
        space={
            "model.hidden_units": {"choices": [[8], [4]]},
            "training.batch_size": {"low": 32, "high": 64, "integer": True, "step": 32},
        },
    )
    assert main(["-q", "tune", str(path), "--scheduler", scheduler]) == 0
    study = _study(tmp_path)
    points = sorted(
        (t.params["model.hidden_units"], t.params["training.batch_size"]) for t in study.trials
    )
    assert points == [("[4]", 32), ("[4]", 64), ("[8]", 32), ("[8]", 64)]


def test_pruning_stops_a_hopeless_trial_after_its_first_epoch(make_jets) -> None:
    from hepfpga.pipeline.tune import _pruning_callback
    from hepfpga.train.architectures.mlp import MLPConfig
    from hepfpga.train.config import TrainingConfig
    from hepfpga.train.fit import fit_classifier
    from hepfpga.train.models import build_model

    sample = make_jets(200, seed=1)
    x, y = sample.features, sample.labels
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0)
    )
    trial = study.ask()
    model = build_model(16, 5, MLPConfig(hidden_units=(4,)), seed=0)
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        fit_classifier(
            model, x[:150], y[:150], x[150:], y[150:], TrainingConfig(epochs=5),
            callbacks=[_pruning_callback(trial, 0)],
        )  # fmt: skip
    assert list(study.trials[0].intermediate_values) == [0]
    assert 0 <= study.trials[0].intermediate_values[0] <= 1


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"space": {"training.learnin_rate": {"low": 0.1, "high": 1}}}, "space.training.learnin_rate", "did you mean 'training.learning_rate'"),  # noqa: E501
        ({"strategy": "bayes"}, "strategy", "did you mean 'bayesian'"),
        ({"space": {"training.learning_rate": {"low": 1e-3, "high": 1e-2}}, "strategy": "grid"}, "space.training.learning_rate", "step"),  # noqa: E501
        ({"space": {"training.learning_rate": {"low": 0.1, "high": 0.01}}}, "space.training.learning_rate.high", "low < high"),  # noqa: E501
        ({"overrides": {"training.epoch": 3}}, "overrides.training.epoch", "did you mean 'training.epochs'"),  # noqa: E501
        ({"overrides": {"training.epochs": 0}}, "training.epochs", "positive"),
    ],
)  # fmt: skip
def test_bad_tune_files_name_the_path(make_jets, tmp_path, change, path, fragment) -> None:
    tune_path = _files(tmp_path, make_jets, **change)
    with pytest.raises(ConfigError) as info:
        load_tune_config(tune_path)
    assert info.value.path == path and fragment in info.value.message, str(info.value)


@pytest.mark.slow
def test_hardware_cost_objective_pays_for_the_estimated_luts(make_jets, tmp_path) -> None:
    """``qkeras_accuracy_lut``: QKeras validation accuracy minus lut_weight per 10k LUTs of
    the trial's RTL (da4ml estimate), both kept on the trial."""
    pytest.importorskip("da4ml")
    path = _files(
        tmp_path,
        make_jets,
        objective="qkeras_accuracy_lut",
        lut_weight=0.5,
        trials=2,
        workers=1,
        space={"quantization.weight_bits": {"choices": [3, 6]}},
        overrides={"quantization.epochs": 2},
        strategy="grid",
    )
    assert main(["-q", "tune", str(path)]) == 0
    trials = [t for t in _study(tmp_path).trials if t.state.name == "COMPLETE"]
    assert len(trials) == 2
    for t in trials:
        luts = t.user_attrs["estimated_luts"]
        assert luts > 0
        assert t.value == pytest.approx(t.user_attrs["qkeras_accuracy"] - 0.5 * luts / 10_000)
    by_bits = {
        int(t.params["quantization.weight_bits"]): t.user_attrs["estimated_luts"] for t in trials
    }
    assert by_bits[3] < by_bits[6]  # narrower weights, fewer adders
