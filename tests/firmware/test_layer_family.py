"""A layer family is one module plus its test: a toy family registered from this module.

The family is ``Reverse`` (a user's custom Keras layer: the features in reverse order). All
it takes is here, and no other file is edited:

* hls4ml's side, through hls4ml's own extension API (a parser, an IR layer, two templates and
  a C++ header), as any custom layer needs in hls4ml;
* hepfpga's side, one :class:`~hepfpga.firmware.layers.LayerHandler`: its types (the input's:
  values only move), its exactness, its emulator step (:class:`ReverseStep`, found by the
  engine through the handler), its RTL tracer and why it has no QKeras mapping.

The model is converted, its emulation plan built and run, and it is traced into da4ml's adder
graph (fast), then verified against the C simulation and emulated with the engine proving
itself against it (slow: g++).

The module also holds the handlers' contract with the engine, the RTL trace and QAT: their
tables are derived from the registered handlers, and every handled class has a QKeras
mapping or its handler says why not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepfpga.firmware import FirmwareOptions, compile_project, predict, verify_model, write_project
from hepfpga.firmware.emulate import ENGINE_FIXED, Emulator
from hepfpga.firmware.emulate_engine.plan import build_plan, engine_tables
from hepfpga.firmware.emulate_engine.types import (
    Context,
    Step,
    input_of,
    out_shape,
    plan_convert,
    result_type,
)
from hepfpga.firmware.layers import (
    DeriveContext,
    Emulation,
    LayerHandler,
    LayerPrecision,
    QKerasMapping,
    register,
    registered_handlers,
    unregister,
)
from hepfpga.quantize.fixed import FixedType
from hepfpga.quantize.qat import LAYER_MAPPINGS

# -- hls4ml's side: its extension API --------------------------------------------------------
REVERSE_HEADER = """#ifndef NNET_REVERSE_H_
#define NNET_REVERSE_H_

#include "nnet_common.h"

namespace nnet {

struct reverse_config {
    static const unsigned n_in = 10;
};

template <class data_T, class res_T, typename CONFIG_T>
void reverse(data_T input[CONFIG_T::n_in], res_T reversed[CONFIG_T::n_in]) {
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
        reversed[CONFIG_T::n_in - 1 - i] = (res_T) input[i];
    }
}

} // namespace nnet

