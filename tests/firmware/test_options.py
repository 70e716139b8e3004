"""FirmwareOptions: defaults, conversions and validation messages."""

from __future__ import annotations

import pytest

from hepfpga.errors import ConfigError
from hepfpga.firmware import FirmwareOptions
from hepfpga.firmware.options import Backend, IOType, SoftmaxMode, Strategy
from hepfpga.quantize.fixed import FixedType


def test_defaults() -> None:
    options = FirmwareOptions()
    assert options.backend is Backend.VITIS
    assert options.io_type is IOType.PARALLEL
    assert options.strategy is Strategy.LATENCY
    assert options.part is None
    assert options.effective_part == "xcvu13p-flga2577-2-e"
    assert FirmwareOptions(backend="Quartus").effective_part == "Arria10"
    assert options.softmax is SoftmaxMode.STABLE
    assert options.clock_period == 5.0
    assert options.reuse_factor == 1
    assert options.softmax_table_size == 1024
    assert options.softmax_table_bits == 10
    assert options.softmax_exp_table.to_hls() == "ap_ufixed<18,1,AP_RND,AP_SAT>"


@pytest.mark.parametrize(
    ("kwargs", "attribute", "expected"),
    [
        ({"backend": "Vivado"}, "backend", Backend.VIVADO),
        ({"backend": "vitis"}, "backend", Backend.VITIS),
        ({"io_type": "io_stream"}, "io_type", IOType.STREAM),
        ({"strategy": "resource"}, "strategy", Strategy.RESOURCE),
        ({"clock_period": 4}, "clock_period", 4.0),
        (
            {"input_type": "ap_fixed<12,4,AP_RND_CONV,AP_SAT>"},
            "input_type",
            FixedType.parse("ap_fixed<12,4,AP_RND_CONV,AP_SAT>"),
        ),
        (
            {"softmax_inv_table": "ap_ufixed<16,1,AP_RND,AP_SAT>"},
            "softmax_inv_table",
            FixedType.parse("ap_ufixed<16,1,AP_RND,AP_SAT>"),
        ),
    ],
)
def test_strings_are_converted(kwargs: dict, attribute: str, expected: object) -> None:
    assert getattr(FirmwareOptions(**kwargs), attribute) == expected


