"""``data.loading`` in a run: a streamed run on a tiny shard folder cuts the same split, fits
the same scaler (to float64 rounding) and builds the same test inputs as the in-memory run,
trains its float and QKeras models on ``tf.data`` batches and reports that it streamed and its
peak memory; ``auto`` streams above ``data.stream_above``; bad values are refused with one
line naming ``data.loading`` / ``data.stream_above`` and what is accepted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.cli import main
from hepfpga.errors import DataError
from hepfpga.pipeline.analysis import analysis_stage, bdt_stage
from hepfpga.pipeline.config import parse_config
from hepfpga.pipeline.run import Run
from hepfpga.pipeline.run_report import RunReport
from hepfpga.pipeline.stages import (
    DataResult,
    FloatModelResult,
    QuantizedModelResult,
    data_stage,
    float_training_stage,
    qat_stage,
    split_run_sample,
)
from hepfpga.train.dataset import FeatureScaler, stratified_subsample
from hepfpga.train.io import save_sample
from hepfpga.train.stream import ShardedSample, loading_plan

#: test jets kept for the evaluation and the C simulation (verification.max_events)
TEST_CAP = 60
#: training jets a streamed run holds for the BDT and the overtraining check (of 300)
HELD = 40


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, make_jets_module) -> Path:
    folder = tmp_path_factory.mktemp("run-shards")
    for i, n in enumerate((170, 120, 210)):
        sample = make_jets_module(n, seed=20 + i, n_constituents=6)
        sample.features[:, 5:] *= 1000.0  # a feature scale where float32 rounding shows
        save_sample(sample, folder / f"shard-{i}.h5")
    return folder


def _config(
    shards: Path,
    out: Path,
    loading: str,
    max_events: int | None = TEST_CAP,
    sections: dict[str, Any] | None = None,
    **data: Any,
) -> Any:
    return parse_config(
        {
            **(sections or {}),
            "name": f"stream-{loading}",
            "output_dir": str(out),
            "seed": 5,
            "data": {"path": str(shards), "loading": loading, **data},
            "model": {"hidden_units": [8]},
            "training": {"epochs": 2, "batch_size": 32},
            "quantization": {"epochs": 1, "batch_size": 64},
            "verification": {"max_events": max_events, "testbench_events": 20},
        }
    )


def _data(
    shards: Path,
    tmp_path: Path,
    loading: str,
    max_events: int | None = TEST_CAP,
    sections: dict[str, Any] | None = None,
    **data: Any,
) -> tuple[Run, DataResult]:
    run_dir = tmp_path / f"{loading}-{max_events}"
    run_dir.mkdir()
    config = _config(shards, tmp_path, loading, max_events, sections, **data)
    run = Run(config=config, run_dir=run_dir)
    run.results["data"] = data_stage(run)
    return run, run.get(DataResult)


@pytest.mark.parametrize("max_jets", [None, 400])
def test_streamed_run_splits_and_scales_as_in_memory(shards: Path, tmp_path: Path, max_jets):
    extra = {} if max_jets is None else {"max_jets": max_jets}
    memory_run, memory = _data(shards, tmp_path, "memory", **extra)
    stream_run, stream = _data(shards, tmp_path, "stream", **extra)
    assert memory.streamed is None and stream.streamed is not None
    # the same jets in each part (labels in jet order), the same capped test jets
    np.testing.assert_array_equal(stream.y_train, memory.y_train)
    np.testing.assert_array_equal(stream.y_val, memory.y_val)
    np.testing.assert_array_equal(stream.y_test, memory.y_test)
    # stratified_subsample rounds per class: up to one jet more per class than the cap
    assert len(stream.y_test) == len(memory.y_test) <= TEST_CAP + 5
    test = stratified_subsample(split_run_sample(memory_run, memory.sample).test, TEST_CAP, 5)
    np.testing.assert_array_equal(stream.sample.labels, test.labels)
    np.testing.assert_array_equal(stream.sample.features, test.features)
    # the scaler fitted on a streamed pass: float64 rounding apart; saved the same way
    scalers = [FeatureScaler.load(r.run_dir / "scaler.json") for r in (memory_run, stream_run)]
    np.testing.assert_allclose(scalers[1].offset, scalers[0].offset, rtol=1e-12)
    np.testing.assert_allclose(scalers[1].scale, scalers[0].scale, rtol=1e-12)
    np.testing.assert_allclose(stream.x_test, memory.x_test, rtol=1e-6, atol=1e-6)
    assert stream.inputs.input_shape == memory.inputs.input_shape == (16,)
    # only what the features representation reads: no constituents of the test jets held
    assert stream.sample.constituents.shape == (len(stream.y_test), 0, 3)
    streamed, loaded = (
        stream.report_items(stream_run)["data"],
        memory.report_items(memory_run)["data"],
    )
    assert streamed["loading"]["streamed"] is True
    assert "test jets" in streamed["loading"]["held_in_memory"]
    assert loaded["loading"] == {"streamed": False, "reason": "data.loading: memory"}
    assert streamed["n_jets"] == loaded["n_jets"] == 500
    assert streamed["split"] == loaded["split"]
    # the streamed run holds its test jets only: the trigger rates' background is the whole
    # test part, which the run holds when verification.max_events did not cap it
    with pytest.raises(DataError, match=r"holds only \d+ of its test jets"):
        split_run_sample(stream_run, stream.sample)
    uncapped_run, uncapped = _data(shards, tmp_path, "stream", max_events=None, **extra)
    test = split_run_sample(memory_run, memory.sample).test
    again = split_run_sample(uncapped_run, uncapped.sample)
    assert len(again.train) == len(again.validation) == 0
    np.testing.assert_array_equal(again.test.features, test.features)
    np.testing.assert_array_equal(again.test.labels, test.labels)


def test_streamed_run_trains_float_and_qkeras_and_reports(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bdt = {"bdt": {"enabled": True, "n_estimators": 3, "max_depth": 2}}
    run, data = _data(shards, tmp_path, "stream", sections=bdt, held_train_jets=HELD)
    run.results["float_training"] = float_training_stage(run)
    run.results["qat"] = qat_stage(run)
    # from here on, count the jets the reader reads: the BDT and the overtraining check read
    # the stratified subsample of data.held_train_jets training jets, not the training part
    read: list[int] = []
    real_chunks = ShardedSample.chunks

    def counting_chunks(self: ShardedSample, index: np.ndarray, *args: Any, **kwargs: Any):
        read.append(len(index))
        yield from real_chunks(self, index, *args, **kwargs)

    monkeypatch.setattr(ShardedSample, "chunks", counting_chunks)
    bdt_result = bdt_stage(run)
    analysis = analysis_stage(run)
    n_held = len(data.streamed.subsample("train", HELD, 5)[1])
    assert HELD <= n_held <= HELD + 5 < len(data.y_train)  # rounding per class
    assert read == [n_held]  # read once, shared by both stages
    assert bdt_result is not None and bdt_result.section["train_jets"] == n_held
    with np.load(run.run_dir / "scores.npz") as scores:
        assert len(scores["train_labels"]) == len(scores["train_float"]) == n_held
        assert np.bincount(scores["train_labels"], minlength=5).min() >= HELD // 5 - 1
    assert set(analysis.overtraining) == {"float", "qkeras"}
    assert "train" not in data.streamed._held  # the whole training part was never held
    float_model = run.get(FloatModelResult)
    quantized = run.get(QuantizedModelResult)
    assert float_model.fit.epochs_run == 2 and quantized.fit.epochs_run == 1
    for result in (float_model, quantized):
        assert result.probs.shape == (len(data.y_test), 5)
        np.testing.assert_allclose(result.probs.sum(axis=1), 1.0, rtol=1e-5)
        assert np.isfinite(result.fit.history["val_loss"]).all()
    assert (run.run_dir / "float_model.h5").is_file()
    assert (run.run_dir / "qkeras_model.h5").is_file()
    resources = json.loads(json.dumps(data.report_items(run)["resources"]))
    assert resources["peak_rss_mib"] >= float_model.fit.peak_rss_mb - 0.1
    assert "ru_maxrss" in resources["peak_rss_source"] and "MiB" in resources["peak_rss_source"]
    # read back by the one reader of report.json
    content = json.loads(json.dumps(data.report_items(run), default=str))
    report = RunReport.from_content(content)
    assert report.streamed is True and report.peak_rss_mib == resources["peak_rss_mib"]
    content["data"]["loading"]["streamed"] = "yes"
    with pytest.raises(
        DataError, match=r"'data\.loading\.streamed' is a string; expected a boolean"
    ):
        RunReport.from_content(content)


def test_auto_streams_above_the_threshold(shards: Path, tmp_path: Path, make_jets) -> None:
    def plan(path: Path, **data: Any) -> Any:
        config = _config(path, tmp_path, "auto", **data)
        return loading_plan(config.data, path, builtin=False)

    above = plan(shards, stream_above=499)
    assert above.streamed and above.n_jets == 500 and "500 jets used" in above.reason
    assert not plan(shards).streamed  # the default threshold, 200,000 jets
    assert not plan(shards, stream_above=100, max_jets=100).streamed  # max_jets counts
    npz = tmp_path / "jets.npz"
    save_sample(make_jets(50, seed=1), npz)
    kept = plan(npz, stream_above=10)
    assert not kept.streamed and "jets.npz is not HDF5" in kept.reason
    with pytest.raises(DataError, match=r"data.loading: stream: .*jets.npz is not HDF5"):
        loading_plan(_config(npz, tmp_path, "stream").data, npz, builtin=False)


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"loading": "yes"}, ["data.loading", "'yes'", "'auto', 'memory', 'stream'"]),
        ({"loading": "streams"}, ["data.loading", "did you mean 'stream'"]),
        ({"stream_above": 0}, ["data.stream_above", "positive integer", "0"]),
        ({"stream_above": "many"}, ["data.stream_above", "many"]),
        ({"held_train_jets": 5}, ["data.held_train_jets", "at least 10", "5"]),
    ],
)
def test_bad_loading_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any], needles: list[str]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({"data": data}), encoding="utf-8")
    code = main(["config", "check", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_tasks_that_load_refuse_stream(shards: Path, tmp_path: Path) -> None:
    config = parse_config(
        {
            "output_dir": str(tmp_path),
            "data": {"path": str(shards), "loading": "stream"},
            "task": {"name": "anomaly_detection", "background": ["q", "g"]},
            "model": {"architecture": "ae"},
        }
    )
    from hepfpga.pipeline.tasks.anomaly import anomaly_data_stage

    with pytest.raises(DataError, match="the anomaly_detection task loads its jets into memory"):
        anomaly_data_stage(Run(config=config, run_dir=tmp_path))
