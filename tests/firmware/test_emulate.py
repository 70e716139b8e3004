"""Bulk emulation: the fixed-point engine equals the C simulation bit for bit, or falls back.

Every case converts and compiles one project (g++, seconds), shared through module-scoped
fixtures; comparisons are ``np.array_equal`` against :mod:`hepfpga.firmware.csim`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConversionError, DataError
from hepfpga.firmware import (
    FirmwareOptions,
    FirmwareProject,
    compile_project,
    predict,
    write_project,
)
from hepfpga.firmware.csim import predict_with_logits
from hepfpga.firmware.emulate import (
    ENGINE_CSIM,
    ENGINE_FIXED,
    EmulationFallbackWarning,
    Emulator,
    emulate_file,
)

pytestmark = pytest.mark.slow

N_EVENTS = 3000
SOFTMAX_TYPES = {
    "Implementation": "stable",
    "TableSize": 1024,
    "exp_table_t": "ap_ufixed<18,1,AP_RND,AP_SAT>",
    "inv_table_t": "ap_ufixed<18,1,AP_RND,AP_SAT>",
    "inv_inp_t": "ap_ufixed<10,3,AP_RND,AP_SAT>",
    "inp_norm_t": "ap_ufixed<10,3,AP_RND,AP_SAT>",
    "Precision": {
        "result": "ap_ufixed<16,0,AP_RND,AP_SAT>",
        "accum": "ap_ufixed<20,3,AP_RND,AP_SAT>",
    },
}


def convert_directly(
    model: Any, out: Path, input_type: str, layer_precision: dict[str, dict[str, str]] | None = None
) -> FirmwareProject:
    """hls4ml conversion with a hand-written config (layers hepfpga's config does not cover)."""
    import hls4ml

    from hepfpga.firmware.hls_config import hls4ml_ready_model

    model = hls4ml_ready_model(model)  # an input named "input" is reserved by hls4ml
    config = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis")
    layers = config["LayerName"]
    layers[model.layers[0].name]["Precision"]["result"] = input_type
    for layer in model.layers:
        entry = layers.get(layer.name)
        if entry is None:
            continue
        kind = type(layer).__name__
        if kind.startswith("QConv") or kind == "QDense":
            entry["Precision"]["accum"] = "auto"
            entry["Precision"]["result"] = "auto"
        if kind == "Activation" and layer.get_config()["activation"] == "softmax":
            entry.update({k: v for k, v in SOFTMAX_TYPES.items() if k != "Precision"})
            entry["Precision"] = dict(SOFTMAX_TYPES["Precision"])
        for key, value in (layer_precision or {}).get(layer.name, {}).items():
            entry["Precision"][key] = value
    last = model.layers[-1]
    logits = last.inbound_nodes[0].inbound_layers.name if last.name == "softmax" else ""
    if logits:
        layers[logits]["Trace"] = True
    hls_model = hls4ml.converters.convert_from_keras_model(
        model,
        hls_config=config,
        output_dir=str(out),
        backend="Vitis",
        io_type="io_parallel",
        part="xcvu13p-flga2577-2-e",
    )
    hls_model.config.trace_output = bool(logits)  # as write_project does
    hls_model.write()
    project = FirmwareProject(
        path=out,
        hls_model=hls_model,
        hls_config=config,
        options=FirmwareOptions(),
        logits_layer=logits,
        keras_model=model,
    )
    return compile_project(project)


def build_cnn(dims: int, seed: int = 0) -> Any:
    """A small QKeras CNN: Conv, quantized relu, max pooling, flatten, dense, softmax."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QConv2D, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    q = quantized_bits(6, 0, alpha=1)
    init = keras.initializers.RandomNormal(stddev=0.3, seed=seed)
    if dims == 1:
        x = keras.Input((24, 3), name="input_layer")
        conv, pool, kernel = QConv1D, keras.layers.MaxPooling1D, 3
    else:
        x = keras.Input((8, 8, 2), name="input_layer")
        conv, pool, kernel = QConv2D, keras.layers.MaxPooling2D, (3, 3)
    h = QActivation(quantized_bits(10, 3, alpha=1), name="input_quant")(x)
    h = conv(
        4,
        kernel,
        kernel_quantizer=q,
        bias_quantizer=q,
        bias_initializer=init,
        padding="same" if dims == 2 else "valid",
        name="conv",
    )(h)
    h = QActivation(quantized_relu(6), name="conv_relu")(h)
    h = pool(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = QDense(5, kernel_quantizer=q, bias_quantizer=q, bias_initializer=init, name="logits")(h)
    out = keras.layers.Activation("softmax", name="softmax")(h)
    return keras.Model(x, out, name=f"cnn{dims}d")


def cnn_inputs(shape: tuple[int, ...], n: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(n, int(np.prod(shape))))
    x[::7] *= 8  # saturate the ap_fixed<10,4> input
    return x.astype(np.float32)


def assert_same_as_csim(emulator: Emulator, project: FirmwareProject, x: np.ndarray) -> None:
    ref_out, ref_logits = predict_with_logits(project, x)
    out, logits = emulator.predict_with_logits(x)
    assert np.array_equal(out, ref_out)
    assert np.array_equal(logits, ref_logits)


# -- the jet MLP -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory, small_tagger: Any) -> FirmwareProject:
    out = tmp_path_factory.mktemp("mlp") / "firmware"
    return compile_project(write_project(small_tagger, FirmwareOptions(), out))


@pytest.fixture(scope="module")
def mlp_emulator(mlp: FirmwareProject, inputs_factory: Any) -> Emulator:
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulationFallbackWarning)
        return Emulator.from_project(mlp, inputs_factory(2000, seed=5))


def test_mlp_engine_is_proven_and_identical(
    mlp: FirmwareProject, mlp_emulator: Emulator, inputs_factory: Any
) -> None:
    assert mlp_emulator.engine == ENGINE_FIXED and mlp_emulator.fallback_reason is None
    check = mlp_emulator.check
    assert check is not None and check.passed and check.n_events == 3000
    assert check.outputs_compared == ("outputs", "logits")
    x = inputs_factory(N_EVENTS, seed=11)  # saturating events and rounding ties included
    assert_same_as_csim(mlp_emulator, mlp, x)
    assert np.array_equal(mlp_emulator.predict(x[:7]), predict(mlp, x[:7]))  # partial batch


@pytest.mark.parametrize(
    "widths",
    [
        {"weight_bits": 4, "activation_bits": 4},
        {
            "weight_bits": 8,
            "weight_integer": 1,
            "activation_bits": 4,
            "input_bits": 12,
            "input_integer": 4,
        },
    ],
    ids=["w4a4", "w8i1a4-in12i4"],
)
def test_mlp_other_widths(
    widths: dict[str, int], tmp_path: Path, tagger_factory: Any, inputs_factory: Any
) -> None:
    model = tagger_factory(**widths, seed=3)
    project = compile_project(write_project(model, FirmwareOptions(), tmp_path / "fw"))
    inputs = {k: v for k, v in widths.items() if k.startswith("input")}
    emulator = Emulator.from_project(project, inputs_factory(1000, seed=1, **inputs))
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert_same_as_csim(emulator, project, inputs_factory(N_EVENTS, seed=4, **inputs))


@pytest.mark.parametrize("mode", ["tuned", "latency", "argmax", "logits"])
def test_softmax_modes(mode: str, tmp_path: Path, small_tagger: Any, inputs_factory: Any) -> None:
    """Each firmware softmax choice is reproduced table entry for table entry."""
    options = FirmwareOptions(softmax=mode)
    project = compile_project(write_project(small_tagger, options, tmp_path / "fw"))
    emulator = Emulator.from_project(project, inputs_factory(1000, seed=1))
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    x = inputs_factory(N_EVENTS, seed=4)
    assert np.array_equal(emulator.predict(x), predict(project, x))


def test_narrow_wrapping_accumulator_is_reproduced(
    tmp_path: Path, small_tagger: Any, inputs_factory: Any
) -> None:
    """Products rounded into a narrow, wrapping accum_t (hls4ml's TRN/WRAP default)."""
    project = convert_directly(
        small_tagger,
        tmp_path / "fw",
        "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
        {"dense_1": {"accum": "ap_fixed<14,6>", "result": "ap_fixed<12,6>"}},
    )
    emulator = Emulator.from_project(project, inputs_factory(1000, seed=1))
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert_same_as_csim(emulator, project, inputs_factory(N_EVENTS, seed=4))


def test_emulator_travels_to_workers_without_its_project(
    mlp_emulator: Emulator, inputs_factory: Any
) -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(mlp_emulator))
    assert copy._project is None and copy.engine == ENGINE_FIXED
    x = inputs_factory(500, seed=13)
    assert np.array_equal(copy.predict(x), mlp_emulator.predict(x))


def test_inputs_with_nan_are_refused_with_count_and_place(mlp_emulator: Emulator) -> None:
    x = np.zeros((10, 16), dtype=np.float32)
    x[3, 2] = np.nan
    x[7, 0] = np.inf
    with pytest.raises(
        DataError, match=r"2 NaN or infinite values .* in 2 events.*event 3 input 2"
    ):
        mlp_emulator.predict(x)
    with pytest.raises(DataError, match=r"shape \(n_events, 16\)"):
        mlp_emulator.predict(np.zeros((4, 15)))


# -- CNNs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[1, 2], ids=["conv1d-pool", "conv2d-same-pool"])
def cnn_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, FirmwareProject]:
    model = build_cnn(request.param)
    out = tmp_path_factory.mktemp(f"cnn{request.param}") / "fw"
    return model, convert_directly(model, out, "ap_fixed<10,4,AP_RND_CONV,AP_SAT>")