@pytest.mark.parametrize(
    ("kwargs", "path", "message"),
    [
        ({"backend": "oneAPI"}, "firmware.backend", "accepted: 'Vitis', 'Vivado', 'Catapult'"),
        ({"io_type": "parallel_io"}, "firmware.io_type", "'io_parallel', 'io_stream'"),
        ({"strategy": "fast"}, "firmware.strategy", "'Latency', 'Resource'"),
        ({"reuse_factor": 0}, "firmware.reuse_factor", "positive integer"),
        ({"reuse_factor": 2.5}, "firmware.reuse_factor", "positive integer"),
        ({"clock_period": -1}, "firmware.clock_period", "positive clock period"),
        ({"part": ""}, "firmware.part", "FPGA part"),
        ({"project_name": "my project"}, "firmware.project_name", "C identifier"),
        ({"softmax_table_size": 1000}, "firmware.softmax_table_size", "power of two"),
        ({"softmax_range_bits": 10}, "firmware.softmax_range_bits", "fewer than 10"),
        ({"softmax_exp_table": "float"}, "firmware.softmax_exp_table", "fixed-point type"),
        ({"input_type": "ap_fixed<16>"}, "firmware.input_type", "template arguments"),
    ],
)
def test_invalid_values_name_the_path_and_accepted_values(
    kwargs: dict, path: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        FirmwareOptions(**kwargs)
    assert info.value.path == path


def test_from_dict_round_trip_and_unknown_keys() -> None:
    options = FirmwareOptions(backend="Vivado", reuse_factor=4, softmax_table_size=2048)
    assert FirmwareOptions.from_dict(options.to_dict()) == options
    with pytest.raises(ConfigError, match="did you mean 'reuse_factor'") as info:
        FirmwareOptions.from_dict({"reuse_factr": 2})
    assert info.value.path == "firmware.reuse_factr"


def test_backend_registry_names_tools() -> None:
    assert Backend.VITIS.info.hls4ml_name == "Vitis"
    assert "vitis_hls" in Backend.VITIS.info.tools
    assert Backend.VIVADO.info.tools == ("vivado_hls",)
    assert len(Backend.VITIS.info.tools) == len(Backend.VITIS.info.build_commands)


@pytest.mark.parametrize("mode", ["stable", "tuned", "latency", "argmax", "logits"])
def test_softmax_modes_are_a_registry(mode: str) -> None:
    options = FirmwareOptions(softmax=mode)
    assert options.softmax is SoftmaxMode(mode)
    assert options.softmax.info.outputs


def test_layer_types_are_parsed_and_round_trip() -> None:
    options = FirmwareOptions(layer_types={"dense_1": {"result": "ap_fixed<20,8>"}})
    types = options.layer_types["dense_1"]
    assert types.result == FixedType(20, 8)
    assert types.accum is None
    assert FirmwareOptions.from_dict(options.to_dict()) == options
    assert hash(options) == hash(FirmwareOptions.from_dict(options.to_dict()))


@pytest.mark.parametrize(
    ("kwargs", "path", "message"),
    [
        ({"softmax": "exact"}, "firmware.softmax", "'stable', 'tuned', 'latency'"),
        ({"layer_types": ["dense_1"]}, "firmware.layer_types", "mapping of layer name"),
        (
            {"layer_types": {"d": {"output": "ap_fixed<8,3>"}}},
            "firmware.layer_types.d.output",
            "accepted: result, accum, weight, bias, scale",
        ),
        (
            {"layer_types": {"d": {"result": "fixed"}}},
            "firmware.layer_types.d.result",
            "fixed-point type",
        ),
        ({"float_width": 64}, "firmware.float_width", "4 to 48"),
        ({"softmax_tuned_inv_bits": 30}, "firmware.softmax_tuned_inv_bits", "8 to 24"),
        ({"part": "  "}, "firmware.part", "FPGA part"),
    ],
)
def test_new_fields_are_validated(kwargs: dict, path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        FirmwareOptions(**kwargs)
    assert info.value.path == path


def test_every_backend_compiles_without_vendor_tools_and_names_its_tools() -> None:
    assert [b.value for b in Backend] == ["Vitis", "Vivado", "Catapult", "Quartus"]
    for backend in Backend:
        assert len(backend.info.tools) == len(backend.info.build_commands)
        assert "logits" in backend.info.softmax_modes
    assert Backend.CATAPULT.info.softmax_modes == ("logits",)


def test_backend_choice_is_derived_from_the_registry() -> None:
    from hepfpga.firmware.backends import BACKENDS

    assert [b.value for b in Backend] == list(BACKENDS.names())
    for name, backend in BACKENDS.items():
        assert FirmwareOptions(backend=name.lower()).backend.info is backend
    # the backends whose projects use hls4ml's Vivado templates (what the emulator reproduces)
    assert [n for n, b in BACKENDS.items() if b.vivado_templates] == ["Vitis", "Vivado"]


def test_softmax_choice_exists_once_with_its_behaviour() -> None:
    import numpy as np

    from hepfpga.firmware.softmax import SOFTMAX_MODES

    assert tuple(mode.value for mode in SoftmaxMode) == SOFTMAX_MODES
    assert [m.value for m in SoftmaxMode if m.info.exact] == ["argmax", "logits"]
    logits = np.array([[1.0, 3.0, 3.0], [-1.0, -2.0, 0.5]])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert SoftmaxMode.STABLE.info.expected(logits, probs) is probs
    assert SoftmaxMode.LOGITS.info.expected(logits, probs) is logits
    one_hot = SoftmaxMode.ARGMAX.info.expected(logits, probs)
    assert one_hot.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]  # first index wins ties


def test_from_dict_reads_the_section_as_a_run_config_does() -> None:
    from hepfpga._schema import build

    for values in ({"reuse_factor": "2"}, {"softmax": "exact"}, {"layer_types": {"d": 1}}):
        with pytest.raises(ConfigError) as from_dict:
            FirmwareOptions.from_dict(values)
        with pytest.raises(ConfigError) as schema:
            build(FirmwareOptions, values, "firmware")
        assert (from_dict.value.path, str(from_dict.value)) == (
            schema.value.path,
            str(schema.value),
        )
        assert from_dict.value.path.startswith("firmware.")