#endif
"""
CONFIG_TEMPLATE = """struct config{index} : nnet::reverse_config {{
    static const unsigned n_in = {n_in};
}};\n"""
FUNCTION_TEMPLATE = "nnet::reverse<{input_t}, {output_t}, {config}>({input}, {output});"


def _register_with_hls4ml(header_dir: Path) -> None:
    """Teach hls4ml the ``Reverse`` layer (once per process: hls4ml keeps it)."""
    import hls4ml
    from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
    from hls4ml.converters.keras_v2_to_hls import (
        get_supported_keras_layers,
        register_keras_v2_layer_handler,
    )

    if "Reverse" in get_supported_keras_layers():
        return

    class HReverse(hls4ml.model.layers.Layer):  # type: ignore[misc]
        def initialize(self) -> None:
            inp = self.get_input_variable()
            self.add_output_variable(inp.shape)

    def parse(keras_layer: Any, input_names: Any, input_shapes: Any, reader: Any) -> Any:
        layer = {"class_name": "HReverse", "name": keras_layer["config"]["name"]}
        layer["n_in"] = input_shapes[0][1]
        if input_names is not None:
            layer["inputs"] = input_names
        return layer, list(input_shapes[0])

    class ConfigTemplate(LayerConfigTemplate):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(HReverse)
            self.template = CONFIG_TEMPLATE

        def format(self, node: Any) -> str:
            return str(self.template.format(**self._default_config_params(node)))

    class FunctionTemplate(FunctionCallTemplate):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(HReverse, include_header=["nnet_utils/nnet_reverse.h"])
            self.template = FUNCTION_TEMPLATE

        def format(self, node: Any) -> str:
            return str(self.template.format(**self._default_function_params(node)))

    header = header_dir / "nnet_reverse.h"
    header.write_text(REVERSE_HEADER)
    register_keras_v2_layer_handler("Reverse", parse)
    hls4ml.model.layers.register_layer("HReverse", HReverse)
    for name in ("Vivado", "Vitis"):
        backend = hls4ml.backends.get_backend(name)
        backend.register_template(ConfigTemplate)
        backend.register_template(FunctionTemplate)
        backend.register_source(header)


def _reverse_layer_class() -> Any:
    import tensorflow as tf
    from tensorflow import keras

    class Reverse(keras.layers.Layer):  # type: ignore[misc]
        """The features of a vector in reverse order."""

        def call(self, inputs: Any) -> Any:
            return tf.reverse(inputs, axis=[-1])

    return Reverse


# -- hepfpga's side: the family ---------------------------------------------------------------
def _derive(layer: Any, ctx: DeriveContext, inputs: list[FixedType]) -> LayerPrecision:
    return LayerPrecision(
        layer.name, type(layer).__name__, result=inputs[0], source="the input type"
    )


class ReverseStep(Step):
    """``res[n - 1 - i] = (res_T) x[i]``: a move, then a conversion (a no-op here)."""

    def __init__(self, layer: Any, ctx: Context) -> None:
        self.name = layer.name
        source, in_type, interval, _ = input_of(layer, ctx)
        self.inputs = (source,)
        self.output = layer.outputs[0]
        self.shape = out_shape(layer)
        self.out_type = result_type(layer)
        self.convert, self.out_interval, big = plan_convert(
            in_type.fractional, interval, self.out_type
        )
        self.max_magnitude = max(big, interval.magnitude)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        reversed_ = np.ascontiguousarray(x.reshape(n, -1)[:, ::-1])
        return self.convert(reversed_).reshape(n, *self.shape)


REVERSE = LayerHandler(
    family="reverse",
    classes=("Reverse",),
    derive=_derive,
    exactness="moves values only, in the input type: exact",
    emulation=Emulation("reverse step", steps={"HReverse": ReverseStep}),
    qkeras=QKerasMapping(reason="a custom layer of the user's: QAT keeps it as it is"),
    rtl={"Reverse": lambda layer, x, rounding: x[::-1]},
)


@pytest.fixture(scope="module")
def reverse_family(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LayerHandler]:
    _register_with_hls4ml(tmp_path_factory.mktemp("hls4ml_extension"))
    register(REVERSE)
    yield REVERSE
    unregister(REVERSE)


@pytest.fixture(scope="module")
def reverse_model(reverse_family: LayerHandler) -> Any:
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu
    from tensorflow import keras

    tf.keras.utils.set_random_seed(3)
    q = quantized_bits(6, 0, alpha=1)
    x = keras.Input((8,), name="features")
    h = QActivation(quantized_bits(10, 3, alpha=1), name="input_quant")(x)
    h = QDense(6, kernel_quantizer=q, bias_quantizer=q, name="dense")(h)
    h = QActivation(quantized_relu(6, 2), name="relu")(h)
    h = _reverse_layer_class()(name="reverse")(h)
    out = QDense(3, kernel_quantizer=q, bias_quantizer=q, name="logits")(h)
    return keras.Model(x, out)


def _events(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 2, (n, 8)).astype(np.float32)


def test_the_family_is_converted_and_emulated(reverse_model: Any, tmp_path: Path) -> None:
    project = write_project(reverse_model, FirmwareOptions(), tmp_path / "fw")
    kinds = {layer.name: layer.class_name for layer in project.hls_model.get_layers()}
    assert kinds["reverse"] == "HReverse"
    plan = build_plan(project.hls_model)
    step = next(s for s in plan.steps if s.name == "reverse")
    assert isinstance(step, ReverseStep)
    x = _events(2000)
    raw = plan.run(x)[plan.output]
    logits = np.ldexp(raw.reshape(len(x), -1), -plan.type_of(plan.output).fractional)
    # QKeras layers and a move: the plan equals Keras bit for bit
    assert np.array_equal(logits, reverse_model.predict(x, verbose=0))


def test_the_engine_finds_the_family_through_its_handler(reverse_family: LayerHandler) -> None:
    assert registered_handlers()["Reverse"] is reverse_family
    assert engine_tables().steps["HReverse"] is ReverseStep
    with pytest.raises(ValueError, match="has two handlers"):
        register(reverse_family)


def test_the_family_is_traced_into_rtl(reverse_model: Any) -> None:
    pytest.importorskip("da4ml")
    from hepfpga.firmware.rtl.trace import trace_model
    from hepfpga.firmware.verify import keras_outputs_with_logits

    net = trace_model(reverse_model)
    assert "reverse" in net.layers
    x = _events(400)
    codes = net.input_codes(x)
    rtl = net.comb.predict(np.ldexp(codes.astype(np.float64), -net.input_type.fractional))
    logits = np.asarray(keras_outputs_with_logits(reverse_model, x)[1], dtype=np.float64)
    assert np.array_equal(rtl, logits)


@pytest.mark.slow
def test_the_family_is_verified_and_emulated_against_the_c_simulation(
    reverse_model: Any, tmp_path: Path
) -> None:
    x = _events(500)
    report = verify_model(reverse_model, x, cache=False)
    assert report.passed, report.requirement
    assert report.outputs.logits_max_abs_diff == 0.0
    assert "reverse" in [layer.name for layer in report.layers]
    project = compile_project(write_project(reverse_model, FirmwareOptions(), tmp_path / "fw"))
    emulator = Emulator.from_project(project, x, stress_events=500)
    assert emulator.engine == ENGINE_FIXED, emulator.fallback_reason
    events = _events(3000, seed=5)
    assert np.array_equal(emulator.predict(events), predict(project, events))


# -- the handlers' contract ----------------------------------------------------------------------
#: the engine's tables as they stood when each module registered into them (before the
#: handlers named their steps): deriving them from the handlers loses and adds nothing
ENGINE_STEPS = {
    "Activation", "AveragePooling1D", "AveragePooling2D", "BatchNormalization", "Clone",
    "Concatenate", "Conv1D", "Conv2D", "Cropping1D", "Cropping2D", "Dense", "DepthwiseConv1D",
    "ApplyAlpha", "DepthwiseConv2D", "Dot", "ELU", "GRU", "GlobalPooling1D", "GlobalPooling2D",
    "HardActivation", "LSTM", "LeakyReLU", "MaxPooling1D", "MaxPooling2D", "Merge", "PReLU",
    "ParametrizedActivation", "PointwiseConv1D", "PointwiseConv2D", "Pooling1D", "Pooling2D",
    "ReLU", "Repack", "Reshape", "Resize", "Softmax", "ThresholdedReLU", "TimeDistributed",
    "ZeroPadding1D", "ZeroPadding2D",
}  # fmt: skip
ENGINE_ACTIVATIONS = {
    "binary_tanh", "elu", "linear", "relu", "selu", "sigmoid", "softplus", "softsign", "tanh"
}  # fmt: skip
ENGINE_PARAMETRISED = {"elu", "leaky_relu", "leakyrelu", "thresholdedrelu"}
#: the RTL tracer's table as it stood in rtl/trace.py
RTL_TRACED = {
    "Activation", "Dropout", "Flatten", "MaxPooling1D", "MaxPooling2D", "QActivation", "QConv1D",
    "QConv2D", "QConv2DBatchnorm", "QDense", "Reshape",
}  # fmt: skip


def test_the_engine_tables_are_derived_from_the_handlers() -> None:
    tables = engine_tables()
    assert set(tables.steps) - {"HReverse"} == ENGINE_STEPS
    assert set(tables.activations) == ENGINE_ACTIVATIONS
    assert set(tables.parametrised) == ENGINE_PARAMETRISED
    named = {
        name
        for handler in registered_handlers().values()
        for name in (*handler.emulation.steps, *handler.emulation.stream_steps)
    }
    assert set(tables.steps) - {"Clone"} == named


def test_the_rtl_tracers_are_derived_from_the_handlers() -> None:
    from hepfpga.firmware.rtl.trace import layer_tracers

    assert set(layer_tracers()) - {"Reverse"} == RTL_TRACED


def test_a_handler_names_only_what_it_handles_and_what_qat_maps() -> None:
    stray_tracer = replace(REVERSE, classes=("Toy",), rtl={"Reverse": REVERSE.rtl["Reverse"]})
    with pytest.raises(ValueError, match=r"RTL tracers of \['Reverse'\], not its classes"):
        register(stray_tracer)
    unmapped = replace(REVERSE, classes=("Toy",), rtl={}, qkeras=QKerasMapping(("Toy",)))
    with pytest.raises(ValueError, match=r"no QKeras mapping of \['Toy'\]"):
        register(unmapped)
    assert "Toy" not in registered_handlers()


def test_every_handled_class_has_its_qkeras_mapping_or_a_reason() -> None:
    mapped: set[str] = set()
    for name, handler in registered_handlers().items():
        mapping = handler.qkeras
        assert set(mapping.classes) <= set(handler.classes), handler.family
        assert mapping.mappings().keys() == set(mapping.classes)
        if name not in mapping.classes:
            assert mapping.reason, f"{name} ({handler.family}): no QKeras mapping and no reason"
        mapped |= set(mapping.classes)
    # and every mapping QAT makes is of a class the firmware handles
    assert set(LAYER_MAPPINGS) == mapped
