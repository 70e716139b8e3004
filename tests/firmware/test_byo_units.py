"""Bring-your-own-model pieces that need no compilation: derived types, diagnosis rules, cache
keys, event checks and data files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.errors import ConfigError, ConversionError, DataError
from hepfpga.firmware import FirmwareOptions, plan_conversion
from hepfpga.firmware.data import load_events, random_events
from hepfpga.firmware.diagnose import LayerComparison, diagnose
from hepfpga.firmware.verify import check_events
from hepfpga.quantize.fixed import FixedType


def test_conv2d_types_are_exact_sums(byo_models: Any) -> None:
    plan = plan_conversion(byo_models.conv2d_pooling())
    p = plan.precision
    assert p["image"].result.to_hls() == "ap_fixed<8,2,AP_RND_CONV,AP_SAT>"
    # 8-bit input, 6-bit weights, 3x3x1 = 9 products -> +4 bits, +1 for the bias
    assert p["conv_1"].result == FixedType(8 + 6 + 4 + 1, 2 + 1 + 4 + 1)
    assert p["max_pool"].result == p["relu_1"].result
    # the average of 2x2 values needs two more fractional bits, no more integer bits
    assert p["avg_pool"].result.fractional == p["relu_2"].result.fractional + 2
    assert p["avg_pool"].result.integer == p["relu_2"].result.integer
    for name, entry in plan.hls_config["LayerName"].items():
        if name in p and name != "image":
            assert entry["Trace"] is True, name
    assert plan.hls_config["SkipOptimizers"] == ["fuse_batch_normalization"]


def test_batchnorm_gets_float32_scale_and_exact_result(byo_models: Any) -> None:
    p = plan_conversion(byo_models.qdense_batchnorm()).precision
    bn = p["bn_1"]
    assert bn.scale is not None and bn.scale.fractional >= 23
    assert bn.result.fractional == p["dense_1"].result.fractional + bn.scale.fractional


def test_float_model_needs_events_and_gets_profiled_types(byo_models: Any) -> None:
    from hepfpga.firmware.hls_config import hls4ml_ready_model
    from hepfpga.firmware.precision import profile_ranges

    model = hls4ml_ready_model(byo_models.float_dense_batchnorm())
    with pytest.raises(ConfigError, match="needs events to profile"):
        plan_conversion(model)
    x = byo_models.events((16,), 200)
    ranges = profile_ranges(model, x)
    plan = plan_conversion(model, FirmwareOptions(float_width=14), ranges=ranges)
    dense = plan.precision["dense_1"]
    assert dense.result.width == 14 and dense.source == "profiled"
    lo, hi = ranges["dense_1"]
    assert dense.result.min_value < lo and hi < dense.result.max_value
    assert not plan.quantized


def test_unsupported_layers_list_what_is_supported() -> None:
    from tensorflow import keras

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.RepeatVector(2)(inputs))
    with pytest.raises(
        ConversionError, match=r"\(RepeatVector\) is not supported; supported: .*QConv2D"
    ):
        plan_conversion(model)


def test_catapult_refuses_softmax_tables(small_tagger: Any) -> None:
    with pytest.raises(ConfigError, match="accepted there: logits") as info:
        plan_conversion(small_tagger, FirmwareOptions(backend="Catapult"))
    assert info.value.path == "firmware.softmax"
    plan_conversion(small_tagger, FirmwareOptions(backend="Catapult", softmax="logits"))


def test_cache_key_follows_weights_options_and_nothing_else(small_tagger: Any) -> None:
    from tensorflow import keras

    from hepfpga.firmware.cache import cache_key

    options = FirmwareOptions()
    key = cache_key(plan_conversion(small_tagger, options), options)
    assert key == cache_key(plan_conversion(small_tagger, options), options)
    other = FirmwareOptions(softmax="argmax")
    assert key != cache_key(plan_conversion(small_tagger, other), other)
    changed = keras.models.clone_model(small_tagger)
    weights = small_tagger.get_weights()
    weights[0] = weights[0].copy()
    weights[0][0, 0] += 2.0**-5
    changed.set_weights(weights)
    assert key != cache_key(plan_conversion(changed, options), options)


def test_cache_key_follows_hepfpgas_firmware_code(
    small_tagger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change of hepfpga's firmware code (a corrected template patch, without a new
    version number) gives a new key: a library compiled before it is never served after."""
    from hepfpga.firmware import cache

    options = FirmwareOptions()
    plan = plan_conversion(small_tagger, options)
    key = cache.cache_key(plan, options)
    digest = cache.firmware_code_digest()
    assert len(digest) == 64 and digest == cache.firmware_code_digest()
    monkeypatch.setattr(cache, "firmware_code_digest", lambda: "0" * 64)
    assert cache.cache_key(plan, options) != key


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hepfpga.firmware.cache import cache_dir

    monkeypatch.setenv("HEPFPGA_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("HEPFPGA_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "hepfpga"
    assert cache_dir(tmp_path / "x") == tmp_path / "x"


def _comparison(name: str, cls: str, hls_type: str, ref: np.ndarray, got: np.ndarray) -> Any:
    fixed = FixedType.parse(hls_type)
    return LayerComparison(
        name=name,
        class_name=cls,
        hls_type=hls_type,
        fraction_bit_exact=float(np.mean(np.all(ref == got, axis=1))),
        max_abs_diff=float(np.abs(ref - got).max()),
        max_diff_lsb=float(np.abs(ref - got).max() / fixed.lsb),
        reference_min=float(ref.min()),
        reference_max=float(ref.max()),
        type_min=fixed.min_value,
        type_max=fixed.max_value,
        exact_expected=cls != "Activation",
    )


def test_diagnosis_of_an_activation_that_truncates(small_tagger: Any, inputs_factory: Any) -> None:
    from tensorflow import keras

    x = inputs_factory(50)
    names = ["dense_1", "relu_1"]
    probe = keras.Model(small_tagger.inputs, [small_tagger.get_layer(n).output for n in names])
    refs = {
        n: np.asarray(v, np.float64)
        for n, v in zip(names, probe.predict(x, verbose=0), strict=True)
    }
    refs["input_quant"] = FixedType.parse("ap_fixed<16,6,AP_RND_CONV,AP_SAT>").quantize(x)
    truncating = FixedType.parse("ap_ufixed<6,0,AP_TRN,AP_SAT>")
    traces = {"dense_1": refs["dense_1"], "relu_1": truncating.quantize(refs["dense_1"])}
    layers = [
        _comparison("dense_1", "QDense", "ap_fixed<27,12>", refs["dense_1"], traces["dense_1"]),
        _comparison("relu_1", "QActivation", truncating.to_hls(), refs["relu_1"], traces["relu_1"]),
    ]
    found = diagnose(
        small_tagger,
        layers,
        refs,
        traces,
        x=x,
        input_type=FixedType.parse("ap_fixed<16,6,AP_RND_CONV,AP_SAT>"),
    )
    assert found is not None
    assert (found.layer, found.cause) == ("relu_1", "activation_mode")
    assert "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>" in found.explanation


def test_events_are_checked_before_any_compilation(small_tagger: Any) -> None:
    good = np.zeros((3, 16), dtype=np.float32)
    assert check_events(small_tagger, good).shape == (3, 16)
    with pytest.raises(
        DataError, match=r"has shape \(3, 15\); the model takes shape \(n_events, 16\)"
    ):
        check_events(small_tagger, np.zeros((3, 15)))
    bad = good.copy()
    bad[1, 4] = np.nan
    with pytest.raises(DataError, match=r"1 NaN or infinite values .* \(first: event 1 input 4\)"):
        check_events(small_tagger, bad)
    with pytest.raises(DataError, match="real numbers"):
        check_events(small_tagger, np.array([["a"] * 16]))
    with pytest.raises(DataError, match="no events"):
        check_events(small_tagger, np.zeros((0, 16)))


def test_data_files(tmp_path: Path, small_tagger: Any) -> None:
    import h5py

    x = random_events(small_tagger, 5)
    np.savez(tmp_path / "one.npz", anything=x)
    np.testing.assert_array_equal(load_events(tmp_path / "one.npz"), x)
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(DataError, match=r"2 arrays \(a, b\); choose one with --key"):
        load_events(tmp_path / "two.npz")
    np.testing.assert_array_equal(load_events(tmp_path / "two.npz", "b"), x)
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        handle["group/x"] = x
        handle["y"] = np.zeros(5)
    np.testing.assert_array_equal(load_events(tmp_path / "d.h5", "group/x"), x)
    with pytest.raises(DataError, match="no dataset 'z'; found: group/x, y"):
        load_events(tmp_path / "d.h5", "z")
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="cannot be read as an HDF5 file"):
        load_events(tmp_path / "bad.h5")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DataError, match=r"unknown input format '\.csv'"):
        load_events(tmp_path / "x.csv")
    with pytest.raises(DataError, match="no such file"):
        load_events(tmp_path / "missing.npz")


def test_qbatchnorm_with_quantized_parameters_is_refused() -> None:
    from qkeras import QActivation, QBatchNormalization, QDense, quantized_bits
    from tensorflow import keras

    q = quantized_bits(6, 0, alpha=1)
    inputs = keras.Input((4,))
    h = QActivation(quantized_bits(10, 3, alpha=1))(inputs)
    h = QDense(3, kernel_quantizer=q, bias_quantizer=q)(h)
    model = keras.Model(inputs, QBatchNormalization(name="qbn")(h))
    with pytest.raises(ConversionError, match=r"'qbn' \(QBatchNormalization\) quantizes its"):
        plan_conversion(model)