@pytest.mark.parametrize("form", ["dense-matrix", "im2col"])
def test_cnn_engine_is_identical(
    cnn_project: tuple[Any, FirmwareProject], form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if form == "im2col":  # small convolutions run as one dense matrix unless told otherwise
        from hepfpga.firmware.emulate_engine import steps

        monkeypatch.setattr(steps, "TOEPLITZ_MAX_ENTRIES", 0)
    model, project = cnn_project
    shape = tuple(model.inputs[0].shape[1:])
    emulator = Emulator.from_project(project, cnn_inputs(shape, 500), stress_events=500)
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert_same_as_csim(emulator, project, cnn_inputs(shape, 1500, seed=9))
    # images may also come in their own shape, channels last
    images = cnn_inputs(shape, 20, seed=3).reshape(-1, *shape)
    assert np.array_equal(emulator.predict(images), predict(project, images))


def test_batch_norm_is_reproduced(tmp_path: Path, inputs_factory: Any) -> None:
    """A float BatchNormalization after a QDense: hepfpga derives its scale/bias types."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(0)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((16,), name="features")
    h = QActivation(quantized_bits(16, 5, alpha=1), name="input_quant")(x)
    h = QDense(32, kernel_quantizer=q, bias_quantizer=q, name="dense_1")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = QActivation(quantized_relu(6), name="relu_1")(h)
    h = QDense(5, kernel_quantizer=q, bias_quantizer=q, name="logits")(h)
    model = keras.Model(x, keras.layers.Activation("softmax", name="softmax")(h))
    rng = np.random.default_rng(0)
    model.get_layer("bn").set_weights(
        [
            rng.uniform(0.5, 2, 32),
            rng.normal(0, 0.3, 32),
            rng.normal(0, 0.5, 32),
            rng.uniform(0.5, 2, 32),
        ]
    )
    project = compile_project(write_project(model, FirmwareOptions(), tmp_path / "fw"))
    assert "BatchNormalization" in [layer.class_name for layer in project.hls_model.get_layers()]
    emulator = Emulator.from_project(project, inputs_factory(1000, seed=1))
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    assert_same_as_csim(emulator, project, inputs_factory(N_EVENTS, seed=4))


# -- fallback --------------------------------------------------------------------------------
def test_io_stream_is_planned(tmp_path: Path, small_tagger: Any) -> None:
    # io_stream graphs are reproduced too (tests/firmware/test_emulate_stream.py proves them)
    from hepfpga.firmware.emulate_engine.plan import build_plan

    project = write_project(small_tagger, FirmwareOptions(io_type="io_stream"), tmp_path / "fw")
    plan = build_plan(project.hls_model)
    hls_layers = [layer.name for layer in project.hls_model.get_layers()][1:]
    assert [step.name for step in plan.steps] == hls_layers


def test_unreproduced_layer_falls_back_loudly(tmp_path: Path) -> None:
    from qkeras import QActivation, QDense, binary, quantized_bits
    from tensorflow import keras

    x = keras.Input((6,), name="input_layer")
    h = QActivation(quantized_bits(10, 3, alpha=1), name="input_quant")(x)
    out = QDense(
        4,
        kernel_quantizer=binary(alpha=1),  # hls4ml's binary product is not in the engine
        bias_quantizer=quantized_bits(6, 0, alpha=1),
        name="dense",
    )(h)
    model = keras.Model(x, out)
    project = convert_directly(model, tmp_path / "fw", "ap_fixed<10,4,AP_RND_CONV,AP_SAT>")
    with pytest.warns(EmulationFallbackWarning, match="binary"):
        emulator = Emulator.from_project(project, np.ones((5, 6)))
    assert emulator.engine == ENGINE_CSIM
    assert "binary" in (emulator.fallback_reason or "")
    events = cnn_inputs((6,), 50)
    assert np.array_equal(emulator.predict(events), predict(project, events))
    result = emulate_file(emulator, _npz(tmp_path, events), tmp_path / "o.npz", chunk_size=20)
    assert result.engine == ENGINE_CSIM and "binary" in (result.fallback_reason or "")
    with pytest.raises(ConversionError, match="cannot be sent to other processes"):
        __import__("pickle").dumps(emulator)
    assert result.to_dict()["fallback_reason"] == result.fallback_reason
    assert np.array_equal(np.load(tmp_path / "o.npz")["outputs"], predict(project, events))


def test_saturating_accumulator_falls_back(
    tmp_path: Path, small_tagger: Any, inputs_factory: Any
) -> None:
    """A saturating accum_t that may overflow mid-sum depends on the summation order."""
    project = convert_directly(
        small_tagger,
        tmp_path / "fw",
        "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
        {"dense_1": {"accum": "ap_fixed<18,3,AP_RND,AP_SAT>"}},
    )
    with pytest.warns(EmulationFallbackWarning, match="may saturate part-way"):
        emulator = Emulator.from_project(project, None, stress_events=10)
    x = inputs_factory(30, seed=2)
    assert np.array_equal(emulator.predict(x), predict(project, x))


def test_a_failed_proof_falls_back(
    mlp: FirmwareProject, inputs_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any difference in the check sample means the engine is not trusted."""
    from hepfpga.firmware import emulate as emulate_module
    from hepfpga.firmware.emulate_engine.plan import build_plan

    def off_by_one_lsb(hls_model: Any) -> Any:
        plan = build_plan(hls_model)
        logits = next(s for s in plan.steps if s.name == "logits")
        logits.b = logits.b.copy()
        logits.b[0] += 1
        return plan

    monkeypatch.setattr(emulate_module, "build_plan", off_by_one_lsb)
    with pytest.warns(EmulationFallbackWarning, match="differs from the C simulation"):
        emulator = Emulator.from_project(mlp, inputs_factory(200), stress_events=50)
    assert emulator.engine == ENGINE_CSIM
    assert emulator.check is not None and not emulator.check.passed
    assert emulator.check.fraction_identical < 1.0


# -- files and dask --------------------------------------------------------------------------
def _npz(folder: Path, x: np.ndarray) -> Path:
    path = folder / "events.npz"
    np.savez(path, x=x)
    return path


def test_bad_values_in_a_file_are_located(
    mlp_emulator: Emulator, inputs_factory: Any, tmp_path: Path
) -> None:
    x = inputs_factory(1000, seed=6)
    x[750, 4] = np.nan
    with pytest.raises(
        DataError, match=r"events.npz 'x': inputs contain 1 NaN .*event 750 input 4"
    ):
        emulate_file(
            mlp_emulator,
            _npz(tmp_path, x),
            tmp_path / "o.npz",
            chunk_size=300,
            n_workers=1,
            processes=False,
        )
    with pytest.raises(DataError, match=r"has 15 inputs per event; the model takes 16"):
        emulate_file(mlp_emulator, _npz(tmp_path, x[:, :15]), tmp_path / "o.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.npz"]


def test_dask_chunks_equal_in_memory(
    mlp: FirmwareProject, mlp_emulator: Emulator, inputs_factory: Any, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x = inputs_factory(2500, seed=8)
    data = tmp_path / "events.parquet"
    pq.write_table(pa.table({f"f{i}": x[:, i] for i in range(16)}), data, row_group_size=700)
    result = emulate_file(
        mlp_emulator,
        data,
        tmp_path / "out.h5",
        logits=True,
        chunk_size=600,
        n_workers=2,
        processes=False,
    )
    assert result.n_chunks == 5 and result.engine == ENGINE_FIXED
    import h5py

    with h5py.File(tmp_path / "out.h5") as handle:
        out, logits = handle["outputs"][:], handle["logits"][:]
    ref_out, ref_logits = mlp_emulator.predict_with_logits(x)
    assert np.array_equal(out, ref_out) and np.array_equal(logits, ref_logits)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_emulate_file_proves_on_the_data(
    mlp: FirmwareProject, inputs_factory: Any, tmp_path: Path
) -> None:
    x = inputs_factory(1200, seed=6)
    result = emulate_file(
        mlp,
        _npz(tmp_path, x),
        tmp_path / "out.npz",
        chunk_size=500,
        n_workers=1,
        processes=False,
        check_events=800,
    )
    assert result.check is not None and result.check.n_events == 800 + 1000
    assert np.array_equal(np.load(tmp_path / "out.npz")["outputs"], predict(mlp, x))


def test_cli_end_to_end(
    mlp: FirmwareProject,
    small_tagger: Any,
    inputs_factory: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("distributed")
    from hepfpga.cli import main
    from hepfpga.firmware import project as project_module
    from hepfpga.quantize.model_io import save_keras_model

    # a progress line every 0.2 s while g++ builds (15 s by default)
    monkeypatch.setattr(project_module, "BUILD_PROGRESS_SECONDS", 0.2)
    save_keras_model(small_tagger, tmp_path / "model.h5")
    x = inputs_factory(700, seed=12)
    np.savez(tmp_path / "jets.npz", features=x, labels=np.zeros(len(x)))
    report = tmp_path / "report.json"
    code = main(
        [
            "emulate",
            str(tmp_path / "model.h5"),
            str(tmp_path / "jets.npz"),
            "--key",
            "features",
            "--out",
            str(tmp_path / "scores.parquet"),
            "--logits",
            "--workers",
            "1",
            "--chunk-size",
            "300",
            "--report",
            str(report),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "fixed-point engine" in out.out and "100.00%" in out.out
    # the g++ build shows its progress on stderr: what it compiles, the time, the end
    assert "g++ -O1: compiling the model and its ctypes bridge" in out.err
    assert "... g++ still building (" in out.err and "g++ finished in " in out.err
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "scores.parquet")
    scores = np.column_stack([table.column(f"outputs_{i}").to_numpy() for i in range(5)])
    assert np.array_equal(scores, predict(mlp, x))  # mlp: the same model, compiled apart
    assert json.loads(report.read_text())["engine"] == ENGINE_FIXED


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hepfpga.cli import main

    (tmp_path / "data.csv").write_text("1,2\n")
    code = main(
        [
            "emulate",
            str(tmp_path / "m.h5"),
            str(tmp_path / "data.csv"),
            "--out",
            str(tmp_path / "o.npz"),
        ]
    )
    assert code == 2
    assert "unknown input format '.csv'" in capsys.readouterr().err
